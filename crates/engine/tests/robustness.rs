//! The engine under faults and misuse: a job that crashed the process at two starts in a row
//! fails instead of running again, the job queue holds one queued job per kind and project,
//! training is for admins, leftover weights and temporary files are removed, and CSV cells a
//! spreadsheet would run as formulas are written as text and read back exactly.

use crate::common;

use common::{error_kind, wait_for, TestEngine};
use concord_domain::{ErrorKind, JobSpec, JobState, Role, TrainParams, Trainer};
use concord_engine::{AgreementTable, ExportFormat, ImportFormat, JobInfo};
use concord_store::{JobRecord, ModelVersionRecord, VersionParams};

/// A file name in the form of a fine-tuned weights file: a SHA-256 in hex.
fn weights_name(fill: char) -> String {
    format!("{}.safetensors", fill.to_string().repeat(64))
}

fn job(env: &TestEngine, id: u64) -> JobInfo {
    env.engine.job(&env.admin, id).expect("job")
}

#[test]
fn a_job_found_running_at_two_starts_in_a_row_fails_instead_of_running_again() {
    let env = TestEngine::new();
    let project = env.create_classification_project("P", &["a", "b"]);
    let admin = env.admin.id;
    // Left as a crash leaves them: running, one for the first time (nothing counted yet), one
    // already found running at the previous start.
    let (env, (first_crash, second_crash)) = env.with_store(|store| {
        let running = |interrupted_starts| JobRecord {
            state: JobState::Running,
            started_ms: Some(1),
            done: 64,
            cursor: 64,
            interrupted_starts,
            ..JobRecord::queued(project, &JobSpec::Predict, admin, 1)
        };
        // Both jobs are written while the engine is closed; the reopening runs the checks.
        (
            store.create_job(&running(0)).expect("job"),
            store.create_job(&running(1)).expect("job"),
        )
    });
    // The first is queued again and runs: with no models folder it fails on that, which shows
    // it ran.
    let first = wait_for(&env.engine, &env.admin, first_crash);
    assert_eq!(first.state, JobState::Failed, "{first:?}");
    let error = first.error.unwrap_or_default();
    assert!(
        error.starts_with("model features are unavailable"),
        "{error}"
    );
    // The second is failed at start, never run: its progress is as the crash left it.
    let second = job(&env, second_crash);
    assert_eq!(second.state, JobState::Failed, "{second:?}");
    assert_eq!(
        second.error.as_deref(),
        Some(format!("job {second_crash} was running when Concord stopped without a clean shutdown 2 times in a row, so it probably brings the process down; it is not run again (queue a new job to retry)").as_str())
    );
    assert_eq!((second.done, second.started_ms), (64, Some(1)));
    // The counts are stored with the jobs.
    let (_env, counts) = env.with_store(|store| {
        [first_crash, second_crash].map(|id| {
            store
                .job(id)
                .expect("read")
                .expect("job")
                .interrupted_starts
        })
    });
    assert_eq!(counts, [1, 2]);
}

#[test]
fn job_rows_from_before_the_crash_count_read_as_never_interrupted() {
    // A job row as the release before this field wrote it.
    let stored = r#"{"project":1,"kind":"predict","params":null,"state":"running","done":0,"total":0,"requested_by":1,"created_ms":1,"started_ms":null,"finished_ms":null,"error":null,"cursor":0,"cancel_requested":false,"result":null}"#;
    let record: JobRecord = serde_json::from_str(stored).expect("old row");
    assert_eq!(record.interrupted_starts, 0);
    // Written back, a job never interrupted stays in the old form.
    assert_eq!(
        serde_json::to_value(&record).expect("encode"),
        serde_json::from_str::<serde_json::Value>(stored).expect("json")
    );
}

#[test]
fn a_project_holds_one_queued_job_per_kind_and_training_is_for_admins() {
    let env = TestEngine::with_models();
    let topics = |name: &str| env.create_classification_project(name, &["a", "b"]);
    let (project, other) = (topics("P"), topics("Q"));
    let reviewer = env.member(project, "rev", Role::Reviewer);
    // A stored version, to activate later.
    let (env, version) = env.with_store(|store| {
        store
            .create_model_version(project, &stored_version(None), false)
            .expect("version")
    });
    // With the worker stopped, queued jobs stay queued.
    env.engine.shutdown_jobs();

    let predict = env
        .engine
        .enqueue_predict(&env.admin, project)
        .expect("queued");
    let again = env.engine.enqueue_predict(&env.admin, project);
    match again {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Conflict);
            assert_eq!(
                e.to_string(),
                format!("a predict job (job {predict}) is already queued for this project: wait for it to start or cancel it")
            );
        }
        Ok(id) => panic!("a second predict job was queued: {id}"),
    }
    // Another kind, and another project, have their own places.
    let train = env
        .engine
        .enqueue_train(&env.admin, project, TrainParams::default())
        .expect("train queued");
    assert_eq!(
        error_kind(
            env.engine
                .enqueue_train(&env.admin, project, TrainParams::default())
        ),
        ErrorKind::Conflict
    );
    env.engine
        .enqueue_predict(&env.admin, other)
        .expect("other project");
    // A cancelled job frees its kind's place.
    env.engine.cancel_job(&env.admin, predict).expect("cancel");
    let next = env
        .engine
        .enqueue_predict(&env.admin, project)
        .expect("queued again");
    assert!(next > train);

    // Activating a version while a prediction is queued joins it: that job reads the active
    // version when it runs.
    assert_eq!(
        env.engine
            .activate_model(&env.admin, project, version)
            .expect("activate"),
        next
    );

    // Training activates the version it makes: like activating, it needs an admin.
    assert_eq!(
        error_kind(
            env.engine
                .enqueue_train(&reviewer, other, TrainParams::default())
        ),
        ErrorKind::Forbidden
    );
}

