//! The loop that trains itself, with the real all-MiniLM-L6-v2: after every N confirmed
//! labels the job worker trains a head on its own, compares it with the active version on the
//! same held-out items, and lets it replace that version only when it is not worse; a
//! person's request cannot pose as the worker's.
//!
//! Items are the topics texts (ids 1 to 24); the held-out split is chosen by a hash of the
//! item id, which puts items 7, 8, 9, 10, 19 and 22 in it.

use crate::common;

use std::time::{Duration, Instant};

use common::{error_kind, import_texts, spec, topic_of, topics_spec, TestEngine, TOPICS};
use concord_domain::{
    AutoTrainSettings, AutoTrigger, ComparisonMetric, ErrorKind, PatternKind, ProjectId,
    ProjectSettings, Role, Span, SpanPattern, TaskKind,
};
use concord_engine::{Engine, ModelVersionInfo, Principal, TrainRequest, Trainer};

/// The topics items in the held-out split (see the module documentation).
const HELD_OUT: [usize; 6] = [7, 8, 9, 10, 19, 22];

/// Automatic training every `every` confirmed labels, without fine-tuning or few-shot
/// milestones.
fn every(every: u32) -> AutoTrainSettings {
    AutoTrainSettings {
        enabled: true,
        every,
        fine_tune_at: Vec::new(),
        few_shot_at: Vec::new(),
    }
}

