//! The team workflow against a real redb file: overlap, auto-accepted unanimous items, the
//! review queue, gold labels in the export, gold questions and annotators' accuracy on them,
//! blind mode.

use crate::common;

use common::{error_kind, export_jsonl, TestEngine};
use concord_domain::{
    ErrorKind, GoldSource, ProjectId, ProjectSettings, ReviewState, Role, TaskKind,
};
use concord_engine::{ImportFormat, Principal};
use serde_json::Value;

struct Team {
    env: TestEngine,
    reviewer: Principal,
    annotators: Vec<Principal>,
    project: ProjectId,
}

fn team(overlap: u32, items: usize) -> Team {
    let env = TestEngine::new();
    let settings = ProjectSettings {
        overlap,
        ..ProjectSettings::default()
    };
    let project = env.create_project(common::spec(
        "Sentiment",
        TaskKind::Classification,
        &["pos", "neg", "neu"],
        settings,
    ));
    let reviewer = env.member(project, "rita", Role::Reviewer);
    let annotators = vec![
        env.member(project, "ann", Role::Annotator),
        env.member(project, "bob", Role::Annotator),
        env.member(project, "cyd", Role::Annotator),
    ];
    let body: String = (1..=items)
        .map(|i| format!("{{\"id\":\"t{i}\",\"text\":\"tweet number {i}\"}}\n"))
        .collect();
    env.import(project, ImportFormat::Jsonl, body.as_bytes())
        .unwrap();
    Team {
        env,
        reviewer,
        annotators,
        project,
    }
}

impl Team {
    fn answer(&self, who: usize, item: &str, label: &str) {
        self.env
            .answer(&self.annotators[who], self.project, item, &[label]);
    }

    /// Each annotator answers `labels[i]` for item `t{n}`, per row of `plan`.
    fn label(&self, plan: &[(&str, [&str; 3])]) {
        for (item, labels) in plan {
            for (who, label) in labels.iter().enumerate() {
                self.answer(who, item, label);
            }
        }
    }

    fn export_jsonl(&self) -> Vec<Value> {
        export_jsonl(&self.env.engine, &self.reviewer, self.project)
    }

    fn review_queue(&self) -> Vec<String> {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        while let Some(item) = self
            .env
            .engine
            .review_next(&self.reviewer, self.project, after.as_deref())
            .unwrap()
        {
            if seen.contains(&item.id) {
                break;
            }
            seen.push(item.id.clone());
            after = Some(item.id);
        }
        seen
    }
}

const PLAN: &[(&str, [&str; 3])] = &[
    ("t1", ["pos", "pos", "pos"]),
    ("t2", ["pos", "neg", "pos"]),
    ("t3", ["pos", "neg", "neu"]),
    ("t4", ["neu", "neu", "neu"]),
];