/// A model version as stored, naming the fine-tuned weights `encoder_file`.
fn stored_version(encoder_file: Option<String>) -> ModelVersionRecord {
    ModelVersionRecord {
        trainer: "fine_tune".into(),
        created_ms: 1,
        parent: None,
        params: VersionParams {
            encoder_file,
            ..VersionParams::default()
        },
        train_size: 0,
        train_hash: String::new(),
        labels: vec!["a".into(), "b".into()],
        encoder: "00".into(),
        metrics: None,
        classifier: serde_json::Value::Null,
        name: None,
        held_out: Vec::new(),
        held_out_spans: Vec::new(),
        confirmed: None,
        auto: None,
        comparison: None,
    }
}

#[test]
fn unreferenced_weights_files_and_leftover_temporary_files_are_removed_at_start() {
    let env = TestEngine::new();
    let project = env.create_classification_project("P", &["a", "b"]);
    let data = env.dir.path().to_path_buf();
    let encoders = data.join("encoders");
    std::fs::create_dir_all(&encoders).expect("encoders folder");
    let (used, unused) = (weights_name('a'), weights_name('b'));
    let files = [
        (encoders.join(&used), true),
        (encoders.join(&unused), false),
        (encoders.join(".job-7.safetensors.tmp"), false),
        (data.join(".upload-Xy12ab"), false),
        // Not Concord's leftovers: left alone.
        (encoders.join("notes.txt"), true),
        (encoders.join("model.safetensors"), true),
        (data.join("upload-Xy12ab"), true),
    ];
    for (path, _) in &files {
        std::fs::write(path, b"x").expect("write");
    }
    // A version that names `used` (a fine-tuned one), stored while the engine is closed.
    let (env, _) = env.with_store(|store| {
        store
            .create_model_version(project, &stored_version(Some(used.clone())), true)
            .expect("version")
    });
    // `with_store` opened the engine again: the start removed what no one needs.
    for (path, kept) in &files {
        assert_eq!(path.exists(), *kept, "{}", path.display());
    }
    drop(env);
}

#[test]
fn weights_files_left_by_a_training_are_removed_when_a_training_ends() {
    let env = TestEngine::with_models();
    let project = env.create_classification_project("P", &["a", "b"]);
    // As a fine-tuning stopped between saving its weights and storing its version leaves one.
    let encoders = env.dir.path().join("encoders");
    std::fs::create_dir_all(&encoders).expect("encoders folder");
    let orphan = encoders.join(weights_name('c'));
    std::fs::write(&orphan, b"x").expect("write");
    // A project with no labels: the fine-tuning fails quickly, and ends all the same. (A head
    // training writes no weights file, so only a fine-tuning looks for one left behind.)
    let job = env
        .engine
        .enqueue_train(
            &env.admin,
            project,
            TrainParams {
                trainer: Trainer::FineTune,
                epochs: None,
                auto: None,
            },
        )
        .expect("queued");
    let info = wait_for(&env.engine, &env.admin, job);
    assert_eq!(info.state, JobState::Failed, "{info:?}");
    assert!(
        !orphan.exists(),
        "the unreferenced weights file is still there"
    );
}

/// Texts, labels and ids that a spreadsheet would run as formulas.
const FORMULA_TEXT: &str = "=HYPERLINK(\"http://example.com/x\",\"click\")";

fn formula_fixture() -> (TestEngine, concord_domain::ProjectId) {
    let env = TestEngine::new();
    let project = env.create_classification_project("F", &["=cmd", "@sum", "plain"]);
    let body = format!(
        "{}\n{}\n",
        serde_json::json!({ "id": "-d", "text": FORMULA_TEXT, "gold": "=cmd", "note": "+1" }),
        serde_json::json!({ "id": "e", "text": "'=quoted already", "gold": "plain" }),
    );
    env.import(project, ImportFormat::Jsonl, body.as_bytes())
        .expect("import");
    (env, project)
}

