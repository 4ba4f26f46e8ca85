//! The job queue and its one worker: jobs are queued by handlers, stored, and run one at a
//! time by the worker thread, which reads each job's kind and parameters ([`JobSpec`]) and
//! hands it to that kind's `process_*` module. A job whose kind or parameters cannot be read
//! fails with a message naming the job; it is never run with guessed parameters.
//!
//! The queue is bounded: a project has at most one queued job of each kind. The worker
//! survives its jobs: a job that panics fails with the panic's message and the worker goes on
//! to the next one, and a job that was running at two engine starts in a row (it probably
//! brings the process down) fails instead of being run a third time.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use concord_domain::{
    JobKind, JobSpec, JobSpecError, JobState, ProjectId, Role, TaskKind, TrainParams, Trainer,
};
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
    /// The worker's last counts of confirmed labels, for the loop that trains itself.
    pub(super) auto_counts: super::auto_train::AutoTrainCounts,
    /// Test-only fault hook: the next job to start panics with this message (see the tests at
    /// the end of this file). No build outside `cargo test` of this crate has it.
    #[cfg(test)]
    panic_next_job: Mutex<Option<String>>,
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

/// What a request for a job does when a job of its kind is already queued for the project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WhenQueued {
    /// Refused with a conflict naming the queued job: an explicit request (pre-annotate,
    /// train) is not silently merged into another one with possibly other parameters.
    Refuse,
    /// The queued job's id is returned: a prediction reads the active version when it runs, so
    /// the queued one already does what an activation asks for.
    Join,
}

