//! The `train` job of span projects: a token classifier (BIO tags over the items' words) on
//! the items whose spans humans confirmed, with the requested trainer — a head on frozen
//! word features of the project's encoder, or the encoder fine-tuned with the head — then
//! evaluated on the held-out fifth (chosen by item id hash) with entity-level strict
//! precision, recall and F1 (and per item, strict counts of the version and of the project's
//! patterns), compared on those items with the active version, and stored — as the active
//! version unless the worker trained it on its own and it is worse than that one — and, when
//! active, used for every suggestion. A relations project's version also gets a relation
//! classifier over the same encoder, trained and measured in `process_train_relations.rs`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_domain::bio::TokenSpan;
use concord_domain::{
    ComparisonMetric, HeldOutSpanCounts, ProjectId, Span, TrainParams, Trainer, VersionComparison,
};
use concord_ml::{
    fine_tune_tokens, word_features, Encoder, FeatureSettings, TokenClassifier,
    TokenFineTuneParams, TokenHeadParams,
};
use concord_store::{ModelVersionRecord, VersionParams};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::jobs::{Stop, TuningProgress};
use super::patterns::{compile, CompiledPatterns};
use super::process_train_relations::{RelationData, RelationVersion};
use super::project_model;
use super::span_metrics::span_metrics;
use super::span_model::{suggested_spans, token_spans, words, ConfirmedItem, SpanModel};
use super::{has_model, held_out};
use crate::{now_ms, Engine, EngineError};

/// Items with confirmed spans needed before training.
pub(super) const MIN_TRAINING_ITEMS: usize = 10;
/// Encoder windows per forward pass when reading word features.
const WINDOWS_PER_PASS: usize = 32;

/// A trainer's settings as a version records them (a JSON object), for people to read.
fn recorded<T: Serialize>(
    settings: &T,
    features: &FeatureSettings,
) -> Result<serde_json::Map<String, serde_json::Value>, EngineError> {
    let encode = |v: serde_json::Result<serde_json::Value>| {
        v.map_err(|e| EngineError::internal("encoding trainer settings", e))
    };
    let mut map = match encode(serde_json::to_value(settings))? {
        serde_json::Value::Object(map) => map,
        other => {
            return Err(EngineError::internal_fault(format!(
                "trainer settings are not an object: {other}"
            )))
        }
    };
    map.insert("features".into(), encode(serde_json::to_value(features))?);
    Ok(map)
}

/// Items split for training: words and word spans of each.
struct Split<'a> {
    items: Vec<&'a ConfirmedItem>,
    words: Vec<Vec<&'a str>>,
    spans: Vec<Vec<TokenSpan>>,
}

