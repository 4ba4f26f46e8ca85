//! Full fine-tuning for tagging: the encoder and the tag head trained together in the
//! differentiable mode of [`crate::Bert`], with AdamW, a small learning rate for the encoder
//! and a large one for the fresh head, both warmed up linearly and then decayed linearly to
//! zero at the last step (the usual schedule for fine-tuning BERT on tagging). The head can
//! start from one trained on frozen features (linear probing, then fine-tuning: Kumar et al.,
//! ICLR 2022), so the first steps do not pull the encoder towards what a random head wants.

use std::ops::{ControlFlow, Range};

use candle_core::{Tensor, D};
use concord_agreement::rng::SplitMix64;
use concord_domain::bio::{TagSet, TokenSpan};
use serde::{Deserialize, Serialize};

use super::head::{HeadVars, TokenHead};
use super::{
    gold_tags, prepare, tag_weights, word_features, FeatureSettings, Pooling, TokenClassifier,
    TokenHeadParams,
};
use crate::bert::Mode;
use crate::finetune::{JointOptimizer, LearningRateSchedule};
use crate::head::weighted_cross_entropy;
use crate::{Encoder, MlError};

/// Settings for [`fine_tune_tokens`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenFineTuneParams {
    pub epochs: usize,
    /// Encoder windows (an item, or a part of a long one) per step.
    pub batch_size: usize,
    /// Peak learning rate of the encoder's weights.
    pub encoder_learning_rate: f64,
    /// Peak learning rate of the head's weights.
    pub head_learning_rate: f64,
    /// Loss weight of words tagged `O` (every other tag weighs 1).
    pub o_weight: f32,
    /// Hidden ReLU units of the head; 0 for a linear head.
    pub hidden: usize,
    /// Share of all steps over which the learning rates rise from zero to their peak.
    pub warmup: f64,
    /// When above 0, [`fine_tune_tokens`] first trains the head alone on frozen features for
    /// this many epochs ([`TokenClassifier::train`] with [`TokenHeadParams`]' defaults for the
    /// rest), and fine-tuning starts from that head; at 0 it starts from a zero head.
    pub probe_epochs: usize,
    pub seed: u64,
}

impl Default for TokenFineTuneParams {
    fn default() -> Self {
        TokenFineTuneParams {
            epochs: 3,
            batch_size: 16,
            encoder_learning_rate: 1e-4,
            head_learning_rate: 1e-3,
            o_weight: 0.25,
            hidden: 256,
            warmup: 0.1,
            probe_epochs: 30,
            seed: 17,
        }
    }
}

/// Windows per batch when computing the probe's frozen features.
const PROBE_BATCH: usize = 64;

/// One encoder input with what training needs of its words.
struct Unit {
    ids: Vec<u32>,
    /// Per word read from this window, the positions of its pieces.
    positions: Vec<Range<usize>>,
    /// Shape rows of those words, concatenated.
    shapes: Vec<f32>,
    targets: Vec<u32>,
}

/// A fine-tuning run, one epoch at a time (so a caller can look at the model between
/// epochs). [`fine_tune_tokens`] runs all epochs.
pub struct TokenFineTuning<'e> {
    encoder: &'e Encoder,
    labels: Vec<String>,
    features: FeatureSettings,
    units: Vec<Unit>,
    head: HeadVars,
    tag_weights: Tensor,
    optimizer: JointOptimizer,
    params: TokenFineTuneParams,
    rng: SplitMix64,
    epochs_done: usize,
}

