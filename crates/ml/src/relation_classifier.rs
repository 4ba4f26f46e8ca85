//! Relation classification: for each candidate pair of an item's entity spans, which relation
//! type (or none) links the first (head) to the second (tail).
//!
//! Candidates are ordered pairs of two different spans of one item no more than
//! [`RelationSchema::max_distance`] words apart whose (head type, tail type) at least one
//! relation type allows; every other pair can hold no relation the project accepts, so the
//! model never sees them. A pair's features are the head span's representation (the mean of
//! its words' hidden states), the tail's, the mean of the words between them (zeros when they
//! touch), one-hots of both entity types and the pair's order and distance. The classes are
//! "no relation" (class 0) and the relation types.
//!
//! Two trainers: L2 logistic regression with C chosen by cross-validation
//! ([`crate::train_head_cv`]) on frozen features ([`RelationClassifier::train`]), and full
//! fine-tuning of the encoder with that head (`finetune.rs`). Prediction masks the relation
//! types a pair's entity types do not allow, so every suggestion passes the project's rules.

mod finetune;
mod metrics;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::head::LinearHead;
use crate::logistic::{train_head_cv, CvHeadParams, CvReport};
use crate::token_classifier::{word_features, FeatureSettings, Pooling};
use crate::{Encoder, MlError};

pub use finetune::{fine_tune_relations, RelationFineTuneParams};
pub use metrics::{
    relation_metrics, PairAccuracy, RelationEvaluation, RelationMetrics, RelationTypeScores,
};

/// Word features the relation classifier reads: the mean of each word's piece states, no
/// shape features (entity types, which capitals mostly signal, are given as one-hots).
pub const RELATION_FEATURES: FeatureSettings = FeatureSettings {
    pooling: Pooling::Mean,
    word_shape: false,
    shape_window: 0,
};

/// Order and distance values at the end of a pair's row: head before tail, the gap in
/// words over [`RelationSchema::max_distance`], and whether the spans touch.
const POSITION_FEATURES: usize = 3;

/// A candidate pair (head span, tail span) and its class (0: no relation, else type + 1).
pub type PairClass = ((usize, usize), usize);

/// A relation type and the entity types its ends may have (empty: any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationType {
    pub name: String,
    pub head: Vec<String>,
    pub tail: Vec<String>,
}

impl RelationType {
    fn allows(&self, head: &str, tail: &str) -> bool {
        (self.head.is_empty() || self.head.iter().any(|t| t == head))
            && (self.tail.is_empty() || self.tail.iter().any(|t| t == tail))
    }
}

/// What a relation classifier classifies: the entity types spans carry, the relation types,
/// and how far apart (in words) two spans may be to be a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationSchema {
    pub entity_types: Vec<String>,
    pub relations: Vec<RelationType>,
    pub max_distance: usize,
}

/// Words between two spans beyond which a pair is no candidate. Relations in news-like
/// sentences sit within a clause or two; a cap keeps long items from making quadratically
/// many pairs.
pub const DEFAULT_MAX_DISTANCE: usize = 30;

/// An entity span over an item's words: `start..end` word indices, `label` an index into
/// [`RelationSchema::entity_types`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EntitySpan {
    pub start: usize,
    pub end: usize,
    pub label: usize,
}

/// A relation between two spans of an item: `head` and `tail` index its spans, `label`
/// indexes [`RelationSchema::relations`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SpanRelation {
    pub head: usize,
    pub tail: usize,
    pub label: usize,
}

/// The classifier's reading of one candidate pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairPrediction {
    pub head: usize,
    pub tail: usize,
    /// Per class: "no relation" first, then each relation type; types the pair's entity
    /// types do not allow get 0.
    pub probabilities: Vec<f32>,
}

impl PairPrediction {
    /// The most probable class (0: no relation) and its probability.
    pub fn class(&self) -> (usize, f32) {
        let mut best = (0, self.probabilities.first().copied().unwrap_or(1.0));
        for (c, &p) in self.probabilities.iter().enumerate().skip(1) {
            if p > best.1 {
                best = (c, p);
            }
        }
        best
    }

