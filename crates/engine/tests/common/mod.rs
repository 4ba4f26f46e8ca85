//! The fixture the engine's integration tests share: an engine over a temp data dir with its
//! first admin, projects, members, imports, exports and answers, and for the model tests the
//! models folder, the topics project and waiting for jobs.
//!
//! Each test file compiles this module on its own and uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use concord_domain::{
    ErrorKind, JobState, Label, ProjectId, ProjectSettings, ProjectSpec, Relation, RelationLabel,
    Role, Span, TaskKind,
};
use concord_engine::{
    Engine, EngineError, ExportFormat, ImportFormat, ImportOptions, ImportReport, ImportedLabels,
    JobInfo, ModelVersionInfo, Principal, ProjectAgreement, ReviewItem, Submission, SubmitOutcome,
    TrainRequest,
};
use serde_json::Value;

pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = "correct horse";
/// The password of every account [`TestEngine::member`] makes.
pub const MEMBER_PASSWORD: &str = "a long password";
/// Time spent on each answer [`TestEngine::answer`] gives.
pub const ANSWER_TIME_MS: u64 = 900;

/// An engine over a fresh data dir (removed on drop) with the first admin.
pub struct TestEngine {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
    pub admin: Principal,
    models: Option<PathBuf>,
}

impl TestEngine {
    /// Without models.
    pub fn new() -> TestEngine {
        TestEngine::open(None)
    }

    /// With the models folder of `scripts/setup.sh` (see [`models_dir`]); fails when the
    /// default encoder is not there.
    pub fn with_models() -> TestEngine {
        let env = TestEngine::open(Some(models_dir()));
        let status = env.engine.model_status();
        assert!(status.available, "{status:?}: run scripts/setup.sh");
        env
    }

    /// With models read from `models` (which need not exist).
    pub fn with_models_from(models: PathBuf) -> TestEngine {
        TestEngine::open(Some(models))
    }

    fn open(models: Option<PathBuf>) -> TestEngine {
        let dir = tempfile::tempdir().expect("temp dir");
        let engine = Engine::open_with_models(dir.path(), models.clone()).expect("open engine");
        let admin = engine
            .bootstrap_admin(ADMIN, ADMIN_PASSWORD)
            .expect("first admin");
        TestEngine {
            dir,
            engine,
            admin,
            models,
        }
    }

    /// Closes the engine (its job worker stops after its current batch) and opens the data
    /// dir again, as a restart does.
    pub fn restart(self) -> TestEngine {
        self.reopen_after(|_| ()).0
    }

    /// Closes the engine and hands `f` the store of its data dir (nothing else holds it
    /// then), for what the engine's API does not show; opens the engine again afterwards.
    pub fn with_store<T>(self, f: impl FnOnce(&concord_store::Store) -> T) -> (TestEngine, T) {
        self.reopen_after(|dir| {
            let store = open_store_when_released(dir);
            f(&store)
        })
    }

    /// Closes the engine and stores what an import of another tool's suggestions stores: an
    /// active version named `name` over the entity types `labels`, and for the first item the
    /// suggestion `suggestion_of` makes for that version; opens the engine again. Returns the
    /// version.
    pub fn with_external_suggestion(
        self,
        project: ProjectId,
        name: &str,
        labels: &[&str],
        suggestion_of: impl FnOnce(u64) -> concord_store::SuggestionRecord,
    ) -> (TestEngine, u64) {
        self.with_store(|store| {
            let record = external_model_version(name, labels);
            let version = store
                .create_model_version(project, &record, true)
                .expect("store the version");
            store
                .put_predictions(project, &[0; 8], &[], &[(0, suggestion_of(version))], None)
                .expect("store the suggestion");
            version
        })
    }

    /// Closes the engine, runs `between` on the data dir while nothing holds it open, and
    /// opens the engine again once the old one has released it.
    fn reopen_after<T>(self, between: impl FnOnce(&Path) -> T) -> (TestEngine, T) {
        let TestEngine {
            dir,
            engine,
            admin,
            models,
        } = self;
        drop(engine);
        let out = between(dir.path());
        let engine = open_when_released(dir.path(), models.clone());
        (
            TestEngine {
                dir,
                engine,
                admin,
                models,
            },
            out,
        )
    }

    /// Creates `spec`; with models, the loop that trains itself is switched off, so that the
    /// jobs a test queues are the only ones (tests of that loop use
    /// [`TestEngine::create_project_training_itself`]).
    pub fn create_project(&self, mut spec: ProjectSpec) -> ProjectId {
        if self.models.is_some() {
            spec.settings.auto_train.enabled = false;
        }
        self.engine
            .create_project(&self.admin, spec)
            .expect("create project")
    }

