//! The `train` job: a new version trained on the confirmed labels (gold, else an agreed
//! majority) with the requested trainer — a head on the cached embeddings or a fine-tuned
//! encoder — evaluated on a held-out fifth, made active, then used for every suggestion.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use concord_domain::{
    aggregate_labels, Aggregate, HeldOutPrediction, ProjectId, ProjectSpec, TaskKind, TrainParams,
    Trainer,
};
use concord_ml::{evaluate, Encoder, HeadParams, LinearHead};
use concord_store::{ModelVersionRecord, VersionParams};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::classifier::Classifier;
use super::encoders::fingerprint_bytes;
use super::jobs::Stop;
use super::{held_out, project_model};
use crate::review::effective_gold;
use crate::{now_ms, Engine, EngineError};

/// Confirmed labels needed before training.
const MIN_TRAINING_LABELS: usize = 10;
/// Fine-tuning epochs when a request names none.
const DEFAULT_FINE_TUNE_EPOCHS: usize = 3;

/// A trainer's settings as a version records them (a JSON object), for people to read.
fn recorded_settings(
    settings: &impl Serialize,
) -> Result<serde_json::Map<String, serde_json::Value>, EngineError> {
    match serde_json::to_value(settings) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(other) => Err(EngineError::internal_fault(format!(
            "trainer settings are not an object: {other}"
        ))),
        Err(e) => Err(EngineError::internal("encoding trainer settings", e)),
    }
}

/// An item's confirmed label, and on which side of the split it falls.
pub(crate) struct ConfirmedLabel {
    pub seq: u64,
    pub label: String,
    /// In the held-out fifth (see [`held_out`]): never trained on, only measured on.
    pub held_out: bool,
}

impl Engine {
    /// Trains a new version on the confirmed labels (gold, else an agreed majority) with
    /// `request.trainer`, evaluates it on a held-out fifth (stratified, fixed seed), stores it
    /// as the active version and refreshes the suggestions.
    pub(super) fn process_train(
        &self,
        id: u64,
        project: ProjectId,
        request: TrainParams,
    ) -> Result<serde_json::Value, Stop> {
        let record = self.project_record(project)?;
        let spec = record.spec.clone();
        let model = project_model(&spec).to_string();
        let base = self.inner.models.encoder(&model)?;
        self.embed_items(id, project, 0, &base)?;
        if spec.task != TaskKind::Classification {
            return Err(Stop::Failed(EngineError::Invalid(
                "training supports single-label projects for now".into(),
            )));
        }
        let confirmed = self.confirmed_labels(project, &spec)?;
        let names: Vec<String> = spec.labels.iter().map(|l| l.name.clone()).collect();
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let embedded: HashSet<u64> = self
            .store()
            .embedded_seqs(project, &fingerprint_bytes(&base))?
            .into_iter()
            .collect();
        let mut rows: Vec<(u64, usize, bool)> = confirmed
            .iter()
            .filter_map(|c| Some((c.seq, *index.get(c.label.as_str())?, c.held_out)))
            .filter(|(seq, _, _)| embedded.contains(seq))
            .collect();
        rows.sort_unstable();
        let classes_seen: HashSet<usize> = rows.iter().map(|(_, c, _)| *c).collect();
        if rows.len() < MIN_TRAINING_LABELS || classes_seen.len() < 2 {
            return Err(Stop::Failed(EngineError::Invalid(format!(
                "training needs at least {MIN_TRAINING_LABELS} confirmed labels in two or more classes (found {} in {})",
                rows.len(),
                classes_seen.len()
            ))));
        }
        let mut hasher = Sha256::new();
        for (seq, c, _) in &rows {
            hasher.update(seq.to_le_bytes());
            hasher.update(names[*c].as_bytes());
        }
        let train_hash = hex::encode(hasher.finalize());
        // The held-out fifth is chosen by each item's id (see `held_out`), so every version
        // of the project is measured on items none of them was trained on, and two versions
        // can be compared on the same items.
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for &(seq, c, held) in &rows {
            if held {
                test.push((seq, c));
            } else {
                train.push((seq, c));
            }
        }
        if train.is_empty() {
            return Err(Stop::Failed(EngineError::Invalid(
                "every confirmed label fell in the held-out split; label a few more items".into(),
            )));
        }
        let (head, encoder, mut params) = match request.trainer {
            Trainer::Head => {
                let settings = HeadParams::default();
                let embeddings = self.embeddings_of(project, &base, &train)?;
                let y: Vec<usize> = train.iter().map(|(_, c)| *c).collect();
                let head =
                    LinearHead::train(&embeddings, &y, names.len(), &settings, base.device())?;
                let params = VersionParams {
                    settings: recorded_settings(&settings)?,
                    ..VersionParams::default()
                };
                (head, base.clone(), params)
            }
            Trainer::FineTune => {
                self.fine_tune(id, project, &model, &train, names.len(), request)?
            }
        };
        params.model = Some(model.clone());
        let (metrics, held_out) = if test.is_empty() {
            (None, Vec::new())
        } else {
            let tx = self.embeddings_of(project, &encoder, &test)?;
            let ty: Vec<usize> = test.iter().map(|(_, c)| *c).collect();
            let probs = head.predict(&tx);
            let held_out = probs
                .iter()
                .zip(&ty)
                .map(|(p, &gold)| {
                    let predicted = concord_ml::argmax(p);
                    HeldOutPrediction {
                        gold: gold as u32,
                        predicted: predicted as u32,
                        confidence: p.get(predicted).copied().unwrap_or(0.0),
                    }
                })
                .collect();
            (Some(evaluate(&probs, &ty, names.len())), held_out)
        };
        let version = self.store().create_model_version(
            project,
            &ModelVersionRecord {
                trainer: request.trainer.as_str().into(),
                created_ms: now_ms(),
                parent: record.active_model,
                params,
                train_size: train.len() as u64,
                train_hash,
                labels: names,
                encoder: encoder.fingerprint().to_string(),
                metrics: metrics.as_ref().and_then(|m| serde_json::to_value(m).ok()),
                classifier: serde_json::to_value(Classifier::Head { head })
                    .map_err(|e| EngineError::internal("encoding the trained head", e))?,
                name: None,
                held_out,
                held_out_spans: Vec::new(),
                confirmed: Some(rows.len() as u64),
                auto: request.auto,
                comparison: None,
            },
            true,
        )?;
        tracing::info!(project = %project, version, trainer = request.trainer.as_str(), train = train.len(), test = test.len(), "model trained");
        let suggestions = self.write_suggestions(project, version)?;
        self.order_queue(project, version)?;
        Ok(serde_json::json!({
            "version": version,
            "trainer": request.trainer.as_str(),
            "train_size": train.len(),
            "test_size": test.len(),
            "accuracy": metrics.as_ref().map(|m| m.accuracy),
            "macro_f1": metrics.as_ref().map(|m| m.macro_f1),
            "suggestions": suggestions,
        }))
    }

