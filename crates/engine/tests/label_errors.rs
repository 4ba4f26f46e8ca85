//! Likely label errors on the real encoder: planted flips in imported gold come first, the
//! annotators' answers count, only reviewers may look, and fixing one writes gold like the
//! review queue and takes the item off the list. Span projects are checked token by token
//! against the annotators and a model's stored suggestions.

use crate::common;

use std::collections::HashSet;

use common::*;
use concord_domain::{ErrorKind, ProjectId, Role};
use concord_engine::{ImportFormat, ImportOptions, ImportedLabels, LabelErrorReason, ModelSample};

/// Items (1-based, as [`TEXTS`] numbers them) whose imported gold is another topic than theirs.
const FLIPPED: [usize; 3] = [3, 11, 20];

/// The topic planted on flipped items: the next one round.
fn planted(id: usize) -> &'static str {
    TOPICS[(TEXTS[id - 1].1 + 1) % TOPICS.len()].0
}

/// A topics project whose items `t1`..`t24` carry gold: their topic, flipped on [`FLIPPED`];
/// embedded by a prediction job when `embed`.
fn project_with_flips(env: &TestEngine, embed: bool) -> ProjectId {
    let project = env.create_project(topics_spec("Topics with flips"));
    let body: String = TEXTS
        .iter()
        .enumerate()
        .map(|(i, (text, _))| {
            let id = i + 1;
            let gold = if FLIPPED.contains(&id) {
                planted(id)
            } else {
                topic_of(id)
            };
            format!(
                "{}\n",
                serde_json::json!({ "id": format!("t{id}"), "text": text, "gold": gold })
            )
        })
        .collect();
    env.import(project, ImportFormat::Jsonl, body.as_bytes())
        .expect("import the topics with gold");
    if !embed {
        return project;
    }
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    finish(&env.engine, &env.admin, job);
    project
}

#[test]
fn planted_flips_come_first_and_fixing_one_takes_it_off_the_list() {
    let env = TestEngine::with_models();
    let project = project_with_flips(&env, true);
    let reviewer = env.member(project, "rita", Role::Reviewer);
    let annotator = env.member(project, "ann", Role::Annotator);

    assert_eq!(
        error_kind(env.engine.label_errors(&annotator, project, 10)),
        ErrorKind::Forbidden
    );
    for bad in [0, 1001] {
        assert_eq!(
            error_kind(env.engine.label_errors(&reviewer, project, bad)),
            ErrorKind::InvalidInput
        );
    }

    let report = env.engine.label_errors(&reviewer, project, 10).unwrap();
    assert_eq!(report.checked, 24);
    assert_eq!(report.not_embedded, 0);
    // On 24 items the heads are weak: at least two of the three flips are found, and every
    // row above the first item that is not a flip is a flip.
    let flipped: HashSet<String> = FLIPPED.iter().map(|id| format!("t{id}")).collect();
    let found = report
        .rows
        .iter()
        .take_while(|r| flipped.contains(&r.item_id))
        .count();
    assert!(found >= 2, "{:#?}", report.rows);
    for row in report.rows.iter().take(found) {
        let id: usize = row.item_id[1..].parse().unwrap();
        assert_eq!(row.given, planted(id));
        assert_eq!(row.suggested, topic_of(id), "{row:?}");
        assert!(
            matches!(row.reason, LabelErrorReason::ModelDisagrees { model_probability } if model_probability < 0.5),
            "{row:?}"
        );
        assert!(row.annotators.is_empty());
    }
    // The shape GET /api/v1/projects/{id}/label-errors returns.
    let wire = serde_json::to_value(&report.rows[0]).unwrap();
    for key in [
        "item_id",
        "score",
        "given",
        "suggested",
        "text",
        "annotators",
    ] {
        assert!(wire.get(key).is_some(), "{key} missing from {wire}");
    }
    assert_eq!(wire["reason"]["kind"], "model_disagrees", "{wire}");
    // Best first.
    for pair in report.rows.windows(2) {
        assert!(pair[0].score >= pair[1].score, "{:?}", report.rows);
    }

    // The reviewer fixes the first one as the review queue does: gold from a review.
    let first = report.rows[0].clone();
    env.engine
        .resolve(
            &reviewer,
            project,
            &first.item_id,
            vec![first.suggested.clone()],
            Vec::new(),
            None,
        )
        .unwrap();
    let exported = export_jsonl(&env.engine, &env.admin, project);
    let line = exported
        .iter()
        .find(|v| v["id"] == first.item_id.as_str())
        .expect("the fixed item is exported");
    assert_eq!(line["gold"], serde_json::json!(first.suggested), "{line}");
    assert_eq!(line["gold_source"], "review", "{line}");
    let after = env.engine.label_errors(&reviewer, project, 10).unwrap();
    assert!(
        after.rows.iter().all(|r| r.item_id != first.item_id),
        "{:#?}",
        after.rows
    );
    // The other flips found are still listed first.
    let rest: HashSet<String> = report.rows[1..found]
        .iter()
        .map(|r| r.item_id.clone())
        .collect();
    let top: HashSet<String> = after
        .rows
        .iter()
        .take(rest.len())
        .map(|r| r.item_id.clone())
        .collect();
    assert_eq!(top, rest, "{:#?}", after.rows);
}

