//! The engine against a real redb file: accounts, authorization, import/export, the queue.

use concord_domain::{Label, ProjectId, ProjectSettings, ProjectSpec, TaskKind};
use concord_engine::{
    Engine, EngineError, ExportFormat, ImportFormat, ImportOptions, Principal, Submission,
    SubmitOutcome,
};

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    admin: Principal,
    ann: Principal,
    project: ProjectId,
}

fn spec(task: TaskKind) -> ProjectSpec {
    ProjectSpec {
        name: "Sentiment".into(),
        task,
        labels: ["pos", "neg", "neu"]
            .iter()
            .map(|n| Label::named(*n))
            .collect(),
        guidelines: "Be *kind*.".into(),
        settings: ProjectSettings::default(),
    }
}

fn fixture(task: TaskKind) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap();
    let admin = engine.bootstrap_admin("admin", "correct horse").unwrap();
    let ann = engine
        .create_user(&admin, "ann", "annotator-pass", false)
        .unwrap();
    let project = engine.create_project(&admin, spec(task)).unwrap();
    engine
        .set_member(
            &admin,
            project,
            "ann",
            Some(concord_domain::Role::Annotator),
        )
        .unwrap();
    Fixture {
        _dir: dir,
        engine,
        admin,
        ann,
        project,
    }
}

fn import(
    f: &Fixture,
    format: ImportFormat,
    body: &str,
) -> Result<concord_engine::ImportReport, EngineError> {
    let options = ImportOptions {
        format,
        ..ImportOptions::default()
    };
    f.engine
        .import(&f.admin, f.project, body.as_bytes(), &options, &mut |_| {})
}

fn export(f: &Fixture, format: ExportFormat) -> String {
    let mut out = Vec::new();
    f.engine
        .export(&f.admin, f.project, format, &mut out)
        .unwrap();
    String::from_utf8(out).unwrap()
}

fn submit(f: &Fixture, who: &Principal, item: &str, label: &str) -> SubmitOutcome {
    let s = Submission {
        item_id: item.into(),
        labels: vec![label.into()],
        time_spent_ms: 1200,
    };
    f.engine.submit(who, f.project, s).unwrap()
}

#[test]
fn setup_happens_once_and_login_checks_the_password() {
    let f = fixture(TaskKind::Classification);
    assert!(matches!(
        f.engine.bootstrap_admin("eve", "whatever123"),
        Err(EngineError::Conflict(_))
    ));
    assert!(matches!(
        f.engine.login("ann", "wrong-password"),
        Err(EngineError::Unauthenticated)
    ));
    assert!(matches!(
        f.engine.login("nobody", "wrong-password"),
        Err(EngineError::Unauthenticated)
    ));
    let (who, secret) = f.engine.login("ann", "annotator-pass").unwrap();
    assert_eq!(who, f.ann);
    assert_eq!(
        f.engine.session_principal(&secret).unwrap(),
        Some(f.ann.clone())
    );
    f.engine.logout(&secret).unwrap();
    assert_eq!(f.engine.session_principal(&secret).unwrap(), None);
    let token = f
        .engine
        .create_api_token(&f.ann, f.ann.id, "script")
        .unwrap();
    assert_eq!(
        f.engine.token_principal(&token).unwrap(),
        Some(f.ann.clone())
    );
    assert_eq!(f.engine.token_principal("cct_forged").unwrap(), None);
    assert!(matches!(
        f.engine.create_user(&f.ann, "mallory", "password123", true),
        Err(EngineError::Forbidden)
    ));
    assert!(matches!(
        f.engine.create_user(&f.admin, "short", "pw", false),
        Err(EngineError::Invalid(_))
    ));
}

#[test]
fn annotators_reach_only_their_projects_and_cannot_import_or_export() {
    let f = fixture(TaskKind::Classification);
    import(&f, ImportFormat::Text, "one\ntwo\n").unwrap();
    let outsider = f
        .engine
        .create_user(&f.admin, "out", "outsider-pass", false)
        .unwrap();
    assert!(matches!(
        f.engine.next_item(&outsider, f.project, &[]),
        Err(EngineError::Forbidden)
    ));
    assert!(f.engine.list_projects(&outsider).unwrap().is_empty());
    assert_eq!(f.engine.list_projects(&f.ann).unwrap().len(), 1);
    let options = ImportOptions {
        format: ImportFormat::Text,
        ..ImportOptions::default()
    };
    assert!(matches!(
        f.engine
            .import(&f.ann, f.project, "x".as_bytes(), &options, &mut |_| {}),
        Err(EngineError::Forbidden)
    ));
    assert!(matches!(
        f.engine
            .export(&f.ann, f.project, ExportFormat::Jsonl, &mut Vec::new()),
        Err(EngineError::Forbidden)
    ));
    assert!(matches!(
        f.engine
            .create_project(&f.ann, spec(TaskKind::Classification)),
        Err(EngineError::Forbidden)
    ));
}