    /// Creates `spec` as given, its automatic training included.
    pub fn create_project_training_itself(&self, spec: ProjectSpec) -> ProjectId {
        self.engine
            .create_project(&self.admin, spec)
            .expect("create project")
    }

    /// A classification project `name` of `labels` with the default settings.
    pub fn create_classification_project(&self, name: &str, labels: &[&str]) -> ProjectId {
        self.create_project(spec(
            name,
            TaskKind::Classification,
            labels,
            ProjectSettings::default(),
        ))
    }

    /// A new account `name` (password [`MEMBER_PASSWORD`]) with `role` in `project`.
    pub fn member(&self, project: ProjectId, name: &str, role: Role) -> Principal {
        let who = self
            .engine
            .create_user(&self.admin, name, MEMBER_PASSWORD, false)
            .expect("create user");
        self.engine
            .set_member(&self.admin, project, name, Some(role))
            .expect("set member");
        who
    }

    /// New accounts `names` (as [`TestEngine::member`] makes them), in this order, each an
    /// annotator in `project`.
    pub fn annotators<const N: usize>(
        &self,
        project: ProjectId,
        names: [&str; N],
    ) -> [Principal; N] {
        names.map(|name| self.member(project, name, Role::Annotator))
    }

    /// The admin imports `body` in `format`.
    pub fn import(
        &self,
        project: ProjectId,
        format: ImportFormat,
        body: &[u8],
    ) -> Result<ImportReport, EngineError> {
        let options = ImportOptions {
            format,
            ..ImportOptions::default()
        };
        self.engine
            .import(&self.admin, project, body, &options, &mut |_| {})
    }

    /// The admin's export of `project` in `format`.
    pub fn export(&self, project: ProjectId, format: ExportFormat) -> String {
        export(&self.engine, &self.admin, project, format)
    }

    /// The admin imports `texts` as JSONL items with nothing but their text (a new project
    /// numbers them 1.. in this order).
    pub fn import_texts<'a>(&self, project: ProjectId, texts: impl IntoIterator<Item = &'a str>) {
        let body: String = texts
            .into_iter()
            .map(|t| format!("{}\n", serde_json::json!({ "text": t })))
            .collect();
        self.import(project, ImportFormat::Jsonl, body.as_bytes())
            .expect("import the texts");
    }

    /// The admin imports `texts` as JSONL items with ids `t1`, `t2`, … in this order.
    pub fn import_texts_with_t_ids<'a>(
        &self,
        project: ProjectId,
        texts: impl IntoIterator<Item = &'a str>,
    ) {
        let body: String = texts
            .into_iter()
            .enumerate()
            .map(|(i, text)| {
                format!(
                    "{}\n",
                    serde_json::json!({ "id": format!("t{}", i + 1), "text": text })
                )
            })
            .collect();
        self.import(project, ImportFormat::Jsonl, body.as_bytes())
            .expect("import the texts");
    }

    /// The admin pre-annotates `project` with its active version (zero-shot or patterns when
    /// none was trained) and waits for the job to succeed.
    pub fn predict(&self, project: ProjectId) -> JobInfo {
        let job = self
            .engine
            .enqueue_predict(&self.admin, project)
            .expect("enqueue predict");
        finish(&self.engine, &self.admin, job)
    }

    /// The admin trains `project` with the default request and waits for the job to succeed.
    pub fn train(&self, project: ProjectId) -> JobInfo {
        self.train_with(project, TrainRequest::default())
    }

    /// The admin trains `project` as `request` asks and waits for the job to succeed.
    pub fn train_with(&self, project: ProjectId, request: TrainRequest) -> JobInfo {
        let job = self
            .engine
            .enqueue_train(&self.admin, project, request)
            .expect("enqueue train");
        finish(&self.engine, &self.admin, job)
    }

    /// The admin saves `project`'s current settings as `change` leaves them.
    pub fn change_settings(&self, project: ProjectId, change: impl FnOnce(&mut ProjectSettings)) {
        let mut settings = self
            .engine
            .project_summary(&self.admin, project)
            .expect("project summary")
            .spec
            .settings;
        change(&mut settings);
        self.engine
            .update_settings(&self.admin, project, settings)
            .expect("update settings");
    }

    /// `who` answers `item` of a span project with `spans`.
    pub fn answer_spans(
        &self,
        who: &Principal,
        project: ProjectId,
        item: &str,
        spans: Vec<Span>,
    ) -> SubmitOutcome {
        self.engine
            .submit(who, project, span_submission(item, spans, Vec::new()))
            .expect("submit spans")
    }

    /// `who` answers `item` of a relations project with `spans` and `relations` between them.
    pub fn answer_relations(
        &self,
        who: &Principal,
        project: ProjectId,
        item: &str,
        spans: Vec<Span>,
        relations: Vec<Relation>,
    ) -> SubmitOutcome {
        self.engine
            .submit(who, project, span_submission(item, spans, relations))
            .expect("submit spans and relations")
    }

    /// `who` answers `item` with `labels`.
    pub fn answer(
        &self,
        who: &Principal,
        project: ProjectId,
        item: &str,
        labels: &[&str],
    ) -> SubmitOutcome {
        self.engine
            .submit(who, project, submission(item, labels))
            .expect("submit")
    }

    /// The admin's agreement figures for `project`.
    pub fn agreement(&self, project: ProjectId) -> ProjectAgreement {
        self.engine
            .agreement(&self.admin, project)
            .expect("agreement figures")
    }

    /// The next item waiting for `reviewer`'s review after `after` (see
    /// [`Engine::review_next`]); fails the test when the queue is empty.
    pub fn next_to_review(
        &self,
        reviewer: &Principal,
        project: ProjectId,
        after: Option<&str>,
    ) -> ReviewItem {
        self.engine
            .review_next(reviewer, project, after)
            .expect("review next")
            .expect("an item waiting for review")
    }
}

