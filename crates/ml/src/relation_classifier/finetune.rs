//! Full fine-tuning of the relation classifier: the encoder and the pair head trained
//! together in the differentiable mode of [`crate::Bert`]. The head starts from the logistic
//! regression fitted on frozen features (linear probing, then fine-tuning, as the token
//! classifier does), and both learning rates warm up linearly and decay linearly to zero.
//!
//! A batch is a few items, all windows of each read in one pass, so a pair's words may come
//! from different windows of a long item exactly as prediction stitches them.

use std::ops::{ControlFlow, Range};

use candle_core::{DType, Tensor, D};
use candle_nn::{VarBuilder, VarMap};
use concord_agreement::rng::SplitMix64;
use serde::{Deserialize, Serialize};

use super::{
    relation_word_features, training_pairs, EntitySpan, RelationClassifier, RelationSchema,
    SpanRelation, RELATION_FEATURES,
};
use crate::bert::Mode;
use crate::finetune::{JointOptimizer, LearningRateSchedule};
use crate::head::{weighted_cross_entropy, LinearHead};
use crate::logistic::{train_head_cv, CvHeadParams};
use crate::token_classifier::prepare;
use crate::{Encoder, MlError};

/// Settings for [`fine_tune_relations`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationFineTuneParams {
    pub epochs: usize,
    /// Items per step.
    pub batch_size: usize,
    /// Peak learning rate of the encoder's weights.
    pub encoder_learning_rate: f64,
    /// Peak learning rate of the head's weights.
    pub head_learning_rate: f64,
    /// Share of all steps over which the learning rates rise from zero to their peak.
    pub warmup: f64,
    pub seed: u64,
}

/// The token classifier's fine-tuning rates (`TokenFineTuneParams`), with more epochs: a
/// relation set is a few dozen items, so an epoch is a handful of steps.
impl Default for RelationFineTuneParams {
    fn default() -> Self {
        RelationFineTuneParams {
            epochs: 4,
            batch_size: 8,
            encoder_learning_rate: 5e-5,
            head_learning_rate: 1e-3,
            warmup: 0.1,
            seed: 17,
        }
    }
}

/// Windows per pass when computing the probe's frozen features.
const PROBE_BATCH: usize = 64;

/// One item as training reads it: its windows, where each word's pieces are, and its pairs.
struct Unit {
    windows: Vec<Vec<u32>>,
    /// Per word: (window index within the item, piece positions in that window).
    words: Vec<(usize, Range<usize>)>,
    /// Per candidate pair: the word ranges of head, tail and between, and the constant row.
    pairs: Vec<([Range<usize>; 3], Vec<f32>)>,
    classes: Vec<u32>,
}