#[test]
fn wrong_answers_of_a_single_annotator_are_found_by_the_model() {
    // Overlap 1, the common case: each item's one answer is its confirmed label, so only the
    // model's out-of-fold probabilities can doubt it.
    let env = TestEngine::with_models();
    let project = env.create_project(topics_spec("One annotator"));
    let ann = env.member(project, "ann", Role::Annotator);
    let reviewer = env.member(project, "rita", Role::Reviewer);
    env.import_texts_with_t_ids(project, TEXTS.iter().map(|(text, _)| *text));
    env.predict(project);
    for id in 1..=TEXTS.len() {
        let label = if FLIPPED.contains(&id) {
            planted(id)
        } else {
            topic_of(id)
        };
        env.answer(&ann, project, &format!("t{id}"), &[label]);
    }
    let report = env.engine.label_errors(&reviewer, project, 10).unwrap();
    assert_eq!(report.checked, 24);
    let flipped: HashSet<String> = FLIPPED.iter().map(|id| format!("t{id}")).collect();
    let found = report
        .rows
        .iter()
        .take_while(|r| flipped.contains(&r.item_id))
        .count();
    assert!(found >= 2, "{:#?}", report.rows);
    for row in report.rows.iter().take(found) {
        let id: usize = row.item_id[1..].parse().unwrap();
        assert_eq!(
            (row.given.as_str(), row.suggested.as_str()),
            (planted(id), topic_of(id))
        );
        assert_eq!(row.annotators.len(), 1, "{row:?}");
    }
}

#[test]
fn annotators_who_disagree_with_the_gold_list_the_item_and_a_careless_one_ranks_last() {
    let env = TestEngine::with_models();
    let project = project_with_flips(&env, true);
    let careful = env.member(project, "careful", Role::Annotator);
    let also_careful = env.member(project, "also_careful", Role::Annotator);
    let careless = env.member(project, "careless", Role::Annotator);
    // Item 5 keeps its right gold (sports), but both careful annotators answer cooking: the
    // model says sports, so the item is listed because of the people.
    for id in 1..=TEXTS.len() {
        let item = format!("t{id}");
        let truth = if id == 5 { "cooking" } else { topic_of(id) };
        env.answer(&careful, project, &item, &[truth]);
        env.answer(&also_careful, project, &item, &[truth]);
        env.answer(&careless, project, &item, &["finance"]);
    }
    let report = env.engine.label_errors(&env.admin, project, 100).unwrap();
    let row = report
        .rows
        .iter()
        .find(|r| r.item_id == "t5")
        .unwrap_or_else(|| panic!("t5 is not listed: {:#?}", report.rows));
    assert_eq!(row.given, "sports");
    assert!(
        matches!(
            row.reason,
            LabelErrorReason::AnnotatorsDisagree {
                agreeing: 0,
                total: 3
            } | LabelErrorReason::Both {
                agreeing: 0,
                total: 3,
                ..
            }
        ),
        "{row:?}"
    );
    let names: Vec<&str> = row
        .annotators
        .iter()
        .map(|a| a.annotator.as_str())
        .collect();
    assert_eq!(names, ["also_careful", "careful", "careless"]);
    let quality: Vec<&str> = report
        .annotators
        .iter()
        .map(|a| a.annotator.as_str())
        .collect();
    assert_eq!(quality.last(), Some(&"careless"), "{:?}", report.annotators);
    let careless_row = &report.annotators[2];
    assert_eq!(careless_row.answers, 24);
    assert!(
        careless_row.quality + 0.3 < report.annotators[0].quality,
        "{:?}",
        report.annotators
    );
}

