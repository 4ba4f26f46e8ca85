//! The job queue and its one worker: jobs are queued by handlers, stored, and run one at a
//! time by the worker thread, which reads each job's kind and parameters ([`JobSpec`]) and
//! hands it to that kind's `process_*` module. A job whose kind or parameters cannot be read
//! fails with a message naming the job; it is never run with guessed parameters.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use concord_domain::{JobSpec, JobSpecError, JobState, ProjectId, Role, TrainParams};
use concord_store::JobRecord;
use serde::{Deserialize, Serialize};

use super::MAX_FINE_TUNE_EPOCHS;
use crate::{now_ms, Engine, EngineError, Principal};

/// A background job as the UI and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    pub id: u64,
    pub project: ProjectId,
    /// The kind as stored (`predict`, `train`): text, so that a job this binary cannot read
    /// still lists, failed, with its error.
    pub kind: String,
    pub state: JobState,
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
pub(super) enum Stop {
    Cancelled,
    /// The stored kind or parameters cannot be read: nothing ran.
    Unreadable(JobSpecError),
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
        Stop::Failed(e.into())
    }
}

impl Engine {
    /// Queues batch pre-annotation of every item with the active model (a zero-shot one is
    /// made first when the project has none). Project admins. Returns the job id.
    pub fn enqueue_predict(
        &self,
        actor: &Principal,
        project: ProjectId,
    ) -> Result<u64, EngineError> {
        self.authorize(actor, project, Role::Admin)?;
        self.enqueue_job(actor, project, JobSpec::Predict)
    }

    /// Queues training of a new version on the confirmed labels (reviewers and admins).
    pub fn enqueue_train(
        &self,
        actor: &Principal,
        project: ProjectId,
        request: TrainParams,
    ) -> Result<u64, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        if let Some(e) = request.epochs {
            if !(1..=MAX_FINE_TUNE_EPOCHS).contains(&e) {
                return Err(EngineError::Invalid(format!(
                    "epochs must be between 1 and {MAX_FINE_TUNE_EPOCHS} (got {e})"
                )));
            }
        }
        self.enqueue_job(actor, project, JobSpec::Train(request))
    }

    pub(super) fn enqueue_job(
        &self,
        actor: &Principal,
        project: ProjectId,
        spec: JobSpec,
    ) -> Result<u64, EngineError> {
        let status = self.project_model_status(project)?;
        if !status.available {
            return Err(EngineError::Unavailable(format!(
                "model features are unavailable: {}",
                status.reason.unwrap_or_default()
            )));
        }
        let id = self
            .store()
            .create_job(&JobRecord::queued(project, &spec, actor.id, now_ms()))?;
        tracing::info!(job = id, project = %project, kind = %spec.kind(), "job queued");
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
        let record = self.store().update_job(id, |j| match j.state {
            JobState::Queued => {
                j.state = JobState::Cancelled;
                j.finished_ms = Some(now_ms());
            }
            JobState::Running => j.cancel_requested = true,
            JobState::Done | JobState::Failed | JobState::Cancelled => {}
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
            .filter(|(_, j)| j.state == JobState::Running)
        {
            self.store()
                .update_job(id, |j| j.state = JobState::Queued)?;
        }
        Ok(())
    }

    /// Runs the oldest queued job, if any; false when there was none.
    pub(crate) fn run_next_job(&self) -> bool {
        let next = self
            .store()
            .jobs()
            .ok()
            .and_then(|jobs| jobs.into_iter().find(|(_, j)| j.state == JobState::Queued));
        let Some((id, job)) = next else {
            return false;
        };
        let _ = self.store().update_job(id, |j| {
            j.state = JobState::Running;
            j.started_ms.get_or_insert(now_ms());
        });
        tracing::info!(job = id, kind = %job.kind, project = %job.project, "job started");
        let outcome = match job.spec() {
            Ok(spec) => self.process(id, &job, spec),
            Err(e) => Err(Stop::Unreadable(e)),
        };
        if self.inner.jobs.stopped() {
            // Shutting down mid-job: it stays "running" and resumes at the next start.
            return true;
        }
        let _ = self.store().update_job(id, |j| {
            j.finished_ms = Some(now_ms());
            match outcome {
                Ok(result) => {
                    j.state = JobState::Done;
                    j.result = Some(result);
                }
                Err(Stop::Cancelled) => j.state = JobState::Cancelled,
                Err(Stop::Unreadable(e)) => {
                    let message = format!("job {id} cannot run: {e}");
                    tracing::warn!(job = id, error = %message, "job unreadable");
                    j.state = JobState::Failed;
                    j.error = Some(message);
                }
                Err(Stop::Failed(e)) => {
                    tracing::warn!(job = id, error = %e, "job failed");
                    j.state = JobState::Failed;
                    j.error = Some(e.public_message());
                }
            }
        });
        tracing::info!(job = id, "job finished");
        true
    }

    /// Runs a job of `spec` to its end; the result is stored with the finished job.
    fn process(&self, id: u64, job: &JobRecord, spec: JobSpec) -> Result<serde_json::Value, Stop> {
        match spec {
            JobSpec::Predict => self
                .process_predict(id, job.project, job.cursor)
                .map(|n| serde_json::json!({ "suggestions": n })),
            JobSpec::Train(params) => self.process_train(id, job.project, params),
        }
    }

    pub(super) fn check_cancel(&self, id: u64) -> Result<(), Stop> {
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
}

fn job_info(id: u64, j: JobRecord) -> JobInfo {
    let elapsed = j
        .started_ms
        .map(|s| j.finished_ms.unwrap_or_else(now_ms).saturating_sub(s) as f64 / 1000.0);
    let rate = elapsed
        .filter(|e| *e > 0.0 && j.done > 0)
        .map(|e| j.done as f64 / e);
    let eta_seconds = rate
        .filter(|_| j.state == JobState::Running)
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
