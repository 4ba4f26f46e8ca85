//! Fused CPU kernels for the inference pass. Each replaces several candle ops (and the fresh
//! tensor each of them allocates): bias + GELU in place after the intermediate projection, bias
//! in place after the other projections, and the whole attention (per item and head: scores,
//! scale, padding mask, softmax, weighted values) as one task per (item, head) that reads
//! queries, keys and values straight out of the projections and writes the context straight
//! into its final layout, so no head-split or transpose copies are made.
//!
//! They only run in [`Mode::Infer`](crate::Mode) on the CPU; training and other devices keep
//! the plain tensor ops (which carry gradients). The results equal those ops' to float rounding
//! (`tests` in this module and `tests/tiny.rs` compare them).

use candle_core::{CpuStorage, CustomOp3, InplaceOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Rows handed to one rayon task: enough work to pay for the hand-off.
const MIN_TASK_ELEMENTS: usize = 16 * 1024;

/// The activation applied after the bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    None,
    /// Exact GELU, `x·Φ(x)`, with a rational approximation of erf (max error ≈ 3e-7).
    GeluErf,
    /// The tanh approximation (`gelu_new`).
    GeluTanh,
    Relu,
}

/// `x += bias` (broadcast over rows), then the activation, in place. `x`: (…, n) contiguous,
/// `bias`: (n).
struct BiasActivation(Activation);

fn contiguous_f32<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: only f32 is supported");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => candle_core::bail!("{op}: the tensor must be contiguous"),
    }
}

fn contiguous_f32_ref<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: only f32 is supported");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: the tensor must be contiguous"),
    }
}

fn rows_per_task(row_len: usize) -> usize {
    MIN_TASK_ELEMENTS.div_ceil(row_len.max(1)).max(1)
}

/// `x[r][j] = f(x[r][j] + bias[j])` over the rows of `x`, in parallel; one monomorphic loop per
/// activation so that it vectorises.
fn add_then<F: Fn(f32) -> f32 + Sync>(x: &mut [f32], bias: &[f32], f: F) {
    let n = bias.len();
    x.par_chunks_mut(n * rows_per_task(n)).for_each(|rows| {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { add_then_avx2(rows, bias, &f) };
            return;
        }
        add_then_rows(rows, bias, &f);
    });
}

#[inline(always)]
fn add_then_rows<F: Fn(f32) -> f32>(rows: &mut [f32], bias: &[f32], f: &F) {
    for row in rows.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = f(*v + b);
        }
    }
}

/// The same loop compiled for AVX2 (8 lanes instead of SSE2's 4); the binary stays portable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_then_avx2<F: Fn(f32) -> f32>(rows: &mut [f32], bias: &[f32], f: &F) {
    add_then_rows(rows, bias, f)
}

/// Row-wise `softmax(row · scale + mask)` over a (rows × mask.len()) matrix.
fn softmax_rows(scores: &mut [f32], mask: &[f32], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for.
        unsafe { softmax_rows_avx2(scores, mask, scale) };
        return;
    }
    softmax_rows_generic(scores, mask, scale);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_rows_avx2(scores: &mut [f32], mask: &[f32], scale: f32) {
    softmax_rows_generic(scores, mask, scale)
}

/// Lanes of the partial maxima and sums: the reductions vectorise only as independent lanes
/// (floating-point addition is not reassociated for us).
const LANES: usize = 8;

#[inline(always)]
fn softmax_rows_generic(scores: &mut [f32], mask: &[f32], scale: f32) {
    for row in scores.chunks_exact_mut(mask.len()) {
        for (s, m) in row.iter_mut().zip(mask) {
            *s = *s * scale + m;
        }
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for (l, v) in lanes.iter_mut().zip(c) {
                *l = l.max(*v);
            }
        }
        let max = chunks
            .remainder()
            .iter()
            .chain(&lanes)
            .fold(f32::NEG_INFINITY, |a, b| a.max(*b));
        for s in row.iter_mut() {
            *s = exp(*s - max);
        }
        let mut lanes = [0f32; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for (l, v) in lanes.iter_mut().zip(c) {
                *l += v;
            }
        }
        let sum: f32 = chunks.remainder().iter().chain(&lanes).sum();
        let inv = 1.0 / sum;
        for s in row.iter_mut() {
            *s *= inv;
        }
    }
}

/// eˣ for x ≤ 0 as softmax needs it (Cephes' polynomial after range reduction by ln 2; relative
/// error ≈ 1e-7), with no branches or calls so that the loop around it vectorises. Below
/// −87 (beyond f32's normal range: padding) it is exactly 0.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer without a `round` call.
    const ROUND: f32 = 12_582_912.0;
    let clamped = x.clamp(-87.0, 88.0);
    let n = (clamped * LOG2E + ROUND) - ROUND;
    let r = clamped - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let z = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5;
    let y = p * z + r + 1.0;
    let scaled = y * f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.0 {
        0.0
    } else {
        scaled
    }
}