impl<'a> Split<'a> {
    fn of(items: Vec<&'a ConfirmedItem>, labels: &[String]) -> Split<'a> {
        let words = items.iter().map(|c| words(&c.text, &c.tokens)).collect();
        let spans = items
            .iter()
            .map(|c| token_spans(&c.tokens, &c.spans, labels))
            .collect();
        Split {
            items,
            words,
            spans,
        }
    }

    fn entities(&self) -> usize {
        self.spans.iter().map(Vec::len).sum()
    }
}

impl Engine {
    /// Trains a token classifier on the confirmed spans with `request.trainer`, evaluates it
    /// on the held-out items, stores it as the active version and refreshes the suggestions.
    pub(super) fn process_train_spans(
        &self,
        id: u64,
        project: ProjectId,
        request: TrainParams,
    ) -> Result<serde_json::Value, Stop> {
        let record = self.project_record(project)?;
        let spec = record.spec.clone();
        let model = project_model(&spec).to_string();
        let names: Vec<String> = spec.labels.iter().map(|l| l.name.clone()).collect();
        let confirmed = self.confirmed_spans(project, &spec)?;
        let (test, train): (Vec<&ConfirmedItem>, Vec<&ConfirmedItem>) =
            confirmed.iter().partition(|c| held_out(&c.id));
        let train = Split::of(train, &names);
        let test = Split::of(test, &names);
        if confirmed.len() < MIN_TRAINING_ITEMS || train.entities() == 0 {
            return Err(Stop::Failed(EngineError::Invalid(format!(
                "training needs at least {MIN_TRAINING_ITEMS} items with confirmed spans and at least one entity among those it trains on (found {} items, {} entities in the {} not held out)",
                confirmed.len(),
                train.entities(),
                train.items.len()
            ))));
        }
        let mut hasher = Sha256::new();
        for (item, spans) in train.items.iter().zip(&train.spans) {
            hasher.update(item.seq.to_le_bytes());
            for s in spans {
                for n in [s.start, s.end, s.label] {
                    hasher.update((n as u64).to_le_bytes());
                }
            }
        }
        let train_hash = hex::encode(hasher.finalize());
        let features = FeatureSettings::default();
        // A relations project's version carries a relation classifier over the same encoder,
        // once the items it trains on hold a confirmed relation; until then the spans train
        // alone (the job's result says why there is no relation classifier).
        let (relation_data, relations_skipped) = if spec.task.has_relations() {
            let data = self.confirmed_relations(project, &spec)?;
            if data.relations() == 0 {
                let why = format!(
                    "no relation classifier: none of the {} items with confirmed answers it trains on holds a relation",
                    data.train.len()
                );
                (None, Some(why))
            } else {
                (Some(data), None)
            }
        } else {
            (None, None)
        };
        let (classifier, encoder, mut params, relations) = match request.trainer {
            Trainer::Head => {
                let base = self.inner.models.encoder(&model)?;
                let settings = TokenHeadParams::default();
                let x = self.word_features_with_progress(id, &base, &train.words, &features)?;
                self.check_cancel(id)?;
                let classifier = TokenClassifier::train(
                    &names,
                    features,
                    &x,
                    &train.spans,
                    &settings,
                    base.device(),
                )?;
                let params = VersionParams {
                    settings: recorded(&settings, &features)?,
                    ..VersionParams::default()
                };
                let relations = match &relation_data {
                    Some(data) => Some(self.relation_head(id, data, &base, &classifier)?),
                    None => None,
                };
                (classifier, base, params, relations)
            }
            Trainer::SetFit => {
                return Err(Stop::Failed(EngineError::Invalid(
                    "few-shot tuning (setfit) is for single-label classification projects; train a head or fine-tune".into(),
                )))
            }
            Trainer::FineTune => self.fine_tune_spans(
                id,
                &model,
                &names,
                &train,
                features,
                request,
                relation_data.as_ref(),
            )?,
        };
        params.model = Some(model.clone());
        // Both sides at word level: a gold span drawn inside a word (character mode) counts
        // as the words it covers, as it was trained.
        let gold = word_gold(&test, &names);
        let predicted = self.classifier_spans(&classifier, &encoder, &names, &test)?;
        let metrics = if test.items.is_empty() {
            None
        } else {
            Some(span_metrics(&names, &predicted, &gold)?)
        };
        // Each held-out item's strict counts, the version's and the project's patterns' (the
        // baseline a span version's suggestions must beat).
        let rules = compile(&spec.settings.patterns)?;
        let held_out_spans: Vec<HeldOutSpanCounts> = test
            .items
            .iter()
            .zip(predicted.iter().zip(&gold))
            .map(|(item, (p, g))| HeldOutSpanCounts {
                model: strict_counts(p, g),
                patterns: strict_counts(
                    &pattern_spans(&rules, item, spec.settings.overlapping_spans),
                    g,
                ),
            })
            .collect();
        // An automatic training replaces the active version only when it is not worse on the
        // same held-out items; a person's request always does (the comparison is recorded
        // all the same).
        let comparison = if test.items.is_empty() {
            None
        } else {
            let incumbent = match record.active_model {
                Some(v) => self.incumbent_spans(
                    project,
                    v,
                    &names,
                    &test,
                    spec.settings.overlapping_spans,
                )?,
                None => None,
            };
            Some(VersionComparison {
                metric: ComparisonMetric::SpanF1,
                incumbent: record.active_model,
                items: test.items.len() as u64,
                candidate: micro_f1(
                    predicted
                        .iter()
                        .zip(&gold)
                        .map(|(p, g)| strict_counts(p, g)),
                ),
                incumbent_score: incumbent.map(|spans| {
                    micro_f1(spans.iter().zip(&gold).map(|(p, g)| strict_counts(p, g)))
                }),
                activated: false,
            })
        };
        let mut stored_model = serde_json::to_value(SpanModel::TokenClassifier { classifier })
            .map_err(|e| EngineError::internal("encoding the token classifier", e))?;
        if let Some(relations) = &relations {
            relations.attach(&mut stored_model)?;
        }
        let new_version = ModelVersionRecord {
            trainer: request.trainer.as_str().into(),
            created_ms: now_ms(),
            parent: record.active_model,
            params,
            train_size: train.items.len() as u64,
            train_hash,
            labels: names,
            encoder: encoder.fingerprint().to_string(),
            metrics: metrics.as_ref().and_then(|m| serde_json::to_value(m).ok()),
            classifier: stored_model,
            name: None,
            held_out: Vec::new(),
            held_out_spans,
            confirmed: Some(confirmed.len() as u64),
            auto: request.auto,
            comparison,
        };
        let (version, activated, comparison) =
            self.store_trained_version(project, new_version, record.active_model)?;
        tracing::info!(project = %project, version, trainer = request.trainer.as_str(), train = train.items.len(), test = test.items.len(), auto = ?request.auto, comparison = ?comparison, activated, "span model trained");
        // A version that lost leaves the suggestions and the queue order of the active one.
        let suggestions = if activated {
            let written = self.predict_spans(id, project, version, 0)?;
            self.order_queue(project, version)?;
            written
        } else {
            0
        };
        Ok(serde_json::json!({
            "version": version,
            "trainer": request.trainer.as_str(),
            "train_size": train.items.len(),
            "test_size": test.items.len(),
            "micro_f1": metrics.as_ref().map(|m| m.micro_f1),
            "macro_f1": metrics.as_ref().map(|m| m.macro_f1),
            "relations_skipped": relations_skipped,
            "relation_f1": relations
                .as_ref()
                .and_then(|r| r.evaluation.as_ref())
                .map(|e| e.end_to_end.micro_f1),
            "suggestions": suggestions,
            "activated": activated,
            "comparison": comparison,
        }))
    }