    /// The relation it predicts, with its confidence; `None` for "no relation".
    pub fn relation(&self) -> Option<(SpanRelation, f32)> {
        let (class, p) = self.class();
        (class > 0).then(|| {
            (
                SpanRelation {
                    head: self.head,
                    tail: self.tail,
                    label: class - 1,
                },
                p,
            )
        })
    }
}

impl RelationSchema {
    /// Classes: "no relation" and one per relation type.
    pub fn classes(&self) -> usize {
        self.relations.len() + 1
    }

    /// Length of a pair's feature row over an encoder of `hidden` dimensions.
    pub fn dimension(&self, hidden: usize) -> usize {
        3 * hidden + 2 * self.entity_types.len() + POSITION_FEATURES
    }

    /// Whether relation type `relation` may link a head of entity type `head` to a tail of
    /// type `tail` (indices into the schema).
    pub fn allows(&self, relation: usize, head: usize, tail: usize) -> bool {
        match (
            self.relations.get(relation),
            self.entity_types.get(head),
            self.entity_types.get(tail),
        ) {
            (Some(r), Some(h), Some(t)) => r.allows(h, t),
            _ => false,
        }
    }

    /// Words strictly between two spans (0 when they touch or overlap).
    fn gap(a: &EntitySpan, b: &EntitySpan) -> usize {
        if a.end <= b.start {
            b.start - a.end
        } else {
            a.start.saturating_sub(b.end)
        }
    }

    /// The candidate pairs of an item's spans, in (head, tail) order.
    pub fn candidates(&self, spans: &[EntitySpan]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for (h, head) in spans.iter().enumerate() {
            for (t, tail) in spans.iter().enumerate() {
                if h == t || Self::gap(head, tail) > self.max_distance {
                    continue;
                }
                if (0..self.relations.len()).any(|r| self.allows(r, head.label, tail.label)) {
                    out.push((h, t));
                }
            }
        }
        out
    }

    /// Checks an item's spans against its word count and the entity types.
    pub(crate) fn check_spans(
        &self,
        item: usize,
        words: usize,
        spans: &[EntitySpan],
    ) -> Result<(), MlError> {
        match spans.iter().find(|s| {
            s.start >= s.end || s.end > words || s.label >= self.entity_types.len()
        }) {
            Some(bad) => Err(MlError::Training(format!(
                "item {item}: span {}..{} of entity type {} does not fit its {words} words and {} entity types",
                bad.start,
                bad.end,
                bad.label,
                self.entity_types.len()
            ))),
            None => Ok(()),
        }
    }

    /// Each candidate pair's class from an item's gold relations (0 where there is none; the
    /// first relation type given wins when a pair has several). Gold relations between spans
    /// that are no candidate are out of the model's reach and left out.
    pub fn gold_classes(
        &self,
        item: usize,
        spans: &[EntitySpan],
        gold: &[SpanRelation],
    ) -> Result<Vec<PairClass>, MlError> {
        let mut by_pair: HashMap<(usize, usize), usize> = HashMap::new();
        for r in gold {
            if r.head >= spans.len() || r.tail >= spans.len() || r.label >= self.relations.len() {
                return Err(MlError::Training(format!(
                    "item {item}: relation {} → {} of type {} does not fit its {} spans and {} relation types",
                    r.head,
                    r.tail,
                    r.label,
                    spans.len(),
                    self.relations.len()
                )));
            }
            by_pair.entry((r.head, r.tail)).or_insert(r.label + 1);
        }
        Ok(self
            .candidates(spans)
            .into_iter()
            .map(|pair| (pair, by_pair.get(&pair).copied().unwrap_or(0)))
            .collect())
    }

    /// The constant part of a pair's row: entity type one-hots, order and distance.
    pub(crate) fn pair_extras(&self, head: &EntitySpan, tail: &EntitySpan) -> Vec<f32> {
        let types = self.entity_types.len();
        let mut row = vec![0f32; 2 * types + POSITION_FEATURES];
        row[head.label] = 1.0;
        row[types + tail.label] = 1.0;
        let gap = Self::gap(head, tail);
        row[2 * types] = if head.start < tail.start { 1.0 } else { 0.0 };
        row[2 * types + 1] = gap as f32 / self.max_distance.max(1) as f32;
        row[2 * types + 2] = if gap == 0 { 1.0 } else { 0.0 };
        row
    }