impl InplaceOp2 for BiasActivation {
    fn name(&self) -> &'static str {
        "bias-activation"
    }

    fn cpu_fwd(
        &self,
        x: &mut CpuStorage,
        xl: &Layout,
        bias: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<()> {
        let bias = contiguous_f32_ref(bias, bl, self.name())?;
        let n = bias.len();
        let x = contiguous_f32(x, xl, self.name())?;
        if n == 0 || !x.len().is_multiple_of(n) || xl.dims().last() != Some(&n) {
            candle_core::bail!(
                "bias-activation: bias of {n} does not match {:?}",
                xl.dims()
            );
        }
        match self.0 {
            Activation::None => add_then(x, bias, identity),
            Activation::GeluErf => add_then(x, bias, gelu_erf),
            Activation::GeluTanh => add_then(x, bias, gelu_tanh),
            Activation::Relu => add_then(x, bias, relu),
        }
        Ok(())
    }
}

// The activations as functions of their own (each a distinct type, so `add_then` still gets
// one monomorphic loop per activation), so that tests can run them through either loop.

#[inline(always)]
fn identity(z: f32) -> f32 {
    z
}

#[inline(always)]
fn gelu_erf(z: f32) -> f32 {
    0.5 * z * (1.0 + erf(z * std::f32::consts::FRAC_1_SQRT_2))
}

#[inline(always)]
fn gelu_tanh(z: f32) -> f32 {
    const C: f32 = 0.797_884_6; // √(2/π)
    0.5 * z * (1.0 + (C * (z + 0.044715 * z * z * z)).tanh())
}

#[inline(always)]
fn relu(z: f32) -> f32 {
    z.max(0.0)
}

/// `x + bias` followed by `activation`, in place on `x` (which the caller owns: a fresh matrix
/// product).
pub fn bias_activation(
    x: &Tensor,
    bias: &Tensor,
    activation: Activation,
) -> candle_core::Result<()> {
    x.inplace_op2(bias, &BiasActivation(activation))
}

/// Multi-head attention over (batch, tokens, hidden) queries, keys and values.
struct Attention {
    heads: usize,
    scale: f32,
    /// Additive mask, (batch × tokens): 0 on real tokens, a large negative number on padding.
    mask: Vec<f32>,
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "attention"
    }

    fn cpu_fwd(
        &self,
        q: &CpuStorage,
        ql: &Layout,
        k: &CpuStorage,
        kl: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dims = ql.dims().to_vec();
        let [batch, tokens, hidden] = dims[..] else {
            candle_core::bail!("attention: queries must be 3-D, got {dims:?}");
        };
        if kl.dims() != dims || vl.dims() != dims {
            candle_core::bail!("attention: q, k, v shapes differ");
        }
        if self.heads == 0 || !hidden.is_multiple_of(self.heads) {
            candle_core::bail!(
                "attention: {hidden} is not divisible into {} heads",
                self.heads
            );
        }
        if self.mask.len() != batch * tokens {
            candle_core::bail!("attention: mask of {} for {dims:?}", self.mask.len());
        }
        let q = contiguous_f32_ref(q, ql, self.name())?;
        let k = contiguous_f32_ref(k, kl, self.name())?;
        let v = contiguous_f32_ref(v, vl, self.name())?;
        let head_size = hidden / self.heads;
        let mut out = vec![0f32; batch * tokens * hidden];
        // Each (item, head) writes a disjoint set of columns of its item's rows; the raw pointer
        // crosses threads as an address.
        let out_addr = out.as_mut_ptr() as usize;
        (0..batch * self.heads).into_par_iter().for_each(|task| {
            let (item, head) = (task / self.heads, task % self.heads);
            let base = item * tokens * hidden + head * head_size;
            let mask = &self.mask[item * tokens..(item + 1) * tokens];
            let mut scores = vec![0f32; tokens * tokens];
            // SAFETY: every pointer/stride pair addresses inside q, k, v (rows of `hidden`
            // starting at `base`, `head_size` columns) and `scores` (tokens × tokens); the output
            // block of this task is written by no other task.
            unsafe {
                // scores = Q_h · K_hᵀ (K_h read transposed in place: rows 1 apart, columns
                // `hidden` apart).
                matmul_strided(
                    (tokens, tokens, head_size),
                    (scores.as_mut_ptr(), tokens),
                    (q.as_ptr().add(base), hidden),
                    (k.as_ptr().add(base), 1, hidden),
                );
            }
            softmax_rows(&mut scores, mask, self.scale);
            unsafe {
                // context_h = P · V_h, written into the item's rows at the head's columns.
                matmul_strided(
                    (tokens, head_size, tokens),
                    ((out_addr as *mut f32).add(base), hidden),
                    (scores.as_ptr(), tokens),
                    (v.as_ptr().add(base), hidden, 1),
                );
            }
        });
        Ok((CpuStorage::F32(out), Shape::from_dims(&dims)))
    }
}

