//! Concord's engine: everything the product does, with no HTTP in it. It owns the store and
//! the single writer thread that group-commits annotations, and it checks authorization on
//! every call: each public operation takes the acting [`Principal`]. The server's handlers and
//! server functions are thin wrappers over these calls; the CLI calls them directly.

mod agreement;
mod assignment;
mod auth;
mod csv_columns;
mod error;
mod export;
mod import;
mod models;
mod projects;
mod queue;
mod review;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use agreement::{
    AgreementTable, AnnotatorStats, CategoryDefinition, DayAgreement, ModelRater, ProjectAgreement,
    RaterConfusion,
};
pub use auth::{Principal, SESSION_TTL_MS};
pub use concord_agreement as agreement_stats;
pub use concord_domain as domain;
pub use concord_store::StoreError;
pub use error::EngineError;
pub use export::ExportFormat;
pub use import::{
    ImportFormat, ImportOptions, ImportProgress, ImportReport, ItemInput,
    BATCH_ITEMS as IMPORT_BATCH_ITEMS,
};
pub use concord_domain::{JobKind, JobState};
pub use models::{
    JobInfo, ModelStatus, ModelVersionInfo, TrainParams, TrainRequest, Trainer, DEFAULT_MODEL,
    MAX_FINE_TUNE_EPOCHS,
};
pub use projects::{MemberInfo, ProjectSummary, UserInfo};
pub use queue::{LabelCount, QueueItem, Submission, SubmitOutcome, Suggestion};
pub use review::{ReviewAnswer, ReviewItem, ReviewSummary};

use concord_store::Store;

/// Name of the database file inside the data directory.
pub const DATABASE_FILE: &str = "concord.redb";

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
            }),
        };
        engine.requeue_interrupted_jobs()?;
        // The worker holds the engine only while it runs a job, so dropping the last handle
        // closes the database; it notices within one wait and exits.
        let weak = Arc::downgrade(&engine.inner);
        std::thread::Builder::new()
            .name("concord-jobs".into())
            .spawn(move || loop {
                let Some(inner) = weak.upgrade() else { break };
                if inner.jobs.stopped() {
                    break;
                }
                let worked = Engine { inner }.run_next_job();
                if !worked {
                    jobs.wait();
                }
            })
            .map_err(|e| EngineError::internal("starting the job worker", e))?;
        Ok(engine)
    }

    /// Stops the job worker after its current batch (a running job resumes at the next start).
    pub fn shutdown_jobs(&self) {
        self.inner.jobs.stop();
    }

    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
