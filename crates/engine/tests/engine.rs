//! The engine against a real redb file: accounts, authorization, import/export, the queue.

use crate::common;

use common::{error_kind, TestEngine, ADMIN, ADMIN_PASSWORD, MEMBER_PASSWORD};
use concord_domain::{ErrorKind, ProjectId, ProjectSettings, ProjectSpec, Role, TaskKind};
use concord_engine::{
    EngineError, ExportFormat, ImportFormat, ImportOptions, Principal, Submission, SubmitOutcome,
};

struct Fixture {
    env: TestEngine,
    ann: Principal,
    project: ProjectId,
}

fn spec(task: TaskKind) -> ProjectSpec {
    ProjectSpec {
        guidelines: "Be *kind*.".into(),
        ..common::spec(
            "Sentiment",
            task,
            &["pos", "neg", "neu"],
            ProjectSettings::default(),
        )
    }
}

fn fixture(task: TaskKind) -> Fixture {
    let env = TestEngine::new();
    let project = env.create_project(spec(task));
    let ann = env.member(project, "ann", Role::Annotator);
    Fixture { env, ann, project }
}

impl Fixture {
    fn import(
        &self,
        format: ImportFormat,
        body: &str,
    ) -> Result<concord_engine::ImportReport, EngineError> {
        self.env.import(self.project, format, body.as_bytes())
    }

    /// The admin imports `body` with `options`, reporting progress to `progress`.
    fn import_with(
        &self,
        body: &str,
        options: &ImportOptions,
        progress: &mut dyn FnMut(concord_engine::ImportProgress),
    ) -> Result<concord_engine::ImportReport, EngineError> {
        self.env.engine.import(
            &self.env.admin,
            self.project,
            body.as_bytes(),
            options,
            progress,
        )
    }

    /// How many items the project holds, as its summary says.
    fn item_count(&self) -> u64 {
        self.env
            .engine
            .project_summary(&self.env.admin, self.project)
            .expect("project summary")
            .total
    }

    fn export(&self, format: ExportFormat) -> String {
        self.env.export(self.project, format)
    }

    fn submit(&self, who: &Principal, item: &str, label: &str) -> SubmitOutcome {
        self.env.answer(who, self.project, item, &[label])
    }
}

#[test]
fn setup_happens_once_and_login_checks_the_password() {
    let f = fixture(TaskKind::Classification);
    let engine = &f.env.engine;
    assert_eq!(
        error_kind(engine.bootstrap_admin("eve", "whatever123")),
        ErrorKind::Conflict
    );
    assert_eq!(
        error_kind(engine.login("ann", "wrong-password")),
        ErrorKind::NotSignedIn
    );
    assert_eq!(
        error_kind(engine.login("nobody", "wrong-password")),
        ErrorKind::NotSignedIn
    );
    // One message for a wrong password and an unknown name, saying what went wrong.
    let message = |r: Result<_, concord_engine::EngineError>| r.err().map(|e| e.to_string());
    assert_eq!(
        message(engine.login("ann", "wrong-password")),
        Some("wrong name or password".to_string())
    );
    assert_eq!(
        message(engine.login("nobody", "wrong-password")),
        message(engine.login("ann", "wrong-password"))
    );
    let (admin, _) = engine.login(ADMIN, ADMIN_PASSWORD).unwrap();
    assert_eq!(admin, f.env.admin);
    let (who, secret) = engine.login("ann", MEMBER_PASSWORD).unwrap();
    assert_eq!(who, f.ann);
    assert_eq!(
        engine.session_principal(&secret).unwrap(),
        Some(f.ann.clone())
    );
    engine.logout(&secret).unwrap();
    assert_eq!(engine.session_principal(&secret).unwrap(), None);
    let token = engine.create_api_token(&f.ann, f.ann.id, "script").unwrap();
    assert_eq!(engine.token_principal(&token).unwrap(), Some(f.ann.clone()));
    assert_eq!(engine.token_principal("cct_forged").unwrap(), None);
    assert_eq!(
        error_kind(engine.create_user(&f.ann, "mallory", "password123", true)),
        ErrorKind::Forbidden
    );
    assert_eq!(
        error_kind(engine.create_user(&f.env.admin, "short", "pw", false)),
        ErrorKind::InvalidInput
    );
}

