//! A softmax classification head over embeddings, trained with candle (full batch, AdamW,
//! class-balanced cross-entropy). It is small enough to live in the database as JSON.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{AdamW, Init, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::vector::{dot, softmax};
use crate::MlError;

/// Training settings for [`LinearHead::train`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadParams {
    pub epochs: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Weigh each class by the inverse of its frequency, so a rare label is not drowned.
    pub balance_classes: bool,
}

impl Default for HeadParams {
    fn default() -> Self {
        HeadParams {
            epochs: 100,
            learning_rate: 0.05,
            weight_decay: 0.01,
            balance_classes: false,
        }
    }
}

/// Weights of a linear softmax classifier: `weight` is (classes × dimension), row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearHead {
    pub classes: usize,
    pub dimension: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Rows of `x` as one (rows × dimension) tensor.
pub(crate) fn matrix(x: &[Vec<f32>], device: &Device) -> Result<Tensor, MlError> {
    let dimension = x.first().map_or(0, Vec::len);
    let flat: Vec<f32> = x.iter().flat_map(|r| r.iter().copied()).collect();
    Ok(Tensor::from_vec(flat, (x.len(), dimension), device)?)
}

/// Class-balanced (or plain) cross-entropy of `logits` (n × classes) against `targets`.
pub(crate) fn weighted_cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    class_weights: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = log_probs.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
    match class_weights {
        None => picked.mean_all()?.neg(),
        Some(w) => {
            let per_item = w.gather(targets, 0)?;
            let total = per_item.sum_all()?;
            (picked * per_item)?.sum_all()?.neg()?.broadcast_div(&total)
        }
    }
}

/// Inverse-frequency class weights, normalised to mean 1 over the items.
pub(crate) fn class_weights(y: &[usize], classes: usize) -> Vec<f32> {
    let mut counts = vec![0usize; classes];
    for &c in y {
        counts[c] += 1;
    }
    let present = counts.iter().filter(|&&n| n > 0).count().max(1);
    counts
        .iter()
        .map(|&n| {
            if n == 0 {
                0.0
            } else {
                y.len() as f32 / (present as f32 * n as f32)
            }
        })
        .collect()
}

impl LinearHead {
    /// Trains a head on embeddings `x` with class indices `y` (< `classes`).
    pub fn train(
        x: &[Vec<f32>],
        y: &[usize],
        classes: usize,
        params: &HeadParams,
        device: &Device,
    ) -> Result<LinearHead, MlError> {
        if x.is_empty() || x.len() != y.len() {
            return Err(MlError::Training(format!(
                "need as many labels as items, and at least one (got {} items, {} labels)",
                x.len(),
                y.len()
            )));
        }
        if let Some(bad) = y.iter().find(|&&c| c >= classes) {
            return Err(MlError::Training(format!("class {bad} out of range")));
        }
        let dimension = x[0].len();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let w = vb.get_with_hints((classes, dimension), "weight", Init::Const(0.0))?;
        let b = vb.get_with_hints(classes, "bias", Init::Const(0.0))?;
        let xs = matrix(x, device)?;
        let targets = Tensor::from_vec(
            y.iter().map(|&c| c as u32).collect::<Vec<_>>(),
            y.len(),
            device,
        )?;
        let weights = params
            .balance_classes
            .then(|| Tensor::from_vec(class_weights(y, classes), classes, device))
            .transpose()?;
        let mut optimizer = AdamW::new(
            varmap.all_vars(),
            ParamsAdamW {
                lr: params.learning_rate,
                weight_decay: params.weight_decay,
                ..ParamsAdamW::default()
            },
        )?;
        for _ in 0..params.epochs {
            let logits = xs.matmul(&w.t()?)?.broadcast_add(&b)?;
            let loss = weighted_cross_entropy(&logits, &targets, weights.as_ref())?;
            optimizer.backward_step(&loss)?;
        }
        Ok(LinearHead {
            classes,
            dimension,
            weight: w.flatten_all()?.to_vec1()?,
            bias: b.to_vec1()?,
        })
    }

    /// Class probabilities for each row of `x`.
    pub fn predict(&self, x: &[Vec<f32>]) -> Vec<Vec<f32>> {
        x.iter()
            .map(|row| {
                let logits: Vec<f32> = (0..self.classes)
                    .map(|c| {
                        let w = &self.weight[c * self.dimension..(c + 1) * self.dimension];
                        self.bias[c] + dot(w, row)
                    })
                    .collect();
                softmax(&logits)
            })
            .collect()
    }
}
