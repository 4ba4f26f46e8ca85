//! The `train` job of span projects: a token classifier (BIO tags over the items' words) on
//! the items whose spans humans confirmed, with the requested trainer — a head on frozen
//! word features of the project's encoder, or the encoder fine-tuned with the head — then
//! evaluated on the held-out fifth (chosen by item id hash) with entity-level strict
//! precision, recall and F1, stored as the active version, and used for every suggestion.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use concord_domain::bio::TokenSpan;
use concord_domain::{ProjectId, Span, TrainParams, Trainer};
use concord_ml::{
    fine_tune_tokens, word_features, Encoder, FeatureSettings, TokenClassifier,
    TokenFineTuneParams, TokenHeadParams,
};
use concord_store::{ModelVersionRecord, VersionParams};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::held_out;
use super::jobs::Stop;
use super::project_model;
use super::span_metrics::{span_metrics, SpanMetrics};
use super::span_model::{suggested_spans, token_spans, words, ConfirmedItem, SpanModel};
use crate::{now_ms, Engine, EngineError};

/// Items with confirmed spans needed before training.
const MIN_TRAINING_ITEMS: usize = 10;
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
        let (classifier, encoder, mut params) = match request.trainer {
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
                (classifier, base, params)
            }
            Trainer::FineTune => {
                self.fine_tune_spans(id, &model, &names, &train, features, request)?
            }
        };
        params.model = Some(model.clone());
        let metrics = if test.items.is_empty() {
            None
        } else {
            Some(self.held_out_metrics(&classifier, &encoder, &names, &test)?)
        };
        let version = self.store().create_model_version(
            project,
            &ModelVersionRecord {
                trainer: request.trainer.as_str().into(),
                created_ms: now_ms(),
                parent: record.active_model,
                params,
                train_size: train.items.len() as u64,
                train_hash,
                labels: names,
                encoder: encoder.fingerprint().to_string(),
                metrics: metrics.as_ref().and_then(|m| serde_json::to_value(m).ok()),
                classifier: serde_json::to_value(SpanModel::TokenClassifier { classifier })
                    .map_err(|e| EngineError::internal("encoding the token classifier", e))?,
                name: None,
                held_out: Vec::new(),
                held_out_spans: Vec::new(),
                confirmed: None,
                auto: None,
                comparison: None,
            },
            true,
        )?;
        tracing::info!(project = %project, version, trainer = request.trainer.as_str(), train = train.items.len(), test = test.items.len(), "span model trained");
        let suggestions = self.predict_spans(id, project, version, 0)?;
        self.order_queue(project, version)?;
        Ok(serde_json::json!({
            "version": version,
            "trainer": request.trainer.as_str(),
            "train_size": train.items.len(),
            "test_size": test.items.len(),
            "micro_f1": metrics.as_ref().map(|m| m.micro_f1),
            "macro_f1": metrics.as_ref().map(|m| m.macro_f1),
            "suggestions": suggestions,
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
    /// weights and loads them back. Progress counts training steps.
    fn fine_tune_spans(
        &self,
        id: u64,
        model: &str,
        names: &[String],
        train: &Split<'_>,
        features: FeatureSettings,
        request: TrainParams,
    ) -> Result<(TokenClassifier, Arc<Encoder>, VersionParams), Stop> {
        let encoder = self.inner.models.fresh_base(model)?;
        // Without a request's epochs, the token trainer's own default (tuned for tagging).
        let defaults = TokenFineTuneParams::default();
        let settings = TokenFineTuneParams {
            epochs: request.epochs.unwrap_or(defaults.epochs),
            ..defaults
        };
        let mut cancelled = false;
        let mut last_saved = Instant::now();
        let (classifier, losses) = fine_tune_tokens(
            &encoder,
            names,
            features,
            &train.words,
            &train.spans,
            &settings,
            &mut |step, steps| {
                // Progress and the cancel flag go through the store every second or so.
                if last_saved.elapsed() >= Duration::from_secs(1) || step == steps {
                    last_saved = Instant::now();
                    let _ = self.store().update_job(id, |j| {
                        j.done = step as u64;
                        j.total = steps as u64;
                    });
                    if let Err(stop) = self.check_cancel(id) {
                        // A shutdown stops the training too, but the job is not cancelled:
                        // it goes back to the queue.
                        cancelled = matches!(stop, Stop::Cancelled);
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            },
        )
        .map_err(|e| match e {
            concord_ml::MlError::Cancelled if cancelled => Stop::Cancelled,
            e => Stop::from(e),
        })?;
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
        Ok((classifier, tuned, params))
    }

    /// Entity-level strict metrics of `classifier` on the held-out items. Both sides are
    /// compared at word level: a gold span drawn inside a word (character mode) counts as
    /// the words it covers, as it was trained.
    fn held_out_metrics(
        &self,
        classifier: &TokenClassifier,
        encoder: &Encoder,
        names: &[String],
        test: &Split<'_>,
    ) -> Result<SpanMetrics, Stop> {
        let predictions = classifier.predict(encoder, &test.words, WINDOWS_PER_PASS)?;
        let as_spans = |spans: Vec<concord_domain::SuggestedSpan>| {
            spans
                .into_iter()
                .map(|s| Span::new(s.start, s.end, s.label))
                .collect::<Vec<Span>>()
        };
        let mut predicted = Vec::with_capacity(test.items.len());
        let mut gold = Vec::with_capacity(test.items.len());
        for ((item, p), spans) in test.items.iter().zip(predictions).zip(&test.spans) {
            predicted.push(as_spans(suggested_spans(&item.tokens, &p.spans, names)));
            let gold_scored: Vec<concord_ml::ScoredSpan> = spans
                .iter()
                .map(|&span| concord_ml::ScoredSpan {
                    span,
                    confidence: 1.0,
                })
                .collect();
            gold.push(as_spans(suggested_spans(&item.tokens, &gold_scored, names)));
        }
        Ok(span_metrics(names, &predicted, &gold)?)
    }
}
