//! The relation step of a relations project's `train` job, and the relation classifier a
//! version carries.
//!
//! A relations project's version is a span version (`span_model.rs`) whose stored model also
//! holds, under [`RELATIONS_KEY`], a [`RelationVersion`]: the relation classifier over the
//! same encoder and its held-out figures. (It sits inside the version's model JSON, which the
//! span reader ignores beyond its own fields, so versions of every project keep one shape.)
//!
//! Training reads the items whose whole answer — spans and relations — people confirmed
//! (gold, or the answer a strict majority gave), split by the same held-out rule as the
//! spans. Evaluation on the held-out items measures relations both end to end (pairs of the
//! spans the version's span model predicts) and on the confirmed spans (the relation
//! classifier alone), a relation counting when both ends and its type match; and pair
//! accuracy on the confirmed spans' candidate pairs beside always answering "no relation",
//! which is what the relations' pre-acceptance rests on (`evidence.rs`).

use std::collections::HashMap;
use std::ops::ControlFlow;

use concord_domain::tokens::Token;
use concord_domain::{
    AnnotationValue, ProjectId, ProjectSpec, Span, SuggestedRelation, SuggestedSpan,
};
use concord_ml::relation_classifier::{
    fine_tune_relations, relation_metrics, relation_word_features, EntitySpan, PairAccuracy,
    RelationClassifier, RelationEvaluation, RelationFineTuneParams, RelationSchema, RelationType,
    SpanRelation, DEFAULT_MAX_DISTANCE,
};
use concord_ml::{CvHeadParams, Encoder, ScoredSpan, TokenClassifier};
use serde::{Deserialize, Serialize};

use super::held_out;
use super::jobs::{Stop, TuningProgress};
use super::span_model::{suggested_spans, token_spans, words};
use crate::review::effective_gold;
use crate::{Engine, EngineError};

/// The key of the relation classifier in a relations version's stored model.
pub(crate) const RELATIONS_KEY: &str = "relations";
/// Encoder windows per forward pass.
const WINDOWS_PER_PASS: usize = 32;

/// A version's relation classifier, its held-out figures and how it was trained.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RelationVersion {
    pub classifier: RelationClassifier,
    /// Absent when no confirmed item was held out.
    pub evaluation: Option<RelationEvaluation>,
    /// `head` or `fine_tune`, and the trainer's settings, for people to read.
    pub trainer: String,
    pub settings: serde_json::Value,
}

impl RelationVersion {
    /// The relation classifier of a stored version's model, if it has one.
    pub(crate) fn of(classifier: &serde_json::Value) -> Option<RelationVersion> {
        serde_json::from_value(classifier.get(RELATIONS_KEY)?.clone()).ok()
    }

    /// Adds this to a span version's model JSON.
    pub(super) fn attach(&self, classifier: &mut serde_json::Value) -> Result<(), EngineError> {
        let value = serde_json::to_value(self)
            .map_err(|e| EngineError::internal("encoding the relation classifier", e))?;
        match classifier.as_object_mut() {
            Some(map) => {
                map.insert(RELATIONS_KEY.into(), value);
                Ok(())
            }
            None => Err(EngineError::internal_fault(
                "a span version's model is not a JSON object".to_string(),
            )),
        }
    }
}

/// The relation schema of a project: its entity types and relation types.
pub(super) fn schema(spec: &ProjectSpec) -> RelationSchema {
    RelationSchema {
        entity_types: spec.labels.iter().map(|l| l.name.clone()).collect(),
        relations: spec
            .relation_labels
            .iter()
            .map(|r| RelationType {
                name: r.name.clone(),
                head: r.head.clone(),
                tail: r.tail.clone(),
            })
            .collect(),
        max_distance: DEFAULT_MAX_DISTANCE,
    }
}

/// A confirmed item in the classifier's terms: word spans, relations between them, and each
/// span at word level as character offsets (how relations are matched).
pub(super) struct RelationItem {
    pub id: String,
    pub tokens: Vec<Token>,
    pub words: Vec<String>,
    pub spans: Vec<EntitySpan>,
    pub relations: Vec<SpanRelation>,
    pub char_spans: Vec<Span>,
}

