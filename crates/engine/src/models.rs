//! The model in the loop: the encoder (loaded lazily from the models folder), model versions
//! (zero-shot before any label, then heads trained on confirmed labels), and the single job
//! worker that embeds items, trains and writes suggestions in the background. Handlers only
//! enqueue jobs; the worker persists progress after every batch, so a restart resumes a job
//! where it stopped and a cancel takes effect at the next batch.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use concord_domain::{
    aggregate_labels, Aggregate, AnnotationSource, ProjectId, ProjectSpec, QueueOrder, Role,
    TaskKind,
};
use concord_ml::{
    adjust_priors, evaluate, label_prompt, Calibration, Encoder, Evaluation, HeadParams,
    LinearHead, ZeroShot,
};
use concord_store::{JobRecord, ModelVersionRecord, SuggestionRecord};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::review::effective_gold;
use crate::{now_ms, Engine, EngineError, Principal};

/// The encoder used when a project names none: a folder of this name in the models folder.
pub const DEFAULT_MODEL: &str = "all-MiniLM-L6-v2";
/// Items embedded per batch (and per progress update).
const BATCH: usize = 64;
/// Items whose embeddings calibrate a zero-shot model.
const CALIBRATION_SAMPLE: usize = 5000;
/// Items active learning orders after each prediction (the rest keep import order).
const PRIORITY_ITEMS: usize = 200;
/// Unfinished items considered when choosing them.
const PRIORITY_POOL: usize = 20_000;

/// Confirmed labels needed before training.
const MIN_TRAINING_LABELS: usize = 10;

/// What a version's classifier is, as stored in [`ModelVersionRecord::classifier`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Classifier {
    ZeroShot {
        zero_shot: ZeroShot,
        priors: Vec<f32>,
    },
    Head {
        head: LinearHead,
    },
}

impl Classifier {
    fn predict(&self, x: &[Vec<f32>]) -> Vec<Vec<f32>> {
        match self {
            Classifier::Head { head } => head.predict(x),
            Classifier::ZeroShot { zero_shot, priors } => {
                let uniform = 1.0 / priors.len().max(1) as f32;
                zero_shot
                    .predict(x)
                    .into_iter()
                    .map(|p| {
                        let w: Vec<f32> =
                            p.iter().zip(priors).map(|(a, b)| a * b / uniform).collect();
                        let total: f32 = w.iter().sum::<f32>().max(f32::MIN_POSITIVE);
                        w.into_iter().map(|v| v / total).collect()
                    })
                    .collect()
            }
        }
    }
}

/// A version, its trainer, and the label it gives each requested item.
pub(crate) type VersionLabels = (u64, String, Vec<Option<String>>);

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
    pub metrics: Option<Evaluation>,
    pub active: bool,
}

/// A background job as the UI and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    pub id: u64,
    pub project: ProjectId,
    pub kind: String,
    pub state: String,
    pub done: u64,
    pub total: u64,
    pub created_ms: u64,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    /// Items per second so far, and the seconds left at that rate.
    pub rate: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub error: Option<String>,
    pub result: Option<serde_json::Value>,
}

/// What trains a new version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trainer {
    /// A softmax head on the frozen encoder's cached embeddings (seconds).
    #[default]
    Head,
    /// The encoder and a head trained together (minutes); the tuned encoder's weights are
    /// saved as a safetensors file named by its SHA-256, and every item is re-embedded.
    FineTune,
}

impl Trainer {
    pub fn as_str(self) -> &'static str {
        match self {
            Trainer::Head => "head",
            Trainer::FineTune => "fine_tune",
        }
    }
}

/// A training request: the trainer, and for fine-tuning the number of passes over the data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainRequest {
    #[serde(default)]
    pub trainer: Trainer,
    /// Fine-tuning epochs, 1 to [`MAX_FINE_TUNE_EPOCHS`] (default 3).
    #[serde(default)]
    pub epochs: Option<usize>,
}

/// The most fine-tuning epochs a request may ask for.
pub const MAX_FINE_TUNE_EPOCHS: usize = 20;
/// Where fine-tuned encoder weights live, inside the data directory.
pub(crate) const ENCODERS_DIR: &str = "encoders";

/// The encoders: each base model (a folder in the models folder), loaded on first use, and the
/// last fine-tuned one used.
pub(crate) struct Models {
    dir: Option<PathBuf>,
    encoders_dir: PathBuf,
    base: Mutex<HashMap<String, Arc<Encoder>>>,
    tuned: Mutex<Option<(String, Arc<Encoder>)>>,
}

/// The base model a version was made with (versions from before models were per project used
/// the default).
pub(crate) fn version_model(record: &ModelVersionRecord) -> &str {
    record
        .params
        .get("model")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(DEFAULT_MODEL)
}

