//! The store against a real redb file in a temp dir.

use concord_domain::{
    AnnotationSource, AnnotationValue, GoldSource, Label, ProjectId, ProjectSettings, ProjectSpec,
    TaskKind, UserId,
};
use concord_store::{
    AnnotationRecord, AnnotationWrite, ItemRecord, ProjectRecord, StagedItem, Store, StoreError,
    UserRecord, WriteOutcome,
};

fn project_record(overlap: u32) -> ProjectRecord {
    let spec = ProjectSpec {
        name: "spam".into(),
        task: TaskKind::Classification,
        labels: ["spam", "ham"].iter().map(|n| Label::named(*n)).collect(),
        guidelines: String::new(),
        settings: ProjectSettings {
            overlap,
            ..ProjectSettings::default()
        },
        relation_labels: Vec::new(),
    }
    .normalize()
    .unwrap();
    ProjectRecord {
        spec,
        created_ms: 0,
        created_by: UserId(1),
        next_seq: 0,
        done: 0,
        annotations: 0,
        active_model: None,
    }
}

fn item(id: &str, text: &str) -> StagedItem {
    StagedItem {
        item: ItemRecord {
            id: id.into(),
            text: text.into(),
            meta: Default::default(),
            gold: None,
            gold_source: None,
            tokens: Vec::new(),
        },
        annotations: vec![],
    }
}

fn setup(overlap: u32) -> (tempfile::TempDir, Store, ProjectId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("concord.redb")).unwrap();
    let p = store.create_project(&project_record(overlap)).unwrap();
    (dir, store, p)
}

fn import(store: &Store, p: ProjectId, items: &[(&str, &str)]) -> u64 {
    let mut imp = store.begin_import(p).unwrap();
    let mut batch: Vec<_> = items.iter().map(|(i, t)| item(i, t)).collect();
    store.stage_items(&mut imp, &mut batch, false).unwrap();
    store.commit_import(imp).unwrap()
}

fn write(p: ProjectId, seq: u64, user: u64, label: &str) -> AnnotationWrite {
    AnnotationWrite {
        project: p,
        seq,
        user: UserId(user),
        value: AnnotationValue::labels([label]),
        source: AnnotationSource::Human,
        time_spent_ms: 1000,
        now_ms: 5,
        as_live_evidence: false,
    }
}

#[test]
fn second_open_of_the_same_file_is_refused_with_a_clear_error() {
    let (dir, _store, _) = setup(1);
    let err = Store::open(&dir.path().join("concord.redb")).err().unwrap();
    assert!(matches!(err, StoreError::AlreadyOpen { .. }), "{err}");
    assert!(err
        .to_string()
        .contains("in use by another Concord process"));
}

#[test]
fn a_file_from_a_newer_concord_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("concord.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(redb::TableDefinition::<&str, u64>::new("meta"))
            .unwrap()
            .insert("schema_version", 99)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = Store::open(&path).err().unwrap();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 99, .. }),
        "{err}"
    );
}

#[test]
fn users_have_unique_names() {
    let (_d, store, _) = setup(1);
    let rec = UserRecord {
        name: "ann".into(),
        password_hash: "x".into(),
        is_admin: false,
        created_ms: 0,
        disabled: false,
    };
    let id = store.create_user(&rec).unwrap();
    assert!(matches!(
        store.create_user(&rec),
        Err(StoreError::Exists(_))
    ));
    assert_eq!(store.user_by_name("ann").unwrap().unwrap().0, id);
    assert_eq!(store.user_count().unwrap(), 1);
}