/// `spans` at word level: the entity spans and their character offsets, and for each input
/// span its index among them (`None` for a span of an unknown type or on no word).
fn word_spans(
    tokens: &[Token],
    spans: &[Span],
    names: &[String],
) -> (Vec<EntitySpan>, Vec<Span>, Vec<Option<usize>>) {
    let (mut out, mut chars, mut index) = (Vec::new(), Vec::new(), Vec::new());
    for s in spans {
        let found = token_spans(tokens, std::slice::from_ref(s), names)
            .into_iter()
            .next()
            .and_then(|t| {
                let back = suggested_spans(
                    tokens,
                    &[ScoredSpan {
                        span: t,
                        confidence: 1.0,
                    }],
                    names,
                );
                back.into_iter().next().map(|c| (t, c))
            });
        match found {
            Some((t, c)) => {
                index.push(Some(out.len()));
                out.push(EntitySpan {
                    start: t.start,
                    end: t.end,
                    label: t.label,
                });
                chars.push(Span::new(c.start, c.end, c.label));
            }
            None => index.push(None),
        }
    }
    (out, chars, index)
}

impl RelationItem {
    fn of(
        id: String,
        text: &str,
        tokens: Vec<Token>,
        value: &AnnotationValue,
        schema: &RelationSchema,
    ) -> RelationItem {
        let (spans, char_spans, index) = word_spans(&tokens, &value.spans, &schema.entity_types);
        let relations = value
            .relations
            .iter()
            .filter_map(|r| {
                Some(SpanRelation {
                    head: (*index.get(r.from as usize)?)?,
                    tail: (*index.get(r.to as usize)?)?,
                    label: schema.relations.iter().position(|t| t.name == r.label)?,
                })
            })
            .collect();
        RelationItem {
            id,
            words: words(text, &tokens).into_iter().map(String::from).collect(),
            tokens,
            spans,
            relations,
            char_spans,
        }
    }

    /// The item's gold relations as (ends, type) keys for the metrics.
    fn gold_keys(&self) -> Vec<(RelationEnds, usize)> {
        self.relations
            .iter()
            .map(|r| (ends(&self.char_spans, r.head, r.tail), r.label))
            .collect()
    }
}

/// A relation's two ends by bounds and entity type.
type RelationEnds = ((u32, u32, String), (u32, u32, String));

fn ends(spans: &[Span], head: usize, tail: usize) -> RelationEnds {
    let key = |s: &Span| (s.start, s.end, s.label.clone());
    (key(&spans[head]), key(&spans[tail]))
}

/// The confirmed relation items of a project, training and held-out apart.
pub(super) struct RelationData {
    pub schema: RelationSchema,
    pub train: Vec<RelationItem>,
    pub test: Vec<RelationItem>,
}

impl RelationData {
    pub(super) fn relations(&self) -> usize {
        self.train.iter().map(|i| i.relations.len()).sum()
    }

    #[allow(clippy::type_complexity)]
    fn train_parts(&self) -> (Vec<Vec<&str>>, Vec<Vec<EntitySpan>>, Vec<Vec<SpanRelation>>) {
        (
            self.train
                .iter()
                .map(|i| i.words.iter().map(String::as_str).collect())
                .collect(),
            self.train.iter().map(|i| i.spans.clone()).collect(),
            self.train.iter().map(|i| i.relations.clone()).collect(),
        )
    }

    /// A relation head on frozen features of `encoder`.
    pub(super) fn train_head(&self, encoder: &Encoder) -> Result<RelationVersion, Stop> {
        let (words, spans, relations) = self.train_parts();
        let x = relation_word_features(encoder, &words, WINDOWS_PER_PASS, &mut |_, _| {})?;
        let settings = CvHeadParams::default();
        let (classifier, report) =
            RelationClassifier::train(&self.schema, &x, &spans, &relations, &settings)?;
        Ok(RelationVersion {
            classifier,
            evaluation: None,
            trainer: "head".into(),
            settings: serde_json::json!({ "head": settings, "cv": report }),
        })
    }

    /// Fine-tunes `encoder` in place with the relation head; `progress` as in
    /// [`fine_tune_relations`].
    pub(super) fn fine_tune(
        &self,
        encoder: &Encoder,
        epochs: Option<usize>,
        progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
    ) -> Result<RelationVersion, concord_ml::MlError> {
        let (words, spans, relations) = self.train_parts();
        let defaults = RelationFineTuneParams::default();
        let settings = RelationFineTuneParams {
            epochs: epochs.unwrap_or(defaults.epochs),
            ..defaults
        };
        let (classifier, losses) = fine_tune_relations(
            encoder,
            &self.schema,
            &words,
            &spans,
            &relations,
            &CvHeadParams::default(),
            &settings,
            progress,
        )?;
        Ok(RelationVersion {
            classifier,
            evaluation: None,
            trainer: "fine_tune".into(),
            settings: serde_json::json!({ "fine_tune": settings, "epoch_losses": losses }),
        })
    }