/// Fine-tunes `encoder` in place (its variables change) with a relation head on `items`
/// (words), their entity `spans` and gold `relations`; the head is first fitted on frozen
/// features with `probe`. Returns the classifier and each epoch's mean loss. `progress` gets
/// (step, steps) after each step and (0, steps) once the probe is fitted; `Break` stops with
/// [`MlError::Cancelled`].
#[allow(clippy::too_many_arguments)]
pub fn fine_tune_relations<S: AsRef<str>>(
    encoder: &Encoder,
    schema: &RelationSchema,
    items: &[Vec<S>],
    spans: &[Vec<EntitySpan>],
    relations: &[Vec<SpanRelation>],
    probe: &CvHeadParams,
    params: &RelationFineTuneParams,
    progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
) -> Result<(RelationClassifier, Vec<f32>), MlError> {
    let frozen = relation_word_features(encoder, items, PROBE_BATCH, &mut |_, _| {})?;
    let (x, y) = training_pairs(schema, &frozen, spans, relations)?;
    let (start, _) = train_head_cv(&x, &y, schema.classes(), probe)?;
    drop((frozen, x, y));

    let special = encoder.special_tokens()?;
    let mut units = Vec::new();
    for (i, ((words, s), g)) in items.iter().zip(spans).zip(relations).enumerate() {
        let classes = schema.gold_classes(i, s, g)?;
        if classes.is_empty() {
            continue;
        }
        let prepared = prepare(encoder, words, &RELATION_FEATURES, &special)?;
        let mut placed = vec![None; words.len()];
        let mut windows = Vec::with_capacity(prepared.windows.len());
        for (k, window) in prepared.windows.into_iter().enumerate() {
            for (word, positions) in window.words {
                placed[word] = Some((k, positions));
            }
            windows.push(window.ids);
        }
        let words = placed
            .into_iter()
            .enumerate()
            .map(|(w, p)| {
                p.ok_or_else(|| {
                    MlError::Training(format!("item {i}: word {w} was read from no window"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let pairs = classes
            .iter()
            .map(|&((h, t), _)| {
                (
                    RelationSchema::pair_parts(&s[h], &s[t]),
                    schema.pair_extras(&s[h], &s[t]),
                )
            })
            .collect();
        units.push(Unit {
            windows,
            words,
            pairs,
            classes: classes.into_iter().map(|(_, c)| c as u32).collect(),
        });
    }

    let device = encoder.device();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
    let (classes, dimension) = (start.classes, start.dimension);
    let weight = vb.get((classes, dimension), "weight")?;
    let bias = vb.get(classes, "bias")?;
    {
        let data = varmap
            .data()
            .lock()
            .map_err(|_| MlError::Training("head weights lock poisoned".into()))?;
        if let Some(v) = data.get("weight") {
            v.set(&Tensor::from_slice(
                &start.weight,
                (classes, dimension),
                device,
            )?)?;
        }
        if let Some(v) = data.get("bias") {
            v.set(&Tensor::from_slice(&start.bias, classes, device)?)?;
        }
    }
    let batch_size = params.batch_size.max(1);
    let mut optimizer = JointOptimizer::new(
        encoder.varmap().all_vars(),
        params.encoder_learning_rate,
        varmap.all_vars(),
        params.head_learning_rate,
        LearningRateSchedule::WarmupLinearDecay {
            warmup: params.warmup,
        },
        params.epochs * units.len().div_ceil(batch_size),
    )?;
    if progress(0, optimizer.steps()).is_break() {
        return Err(MlError::Cancelled);
    }
    let mut rng = SplitMix64::new(params.seed);
    let mut order: Vec<usize> = (0..units.len()).collect();
    let mut losses = Vec::with_capacity(params.epochs);
    for _ in 0..params.epochs {
        rng.shuffle(&mut order);
        let (mut total, mut batches) = (0f32, 0usize);
        for chunk in order.chunks(batch_size) {
            let chunk: Vec<&Unit> = chunk.iter().map(|&u| &units[u]).collect();
            let logits = batch_logits(encoder, &chunk, &weight, &bias)?;
            let targets: Vec<u32> = chunk
                .iter()
                .flat_map(|u| u.classes.iter().copied())
                .collect();
            let n = targets.len();
            let loss =
                weighted_cross_entropy(&logits, &Tensor::from_vec(targets, n, device)?, None)?;
            total += optimizer.step(&loss, progress)?;
            batches += 1;
        }
        losses.push(total / batches.max(1) as f32);
    }
    let head = LinearHead {
        classes,
        dimension,
        weight: weight.flatten_all()?.to_vec1()?,
        bias: bias.to_vec1()?,
    };
    Ok((
        RelationClassifier {
            schema: schema.clone(),
            head,
        },
        losses,
    ))
}

/// Logits (pairs × classes) of every pair of `units`, differentiable through the encoder.
fn batch_logits(
    encoder: &Encoder,
    units: &[&Unit],
    weight: &Tensor,
    bias: &Tensor,
) -> Result<Tensor, MlError> {
    let device = encoder.device();
    let batch: Vec<&[u32]> = units
        .iter()
        .flat_map(|u| u.windows.iter().map(Vec::as_slice))
        .collect();
    let states = encoder.hidden_states(&batch, Mode::Train)?;
    let (b, tokens, hidden) = states.dims3()?;
    let flat = states.reshape((b * tokens, hidden))?;
    let pairs: usize = units.iter().map(|u| u.pairs.len()).sum();
    // Three averaging rows per pair (head, tail, between) over every piece of the batch: a
    // word's pieces share its weight, the words of a part share the part's.
    let width = b * tokens;
    let mut weights = vec![0f32; 3 * pairs * width];
    let mut extras = Vec::new();
    let mut row = 0;
    let mut first_window = 0;
    for u in units {
        for (parts, extra) in &u.pairs {
            for part in parts {
                let share = 1.0 / part.len().max(1) as f32;
                for w in part.clone() {
                    let (window, positions) = &u.words[w];
                    let piece_share = share / positions.len() as f32;
                    for p in positions.clone() {
                        weights[row * width + (first_window + window) * tokens + p] = piece_share;
                    }
                }
                row += 1;
            }
            extras.extend_from_slice(extra);
        }
        first_window += u.windows.len();
    }
    let pooled = Tensor::from_vec(weights, (3 * pairs, width), device)?
        .matmul(&flat)?
        .reshape((pairs, 3 * hidden))?;
    let extra_width = extras.len() / pairs.max(1);
    let extras = Tensor::from_vec(extras, (pairs, extra_width), device)?;
    let x = Tensor::cat(&[&pooled, &extras], D::Minus1)?;
    Ok(x.matmul(&weight.t()?)?.broadcast_add(bias)?)
}

#[cfg(test)]
mod tests {
    //! Plumbing on a tiny encoder with weights from a fixed seed (no real model): the run
    //! learns, changes the encoder, and stops when asked.
    use super::*;
    use crate::relation_classifier::tests::span;
    use crate::relation_classifier::RelationType;
    use crate::tiny_bert::tiny_encoder;

    const WORDS: &[&str] = &[
        "[PAD]", "[CLS]", "[SEP]", "[UNK]", "ana", "ben", "acme", "globex", "works", "for", "met",
        "at", "today",
    ];

    /// The tiny BERT over `WORDS`, reading inputs of at most 8 tokens (so longer items are
    /// read in windows).
    fn tiny() -> Encoder {
        tiny_encoder(WORDS, 8)
    }

    fn schema() -> RelationSchema {
        RelationSchema {
            entity_types: vec!["PER".into(), "ORG".into()],
            relations: vec![RelationType {
                name: "works_for".into(),
                head: vec!["PER".into()],
                tail: vec!["ORG".into()],
            }],
            max_distance: 10,
        }
    }

    /// "ana works for acme" (related) and "ana met acme at globex today" (not), with every
    /// name swapped in; the second is longer than one window.
    #[allow(clippy::type_complexity)]
    fn data() -> (
        Vec<Vec<&'static str>>,
        Vec<Vec<EntitySpan>>,
        Vec<Vec<SpanRelation>>,
    ) {
        let (mut words, mut spans, mut relations) = (Vec::new(), Vec::new(), Vec::new());
        for person in ["ana", "ben"] {
            for org in ["acme", "globex"] {
                words.push(vec![person, "works", "for", org]);
                spans.push(vec![span(0, 1, 0), span(3, 4, 1)]);
                relations.push(vec![SpanRelation {
                    head: 0,
                    tail: 1,
                    label: 0,
                }]);
                words.push(vec![
                    person, "met", org, "at", "globex", "today", "at", "acme",
                ]);
                spans.push(vec![span(0, 1, 0), span(2, 3, 1)]);
                relations.push(Vec::new());
            }
        }
        (words, spans, relations)
    }

    /// Fine-tunes `encoder` on [`data`] with the default probe.
    fn fine_tune_on_data(
        encoder: &Encoder,
        params: &RelationFineTuneParams,
        progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
    ) -> Result<(RelationClassifier, Vec<f32>), MlError> {
        let (words, spans, relations) = data();
        fine_tune_relations(
            encoder,
            &schema(),
            &words,
            &spans,
            &relations,
            &CvHeadParams::default(),
            params,
            progress,
        )
    }

    fn weights(encoder: &Encoder) -> Vec<f32> {
        let vars = encoder.varmap().all_vars();
        vars[0]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn fine_tuning_changes_the_encoder_and_learns_the_pairs() {
        let encoder = tiny();
        let before = weights(&encoder);
        let (words, spans, _) = data();
        let params = RelationFineTuneParams {
            epochs: 30,
            batch_size: 4,
            encoder_learning_rate: 1e-3,
            head_learning_rate: 1e-2,
            ..RelationFineTuneParams::default()
        };
        let mut seen = Vec::new();
        let (classifier, losses) = fine_tune_on_data(&encoder, &params, &mut |step, steps| {
            seen.push((step, steps));
            ControlFlow::Continue(())
        })
        .expect("fine-tune");
        assert_eq!(losses.len(), 30);
        assert_eq!(seen.first(), Some(&(0, 60)));
        assert_eq!(seen.last(), Some(&(60, 60)));
        assert!(losses[29] < losses[0], "{losses:?}");
        assert_ne!(weights(&encoder), before);
        // Read back with the tuned encoder (windows stitched), the pairs come out right.
        let predictions = classifier.predict(&encoder, &words, &spans, 4).unwrap();
        for (i, p) in predictions.iter().enumerate() {
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].relation().is_some(), i % 2 == 0, "item {i}: {p:?}");
        }
    }

    #[test]
    fn fine_tuning_stops_when_asked() {
        let result = fine_tune_on_data(
            &tiny(),
            &RelationFineTuneParams::default(),
            &mut |step, _| {
                if step >= 1 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        );
        assert!(matches!(result, Err(MlError::Cancelled)), "{result:?}");
    }
}