/// Waits until `project` has a version trained automatically on `labels` confirmed labels.
fn auto_version(
    engine: &Engine,
    who: &Principal,
    project: ProjectId,
    labels: u64,
) -> ModelVersionInfo {
    let start = Instant::now();
    loop {
        let versions = engine.model_versions(who, project).expect("versions");
        if let Some(v) = versions
            .iter()
            .find(|v| matches!(v.auto, Some(AutoTrigger::Every { labels: l }) if l == labels))
        {
            return v.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "no version was trained on its own at {labels} labels: {versions:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn active(engine: &Engine, who: &Principal, project: ProjectId) -> u64 {
    engine
        .model_versions(who, project)
        .expect("versions")
        .iter()
        .find(|v| v.active)
        .expect("an active version")
        .version
}

/// The label after the true one: a consistent mistake, which a head learns as well as the
/// truth.
fn wrong_topic(id: usize) -> &'static str {
    let truth = TOPICS
        .iter()
        .position(|(t, _)| *t == topic_of(id))
        .expect("a topic");
    TOPICS[(truth + 1) % TOPICS.len()].0
}

/// Labels described as the wrong topics (each label gets the next one's description), so the
/// zero-shot version is poor and the labels people give can beat it.
#[test]
fn a_head_is_trained_on_its_own_after_every_n_confirmed_labels_and_compared_with_the_active_version(
) {
    let env = TestEngine::with_models();
    let mut spec = topics_spec("Misdescribed");
    let descriptions: Vec<Option<String>> =
        spec.labels.iter().map(|l| l.description.clone()).collect();
    for (i, label) in spec.labels.iter_mut().enumerate() {
        label.description = descriptions[(i + 1) % descriptions.len()].clone();
    }
    spec.settings.auto_train = every(10);
    let project = env.create_project_training_itself(spec);
    let ann = env.member(project, "ann", Role::Annotator);
    import_texts(&env, project);
    env.predict(project);
    assert_eq!(
        active(&env.engine, &env.admin, project),
        1,
        "zero-shot first"
    );

    // Nine answers: nothing is trained (the first training needs ten).
    let first = [1, 2, 3, 9, 10, 11, 12, 17, 18, 19];
    for &id in &first[..9] {
        env.answer(&ann, project, &id.to_string(), &[topic_of(id)]);
    }
    // The tenth confirmed label queues a head on its own.
    env.answer(&ann, project, &first[9].to_string(), &[topic_of(first[9])]);
    let v2 = auto_version(&env.engine, &env.admin, project, 10);
    assert_eq!((v2.version, v2.trainer.as_str()), (2, "head"));
    assert_eq!(v2.confirmed, Some(10));
    let c = v2
        .comparison
        .clone()
        .expect("an automatic version is compared");
    assert_eq!(c.metric, ComparisonMetric::Accuracy);
    assert_eq!(c.incumbent, Some(1), "compared with the zero-shot version");
    // Held out among the answered items: 9, 10 and 19.
    assert_eq!(c.items, 3);
    let incumbent = c
        .incumbent_score
        .expect("zero-shot predicts on the held-out items");
    assert_eq!(c.activated, c.candidate >= incumbent, "{c:?}");
    let after_first = active(&env.engine, &env.admin, project);
    assert_eq!(after_first, if c.activated { 2 } else { 1 });

    // Ten more answers: the next head, compared with whichever version is active now.
    for id in [4, 5, 6, 7, 8, 13, 14, 20, 21, 22] {
        env.answer(&ann, project, &id.to_string(), &[topic_of(id)]);
    }
    let v3 = auto_version(&env.engine, &env.admin, project, 20);
    assert_eq!((v3.version, v3.parent), (3, Some(after_first)));
    let c = v3.comparison.clone().expect("compared");
    assert_eq!(c.incumbent, Some(after_first));
    assert_eq!(c.items, HELD_OUT.len() as u64);
    let incumbent = c.incumbent_score.expect("the active version predicts");
    assert_eq!(c.activated, c.candidate >= incumbent, "{c:?}");
    let metrics = v3.metrics.as_ref().expect("held-out metrics");
    assert!(
        (metrics.accuracy - c.candidate).abs() < 1e-9,
        "{metrics:?} vs {c:?}"
    );
    // Twenty labels beat label descriptions that name the wrong topics.
    assert_ne!(
        active(&env.engine, &env.admin, project),
        1,
        "the loop never replaced the misled zero-shot version"
    );
}

#[test]
fn an_automatic_version_worse_than_the_active_one_is_stored_but_not_activated() {
    let env = TestEngine::with_models();
    // Created with the loop off (see `TestEngine::create_project`): the first version is a
    // person's.
    let project = env.create_project(topics_spec("Flipped"));
    let ann = env.member(project, "ann", Role::Annotator);
    import_texts(&env, project);
    let first = [1, 2, 3, 7, 9, 11, 12, 13, 17, 18, 19, 20];
    for &id in &first {
        env.answer(&ann, project, &id.to_string(), &[topic_of(id)]);
    }
    env.train(project);
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    assert_eq!(versions.len(), 1);
    let v1 = &versions[0];
    assert!(v1.active && v1.auto.is_none());
    assert_eq!(v1.confirmed, Some(first.len() as u64));
    // A person's training is activated whatever it compares like.
    assert_eq!(v1.comparison.as_ref().map(|c| c.activated), Some(true));

    // Then every label the next version can train on is wrong (the next topic), while the
    // held-out items keep their true labels: a candidate that learned the mistake is worse
    // on them than version 1, which learned the truth.
    for id in 1..=24 {
        let label = if HELD_OUT.contains(&id) {
            topic_of(id)
        } else {
            wrong_topic(id)
        };
        env.answer(&ann, project, &id.to_string(), &[label]);
    }
    env.change_settings(project, |s| s.auto_train = every(10));
    let v2 = auto_version(&env.engine, &env.admin, project, 24);
    assert_eq!(v2.version, 2);
    let c = v2.comparison.clone().expect("compared");
    assert_eq!((c.incumbent, c.items), (Some(1), HELD_OUT.len() as u64));
    let incumbent = c.incumbent_score.expect("version 1 predicts");
    assert!(c.candidate < incumbent, "{c:?}");
    assert!(!c.activated && !v2.active, "{v2:?}");
    assert_eq!(active(&env.engine, &env.admin, project), 1);
    // The suggestions are still version 1's.
    let shown = env.engine.review_item(&env.admin, project, "5").unwrap();
    assert_eq!(shown.suggestion.map(|s| s.model_version), Some(1));
    // Nothing else is queued for the same labels: the worker waits for ten more.
    std::thread::sleep(Duration::from_secs(3));
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
}

#[test]
fn the_encoder_is_fine_tuned_on_its_own_at_a_milestone_and_compared_like_a_head() {
    // A head would wait for 100 labels; the fine-tuning milestone comes at 10.
    tuned_on_its_own_at_a_milestone(
        AutoTrainSettings {
            fine_tune_at: vec![10],
            ..every(100)
        },
        "fine_tune",
    );
}

#[test]
fn the_encoder_is_tuned_few_shot_on_its_own_at_a_milestone_and_compared_like_a_head() {
    tuned_on_its_own_at_a_milestone(
        AutoTrainSettings {
            few_shot_at: vec![10],
            ..every(100)
        },
        "setfit",
    );
}

/// With `settings` (a milestone at 10 labels, a head every 100), ten answers make the worker
/// queue one `trainer` version on its own, compared with the zero-shot version on the
/// held-out items answered and activated only if not worse; two more answers queue nothing.
fn tuned_on_its_own_at_a_milestone(settings: AutoTrainSettings, trainer: &str) {
    let env = TestEngine::with_models();
    let mut spec = topics_spec("Milestone");
    spec.settings.auto_train = settings;
    let project = env.create_project_training_itself(spec);
    let ann = env.member(project, "ann", Role::Annotator);
    import_texts(&env, project);
    env.predict(project);
    for id in [1, 2, 3, 9, 10, 11, 12, 17, 18, 19] {
        env.answer(&ann, project, &id.to_string(), &[topic_of(id)]);
    }
    let start = Instant::now();
    let v2 = loop {
        let versions = env.engine.model_versions(&env.admin, project).unwrap();
        if let Some(v) = versions.iter().find(|v| v.auto.is_some()) {
            break v.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "no {trainer} at the milestone: {versions:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        v2.auto,
        Some(AutoTrigger::Milestone {
            milestone: 10,
            labels: 10
        })
    );
    assert_eq!((v2.version, v2.trainer.as_str()), (2, trainer));
    // Compared with the zero-shot version on the held-out items answered (9, 10 and 19),
    // and activated only if not worse.
    let c = v2
        .comparison
        .clone()
        .expect("an automatic version is compared");
    assert_eq!((c.incumbent, c.items), (Some(1), 3));
    let incumbent = c.incumbent_score.expect("zero-shot predicts");
    assert_eq!(c.activated, c.candidate >= incumbent, "{c:?}");
    assert_eq!(
        active(&env.engine, &env.admin, project),
        if c.activated { 2 } else { 1 }
    );
    // The milestone is served once: two more labels queue nothing.
    for id in [4, 5] {
        env.answer(&ann, project, &id.to_string(), &[topic_of(id)]);
    }
    std::thread::sleep(Duration::from_secs(3));
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
}

#[test]
fn a_persons_training_request_cannot_carry_the_workers_trigger() {
    let env = TestEngine::new();
    let project = env.create_classification_project("P", &["a", "b"]);
    let request = TrainRequest {
        trainer: Trainer::Head,
        epochs: None,
        auto: Some(AutoTrigger::Every { labels: 20 }),
    };
    assert_eq!(
        error_kind(env.engine.enqueue_train(&env.admin, project, request)),
        ErrorKind::InvalidInput
    );
    let jobs = env.engine.project_jobs(&env.admin, project).unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");
}

const PEOPLE: [&str; 6] = ["Alice", "Bob", "Carol", "David", "Emma", "Frank"];
const CITIES: [&str; 6] = ["Paris", "London", "Berlin", "Madrid", "Rome", "Tokyo"];

/// A sentence with its person and city spans (code points).
fn sentence(i: usize) -> (String, Vec<Span>) {
    let (p, c) = (PEOPLE[i % 6], CITIES[(i / 6 + i) % 6]);
    let text = format!("yesterday {p} flew from {c} .");
    let at = |needle: &str| {
        let start = text.find(needle).expect("in the text");
        let start = text[..start].chars().count() as u32;
        (start, start + needle.chars().count() as u32)
    };
    let ((ps, pe), (cs, ce)) = (at(p), at(c));
    (
        text.clone(),
        vec![Span::new(ps, pe, "person"), Span::new(cs, ce, "city")],
    )
}

/// Strict F1 pooled over items' `[tp, fp, fn]`.
fn pooled_f1(counts: impl Iterator<Item = [u32; 3]>) -> f64 {
    let [tp, fp, fn_] = counts.fold([0u32; 3], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2]]);
    if tp + fp + fn_ == 0 {
        0.0
    } else {
        f64::from(2 * tp) / f64::from(2 * tp + fp + fn_)
    }
}

