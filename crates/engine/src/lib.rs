//! Concord's engine: everything the product does, with no HTTP in it. It owns the store and
//! the single writer thread that group-commits annotations, and it checks authorization on
//! every call: each public operation takes the acting [`Principal`]. The server's handlers and
//! server functions are thin wrappers over these calls; the CLI calls them directly.

mod agreement;
mod assignment;
mod auth;
mod bulk_accept;
mod csv_columns;
mod error;
mod export;
mod import;
mod label_errors;
mod learning_curve;
mod maintenance;
mod models;
mod projects;
mod queue;
mod review;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use agreement::{
    AgreementCacheStats, AgreementTable, AnnotatorStats, CategoryDefinition, DayAgreement,
    ModelRater, ProjectAgreement, RaterConfusion, SpanAgreementFigures, SpanAnnotatorStats,
    SpanF1Means, SpanModelRater, SpanPairAgreement, SpanScore, SpanTypeAgreement, UnitizingFigures,
    MAX_AGREEMENT_CATEGORIES, MAX_UNITIZING_SPANS,
};
pub use auth::{
    api_token_id, CredentialPolicy, CredentialsRemoved, Principal, TokenInfo, SESSION_IDLE_MS,
    SESSION_TTL_MS, SETUP_TOKEN_TTL_MS,
};
pub use bulk_accept::{BulkAcceptBatch, BulkAcceptPreview};
pub use concord_agreement as agreement_stats;
pub use concord_domain as domain;
pub use concord_domain::{JobKind, JobState};
pub use concord_store::StoreError;
pub use concord_store::{partial_file_beside, persist_synced};
pub use concord_store::{CheckReport, TableCounts};
pub use error::EngineError;
pub use export::ExportFormat;
pub use import::{
    ImportFormat, ImportOptions, ImportProgress, ImportReport, ImportedLabels, ItemInput,
    BATCH_BYTES as IMPORT_BATCH_BYTES, BATCH_ITEMS as IMPORT_BATCH_ITEMS, EXTERNAL_TRAINER,
};
pub use label_errors::{
    AnnotatorAnswer, AnnotatorQuality, LabelErrorReason, LabelErrorReport, LabelErrorRow,
    ModelSample, IN_SAMPLE_MODEL_WEIGHT, LABEL_ERROR_C_GRID, LABEL_ERROR_FOLDS,
    MAX_LABEL_ERROR_ITEMS, MAX_LABEL_ERROR_ROWS, MODEL_WEIGHT, UNVALIDATED_SILENCE,
};
pub use learning_curve::{
    Baseline, CurveMetric, CurvePointInfo, LearningCurve, PendingRound, Round, Scored,
    DEFAULT_TARGET_SHARE,
};
pub use maintenance::{backup_database, check_database, restore_database};
pub use models::{
    openai::{ApiKey, GeneratorRun, OpenAiClassifier, OpenAiConfig, OpenAiError, ScoringMethod},
    Evidence, EvidenceMetric, FileDigest, GeneratorInfo, JobInfo, ModelStatus, ModelVersionInfo,
    PortableEncoder, PortableError, PortableModel, PortablePrediction, PortablePredictor,
    SpanMetrics, SpanTypeMetrics, TrainParams, TrainRequest, Trainer, DEFAULT_MODEL,
    MAX_FINE_TUNE_EPOCHS, MIN_VALIDATING_MATCHES, PORTABLE_MODEL_FORMAT,
};
pub use projects::{MemberInfo, ProjectSummary, UserInfo};
pub use queue::{LabelCount, QueueItem, Submission, SubmitOutcome, Suggestion};
pub use review::{ReviewAnswer, ReviewItem, ReviewSummary};

use concord_store::Store;

/// Name of the database file inside the data directory.
pub const DATABASE_FILE: &str = "concord.redb";
/// Uploads are spooled into the data directory as temporary files named with this prefix
/// (the server's `upload.rs`); one a crash left is removed at the next start.
pub const UPLOAD_TEMP_PREFIX: &str = ".upload-";
/// Backups made for `POST /api/v1/backup` are written into the data directory under names
/// with this prefix and deleted once sent; one a crash left is removed at the next start.
pub const BACKUP_TEMP_PREFIX: &str = ".backup-";

/// The running core of Concord. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    queue: queue::Queue,
    models: models::Models,
    jobs: Arc<models::JobSignal>,
    imports: std::sync::Mutex<std::collections::HashSet<domain::ProjectId>>,
    data_dir: PathBuf,
    credentials: auth::CredentialState,
    agreement_cache: agreement::AgreementCache,
    /// Each model version's evidence for pre-selection, per project (`models/evidence.rs`).
    evidence_cache: models::EvidenceCache,
    /// The OpenAI-compatible server generators run on, if the server was given one
    /// ([`Engine::set_generator_server`]); its API key lives only here, in memory.
    generator_server: std::sync::Mutex<Option<models::openai::OpenAiConfig>>,
    /// The job worker thread, joined by [`Engine::shutdown`].
    job_worker: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What an engine is opened for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenMode {
    /// A server (or a test of one): the job worker runs and interrupted jobs are queued again.
    Serving,
    /// One command-line operation on a stopped server's database.
    Command,
}

impl Engine {
    /// Opens (or creates) the data directory and its database, without models.
    pub fn open(data_dir: &Path) -> Result<Engine, EngineError> {
        Engine::open_with_models(data_dir, None)
    }

    /// Opens the data directory with model features reading encoders from `models_dir`
    /// ([`DEFAULT_MODEL`] inside it), and starts the job worker.
    pub fn open_with_models(
        data_dir: &Path,
        models_dir: Option<PathBuf>,
    ) -> Result<Engine, EngineError> {
        Engine::open_in(data_dir, models_dir, OpenMode::Serving)
    }