#[test]
fn csv_cells_that_start_like_formulas_are_written_as_text() {
    let (env, project) = formula_fixture();
    let eve = env.member(project, "@eve", Role::Annotator);
    let bob = env.member(project, "bob", Role::Annotator);
    env.answer(&eve, project, "-d", &["@sum"]);
    env.answer(&bob, project, "-d", &["=cmd"]);
    env.answer(&eve, project, "e", &["plain"]);
    env.answer(&bob, project, "e", &["plain"]);

    let csv = env.export(project, ExportFormat::Csv);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().expect("header").clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    let cell = |row: usize, column: &str| {
        let i = header
            .iter()
            .position(|h| h == column)
            .unwrap_or_else(|| panic!("no column {column}"));
        rows[row][i].to_string()
    };
    assert_eq!(cell(0, "id"), "'-d");
    assert_eq!(cell(0, "text"), format!("'{FORMULA_TEXT}"));
    assert_eq!(cell(0, "gold"), "'=cmd");
    assert_eq!(cell(0, "ann:@eve"), "'@sum");
    assert_eq!(cell(0, "ann:bob"), "'=cmd");
    assert_eq!(cell(0, "aggregate"), "'=cmd|@sum");
    // Inside the JSON of the meta cell, which starts with `{`, nothing changes.
    assert_eq!(cell(0, "meta"), "{\"note\":\"+1\"}");
    // A text that already starts with `'` and a formula character keeps its own `'`.
    assert_eq!(cell(1, "text"), "''=quoted already");
    assert_eq!(cell(1, "gold"), "plain");

    // The agreement tables too: a label and an annotator named like formulas.
    let agreement = env
        .engine
        .agreement(&env.admin, project)
        .expect("agreement");
    let labels = agreement.csv(AgreementTable::Labels).expect("labels table");
    assert!(labels.lines().any(|l| l.starts_with("'=cmd,")), "{labels}");
    assert!(!labels.lines().any(|l| l.starts_with("=")), "{labels}");
    let annotators = agreement
        .csv(AgreementTable::Annotators)
        .expect("annotators table");
    assert!(
        annotators.lines().any(|l| l.starts_with("'@eve,")),
        "{annotators}"
    );
    let confusion = env
        .engine
        .rater_confusion(&env.admin, project, "@eve", "bob")
        .expect("confusion")
        .csv()
        .expect("confusion table");
    assert!(
        confusion.starts_with("'@eve \\ bob,'=cmd,'@sum,"),
        "{confusion}"
    );
    assert!(confusion.contains("\n'=cmd,"), "{confusion}");
}

#[test]
fn export_of_formula_like_cells_reimports_exactly() {
    let (env, project) = formula_fixture();
    let eve = env.member(project, "@eve", Role::Annotator);
    env.answer(&eve, project, "-d", &["@sum"]);
    let first = env.export(project, ExportFormat::Csv);
    let copy = env.create_classification_project("Copy", &["=cmd", "@sum", "plain"]);
    env.import(copy, ImportFormat::Csv, first.as_bytes())
        .expect("re-import");
    assert_eq!(env.export(copy, ExportFormat::Csv), first);
    // What was stored is the original text, not the neutralised cell.
    let items = common::export_jsonl(&env.engine, &env.admin, copy);
    assert_eq!(items[0]["id"], "-d");
    assert_eq!(items[0]["text"], FORMULA_TEXT);
    assert_eq!(items[0]["gold"], "=cmd");
    assert_eq!(items[0]["meta"]["note"], "+1");
    assert_eq!(items[0]["annotations"][0]["labels"][0], "@sum");
    assert_eq!(items[1]["text"], "'=quoted already");
}

#[test]
fn a_job_stopped_by_a_clean_shutdown_is_queued_again_and_not_counted_as_a_crash() {
    let env = TestEngine::with_models();
    let project = env.create_project(common::topics_spec("Stop"));
    // Several of the job's batches.
    let body: String = (0..320)
        .map(|i| {
            let (text, _) = common::TEXTS[i % common::TEXTS.len()];
            format!(
                "{}\n",
                serde_json::json!({ "text": format!("{text} ({i})") })
            )
        })
        .collect();
    env.import(project, ImportFormat::Jsonl, body.as_bytes())
        .expect("import");
    let job = env
        .engine
        .enqueue_predict(&env.admin, project)
        .expect("queued");
    let start = std::time::Instant::now();
    loop {
        let info = env.engine.job(&env.admin, job).expect("job");
        assert!(
            matches!(info.state, JobState::Queued | JobState::Running),
            "the job ended before the shutdown: {info:?}"
        );
        if info.done > 0 {
            env.engine.shutdown_jobs();
            break;
        }
        assert!(start.elapsed().as_secs() < 300, "no batch stored: {info:?}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // The store opens once the worker has let go of the engine, after its batch.
    let (env, stopped) = env.with_store(|store| store.job(job).expect("read").expect("job"));
    assert_eq!(
        (stopped.state, stopped.interrupted_starts),
        (JobState::Queued, 0),
        "{stopped:?}"
    );
    assert!(stopped.cursor > 0 && stopped.cursor < 320, "{stopped:?}");
    let info = common::finish(&env.engine, &env.admin, job);
    assert_eq!((info.done, info.total), (320, 320));
}
