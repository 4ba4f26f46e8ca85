//! Stored jobs the worker cannot read (a kind this binary does not know, parameters that do not
//! fit the kind) fail with a message naming the job and the problem, and stay listed; they
//! never run with guessed parameters.

use std::path::Path;
use std::time::{Duration, Instant};

use concord_domain::{JobSpec, JobState, Label, ProjectId, ProjectSpec, TaskKind};
use concord_engine::{Engine, Principal, DATABASE_FILE};
use concord_store::{JobRecord, Store, StoreError};

/// The database, opened directly once the engine that had it has let go of it (its job worker
/// may hold it for one more turn after the engine is dropped).
fn open_store(dir: &Path) -> Store {
    let start = Instant::now();
    loop {
        match Store::open(&dir.join(DATABASE_FILE)) {
            Ok(store) => return store,
            Err(StoreError::AlreadyOpen { .. }) if start.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("cannot open the database: {e}"),
        }
    }
}

/// Sets up the data dir `dir` with its first admin and a classification project, and closes
/// the engine again; returns the admin and the project.
fn admin_and_project(dir: &Path) -> (Principal, ProjectId) {
    let engine = Engine::open(dir).unwrap();
    let admin = engine.bootstrap_admin("admin", "correct horse").unwrap();
    let spec = ProjectSpec {
        name: "p".into(),
        task: TaskKind::Classification,
        labels: vec![Label::named("a"), Label::named("b")],
        guidelines: String::new(),
        settings: Default::default(),
        relation_labels: Vec::new(),
    };
    let project = engine.create_project(&admin, spec).unwrap();
    (admin, project)
}

#[test]
fn a_stored_job_that_cannot_be_read_fails_naming_the_job_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, project) = admin_and_project(dir.path());

    // Written the way a newer release (or a damaged file) would leave them.
    let store = open_store(dir.path());
    let stored = |kind: &str, params: serde_json::Value| JobRecord {
        kind: kind.into(),
        params,
        ..JobRecord::queued(project, &JobSpec::Predict, admin.id, 1)
    };
    let unknown_kind = store
        .create_job(&stored("span", serde_json::Value::Null))
        .unwrap();
    let unknown_trainer = store
        .create_job(&stored(
            "train",
            serde_json::json!({ "trainer": "gpt", "epochs": 3 }),
        ))
        .unwrap();
    let no_params = store
        .create_job(&stored("train", serde_json::Value::Null))
        .unwrap();
    let predict_with_params = store
        .create_job(&stored("predict", serde_json::json!({ "epochs": 3 })))
        .unwrap();
    drop(store);

    // No models folder: a job run with guessed parameters would fail too, but with "model
    // features are unavailable", not with what is wrong with the job.
    let engine = Engine::open(dir.path()).unwrap();
    let expected = [
        (
            unknown_kind,
            "span",
            format!(
                "job {unknown_kind} cannot run: unknown job kind \"span\" (known kinds: predict, train, generate)"
            ),
        ),
        (
            unknown_trainer,
            "train",
            format!(
                "job {unknown_trainer} cannot run: unreadable train parameters: unknown variant `gpt`, expected one of `head`, `fine_tune`, `setfit`"
            ),
        ),
        (
            no_params,
            "train",
            format!(
                "job {no_params} cannot run: unreadable train parameters: invalid type: null, expected struct TrainParams"
            ),
        ),
        (
            predict_with_params,
            "predict",
            format!(
                "job {predict_with_params} cannot run: unreadable predict parameters: a prediction takes none, found {{\"epochs\":3}}"
            ),
        ),
    ];
    for (id, kind, message) in &expected {
        let start = Instant::now();
        let info = loop {
            let info = engine.job(&admin, *id).unwrap();
            if info.state.is_finished() {
                break info;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "job {id} did not finish: {info:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(info.state, JobState::Failed, "{info:?}");
        assert_eq!(info.error.as_deref(), Some(message.as_str()));
        assert_eq!(info.kind, *kind);
        assert_eq!(info.result, None);
    }
    // The jobs list shows them, failed, with their messages (newest first).
    let listed: Vec<(u64, JobState, Option<String>)> = engine
        .project_jobs(&admin, project)
        .unwrap()
        .into_iter()
        .map(|j| (j.id, j.state, j.error))
        .collect();
    let want: Vec<(u64, JobState, Option<String>)> = expected
        .iter()
        .rev()
        .map(|(id, _, message)| (*id, JobState::Failed, Some(message.clone())))
        .collect();
    assert_eq!(listed, want);
}

/// A command-line operation between a crash and the next start (an export, an account change)
/// leaves the jobs alone: it runs none of them (it has no models, so each would fail) and does
/// not count as a start for the crash-loop guard; the next server start resumes them.
#[test]
fn a_command_line_open_leaves_interrupted_and_queued_jobs_for_the_next_server_start() {
    let dir = tempfile::tempdir().unwrap();
    let (admin, project) = admin_and_project(dir.path());
    let store = open_store(dir.path());
    // As a crash leaves them: one job running (mid-way), one waiting.
    let running = store
        .create_job(&JobRecord {
            state: JobState::Running,
            cursor: 64,
            done: 64,
            ..JobRecord::queued(project, &JobSpec::Predict, admin.id, 1)
        })
        .unwrap();
    let queued = store
        .create_job(&JobRecord::queued(
            project,
            &JobSpec::Train(Default::default()),
            admin.id,
            2,
        ))
        .unwrap();
    drop(store);

    for _ in 0..3 {
        let engine = Engine::open_for_command(dir.path()).unwrap();
        // The command sees the jobs as they are stored.
        let listed = engine.project_jobs(&admin, project).unwrap();
        assert_eq!(listed.len(), 2);
        drop(engine);
    }
    // Give a (wrongly started) worker time to pick the jobs up before looking.
    std::thread::sleep(Duration::from_millis(300));
    let store = open_store(dir.path());
    let job = store.job(running).unwrap().expect("the running job");
    assert_eq!(job.state, JobState::Running);
    assert_eq!(job.interrupted_starts, 0, "a command is not a server start");
    assert_eq!((job.cursor, job.done), (64, 64));
    let job = store.job(queued).unwrap().expect("the queued job");
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.error, None);
}