    /// The held-out figures of `classifier` read with `encoder`, end to end from `spans`'
    /// predictions and from the confirmed spans. `None` without held-out items.
    pub(super) fn evaluate(
        &self,
        classifier: &RelationClassifier,
        encoder: &Encoder,
        span_classifier: &TokenClassifier,
    ) -> Result<Option<RelationEvaluation>, Stop> {
        if self.test.is_empty() {
            return Ok(None);
        }
        let names = &self.schema.entity_types;
        let labels: Vec<String> = self
            .schema
            .relations
            .iter()
            .map(|r| r.name.clone())
            .collect();
        let words: Vec<Vec<&str>> = self
            .test
            .iter()
            .map(|i| i.words.iter().map(String::as_str).collect())
            .collect();
        let gold: Vec<Vec<(RelationEnds, usize)>> =
            self.test.iter().map(RelationItem::gold_keys).collect();
        // The relation classifier alone, on the confirmed spans.
        let given_spans: Vec<Vec<EntitySpan>> = self.test.iter().map(|i| i.spans.clone()).collect();
        let given = classifier.predict(encoder, &words, &given_spans, WINDOWS_PER_PASS)?;
        let mut pairs = PairAccuracy::default();
        let mut given_keys = Vec::with_capacity(self.test.len());
        for (item, predictions) in self.test.iter().zip(&given) {
            let classes: HashMap<(usize, usize), usize> = self
                .schema
                .gold_classes(0, &item.spans, &item.relations)?
                .into_iter()
                .collect();
            let mut keys = Vec::new();
            for p in predictions {
                let (class, _) = p.class();
                pairs.add(classes.get(&(p.head, p.tail)).copied().unwrap_or(0), class);
                if class > 0 {
                    keys.push((ends(&item.char_spans, p.head, p.tail), class - 1));
                }
            }
            given_keys.push(keys);
        }
        // End to end: the version's predicted spans, then relations between them.
        let predicted_spans = span_classifier.predict(encoder, &words, WINDOWS_PER_PASS)?;
        let mut end_spans = Vec::with_capacity(self.test.len());
        let mut end_chars = Vec::with_capacity(self.test.len());
        for (item, p) in self.test.iter().zip(predicted_spans) {
            let suggested: Vec<Span> = suggested_spans(&item.tokens, &p.spans, names)
                .into_iter()
                .map(|s| Span::new(s.start, s.end, s.label))
                .collect();
            let (spans, chars, _) = word_spans(&item.tokens, &suggested, names);
            end_spans.push(spans);
            end_chars.push(chars);
        }
        let end = classifier.predict(encoder, &words, &end_spans, WINDOWS_PER_PASS)?;
        let end_keys: Vec<Vec<(RelationEnds, usize)>> = end
            .iter()
            .zip(&end_chars)
            .map(|(predictions, chars)| {
                predictions
                    .iter()
                    .filter_map(|p| p.relation())
                    .map(|(r, _)| (ends(chars, r.head, r.tail), r.label))
                    .collect()
            })
            .collect();
        Ok(Some(RelationEvaluation {
            items: self.test.len() as u64,
            end_to_end: relation_metrics(&labels, &end_keys, &gold),
            given_spans: relation_metrics(&labels, &given_keys, &gold),
            pairs,
        }))
    }
}

/// The suggested relations between an item's suggested spans (word-aligned, as the span
/// model gives them), from `classifier`'s predictions on them.
pub(super) fn suggest_relations(
    classifier: &RelationClassifier,
    encoder: &Encoder,
    items: &[(Vec<&str>, &[Token], &[SuggestedSpan])],
) -> Result<Vec<Vec<SuggestedRelation>>, Stop> {
    let names = &classifier.schema.entity_types;
    let mut words = Vec::with_capacity(items.len());
    let mut spans = Vec::with_capacity(items.len());
    let mut indices = Vec::with_capacity(items.len());
    for (w, tokens, suggested) in items {
        let plain: Vec<Span> = suggested
            .iter()
            .map(|s| Span::new(s.start, s.end, s.label.clone()))
            .collect();
        let (entity_spans, _, index) = word_spans(tokens, &plain, names);
        // Back from word spans to the suggestion's own span indices.
        let mut back = vec![0u32; entity_spans.len()];
        for (original, i) in index.iter().enumerate() {
            if let Some(i) = i {
                back[*i] = original as u32;
            }
        }
        words.push(w.clone());
        spans.push(entity_spans);
        indices.push(back);
    }
    let predictions = classifier.predict(encoder, &words, &spans, WINDOWS_PER_PASS)?;
    Ok(predictions
        .iter()
        .zip(&indices)
        .map(|(item, back)| {
            item.iter()
                .filter_map(|p| p.relation())
                .filter_map(|(r, confidence)| {
                    Some(SuggestedRelation {
                        from: back[r.head],
                        to: back[r.tail],
                        label: classifier.schema.relations.get(r.label)?.name.clone(),
                        confidence,
                    })
                })
                .collect()
        })
        .collect())
}

