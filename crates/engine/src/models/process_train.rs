//! The `train` job: a new version trained on the confirmed labels (gold, else an agreed
//! majority) with the requested trainer — a head on the cached embeddings or a fine-tuned
//! encoder — evaluated on a held-out fifth and compared there with the active version (the
//! incumbent). A person's training is made active; one the worker queued on its own
//! (`TrainParams::auto`) only when it is not worse than the incumbent on the same held-out
//! items. An active new version is then used for every suggestion.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use concord_domain::{
    aggregate_labels, Aggregate, ComparisonMetric, HeldOutPrediction, ProjectId, ProjectSpec,
    TaskKind, TrainParams, Trainer, VersionComparison,
};
use concord_ml::{evaluate, Encoder, LinearHead};
use concord_store::{ModelVersionRecord, VersionParams};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::classifier::Classifier;
use super::encoders::{fingerprint_bytes, fingerprint_from_hex};
use super::jobs::{Stop, TuningProgress};
use super::{has_model, held_out, project_model};
use crate::review::effective_gold;
use crate::{now_ms, Engine, EngineError};

/// Confirmed labels needed before training.
pub(super) const MIN_TRAINING_LABELS: usize = 10;
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
                // Logistic regression solved to convergence, its penalty chosen by
                // cross-validation on these training labels (the held-out split stays unseen).
                let settings = concord_ml::CvHeadParams::default();
                let embeddings = self.embeddings_of(project, &base, &train)?;
                let y: Vec<usize> = train.iter().map(|(_, c)| *c).collect();
                let (head, report) =
                    concord_ml::train_head_cv(&embeddings, &y, names.len(), &settings)?;
                let mut recorded = recorded_settings(&settings)?;
                recorded.insert(
                    "cross_validation".into(),
                    serde_json::to_value(&report)
                        .map_err(|e| EngineError::internal("encoding the head's report", e))?,
                );
                let params = VersionParams {
                    settings: recorded,
                    ..VersionParams::default()
                };
                (head, base.clone(), params)
            }
            Trainer::FineTune | Trainer::SetFit => {
                self.tune(id, project, &model, &train, names.len(), request)?
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
        // An automatic training replaces the active version only when it is not worse on the
        // held-out items both can predict; a person's request always does (its comparison is
        // recorded all the same).
        let comparison =
            self.compare_with_incumbent(project, record.active_model, &names, &test, &held_out)?;
        let new_version = ModelVersionRecord {
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
            comparison,
        };
        let (version, activated, comparison) =
            self.store_trained_version(project, new_version, record.active_model)?;
        tracing::info!(project = %project, version, trainer = request.trainer.as_str(), train = train.len(), test = test.len(), auto = ?request.auto, comparison = ?comparison, activated, "model trained");
        // A version that lost leaves the suggestions and the queue order of the active one.
        let suggestions = if activated {
            let written = self.write_suggestions(project, version)?;
            self.order_queue(project, version)?;
            written
        } else {
            0
        };
        Ok(serde_json::json!({
            "version": version,
            "trainer": request.trainer.as_str(),
            "train_size": train.len(),
            "test_size": test.len(),
            "accuracy": metrics.as_ref().map(|m| m.accuracy),
            "macro_f1": metrics.as_ref().map(|m| m.macro_f1),
            "suggestions": suggestions,
            "activated": activated,
            "comparison": comparison,
        }))
    }

    /// The candidate's held-out predictions against those of `incumbent` (the version active
    /// when the candidate was trained) on the same held-out items: those the incumbent can
    /// predict (same labels, a classifier, embeddings of the item under its encoder — a
    /// zero-shot version counts). Accuracy of each on those items; `activated` is left for
    /// the caller. None without held-out items.
    fn compare_with_incumbent(
        &self,
        project: ProjectId,
        incumbent: Option<u64>,
        names: &[String],
        test: &[(u64, usize)],
        candidate: &[HeldOutPrediction],
    ) -> Result<Option<VersionComparison>, Stop> {
        if test.is_empty() || candidate.len() != test.len() {
            return Ok(None);
        }
        let seqs: Vec<u64> = test.iter().map(|(seq, _)| *seq).collect();
        let predicted = match incumbent {
            Some(v) => self.incumbent_predictions(project, v, names, &seqs)?,
            None => None,
        };
        // Items both can predict: every held-out item when the incumbent predicts none.
        let shared: Vec<usize> = match &predicted {
            Some(p) if p.iter().any(Option::is_some) => {
                (0..test.len()).filter(|&i| p[i].is_some()).collect()
            }
            _ => (0..test.len()).collect(),
        };
        let items = shared.len();
        let candidate_right = shared
            .iter()
            .filter(|&&i| candidate[i].predicted == candidate[i].gold)
            .count();
        let incumbent_right = predicted
            .as_ref()
            .filter(|p| p.iter().any(Option::is_some))
            .map(|p| shared.iter().filter(|&&i| p[i] == Some(test[i].1)).count());
        Ok(Some(VersionComparison {
            metric: ComparisonMetric::Accuracy,
            incumbent,
            items: items as u64,
            candidate: candidate_right as f64 / items as f64,
            incumbent_score: incumbent_right.map(|r| r as f64 / items as f64),
            activated: false,
        }))
    }

    /// The class (in `names` order) version `version` predicts for each of `seqs` from their
    /// cached embeddings under its encoder (`None` for an item without one); `None` when the
    /// version cannot predict these labels (an imported version, other labels, an unreadable
    /// classifier).
    fn incumbent_predictions(
        &self,
        project: ProjectId,
        version: u64,
        names: &[String],
        seqs: &[u64],
    ) -> Result<Option<Vec<Option<usize>>>, Stop> {
        let Some(record) = self.store().model_version(project, version)? else {
            return Ok(None);
        };
        // A version trained before the split was by item id (it records no `confirmed`) was
        // trained on most of today's held-out items: its score there would be inflated.
        let trained_on_other_split = record.train_size > 0 && record.confirmed.is_none();
        if !has_model(&record) || record.labels != names || trained_on_other_split {
            return Ok(None);
        }
        let classifier = match serde_json::from_value::<Classifier>(record.classifier) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(project = %project, version, error = %e, "stored model unreadable; not compared");
                return Ok(None);
            }
        };
        let found =
            self.store()
                .embeddings_at(project, &fingerprint_from_hex(&record.encoder), seqs)?;
        let present: Vec<usize> = (0..seqs.len()).filter(|&i| found[i].is_some()).collect();
        let x: Vec<Vec<f32>> = found.into_iter().flatten().collect();
        let mut out = vec![None; seqs.len()];
        for (&i, p) in present.iter().zip(classifier.predict(&x)) {
            out[i] = Some(concord_ml::argmax(&p));
        }
        Ok(Some(out))
    }

    /// Tunes a fresh copy of the base encoder on `train` as `request.trainer` says — fine-tuning
    /// with a head, or few-shot (contrastively on pairs of its texts, SetFit-style:
    /// `concord_ml::setfit`, then the cross-validated head on the tuned embeddings) — saves its
    /// weights and embeds every item with it. Progress counts training steps, then items.
    /// Returns the head, the tuned encoder and the version's parameters (its weights file, the
    /// settings and each epoch's loss).
    fn tune(
        &self,
        id: u64,
        project: ProjectId,
        model: &str,
        train: &[(u64, usize)],
        classes: usize,
        request: TrainParams,
    ) -> Result<(LinearHead, Arc<Encoder>, VersionParams), Stop> {
        let encoder = self.inner.models.fresh_base(model)?;
        let texts = self.texts_of(project, train)?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let y: Vec<usize> = train.iter().map(|(_, c)| *c).collect();
        let mut progress = TuningProgress::new(self, id);
        let (head, recorded) = if request.trainer == Trainer::SetFit {
            let defaults = concord_ml::SetFitParams::default();
            let settings = concord_ml::SetFitParams {
                epochs: request.epochs.unwrap_or(defaults.epochs),
                ..defaults
            };
            let outcome = concord_ml::setfit(
                &encoder,
                &refs,
                &y,
                classes,
                &settings,
                &mut |step, steps| progress.step(step, steps),
            )
            .map_err(|e| progress.stop(e))?;
            let mut recorded = recorded_settings(&settings)?;
            recorded.insert(
                "epoch_losses".into(),
                serde_json::json!(outcome.epoch_losses),
            );
            recorded.insert(
                "cross_validation".into(),
                serde_json::to_value(&outcome.report)
                    .map_err(|e| EngineError::internal("encoding the head's report", e))?,
            );
            (outcome.head, recorded)
        } else {
            let tokens = encoder.tokenize(&refs)?;
            let settings = concord_ml::FineTuneParams {
                epochs: request.epochs.unwrap_or(DEFAULT_FINE_TUNE_EPOCHS),
                ..concord_ml::FineTuneParams::default()
            };
            let (head, losses) = concord_ml::fine_tune(
                &encoder,
                &tokens,
                &y,
                classes,
                &settings,
                &mut |step, steps| progress.step(step, steps),
            )
            .map_err(|e| progress.stop(e))?;
            let mut recorded = recorded_settings(&settings)?;
            recorded.insert("epoch_losses".into(), serde_json::json!(losses));
            (head, recorded)
        };
        // The saved file, loaded back, is what predicts from now on: its fingerprint is the
        // file's hash, so its embeddings are cached apart from the base model's.
        let file = self.inner.models.store_weights(&encoder, id)?;
        let tuned = self.inner.models.encoder_from_file(model, Some(&file))?;
        self.embed_items(id, project, 0, &tuned)?;
        let params = VersionParams {
            encoder_file: Some(file),
            settings: recorded,
            ..VersionParams::default()
        };
        Ok((head, tuned, params))
    }

    /// The texts of `train`'s items, in its order.
    fn texts_of(&self, project: ProjectId, train: &[(u64, usize)]) -> Result<Vec<String>, Stop> {
        train
            .iter()
            .map(|(seq, _)| match self.store().item(project, *seq)? {
                Some(item) => Ok(item.text),
                None => Err(Stop::Failed(EngineError::NotFound(format!("item {seq}")))),
            })
            .collect()
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