    /// Words whose states a pair's three parts average: the head's, the tail's, and those
    /// between them.
    pub(crate) fn pair_parts(head: &EntitySpan, tail: &EntitySpan) -> [std::ops::Range<usize>; 3] {
        let between = if head.end <= tail.start {
            head.end..tail.start
        } else if tail.end <= head.start {
            tail.end..head.start
        } else {
            0..0
        };
        [head.start..head.end, tail.start..tail.end, between]
    }

    /// Feature rows of `pairs` of one item from its word feature rows (from
    /// [`relation_word_features`]).
    pub fn pair_features(
        &self,
        words: &[Vec<f32>],
        spans: &[EntitySpan],
        pairs: &[(usize, usize)],
    ) -> Vec<Vec<f32>> {
        let hidden = words.first().map_or(0, Vec::len);
        let mean = |range: std::ops::Range<usize>, out: &mut Vec<f32>| {
            let start = out.len();
            out.resize(start + hidden, 0.0);
            let n = range.len();
            if n == 0 {
                return;
            }
            for w in range {
                for (o, v) in out[start..].iter_mut().zip(&words[w]) {
                    *o += v;
                }
            }
            out[start..].iter_mut().for_each(|o| *o /= n as f32);
        };
        pairs
            .iter()
            .map(|&(h, t)| {
                let (head, tail) = (&spans[h], &spans[t]);
                let mut row = Vec::with_capacity(self.dimension(hidden));
                for part in Self::pair_parts(head, tail) {
                    mean(part, &mut row);
                }
                row.extend(self.pair_extras(head, tail));
                row
            })
            .collect()
    }
}

/// Word feature rows for relation classification (see [`RELATION_FEATURES`]).
pub fn relation_word_features<S: AsRef<str>>(
    encoder: &Encoder,
    items: &[Vec<S>],
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<Vec<f32>>>, MlError> {
    word_features(encoder, items, &RELATION_FEATURES, batch_size, progress)
}

/// A trained relation classifier: its schema and a linear softmax head over pair rows. A
/// fine-tuned one needs the fine-tuned encoder beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationClassifier {
    pub schema: RelationSchema,
    pub head: LinearHead,
}

impl RelationClassifier {
    /// Fits the head on frozen features: L2 logistic regression over every candidate pair of
    /// the training items, C chosen by cross-validation on them. `words[i]` are item `i`'s
    /// word rows (from [`relation_word_features`]), `spans[i]` its entity spans and `gold[i]`
    /// its relations.
    pub fn train(
        schema: &RelationSchema,
        words: &[Vec<Vec<f32>>],
        spans: &[Vec<EntitySpan>],
        gold: &[Vec<SpanRelation>],
        params: &CvHeadParams,
    ) -> Result<(RelationClassifier, CvReport), MlError> {
        let (x, y) = training_pairs(schema, words, spans, gold)?;
        let (head, report) = train_head_cv(&x, &y, schema.classes(), params)?;
        Ok((
            RelationClassifier {
                schema: schema.clone(),
                head,
            },
            report,
        ))
    }

    /// The classifier's reading of every candidate pair of one item.
    pub fn predict_features(
        &self,
        words: &[Vec<f32>],
        spans: &[EntitySpan],
    ) -> Result<Vec<PairPrediction>, MlError> {
        let pairs = self.schema.candidates(spans);
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let x = self.schema.pair_features(words, spans, &pairs);
        if let Some(bad) = x.iter().find(|r| r.len() != self.head.dimension) {
            return Err(MlError::Config(format!(
                "pair features have {} values, the relation head takes {} (another encoder?)",
                bad.len(),
                self.head.dimension
            )));
        }
        Ok(pairs
            .into_iter()
            .zip(self.head.predict(&x))
            .map(|((h, t), p)| PairPrediction {
                head: h,
                tail: t,
                probabilities: self.mask(&spans[h], &spans[t], p),
            })
            .collect())
    }