#[test]
fn a_password_change_keeps_the_other_fields_and_ends_the_other_sessions_at_once() {
    let (_d, store, _) = setup(1);
    let rec = |name: &str, is_admin| UserRecord {
        name: name.into(),
        password_hash: "old".into(),
        is_admin,
        created_ms: 0,
        disabled: false,
    };
    assert!(!store.has_admin().unwrap());
    let ann = store.create_user(&rec("ann", false)).unwrap();
    assert!(!store.has_admin().unwrap());
    let session = |user| concord_store::SessionRecord {
        user,
        created_ms: 1,
        expires_ms: u64::MAX,
        last_seen_ms: 1,
    };
    store.put_session(&[1; 32], &session(ann)).unwrap();
    store.put_session(&[2; 32], &session(ann)).unwrap();
    // Disabled between the caller's read of the account and its write of the new hash.
    store.set_user_disabled(ann, true).unwrap();
    store.put_session(&[3; 32], &session(ann)).unwrap();
    store.put_session(&[4; 32], &session(ann)).unwrap();
    store.set_password_hash(ann, "new", Some(&[3; 32])).unwrap();
    let stored = store.user(ann).unwrap().unwrap();
    assert_eq!(stored.password_hash, "new");
    assert!(stored.disabled, "a concurrent disable stands");
    assert!(
        store.session(&[3; 32]).unwrap().is_some(),
        "the kept session"
    );
    assert!(store.session(&[4; 32]).unwrap().is_none());
    assert!(matches!(
        store.set_password_hash(UserId(999), "x", None),
        Err(StoreError::NotFound("user"))
    ));
    // The first administrator is created once.
    let first = store.create_first_admin(&rec("root", true)).unwrap();
    assert!(first.is_some());
    assert!(store.has_admin().unwrap());
    assert_eq!(store.create_first_admin(&rec("root2", true)).unwrap(), None);
}

#[test]
fn staged_items_stay_invisible_until_commit_and_vanish_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("concord.redb");
    let p;
    {
        let store = Store::open(&path).unwrap();
        p = store.create_project(&project_record(1)).unwrap();
        import(&store, p, &[("a", "first")]);
        let mut imp = store.begin_import(p).unwrap();
        store
            .stage_items(
                &mut imp,
                &mut [item("b", "second"), item("", "third")],
                false,
            )
            .unwrap();
        assert_eq!(imp.staged(), 2);
        assert_eq!(
            store.item(p, 1).unwrap(),
            None,
            "staged item is visible before commit"
        );
        assert_eq!(store.item_seq(p, "b").unwrap(), None);
        assert_eq!(store.item_rows(p).unwrap(), 3, "the staged rows are stored");
        // The process "crashes": the import is neither committed nor aborted.
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.project(p).unwrap().unwrap().next_seq, 1);
    assert_eq!(store.item_rows(p).unwrap(), 1, "staged rows survived");
    // The rolled-back ids and texts are free again.
    assert_eq!(import(&store, p, &[("b", "second")]), 1);
    assert_eq!(store.item(p, 1).unwrap().unwrap().text, "second");
}

#[test]
fn duplicate_ids_fail_and_duplicate_texts_are_reported_or_skipped() {
    let (_d, store, p) = setup(1);
    import(&store, p, &[("a", "hello")]);
    let mut imp = store.begin_import(p).unwrap();
    let err = store
        .stage_items(&mut imp, &mut [item("x", "new"), item("a", "other")], false)
        .unwrap_err();
    assert!(matches!(err, (Some(1), StoreError::Exists(_))), "{err:?}");
    store.abort_import(imp).unwrap();
    assert_eq!(
        store.item_rows(p).unwrap(),
        1,
        "the aborted import left rows"
    );
    assert_eq!(store.item_seq(p, "x").unwrap(), None);

    let mut imp = store.begin_import(p).unwrap();
    let out = store
        .stage_items(
            &mut imp,
            &mut [item("b", "hello"), item("c", "fresh")],
            true,
        )
        .unwrap();
    assert_eq!(out.inserted, 1);
    assert_eq!(out.duplicate_texts, vec![(0, "a".to_string())]);
    store.commit_import(imp).unwrap();
    assert_eq!(store.item_seq(p, "c").unwrap(), Some(1));
}

