//! Full fine-tuning: the encoder and a softmax head trained together on labelled texts, in the
//! differentiable mode of [`crate::Bert`] (candle's fused layer norm and softmax would stop the
//! gradients). The encoder gets a small learning rate, the fresh head a large one.

use std::ops::ControlFlow;

use candle_core::{DType, Tensor, Var};
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
/// uses (here, in [`crate::setfit`] and through [`JointOptimizer`]).
pub(crate) fn adamw(vars: Vec<Var>, lr: f64) -> Result<AdamW, MlError> {
    Ok(AdamW::new(
        vars,
        ParamsAdamW {
            lr,
            weight_decay: 0.01,
            ..ParamsAdamW::default()
        },
    )?)
}

/// How the learning rates of a fine-tuning run move from step to step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum LearningRateSchedule {
    /// The peak rates at every step.
    Constant,
    /// A linear rise from zero over the `warmup` share of all steps, then a linear decay to
    /// zero at the last step of the last epoch (the usual schedule for fine-tuning BERT).
    WarmupLinearDecay { warmup: f64 },
}

impl LearningRateSchedule {
    /// The multiplier of the peak rates before step `step` (0-based) of a run of `steps`.
    fn factor(self, step: usize, steps: usize) -> f64 {
        match self {
            LearningRateSchedule::Constant => 1.0,
            LearningRateSchedule::WarmupLinearDecay { warmup } => {
                let warm = ((steps as f64 * warmup).round() as usize).max(1);
                if step < warm {
                    (step + 1) as f64 / warm as f64
                } else {
                    let rest = steps.saturating_sub(warm).max(1);
                    (steps.saturating_sub(step) as f64 / rest as f64).max(0.0)
                }
            }
        }
    }
}

/// The two AdamW of a run that tunes the encoder and a head together: each batch's loss is
/// backpropagated once and both step on its gradients, each at its peak rate times the
/// schedule's factor. Counts the steps for the run's `progress` callback.
pub(crate) struct JointOptimizer {
    encoder: AdamW,
    head: AdamW,
    encoder_learning_rate: f64,
    head_learning_rate: f64,
    schedule: LearningRateSchedule,
    steps_taken: usize,
    steps: usize,
}

impl JointOptimizer {
    /// Optimisers of `encoder_vars` and `head_vars` with peak rates `encoder_learning_rate`
    /// and `head_learning_rate`, for a run of `steps` steps.
    pub(crate) fn new(
        encoder_vars: Vec<Var>,
        encoder_learning_rate: f64,
        head_vars: Vec<Var>,
        head_learning_rate: f64,
        schedule: LearningRateSchedule,
        steps: usize,
    ) -> Result<JointOptimizer, MlError> {
        Ok(JointOptimizer {
            encoder: adamw(encoder_vars, encoder_learning_rate)?,
            head: adamw(head_vars, head_learning_rate)?,
            encoder_learning_rate,
            head_learning_rate,
            schedule,
            steps_taken: 0,
            steps,
        })
    }

    /// Steps in the whole run.
    pub(crate) fn steps(&self) -> usize {
        self.steps
    }

    /// One step on a batch's `loss` (differentiable through the encoder and the head): sets
    /// the scheduled rates, backpropagates, steps the encoder and then the head, and returns
    /// the loss's value. `progress` then gets (steps taken, steps); returning `Break` stops
    /// with [`MlError::Cancelled`].
    pub(crate) fn step(
        &mut self,
        loss: &Tensor,
        progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
    ) -> Result<f32, MlError> {
        // A constant schedule's factor is 1, so its rates stay exactly the peak ones.
        let factor = self.schedule.factor(self.steps_taken, self.steps);
        self.encoder
            .set_learning_rate(self.encoder_learning_rate * factor);
        self.head
            .set_learning_rate(self.head_learning_rate * factor);
        let grads = loss.backward()?;
        self.encoder.step(&grads)?;
        self.head.step(&grads)?;
        let value = loss.to_scalar::<f32>()?;
        self.steps_taken += 1;
        if progress(self.steps_taken, self.steps).is_break() {
            return Err(MlError::Cancelled);
        }
        Ok(value)
    }
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
    progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
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
    let batch_size = params.batch_size.max(1);
    let mut optimizer = JointOptimizer::new(
        encoder.varmap().all_vars(),
        params.encoder_learning_rate,
        head_vars.all_vars(),
        params.head_learning_rate,
        LearningRateSchedule::Constant,
        params.epochs * tokens.len().div_ceil(batch_size),
    )?;
    let mut rng = SplitMix64::new(params.seed);
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
            total += optimizer.step(&loss, progress)?;
            batches += 1;
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
