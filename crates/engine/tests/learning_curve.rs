//! The learning curve and the rounds of the loop: each trained version is a point (confirmed
//! labels → held-out score with a bootstrap interval), each training a round (labels added,
//! score change, annotators' time), and a power law fitted through three or more points says
//! how many more labels a target needs. Reviewers see it; annotators do not.

use crate::common;

use std::time::Duration;

use common::{error_kind, finish, import_texts, topic_of, topics_spec, TestEngine, ANSWER_TIME_MS};
use concord_domain::{ErrorKind, ProjectId, Role};
use concord_engine::{CurveMetric, PendingRound, TrainRequest, DEFAULT_TARGET_SHARE};
use concord_store::{ModelVersionRecord, VersionParams};

#[test]
fn each_training_is_a_point_with_an_interval_and_a_round() {
    let env = TestEngine::with_models();
    let project = env.create_project(topics_spec("Curve"));
    let ann = env.member(project, "ann", Role::Annotator);
    let rev = env.member(project, "rev", Role::Reviewer);
    import_texts(&env, project);

    let empty = env.engine.learning_curve(&rev, project, None).unwrap();
    assert!(empty.points.is_empty() && empty.rounds.is_empty() && empty.fit.is_none());
    assert_eq!(
        empty.why_not.as_deref(),
        Some("no trained version has held-out figures yet")
    );
    assert_eq!(empty.pending, None);

    let train = || {
        let job = env
            .engine
            .enqueue_train(&env.admin, project, TrainRequest::default())
            .unwrap();
        finish(&env.engine, &env.admin, job);
    };
    // Round 1: items 1 to 14, of which 7 to 10 fall in the held-out split (by id).
    for id in 1..=14 {
        env.answer(&ann, project, &id.to_string(), &[topic_of(id)]);
    }
    train();
    // Rounds split at each version's creation time, in milliseconds: an answer saved in the
    // same millisecond would count in the round before.
    std::thread::sleep(Duration::from_millis(5));
    // Round 2: the other ten (19 and 22 held out).
    for id in 15..=24 {
        env.answer(&ann, project, &id.to_string(), &[topic_of(id)]);
    }
    train();

    let curve = env.engine.learning_curve(&rev, project, None).unwrap();
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    assert_eq!(curve.metric, CurveMetric::Accuracy);
    assert_eq!(curve.points.len(), 2, "{curve:?}");
    for (point, version) in curve.points.iter().zip(&versions) {
        assert_eq!(point.version, version.version);
        assert_eq!(Some(point.labels), version.confirmed);
        let metrics = version.metrics.as_ref().expect("held-out metrics");
        assert_eq!(point.held_out_items, metrics.items);
        for (scored, stored) in [
            (point.score, metrics.accuracy),
            (point.macro_f1.expect("macro-F1"), metrics.macro_f1),
        ] {
            assert!(
                (scored.value - stored).abs() < 1e-12,
                "{scored:?} vs {stored}"
            );
            let interval = scored.interval.expect("a bootstrap interval");
            assert!(
                interval.low <= scored.value && scored.value <= interval.high,
                "{scored:?}"
            );
        }
    }
    assert_eq!(
        curve
            .points
            .iter()
            .map(|p| (p.labels, p.held_out_items))
            .collect::<Vec<_>>(),
        [(14, 4), (24, 6)]
    );

    let (first, second) = (&curve.rounds[0], &curve.rounds[1]);
    assert_eq!(curve.rounds.len(), 2);
    assert_eq!(
        (
            first.round,
            first.version,
            first.previous,
            first.labels_added
        ),
        (1, versions[0].version, None, 14)
    );
    assert_eq!(
        (first.answers, first.annotator_ms),
        (14, 14 * ANSWER_TIME_MS)
    );
    assert_eq!(first.change, None);
    assert_eq!(
        (second.round, second.previous, second.labels_added),
        (2, Some(versions[0].version), 10)
    );
    assert_eq!(
        (second.answers, second.annotator_ms),
        (10, 10 * ANSWER_TIME_MS)
    );
    assert_eq!(
        second.change,
        Some(curve.points[1].score.value - curve.points[0].score.value)
    );
    assert!(first.wall_ms.is_some() && second.wall_ms.is_some());
    assert_eq!(
        curve.pending,
        Some(PendingRound {
            labels_added: Some(0),
            answers: 0,
            annotator_ms: 0
        })
    );
    assert_eq!(curve.labels_now, 24);
    // The newest version's held-out items: 7 and 8 sports, 9 and 10 cooking, 19 and 22
    // finance.
    let baseline = curve.baseline.expect("a majority rate");
    assert_eq!(
        (baseline.name.as_str(), baseline.version),
        ("majority label", versions[1].version)
    );
    assert!((baseline.value - 2.0 / 6.0).abs() < 1e-12, "{baseline:?}");
    // Two label counts fit no curve, and the curve says so instead of guessing.
    assert_eq!(curve.fit, None);
    assert_eq!((curve.labels_needed, curve.more_labels), (None, None));
    let why = curve.why_not.expect("why there is no estimate");
    assert!(why.contains("3 or more different label counts"), "{why}");

    assert_eq!(
        error_kind(env.engine.learning_curve(&ann, project, None)),
        ErrorKind::Forbidden
    );
    assert_eq!(
        error_kind(env.engine.learning_curve(&rev, project, Some(1.5))),
        ErrorKind::InvalidInput
    );
}