fn lock_poisoned<T>(_: T) -> EngineError {
    EngineError::Internal("model lock poisoned".into())
}

impl Models {
    pub(crate) fn new(dir: Option<PathBuf>, encoders_dir: PathBuf) -> Models {
        Models {
            dir,
            encoders_dir,
            base: Mutex::new(HashMap::new()),
            tuned: Mutex::new(None),
        }
    }

    /// The model folders that hold a loadable model (config.json, model.safetensors,
    /// tokenizer.json), by name.
    pub(crate) fn installed(&self) -> Vec<String> {
        let Some(dir) = &self.dir else {
            return Vec::new();
        };
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| concord_ml::ModelFolder::open(&e.path()).is_ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    /// The encoder that made `record`'s embeddings: its base model, or the fine-tuned weights
    /// the version names (loaded once and kept until another fine-tuned version is used).
    pub(crate) fn encoder_for(
        &self,
        record: &ModelVersionRecord,
    ) -> Result<Arc<Encoder>, EngineError> {
        self.encoder_from_file(
            version_model(record),
            record
                .params
                .get("encoder_file")
                .and_then(serde_json::Value::as_str),
        )
    }

    /// `model`'s encoder, or one with its configuration and the fine-tuned weights in `file`
    /// (in the encoders folder).
    fn encoder_from_file(
        &self,
        model: &str,
        file: Option<&str>,
    ) -> Result<Arc<Encoder>, EngineError> {
        let Some(file) = file else {
            return self.encoder(model);
        };
        let key = format!("{model}/{file}");
        let mut slot = self.tuned.lock().map_err(lock_poisoned)?;
        if let Some((name, e)) = slot.as_ref() {
            if *name == key {
                return Ok(e.clone());
            }
        }
        let folder = self.loadable_folder(model)?;
        let path = self.encoders_dir.join(file);
        let encoder = Arc::new(
            Encoder::load_with_weights(&folder, Some(&path), &concord_ml::default_device())
                .map_err(|e| {
                    EngineError::Unavailable(format!("cannot load fine-tuned weights: {e}"))
                })?,
        );
        *slot = Some((key, encoder.clone()));
        Ok(encoder)
    }

    /// A fresh copy of `model`'s encoder, for fine-tuning (which changes its weights).
    fn fresh_base(&self, model: &str) -> Result<Encoder, EngineError> {
        let folder = self.loadable_folder(model)?;
        Encoder::load(&folder, &concord_ml::default_device())
            .map_err(|e| EngineError::Unavailable(format!("cannot load the model: {e}")))
    }

    /// Writes fine-tuned weights under their SHA-256 (via a temporary file and a rename, so a
    /// crash never leaves a half-written file under a hash name). Returns the file name.
    fn store_weights(&self, encoder: &Encoder, job: u64) -> Result<String, EngineError> {
        let io = |e: std::io::Error| {
            EngineError::Internal(format!("{}: {e}", self.encoders_dir.display()))
        };
        std::fs::create_dir_all(&self.encoders_dir).map_err(io)?;
        let tmp = self
            .encoders_dir
            .join(format!(".job-{job}.safetensors.tmp"));
        encoder
            .save_weights(&tmp)
            .map_err(|e| EngineError::Internal(e.to_string()))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        let sha =
            concord_ml::file_sha256(&tmp).map_err(|e| EngineError::Internal(e.to_string()))?;
        let name = format!("{sha}.safetensors");
        std::fs::rename(&tmp, self.encoders_dir.join(&name)).map_err(io)?;
        Ok(name)
    }

    fn loadable_folder(&self, model: &str) -> Result<PathBuf, EngineError> {
        let status = self.status(model);
        self.folder(model)
            .filter(|_| status.available)
            .ok_or_else(|| {
                EngineError::Unavailable(format!(
                    "model features are unavailable: {}",
                    status.reason.unwrap_or_default()
                ))
            })
    }

    fn folder(&self, model: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(model))
    }

    pub(crate) fn status(&self, model: &str) -> ModelStatus {
        let reason = match self.folder(model) {
            None => Some("no models folder is configured (concord serve --models DIR)".into()),
            Some(f) => match concord_ml::ModelFolder::open(&f) {
                Ok(_) => None,
                Err(e) if model == DEFAULT_MODEL => {
                    Some(format!("{e} (scripts/setup.sh fetches all-MiniLM-L6-v2)"))
                }
                Err(e) => Some(e.to_string()),
            },
        };
        ModelStatus {
            available: reason.is_none(),
            model: model.to_string(),
            reason,
        }
    }