    /// Opens the database of a stopped server for one command-line operation (import, export,
    /// accounts...): no job worker, and jobs a crash interrupted stay as they are. Otherwise a
    /// command run between a crash and the next start would run the queued jobs without the
    /// server's models (failing them) and count as a start for the crash-loop guard.
    pub fn open_for_command(data_dir: &Path) -> Result<Engine, EngineError> {
        Engine::open_in(data_dir, None, OpenMode::Command)
    }

    /// [`Engine::open_for_command`] for an operation that reads the models (exporting a model
    /// version names its encoder's files in `models_dir`).
    pub fn open_for_command_with_models(
        data_dir: &Path,
        models_dir: Option<PathBuf>,
    ) -> Result<Engine, EngineError> {
        Engine::open_in(data_dir, models_dir, OpenMode::Command)
    }

    fn open_in(
        data_dir: &Path,
        models_dir: Option<PathBuf>,
        mode: OpenMode,
    ) -> Result<Engine, EngineError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            EngineError::internal(format!("creating data directory {}", data_dir.display()), e)
        })?;
        let store = Arc::new(Store::open(&data_dir.join(DATABASE_FILE))?);
        let queue = queue::Queue::start(store.clone());
        let jobs = Arc::new(models::JobSignal::default());
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                queue,
                models: models::Models::new(models_dir, data_dir.join(models::ENCODERS_DIR)),
                jobs: jobs.clone(),
                imports: Default::default(),
                data_dir: data_dir.to_path_buf(),
                credentials: Default::default(),
                agreement_cache: Default::default(),
                evidence_cache: Default::default(),
                generator_server: Default::default(),
                job_worker: Default::default(),
            }),
        };
        // The database is ours alone now (redb refuses a second process), so no upload or
        // training of another process is writing these.
        engine.remove_leftover_temp_files();
        engine.purge_expired_credentials()?;
        if mode == OpenMode::Command {
            return Ok(engine);
        }
        engine.requeue_interrupted_jobs()?;
        engine.remove_unreferenced_weights();
        auth::start_purger(&engine)?;
        // The worker holds the engine only while it runs a job, so dropping the last handle
        // closes the database; it notices within one wait and exits.
        let weak = Arc::downgrade(&engine.inner);
        let worker = std::thread::Builder::new()
            .name("concord-jobs".into())
            .spawn(move || loop {
                let Some(inner) = weak.upgrade() else { break };
                if inner.jobs.stopped() {
                    break;
                }
                // A job's own panic is caught around the job (and fails it); this catches one
                // in the worker's bookkeeping, so that the worker never stops silently.
                let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    Engine { inner }.run_next_job()
                }))
                .unwrap_or_else(|_| {
                    tracing::error!("the job worker panicked outside a job; it goes on");
                    false
                });
                if !worked {
                    jobs.wait();
                }
            })
            .map_err(|e| EngineError::internal("starting the job worker", e))?;
        if let Ok(mut slot) = engine.inner.job_worker.lock() {
            *slot = Some(worker);
        }
        Ok(engine)
    }

    /// Stops the job worker after its current batch (a running job resumes at the next start).
    pub fn shutdown_jobs(&self) {
        self.inner.jobs.stop();
    }

    /// Shuts down cleanly: stops the job worker and waits for it (a running job stops after its
    /// current batch, which is stored, and resumes after it at the next start), then, when this
    /// is the last handle, stops the writer thread after it has committed every answer it
    /// received and closes the database. Returns whether the database was closed (false when
    /// other handles still hold the engine: it closes when the last one is dropped).
    pub fn shutdown(self) -> bool {
        self.inner.jobs.stop();
        let worker = self.inner.job_worker.lock().ok().and_then(|mut w| w.take());
        if let Some(worker) = worker {
            if worker.join().is_err() {
                tracing::error!("the job worker had panicked");
            }
        }
        match Arc::try_unwrap(self.inner) {
            // Dropping the queue joins the writer after its last commit; dropping the store
            // closes redb.
            Ok(inner) => {
                drop(inner);
                true
            }
            Err(_) => false,
        }
    }

    /// Whether the engine can serve: the database answers a read transaction and the writer
    /// thread takes answers. For readiness probes.
    pub fn readiness(&self) -> Result<(), EngineError> {
        self.store().check_readable()?;
        if !self.inner.queue.writer_alive() {
            return Err(EngineError::Unavailable(
                "the writer thread has stopped".into(),
            ));
        }
        Ok(())
    }

    /// Writes a consistent snapshot of the whole database to `target` (administrators only):
    /// see [`concord_store::Store::backup_to`]. Returns the rows copied per table.
    pub fn backup_to(
        &self,
        actor: &Principal,
        target: &Path,
    ) -> Result<concord_store::TableCounts, EngineError> {
        self.require_admin(actor)?;
        Ok(self.store().backup_to(target)?)
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Removes the temporary files a crash can leave: spooled uploads and backup snapshots in
    /// the data directory, and fine-tuned weights being written. Only at start, before
    /// anything writes them.
    fn remove_leftover_temp_files(&self) {
        let uploads = models::remove_files(&self.inner.data_dir, |name| {
            name.starts_with(UPLOAD_TEMP_PREFIX) || name.starts_with(BACKUP_TEMP_PREFIX)
        });
        let weights = self.remove_weights_temp_files();
        if uploads + weights > 0 {
            tracing::info!(
                uploads,
                weights,
                "removed temporary files left by an earlier run"
            );
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
