//! A BERT encoder written with candle tensor ops, in two modes. Inference uses candle's fused
//! kernels (layer norm, softmax), which are fast but have no backward pass; training uses plain
//! tensor ops for the same maths, so gradients reach every weight. The weights live in a
//! [`VarMap`], so the same model is loaded, fine-tuned and saved.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Init, VarBuilder, VarMap};
use concord_agreement::rng::SplitMix64;
use serde::Deserialize;

use crate::kernels::{self, Activation};
use crate::MlError;

/// The fields of a Hugging Face `config.json` that a BERT encoder needs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
}

fn default_act() -> String {
    "gelu".into()
}

fn two() -> usize {
    2
}

fn default_eps() -> f64 {
    1e-12
}

impl BertConfig {
    pub fn check(&self) -> Result<(), MlError> {
        if self.hidden_size == 0
            || self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(MlError::Config(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        if !matches!(self.hidden_act.as_str(), "gelu" | "gelu_new" | "relu") {
            return Err(MlError::Config(format!(
                "unsupported hidden_act {:?} (gelu, gelu_new or relu)",
                self.hidden_act
            )));
        }
        Ok(())
    }
}

/// Whether a forward pass may use the fused (non-differentiable) kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Infer,
    Train,
}

/// Whether the fused in-place CPU kernels apply: inference on the CPU.
fn fused(mode: Mode, x: &Tensor) -> bool {
    mode == Mode::Infer && x.device().is_cpu()
}

/// A weight as a forward pass uses it. Inference detaches it from the variable, so no
/// computation graph (and none of the activations it would keep alive) is recorded.
fn param(t: &Tensor, mode: Mode) -> Tensor {
    match mode {
        Mode::Infer => t.detach(),
        Mode::Train => t.clone(),
    }
}

struct Linear {
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    fn load(
        vb: &VarBuilder,
        name: &str,
        inputs: usize,
        outputs: usize,
    ) -> candle_core::Result<Self> {
        let vb = vb.pp(name);
        let bound = 1.0 / (inputs as f64).sqrt();
        Ok(Linear {
            weight: vb.get_with_hints(
                (outputs, inputs),
                "weight",
                Init::Randn {
                    mean: 0.0,
                    stdev: 0.02,
                },
            )?,
            bias: vb.get_with_hints(
                outputs,
                "bias",
                Init::Uniform {
                    lo: -bound,
                    up: bound,
                },
            )?,
        })
    }

    /// `x`: (…, inputs) → (…, outputs), as one 2-D matrix product, then `activation`.
    fn forward(
        &self,
        x: &Tensor,
        mode: Mode,
        activation: Activation,
    ) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let inputs = dims[dims.len() - 1];
        let rows = x.elem_count() / inputs;
        let product = x
            .reshape((rows, inputs))?
            .matmul(&param(&self.weight, mode).t()?)?;
        let y = if fused(mode, x) {
            // The product is ours alone: add the bias and activate in the same buffer.
            kernels::bias_activation(&product, &self.bias, activation)?;
            product
        } else {
            let z = product.broadcast_add(&param(&self.bias, mode))?;
            match activation {
                Activation::None => z,
                Activation::GeluErf => z.gelu_erf()?,
                Activation::GeluTanh => z.gelu()?,
                Activation::Relu => z.relu()?,
            }
        };
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = self.weight.dim(0)?;
        y.reshape(out)
    }
}

struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn load(vb: &VarBuilder, name: &str, size: usize, eps: f64) -> candle_core::Result<Self> {
        let vb = vb.pp(name);
        Ok(LayerNorm {
            weight: vb.get_with_hints(size, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", Init::Const(0.0))?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        match mode {
            Mode::Infer => candle_nn::ops::layer_norm(
                x,
                &param(&self.weight, mode),
                &param(&self.bias, mode),
                self.eps as f32,
            ),
            Mode::Train => {
                // candle-nn's fused layer norm has no backward pass: spell it out.
                let mean = x.mean_keepdim(D::Minus1)?;
                let centred = x.broadcast_sub(&mean)?;
                let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
                let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
                normed
                    .broadcast_mul(&self.weight)?
                    .broadcast_add(&self.bias)
            }
        }
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// A BERT encoder: embeddings and transformer layers (no pooler; pooling is the caller's).
pub struct Bert {
    config: BertConfig,
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    token_type_embeddings: Tensor,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    head_size: usize,
}

impl Bert {
    /// Builds the encoder's weights in `vb` (fresh ones are initialised; load real ones into the
    /// [`VarMap`] afterwards with [`VarMap::load`]). Names follow Hugging Face's `BertModel`.
    pub fn new(vb: &VarBuilder, config: &BertConfig) -> Result<Bert, MlError> {
        config.check()?;
        let h = config.hidden_size;
        let emb = vb.pp("embeddings");
        let init = Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let word_embeddings =
            emb.get_with_hints((config.vocab_size, h), "word_embeddings.weight", init)?;
        let position_embeddings = emb.get_with_hints(
            (config.max_position_embeddings, h),
            "position_embeddings.weight",
            init,
        )?;
        let token_type_embeddings = emb.get_with_hints(
            (config.type_vocab_size, h),
            "token_type_embeddings.weight",
            init,
        )?;
        let embedding_norm = LayerNorm::load(&emb, "LayerNorm", h, config.layer_norm_eps)?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let l = vb.pp(format!("encoder.layer.{i}"));
            let att = l.pp("attention");
            layers.push(Layer {
                query: Linear::load(&att.pp("self"), "query", h, h)?,
                key: Linear::load(&att.pp("self"), "key", h, h)?,
                value: Linear::load(&att.pp("self"), "value", h, h)?,
                attention_out: Linear::load(&att.pp("output"), "dense", h, h)?,
                attention_norm: LayerNorm::load(
                    &att.pp("output"),
                    "LayerNorm",
                    h,
                    config.layer_norm_eps,
                )?,
                intermediate: Linear::load(
                    &l.pp("intermediate"),
                    "dense",
                    h,
                    config.intermediate_size,
                )?,
                output: Linear::load(&l.pp("output"), "dense", config.intermediate_size, h)?,
                output_norm: LayerNorm::load(
                    &l.pp("output"),
                    "LayerNorm",
                    h,
                    config.layer_norm_eps,
                )?,
            });
        }
        Ok(Bert {
            config: config.clone(),
            word_embeddings,
            position_embeddings,
            token_type_embeddings,
            embedding_norm,
            layers,
            heads: config.num_attention_heads,
            head_size: h / config.num_attention_heads,
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    pub fn hidden_size(&self) -> usize {
        self.config.hidden_size
    }

    fn activation(&self) -> Activation {
        match self.config.hidden_act.as_str() {
            "relu" => Activation::Relu,
            "gelu_new" => Activation::GeluTanh,
            _ => Activation::GeluErf,
        }
    }

    /// `ids`, `mask`: (batch, tokens) u32; `mask` is 1 for real tokens. Returns the last hidden
    /// states, (batch, tokens, hidden).
    pub fn forward(&self, ids: &Tensor, mask: &Tensor, mode: Mode) -> candle_core::Result<Tensor> {
        let (batch, tokens) = ids.dims2()?;
        let h = self.config.hidden_size;
        let words = param(&self.word_embeddings, mode)
            .embedding(&ids.flatten_all()?)?
            .reshape((batch, tokens, h))?;
        let positions = param(&self.position_embeddings, mode).narrow(0, 0, tokens)?;
        // Single-segment input: token type 0 everywhere.
        let segment = param(&self.token_type_embeddings, mode).narrow(0, 0, 1)?;
        let x = words.broadcast_add(&positions)?.broadcast_add(&segment)?;
        let mut x = self.embedding_norm.forward(&x, mode)?;
        // Additive mask: 0 where attended, a large negative number on padding.
        let mask_bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e4)?;
        let bias = mask_bias.reshape((batch, 1, 1, tokens))?;
        let scale = 1.0 / (self.head_size as f64).sqrt();
        for layer in &self.layers {
            let q = layer.query.forward(&x, mode, Activation::None)?;
            let k = layer.key.forward(&x, mode, Activation::None)?;
            let v = layer.value.forward(&x, mode, Activation::None)?;
            let context = if fused(mode, &x) {
                kernels::attention(&q, &k, &v, &mask_bias, self.heads, scale as f32)?
            } else {
                let split = |t: Tensor| -> candle_core::Result<Tensor> {
                    t.reshape((batch, tokens, self.heads, self.head_size))?
                        .transpose(1, 2)?
                        .contiguous()
                };
                let (q, k, v) = (split(q)?, split(k)?, split(v)?);
                let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
                let probs = match mode {
                    Mode::Infer => candle_nn::ops::softmax_last_dim(&scores)?,
                    // The generic softmax is built from differentiable ops.
                    Mode::Train => candle_nn::ops::softmax(&scores, D::Minus1)?,
                };
                probs
                    .matmul(&v)?
                    .transpose(1, 2)?
                    .contiguous()?
                    .reshape((batch, tokens, h))?
            };
            let attended = layer.attention_norm.forward(
                &(layer
                    .attention_out
                    .forward(&context, mode, Activation::None)?
                    + &x)?,
                mode,
            )?;
            let inner = layer
                .intermediate
                .forward(&attended, mode, self.activation())?;
            x = layer.output_norm.forward(
                &(layer.output.forward(&inner, mode, Activation::None)? + &attended)?,
                mode,
            )?;
        }
        Ok(x)
    }
}

/// Mean of the hidden states over real tokens, L2-normalised: (batch, hidden).
pub fn mean_pool_normalized(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    mean.broadcast_div(&norm)
}

/// A fresh [`VarMap`]-backed builder on `device`.
pub fn var_builder(varmap: &VarMap, device: &Device) -> VarBuilder<'static> {
    VarBuilder::from_varmap(varmap, DType::F32, device)
}

/// Overwrites every weight in `varmap` with values drawn from `seed` (normal, σ = 0.02; layer
/// norms at weight 1, bias 0), so a freshly built model is the same on every run: candle's CPU
/// generator cannot be seeded.
pub fn reinitialize(varmap: &VarMap, seed: u64) -> Result<(), MlError> {
    let vars = varmap
        .data()
        .lock()
        .map_err(|_| MlError::Training("weights lock poisoned".into()))?;
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut rng = SplitMix64::new(seed);
    for name in names {
        let var = &vars[name];
        let n = var.elem_count();
        let values: Vec<f32> = if name.ends_with("LayerNorm.weight") {
            vec![1.0; n]
        } else if name.ends_with("LayerNorm.bias") {
            vec![0.0; n]
        } else {
            (0..n)
                .map(|_| {
                    // Box–Muller from two uniforms in (0, 1].
                    let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
                    let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                    (0.02 * z) as f32
                })
                .collect()
        };
        var.set(&Tensor::from_vec(values, var.shape(), var.device())?)?;
    }
    Ok(())
}