#[test]
fn positional_ids_are_found_and_still_unique() {
    let (_d, store, p) = setup(1);
    // Generated ids are positions; "2" given explicitly at position 2 is positional too.
    import(&store, p, &[("", "one"), ("2", "two"), ("x", "three")]);
    assert_eq!(store.item_seq(p, "1").unwrap(), Some(0));
    assert_eq!(store.item_seq(p, "2").unwrap(), Some(1));
    assert_eq!(store.item_seq(p, "x").unwrap(), Some(2));
    assert_eq!(store.item_seq(p, "3").unwrap(), None, "item 3 is called x");
    assert_eq!(store.item_seq(p, "02").unwrap(), None);
    assert_eq!(store.item_seq(p, "+2").unwrap(), None);
    // An explicit id that names a stored positional item is taken.
    let mut imp = store.begin_import(p).unwrap();
    let err = store
        .stage_items(&mut imp, &mut [item("1", "four")], false)
        .unwrap_err();
    assert!(matches!(err, (Some(0), StoreError::Exists(_))), "{err:?}");
    store.abort_import(imp).unwrap();
    // An explicit non-positional "5" makes the generated "5" of a later item step aside.
    import(&store, p, &[("5", "five"), ("", "six")]);
    assert_eq!(store.item_seq(p, "5").unwrap(), Some(3));
    assert_eq!(store.item(p, 4).unwrap().unwrap().id, "5-2");
    assert_eq!(store.item_seq(p, "5-2").unwrap(), Some(4));
    // Staged positional ids vanish with an aborted import.
    let mut imp = store.begin_import(p).unwrap();
    store
        .stage_items(&mut imp, &mut [item("", "seven")], false)
        .unwrap();
    store.abort_import(imp).unwrap();
    assert_eq!(store.item_seq(p, "6").unwrap(), None);
    assert_eq!(import(&store, p, &[("6", "seven")]), 1);
    assert_eq!(store.item_seq(p, "6").unwrap(), Some(5));
}

#[test]
fn reannotating_updates_and_a_repeated_submit_changes_nothing() {
    let (_d, store, p) = setup(1);
    import(&store, p, &[("a", "one"), ("b", "two")]);
    assert_eq!(
        store.put_annotations(&[write(p, 0, 7, "spam")]).unwrap(),
        [WriteOutcome::Created]
    );
    assert_eq!(
        store.put_annotations(&[write(p, 0, 7, "spam")]).unwrap(),
        [WriteOutcome::Unchanged]
    );
    let mut w = write(p, 0, 7, "ham");
    w.now_ms = 9;
    assert_eq!(
        store.put_annotations(&[w]).unwrap(),
        [WriteOutcome::Updated]
    );
    let anns = store.annotations_of_item(p, 0).unwrap();
    assert_eq!(anns.len(), 1);
    assert_eq!(anns[0].1.value.labels, ["ham"]);
    assert_eq!(
        (
            anns[0].1.created_ms,
            anns[0].1.updated_ms,
            anns[0].1.time_spent_ms
        ),
        (5, 9, 2000)
    );
    assert_eq!(store.user_progress(p, UserId(7)).unwrap(), 1);
    let rec = store.project(p).unwrap().unwrap();
    assert_eq!((rec.done, rec.annotations), (1, 1));
}

#[test]
fn a_batch_with_a_missing_item_stores_nothing() {
    let (_d, store, p) = setup(1);
    import(&store, p, &[("a", "one")]);
    let err = store
        .put_annotations(&[write(p, 0, 7, "spam"), write(p, 5, 7, "spam")])
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound("item")), "{err}");
    assert!(store.annotations_of_item(p, 0).unwrap().is_empty());
}

#[test]
fn the_assignment_snapshot_lists_answers_and_skips_of_one_project() {
    let (_d, store, p) = setup(2);
    import(&store, p, &[("a", "one"), ("b", "two"), ("c", "three")]);
    store
        .put_annotations(&[
            write(p, 0, 1, "spam"),
            write(p, 0, 2, "ham"),
            write(p, 1, 1, "spam"),
        ])
        .unwrap();
    store.skip(p, UserId(3), 2).unwrap();
    let (mut answers, mut skips) = (Vec::new(), Vec::new());
    let record = store
        .assignment_snapshot(p, &mut |seq, u| answers.push((seq, u.0)), &mut |u, seq| {
            skips.push((u.0, seq))
        })
        .unwrap()
        .unwrap();
    assert_eq!((record.next_seq, record.spec.settings.overlap), (3, 2));
    assert_eq!(answers, [(0, 1), (0, 2), (1, 1)]);
    assert_eq!(skips, [(3, 2)]);
    assert_eq!(store.clear_skips(p, UserId(3)).unwrap(), 1);
    skips.clear();
    store
        .assignment_snapshot(p, &mut |_, _| {}, &mut |u, seq| skips.push((u.0, seq)))
        .unwrap();
    assert!(skips.is_empty());
}