#[test]
fn annotators_reach_only_their_projects_and_cannot_import_or_export() {
    let f = fixture(TaskKind::Classification);
    let engine = &f.env.engine;
    f.import(ImportFormat::Text, "one\ntwo\n").unwrap();
    let outsider = engine
        .create_user(&f.env.admin, "out", "outsider-pass", false)
        .unwrap();
    assert_eq!(
        error_kind(engine.next_item(&outsider, f.project, &[])),
        ErrorKind::Forbidden
    );
    assert!(engine.list_projects(&outsider).unwrap().is_empty());
    assert_eq!(engine.list_projects(&f.ann).unwrap().len(), 1);
    let options = ImportOptions {
        format: ImportFormat::Text,
        ..ImportOptions::default()
    };
    assert_eq!(
        error_kind(engine.import(&f.ann, f.project, "x".as_bytes(), &options, &mut |_| {})),
        ErrorKind::Forbidden
    );
    assert_eq!(
        error_kind(engine.export(&f.ann, f.project, ExportFormat::Jsonl, &mut Vec::new())),
        ErrorKind::Forbidden
    );
    assert_eq!(
        error_kind(engine.create_project(&f.ann, spec(TaskKind::Classification))),
        ErrorKind::Forbidden
    );
}

/// Imports `body` expecting it to fail at `line` with a message naming `problem`, leaving the
/// project at `total` items.
fn check_refused(f: &Fixture, format: ImportFormat, body: &[u8], line: u64, problem: &str) {
    let e = f.env.import(f.project, format, body).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
    let message = e.to_string();
    assert!(
        message.starts_with(&format!("line {line}: ")),
        "{message:?} should name line {line}"
    );
    assert!(
        message.contains(problem),
        "{message:?} should mention {problem:?}"
    );
    assert_eq!(f.item_count(), 1, "{e}");
}

/// Each bad input names its line and stores nothing.
#[test]
fn bad_imports_name_the_line_and_store_nothing() {
    let f = fixture(TaskKind::Classification);
    f.import(
        ImportFormat::Jsonl,
        "{\"id\":\"keep\",\"text\":\"already here\"}\n",
    )
    .unwrap();
    let check = |format, body: &[u8], line, problem| check_refused(&f, format, body, line, problem);
    let jsonl = ImportFormat::Jsonl;
    check(
        jsonl,
        b"{\"text\":\"a\"}\n{\"text\":\"b\"\n",
        2,
        "invalid JSON",
    );
    check(
        jsonl,
        b"{\"text\":\"a\"}\n{\"text\":\"\xff\xfe\"}\n",
        2,
        "not valid UTF-8",
    );
    check(
        jsonl,
        b"{\"text\":\"a\"}\n\n{\"body\":\"b\"}\n",
        3,
        "no \"text\" field",
    );
    check(jsonl, b"", 1, "contains no items");
    check(
        jsonl,
        b"{\"text\":\"a\",\"gold\":\"pos\"}\n{\"text\":\"b\",\"gold\":\"spam\"}\n",
        2,
        "\"spam\" is not in this project's labels",
    );
    check(
        jsonl,
        b"{\"text\":\"a\",\"id\":\"keep\"}\n",
        1,
        "item id \"keep\" is already used",
    );
    check(
        jsonl,
        b"{\"text\":\"a\",\"id\":\"x\"}\n{\"text\":\"b\",\"id\":\"x\"}\n",
        2,
        "item id \"x\"",
    );
    check(jsonl, b"[1,2]\n", 1, "expected a JSON object");
    check(
        ImportFormat::Csv,
        b"id,body\n1,hello\n",
        1,
        "no column named \"text\"",
    );
    check(
        ImportFormat::Csv,
        b"id,text\n1,hello\n2,world,extra\n",
        3,
        "has 3 fields",
    );
    check(
        ImportFormat::Csv,
        b"text,gold\nfine,pos\nbad,nope\n",
        3,
        "\"nope\" is not in this project's labels",
    );
    check(ImportFormat::Text, b"ok\n\xc3\x28\n", 2, "not valid UTF-8");
}