#[test]
fn disagreements_wait_for_review_and_unanimous_items_are_accepted() {
    let t = team(3, 6);
    t.label(PLAN);
    // t5 has two of its three answers: not ready for review even though they differ.
    t.answer(0, "t5", "pos");
    t.answer(1, "t5", "neg");
    assert_eq!(t.review_queue(), ["t2", "t3"]);
    let s = t.env.engine.review_summary(&t.reviewer, t.project).unwrap();
    assert_eq!(
        (
            s.items,
            s.unannotated,
            s.in_progress,
            s.needs_review,
            s.disagreements,
            s.accepted
        ),
        (6, 1, 1, 2, 2, 2)
    );

    let item = t
        .env
        .engine
        .review_next(&t.reviewer, t.project, None)
        .unwrap()
        .unwrap();
    assert_eq!(item.id, "t2");
    assert_eq!(item.state, ReviewState::Disagreement);
    let answers: Vec<(&str, &str)> = item
        .answers
        .iter()
        .map(|a| (a.annotator.as_str(), a.labels[0].as_str()))
        .collect();
    assert_eq!(answers, [("ann", "pos"), ("bob", "neg"), ("cyd", "pos")]);
    assert_eq!(item.proposal, ["pos"]);
    assert_eq!(item.gold, None);

    // The reviewer overrules the majority on t2 and settles t3.
    t.env
        .engine
        .resolve(
            &t.reviewer,
            t.project,
            "t2",
            vec!["neg".into()],
            Vec::new(),
            None,
        )
        .unwrap();
    t.env
        .engine
        .resolve(
            &t.reviewer,
            t.project,
            "t3",
            vec!["neu".into()],
            Vec::new(),
            None,
        )
        .unwrap();
    assert!(t.review_queue().is_empty());
    let resolved = t
        .env
        .engine
        .review_item(&t.reviewer, t.project, "t2")
        .unwrap();
    assert_eq!(resolved.state, ReviewState::Resolved);
    assert!(matches!(
        resolved.gold_source,
        Some(GoldSource::Review { reviewer, .. }) if reviewer == t.reviewer.id
    ));

    let lines = t.export_jsonl();
    let gold: Vec<(&str, &Value, &Value)> = lines
        .iter()
        .map(|l| (l["id"].as_str().unwrap(), &l["gold"], &l["gold_source"]))
        .collect();
    assert_eq!(
        gold,
        [
            ("t1", &Value::from("pos"), &Value::from("unanimous")),
            ("t2", &Value::from("neg"), &Value::from("review")),
            ("t3", &Value::from("neu"), &Value::from("review")),
            ("t4", &Value::from("neu"), &Value::from("unanimous")),
            ("t5", &Value::Null, &Value::Null),
            ("t6", &Value::Null, &Value::Null),
        ]
    );
    // The majority vote is still reported beside the gold label.
    assert_eq!(lines[1]["aggregate"]["labels"][0], "pos");

    // Invalid decisions are refused and change nothing.
    let err = t
        .env
        .engine
        .resolve(
            &t.reviewer,
            t.project,
            "t2",
            vec!["spam".into()],
            Vec::new(),
            None,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(t.export_jsonl()[1]["gold"], "neg");
}

#[test]
fn without_auto_accept_unanimous_items_are_reviewed_too() {
    let t = team(3, 4);
    t.label(PLAN);
    let settings = ProjectSettings {
        overlap: 3,
        auto_accept_unanimous: false,
        ..ProjectSettings::default()
    };
    t.env
        .engine
        .update_settings(&t.env.admin, t.project, settings)
        .unwrap();
    assert_eq!(t.review_queue(), ["t1", "t2", "t3", "t4"]);
    let t1 = t
        .env
        .engine
        .review_item(&t.reviewer, t.project, "t1")
        .unwrap();
    assert_eq!(t1.state, ReviewState::Unanimous);
    assert_eq!(t1.gold, None);
    assert_eq!(t.export_jsonl()[0]["gold"], Value::Null);
    // A reviewer may not change settings; an annotator may not review.
    assert_eq!(
        error_kind(t.env.engine.update_settings(
            &t.reviewer,
            t.project,
            ProjectSettings::default()
        )),
        ErrorKind::Forbidden
    );
    let ann = &t.annotators[0];
    assert_eq!(
        error_kind(t.env.engine.review_next(ann, t.project, None)),
        ErrorKind::Forbidden
    );
    assert_eq!(
        error_kind(t.env.engine.resolve(
            ann,
            t.project,
            "t1",
            vec!["pos".into()],
            Vec::new(),
            None
        )),
        ErrorKind::Forbidden
    );
    assert_eq!(
        error_kind(t.env.engine.review_summary(ann, t.project)),
        ErrorKind::Forbidden
    );
    assert_eq!(
        error_kind(t.env.engine.set_gold_question(ann, t.project, "t1", true)),
        ErrorKind::Forbidden
    );
}

#[test]
fn gold_questions_reach_every_annotator_and_measure_their_accuracy() {
    let t = team(1, 40);
    let settings = ProjectSettings {
        gold_every: 4,
        blind: true,
        ..ProjectSettings::default()
    };
    t.env
        .engine
        .update_settings(&t.env.admin, t.project, settings)
        .unwrap();
    // Only an item with a gold label can be a gold question.
    let err = t
        .env
        .engine
        .set_gold_question(&t.reviewer, t.project, "t40", true)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("gold label"), "{err}");
    t.env
        .engine
        .resolve(
            &t.reviewer,
            t.project,
            "t40",
            vec!["neg".into()],
            Vec::new(),
            Some(true),
        )
        .unwrap();
    t.env
        .engine
        .resolve(
            &t.reviewer,
            t.project,
            "t39",
            vec!["pos".into()],
            Vec::new(),
            Some(true),
        )
        .unwrap();

    // Each annotator works through the queue; ann answers the gold questions wrongly once.
    let mut seen_gold = vec![0; 3];
    for round in 0..12 {
        for (who, p) in t.annotators.iter().enumerate() {
            let Some(item) = t.env.engine.next_item(p, t.project, &[]).unwrap() else {
                continue;
            };
            let gold = ["t39", "t40"].contains(&item.id.as_str());
            let label = match (gold, item.id.as_str(), who) {
                (true, "t40", 0) => "pos",
                (true, "t40", _) => "neg",
                (true, _, _) => "pos",
                _ => ["pos", "neg", "neu"][round % 3],
            };
            seen_gold[who] += usize::from(gold);
            assert!(
                item.others.is_none(),
                "blind projects show no other answers"
            );
            t.answer(who, &item.id, label);
        }
    }
    // 36 answers: every annotator met both questions (overlap 1 does not limit them).
    assert_eq!(seen_gold, [2, 2, 2]);
    let agreement = t.env.engine.agreement(&t.reviewer, t.project).unwrap();
    let accuracy: Vec<(String, u64, u64)> = agreement
        .annotator_stats
        .iter()
        .map(|s| (s.name.clone(), s.gold_answered, s.gold_correct))
        .collect();
    assert_eq!(
        accuracy,
        [
            ("ann".to_string(), 2, 1),
            ("bob".to_string(), 2, 2),
            ("cyd".to_string(), 2, 2)
        ]
    );
    let lines = t.export_jsonl();
    let t40 = lines.iter().find(|l| l["id"] == "t40").unwrap();
    assert_eq!(t40["gold_question"], true);
    assert_eq!(t40["annotations"].as_array().unwrap().len(), 3);
}

#[test]
fn outside_blind_mode_annotators_see_how_others_answered() {
    let t = team(3, 2);
    let settings = ProjectSettings {
        overlap: 3,
        blind: false,
        ..ProjectSettings::default()
    };
    t.env
        .engine
        .update_settings(&t.env.admin, t.project, settings)
        .unwrap();
    t.answer(0, "t1", "pos");
    t.answer(1, "t1", "neg");
    let item = t
        .env
        .engine
        .item_for_annotation(&t.annotators[2], t.project, "t1")
        .unwrap();
    let counts: Vec<(String, u32)> = item
        .others
        .unwrap()
        .into_iter()
        .map(|c| (c.label, c.count))
        .collect();
    assert_eq!(
        counts,
        [("pos".into(), 1), ("neg".into(), 1), ("neu".into(), 0)]
    );
    // Their own answer is not counted among the others.
    let mine = t
        .env
        .engine
        .item_for_annotation(&t.annotators[0], t.project, "t1")
        .unwrap();
    assert_eq!(mine.others.unwrap()[0].count, 0);
}