#[test]
fn export_walk_pairs_items_with_their_annotations() {
    let (_d, store, p) = setup(1);
    import(&store, p, &[("a", "one"), ("b", "two"), ("c", "three")]);
    store
        .put_annotations(&[
            write(p, 2, 1, "spam"),
            write(p, 0, 2, "ham"),
            write(p, 2, 3, "ham"),
        ])
        .unwrap();
    let mut seen = Vec::new();
    store
        .for_each_item::<StoreError>(p, |seq, item, anns| {
            seen.push((
                seq,
                item.id,
                anns.iter().map(|(u, _)| u.0).collect::<Vec<_>>(),
            ));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        seen,
        vec![
            (0, "a".into(), vec![2]),
            (1, "b".into(), vec![]),
            (2, "c".into(), vec![1, 3])
        ]
    );
}

#[test]
fn imported_annotations_count_only_once_the_import_commits() {
    let (_d, store, p) = setup(1);
    let record = AnnotationRecord {
        value: AnnotationValue::labels(["ham"]),
        created_ms: 1,
        updated_ms: 2,
        time_spent_ms: 3,
        source: AnnotationSource::Human,
        live_counted: false,
    };
    let mut with_ann = item("a", "one");
    with_ann.annotations = vec![(UserId(4), record.clone()), (UserId(5), record.clone())];
    let mut imp = store.begin_import(p).unwrap();
    store
        .stage_items(&mut imp, &mut [with_ann, item("b", "two")], false)
        .unwrap();
    assert_eq!(store.user_progress(p, UserId(4)).unwrap(), 0);
    store.commit_import(imp).unwrap();
    assert_eq!(store.user_progress(p, UserId(4)).unwrap(), 1);
    let rec = store.project(p).unwrap().unwrap();
    assert_eq!((rec.done, rec.annotations, rec.next_seq), (1, 2, 2));
    assert_eq!(store.annotation(p, 0, UserId(5)).unwrap(), Some(record));
}

#[test]
fn a_generated_id_that_is_already_taken_gets_a_suffix() {
    let (_d, store, p) = setup(1);
    import(&store, p, &[("2", "explicit two")]);
    // The next item is the project's second: its generated id "2" is taken.
    import(&store, p, &[("", "generated")]);
    assert_eq!(store.item_seq(p, "2-2").unwrap(), Some(1));
    assert_eq!(store.item(p, 1).unwrap().unwrap().id, "2-2");
}

#[test]
fn gold_labels_and_gold_questions_are_set_atomically_and_only_on_items_with_gold() {
    let (_dir, store, p) = setup(2);
    import(
        &store,
        p,
        &[("a", "first"), ("b", "second"), ("c", "third")],
    );
    // Only an item with gold can be a gold question.
    assert!(matches!(
        store.set_gold_question(p, 0, true),
        Err(StoreError::NoGold)
    ));
    let review = GoldSource::Review {
        reviewer: UserId(7),
        at_ms: 9,
    };
    let stored = store
        .set_gold(
            p,
            0,
            Some((AnnotationValue::labels(["spam"]), review.clone())),
        )
        .unwrap();
    assert_eq!(stored.text, "first");
    assert_eq!(stored.gold_source(), Some(review));
    store.set_gold_question(p, 0, true).unwrap();
    store
        .set_gold(
            p,
            2,
            Some((AnnotationValue::labels(["ham"]), GoldSource::Import)),
        )
        .unwrap();
    store.set_gold_question(p, 2, true).unwrap();
    assert_eq!(store.gold_questions(p).unwrap(), [0, 2]);
    // Imported gold is stored without a source and reads back as imported.
    let item = store.item(p, 2).unwrap().unwrap();
    assert_eq!(item.gold_source, None);
    assert_eq!(item.gold_source(), Some(GoldSource::Import));
    // Removing the gold removes the question too; unknown items are refused.
    store.set_gold(p, 0, None).unwrap();
    assert_eq!(store.gold_questions(p).unwrap(), [2]);
    assert_eq!(store.item(p, 0).unwrap().unwrap().gold, None);
    assert!(matches!(
        store.set_gold(p, 3, None),
        Err(StoreError::NotFound("item"))
    ));
}

#[test]
fn answered_items_are_walked_in_order_with_their_answers() {
    let (_dir, store, p) = setup(2);
    import(&store, p, &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]);
    store
        .put_annotations(&[
            write(p, 3, 1, "spam"),
            write(p, 1, 1, "spam"),
            write(p, 1, 2, "ham"),
            write(p, 2, 2, "ham"),
        ])
        .unwrap();
    let walk = |from: u64, stop_after: usize| {
        let mut seen = Vec::new();
        store
            .for_each_answered(p, from, &mut |seq, answers| {
                let users: Vec<u64> = answers.iter().map(|(u, _)| u.0).collect();
                seen.push((seq, users));
                if seen.len() == stop_after {
                    std::ops::ControlFlow::Break(())
                } else {
                    std::ops::ControlFlow::Continue(())
                }
            })
            .unwrap();
        seen
    };
    assert_eq!(walk(0, 9), [(1, vec![1, 2]), (2, vec![2]), (3, vec![1])]);
    assert_eq!(walk(2, 9), [(2, vec![2]), (3, vec![1])]);
    assert_eq!(walk(0, 1), [(1, vec![1, 2])]);
}