#[test]
fn a_span_project_trains_on_its_own_against_its_patterns_on_the_same_held_out_items() {
    let env = TestEngine::with_models();
    let settings = ProjectSettings {
        patterns: vec![SpanPattern {
            label: "city".into(),
            kind: PatternKind::Term,
            pattern: "Paris".into(),
            case_insensitive: false,
        }],
        ..ProjectSettings::default()
    };
    // The loop starts off (see `TestEngine::create_project`), so every answer is in before
    // it looks.
    let project = env.create_project(spec(
        "Entities",
        TaskKind::Spans,
        &["person", "city"],
        settings,
    ));
    let labelled: Vec<(String, Vec<Span>)> = (0..30).map(sentence).collect();
    env.import_texts(project, labelled.iter().map(|(t, _)| t.as_str()));
    // The patterns pre-annotate first: they are the version to beat.
    env.predict(project);
    assert_eq!(active(&env.engine, &env.admin, project), 1);
    for (i, (_, spans)) in labelled.iter().enumerate() {
        env.answer_spans(&env.admin, project, &(i + 1).to_string(), spans.clone());
    }
    env.change_settings(project, |s| s.auto_train = every(10));
    let v2 = auto_version(&env.engine, &env.admin, project, 30);
    assert_eq!(
        (v2.version, v2.trainer.as_str(), v2.confirmed),
        (2, "head", Some(30))
    );
    let metrics = v2.span_metrics.clone().expect("held-out span metrics");
    let c = v2.comparison.clone().expect("compared");
    assert_eq!(c.metric, ComparisonMetric::SpanF1);
    assert_eq!((c.incumbent, c.items), (Some(1), metrics.items));
    assert!(
        (c.candidate - metrics.micro_f1).abs() < 1e-9,
        "{c:?} {metrics:?}"
    );
    let patterns_f1 = c.incumbent_score.expect("the patterns predict");
    assert_eq!(c.activated, c.candidate >= patterns_f1, "{c:?}");
    assert_eq!(
        active(&env.engine, &env.admin, project),
        if c.activated { 2 } else { 1 }
    );

    // Each held-out item's strict counts: the version's add up to its metrics, and the
    // project's patterns' (the same rules as version 1) to the patterns' score.
    let (_env, record) = env.with_store(|store| {
        store
            .model_version(project, 2)
            .expect("read")
            .expect("version 2")
    });
    let counts = &record.held_out_spans;
    assert_eq!(counts.len() as u64, metrics.items);
    let gold: u32 = counts.iter().map(|c| c.model[0] + c.model[2]).sum();
    assert_eq!(u64::from(gold), metrics.support);
    assert!(counts
        .iter()
        .all(|c| c.model[0] + c.model[2] == c.patterns[0] + c.patterns[2]));
    assert!((pooled_f1(counts.iter().map(|c| c.model)) - c.candidate).abs() < 1e-9);
    assert!((pooled_f1(counts.iter().map(|c| c.patterns)) - patterns_f1).abs() < 1e-9);
    // "Paris" is one city in six: the patterns find some cities and no person.
    let found: u32 = counts.iter().map(|c| c.patterns[0]).sum();
    assert!(
        found > 0 && u64::from(found) < metrics.support,
        "{counts:?}"
    );
}