impl<'e> TokenFineTuning<'e> {
    /// Prepares fine-tuning of `encoder` (its variables change with every step) with a head
    /// on `items` (words) and their gold `spans` (word indices; labels index `labels`). The
    /// head starts from `start` when given (a head trained on frozen `features` of this
    /// encoder; its hidden size wins over `params.hidden`), else from zero.
    pub fn new<S: AsRef<str>>(
        encoder: &'e Encoder,
        labels: &[String],
        features: FeatureSettings,
        items: &[Vec<S>],
        spans: &[Vec<TokenSpan>],
        params: &TokenFineTuneParams,
        start: Option<&TokenHead>,
    ) -> Result<TokenFineTuning<'e>, MlError> {
        if items.len() != spans.len() {
            return Err(MlError::Training(format!(
                "{} items but {} lists of spans",
                items.len(),
                spans.len()
            )));
        }
        let tag_set = TagSet::new(labels);
        let special = encoder.special_tokens()?;
        let shape_width = features.shape_dimension();
        let mut units = Vec::new();
        for (i, (words, gold)) in items.iter().zip(spans).enumerate() {
            let tags = gold_tags(&tag_set, i, words.len(), gold)?;
            let prepared = prepare(encoder, words, &features, &special)?;
            for window in prepared.windows {
                if window.words.is_empty() {
                    continue;
                }
                let mut unit = Unit {
                    ids: window.ids,
                    positions: Vec::with_capacity(window.words.len()),
                    shapes: Vec::with_capacity(window.words.len() * shape_width),
                    targets: Vec::with_capacity(window.words.len()),
                };
                for (word, positions) in window.words {
                    unit.positions.push(positions);
                    unit.shapes.extend_from_slice(&prepared.shapes[word]);
                    unit.targets.push(tags[word] as u32);
                }
                units.push(unit);
            }
        }
        if units.is_empty() {
            return Err(MlError::Training("no words to train on".into()));
        }
        let device = encoder.device();
        let tags = tag_set.len();
        let inputs = features.dimension(encoder.dimension());
        let head = match start {
            Some(head) if head.inputs != inputs || head.tags != tags => {
                return Err(MlError::Training(format!(
                    "the starting head takes {} features for {} tags; fine-tuning needs {inputs} for {tags}",
                    head.inputs, head.tags
                )))
            }
            Some(head) => HeadVars::from_head(head, device)?,
            None => HeadVars::new(inputs, params.hidden, tags, params.seed, device)?,
        };
        let batch_size = params.batch_size.max(1);
        let optimizer = JointOptimizer::new(
            encoder.varmap().all_vars(),
            params.encoder_learning_rate,
            head.varmap.all_vars(),
            params.head_learning_rate,
            LearningRateSchedule::WarmupLinearDecay {
                warmup: params.warmup,
            },
            params.epochs * units.len().div_ceil(batch_size),
        )?;
        Ok(TokenFineTuning {
            encoder,
            labels: labels.to_vec(),
            features,
            units,
            head,
            tag_weights: Tensor::from_vec(tag_weights(tags, params.o_weight), tags, device)?,
            optimizer,
            params: params.clone(),
            rng: SplitMix64::new(params.seed),
            epochs_done: 0,
        })
    }

    /// Optimiser steps in all `params.epochs` epochs.
    pub fn steps(&self) -> usize {
        self.optimizer.steps()
    }

    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// One pass over the training windows in a seeded random order. Returns the epoch's mean
    /// loss. `progress` gets (step, steps) after each step, counted over all epochs; returning
    /// `Break` stops with [`MlError::Cancelled`].
    pub fn run_epoch(
        &mut self,
        progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
    ) -> Result<f32, MlError> {
        let mut order: Vec<usize> = (0..self.units.len()).collect();
        self.rng.shuffle(&mut order);
        let batch_size = self.params.batch_size.max(1);
        let (mut total, mut batches) = (0f32, 0usize);
        for chunk in order.chunks(batch_size) {
            let loss = self.loss(chunk)?;
            total += self.optimizer.step(&loss, progress)?;
            batches += 1;
        }
        self.epochs_done += 1;
        Ok(total / batches.max(1) as f32)
    }

    /// The weighted cross-entropy of the words of the windows `chunk`, differentiable.
    fn loss(&self, chunk: &[usize]) -> Result<Tensor, MlError> {
        let device = self.encoder.device();
        let units: Vec<&Unit> = chunk.iter().map(|&u| &self.units[u]).collect();
        let batch: Vec<&[u32]> = units.iter().map(|u| u.ids.as_slice()).collect();
        let states = self.encoder.hidden_states(&batch, Mode::Train)?;
        let (b, tokens, hidden) = states.dims3()?;
        let flat = states.reshape((b * tokens, hidden))?;
        let words: usize = units.iter().map(|u| u.positions.len()).sum();
        let pooled = match self.features.pooling {
            Pooling::First => {
                let index: Vec<u32> = units
                    .iter()
                    .enumerate()
                    .flat_map(|(k, u)| {
                        u.positions
                            .iter()
                            .map(move |p| (k * tokens + p.start) as u32)
                    })
                    .collect();
                flat.index_select(&Tensor::from_vec(index, words, device)?, 0)?
            }
            Pooling::Mean => {
                // A (words × batch·tokens) averaging matrix: one product pools every word.
                let mut weights = vec![0f32; words * b * tokens];
                let mut row = 0;
                for (k, u) in units.iter().enumerate() {
                    for p in &u.positions {
                        let share = 1.0 / p.len() as f32;
                        for pos in p.clone() {
                            weights[row * b * tokens + k * tokens + pos] = share;
                        }
                        row += 1;
                    }
                }
                Tensor::from_vec(weights, (words, b * tokens), device)?.matmul(&flat)?
            }
        };
        let shape_width = self.features.shape_dimension();
        let x = if shape_width > 0 {
            let shapes: Vec<f32> = units
                .iter()
                .flat_map(|u| u.shapes.iter().copied())
                .collect();
            let shapes = Tensor::from_vec(shapes, (words, shape_width), device)?;
            Tensor::cat(&[&pooled, &shapes], D::Minus1)?
        } else {
            pooled
        };
        let targets: Vec<u32> = units
            .iter()
            .flat_map(|u| u.targets.iter().copied())
            .collect();
        let targets = Tensor::from_vec(targets, words, device)?;
        Ok(weighted_cross_entropy(
            &self.head.forward(&x)?,
            &targets,
            Some(&self.tag_weights),
        )?)
    }

    /// The classifier as trained so far (use it with the encoder this run changes).
    pub fn classifier(&self) -> Result<TokenClassifier, MlError> {
        Ok(TokenClassifier {
            labels: self.labels.clone(),
            features: self.features,
            head: self.head.to_head()?,
        })
    }
}