    /// Zeroes the relation types a pair's entity types do not allow, and renormalises.
    fn mask(&self, head: &EntitySpan, tail: &EntitySpan, mut p: Vec<f32>) -> Vec<f32> {
        for (r, value) in p.iter_mut().enumerate().skip(1) {
            if !self.schema.allows(r - 1, head.label, tail.label) {
                *value = 0.0;
            }
        }
        let total: f32 = p.iter().sum();
        if total > 0.0 {
            p.iter_mut().for_each(|v| *v /= total);
        }
        p
    }

    /// Predictions for items of words with their entity spans, reading them with `encoder`
    /// (the base encoder for a head, the fine-tuned one after fine-tuning).
    pub fn predict<S: AsRef<str>>(
        &self,
        encoder: &Encoder,
        items: &[Vec<S>],
        spans: &[Vec<EntitySpan>],
        batch_size: usize,
    ) -> Result<Vec<Vec<PairPrediction>>, MlError> {
        if items.len() != spans.len() {
            return Err(MlError::Config(format!(
                "{} items but {} lists of spans",
                items.len(),
                spans.len()
            )));
        }
        for (i, (w, s)) in items.iter().zip(spans).enumerate() {
            self.schema
                .check_spans(i, w.len(), s)
                .map_err(|e| MlError::Config(e.to_string()))?;
        }
        // Only items with a candidate pair are read by the encoder.
        let wanted: Vec<usize> = (0..items.len())
            .filter(|&i| !self.schema.candidates(&spans[i]).is_empty())
            .collect();
        let subset: Vec<Vec<&str>> = wanted
            .iter()
            .map(|&i| items[i].iter().map(AsRef::as_ref).collect())
            .collect();
        let words = word_features(
            encoder,
            &subset,
            &RELATION_FEATURES,
            batch_size,
            &mut |_, _| {},
        )?;
        let mut out = vec![Vec::new(); items.len()];
        for (&i, rows) in wanted.iter().zip(&words) {
            out[i] = self.predict_features(rows, &spans[i])?;
        }
        Ok(out)
    }
}