/// `project`'s export in `format`, as `who` may download it.
pub fn export(
    engine: &Engine,
    who: &Principal,
    project: ProjectId,
    format: ExportFormat,
) -> String {
    let mut out = Vec::new();
    engine
        .export(who, project, format, &mut out)
        .expect("export");
    String::from_utf8(out).expect("the export is UTF-8")
}

/// `project`'s JSONL export, one value per item.
pub fn export_jsonl(engine: &Engine, who: &Principal, project: ProjectId) -> Vec<Value> {
    export(engine, who, project, ExportFormat::Jsonl)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an export line is JSON"))
        .collect()
}

/// An answer of `labels` for `item`.
pub fn submission(item: &str, labels: &[&str]) -> Submission {
    Submission {
        item_id: item.into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
        spans: Vec::new(),
        time_spent_ms: ANSWER_TIME_MS,
        relations: Vec::new(),
    }
}

/// An answer of `spans` and `relations` between them (indexes into `spans`) for `item`.
pub fn span_submission(item: &str, spans: Vec<Span>, relations: Vec<Relation>) -> Submission {
    Submission {
        item_id: item.into(),
        labels: Vec::new(),
        spans,
        time_spent_ms: ANSWER_TIME_MS,
        relations,
    }
}

/// Spans `(start, end, entity type)`.
pub fn spans(list: &[(u32, u32, &str)]) -> Vec<Span> {
    list.iter()
        .map(|&(start, end, label)| Span::new(start, end, label))
        .collect()
}

/// Relations `(from, to, relation type)`, `from` and `to` indexes into an answer's spans.
pub fn relations(list: &[(u32, u32, &str)]) -> Vec<Relation> {
    list.iter()
        .map(|&(from, to, label)| Relation::new(from, to, label))
        .collect()
}

/// A relation type `name` whose head spans have one of the `head` entity types and whose tail
/// spans one of the `tail` ones (empty: any).
pub fn relation_label(name: &str, head: &[&str], tail: &[&str]) -> RelationLabel {
    RelationLabel {
        head: head.iter().map(|t| t.to_string()).collect(),
        tail: tail.iter().map(|t| t.to_string()).collect(),
        ..RelationLabel::named(name)
    }
}

/// Checks that the figure `what` is defined and `want`, to 1e-9.
pub fn assert_close(what: &str, got: Option<f64>, want: f64) {
    let got = got.unwrap_or_else(|| panic!("{what} is undefined"));
    assert!((got - want).abs() < 1e-9, "{what}: {got} ≠ {want}");
}

/// `settings` with the loop that trains itself switched off: tests that save settings while
/// answering and queue their own trainings keep their jobs and versions to themselves.
pub fn without_auto_train(settings: ProjectSettings) -> ProjectSettings {
    ProjectSettings {
        auto_train: concord_domain::AutoTrainSettings {
            enabled: false,
            ..settings.auto_train
        },
        ..settings
    }
}