/// Engine starts in a row that may find a job running before it is failed instead of run
/// again: the second start that finds it running means it was interrupted twice without a
/// clean stop, most likely by itself.
const MAX_INTERRUPTED_STARTS: u32 = 2;

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Why a job stopped early.
pub(super) enum Stop {
    Cancelled,
    /// The stored kind or parameters cannot be read: nothing ran.
    Unreadable(JobSpecError),
    Failed(EngineError),
    /// The job panicked, with this message.
    Panicked(String),
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
        self.enqueue_job(actor, project, JobSpec::Predict, WhenQueued::Refuse)
    }

    /// Queues training of a new version on the confirmed labels. Project admins: the new
    /// version becomes the active one, and activating a version is theirs too.
    pub fn enqueue_train(
        &self,
        actor: &Principal,
        project: ProjectId,
        request: TrainParams,
    ) -> Result<u64, EngineError> {
        self.authorize(actor, project, Role::Admin)?;
        if request.auto.is_some() {
            // Only the worker's own trainings may replace the active version conditionally:
            // a person's request always activates its version.
            return Err(EngineError::Invalid(
                "`auto` is set by Concord when it trains on its own; a request cannot carry it"
                    .into(),
            ));
        }
        if request.trainer == Trainer::SetFit
            && self.project_record(project)?.spec.task != TaskKind::Classification
        {
            return Err(EngineError::Invalid(
                "few-shot tuning (setfit) is for single-label classification projects; train a head or fine-tune".into(),
            ));
        }
        if let Some(e) = request.epochs {
            if !(1..=MAX_FINE_TUNE_EPOCHS).contains(&e) {
                return Err(EngineError::Invalid(format!(
                    "epochs must be between 1 and {MAX_FINE_TUNE_EPOCHS} (got {e})"
                )));
            }
        }
        self.enqueue_job(actor, project, JobSpec::Train(request), WhenQueued::Refuse)
    }

    /// Queues a job of `spec` unless one of its kind is already queued for the project (see
    /// [`WhenQueued`]); a running one does not count, so a new request can follow it.
    pub(super) fn enqueue_job(
        &self,
        actor: &Principal,
        project: ProjectId,
        spec: JobSpec,
        when_queued: WhenQueued,
    ) -> Result<u64, EngineError> {
        let status = self.project_model_status(project)?;
        if !status.available {
            return Err(EngineError::Unavailable(format!(
                "model features are unavailable: {}",
                status.reason.unwrap_or_default()
            )));
        }
        self.enqueue_job_without_encoder(actor, project, spec, when_queued)
    }

    /// [`Self::enqueue_job`] for a job that may run without the project's encoder (a
    /// generator's run without demonstrations needs none; one with them fails clearly when it
    /// is missing).
    pub(super) fn enqueue_job_without_encoder(
        &self,
        actor: &Principal,
        project: ProjectId,
        spec: JobSpec,
        when_queued: WhenQueued,
    ) -> Result<u64, EngineError> {
        let kind = spec.kind();
        let created = self.store().create_job_unless_queued(&JobRecord::queued(
            project,
            &spec,
            actor.id,
            now_ms(),
        ))?;
        let id = match (created, when_queued) {
            (Ok(id), _) => id,
            (Err(queued), WhenQueued::Join) => return Ok(queued),
            (Err(queued), WhenQueued::Refuse) => {
                return Err(already_queued(kind, queued));
            }
        };
        tracing::info!(job = id, project = %project, kind = %kind, "job queued");
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

    /// Jobs found running at start were interrupted by a crash (a clean stop puts its job
    /// back in the queue): they go back to the queue and continue from their cursor, except
    /// one found running at the previous start too, which fails (see
    /// [`MAX_INTERRUPTED_STARTS`]).
    pub(crate) fn requeue_interrupted_jobs(&self) -> Result<(), EngineError> {
        for (id, _) in self
            .store()
            .jobs()?
            .into_iter()
            .filter(|(_, j)| j.state == JobState::Running)
        {
            let job = self.store().update_job(id, |j| {
                j.interrupted_starts = j.interrupted_starts.saturating_add(1);
                if j.interrupted_starts >= MAX_INTERRUPTED_STARTS {
                    j.state = JobState::Failed;
                    j.finished_ms = Some(now_ms());
                    j.error = Some(format!(
                        "job {id} was running when Concord stopped without a clean shutdown {} times in a row, so it probably brings the process down; it is not run again (queue a new job to retry)",
                        j.interrupted_starts
                    ));
                } else {
                    j.state = JobState::Queued;
                }
            })?;
            if job.state == JobState::Failed {
                tracing::error!(job = id, kind = %job.kind, project = %job.project, "job interrupted at consecutive starts; failed instead of run again");
            } else {
                tracing::warn!(job = id, kind = %job.kind, project = %job.project, "job interrupted by a crash; queued again");
            }
        }
        Ok(())
    }

    /// Runs the oldest queued job, if any; with none queued, queues an automatic training
    /// when one is due (see `auto_train`). False when there was nothing to do.
    pub(crate) fn run_next_job(&self) -> bool {
        let next = self
            .store()
            .jobs()
            .ok()
            .and_then(|jobs| jobs.into_iter().find(|(_, j)| j.state == JobState::Queued));
        let Some((id, job)) = next else {
            return self.queue_auto_training();
        };
        // Only a job still queued starts: one cancelled since the listing above stays
        // cancelled.
        let started = self.store().update_job(id, |j| {
            if j.state == JobState::Queued {
                j.state = JobState::Running;
                j.started_ms.get_or_insert(now_ms());
            }
        });
        match started {
            Ok(j) if j.state == JobState::Running => {}
            Ok(_) => return true,
            Err(e) => {
                tracing::warn!(job = id, error = %e, "cannot start the job");
                return false;
            }
        }
        tracing::info!(job = id, kind = %job.kind, project = %job.project, "job started");
        // A panic anywhere in the job fails the job, not the worker. The job's state lives in
        // the store (each batch is one transaction), so nothing half-changed in memory
        // outlives it.
        let outcome = catch_unwind(AssertUnwindSafe(|| match job.spec() {
            Ok(spec) => self.process(id, &job, spec),
            Err(e) => Err(Stop::Unreadable(e)),
        }))
        .unwrap_or_else(|payload| Err(Stop::Panicked(panic_message(payload.as_ref()))));
        if matches!(
            job.spec(),
            Ok(JobSpec::Train(TrainParams {
                trainer: Trainer::FineTune | Trainer::SetFit,
                ..
            }))
        ) {
            // A fine-tuning or few-shot tuning that stopped between saving its weights and storing its version
            // left a file no version references (a head training writes no file).
            self.remove_unreferenced_weights();
        }
        if self.inner.jobs.stopped() && matches!(outcome, Err(Stop::Failed(_))) {
            // Shutting down mid-job: a clean stop, so it goes back to the queue and resumes
            // from its cursor at the next start, not counted as interrupted by a crash.
            let _ = self.store().update_job(id, |j| {
                j.state = JobState::Queued;
                j.interrupted_starts = 0;
            });
            tracing::info!(job = id, "job stopped by the shutdown; queued again");
            return true;
        }
        let _ = self.store().update_job(id, |j| {
            j.finished_ms = Some(now_ms());
            match outcome {
                Ok(result) => {
                    j.state = JobState::Done;
                    j.result = Some(result);
                }
                Err(Stop::Panicked(message)) => {
                    tracing::error!(job = id, panic = %message, "job panicked");
                    j.state = JobState::Failed;
                    j.error = Some(format!("job {id} failed on an internal error: {message}"));
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
        #[cfg(test)]
        if let Some(message) = self
            .inner
            .jobs
            .panic_next_job
            .lock()
            .ok()
            .and_then(|mut m| m.take())
        {
            panic!("{message}");
        }
        let task = self.project_record(job.project)?.spec.task;
        match (spec, task) {
            (JobSpec::Predict, TaskKind::Classification | TaskKind::Multilabel) => self
                .process_predict(id, job.project, job.cursor)
                .map(|n| serde_json::json!({ "suggestions": n })),
            (JobSpec::Predict, TaskKind::Spans | TaskKind::Relations) => self
                .process_predict_spans(id, job.project, job.cursor)
                .map(|n| serde_json::json!({ "suggestions": n })),
            (JobSpec::Train(params), TaskKind::Classification | TaskKind::Multilabel) => {
                self.process_train(id, job.project, params)
            }
            (JobSpec::Train(params), TaskKind::Spans | TaskKind::Relations) => {
                self.process_train_spans(id, job.project, params)
            }
            (JobSpec::Generate(params), _) => self.process_generate(id, job.project, params),
        }
    }

    pub(super) fn check_cancel(&self, id: u64) -> Result<(), Stop> {
        if self.inner.jobs.stopped() {
            // Shutting down: the worker puts the job back in the queue, to resume from its
            // cursor at the next start.
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

/// The answer to a request for a job of `kind` while job `queued` of that kind is queued.
fn already_queued(kind: JobKind, queued: u64) -> EngineError {
    EngineError::Conflict(format!(
        "a {kind} job (job {queued}) is already queued for this project: wait for it to start or cancel it"
    ))
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

/// A tuning run's progress callback: progress and the cancel flag go through the store every
/// second or so; a cancellation or a shutdown breaks the run.
pub(super) struct TuningProgress<'a> {
    engine: &'a Engine,
    job: u64,
    last_saved: std::time::Instant,
    cancelled: bool,
}

impl<'a> TuningProgress<'a> {
    pub(super) fn new(engine: &'a Engine, job: u64) -> Self {
        TuningProgress {
            engine,
            job,
            last_saved: std::time::Instant::now(),
            cancelled: false,
        }
    }

    pub(super) fn step(&mut self, step: usize, steps: usize) -> std::ops::ControlFlow<()> {
        if self.last_saved.elapsed() >= Duration::from_secs(1) || step == steps {
            self.last_saved = std::time::Instant::now();
            let _ = self.engine.store().update_job(self.job, |j| {
                j.done = step as u64;
                j.total = steps as u64;
            });
            if let Err(stop) = self.engine.check_cancel(self.job) {
                // A shutdown stops the training too, but the job is not cancelled: it goes
                // back to the queue.
                self.cancelled = matches!(stop, Stop::Cancelled);
                return std::ops::ControlFlow::Break(());
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    /// The stop a tuning error means: a cancellation this callback asked for, or a failure.
    pub(super) fn stop(&self, e: concord_ml::MlError) -> Stop {
        match e {
            concord_ml::MlError::Cancelled if self.cancelled => Stop::Cancelled,
            e => Stop::from(e),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The worker's panic guard, through the test-only fault hook
    //! ([`JobSignal::panic_next_job`]): no stored data makes a job panic on purpose, so the
    //! hook stands in for a bug.

    use std::time::Instant;

    use concord_domain::{Label, ProjectSpec};

    use super::*;

    fn finished(engine: &Engine, actor: &Principal, id: u64) -> JobInfo {
        let start = Instant::now();
        loop {
            let info = engine.job(actor, id).expect("job");
            if info.state.is_finished() {
                return info;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "job {id} did not finish: {info:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_panicking_job_fails_with_its_message_and_the_worker_runs_the_next_job() {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Engine::open(dir.path()).expect("open");
        let admin = engine
            .bootstrap_admin("admin", "correct horse")
            .expect("admin");
        let project = engine
            .create_project(
                &admin,
                ProjectSpec {
                    name: "p".into(),
                    task: TaskKind::Classification,
                    labels: vec![Label::named("a"), Label::named("b")],
                    guidelines: String::new(),
                    settings: Default::default(),
                    relation_labels: Vec::new(),
                },
            )
            .expect("project");
        // Stored directly: without a models folder, enqueueing refuses a job.
        let queue = |engine: &Engine| {
            let id = engine
                .store()
                .create_job(&JobRecord::queued(project, &JobSpec::Predict, admin.id, 1))
                .expect("job");
            engine.inner.jobs.notify();
            id
        };
        *engine.inner.jobs.panic_next_job.lock().expect("hook") = Some("injected fault".into());
        let panicked = queue(&engine);
        let info = finished(&engine, &admin, panicked);
        assert_eq!(info.state, JobState::Failed, "{info:?}");
        assert_eq!(
            info.error.as_deref(),
            Some(format!("job {panicked} failed on an internal error: injected fault").as_str())
        );

        // The worker is still there: the next job runs (and fails on the missing models).
        let next = queue(&engine);
        let info = finished(&engine, &admin, next);
        assert_eq!(info.state, JobState::Failed, "{info:?}");
        let error = info.error.unwrap_or_default();
        assert!(
            error.starts_with("model features are unavailable"),
            "{error}"
        );
    }

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        let text = catch_unwind(|| panic!("plain")).expect_err("panics");
        assert_eq!(panic_message(text.as_ref()), "plain");
        let formatted = catch_unwind(|| panic!("job {}", 7)).expect_err("panics");
        assert_eq!(panic_message(formatted.as_ref()), "job 7");
        let other = catch_unwind(|| std::panic::panic_any(7_u8)).expect_err("panics");
        assert_eq!(panic_message(other.as_ref()), "a panic without a message");
    }
}