    pub(crate) fn encoder(&self, model: &str) -> Result<Arc<Encoder>, EngineError> {
        let mut loaded = self.base.lock().map_err(lock_poisoned)?;
        if let Some(e) = loaded.get(model) {
            return Ok(e.clone());
        }
        let folder = self.loadable_folder(model)?;
        let encoder = Arc::new(
            Encoder::load(&folder, &concord_ml::default_device())
                .map_err(|e| EngineError::Unavailable(format!("cannot load the model: {e}")))?,
        );
        tracing::info!(model = %folder.display(), fingerprint = encoder.fingerprint(), "model loaded");
        loaded.insert(model.to_string(), encoder.clone());
        Ok(encoder)
    }
}

/// The model folder a project's encoder comes from.
pub(crate) fn project_model(spec: &ProjectSpec) -> &str {
    spec.settings.model.as_deref().unwrap_or(DEFAULT_MODEL)
}

fn fingerprint_bytes(encoder: &Encoder) -> [u8; 8] {
    fingerprint_from_hex(encoder.fingerprint())
}

fn fingerprint_from_hex(fingerprint: &str) -> [u8; 8] {
    let mut out = [0u8; 8];
    if let Ok(bytes) = hex::decode(fingerprint) {
        for (o, b) in out.iter_mut().zip(bytes) {
            *o = b;
        }
    }
    out
}

/// The worker's wake-up call: set when a job is queued or cancelled.
#[derive(Default)]
pub(crate) struct JobSignal {
    pending: Mutex<bool>,
    wake: Condvar,
    stop: std::sync::atomic::AtomicBool,
}

impl JobSignal {
    pub(crate) fn notify(&self) {
        if let Ok(mut p) = self.pending.lock() {
            *p = true;
            self.wake.notify_all();
        }
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify();
    }

    pub(crate) fn wait(&self) {
        if let Ok(p) = self.pending.lock() {
            let mut p = if *p {
                p
            } else {
                match self.wake.wait_timeout(p, Duration::from_secs(2)) {
                    Ok((guard, _)) => guard,
                    Err(_) => return,
                }
            };
            *p = false;
        }
    }

    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Why a job stopped early.
enum Stop {
    Cancelled,
    Failed(EngineError),
}

impl From<EngineError> for Stop {
    fn from(e: EngineError) -> Self {
        Stop::Failed(e)
    }
}

impl From<concord_store::StoreError> for Stop {
    fn from(e: concord_store::StoreError) -> Self {
        Stop::Failed(e.into())
    }
}

impl From<concord_ml::MlError> for Stop {
    fn from(e: concord_ml::MlError) -> Self {
        Stop::Failed(EngineError::Internal(e.to_string()))
    }
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
        let active = self.project_record(project)?.active_model;
        Ok(self
            .store()
            .model_versions(project)?
            .into_iter()
            .map(|(version, r)| ModelVersionInfo {
                version,
                trainer: r.trainer,
                created_ms: r.created_ms,
                parent: r.parent,
                train_size: r.train_size,
                train_hash: r.train_hash,
                labels: r.labels,
                params: r.params,
                metrics: r.metrics.and_then(|m| serde_json::from_value(m).ok()),
                active: active == Some(version),
            })
            .collect())
    }