#[test]
fn projects_that_cannot_be_checked_say_why() {
    let env = TestEngine::with_models();
    // Gold but nothing embedded yet: no prediction job ran.
    let project = project_with_flips(&env, false);
    let err = env
        .engine
        .label_errors(&env.admin, project, 10)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(
        err.to_string()
            .contains("24 confirmed labels are not embedded yet"),
        "{err}"
    );
    // A span project with nothing confirmed has nothing to list.
    let spans = env.create_project(spec(
        "Spans",
        concord_domain::TaskKind::Spans,
        &["person"],
        concord_domain::ProjectSettings::default(),
    ));
    let report = env.engine.label_errors(&env.admin, spans, 10).unwrap();
    assert_eq!((report.checked, report.flagged), (0, 0));
    assert!(report.rows.is_empty());
}

/// `(id, text, gold spans, suggested spans)` of one item.
type SpanItem = (
    &'static str,
    &'static str,
    &'static [(u32, u32, &'static str)],
    &'static [(u32, u32, &'static str, f32)],
);

/// Span items `(id, text, gold spans, the model's suggested spans with confidence)`: on `s1`
/// the gold calls "NY" a person, where the model (and the annotators) say geo-loc.
const SPAN_ITEMS: [SpanItem; 4] = [
    (
        "s1",
        "Bieber sang in NY",
        &[(0, 6, "person"), (15, 17, "person")],
        &[(0, 6, "person", 0.9), (15, 17, "geo-loc", 0.8)],
    ),
    (
        "s2",
        "Ada met Bob in Rome",
        &[(0, 3, "person"), (8, 11, "person"), (15, 19, "geo-loc")],
        &[
            (0, 3, "person", 0.9),
            (8, 11, "person", 0.85),
            (15, 19, "geo-loc", 0.9),
        ],
    ),
    (
        "s3",
        "Rain in Paris today",
        &[(8, 13, "geo-loc")],
        &[(8, 13, "geo-loc", 0.9)],
    ),
    ("s4", "Nothing to see here", &[], &[]),
];

/// The right spans of a [`SPAN_ITEMS`] item: the model's.
fn right_spans(index: usize) -> Vec<concord_domain::Span> {
    SPAN_ITEMS[index]
        .3
        .iter()
        .map(|&(start, end, label, _)| concord_domain::Span::new(start, end, label))
        .collect()
}