#[test]
fn each_encoder_keeps_its_own_embeddings_and_predictions_are_written_atomically() {
    let (_dir, store, p) = setup(1);
    import(
        &store,
        p,
        &[("a", "first"), ("b", "second"), ("c", "third")],
    );
    let (base, tuned) = (*b"basebase", *b"tunedenc");
    let suggestion = |label: &str| concord_store::SuggestionRecord {
        labels: vec![label.into()],
        confidence: 0.9,
        probabilities: vec![0.9, 0.1],
        version: 1,
        created_ms: 0,
        spans: Vec::new(),
        relations: Vec::new(),
    };
    store
        .put_predictions(
            p,
            &base,
            &[(0, vec![1.0, 0.0]), (1, vec![0.0, 1.0])],
            &[(0, suggestion("spam"))],
            None,
        )
        .unwrap();
    store
        .put_predictions(p, &tuned, &[(1, vec![0.5, 0.5])], &[], None)
        .unwrap();
    assert_eq!(store.embedded_seqs(p, &base).unwrap(), [0, 1]);
    assert_eq!(store.embedded_seqs(p, &tuned).unwrap(), [1]);
    assert_eq!(
        store.embeddings(p, &base, 1, 10).unwrap(),
        [(1, vec![0.0, 1.0])],
        "the tuned encoder's row did not replace the base one"
    );
    assert_eq!(
        store.embeddings(p, &tuned, 0, 10).unwrap(),
        [(1, vec![0.5, 0.5])]
    );
    assert_eq!(store.embeddings(p, &base, 0, 1).unwrap().len(), 1);
    assert_eq!(
        store.embeddings_at(p, &tuned, &[1, 0, 1]).unwrap(),
        [Some(vec![0.5, 0.5]), None, Some(vec![0.5, 0.5])]
    );
    assert_eq!(store.suggestion(p, 0).unwrap(), Some(suggestion("spam")));
    // A batch naming a job that does not exist is refused whole: no embedding, no suggestion.
    let err = store.put_predictions(
        p,
        &base,
        &[(2, vec![0.3, 0.7])],
        &[(2, suggestion("ham"))],
        Some(concord_store::JobProgress {
            job: 999,
            cursor: 3,
            done: 3,
        }),
    );
    assert!(matches!(err, Err(StoreError::NotFound("job"))), "{err:?}");
    assert_eq!(store.embedded_seqs(p, &base).unwrap(), [0, 1]);
    assert_eq!(store.suggestion(p, 2).unwrap(), None);
}