/// Each bad input names its line and stores nothing.
#[test]
fn bad_imports_name_the_line_and_store_nothing() {
    let f = fixture(TaskKind::Classification);
    import(
        &f,
        ImportFormat::Jsonl,
        "{\"id\":\"keep\",\"text\":\"already here\"}\n",
    )
    .unwrap();
    let check = |format: ImportFormat, body: &[u8], line: u64, problem: &str| {
        let options = ImportOptions {
            format,
            ..ImportOptions::default()
        };
        let e = f
            .engine
            .import(&f.admin, f.project, body, &options, &mut |_| {})
            .unwrap_err();
        match &e {
            EngineError::Import {
                line: l,
                problem: p,
            } => {
                assert_eq!(*l, line, "{e}");
                assert!(p.contains(problem), "{e:?} should mention {problem:?}");
            }
            other => panic!("expected an import error, got {other:?}"),
        }
        assert_eq!(
            f.engine.project_summary(&f.admin, f.project).unwrap().total,
            1,
            "{e}"
        );
    };
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
    // A failure after several full batches still leaves nothing behind.
    let mut big = String::new();
    for i in 0..45_000 {
        big.push_str(&format!("{{\"text\":\"item {i}\"}}\n"));
    }
    big.push_str("{oops\n");
    check(jsonl, big.as_bytes(), 45_001, "invalid JSON");
}

#[test]
fn duplicates_are_reported_and_kept_or_skipped() {
    let f = fixture(TaskKind::Classification);
    import(&f, ImportFormat::Text, "hello\nworld\n").unwrap();
    let r = import(&f, ImportFormat::Text, "new\nhello\nnew\n").unwrap();
    assert_eq!((r.imported, r.duplicates, r.skipped_duplicates), (3, 2, 0));
    assert_eq!(r.duplicate_examples[0].line, 2);
    assert_eq!(r.duplicate_examples[0].existing_id, "1");
    let options = ImportOptions {
        format: ImportFormat::Text,
        skip_duplicates: true,
        ..ImportOptions::default()
    };
    let r = f
        .engine
        .import(
            &f.admin,
            f.project,
            "world\nfresh\n".as_bytes(),
            &options,
            &mut |_| {},
        )
        .unwrap();
    assert_eq!((r.imported, r.duplicates, r.skipped_duplicates), (1, 1, 1));
    assert_eq!(
        f.engine.project_summary(&f.admin, f.project).unwrap().total,
        6
    );
}

#[test]
fn jsonl_fields_become_metadata_and_gold() {
    let f = fixture(TaskKind::Classification);
    let r = import(&f, ImportFormat::Jsonl, "{\"id\":7,\"text\":\"great\",\"gold\":\"pos\",\"source\":\"web\",\"meta\":{\"k\":[1,2]}}\n").unwrap();
    assert_eq!(r.imported, 1);
    let out = export(&f, ExportFormat::Jsonl);
    assert_eq!(
        out,
        "{\"id\":\"7\",\"text\":\"great\",\"meta\":{\"k\":[1,2],\"source\":\"web\"},\"gold\":\"pos\",\"gold_source\":\"import\",\"gold_question\":false,\"annotations\":[],\"aggregate\":{\"status\":\"none\",\"labels\":[]},\"suggestion\":null}\n"
    );
}