/// A failure after several full batches were staged (each its own transaction) still leaves
/// nothing behind: not a visible item, not a staged row, not the import's claim on the
/// project.
#[test]
fn a_failure_after_several_full_batches_leaves_no_staged_rows() {
    let f = fixture(TaskKind::Classification);
    f.import(
        ImportFormat::Jsonl,
        "{\"id\":\"keep\",\"text\":\"already here\"}\n",
    )
    .unwrap();
    let good = 2 * concord_engine::IMPORT_BATCH_ITEMS + 1;
    let mut big = String::with_capacity(24 * good);
    for i in 0..good {
        big.push_str(&format!("{{\"text\":\"item {i}\"}}\n"));
    }
    big.push_str("{oops\n");
    // The progress reports prove that the full batches were handed to staging before the
    // bad line: each report follows one batch.
    let mut staged = Vec::new();
    let options = ImportOptions {
        format: ImportFormat::Jsonl,
        ..ImportOptions::default()
    };
    let e = f
        .import_with(&big, &options, &mut |p| staged.push(p.items))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("line {}: invalid JSON", good + 1)),
        "{e}"
    );
    let batch = concord_engine::IMPORT_BATCH_ITEMS as u64;
    assert_eq!(staged, [batch, 2 * batch], "two full batches were staged");
    assert_eq!(f.item_count(), 1);
    // The project takes the next import (a staged import would hold it) ...
    f.import(ImportFormat::Text, "after the failure\n").unwrap();
    // ... and the store keeps exactly the two visible items' rows.
    let (_env, rows) = f
        .env
        .with_store(|store| store.item_rows(f.project).unwrap());
    assert_eq!(rows, 2, "rows of the failed import were left in the store");
}

#[test]
fn duplicates_are_reported_and_kept_or_skipped() {
    let f = fixture(TaskKind::Classification);
    f.import(ImportFormat::Text, "hello\nworld\n").unwrap();
    let r = f.import(ImportFormat::Text, "new\nhello\nnew\n").unwrap();
    assert_eq!((r.imported, r.duplicates, r.skipped_duplicates), (3, 2, 0));
    assert_eq!(r.duplicate_examples[0].line, 2);
    assert_eq!(r.duplicate_examples[0].existing_id, "1");
    let options = ImportOptions {
        format: ImportFormat::Text,
        skip_duplicates: true,
        ..ImportOptions::default()
    };
    let r = f
        .import_with("world\nfresh\n", &options, &mut |_| {})
        .unwrap();
    assert_eq!((r.imported, r.duplicates, r.skipped_duplicates), (1, 1, 1));
    assert_eq!(f.item_count(), 6);
}

#[test]
fn jsonl_fields_become_metadata_and_gold() {
    let f = fixture(TaskKind::Classification);
    let r = f.import(ImportFormat::Jsonl, "{\"id\":7,\"text\":\"great\",\"gold\":\"pos\",\"source\":\"web\",\"meta\":{\"k\":[1,2]}}\n").unwrap();
    assert_eq!(r.imported, 1);
    let out = f.export(ExportFormat::Jsonl);
    assert_eq!(
        out,
        "{\"id\":\"7\",\"text\":\"great\",\"meta\":{\"k\":[1,2],\"source\":\"web\"},\"gold\":\"pos\",\"gold_source\":\"import\",\"gold_question\":false,\"annotations\":[],\"aggregate\":{\"status\":\"none\",\"labels\":[]},\"suggestion\":null}\n"
    );
}

#[test]
fn export_reimports_to_the_same_file_in_both_formats() {
    for format in [ExportFormat::Jsonl, ExportFormat::Csv] {
        let f = fixture(TaskKind::Multilabel);
        let bob = f.env.member(f.project, "bob", Role::Annotator);
        f.import(ImportFormat::Jsonl, "{\"id\":\"a\",\"text\":\"one, \\\"quoted\\\"\\nline\",\"gold\":[\"neg\",\"pos\"],\"lang\":\"en\"}\n{\"id\":\"b\",\"text\":\"two\"}\n{\"id\":\"c\",\"text\":\"three\"}\n{\"id\":\"@d\",\"text\":\"=SUM(A1:A9)\",\"formula\":\"-2+3\",\"meta\":{\"cmd\":\"+cmd\"}}\n").unwrap();
        for (who, item, labels) in [
            (&f.ann, "a", &["pos"][..]),
            (&bob, "a", &["pos", "neu"][..]),
            (&bob, "c", &[][..]),
        ] {
            f.env.answer(who, f.project, item, labels);
        }
        let first = f.export(format);
        let mut spec2 = spec(TaskKind::Multilabel);
        spec2.name = "Copy".into();
        let copy = f.env.create_project(spec2);
        let import_format = if format == ExportFormat::Csv {
            ImportFormat::Csv
        } else {
            ImportFormat::Jsonl
        };
        let report = f.env.import(copy, import_format, first.as_bytes()).unwrap();
        assert_eq!((report.imported, report.annotations), (4, 3));
        // Cells that start like spreadsheet formulas were written with a leading `'` and read
        // back without it: the copy's export is the same file.
        if format == ExportFormat::Csv {
            assert!(first.contains("\n'@d,'=SUM(A1:A9),"), "{first}");
        }
        assert_eq!(
            f.env.export(copy, format),
            first,
            "{format:?} export is not a fixed point"
        );
        // Multi-label gold is listed in schema order, and the aggregate is the labels more than half chose.
        if format == ExportFormat::Jsonl {
            assert!(first.contains("\"gold\":[\"pos\",\"neg\"]"), "{first}");
            assert!(
                first.contains("\"aggregate\":{\"status\":\"agreed\",\"labels\":[\"pos\"]}"),
                "{first}"
            );
        } else {
            assert!(
                first.starts_with("id,text,gold,gold_source,gold_question,meta,ann:ann,ann:bob,aggregate,aggregate_status,suggestion,suggestion_confidence,suggestion_version\n"),
                "{first}"
            );
        }
    }
}