#[test]
fn a_span_whose_gold_the_model_and_annotators_contradict_comes_first_until_fixed() {
    let env = TestEngine::new();
    let project = env.create_project(spec(
        "Entities with a planted error",
        concord_domain::TaskKind::Spans,
        &["person", "geo-loc"],
        without_auto_train(concord_domain::ProjectSettings::default()),
    ));
    let gold: String = SPAN_ITEMS
        .iter()
        .map(|(id, text, spans, _)| {
            let spans: Vec<_> = spans
                .iter()
                .map(|(start, end, label)| serde_json::json!({"start": start, "end": end, "label": label}))
                .collect();
            format!(
                "{}\n",
                serde_json::json!({"id": id, "text": text, "spans": spans})
            )
        })
        .collect();
    env.import(project, ImportFormat::Jsonl, gold.as_bytes())
        .expect("import the gold spans");
    // An external model's version (active: the project has none), then its suggestions on
    // the gold items, as a prediction job stores them.
    let options = ImportOptions {
        format: ImportFormat::Jsonl,
        labels_as: ImportedLabels::Model {
            version_name: "other-tagger".into(),
        },
        ..ImportOptions::default()
    };
    let report = env
        .engine
        .import(
            &env.admin,
            project,
            br#"{"id": "m0", "text": "Oslo", "spans": [{"start": 0, "end": 4, "label": "geo-loc", "score": 0.9}]}"#
                .as_slice(),
            &options,
            &mut |_| {},
        )
        .unwrap();
    let version = report.model_version.expect("an imported version");
    let (env, ()) = env.with_store(|store| {
        let mut suggestions = Vec::new();
        store
            .for_each_item::<concord_store::StoreError>(project, |seq, item, _| {
                if let Some((_, _, _, spans)) = SPAN_ITEMS.iter().find(|s| s.0 == item.id) {
                    suggestions.push((
                        seq,
                        concord_store::SuggestionRecord {
                            labels: Vec::new(),
                            confidence: 0.8,
                            probabilities: Vec::new(),
                            version,
                            created_ms: 0,
                            spans: spans
                                .iter()
                                .map(|&(start, end, label, confidence)| {
                                    concord_domain::SuggestedSpan {
                                        start,
                                        end,
                                        label: label.into(),
                                        confidence,
                                    }
                                })
                                .collect(),
                            relations: Vec::new(),
                        },
                    ));
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(suggestions.len(), SPAN_ITEMS.len());
        store
            .put_predictions(project, &[0; 8], &[], &suggestions, None)
            .unwrap();
    });
    let reviewer = env.member(project, "rita", Role::Reviewer);
    let ann = env.member(project, "ann", Role::Annotator);
    let bob = env.member(project, "bob", Role::Annotator);
    for (i, (id, ..)) in SPAN_ITEMS.iter().enumerate() {
        env.answer_spans(&ann, project, id, right_spans(i));
        env.answer_spans(&bob, project, id, right_spans(i));
    }

    assert_eq!(
        error_kind(env.engine.label_errors(&ann, project, 10)),
        ErrorKind::Forbidden
    );
    let report = env.engine.label_errors(&reviewer, project, 10).unwrap();
    assert_eq!(report.checked, 4, "{report:#?}");
    assert_eq!(report.flagged, 1, "{report:#?}");
    let row = &report.rows[0];
    assert_eq!(row.item_id, "s1");
    assert_eq!(row.given, "person \"Bieber\"; person \"NY\"");
    assert!(row.suggested.contains("geo-loc \"NY\""), "{row:?}");
    assert!(row.score > 0.99, "{row:?}");
    match &row.reason {
        LabelErrorReason::Span {
            span,
            missing,
            model_probability,
            model_disagrees,
            model_sample,
            agreeing,
            total,
            annotators_disagree,
        } => {
            assert_eq!(span, "person \"NY\"");
            assert!(!missing);
            assert_eq!(*model_probability, Some(0.0));
            assert!(*model_disagrees && *annotators_disagree);
            assert_eq!(*model_sample, ModelSample::External);
            assert_eq!((*agreeing, *total), (0, 2));
        }
        other => panic!("not a span reason: {other:?}"),
    }
    let wire = serde_json::to_value(row).unwrap();
    assert_eq!(wire["reason"]["kind"], "span", "{wire}");
    assert_eq!(row.annotators.len(), 2);
    assert_eq!(row.annotators[0].label, "person \"Bieber\"; geo-loc \"NY\"");
    // Both annotators gave the given spans on the three right items, not on s1.
    assert!(
        report
            .annotators
            .iter()
            .all(|a| a.answers == 4 && (a.quality - 0.75).abs() < 1e-6),
        "{:?}",
        report.annotators
    );

    // The reviewer fixes it as the review queue does: gold from a review, off the list.
    env.engine
        .resolve(&reviewer, project, "s1", Vec::new(), right_spans(0), None)
        .unwrap();
    let after = env.engine.label_errors(&reviewer, project, 10).unwrap();
    assert_eq!(after.flagged, 0, "{after:#?}");
    assert!(after.rows.is_empty());
}