/// Every candidate pair's feature row and class over the training items.
pub(crate) fn training_pairs(
    schema: &RelationSchema,
    words: &[Vec<Vec<f32>>],
    spans: &[Vec<EntitySpan>],
    gold: &[Vec<SpanRelation>],
) -> Result<(Vec<Vec<f32>>, Vec<usize>), MlError> {
    if words.len() != spans.len() || words.len() != gold.len() {
        return Err(MlError::Training(format!(
            "{} items of features, {} of spans, {} of relations",
            words.len(),
            spans.len(),
            gold.len()
        )));
    }
    if schema.relations.is_empty() {
        return Err(MlError::Training("no relation types to learn".into()));
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (i, ((rows, s), g)) in words.iter().zip(spans).zip(gold).enumerate() {
        schema.check_spans(i, rows.len(), s)?;
        let classes = schema.gold_classes(i, s, g)?;
        let pairs: Vec<(usize, usize)> = classes.iter().map(|(p, _)| *p).collect();
        x.extend(schema.pair_features(rows, s, &pairs));
        y.extend(classes.into_iter().map(|(_, c)| c));
    }
    if x.is_empty() {
        return Err(MlError::Training(
            "no candidate pairs to train on (no two spans a relation type allows)".into(),
        ));
    }
    Ok((x, y))
}

#[cfg(test)]
mod tests {
    //! Plumbing on hand-made word rows (no encoder): candidates, features, and a head that
    //! learns a rule the rows make plain.
    use super::*;

    fn schema() -> RelationSchema {
        RelationSchema {
            entity_types: vec!["PER".into(), "ORG".into(), "LOC".into()],
            relations: vec![
                RelationType {
                    name: "works_for".into(),
                    head: vec!["PER".into()],
                    tail: vec!["ORG".into()],
                },
                RelationType {
                    name: "located_in".into(),
                    head: vec!["ORG".into()],
                    tail: vec!["LOC".into()],
                },
            ],
            max_distance: 3,
        }
    }

    /// Shared with the fine-tuning tests.
    pub(super) fn span(start: usize, end: usize, label: usize) -> EntitySpan {
        EntitySpan { start, end, label }
    }

    #[test]
    fn candidates_need_an_allowed_type_pair_within_the_distance() {
        let s = schema();
        // PER(0) ORG(1..3) LOC(8): PER→ORG allowed; ORG→LOC allowed but 5 words apart.
        let spans = [span(0, 1, 0), span(1, 3, 1), span(8, 9, 2)];
        assert_eq!(s.candidates(&spans), vec![(0, 1)]);
        let near = [span(0, 1, 0), span(1, 3, 1), span(5, 6, 2)];
        assert_eq!(near.len(), 3);
        assert_eq!(s.candidates(&near), vec![(0, 1), (1, 2)]);
    }

    #[test]
    fn pair_rows_hold_both_spans_the_words_between_and_the_types() {
        let s = schema();
        let words: Vec<Vec<f32>> = (0..5).map(|w| vec![w as f32, 1.0]).collect();
        let spans = [span(3, 5, 1), span(0, 1, 0)];
        let rows = s.pair_features(&words, &spans, &[(1, 0)]);
        // Head word 0, tail words 3–4 (mean 3.5), between words 1–2 (mean 1.5).
        assert_eq!(
            rows[0],
            vec![
                0.0,
                1.0,
                3.5,
                1.0,
                1.5,
                1.0, // states
                1.0,
                0.0,
                0.0,
                0.0,
                1.0,
                0.0, // PER head, ORG tail
                1.0,
                2.0 / 3.0,
                0.0, // head first, gap 2 of 3, not touching
            ]
        );
        // Touching spans: the context is zeros.
        let rows = s.pair_features(&words, &[span(0, 1, 0), span(1, 2, 1)], &[(0, 1)]);
        assert_eq!(&rows[0][4..6], &[0.0, 0.0]);
        assert_eq!(rows[0][14], 1.0);
    }

    #[test]
    fn a_head_learns_a_relation_the_context_signals_and_masks_disallowed_types() {
        // Items "PER w ORG": the middle word's first value says whether PER works for ORG.
        let s = schema();
        let mut words = Vec::new();
        let mut spans = Vec::new();
        let mut gold = Vec::new();
        for i in 0..40 {
            let related = i % 3 == 0;
            let signal = if related { 1.0 } else { -1.0 };
            let jitter = (i % 7) as f32 * 0.01;
            words.push(vec![
                vec![0.2 + jitter, 0.1],
                vec![signal, jitter],
                vec![0.3, 0.2 - jitter],
            ]);
            spans.push(vec![span(0, 1, 0), span(2, 3, 1)]);
            gold.push(if related {
                vec![SpanRelation {
                    head: 0,
                    tail: 1,
                    label: 0,
                }]
            } else {
                Vec::new()
            });
        }
        let (model, report) =
            RelationClassifier::train(&s, &words, &spans, &gold, &CvHeadParams::default())
                .expect("train");
        assert!(report.folds >= 2, "{report:?}");
        for (i, (w, sp)) in words.iter().zip(&spans).enumerate() {
            let p = model.predict_features(w, sp).expect("predict");
            assert_eq!(p.len(), 1);
            // located_in is not allowed PER→ORG: masked to zero.
            assert_eq!(p[0].probabilities[2], 0.0);
            let expected = (i % 3 == 0).then_some(0);
            assert_eq!(p[0].relation().map(|(r, _)| r.label), expected, "item {i}");
        }
    }

    #[test]
    fn bad_spans_and_relations_are_refused_by_name() {
        let s = schema();
        let words = vec![vec![vec![0.0, 0.0]; 2]];
        let err = RelationClassifier::train(
            &s,
            &words,
            &[vec![span(0, 3, 0)]],
            &[Vec::new()],
            &CvHeadParams::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("item 0: span 0..3"), "{err}");
        let err = RelationClassifier::train(
            &s,
            &words,
            &[vec![span(0, 1, 0), span(1, 2, 1)]],
            &[vec![SpanRelation {
                head: 0,
                tail: 5,
                label: 0,
            }]],
            &CvHeadParams::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("relation 0 → 5"), "{err}");
    }
}