#[test]
fn single_label_ties_are_reported() {
    let f = fixture(TaskKind::Classification);
    let bob = f.env.member(f.project, "bob", Role::Annotator);
    f.import(ImportFormat::Text, "split\n").unwrap();
    f.submit(&f.ann, "1", "pos");
    f.submit(&bob, "1", "neg");
    let out = f.export(ExportFormat::Csv);
    assert!(
        out.ends_with("1,split,,,false,,pos,neg,pos|neg,tie,,,\n"),
        "{out}"
    );
}

#[test]
fn the_queue_hands_out_each_item_once_and_submits_are_idempotent() {
    let f = fixture(TaskKind::Classification);
    let engine = &f.env.engine;
    f.import(ImportFormat::Text, "a\nb\nc\n").unwrap();
    let bob = f.env.member(f.project, "bob", Role::Annotator);
    let first = engine.next_item(&f.ann, f.project, &[]).unwrap().unwrap();
    // Asking again (a reload) gives the same reserved item; the prefetch excludes it.
    assert_eq!(
        engine
            .next_item(&f.ann, f.project, &[])
            .unwrap()
            .unwrap()
            .id,
        first.id
    );
    let prefetch = engine
        .next_item(&f.ann, f.project, std::slice::from_ref(&first.id))
        .unwrap()
        .unwrap();
    assert_ne!(prefetch.id, first.id);
    // Bob gets neither of ann's reserved items.
    let bobs = engine.next_item(&bob, f.project, &[]).unwrap().unwrap();
    assert!(bobs.id != first.id && bobs.id != prefetch.id);
    assert_eq!(f.submit(&f.ann, &first.id, "pos"), SubmitOutcome::Created);
    assert_eq!(f.submit(&f.ann, &first.id, "pos"), SubmitOutcome::Unchanged);
    assert_eq!(f.submit(&f.ann, &first.id, "neg"), SubmitOutcome::Updated);
    let back = engine
        .item_for_annotation(&f.ann, f.project, &first.id)
        .unwrap();
    assert_eq!(back.mine.unwrap().labels, ["neg"]);
    engine.skip(&f.ann, f.project, &prefetch.id).unwrap();
    assert_eq!(engine.next_item(&f.ann, f.project, &[]).unwrap(), None);
    assert_eq!(engine.reset_skips(&f.ann, f.project).unwrap(), 1);
    assert_eq!(
        engine
            .next_item(&f.ann, f.project, &[])
            .unwrap()
            .unwrap()
            .id,
        prefetch.id
    );
    let s = engine.project_summary(&f.ann, f.project).unwrap();
    assert_eq!((s.total, s.done, s.mine), (3, 1, 1));
    let bad = Submission {
        item_id: first.id.clone(),
        labels: vec!["pos".into(), "neg".into()],
        spans: Vec::new(),
        time_spent_ms: 0,
        relations: Vec::new(),
    };
    assert_eq!(
        error_kind(engine.submit(&f.ann, f.project, bad)),
        ErrorKind::InvalidInput
    );
    let missing = Submission {
        item_id: "nope".into(),
        labels: vec!["pos".into()],
        spans: Vec::new(),
        time_spent_ms: 0,
        relations: Vec::new(),
    };
    assert_eq!(
        error_kind(engine.submit(&f.ann, f.project, missing)),
        ErrorKind::NotFound
    );
}

#[test]
fn concurrent_submits_are_group_committed_and_all_stored() {
    let f = fixture(TaskKind::Classification);
    let text: String = (0..200).map(|i| format!("item {i}\n")).collect();
    f.import(ImportFormat::Text, &text).unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let f = &f;
            s.spawn(move || {
                for i in 0..25 {
                    let id = (t * 25 + i + 1).to_string();
                    assert_eq!(f.submit(&f.ann, &id, "neu"), SubmitOutcome::Created);
                }
            });
        }
    });
    let s = f.env.engine.project_summary(&f.ann, f.project).unwrap();
    assert_eq!((s.done, s.mine), (200, 200));
}
