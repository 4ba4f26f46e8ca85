//! The model in the loop: the encoder (loaded lazily from the models folder), model versions
//! (zero-shot before any label, then heads trained on confirmed labels), and the single job
//! worker that embeds items, trains and writes suggestions in the background. Handlers only
//! enqueue jobs; the worker persists progress after every batch, so a restart resumes a job
//! where it stopped and a cancel takes effect at the next batch.
//!
//! One module per concern: `encoders` (the encoder cache and fine-tuned weights files),
//! `embeddings` (the item embeddings cache), `classifier` (a version's stored classifier),
//! `jobs` (the queue and the worker's dispatch), one `process_*` module per job kind and task
//! (`process_predict`/`process_train` for label projects, `process_predict_spans`/
//! `process_train_spans` for span projects, with `span_model` their stored model and confirmed
//! spans, `patterns` the pattern pre-annotation and `span_metrics` the held-out figures), and
//! `queue_order` (which items annotators see first), and `portable` (a classification version
//! exported as a self-contained model file, and predicting from one without a database).
//! This file holds the versions.

mod auto_train;
mod classifier;
mod confirmed_span_items;
mod embeddings;
mod encoders;
mod evidence;
mod jobs;
pub mod openai;
mod patterns;
mod portable;
mod process_generate;
mod process_predict;
mod process_predict_spans;
mod process_train;
mod process_train_relations;
mod process_train_spans;
mod queue_order;
mod span_metrics;
mod span_model;
mod validation;

use concord_domain::{
    AnnotationSource, AutoTrigger, JobSpec, ProjectId, ProjectSpec, Role, VersionComparison,
};
use concord_ml::Evaluation;
use concord_store::ModelVersionRecord;
use serde::{Deserialize, Serialize};

use crate::{Engine, EngineError, Principal};
use classifier::Classifier;
use encoders::fingerprint_from_hex;

pub use concord_domain::{TrainParams, Trainer};
pub(crate) use confirmed_span_items::ConfirmedSpanItem;
pub(crate) use encoders::{fingerprint_bytes, remove_files, Models, ENCODERS_DIR};
pub(crate) use evidence::EvidenceCache;
pub use evidence::{Evidence, EvidenceMetric};
pub use jobs::JobInfo;
pub(crate) use jobs::JobSignal;
pub(crate) use patterns::check_patterns;
pub use patterns::MIN_VALIDATING_MATCHES;
pub use portable::{
    FileDigest, PortableEncoder, PortableError, PortableModel, PortablePrediction,
    PortablePredictor, PORTABLE_MODEL_FORMAT,
};
pub use process_generate::{GeneratorInfo, LLM_TRAINER};
pub use span_metrics::{SpanMetrics, SpanTypeMetrics};
pub(crate) use validation::describe_validation;

/// A training request as the server and the CLI send it: the parameters a train job stores.
pub type TrainRequest = TrainParams;

/// The encoder used when a project names none: a folder of this name in the models folder.
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";
/// The most fine-tuning epochs a request may ask for.
pub const MAX_FINE_TUNE_EPOCHS: usize = 20;
/// [`ModelVersionRecord::trainer`] of a zero-shot version (trained ones record their
/// [`Trainer`]).
const ZERO_SHOT_TRAINER: &str = "zero_shot";

/// Whether model features can run, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStatus {
    pub available: bool,
    pub model: String,
    /// Why model features are unavailable (no model folder, unreadable files).
    pub reason: Option<String>,
}