/// `dst = lhs · rhs` on the calling thread, for `(m, n, k)`: `dst` (m × n) and `lhs` (m × k)
/// given as (pointer, row stride) with adjacent columns, `rhs` (k × n) as (pointer, row stride,
/// column stride).
///
/// # Safety
/// Each pointer with its strides must address only valid elements of its matrix, and no other
/// thread may touch `dst`'s elements meanwhile.
unsafe fn matmul_strided(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (*mut f32, usize),
    (lhs, lhs_rs): (*const f32, usize),
    (rhs, rhs_rs, rhs_cs): (*const f32, usize, usize),
) {
    // SAFETY: the caller's contract is gemm's.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            false,
            lhs,
            1,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// Multi-head attention: `q`, `k`, `v` (batch, tokens, hidden) contiguous, `mask` the additive
/// padding mask (batch, tokens). Returns the context, (batch, tokens, hidden).
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: &Tensor,
    heads: usize,
    scale: f32,
) -> candle_core::Result<Tensor> {
    let mask = mask.flatten_all()?.to_vec1::<f32>()?;
    q.apply_op3_no_bwd(k, v, &Attention { heads, scale, mask })
}

/// erf(x) as a rational function of x (the approximation Eigen and XLA use for f32): only
/// multiplies, adds and one division, so the loop around it vectorises, unlike libm's `erff`.
/// (Plain `a * b + c`: `mul_add` would call a software fma on builds without the target feature.)
pub fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = x2 * -2.726_142_3e-10 + 2.770_681_4e-8;
    p = x2 * p + -2.101_024e-6;
    p = x2 * p + -5.692_506_4e-5;
    p = x2 * p + -7.349_906_3e-4;
    p = x2 * p + -2.954_6e-3;
    p = x2 * p + -1.609_603_3e-2;
    let p = x * p;
    let mut q = x2 * -1.456_607_2e-5 + -2.133_740_6e-4;
    q = x2 * q + -1.682_827e-3;
    q = x2 * q + -7.373_329_2e-3;
    q = x2 * q + -1.426_474e-2;
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SplitMix64;
    use candle_core::{Device, D};

    /// `n` values uniform in [-scale, scale), the same on every run.
    fn seeded_values(n: usize, scale: f32, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                // The top 24 bits: exactly representable as f32.
                let unit = (rng.next_u64() >> 40) as f32 / (1u32 << 24) as f32;
                (2.0 * unit - 1.0) * scale
            })
            .collect()
    }

    fn seeded(shape: &[usize], scale: f32, seed: u64) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(seeded_values(n, scale, seed), shape, &Device::Cpu).unwrap()
    }

    /// Whether this CPU runs the AVX2 loops (else only the portable ones can be checked).
    #[cfg(target_arch = "x86_64")]
    fn has_avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }

    fn max_abs_diff_slices(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max)
    }

    #[test]
    fn erf_matches_the_reference_to_float_precision() {
        let mut worst = 0f64;
        for i in -6000..=6000 {
            let x = i as f64 / 1000.0;
            let got = erf(x as f32) as f64;
            let want = candle_core::cpu::erf::erf_f64(x);
            worst = worst.max((got - want).abs());
        }
        assert!(worst < 5e-7, "max |erf error| = {worst:e}");
    }

    #[test]
    fn exp_matches_the_standard_library() {
        let mut worst = 0f32;
        for i in -870_000..=10_000 {
            let x = i as f32 / 10_000.0;
            let (got, want) = (exp(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 3e-7, "max relative error {worst:e}");
        assert_eq!(exp(-1e4), 0.0, "padding gets no weight");
        assert_eq!(exp(0.0), 1.0);
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .and_then(|d| d.abs())
            .and_then(|d| d.max_all())
            .and_then(|d| d.to_scalar::<f32>())
            .unwrap()
    }

    fn check_bias_activation(activation: Activation, reference: fn(&Tensor) -> Tensor) {
        let x = seeded(&[5, 7, 33], 4.0, 1);
        let b = seeded(&[33], 2.0, 2);
        let want = reference(&x.broadcast_add(&b).unwrap());
        let got = x.copy().unwrap();
        bias_activation(&got, &b, activation).unwrap();
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 1e-5, "{activation:?}: {diff}");
    }

    #[test]
    fn bias_activation_equals_the_tensor_ops() {
        check_bias_activation(Activation::None, |t| t.clone());
        check_bias_activation(Activation::GeluErf, |t| t.gelu_erf().unwrap());
        check_bias_activation(Activation::GeluTanh, |t| t.gelu().unwrap());
        check_bias_activation(Activation::Relu, |t| t.relu().unwrap());
    }

    /// One activation through the portable loop and (where the CPU has it) the AVX2 loop,
    /// against `reference` computed in f64 element by element.
    fn check_both_loops<F: Fn(f32) -> f32>(name: &str, f: F, reference: fn(f64) -> f64) {
        // 37 columns: neither loop's vector width divides a row.
        let (rows, n) = (11, 37);
        let x = seeded_values(rows * n, 4.0, 3);
        let bias = seeded_values(n, 2.0, 4);
        let want: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, v)| reference(f64::from(*v) + f64::from(bias[i % n])) as f32)
            .collect();
        let mut portable = x.clone();
        add_then_rows(&mut portable, &bias, &f);
        let diff = max_abs_diff_slices(&portable, &want);
        assert!(diff < 1e-5, "{name}, portable loop: {diff}");
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            let mut wide = x.clone();
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { add_then_avx2(&mut wide, &bias, &f) };
            // The same operations in the same order: only the width differs, so the results
            // are the same to the bit.
            assert_eq!(wide, portable, "{name}: the AVX2 loop differs");
        }
    }

    #[test]
    fn bias_activation_loops_agree_with_a_plain_reference() {
        check_both_loops("none", identity, |z| z);
        check_both_loops("gelu_erf", gelu_erf, |z| {
            0.5 * z * (1.0 + candle_core::cpu::erf::erf_f64(z / std::f64::consts::SQRT_2))
        });
        check_both_loops("gelu_tanh", gelu_tanh, |z| {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * z * (1.0 + (c * (z + 0.044715 * z * z * z)).tanh())
        });
        check_both_loops("relu", relu, |z| z.max(0.0));
    }

    #[test]
    fn softmax_loops_agree_with_a_plain_reference() {
        // 13 columns (not a multiple of the 8 lanes), the last three padding.
        let (rows, n, scale) = (9, 13, 0.3f32);
        let scores = seeded_values(rows * n, 6.0, 5);
        let mut mask = vec![0f32; n];
        for m in &mut mask[n - 3..] {
            *m = -1e4;
        }
        let mut want = Vec::with_capacity(scores.len());
        for row in scores.chunks(n) {
            let z: Vec<f64> = row
                .iter()
                .zip(&mask)
                .map(|(s, m)| f64::from(*s) * f64::from(scale) + f64::from(*m))
                .collect();
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
            want.extend(z.iter().map(|v| ((v - max).exp() / sum) as f32));
        }
        let mut portable = scores.clone();
        softmax_rows_generic(&mut portable, &mask, scale);
        let diff = max_abs_diff_slices(&portable, &want);
        assert!(diff < 1e-6, "portable softmax: {diff}");
        assert!(portable.chunks(n).all(|row| row[n - 3..] == [0.0; 3]));
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            let mut wide = scores.clone();
            // SAFETY: the CPU has the features the function is compiled for.
            unsafe { softmax_rows_avx2(&mut wide, &mask, scale) };
            assert_eq!(wide, portable, "the AVX2 softmax differs");
        }
    }

    #[test]
    fn attention_equals_the_tensor_ops() {
        let (batch, tokens, heads, head_size) = (3, 7, 4, 5);
        let hidden = heads * head_size;
        let d = &Device::Cpu;
        let q = seeded(&[batch, tokens, hidden], 2.0, 6);
        let k = seeded(&[batch, tokens, hidden], 2.0, 7);
        let v = seeded(&[batch, tokens, hidden], 2.0, 8);
        let mut mask = vec![0f32; batch * tokens];
        for j in tokens - 3..tokens {
            mask[2 * tokens + j] = -1e4;
        }
        let mask = Tensor::from_vec(mask, (batch, tokens), d).unwrap();
        let split = |t: &Tensor| {
            t.reshape((batch, tokens, heads, head_size))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let scores = split(&q).matmul(&split(&k).t().unwrap()).unwrap();
        let scores = (scores * 0.3)
            .unwrap()
            .broadcast_add(&mask.reshape((batch, 1, 1, tokens)).unwrap())
            .unwrap();
        let want = candle_nn::ops::softmax(&scores, D::Minus1)
            .unwrap()
            .matmul(&split(&v))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((batch, tokens, hidden))
            .unwrap();
        let got = attention(&q, &k, &v, &mask, heads, 0.3).unwrap();
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 1e-5, "{diff}");
    }
}
