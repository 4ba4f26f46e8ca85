//! Few-shot classification in the manner of SetFit (Tunstall et al. 2022): the encoder is first
//! tuned contrastively so that texts with the same label embed close together and texts with
//! different labels apart, then the cross-validated logistic head ([`crate::train_head_cv`]) is
//! fitted on the tuned embeddings.
//!
//! SetFit draws explicit pairs (one with the same label, one with another, per item and
//! iteration) and regresses their cosine on 1 or 0. Here every pair inside a batch of labelled
//! texts counts: each text is encoded once per batch and a batch of `b` texts gives
//! `b(b-1)/2` pairs, so one epoch gives each text `b - 1` partners at the cost of one forward
//! and backward pass per text, which is what makes this affordable on a CPU. Same-label and
//! different-label pairs weigh half the loss each (as SetFit's balanced pair sampling does), so a
//! batch dominated by one class still teaches both directions.

use std::ops::ControlFlow;

use candle_core::Tensor;
use candle_nn::Optimizer;
use concord_agreement::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use crate::bert::Mode;
use crate::finetune::adamw;
use crate::head::LinearHead;
use crate::logistic::{train_head_cv, CvHeadParams, CvReport};
use crate::{Encoder, MlError};

/// Settings of [`setfit`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetFitParams {
    /// Passes over the labelled texts; each gives every text `batch_size - 1` partners.
    pub epochs: usize,
    pub batch_size: usize,
    /// The encoder's AdamW learning rate. SetFit's 2e-5 moves MiniLM too little in the few
    /// steps a few-shot set gives; 1.5e-4 was the best of 2e-5, 6e-5 and 1.5e-4 on the
    /// development tweets (50 labels: 0.685, 0.718, 0.732 on 1,000 test items).
    pub learning_rate: f64,
    pub seed: u64,
    /// The head fitted on the tuned embeddings.
    pub head: CvHeadParams,
}

impl Default for SetFitParams {
    fn default() -> Self {
        SetFitParams {
            // 2 epochs of batches of 11: about 20 partners per labelled text.
            epochs: 2,
            batch_size: 11,
            learning_rate: 1.5e-4,
            seed: 17,
            head: CvHeadParams::default(),
        }
    }
}

/// What [`setfit`] returns besides the tuned encoder (tuned in place).
#[derive(Debug, Clone, PartialEq)]
pub struct SetFitOutcome {
    pub head: LinearHead,
    pub report: CvReport,
    /// Mean contrastive loss of each epoch.
    pub epoch_losses: Vec<f32>,
}

/// Loss weights of every ordered pair (i, j), i ≠ j, of a batch labelled `labels`, row-major
/// (b × b): same-label pairs share one half of the weight and different-label pairs the other
/// (all of it when one kind is missing); the diagonal is zero. Also the target cosine of each
/// pair: 1 for the same label, 0 otherwise.
fn pair_weights(labels: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let b = labels.len();
    let mut same = 0usize;
    let mut different = 0usize;
    for i in 0..b {
        for j in 0..b {
            if i != j {
                if labels[i] == labels[j] {
                    same += 1;
                } else {
                    different += 1;
                }
            }
        }
    }
    let kinds = usize::from(same > 0) + usize::from(different > 0);
    let mut weights = vec![0f32; b * b];
    let mut targets = vec![0f32; b * b];
    for i in 0..b {
        for j in 0..b {
            if i == j {
                continue;
            }
            let is_same = labels[i] == labels[j];
            let count = if is_same { same } else { different };
            weights[i * b + j] = 1.0 / (kinds as f32 * count as f32);
            targets[i * b + j] = f32::from(u8::from(is_same));
        }
    }
    (weights, targets)
}