    /// Word features of `items` from `encoder`, storing the progress (windows read) every
    /// second or so.
    fn word_features_with_progress(
        &self,
        id: u64,
        encoder: &Encoder,
        items: &[Vec<&str>],
        features: &FeatureSettings,
    ) -> Result<Vec<Vec<Vec<f32>>>, Stop> {
        let mut last_saved = Instant::now();
        Ok(word_features(
            encoder,
            items,
            features,
            WINDOWS_PER_PASS,
            &mut |done, total| {
                if last_saved.elapsed() >= Duration::from_secs(1) || done == total {
                    last_saved = Instant::now();
                    let _ = self.store().update_job(id, |j| {
                        j.done = done as u64;
                        j.total = total as u64;
                    });
                }
            },
        )?)
    }

    /// Fine-tunes a fresh copy of the base encoder with a tag head on `train`, saves its
    /// weights and loads them back. Progress counts training steps. With `relations` (a
    /// relations project), the encoder is then fine-tuned further with the relation head,
    /// and the tag head is fitted again on frozen features of that final encoder, so both
    /// models read the one encoder the version keeps.
    #[allow(clippy::type_complexity, clippy::too_many_arguments)]
    fn fine_tune_spans(
        &self,
        id: u64,
        model: &str,
        names: &[String],
        train: &Split<'_>,
        features: FeatureSettings,
        request: TrainParams,
        relations: Option<&RelationData>,
    ) -> Result<
        (
            TokenClassifier,
            Arc<Encoder>,
            VersionParams,
            Option<RelationVersion>,
        ),
        Stop,
    > {
        let encoder = self.inner.models.fresh_base(model)?;
        // Without a request's epochs, the token trainer's own default (tuned for tagging).
        let defaults = TokenFineTuneParams::default();
        let settings = TokenFineTuneParams {
            epochs: request.epochs.unwrap_or(defaults.epochs),
            ..defaults
        };
        let mut progress = TuningProgress::new(self, id);
        let (classifier, losses) = fine_tune_tokens(
            &encoder,
            names,
            features,
            &train.words,
            &train.spans,
            &settings,
            &mut |step, steps| progress.step(step, steps),
        )
        .map_err(|e| progress.stop(e))?;
        let (classifier, relation_version) = match relations {
            Some(data) => {
                let version = self.relation_fine_tune(id, data, &encoder, request.epochs)?;
                let x = self.word_features_with_progress(id, &encoder, &train.words, &features)?;
                let refit = TokenClassifier::train(
                    names,
                    features,
                    &x,
                    &train.spans,
                    &TokenHeadParams::default(),
                    encoder.device(),
                )?;
                (refit, Some(version))
            }
            None => (classifier, None),
        };
        let file = self.inner.models.store_weights(&encoder, id)?;
        // The saved file, loaded back, is what predicts from now on: its fingerprint is the
        // file's hash, so its embeddings are cached apart from the base model's.
        let tuned = self.inner.models.encoder_from_file(model, Some(&file))?;
        let mut settings_recorded = recorded(&settings, &features)?;
        settings_recorded.insert("epoch_losses".into(), serde_json::json!(losses));
        let params = VersionParams {
            encoder_file: Some(file),
            settings: settings_recorded,
            ..VersionParams::default()
        };
        let relation_version = match (relation_version, relations) {
            (Some(mut version), Some(data)) => {
                version.evaluation = data.evaluate(&version.classifier, &tuned, &classifier)?;
                Some(version)
            }
            _ => None,
        };
        Ok((classifier, tuned, params, relation_version))
    }

    /// `classifier`'s spans on the held-out items, as word-level character spans.
    fn classifier_spans(
        &self,
        classifier: &TokenClassifier,
        encoder: &Encoder,
        names: &[String],
        test: &Split<'_>,
    ) -> Result<Vec<Vec<Span>>, Stop> {
        if test.items.is_empty() {
            return Ok(Vec::new());
        }
        let predictions = classifier.predict(encoder, &test.words, WINDOWS_PER_PASS)?;
        Ok(test
            .items
            .iter()
            .zip(predictions)
            .map(|(item, p)| as_spans(suggested_spans(&item.tokens, &p.spans, names)))
            .collect())
    }