/// Fine-tunes `encoder` in place (its variables change) with a tag head on `items` (words)
/// and their gold `spans`, for `params.epochs` epochs, after training the head alone on
/// frozen features when `params.probe_epochs > 0`. Returns the classifier and the mean loss
/// of each fine-tuning epoch. `progress` gets (step, steps) after each step, and (0, steps)
/// once the head is probed; returning `Break` stops the training with
/// [`MlError::Cancelled`].
pub fn fine_tune_tokens<S: AsRef<str>>(
    encoder: &Encoder,
    labels: &[String],
    features: FeatureSettings,
    items: &[Vec<S>],
    spans: &[Vec<TokenSpan>],
    params: &TokenFineTuneParams,
    progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
) -> Result<(TokenClassifier, Vec<f32>), MlError> {
    let start = if params.probe_epochs > 0 {
        let x = word_features(encoder, items, &features, PROBE_BATCH, &mut |_, _| {})?;
        let probe = TokenHeadParams {
            epochs: params.probe_epochs,
            o_weight: params.o_weight,
            hidden: params.hidden,
            seed: params.seed,
            ..TokenHeadParams::default()
        };
        Some(TokenClassifier::train(labels, features, &x, spans, &probe, encoder.device())?.head)
    } else {
        None
    };
    let mut run = TokenFineTuning::new(
        encoder,
        labels,
        features,
        items,
        spans,
        params,
        start.as_ref(),
    )?;
    if progress(0, run.steps()).is_break() {
        return Err(MlError::Cancelled);
    }
    let mut losses = Vec::with_capacity(params.epochs);
    for _ in 0..params.epochs {
        losses.push(run.run_epoch(progress)?);
    }
    Ok((run.classifier()?, losses))
}