    /// Fine-tunes a fresh copy of the base encoder with a head on `train`, saves its weights,
    /// and embeds every item with it. Progress counts training steps, then items. Returns the
    /// head, the tuned encoder and the version's parameters (its weights file, the settings
    /// and each epoch's loss).
    fn fine_tune(
        &self,
        id: u64,
        project: ProjectId,
        model: &str,
        train: &[(u64, usize)],
        classes: usize,
        request: TrainParams,
    ) -> Result<(LinearHead, Arc<Encoder>, VersionParams), Stop> {
        let encoder = self.inner.models.fresh_base(model)?;
        let texts = train
            .iter()
            .map(|(seq, _)| match self.store().item(project, *seq)? {
                Some(item) => Ok(item.text),
                None => Err(Stop::Failed(EngineError::NotFound(format!("item {seq}")))),
            })
            .collect::<Result<Vec<String>, Stop>>()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokens = encoder.tokenize(&refs)?;
        let y: Vec<usize> = train.iter().map(|(_, c)| *c).collect();
        let settings = concord_ml::FineTuneParams {
            epochs: request.epochs.unwrap_or(DEFAULT_FINE_TUNE_EPOCHS),
            ..concord_ml::FineTuneParams::default()
        };
        let mut cancelled = false;
        let mut last_saved = std::time::Instant::now();
        let (head, losses) = concord_ml::fine_tune(
            &encoder,
            &tokens,
            &y,
            classes,
            &settings,
            &mut |step, steps| {
                // Progress and the cancel flag go through the store every second or so.
                if last_saved.elapsed() >= Duration::from_secs(1) || step == steps {
                    last_saved = std::time::Instant::now();
                    let _ = self.store().update_job(id, |j| {
                        j.done = step as u64;
                        j.total = steps as u64;
                    });
                    match self.check_cancel(id) {
                        Ok(()) => {}
                        // A shutdown stops the training too, but the job is not cancelled: it
                        // goes back to the queue.
                        Err(stop) => {
                            cancelled = matches!(stop, Stop::Cancelled);
                            return std::ops::ControlFlow::Break(());
                        }
                    }
                }
                std::ops::ControlFlow::Continue(())
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
        self.embed_items(id, project, 0, &tuned)?;
        let mut recorded = recorded_settings(&settings)?;
        recorded.insert("epoch_losses".into(), serde_json::json!(losses));
        let params = VersionParams {
            encoder_file: Some(file),
            settings: recorded,
            ..VersionParams::default()
        };
        Ok((head, tuned, params))
    }

    /// Every item whose label humans confirmed: its gold label, or else the label a strict
    /// majority of its annotators chose. Gold bulk-accepted from a model's suggestions is not
    /// a human judgement and does not count (the answers, if any, still do).
    pub(crate) fn confirmed_labels(
        &self,
        project: ProjectId,
        spec: &ProjectSpec,
    ) -> Result<Vec<ConfirmedLabel>, EngineError> {
        let order: Vec<String> = spec.labels.iter().map(|l| l.name.clone()).collect();
        let mut out = Vec::new();
        self.store()
            .for_each_item::<EngineError>(project, |seq, item, answers| {
                let gold = effective_gold(spec, item.gold.as_ref(), item.gold_source(), &answers)
                    .filter(|(_, source)| source.is_confirmed_by_people());
                let label = match gold {
                    Some((g, _)) => g.labels.first().cloned(),
                    None => {
                        let lists: Vec<&[String]> = answers
                            .iter()
                            .map(|(_, a)| a.value.labels.as_slice())
                            .collect();
                        match aggregate_labels(spec.task, &lists, &order) {
                            Aggregate::Agreed { labels } => labels.first().cloned(),
                            _ => None,
                        }
                    }
                };
                if let Some(label) = label {
                    out.push(ConfirmedLabel {
                        seq,
                        label,
                        held_out: held_out(&item.id),
                    });
                }
                Ok(())
            })?;
        Ok(out)
    }
}