/// A trained version as stored before held-out predictions were kept: metrics only.
fn metrics_only(
    labels: Option<u64>,
    train_size: u64,
    accuracy: f64,
    created_ms: u64,
) -> ModelVersionRecord {
    ModelVersionRecord {
        trainer: "head".into(),
        created_ms,
        parent: None,
        params: VersionParams::default(),
        train_size,
        train_hash: String::new(),
        labels: vec!["a".into(), "b".into()],
        encoder: String::new(),
        metrics: Some(serde_json::json!({
            "items": 20,
            "accuracy": accuracy,
            "macro_f1": accuracy - 0.1,
            "per_label": [
                { "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 15 },
                { "precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 5 }
            ],
            "confusion": [[0, 0], [0, 0]],
            "calibration_error": 0.0
        })),
        classifier: serde_json::Value::Null,
        name: None,
        held_out: Vec::new(),
        held_out_spans: Vec::new(),
        confirmed: labels,
        auto: None,
        comparison: None,
    }
}

#[test]
fn versions_without_held_out_predictions_are_points_and_three_fit_a_curve() {
    let env = TestEngine::new();
    let project: ProjectId = env.create_classification_project("Old versions", &["a", "b"]);
    // Scores on 0.9 − 0.8·n^(−1/2) at 16, 64 and 256 labels. The third predates the
    // confirmed count: its labels are its training items and its 20 held-out items.
    let (env, ()) = env.with_store(|store| {
        for record in [
            metrics_only(Some(16), 12, 0.7, 1_000),
            metrics_only(Some(64), 51, 0.8, 2_000),
            metrics_only(None, 236, 0.85, 3_000),
        ] {
            store
                .create_model_version(project, &record, false)
                .expect("store a version");
        }
    });
    let curve = env
        .engine
        .learning_curve(&env.admin, project, None)
        .unwrap();
    assert_eq!(
        curve.points.iter().map(|p| p.labels).collect::<Vec<_>>(),
        [16, 64, 256]
    );
    assert!(curve
        .points
        .iter()
        .all(|p| p.score.interval.is_none() && p.macro_f1.is_some_and(|f| f.interval.is_none())));
    let fit = curve.fit.expect("three label counts fit a curve");
    assert!(
        (fit.a - 0.9).abs() < 1e-6 && (fit.b - 0.8).abs() < 1e-5 && (fit.c - 0.5).abs() < 1e-5,
        "{fit:?}"
    );
    // The default target is a share of the fitted ceiling; (0.8 / (0.9 − 0.855))² ≈ 316.05.
    assert!(curve.target_is_default);
    let target = curve.target.expect("a target");
    assert!((target - DEFAULT_TARGET_SHARE * fit.a).abs() < 1e-12);
    assert_eq!(curve.labels_needed, Some(317));
    // No answers: every label needed is still to come.
    assert_eq!((curve.labels_now, curve.more_labels), (0, Some(317)));
    assert_eq!(curve.why_not, None);
    // The rounds carry the score changes; without answers there is no annotator time.
    let changes: Vec<Option<f64>> = curve.rounds.iter().map(|r| r.change).collect();
    assert_eq!(changes[0], None);
    assert!(
        (changes[1].unwrap() - 0.1).abs() < 1e-12 && (changes[2].unwrap() - 0.05).abs() < 1e-12
    );
    assert_eq!(
        curve
            .rounds
            .iter()
            .map(|r| (r.labels_added, r.wall_ms, r.annotator_ms))
            .collect::<Vec<_>>(),
        [(16, None, 0), (48, Some(1_000), 0), (192, Some(1_000), 0)]
    );
    // The majority rate comes from the newest version's per-label support: 15 of 20.
    assert_eq!(curve.baseline.map(|b| b.value), Some(0.75));

    let given = env
        .engine
        .learning_curve(&env.admin, project, Some(0.8))
        .unwrap();
    assert!(!given.target_is_default);
    let needed = given.labels_needed.expect("0.8 is below the ceiling");
    assert!((63..=65).contains(&needed), "{needed}");
    let beyond = env
        .engine
        .learning_curve(&env.admin, project, Some(0.95))
        .unwrap();
    assert_eq!((beyond.labels_needed, beyond.more_labels), (None, None));
    let why = beyond.why_not.expect("why not");
    assert!(why.contains("levels off at 0.900"), "{why}");
}

#[test]
fn span_versions_are_scored_by_strict_f1_with_an_interval_beside_the_patterns() {
    let env = TestEngine::new();
    let project = env.create_project(common::spec(
        "Entities",
        concord_domain::TaskKind::Spans,
        &["person", "place"],
        concord_domain::ProjectSettings::default(),
    ));
    // Per held-out item: the model finds 2 of 3 entities with no false positive, the
    // patterns 1 of 3 with one false positive.
    let counts = |items: usize| -> Vec<concord_domain::HeldOutSpanCounts> {
        (0..items)
            .map(|_| concord_domain::HeldOutSpanCounts {
                model: [2, 0, 1],
                patterns: [1, 1, 2],
            })
            .collect()
    };
    let (env, ()) = env.with_store(|store| {
        let mut record = metrics_only(Some(40), 32, 0.0, 1_000);
        record.metrics = None;
        record.labels = vec!["person".into(), "place".into()];
        record.held_out_spans = counts(8);
        store
            .create_model_version(project, &record, true)
            .expect("store a version");
    });
    let curve = env
        .engine
        .learning_curve(&env.admin, project, None)
        .unwrap();
    assert_eq!(curve.metric, CurveMetric::SpanF1);
    let point = &curve.points[0];
    assert_eq!((point.labels, point.held_out_items), (40, 8));
    // tp 16, fp 0, fn 8: 32 / 40. Every item alike, so every resample gives the same figure.
    assert!((point.score.value - 0.8).abs() < 1e-12, "{point:?}");
    let interval = point.score.interval.expect("an interval");
    assert!((interval.low - 0.8).abs() < 1e-12 && (interval.high - 0.8).abs() < 1e-12);
    assert_eq!(point.macro_f1, None);
    // The patterns: tp 8, fp 8, fn 16: 16 / 40.
    let baseline = curve.baseline.expect("the patterns' F1");
    assert_eq!(baseline.name, "patterns");
    assert!((baseline.value - 0.4).abs() < 1e-12, "{baseline:?}");
    // A span project's confirmed items are counted when a version is trained.
    assert_eq!(curve.labels_now, 40);
    assert_eq!(curve.pending.map(|p| p.labels_added), Some(None));
}