#[test]
fn export_reimports_to_the_same_file_in_both_formats() {
    for format in [ExportFormat::Jsonl, ExportFormat::Csv] {
        let f = fixture(TaskKind::Multilabel);
        let bob = f
            .engine
            .create_user(&f.admin, "bob", "bob-password", false)
            .unwrap();
        f.engine
            .set_member(
                &f.admin,
                f.project,
                "bob",
                Some(concord_domain::Role::Annotator),
            )
            .unwrap();
        import(&f, ImportFormat::Jsonl, "{\"id\":\"a\",\"text\":\"one, \\\"quoted\\\"\\nline\",\"gold\":[\"neg\",\"pos\"],\"lang\":\"en\"}\n{\"id\":\"b\",\"text\":\"two\"}\n{\"id\":\"c\",\"text\":\"three\"}\n").unwrap();
        let labels = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (who, item, l) in [
            (&f.ann, "a", labels(&["pos"])),
            (&bob, "a", labels(&["pos", "neu"])),
            (&bob, "c", labels(&[])),
        ] {
            f.engine
                .submit(
                    who,
                    f.project,
                    Submission {
                        item_id: item.into(),
                        labels: l,
                        time_spent_ms: 10,
                    },
                )
                .unwrap();
        }
        let first = export(&f, format);
        let mut spec2 = spec(TaskKind::Multilabel);
        spec2.name = "Copy".into();
        let copy = f.engine.create_project(&f.admin, spec2).unwrap();
        let options = ImportOptions {
            format: if format == ExportFormat::Csv {
                ImportFormat::Csv
            } else {
                ImportFormat::Jsonl
            },
            ..ImportOptions::default()
        };
        let report = f
            .engine
            .import(&f.admin, copy, first.as_bytes(), &options, &mut |_| {})
            .unwrap();
        assert_eq!((report.imported, report.annotations), (3, 3));
        let mut again = Vec::new();
        f.engine.export(&f.admin, copy, format, &mut again).unwrap();
        assert_eq!(
            String::from_utf8(again).unwrap(),
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
    let bob = f
        .engine
        .create_user(&f.admin, "bob", "bob-password", false)
        .unwrap();
    f.engine
        .set_member(
            &f.admin,
            f.project,
            "bob",
            Some(concord_domain::Role::Annotator),
        )
        .unwrap();
    import(&f, ImportFormat::Text, "split\n").unwrap();
    submit(&f, &f.ann, "1", "pos");
    submit(&f, &bob, "1", "neg");
    let out = export(&f, ExportFormat::Csv);
    assert!(
        out.ends_with("1,split,,,false,,pos,neg,pos|neg,tie,,,\n"),
        "{out}"
    );
}

#[test]
fn the_queue_hands_out_each_item_once_and_submits_are_idempotent() {
    let f = fixture(TaskKind::Classification);
    import(&f, ImportFormat::Text, "a\nb\nc\n").unwrap();
    let bob = f
        .engine
        .create_user(&f.admin, "bob", "bob-password", false)
        .unwrap();
    f.engine
        .set_member(
            &f.admin,
            f.project,
            "bob",
            Some(concord_domain::Role::Annotator),
        )
        .unwrap();
    let first = f.engine.next_item(&f.ann, f.project, &[]).unwrap().unwrap();
    // Asking again (a reload) gives the same reserved item; the prefetch excludes it.
    assert_eq!(
        f.engine
            .next_item(&f.ann, f.project, &[])
            .unwrap()
            .unwrap()
            .id,
        first.id
    );
    let prefetch = f
        .engine
        .next_item(&f.ann, f.project, std::slice::from_ref(&first.id))
        .unwrap()
        .unwrap();
    assert_ne!(prefetch.id, first.id);
    // Bob gets neither of ann's reserved items.
    let bobs = f.engine.next_item(&bob, f.project, &[]).unwrap().unwrap();
    assert!(bobs.id != first.id && bobs.id != prefetch.id);
    assert_eq!(submit(&f, &f.ann, &first.id, "pos"), SubmitOutcome::Created);
    assert_eq!(
        submit(&f, &f.ann, &first.id, "pos"),
        SubmitOutcome::Unchanged
    );
    assert_eq!(submit(&f, &f.ann, &first.id, "neg"), SubmitOutcome::Updated);
    let back = f
        .engine
        .item_for_annotation(&f.ann, f.project, &first.id)
        .unwrap();
    assert_eq!(back.mine.unwrap().labels, ["neg"]);
    f.engine.skip(&f.ann, f.project, &prefetch.id).unwrap();
    assert_eq!(f.engine.next_item(&f.ann, f.project, &[]).unwrap(), None);
    assert_eq!(f.engine.reset_skips(&f.ann, f.project).unwrap(), 1);
    assert_eq!(
        f.engine
            .next_item(&f.ann, f.project, &[])
            .unwrap()
            .unwrap()
            .id,
        prefetch.id
    );
    let s = f.engine.project_summary(&f.ann, f.project).unwrap();
    assert_eq!((s.total, s.done, s.mine), (3, 1, 1));
    let bad = Submission {
        item_id: first.id.clone(),
        labels: vec!["pos".into(), "neg".into()],
        time_spent_ms: 0,
    };
    assert!(matches!(
        f.engine.submit(&f.ann, f.project, bad),
        Err(EngineError::Invalid(_))
    ));
    let missing = Submission {
        item_id: "nope".into(),
        labels: vec!["pos".into()],
        time_spent_ms: 0,
    };
    assert!(matches!(
        f.engine.submit(&f.ann, f.project, missing),
        Err(EngineError::NotFound(_))
    ));
}

#[test]
fn concurrent_submits_are_group_committed_and_all_stored() {
    let f = fixture(TaskKind::Classification);
    let text: String = (0..200).map(|i| format!("item {i}\n")).collect();
    import(&f, ImportFormat::Text, &text).unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let f = &f;
            s.spawn(move || {
                for i in 0..25 {
                    let id = (t * 25 + i + 1).to_string();
                    assert_eq!(submit(f, &f.ann, &id, "neu"), SubmitOutcome::Created);
                }
            });
        }
    });
    let s = f.engine.project_summary(&f.ann, f.project).unwrap();
    assert_eq!((s.done, s.mine), (200, 200));
}