/// A model version as the UI and the API list it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersionInfo {
    pub version: u64,
    pub trainer: String,
    pub created_ms: u64,
    pub parent: Option<u64>,
    pub train_size: u64,
    pub train_hash: String,
    pub labels: Vec<String>,
    pub params: serde_json::Value,
    /// Held-out metrics of a label project's version.
    pub metrics: Option<Evaluation>,
    /// Held-out metrics of a span project's version (for a patterns version, on every
    /// confirmed item).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_metrics: Option<SpanMetrics>,
    /// A name given where the version was made (`patterns` for a patterns version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Confirmed labels (training and held-out) when the version was trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<u64>,
    /// Why the job worker trained it on its own (none: a person asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoTrigger>,
    /// An automatically trained version against the one active at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<VersionComparison>,
    /// Held-out relation metrics of a relations project's version (per type and micro, end to
    /// end and from confirmed spans; pair accuracy beside "no relation").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation_metrics: Option<concord_ml::relation_classifier::RelationEvaluation>,
    /// How its relation classifier was trained (`head`, `fine_tune`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation_trainer: Option<String>,
    /// Whether its relation suggestions are pre-accepted, in one sentence with the figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation_validation: Option<String>,
    /// The live record as evidence: answers free of anchoring (first answers to a hint) that
    /// took the version's suggestion unchanged.
    #[serde(default)]
    pub accepted: u64,
    /// Such answers that changed its suggestion.
    #[serde(default)]
    pub corrected: u64,
    /// `accepted` over `accepted + corrected`, when there are any.
    #[serde(default)]
    pub acceptance_rate: Option<f64>,
    /// Every answer given against its suggestions, pre-selected ones included: the live
    /// acceptance rate the project page shows (anchored once pre-selected, so never evidence).
    #[serde(default)]
    pub shown: concord_domain::ShownOutcomes,
    /// Whether its suggestions have earned pre-selection, and on what figures
    /// (`evidence.validated`).
    pub evidence: Evidence,
    pub active: bool,
}

/// A version and the label it gives each requested item.
pub(crate) struct VersionLabels {
    pub version: u64,
    /// How the version was made (`zero_shot`, `head`, `fine_tune`).
    pub trainer: String,
    /// Per requested item, in request order; `None` where the item has no embedding from the
    /// version's encoder.
    pub labels: Vec<Option<String>>,
}

/// The model folder a project's encoder comes from.
pub(crate) fn project_model(spec: &ProjectSpec) -> &str {
    spec.settings.model.as_deref().unwrap_or(DEFAULT_MODEL)
}

/// Whether a version can predict: one imported with its suggestions (trainer `external`)
/// holds no model, only those suggestions.
pub(crate) fn has_model(record: &ModelVersionRecord) -> bool {
    record.trainer != crate::EXTERNAL_TRAINER && record.trainer != LLM_TRAINER
}

/// Whether an item is held out of training for evaluation: a fifth of the items, chosen by a
/// hash of the item's id, so an item stays on its side as items are added and every version's
/// figures are measured on the same items.
pub(crate) fn held_out(item_id: &str) -> bool {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(item_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first) % 5 == 0
}

/// The base model a version was made with (versions from before models were per project used
/// the default).
pub(crate) fn version_model(record: &ModelVersionRecord) -> &str {
    record.params.model.as_deref().unwrap_or(DEFAULT_MODEL)
}

impl Engine {
    /// Whether the default model can run.
    pub fn model_status(&self) -> ModelStatus {
        self.inner.models.status(DEFAULT_MODEL)
    }

    /// Whether a project's model can run, and why not.
    pub fn project_model_status(&self, project: ProjectId) -> Result<ModelStatus, EngineError> {
        let record = self.project_record(project)?;
        Ok(self.inner.models.status(project_model(&record.spec)))
    }

    /// The model folders in the models folder that hold a loadable model.
    pub fn installed_models(&self) -> Vec<String> {
        self.inner.models.installed()
    }

