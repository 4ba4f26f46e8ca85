//! Full fine-tuning: the encoder and a softmax head trained together on labelled texts, in the
//! differentiable mode of [`crate::Bert`] (candle's fused layer norm and softmax would stop the
//! gradients). The encoder gets a small learning rate, the fresh head a large one.

use candle_core::{DType, Tensor};
use candle_nn::{AdamW, Init, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use concord_agreement::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::bert::Mode;
use crate::head::{class_weights, weighted_cross_entropy, LinearHead};
use crate::{Encoder, MlError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneParams {
    pub epochs: usize,
    pub batch_size: usize,
    pub encoder_learning_rate: f64,
    pub head_learning_rate: f64,
    pub seed: u64,
}

impl Default for FineTuneParams {
    fn default() -> Self {
        FineTuneParams {
            epochs: 3,
            batch_size: 16,
            encoder_learning_rate: 3e-5,
            head_learning_rate: 1e-2,
            seed: 17,
        }
    }
}

/// AdamW over `vars` at learning rate `lr` with the weight decay every tuning of the encoder
/// uses (here and in [`crate::setfit`]).
pub(crate) fn adamw(vars: Vec<candle_core::Var>, lr: f64) -> Result<AdamW, MlError> {
    Ok(AdamW::new(
        vars,
        ParamsAdamW {
            lr,
            weight_decay: 0.01,
            ..ParamsAdamW::default()
        },
    )?)
}

/// Fine-tunes `encoder` in place (its variables change) with a new head on `tokens` labelled
/// `y`. Returns the head and the mean loss of each epoch. `progress` gets (step, steps) after
/// each step; returning `Break` stops the training with [`MlError::Cancelled`].
pub fn fine_tune(
    encoder: &Encoder,
    tokens: &[Vec<u32>],
    y: &[usize],
    classes: usize,
    params: &FineTuneParams,
    progress: &mut dyn FnMut(usize, usize) -> std::ops::ControlFlow<()>,
) -> Result<(LinearHead, Vec<f32>), MlError> {
    if tokens.is_empty() || tokens.len() != y.len() {
        return Err(MlError::Training(format!(
            "need as many labels as texts, and at least one (got {} texts, {} labels)",
            tokens.len(),
            y.len()
        )));
    }
    let device = encoder.device();
    let dimension = encoder.dimension();
    let head_vars = VarMap::new();
    let vb = VarBuilder::from_varmap(&head_vars, DType::F32, device);
    let w = vb.get_with_hints((classes, dimension), "weight", Init::Const(0.0))?;
    let b = vb.get_with_hints(classes, "bias", Init::Const(0.0))?;
    let weights = Tensor::from_vec(class_weights(y, classes), classes, device)?;
    let mut encoder_opt = adamw(encoder.varmap().all_vars(), params.encoder_learning_rate)?;
    let mut head_opt = adamw(head_vars.all_vars(), params.head_learning_rate)?;
    let mut rng = SplitMix64::new(params.seed);
    let batch_size = params.batch_size.max(1);
    let steps = params.epochs * tokens.len().div_ceil(batch_size);
    let mut step = 0;
    let mut epoch_losses = Vec::with_capacity(params.epochs);
    for _ in 0..params.epochs {
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        rng.shuffle(&mut order);
        let (mut total, mut batches) = (0f32, 0usize);
        for chunk in order.chunks(batch_size) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| tokens[i].as_slice()).collect();
            let pooled = encoder.embed_batch(&batch, Mode::Train)?;
            let logits = pooled.matmul(&w.t()?)?.broadcast_add(&b)?;
            let targets = Tensor::from_vec(
                chunk.iter().map(|&i| y[i] as u32).collect::<Vec<_>>(),
                chunk.len(),
                device,
            )?;
            let loss = weighted_cross_entropy(&logits, &targets, Some(&weights))?;
            let grads = loss.backward()?;
            encoder_opt.step(&grads)?;
            head_opt.step(&grads)?;
            total += loss.to_scalar::<f32>()?;
            batches += 1;
            step += 1;
            if progress(step, steps).is_break() {
                return Err(MlError::Cancelled);
            }
        }
        epoch_losses.push(total / batches.max(1) as f32);
    }
    Ok((
        LinearHead {
            classes,
            dimension,
            weight: w.flatten_all()?.to_vec1()?,
            bias: b.to_vec1()?,
        },
        epoch_losses,
    ))
}