    /// Makes an earlier (or later) version the active one and refreshes every suggestion with
    /// it, as a background job (project admins). Returns the job id.
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
        // A version of another model brings its model back as the project's.
        let mut spec = self.project_record(project)?.spec;
        let model = version_model(&record);
        if project_model(&spec) != model {
            spec.settings.model = (model != DEFAULT_MODEL).then(|| model.to_string());
            self.update_project(actor, project, spec)?;
        }
        self.store().set_active_model(project, Some(version))?;
        tracing::info!(project = %project, version, "model version activated");
        self.enqueue_job(actor, project, "predict")
    }

    /// Queues batch pre-annotation of every item with the active model (a zero-shot one is
    /// made first when the project has none). Project admins. Returns the job id.
    pub fn enqueue_predict(
        &self,
        actor: &Principal,
        project: ProjectId,
    ) -> Result<u64, EngineError> {
        self.authorize(actor, project, Role::Admin)?;
        self.enqueue_job(actor, project, "predict")
    }

    /// Queues training of a new version on the confirmed labels (reviewers and admins).
    pub fn enqueue_train(
        &self,
        actor: &Principal,
        project: ProjectId,
        request: TrainRequest,
    ) -> Result<u64, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        if let Some(e) = request.epochs {
            if !(1..=MAX_FINE_TUNE_EPOCHS).contains(&e) {
                return Err(EngineError::Invalid(format!(
                    "epochs must be between 1 and {MAX_FINE_TUNE_EPOCHS} (got {e})"
                )));
            }
        }
        let params =
            serde_json::to_value(request).map_err(|e| EngineError::Internal(e.to_string()))?;
        self.enqueue_job_with(actor, project, "train", params)
    }

    fn enqueue_job(
        &self,
        actor: &Principal,
        project: ProjectId,
        kind: &str,
    ) -> Result<u64, EngineError> {
        self.enqueue_job_with(actor, project, kind, serde_json::Value::Null)
    }

    fn enqueue_job_with(
        &self,
        actor: &Principal,
        project: ProjectId,
        kind: &str,
        params: serde_json::Value,
    ) -> Result<u64, EngineError> {
        let status = self.project_model_status(project)?;
        if !status.available {
            return Err(EngineError::Unavailable(format!(
                "model features are unavailable: {}",
                status.reason.unwrap_or_default()
            )));
        }
        let id = self.store().create_job(&JobRecord {
            project,
            kind: kind.into(),
            params,
            state: "queued".into(),
            done: 0,
            total: 0,
            requested_by: actor.id,
            created_ms: now_ms(),
            started_ms: None,
            finished_ms: None,
            error: None,
            cursor: 0,
            cancel_requested: false,
            result: None,
        })?;
        tracing::info!(job = id, project = %project, kind, "job queued");
        self.inner.jobs.notify();
        Ok(id)
    }

    /// A job's state and progress (members of its project).
    pub fn job(&self, actor: &Principal, id: u64) -> Result<JobInfo, EngineError> {
        let record = self
            .store()
            .job(id)?
            .ok_or_else(|| EngineError::NotFound(format!("job {id}")))?;
        self.authorize(actor, record.project, Role::Annotator)?;
        Ok(job_info(id, record))
    }

    /// A project's jobs, newest first (reviewers and admins).
    pub fn project_jobs(
        &self,
        actor: &Principal,
        project: ProjectId,
    ) -> Result<Vec<JobInfo>, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        let mut out: Vec<JobInfo> = self
            .store()
            .jobs()?
            .into_iter()
            .filter(|(_, j)| j.project == project)
            .map(|(id, j)| job_info(id, j))
            .collect();
        out.reverse();
        Ok(out)
    }

    /// Asks a queued or running job to stop (project admins); it stops at its next batch.
    pub fn cancel_job(&self, actor: &Principal, id: u64) -> Result<JobInfo, EngineError> {
        let record = self
            .store()
            .job(id)?
            .ok_or_else(|| EngineError::NotFound(format!("job {id}")))?;
        self.authorize(actor, record.project, Role::Admin)?;
        let record = self.store().update_job(id, |j| {
            if j.state == "queued" {
                j.state = "cancelled".into();
                j.finished_ms = Some(now_ms());
            } else if j.state == "running" {
                j.cancel_requested = true;
            }
        })?;
        self.inner.jobs.notify();
        Ok(job_info(id, record))
    }

    /// Jobs found running at start were interrupted by a stop or a crash: they go back to the
    /// queue and continue from their cursor.
    pub(crate) fn requeue_interrupted_jobs(&self) -> Result<(), EngineError> {
        for (id, _) in self
            .store()
            .jobs()?
            .into_iter()
            .filter(|(_, j)| j.state == "running")
        {
            self.store().update_job(id, |j| j.state = "queued".into())?;
        }
        Ok(())
    }

    /// Runs the oldest queued job, if any; false when there was none.
    pub(crate) fn run_next_job(&self) -> bool {
        let next = self
            .store()
            .jobs()
            .ok()
            .and_then(|jobs| jobs.into_iter().find(|(_, j)| j.state == "queued"));
        let Some((id, job)) = next else {
            return false;
        };
        let _ = self.store().update_job(id, |j| {
            j.state = "running".into();
            j.started_ms.get_or_insert(now_ms());
        });
        tracing::info!(job = id, kind = %job.kind, project = %job.project, "job started");
        let outcome = match job.kind.as_str() {
            "train" => self.train_job(
                id,
                job.project,
                serde_json::from_value(job.params.clone()).unwrap_or_default(),
            ),
            _ => self
                .predict_job(id, job.project, job.cursor)
                .map(|n| serde_json::json!({ "suggestions": n })),
        };
        if self.inner.jobs.stopped() {
            // Shutting down mid-job: it stays "running" and resumes at the next start.
            return true;
        }
        let _ = self.store().update_job(id, |j| {
            j.finished_ms = Some(now_ms());
            match outcome {
                Ok(result) => {
                    j.state = "done".into();
                    j.result = Some(result);
                }
                Err(Stop::Cancelled) => j.state = "cancelled".into(),
                Err(Stop::Failed(e)) => {
                    tracing::warn!(job = id, error = %e, "job failed");
                    j.state = "failed".into();
                    j.error = Some(e.public_message());
                }
            }
        });
        tracing::info!(job = id, "job finished");
        true
    }

    fn check_cancel(&self, id: u64) -> Result<(), Stop> {
        if self.inner.jobs.stopped() {
            // Shutting down: the job stays "running" and resumes at the next start.
            return Err(Stop::Failed(EngineError::Unavailable(
                "shutting down".into(),
            )));
        }
        match self.store().job(id)? {
            Some(j) if j.cancel_requested => Err(Stop::Cancelled),
            _ => Ok(()),
        }
    }

    /// Embeds every item that has no embedding from `encoder`, from `cursor` on, storing each
    /// batch with the job's progress.
    fn embed_items(
        &self,
        id: u64,
        project: ProjectId,
        cursor: u64,
        encoder: &Encoder,
    ) -> Result<(), Stop> {
        let fp = fingerprint_bytes(encoder);
        let total = self.project_record(project)?.next_seq;
        let have: HashSet<u64> = self
            .store()
            .embedded_seqs(project, &fp)?
            .into_iter()
            .collect();
        self.store().update_job(id, |j| {
            j.total = total;
            j.done = j.done.max(cursor);
        })?;
        let mut next = cursor;
        loop {
            self.check_cancel(id)?;
            let batch = self.store().texts_from(project, next, BATCH)?;
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            let todo: Vec<&(u64, String)> =
                batch.iter().filter(|(s, _)| !have.contains(s)).collect();
            let texts: Vec<&str> = todo.iter().map(|(_, t)| t.as_str()).collect();
            let vectors = if texts.is_empty() {
                Vec::new()
            } else {
                encoder.embed(&texts, 32, &mut |_| {})?
            };
            let rows: Vec<(u64, Vec<f32>)> = todo.iter().map(|(s, _)| *s).zip(vectors).collect();
            next = last + 1;
            self.store()
                .put_predictions(project, &fp, &rows, &[], Some((id, next, next)))?;
        }
        Ok(())
    }

    /// Pre-annotates every item: embeddings first (resumable), then a zero-shot version if the
    /// project has no active one, then one suggestion per item.
    fn predict_job(&self, id: u64, project: ProjectId, cursor: u64) -> Result<u64, Stop> {
        let record = self.project_record(project)?;
        let model = project_model(&record.spec);
        // A version of another model than the project's (the setting changed) or a zero-shot
        // one made before the items came is replaced by a fresh zero-shot version.
        let active = match record.active_model {
            Some(v) if !self.zero_shot_outgrown(project, v, record.next_seq)? => self
                .store()
                .model_version(project, v)?
                .filter(|r| version_model(r) == model)
                .map(|r| (v, r)),
            _ => None,
        };
        // The active version's encoder embeds what it has not seen (new items, or everything
        // after a fine-tuned version is activated); a new zero-shot model uses the base one.
        let encoder = match &active {
            Some((_, r)) => self.inner.models.encoder_for(r)?,
            None => self.inner.models.encoder(model)?,
        };
        self.embed_items(id, project, cursor, &encoder)?;
        let version = match active {
            Some((v, _)) => v,
            None => self.create_zero_shot(project)?,
        };
        let written = self.write_suggestions(project, version)?;
        self.order_queue(project, version)?;
        Ok(written)
    }

    /// Chooses the items annotators should see first, by the project's queue order: by
    /// default diversity only (k-means on the embeddings, the most central item of each
    /// cluster) while the active version is zero-shot, margin + diversity once a trained one
    /// exists.
    fn order_queue(&self, project: ProjectId, version: u64) -> Result<(), Stop> {
        let record = self.project_record(project)?;
        let Some(model) = self.store().model_version(project, version)? else {
            return Ok(());
        };
        let settings = &record.spec.settings;
        let strategy = match settings.queue_order {
            QueueOrder::Import => {
                let order = concord_store::QueueOrderRecord {
                    seqs: Vec::new(),
                    reasons: Vec::new(),
                    version,
                    strategy: QueueOrder::Import.as_str().into(),
                };
                self.store().put_queue_order(project, &order)?;
                self.reload_assignment(project)?;
                return Ok(());
            }
            QueueOrder::Auto if model.trainer == "zero_shot" => concord_ml::Strategy::Random,
            QueueOrder::Auto | QueueOrder::Margin => concord_ml::Strategy::Margin,
            QueueOrder::LeastConfidence => concord_ml::Strategy::LeastConfidence,
            QueueOrder::Entropy => concord_ml::Strategy::Entropy,
            QueueOrder::Random => concord_ml::Strategy::Random,
        };
        let diversity = settings.diversity;
        let overlap = record.spec.settings.overlap as usize;
        let mut answers: HashMap<u64, usize> = HashMap::new();
        self.store().for_each_answered(project, 0, &mut |seq, a| {
            answers.insert(seq, a.len());
            std::ops::ControlFlow::Continue(())
        })?;
        let questions: HashSet<u64> = self.store().gold_questions(project)?.into_iter().collect();
        let fp = fingerprint_from_hex(&model.encoder);
        let suggestions: HashMap<u64, Vec<f32>> = self
            .store()
            .suggestions(project)?
            .into_iter()
            .filter(|(_, s)| s.version == version)
            .map(|(seq, s)| (seq, s.probabilities))
            .collect();
        let mut seqs = Vec::new();
        let mut embeddings = Vec::new();
        let mut probs = Vec::new();
        let mut from = 0;
        while seqs.len() < PRIORITY_POOL {
            let rows = self.store().embeddings(project, &fp, from, 4096)?;
            let Some(last) = rows.last().map(|(s, _)| *s) else {
                break;
            };
            for (seq, e) in rows {
                let open = answers.get(&seq).copied().unwrap_or(0) < overlap;
                if let (true, false, Some(p)) =
                    (open, questions.contains(&seq), suggestions.get(&seq))
                {
                    seqs.push(seq);
                    embeddings.push(e);
                    probs.push(p.clone());
                }
            }
            from = last + 1;
        }
        let candidates: Vec<usize> = (0..seqs.len()).collect();
        let picks = concord_ml::select(
            &concord_ml::Pool {
                embeddings: &embeddings,
                probs: Some(&probs),
                candidates: &candidates,
            },
            strategy,
            PRIORITY_ITEMS.min(seqs.len()),
            diversity,
            version,
        );
        let order = concord_store::QueueOrderRecord {
            seqs: picks.iter().map(|p| seqs[p.index]).collect(),
            reasons: picks.into_iter().map(|p| p.reason).collect(),
            version,
            strategy: if diversity {
                format!("{}+diversity", strategy.as_str())
            } else {
                strategy.as_str().to_string()
            },
        };
        self.store().put_queue_order(project, &order)?;
        self.reload_assignment(project)?;
        Ok(())
    }

    /// Whether `version` is a zero-shot model calibrated on fewer items than the project now
    /// offers (made before an import): a fresh one is calibrated on the items instead.
    fn zero_shot_outgrown(
        &self,
        project: ProjectId,
        version: u64,
        items: u64,
    ) -> Result<bool, Stop> {
        let Some(record) = self.store().model_version(project, version)? else {
            return Ok(true);
        };
        let calibrated = record
            .params
            .get("calibration_items")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(u64::MAX);
        Ok(record.trainer == "zero_shot" && calibrated < items.min(CALIBRATION_SAMPLE as u64))
    }

    fn create_zero_shot(&self, project: ProjectId) -> Result<u64, Stop> {
        let spec = self.project_record(project)?.spec;
        let model = project_model(&spec).to_string();
        let encoder = self.inner.models.encoder(&model)?;
        let fp = fingerprint_bytes(&encoder);
        let prompts: Vec<String> = spec
            .labels
            .iter()
            .map(|l| label_prompt(&l.name, l.description.as_deref()))
            .collect();
        let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
        let label_embeddings = encoder.embed(&refs, 16, &mut |_| {})?;
        let sample: Vec<Vec<f32>> = self
            .store()
            .embeddings(project, &fp, 0, CALIBRATION_SAMPLE)?
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let previous = self.project_record(project)?.active_model;
        let zero_shot = ZeroShot::new(label_embeddings, &sample, Calibration::Standardize);
        // Priors come from the project's items; a project without items keeps them uniform.
        let priors = if sample.is_empty() {
            vec![1.0 / spec.labels.len().max(1) as f32; spec.labels.len()]
        } else {
            adjust_priors(&zero_shot.predict(&sample), 50).0
        };
        let classifier = Classifier::ZeroShot { zero_shot, priors };
        let version = self.store().create_model_version(
            project,
            &ModelVersionRecord {
                trainer: "zero_shot".into(),
                created_ms: now_ms(),
                parent: previous,
                params: serde_json::json!({
                    "model": model,
                    "calibration": "standardize",
                    "label_priors": "em",
                    "prompts": prompts,
                    "calibration_items": sample.len(),
                }),
                train_size: 0,
                train_hash: String::new(),
                labels: spec.labels.iter().map(|l| l.name.clone()).collect(),
                encoder: encoder.fingerprint().to_string(),
                metrics: None,
                classifier: serde_json::to_value(&classifier)
                    .map_err(|e| EngineError::Internal(e.to_string()))?,
            },
            true,
        )?;
        tracing::info!(project = %project, version, "zero-shot model created");
        Ok(version)
    }

    /// Writes the version's suggestion for every embedded item; returns how many.
    fn write_suggestions(&self, project: ProjectId, version: u64) -> Result<u64, Stop> {
        let record = self
            .store()
            .model_version(project, version)?
            .ok_or_else(|| EngineError::NotFound("model version".into()))?;
        let fp = fingerprint_from_hex(&record.encoder);
        let classifier: Classifier = serde_json::from_value(record.classifier).map_err(|e| {
            EngineError::Internal(format!("stored model {version} is unreadable: {e}"))
        })?;
        let task = self.project_record(project)?.spec.task;
        let mut from = 0;
        let mut written = 0;
        loop {
            let rows = self.store().embeddings(project, &fp, from, 2048)?;
            let Some(&(last, _)) = rows.last().map(|(s, v)| (s, v.len())).as_ref() else {
                break;
            };
            let x: Vec<Vec<f32>> = rows.iter().map(|(_, v)| v.clone()).collect();
            let probs = classifier.predict(&x);
            let now = now_ms();
            let suggestions: Vec<(u64, SuggestionRecord)> = rows
                .iter()
                .zip(probs)
                .map(|((seq, _), p)| (*seq, suggestion(task, &record.labels, p, version, now)))
                .collect();
            written += suggestions.len() as u64;
            self.store()
                .put_predictions(project, &fp, &[], &suggestions, None)?;
            from = *last + 1;
        }
        Ok(written)
    }

    /// Trains a new version on the confirmed labels (gold, else an agreed majority) with
    /// `request.trainer`, evaluates it on a held-out fifth (stratified, fixed seed), stores it
    /// as the active version and refreshes the suggestions.
    fn train_job(
        &self,
        id: u64,
        project: ProjectId,
        request: TrainRequest,
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
        let mut rows: Vec<(u64, usize)> = confirmed
            .iter()
            .filter_map(|(seq, label)| Some((*seq, *index.get(label.as_str())?)))
            .filter(|(seq, _)| embedded.contains(seq))
            .collect();
        rows.sort_unstable();
        let classes_seen: HashSet<usize> = rows.iter().map(|(_, c)| *c).collect();
        if rows.len() < MIN_TRAINING_LABELS || classes_seen.len() < 2 {
            return Err(Stop::Failed(EngineError::Invalid(format!(
                "training needs at least {MIN_TRAINING_LABELS} confirmed labels in two or more classes (found {} in {})",
                rows.len(),
                classes_seen.len()
            ))));
        }
        let mut hasher = Sha256::new();
        for (seq, c) in &rows {
            hasher.update(seq.to_le_bytes());
            hasher.update(names[*c].as_bytes());
        }
        let train_hash = hex::encode(hasher.finalize());
        // Stratified split: every fifth item of each class (in a seeded order) is held out.
        let mut rng = concord_ml::SplitMix(17);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for c in 0..names.len() {
            let mut members: Vec<u64> = rows
                .iter()
                .filter(|(_, k)| *k == c)
                .map(|(s, _)| *s)
                .collect();
            rng.shuffle(&mut members);
            let held = members.len() / 5;
            for (i, seq) in members.into_iter().enumerate() {
                if i < held {
                    test.push((seq, c));
                } else {
                    train.push((seq, c));
                }
            }
        }
        let (head, encoder, params) = match request.trainer {
            Trainer::Head => {
                let params = HeadParams::default();
                let embeddings = self.embeddings_of(project, &base, &train)?;
                let y: Vec<usize> = train.iter().map(|(_, c)| *c).collect();
                let head = LinearHead::train(&embeddings, &y, names.len(), &params, base.device())?;
                (
                    head,
                    base.clone(),
                    serde_json::to_value(&params).unwrap_or_default(),
                )
            }
            Trainer::FineTune => {
                self.fine_tune(id, project, &model, &train, names.len(), request)?
            }
        };
        let mut params = params;
        if let Some(map) = params.as_object_mut() {
            map.insert("model".into(), model.clone().into());
        }
        let metrics = if test.is_empty() {
            None
        } else {
            let tx = self.embeddings_of(project, &encoder, &test)?;
            let ty: Vec<usize> = test.iter().map(|(_, c)| *c).collect();
            Some(evaluate(&head.predict(&tx), &ty, names.len()))
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
                    .map_err(|e| EngineError::Internal(e.to_string()))?,
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

    /// The cached embeddings under `encoder` of `rows`' items, in order.
    fn embeddings_of(
        &self,
        project: ProjectId,
        encoder: &Encoder,
        rows: &[(u64, usize)],
    ) -> Result<Vec<Vec<f32>>, Stop> {
        let seqs: Vec<u64> = rows.iter().map(|(seq, _)| *seq).collect();
        let found = self
            .store()
            .embeddings_at(project, &fingerprint_bytes(encoder), &seqs)?;
        seqs.iter()
            .zip(found)
            .map(|(seq, e)| {
                e.ok_or_else(|| {
                    Stop::Failed(EngineError::Internal(format!(
                        "item {seq} has no embedding"
                    )))
                })
            })
            .collect()
    }

    /// Fine-tunes a fresh copy of the base encoder with a head on `train`, saves its weights,
    /// and embeds every item with it. Progress counts training steps, then items.
    fn fine_tune(
        &self,
        id: u64,
        project: ProjectId,
        model: &str,
        train: &[(u64, usize)],
        classes: usize,
        request: TrainRequest,
    ) -> Result<(LinearHead, Arc<Encoder>, serde_json::Value), Stop> {
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
        let params = concord_ml::FineTuneParams {
            epochs: request.epochs.unwrap_or(3),
            ..concord_ml::FineTuneParams::default()
        };
        let mut cancelled = false;
        let mut last_saved = std::time::Instant::now();
        let (head, losses) = concord_ml::fine_tune(
            &encoder,
            &tokens,
            &y,
            classes,
            &params,
            &mut |step, steps| {
                // Progress and the cancel flag go through the store every second or so.
                if last_saved.elapsed() >= Duration::from_secs(1) || step == steps {
                    last_saved = std::time::Instant::now();
                    let _ = self.store().update_job(id, |j| {
                        j.done = step as u64;
                        j.total = steps as u64;
                    });
                    if self.check_cancel(id).is_err() {
                        cancelled = true;
                        return std::ops::ControlFlow::Break(());
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
        let mut params = serde_json::to_value(&params).unwrap_or_default();
        if let Some(map) = params.as_object_mut() {
            map.insert("encoder_file".into(), file.into());
            map.insert("epoch_losses".into(), serde_json::json!(losses));
        }
        Ok((head, tuned, params))
    }

    /// (seq, label) for every item whose label humans confirmed: its gold label, or else the
    /// label a strict majority of its annotators chose.
    fn confirmed_labels(
        &self,
        project: ProjectId,
        spec: &ProjectSpec,
    ) -> Result<Vec<(u64, String)>, EngineError> {
        let order: Vec<String> = spec.labels.iter().map(|l| l.name.clone()).collect();
        let mut out = Vec::new();
        self.store()
            .for_each_item::<EngineError>(project, |seq, item, answers| {
                let gold = effective_gold(spec, item.gold.as_ref(), item.gold_source(), &answers);
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
                if let Some(l) = label {
                    out.push((seq, l));
                }
                Ok(())
            })?;
        Ok(out)
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
        for (version, record) in self.store().model_versions(project)? {
            let Ok(classifier) = serde_json::from_value::<Classifier>(record.classifier) else {
                continue;
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
            out.push((version, record.trainer, labels));
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

fn suggestion(
    task: TaskKind,
    labels: &[String],
    p: Vec<f32>,
    version: u64,
    now: u64,
) -> SuggestionRecord {
    let (chosen, confidence) = match task {
        TaskKind::Classification => {
            let best = concord_ml::argmax(&p);
            (
                vec![labels.get(best).cloned().unwrap_or_default()],
                p.get(best).copied().unwrap_or(0.0),
            )
        }
        TaskKind::Multilabel => {
            let picked: Vec<usize> = (0..p.len()).filter(|&i| p[i] >= 0.5).collect();
            let confidence = picked.iter().map(|&i| p[i]).fold(1.0, f32::min);
            (
                picked
                    .iter()
                    .filter_map(|&i| labels.get(i).cloned())
                    .collect(),
                confidence,
            )
        }
    };
    SuggestionRecord {
        labels: chosen,
        confidence,
        probabilities: p,
        version,
        created_ms: now,
    }
}

fn job_info(id: u64, j: JobRecord) -> JobInfo {
    let elapsed = j
        .started_ms
        .map(|s| j.finished_ms.unwrap_or_else(now_ms).saturating_sub(s) as f64 / 1000.0);
    let rate = elapsed
        .filter(|e| *e > 0.0 && j.done > 0)
        .map(|e| j.done as f64 / e);
    let eta_seconds = rate
        .filter(|_| j.state == "running")
        .map(|r| j.total.saturating_sub(j.done) as f64 / r);
    JobInfo {
        id,
        project: j.project,
        kind: j.kind,
        state: j.state,
        done: j.done,
        total: j.total,
        created_ms: j.created_ms,
        started_ms: j.started_ms,
        finished_ms: j.finished_ms,
        rate,
        eta_seconds,
        error: j.error,
        result: j.result,
    }
}