    /// The spans version `version` (the one active when the candidate was trained) gives the
    /// held-out items: its patterns' or its token classifier's. `None` when it cannot give
    /// them (an imported version, other labels, an unreadable model).
    fn incumbent_spans(
        &self,
        project: ProjectId,
        version: u64,
        names: &[String],
        test: &Split<'_>,
        overlapping: bool,
    ) -> Result<Option<Vec<Vec<Span>>>, Stop> {
        let Some(record) = self.store().model_version(project, version)? else {
            return Ok(None);
        };
        if !has_model(&record) || record.labels != names {
            return Ok(None);
        }
        match SpanModel::read(version, record.classifier.clone()) {
            Ok(SpanModel::Patterns { patterns, .. }) => {
                let rules = compile(&patterns)?;
                Ok(Some(
                    test.items
                        .iter()
                        .map(|item| pattern_spans(&rules, item, overlapping))
                        .collect(),
                ))
            }
            Ok(SpanModel::TokenClassifier { classifier }) => {
                let encoder = self.inner.models.encoder_for(&record)?;
                Ok(Some(self.classifier_spans(
                    &classifier,
                    &encoder,
                    names,
                    test,
                )?))
            }
            Err(e) => {
                tracing::warn!(project = %project, version, error = %e, "stored span model unreadable; not compared");
                Ok(None)
            }
        }
    }
}

/// Spans without their confidence.
fn as_spans(spans: Vec<concord_domain::SuggestedSpan>) -> Vec<Span> {
    spans
        .into_iter()
        .map(|s| Span::new(s.start, s.end, s.label))
        .collect()
}

/// The held-out items' confirmed spans at word level, as the versions are measured on them.
fn word_gold(test: &Split<'_>, names: &[String]) -> Vec<Vec<Span>> {
    test.items
        .iter()
        .zip(&test.spans)
        .map(|(item, spans)| {
            let scored: Vec<concord_ml::ScoredSpan> = spans
                .iter()
                .map(|&span| concord_ml::ScoredSpan {
                    span,
                    confidence: 1.0,
                })
                .collect();
            as_spans(suggested_spans(&item.tokens, &scored, names))
        })
        .collect()
}

/// The spans `rules` suggest on one item.
fn pattern_spans(rules: &CompiledPatterns, item: &ConfirmedItem, overlapping: bool) -> Vec<Span> {
    let found = rules.find(&item.text, &item.tokens);
    as_spans(rules.suggest(&found, &[], overlapping))
}

/// Strict matches of `predicted` against `gold` on one item: `[tp, fp, fn]`, a span counting
/// only with the same bounds and label.
fn strict_counts(predicted: &[Span], gold: &[Span]) -> [u32; 3] {
    let key = |s: &Span| (s.start, s.end, s.label.clone());
    let predicted: HashSet<_> = predicted.iter().map(key).collect();
    let gold: HashSet<_> = gold.iter().map(key).collect();
    let tp = predicted.intersection(&gold).count() as u32;
    [tp, predicted.len() as u32 - tp, gold.len() as u32 - tp]
}

/// Micro F1 over items' strict counts (0 when there is nothing to find and nothing found,
/// seqeval's convention, as in the version's metrics).
fn micro_f1(counts: impl IntoIterator<Item = [u32; 3]>) -> f64 {
    let [tp, fp, fn_] = counts.into_iter().fold([0u64; 3], |acc, c| {
        [
            acc[0] + u64::from(c[0]),
            acc[1] + u64::from(c[1]),
            acc[2] + u64::from(c[2]),
        ]
    });
    let denominator = 2 * tp + fp + fn_;
    if denominator == 0 {
        0.0
    } else {
        (2 * tp) as f64 / denominator as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u32, end: u32, label: &str) -> Span {
        Span::new(start, end, label.to_string())
    }

    #[test]
    fn strict_counts_need_the_same_bounds_and_label() {
        let gold = [span(0, 5, "person"), span(10, 15, "city")];
        let predicted = [
            span(0, 5, "person"),
            span(10, 14, "city"),
            span(20, 25, "year"),
        ];
        assert_eq!(strict_counts(&predicted, &gold), [1, 2, 1]);
        assert_eq!(strict_counts(&[], &gold), [0, 0, 2]);
        // Micro F1 pools the items: 2·2 / (2·2 + 2 + 2).
        let f1 = micro_f1([[1, 2, 1], [1, 0, 1]]);
        assert!((f1 - 0.5).abs() < 1e-12, "{f1}");
        assert_eq!(micro_f1([[0, 0, 0]]), 0.0);
    }
}