/// A project of `labels` (named only).
pub fn spec(name: &str, task: TaskKind, labels: &[&str], settings: ProjectSettings) -> ProjectSpec {
    ProjectSpec {
        name: name.into(),
        task,
        labels: labels.iter().map(|n| Label::named(*n)).collect(),
        guidelines: String::new(),
        settings,
        relation_labels: Vec::new(),
    }
}

/// How long a closed engine may take to let go of its database: its job worker finishes the
/// batch it is on first.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(120);

/// Opens the engine over `dir` as soon as the previous one has released the database.
pub fn open_when_released(dir: &Path, models: Option<PathBuf>) -> Engine {
    let start = Instant::now();
    loop {
        match Engine::open_with_models(dir, models.clone()) {
            Ok(engine) => return engine,
            Err(e) if e.kind() == concord_domain::ErrorKind::Unavailable => {
                assert!(start.elapsed() < RELEASE_TIMEOUT, "still held: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot reopen the engine: {e}"),
        }
    }
}

/// Opens the store of the data dir `dir` as soon as the engine has released it.
pub fn open_store_when_released(dir: &Path) -> concord_store::Store {
    let path = dir.join(concord_engine::DATABASE_FILE);
    let start = Instant::now();
    loop {
        match concord_store::Store::open(&path) {
            Ok(store) => return store,
            Err(concord_store::StoreError::AlreadyOpen { .. }) => {
                assert!(
                    start.elapsed() < RELEASE_TIMEOUT,
                    "the engine did not release {}",
                    path.display()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("cannot open the store: {e}"),
        }
    }
}

// ---- models ------------------------------------------------------------------------------

/// The models folder: `CONCORD_TEST_MODELS`, else the repository's `models/`
/// (`scripts/setup.sh` puts all-MiniLM-L6-v2 there).
pub fn models_dir() -> PathBuf {
    std::env::var_os("CONCORD_TEST_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

/// The key the default encoder's embeddings are cached under (its weights' fingerprint).
pub fn default_encoder_key() -> [u8; 8] {
    let weights = models_dir()
        .join(concord_engine::DEFAULT_MODEL)
        .join("model.safetensors");
    let fingerprint = concord_ml::file_fingerprint(&weights).expect("fingerprint the weights");
    let bytes = hex::decode(fingerprint).expect("a fingerprint is hex");
    bytes.try_into().expect("a fingerprint is 8 bytes")
}

/// Polls `job` until it is done, failed or cancelled.
pub fn wait_for(engine: &Engine, who: &Principal, job: u64) -> JobInfo {
    let start = Instant::now();
    loop {
        let info = engine.job(who, job).expect("job");
        if matches!(
            info.state,
            JobState::Done | JobState::Failed | JobState::Cancelled
        ) {
            return info;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "job {job} did not finish: {info:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The active one of a project's `versions`.
pub fn active_version(versions: &[ModelVersionInfo]) -> &ModelVersionInfo {
    versions
        .iter()
        .find(|v| v.active)
        .expect("an active version")
}

/// A version as an import of another tool's suggestions stores it: named `name`, over the
/// entity types `labels`, without a model of its own.
fn external_model_version(name: &str, labels: &[&str]) -> concord_store::ModelVersionRecord {
    concord_store::ModelVersionRecord {
        trainer: "external".into(),
        created_ms: 1,
        parent: None,
        params: Default::default(),
        train_size: 0,
        train_hash: String::new(),
        labels: labels.iter().map(|t| t.to_string()).collect(),
        encoder: String::new(),
        metrics: None,
        classifier: serde_json::Value::Null,
        name: Some(name.into()),
        held_out: Vec::new(),
        held_out_spans: Vec::new(),
        confirmed: None,
        auto: None,
        comparison: None,
    }
}

/// Waits for `job` and checks that it succeeded.
pub fn finish(engine: &Engine, who: &Principal, job: u64) -> JobInfo {
    let info = wait_for(engine, who, job);
    assert_eq!(info.state, JobState::Done, "{info:?}");
    info
}

pub const TOPICS: &[(&str, &str)] = &[
    ("sports", "games, teams, players, goals and matches"),
    ("cooking", "recipes, food, ingredients and kitchens"),
    ("finance", "money, markets, banks, prices and investing"),
];

/// Texts with their true topic. Some are hard for zero-shot on purpose (no topic words).
pub const TEXTS: &[(&str, usize)] = &[
    ("The striker scored twice in the cup final.", 0),
    ("The goalkeeper saved a penalty in extra time.", 0),
    ("Our team lost the match after a late red card.", 0),
    ("She won the marathon in record time.", 0),
    ("The coach dropped two players before the derby.", 0),
    ("He hit a home run in the ninth inning.", 0),
    ("Fans booed the referee at half time.", 0),
    ("The tennis final went to five sets.", 0),
    ("Simmer the onions in butter until golden.", 1),
    ("Knead the dough and let it rise for an hour.", 1),
    ("Add a pinch of salt to the boiling pasta water.", 1),
    ("Roast the chicken at 200 degrees for forty minutes.", 1),
    ("Whisk the eggs with sugar until pale.", 1),
    ("Chop the garlic finely and fry it in olive oil.", 1),
    ("The soup needs more pepper and fresh basil.", 1),
    ("Bake the cake until a skewer comes out clean.", 1),
    ("The central bank raised interest rates again.", 2),
    ("Stocks fell sharply after the earnings report.", 2),
    ("She moved her savings into an index fund.", 2),
    ("The mortgage payment went up by two hundred dollars.", 2),
    ("Bond yields climbed as inflation surprised investors.", 2),
    ("The startup raised ten million in a funding round.", 2),
    ("He paid off his credit card debt this year.", 2),
    ("The currency lost value against the dollar.", 2),
];

/// The true topic of item `id` (1-based, as [`import_texts`] numbers them).
pub fn topic_of(id: usize) -> &'static str {
    TOPICS[TEXTS[id - 1].1].0
}

/// A project whose labels are the topics, described.
pub fn topics_spec(name: &str) -> ProjectSpec {
    ProjectSpec {
        name: name.into(),
        task: TaskKind::Classification,
        labels: TOPICS
            .iter()
            .map(|(n, d)| Label {
                description: Some(d.to_string()),
                ..Label::named(*n)
            })
            .collect(),
        guidelines: String::new(),
        settings: ProjectSettings::default(),
        relation_labels: Vec::new(),
    }
}

/// Imports [`TEXTS`] as items 1 to 24.
pub fn import_texts(env: &TestEngine, project: ProjectId) {
    env.import_texts(project, TEXTS.iter().map(|(t, _)| *t));
}

/// The kind of the error `result` holds; fails the test when it holds none.
pub fn error_kind<T: std::fmt::Debug>(result: Result<T, EngineError>) -> ErrorKind {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(e) => e.kind(),
    }
}

// ---- formats -----------------------------------------------------------------------------

/// The admin imports `body` in `format`, its labels taken as `labels_as` says.
pub fn import_as(
    env: &TestEngine,
    project: ProjectId,
    format: ImportFormat,
    labels_as: ImportedLabels,
    body: &[u8],
) -> Result<ImportReport, EngineError> {
    let options = ImportOptions {
        format,
        labels_as,
        ..ImportOptions::default()
    };
    env.engine
        .import(&env.admin, project, body, &options, &mut |_| {})
}

/// The import format that reads an export format back.
pub fn reader_of(format: ExportFormat) -> ImportFormat {
    match format {
        ExportFormat::Jsonl | ExportFormat::Prodigy => ImportFormat::Jsonl,
        ExportFormat::Csv => ImportFormat::Csv,
        ExportFormat::Conll => ImportFormat::Conll,
        ExportFormat::LabelStudio => ImportFormat::LabelStudio,
        ExportFormat::Doccano => ImportFormat::Doccano,
    }
}

/// What a project stores, item by item, as its JSONL export shows it: id, text, metadata,
/// tokens, (effective) gold and every answer with its spans, relations, times and source.
/// Derived fields (the gold's source, the majority, the suggestion) are left out.
pub fn contents(env: &TestEngine, project: ProjectId) -> Vec<Value> {
    export_jsonl(&env.engine, &env.admin, project)
        .into_iter()
        .map(|mut line| {
            let obj = line.as_object_mut().expect("an object");
            for derived in ["gold_source", "aggregate", "suggestion"] {
                obj.remove(derived);
            }
            line
        })
        .collect()
}

/// The line and message of the import error `result` holds; fails the test on anything else.
pub fn import_error(result: Result<ImportReport, EngineError>) -> (u64, String) {
    match result {
        Err(EngineError::Import { line, problem }) => (line, problem),
        other => panic!("expected an import error, got {other:?}"),
    }
}

/// How many items `project` holds.
pub fn item_count(env: &TestEngine, project: ProjectId) -> u64 {
    env.engine
        .project_summary(&env.admin, project)
        .expect("summary")
        .total
}