/// Tunes `encoder` in place on `texts` labelled `y` (contrastively, see the module), then
/// fits the cross-validated head on the tuned embeddings. `progress` gets (step, steps) after
/// each batch; `Break` stops with [`MlError::Cancelled`] (the encoder is then partly tuned:
/// callers tune a copy they can drop).
pub fn setfit(
    encoder: &Encoder,
    texts: &[&str],
    y: &[usize],
    classes: usize,
    params: &SetFitParams,
    progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
) -> Result<SetFitOutcome, MlError> {
    if texts.is_empty() || texts.len() != y.len() {
        return Err(MlError::Training(format!(
            "need as many labels as texts, and at least one (got {} texts, {} labels)",
            texts.len(),
            y.len()
        )));
    }
    if let Some(bad) = y.iter().find(|&&c| c >= classes) {
        return Err(MlError::Training(format!("class {bad} out of range")));
    }
    // A batch of one has no pair.
    let batch_size = params.batch_size.max(2);
    let tokens = encoder.tokenize(texts)?;
    let device = encoder.device();
    let mut optimizer = adamw(encoder.varmap().all_vars(), params.learning_rate)?;
    let mut rng = SplitMix64::new(params.seed);
    let steps = params.epochs * tokens.len().div_ceil(batch_size);
    let mut step = 0;
    let mut epoch_losses = Vec::with_capacity(params.epochs);
    for _ in 0..params.epochs {
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        rng.shuffle(&mut order);
        let (mut total, mut batches) = (0f32, 0usize);
        for chunk in order.chunks(batch_size) {
            step += 1;
            if chunk.len() >= 2 {
                let batch: Vec<&[u32]> = chunk.iter().map(|&i| tokens[i].as_slice()).collect();
                let labels: Vec<usize> = chunk.iter().map(|&i| y[i]).collect();
                let b = chunk.len();
                let (weights, targets) = pair_weights(&labels);
                let weights = Tensor::from_vec(weights, (b, b), device)?;
                let targets = Tensor::from_vec(targets, (b, b), device)?;
                // Rows are L2-normalised, so their products are the cosines.
                let pooled = encoder.embed_batch(&batch, Mode::Train)?;
                let cosines = pooled.matmul(&pooled.t()?)?;
                let loss = ((cosines - targets)?.sqr()? * weights)?.sum_all()?;
                optimizer.backward_step(&loss)?;
                total += loss.to_scalar::<f32>()?;
                batches += 1;
            }
            if progress(step, steps).is_break() {
                return Err(MlError::Cancelled);
            }
        }
        epoch_losses.push(total / batches.max(1) as f32);
    }
    let embeddings = encoder.embed_tokens(&tokens, 32, &mut |_| {})?;
    let (head, report) = train_head_cv(&embeddings, y, classes, &params.head)?;
    Ok(SetFitOutcome {
        head,
        report,
        epoch_losses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny_bert::tiny_encoder;
    use crate::vector::{argmax, dot};

    const WORDS: &[&str] = &[
        "[PAD]", "[CLS]", "[SEP]", "[UNK]", "good", "great", "fine", "bad", "awful", "poor", "the",
        "film", "was", "food", "really", "very", "a", "day", "service",
    ];

    /// The tiny BERT over `WORDS`, reading inputs of at most 16 tokens.
    fn tiny() -> Encoder {
        tiny_encoder(WORDS, 16)
    }

    /// Mean cosine of same-label pairs minus that of different-label pairs.
    fn separation(encoder: &Encoder, texts: &[&str], y: &[usize]) -> f32 {
        let e = encoder.embed(texts, 8, &mut |_| {}).unwrap();
        let (mut same, mut ns, mut different, mut nd) = (0.0, 0, 0.0, 0);
        for i in 0..e.len() {
            for j in i + 1..e.len() {
                if y[i] == y[j] {
                    same += dot(&e[i], &e[j]);
                    ns += 1;
                } else {
                    different += dot(&e[i], &e[j]);
                    nd += 1;
                }
            }
        }
        same / ns as f32 - different / nd as f32
    }

    #[test]
    fn setfit_pulls_same_labels_together_and_fits_a_head() {
        let texts = [
            "good film",
            "the food was great",
            "a fine day",
            "really good service",
            "very great film",
            "the day was fine",
            "bad film",
            "the food was awful",
            "a poor day",
            "really bad service",
            "very awful film",
            "the day was poor",
        ];
        let y = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1];
        let encoder = tiny();
        let before = separation(&encoder, &texts, &y);
        let params = SetFitParams {
            epochs: 15,
            batch_size: 6,
            learning_rate: 3e-3,
            ..SetFitParams::default()
        };
        let mut steps_seen = 0;
        let outcome = setfit(&encoder, &texts, &y, 2, &params, &mut |step, steps| {
            assert_eq!(steps, 30);
            steps_seen = step;
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(steps_seen, 30);
        let after = separation(&encoder, &texts, &y);
        assert!(after > before + 0.2, "separation {before} -> {after}");
        let losses = &outcome.epoch_losses;
        assert!(losses[losses.len() - 1] < losses[0], "{losses:?}");
        let e = encoder.embed(&texts, 8, &mut |_| {}).unwrap();
        let right = outcome
            .head
            .predict(&e)
            .iter()
            .zip(&y)
            .filter(|(p, &c)| argmax(p) == c)
            .count();
        assert!(right >= 11, "{right} of 12");
        // Cancelling stops it.
        let cancelled = setfit(&tiny(), &texts, &y, 2, &params, &mut |_, _| {
            ControlFlow::Break(())
        });
        assert!(matches!(cancelled, Err(MlError::Cancelled)));
    }

    #[test]
    fn setfit_pairs_weigh_same_and_different_labels_equally() {
        let (w, t) = pair_weights(&[0, 0, 0, 1]);
        let b = 4;
        let mut same = 0.0;
        let mut different = 0.0;
        for i in 0..b {
            assert_eq!(w[i * b + i], 0.0);
            for j in 0..b {
                if i != j {
                    if t[i * b + j] == 1.0 {
                        same += w[i * b + j];
                    } else {
                        different += w[i * b + j];
                    }
                }
            }
        }
        assert!((same - 0.5).abs() < 1e-6 && (different - 0.5).abs() < 1e-6);
        // One kind only: it takes all of the weight.
        let (w, t) = pair_weights(&[2, 2, 2]);
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(t
            .iter()
            .enumerate()
            .all(|(k, &v)| v == f32::from(u8::from(k % 4 != 0))));
    }
}
