//! Agreement weights for weighted κ, AC2, Brennan–Prediger, and Krippendorff's distance metrics.

use serde::{Deserialize, Serialize};

/// Agreement weights `w_kl` in `[0, 1]`, `w_kk = 1`, computed from the category scores as in
/// Gwet (2014) and the `irrCAC` packages: a disagreement `d_kl` is normalised by its largest
/// value and `w_kl = 1 - d_kl / max d`.
///
/// With rank scores (the default), `Linear` and `Quadratic` are Cohen's linear and quadratic
/// weights as in scikit-learn and R `irr` (`1 - |i-j|/(q-1)`, `1 - (i-j)²/(q-1)²`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weighting {
    /// Unweighted: only identical categories agree.
    Identity,
    /// `d = |s_k - s_l|`.
    Linear,
    /// `d = (s_k - s_l)²`.
    Quadratic,
    /// Gwet's ordinal weights on ranks: `d = m(m-1)/2` with `m = |k-l| + 1`.
    Ordinal,
    /// `d = ((s_k - s_l)/(s_k + s_l))²` (0 where `s_k + s_l = 0`).
    Ratio,
    /// `d = sqrt|s_k - s_l|`.
    Radical,
    /// `d = sin²(π (s_k - s_l) / U)` with `U = max - min + 1`.
    Circular,
    /// `d = (s_k - s_l)² / ((s_k + s_l - 2 min)(2 max - s_k - s_l))` for `k ≠ l`.
    Bipolar,
}

impl Weighting {
    /// All weightings, in declaration order.
    pub const ALL: [Weighting; 8] = [
        Weighting::Identity,
        Weighting::Linear,
        Weighting::Quadratic,
        Weighting::Ordinal,
        Weighting::Ratio,
        Weighting::Radical,
        Weighting::Circular,
        Weighting::Bipolar,
    ];

    /// The `q × q` row-major weight matrix for categories with these scores.
    pub fn matrix(self, scores: &[f64]) -> Vec<f64> {
        let q = scores.len();
        let mut d = vec![0.0; q * q];
        if self == Weighting::Identity || q < 2 {
            return identity(q);
        }
        let min = scores.iter().copied().fold(f64::INFINITY, f64::min);
        let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for k in 0..q {
            for l in 0..q {
                if k == l {
                    continue;
                }
                let (a, b) = (scores[k], scores[l]);
                let v = match self {
                    Weighting::Identity => 0.0,
                    Weighting::Linear => (a - b).abs(),
                    Weighting::Quadratic => (a - b) * (a - b),
                    Weighting::Ordinal => {
                        let m = k.abs_diff(l) as f64 + 1.0;
                        m * (m - 1.0) / 2.0
                    }
                    Weighting::Ratio => {
                        let s = a + b;
                        if s == 0.0 {
                            0.0
                        } else {
                            ((a - b) / s) * ((a - b) / s)
                        }
                    }
                    Weighting::Radical => (a - b).abs().sqrt(),
                    Weighting::Circular => {
                        let u = max - min + 1.0;
                        let s = (std::f64::consts::PI * (a - b) / u).sin();
                        s * s
                    }
                    Weighting::Bipolar => {
                        let den = (a + b - 2.0 * min) * (2.0 * max - a - b);
                        if den == 0.0 {
                            0.0
                        } else {
                            (a - b) * (a - b) / den
                        }
                    }
                };
                d[k * q + l] = if v.is_finite() { v } else { 0.0 };
            }
        }
        let dmax = d.iter().copied().fold(0.0, f64::max);
        if dmax <= 0.0 {
            return identity(q);
        }
        d.iter().map(|x| 1.0 - x / dmax).collect()
    }
}

fn identity(q: usize) -> Vec<f64> {
    let mut w = vec![0.0; q * q];
    for k in 0..q {
        w[k * q + k] = 1.0;
    }
    w
}

/// Krippendorff's distance metric `δ²` for α.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// `δ² = 0` for equal categories, 1 otherwise.
    Nominal,
    /// Krippendorff's ordinal metric from the coincidence marginals:
    /// `δ²_ck = (Σ_{g=c..k} n_g - (n_c + n_k)/2)²` (categories in index order).
    Ordinal,
    /// `δ² = (s_c - s_k)²` on the category scores.
    Interval,
    /// `δ² = ((s_c - s_k)/(s_c + s_k))²` on the scores (0 where `s_c + s_k = 0`).
    Ratio,
    /// `δ² = 1 - w_ck` for agreement weights, as `irrCAC`'s weighted Krippendorff α.
    Weighted(Weighting),
}

impl Metric {
    /// The `q × q` matrix of `δ²`; `marginals` are the coincidence marginals `n_c` (used by the
    /// ordinal metric only).
    pub fn matrix(self, scores: &[f64], marginals: &[f64]) -> Vec<f64> {
        let q = scores.len();
        let mut d = vec![0.0; q * q];
        match self {
            Metric::Nominal => {
                for k in 0..q {
                    for l in 0..q {
                        if k != l {
                            d[k * q + l] = 1.0;
                        }
                    }
                }
            }
            Metric::Ordinal => {
                let mut prefix = Vec::with_capacity(q + 1);
                prefix.push(0.0);
                let mut acc = 0.0;
                for k in 0..q {
                    acc += marginals.get(k).copied().unwrap_or(0.0);
                    prefix.push(acc);
                }
                for k in 0..q {
                    for l in k + 1..q {
                        let nk = marginals.get(k).copied().unwrap_or(0.0);
                        let nl = marginals.get(l).copied().unwrap_or(0.0);
                        let v = prefix[l + 1] - prefix[k] - (nk + nl) / 2.0;
                        d[k * q + l] = v * v;
                        d[l * q + k] = v * v;
                    }
                }
            }
            Metric::Interval => {
                for k in 0..q {
                    for l in 0..q {
                        let v = scores[k] - scores[l];
                        d[k * q + l] = v * v;
                    }
                }
            }
            Metric::Ratio => {
                for k in 0..q {
                    for l in 0..q {
                        let s = scores[k] + scores[l];
                        if s != 0.0 {
                            let v = (scores[k] - scores[l]) / s;
                            d[k * q + l] = v * v;
                        }
                    }
                }
            }
            Metric::Weighted(w) => {
                let m = w.matrix(scores);
                for (dst, wv) in d.iter_mut().zip(m) {
                    *dst = 1.0 - wv;
                }
            }
        }
        d
    }
}