    /// A project's model versions, newest last (reviewers and admins).
    pub fn model_versions(
        &self,
        actor: &Principal,
        project: ProjectId,
    ) -> Result<Vec<ModelVersionInfo>, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        let record = self.project_record(project)?;
        let active = record.active_model;
        let spans = record.spec.task.is_spans();
        let mut outcomes = self.store().suggestion_outcomes(project)?;
        self.store()
            .model_versions(project)?
            .into_iter()
            .map(|(version, r)| {
                let live = outcomes.remove(&version).unwrap_or_default();
                let evidence = evidence::version_evidence(spans, &r, &live);
                let relations = process_train_relations::RelationVersion::of(&r.classifier);
                let relation_validation = evidence::relation_evidence(&r).map(|e| e.sentence);
                // A version's metrics are read as its project's kind records them.
                let (metrics, span_metrics) = match (r.metrics, spans) {
                    (Some(m), true) => (None, serde_json::from_value(m).ok()),
                    (Some(m), false) => (serde_json::from_value(m).ok(), None),
                    (None, _) => (None, None),
                };
                Ok(ModelVersionInfo {
                    version,
                    trainer: r.trainer,
                    created_ms: r.created_ms,
                    parent: r.parent,
                    train_size: r.train_size,
                    train_hash: r.train_hash,
                    labels: r.labels,
                    params: serde_json::to_value(&r.params).map_err(|e| {
                        EngineError::internal(format!("encoding model {version}'s parameters"), e)
                    })?,
                    metrics,
                    span_metrics,
                    relation_trainer: relations.as_ref().map(|v| v.trainer.clone()),
                    relation_metrics: relations.and_then(|v| v.evaluation),
                    relation_validation,
                    name: r.name,
                    confirmed: r.confirmed,
                    auto: r.auto,
                    comparison: r.comparison,
                    accepted: live.accepted,
                    corrected: live.corrected,
                    acceptance_rate: live.acceptance_rate(),
                    shown: live.shown,
                    evidence,
                    active: active == Some(version),
                })
            })
            .collect()
    }

    /// Makes an earlier (or later) version the active one and refreshes every suggestion with
    /// it, as a background job (project admins). Returns the job id: a new one, or the
    /// prediction already queued for the project.
    pub fn activate_model(
        &self,
        actor: &Principal,
        project: ProjectId,
        version: u64,
    ) -> Result<u64, EngineError> {
        self.authorize(actor, project, Role::Admin)?;
        let record = self
            .store()
            .model_version(project, version)?
            .ok_or_else(|| EngineError::NotFound("model version".into()))?;
        if !has_model(&record) {
            // Its suggestions were stored once, at import, and later predictions replaced
            // them: activating it could bring nothing back.
            return Err(EngineError::Invalid(format!(
                "version {version} holds only the suggestions stored with it (imported, or a generator's run), not a model: it cannot be activated again (run the generator again instead)"
            )));
        }
        // A version of another model brings its model back as the project's.
        let mut spec = self.project_record(project)?.spec;
        let model = version_model(&record);
        if project_model(&spec) != model {
            spec.settings.model = (model != DEFAULT_MODEL).then(|| model.to_string());
            self.update_project(actor, project, spec)?;
        }
        self.store().set_active_model(project, Some(version))?;
        tracing::info!(project = %project, version, "model version activated");
        // A prediction already queued reads the active version when it runs: it is this one.
        self.enqueue_job(actor, project, JobSpec::Predict, jobs::WhenQueued::Join)
    }

    /// Stores a trained version. A person's training always becomes the active version; an
    /// automatic one only if it is not worse than the version it was compared with (its
    /// `comparison`) and that version is still the active one when it is stored (checked in
    /// the storing transaction). Returns the version, whether it became active, and its
    /// comparison as stored.
    pub(super) fn store_trained_version(
        &self,
        project: ProjectId,
        mut record: ModelVersionRecord,
        incumbent: Option<u64>,
    ) -> Result<(u64, bool, Option<VersionComparison>), EngineError> {
        let automatic = record.auto.is_some();
        let not_worse = record
            .comparison
            .as_ref()
            .is_none_or(|c| c.incumbent_score.is_none_or(|i| c.candidate >= i));
        let activate = !automatic || not_worse;
        if let Some(c) = record.comparison.as_mut() {
            c.activated = activate;
        }
        let (version, activated) = if automatic && activate {
            self.store()
                .create_model_version_replacing(project, &record, incumbent)?
        } else {
            (
                self.store()
                    .create_model_version(project, &record, activate)?,
                activate,
            )
        };
        let comparison = record
            .comparison
            .map(|c| VersionComparison { activated, ..c });
        Ok((version, activated, comparison))
    }

    /// Whether `active` is a version imported with its suggestions, which has no model to
    /// predict with (its stored classifier is empty).
    pub(super) fn imported_version_active(
        &self,
        project: ProjectId,
        active: Option<u64>,
    ) -> Result<bool, EngineError> {
        let Some(version) = active else {
            return Ok(false);
        };
        Ok(self
            .store()
            .model_version(project, version)?
            .is_some_and(|r| !has_model(&r)))
    }

    /// Queues a prediction after a span project's patterns changed, so that they
    /// pre-annotate (a prediction already queued reads them when it runs). While a trained
    /// version of the project's model is active its suggestions stand, and nothing is queued.
    pub(crate) fn predict_after_pattern_change(
        &self,
        actor: &Principal,
        project: ProjectId,
    ) -> Result<(), EngineError> {
        let record = self.project_record(project)?;
        if let Some(version) = record.active_model {
            let trained = self
                .store()
                .model_version(project, version)?
                .is_some_and(|r| {
                    r.trainer != span_model::PATTERNS_TRAINER
                        && version_model(&r) == project_model(&record.spec)
                });
            if trained {
                return Ok(());
            }
        }
        self.enqueue_job(actor, project, JobSpec::Predict, jobs::WhenQueued::Join)
            .map(|_| ())
    }

    /// Every model version of a project with the label each predicts for `seqs` (items without
    /// a cached embedding from that version's encoder get none). No encoder runs: the
    /// classifiers work on the stored embeddings.
    pub(crate) fn version_labels(
        &self,
        project: ProjectId,
        seqs: &[u64],
    ) -> Result<Vec<VersionLabels>, EngineError> {
        let mut out = Vec::new();
        // A span version gives spans, not one label per item.
        if self.project_record(project)?.spec.task.is_spans() {
            return Ok(out);
        }
        for (version, record) in self.store().model_versions(project)? {
            // An imported version has no classifier to run on the embeddings.
            if !has_model(&record) {
                continue;
            }
            let classifier = match serde_json::from_value::<Classifier>(record.classifier) {
                Ok(c) => c,
                Err(e) => {
                    // One unreadable version leaves the others' figures standing.
                    tracing::warn!(project = %project, version, error = %e, "stored model unreadable; left out");
                    continue;
                }
            };
            let fp = fingerprint_from_hex(&record.encoder);
            let found = self.store().embeddings_at(project, &fp, seqs)?;
            let present: Vec<usize> = (0..seqs.len()).filter(|&i| found[i].is_some()).collect();
            let x: Vec<Vec<f32>> = found.into_iter().flatten().collect();
            let probs = classifier.predict(&x);
            let mut labels = vec![None; seqs.len()];
            for (&i, p) in present.iter().zip(probs) {
                labels[i] = record.labels.get(concord_ml::argmax(&p)).cloned();
            }
            out.push(VersionLabels {
                version,
                trainer: record.trainer,
                labels,
            });
        }
        Ok(out)
    }

    /// How an answer relates to the suggestion its annotator was shown.
    pub(crate) fn answer_source(
        &self,
        project: ProjectId,
        seq: u64,
        blind: bool,
        labels: &[String],
    ) -> AnnotationSource {
        if blind {
            return AnnotationSource::Human;
        }
        match self.store().suggestion(project, seq) {
            Ok(Some(s)) if s.labels == labels => AnnotationSource::ModelAccepted {
                model_version: s.version,
            },
            Ok(Some(s)) => AnnotationSource::ModelCorrected {
                model_version: s.version,
            },
            _ => AnnotationSource::Human,
        }
    }
}