impl Engine {
    /// Every item of a relations project whose whole answer people confirmed — its gold
    /// (imported, chosen by a reviewer, or unanimous), else the answer (spans and relations)
    /// a strict majority of its annotators gave — split by the held-out rule.
    pub(super) fn confirmed_relations(
        &self,
        project: ProjectId,
        spec: &ProjectSpec,
    ) -> Result<RelationData, EngineError> {
        let schema = schema(spec);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        self.store()
            .for_each_item::<EngineError>(project, |_, item, answers| {
                let gold = effective_gold(spec, item.gold.as_ref(), item.gold_source(), &answers)
                    .filter(|(_, source)| source.is_confirmed_by_people())
                    .map(|(g, _)| g);
                let value = gold.or_else(|| {
                    let values: Vec<&AnnotationValue> =
                        answers.iter().map(|(_, a)| &a.value).collect();
                    values
                        .iter()
                        .find(|c| 2 * values.iter().filter(|v| v == c).count() > values.len())
                        .map(|v| (*v).clone())
                });
                let Some(value) = value else {
                    return Ok(());
                };
                let tokens = item.tokens().into_owned();
                let relation_item =
                    RelationItem::of(item.id.clone(), &item.text, tokens, &value, &schema);
                if held_out(&relation_item.id) {
                    test.push(relation_item);
                } else {
                    train.push(relation_item);
                }
                Ok(())
            })?;
        Ok(RelationData {
            schema,
            train,
            test,
        })
    }

    /// Trains the relation classifier with a head on frozen features of `encoder` (the
    /// version's), evaluates it with `span_classifier`'s spans, and stores the job's progress
    /// as it goes.
    pub(super) fn relation_head(
        &self,
        id: u64,
        data: &RelationData,
        encoder: &Encoder,
        span_classifier: &TokenClassifier,
    ) -> Result<RelationVersion, Stop> {
        self.check_cancel(id)?;
        let mut version = data.train_head(encoder)?;
        version.evaluation = data.evaluate(&version.classifier, encoder, span_classifier)?;
        Ok(version)
    }

    /// Fine-tunes `encoder` in place with the relation head, storing progress and watching
    /// for a cancel as the span fine-tuning does.
    pub(super) fn relation_fine_tune(
        &self,
        id: u64,
        data: &RelationData,
        encoder: &Encoder,
        epochs: Option<usize>,
    ) -> Result<RelationVersion, Stop> {
        let mut progress = TuningProgress::new(self, id);
        data.fine_tune(encoder, epochs, &mut |step, steps| {
            progress.step(step, steps)
        })
        .map_err(|e| progress.stop(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmed_relations_map_to_word_spans_and_back_to_suggestion_indices() {
        let text = "Ana works at Acme in Oslo";
        let tokens = concord_domain::tokens::tokenize(text);
        let names = vec!["PER".to_string(), "ORG".to_string(), "LOC".to_string()];
        // Spans out of order, one of an unknown type: indices follow the kept spans.
        let spans = [
            Span::new(13, 17, "ORG"),
            Span::new(0, 3, "PER"),
            Span::new(21, 25, "CITY"),
        ];
        let (word, chars, index) = word_spans(&tokens, &spans, &names);
        assert_eq!(index, [Some(0), Some(1), None]);
        assert_eq!(
            word,
            [
                EntitySpan {
                    start: 3,
                    end: 4,
                    label: 1
                },
                EntitySpan {
                    start: 0,
                    end: 1,
                    label: 0
                }
            ]
        );
        assert_eq!(chars[0], Span::new(13, 17, "ORG"));
        let spec_schema = RelationSchema {
            entity_types: names,
            relations: vec![RelationType {
                name: "works_for".into(),
                head: vec!["PER".into()],
                tail: vec!["ORG".into()],
            }],
            max_distance: DEFAULT_MAX_DISTANCE,
        };
        let value = AnnotationValue {
            labels: Vec::new(),
            spans: spans.to_vec(),
            relations: vec![
                concord_domain::Relation::new(1, 0, "works_for"),
                // An end that is dropped drops the relation.
                concord_domain::Relation::new(0, 2, "works_for"),
            ],
        };
        let item = RelationItem::of("x".into(), text, tokens, &value, &spec_schema);
        assert_eq!(
            item.relations,
            [SpanRelation {
                head: 1,
                tail: 0,
                label: 0
            }]
        );
        assert_eq!(
            item.gold_keys(),
            [(((0, 3, "PER".to_string()), (13, 17, "ORG".to_string())), 0)]
        );
    }
}
