//! The tag head: a linear softmax layer, or one hidden ReLU layer before it, over a word's
//! features. Its weights are plain vectors, so it is stored as JSON like [`crate::LinearHead`].

use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};
use concord_agreement::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::MlError;

/// Weights of the tag head. With `hidden == 0` it is linear: `logits = weight · x + bias`
/// (`weight` is tags × inputs); otherwise `h = relu(hidden_weight · x + hidden_bias)`
/// (`hidden_weight` is hidden × inputs) and `logits = weight · h + bias` (tags × hidden).
/// Matrices are row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenHead {
    pub inputs: usize,
    pub hidden: usize,
    pub tags: usize,
    pub hidden_weight: Vec<f32>,
    pub hidden_bias: Vec<f32>,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// The head's weights as trainable variables.
pub(crate) struct HeadVars {
    pub varmap: VarMap,
    hidden: Option<(Tensor, Tensor)>,
    weight: Tensor,
    bias: Tensor,
    inputs: usize,
    tags: usize,
}

impl HeadVars {
    /// Fresh weights: the hidden layer drawn from `seed` (Glorot-uniform, so its units differ),
    /// the output layer at zero (every tag equally likely before training).
    pub fn new(
        inputs: usize,
        hidden: usize,
        tags: usize,
        seed: u64,
        device: &Device,
    ) -> Result<HeadVars, MlError> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let hidden_layer = if hidden > 0 {
            let w = vb.get_with_hints((hidden, inputs), "hidden.weight", Init::Const(0.0))?;
            let b = vb.get_with_hints(hidden, "hidden.bias", Init::Const(0.0))?;
            let bound = (6.0 / (inputs + hidden) as f64).sqrt();
            let mut rng = SplitMix64::new(seed);
            let values: Vec<f32> = (0..hidden * inputs)
                .map(|_| {
                    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                    ((2.0 * u - 1.0) * bound) as f32
                })
                .collect();
            let vars = varmap
                .data()
                .lock()
                .map_err(|_| MlError::Training("head weights lock poisoned".into()))?;
            if let Some(var) = vars.get("hidden.weight") {
                var.set(&Tensor::from_vec(values, (hidden, inputs), device)?)?;
            }
            drop(vars);
            Some((w, b))
        } else {
            None
        };
        let width = if hidden > 0 { hidden } else { inputs };
        let weight = vb.get_with_hints((tags, width), "weight", Init::Const(0.0))?;
        let bias = vb.get_with_hints(tags, "bias", Init::Const(0.0))?;
        Ok(HeadVars {
            varmap,
            hidden: hidden_layer,
            weight,
            bias,
            inputs,
            tags,
        })
    }

    /// Trainable variables holding a trained head's weights (to train it further).
    pub fn from_head(head: &TokenHead, device: &Device) -> Result<HeadVars, MlError> {
        head.check()?;
        let vars = HeadVars::new(head.inputs, head.hidden, head.tags, 0, device)?;
        let width = if head.hidden > 0 {
            head.hidden
        } else {
            head.inputs
        };
        {
            let data = vars
                .varmap
                .data()
                .lock()
                .map_err(|_| MlError::Training("head weights lock poisoned".into()))?;
            let set = |name: &str, values: &[f32], shape: &[usize]| -> Result<(), MlError> {
                if let Some(var) = data.get(name) {
                    var.set(&Tensor::from_slice(values, shape, device)?)?;
                }
                Ok(())
            };
            if head.hidden > 0 {
                set(
                    "hidden.weight",
                    &head.hidden_weight,
                    &[head.hidden, head.inputs],
                )?;
                set("hidden.bias", &head.hidden_bias, &[head.hidden])?;
            }
            set("weight", &head.weight, &[head.tags, width])?;
            set("bias", &head.bias, &[head.tags])?;
        }
        Ok(vars)
    }

    /// Logits (rows × tags) of features (rows × inputs), differentiable.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let x = match &self.hidden {
            Some((w, b)) => x.matmul(&w.t()?)?.broadcast_add(b)?.relu()?,
            None => x.clone(),
        };
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }

    /// The weights as they are now.
    pub fn to_head(&self) -> Result<TokenHead, MlError> {
        let (hidden, hidden_weight, hidden_bias) = match &self.hidden {
            Some((w, b)) => (w.dim(0)?, w.flatten_all()?.to_vec1()?, b.to_vec1()?),
            None => (0, Vec::new(), Vec::new()),
        };
        Ok(TokenHead {
            inputs: self.inputs,
            hidden,
            tags: self.tags,
            hidden_weight,
            hidden_bias,
            weight: self.weight.flatten_all()?.to_vec1()?,
            bias: self.bias.to_vec1()?,
        })
    }
}

impl TokenHead {
    /// Whether the weight vectors have the sizes the dimensions say (a stored head read
    /// back is checked before use).
    pub fn check(&self) -> Result<(), MlError> {
        let width = if self.hidden > 0 {
            self.hidden
        } else {
            self.inputs
        };
        let ok = self.hidden_weight.len() == self.hidden * self.inputs
            && self.hidden_bias.len() == self.hidden
            && self.weight.len() == self.tags * width
            && self.bias.len() == self.tags;
        if ok {
            Ok(())
        } else {
            Err(MlError::Config(format!(
                "token head weights do not match its sizes ({} inputs, {} hidden, {} tags)",
                self.inputs, self.hidden, self.tags
            )))
        }
    }

    /// Tag probabilities (rows × tags) of feature rows (rows × inputs), computed with candle's
    /// matrix products on the CPU.
    pub fn probabilities(&self, x: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, MlError> {
        self.check()?;
        if x.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(bad) = x.iter().find(|r| r.len() != self.inputs) {
            return Err(MlError::Config(format!(
                "word features have {} values, the head takes {} (another encoder or feature setting?)",
                bad.len(),
                self.inputs
            )));
        }
        let device = Device::Cpu;
        let rows = crate::head::matrix(x, &device)?;
        let h = if self.hidden > 0 {
            let w = Tensor::from_slice(&self.hidden_weight, (self.hidden, self.inputs), &device)?;
            let b = Tensor::from_slice(&self.hidden_bias, self.hidden, &device)?;
            rows.matmul(&w.t()?)?.broadcast_add(&b)?.relu()?
        } else {
            rows
        };
        let width = if self.hidden > 0 {
            self.hidden
        } else {
            self.inputs
        };
        let w = Tensor::from_slice(&self.weight, (self.tags, width), &device)?;
        let b = Tensor::from_slice(&self.bias, self.tags, &device)?;
        let logits = h.matmul(&w.t()?)?.broadcast_add(&b)?;
        let probs = candle_nn::ops::softmax_last_dim(&logits)?;
        Ok(probs.to_vec2()?)
    }
}
