//! The relation classifier in the model loop of a relations project, on real
//! all-MiniLM-L6-v2 weights (`TestEngine::with_models`): the news set written for this
//! project (`data/relations_news.jsonl`, see its README) answered as confirmed answers, a
//! head trained on them, and on the held-out items the classifier beats always answering "no
//! relation"; its relations reach the suggestions, between the suggested spans, with types
//! their ends allow, and the annotation page is told whether they are pre-accepted.

use crate::common;

use common::{active_version, relation_label, span_submission, spec, TestEngine};
use concord_domain::{ProjectId, ProjectSettings, Relation, Role, Span, TaskKind};
use concord_engine::{ImportFormat, ModelVersionInfo, TrainRequest, Trainer};
use serde::Deserialize;

/// One line of the news set.
#[derive(Deserialize)]
struct NewsItem {
    id: String,
    text: String,
    spans: Vec<Span>,
    relations: Vec<Relation>,
}

fn news() -> Vec<NewsItem> {
    include_str!("data/relations_news.jsonl")
        .lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("relations_news.jsonl line {}: {e}", n + 1))
        })
        .collect()
}

/// A relations project holding the news set, every item answered with its spans and
/// relations by the admin (one annotator's answer is confirmed, as for spans).
fn news_project(env: &TestEngine) -> (ProjectId, Vec<NewsItem>) {
    news_project_answered(env, true)
}

/// As [`news_project`]; without `relations`, the answers hold the spans only.
fn news_project_answered(env: &TestEngine, relations: bool) -> (ProjectId, Vec<NewsItem>) {
    let mut project_spec = spec(
        "News relations",
        TaskKind::Relations,
        &["PER", "ORG", "LOC"],
        // Two answers wanted per item, so a second annotator still gets items (and their
        // suggestions) once the admin has answered all of them.
        ProjectSettings {
            overlap: 2,
            ..ProjectSettings::default()
        },
    );
    project_spec.relation_labels = vec![
        relation_label("works_for", &["PER"], &["ORG"]),
        relation_label("located_in", &["ORG"], &["LOC"]),
        relation_label("founded_by", &["ORG"], &["PER"]),
    ];
    let project = env.create_project(project_spec);
    let items = news();
    let body: String = items
        .iter()
        .map(|i| format!("{}\n", serde_json::json!({ "id": i.id, "text": i.text })))
        .collect();
    env.import(project, ImportFormat::Jsonl, body.as_bytes())
        .expect("import the news texts");
    for item in &items {
        let item_relations = if relations {
            item.relations.clone()
        } else {
            Vec::new()
        };
        let answer = span_submission(&item.id, item.spans.clone(), item_relations);
        env.engine
            .submit(&env.admin, project, answer)
            .unwrap_or_else(|e| panic!("answer {}: {e}", item.id));
    }
    (project, items)
}

/// The admin trains `project` as `request` asks; checks that the training measured relations
/// and returns the version it made active.
fn train_relations(
    env: &TestEngine,
    project: ProjectId,
    request: TrainRequest,
) -> ModelVersionInfo {
    let info = env.train_with(project, request);
    let result = info.result.expect("a training result");
    assert!(result["relation_f1"].is_number(), "{result}");
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    active_version(&versions).clone()
}

#[test]
fn a_relation_head_beats_always_no_relation_on_held_out_news() {
    let env = TestEngine::with_models();
    let (project, items) = news_project(&env);
    let version = train_relations(
        &env,
        project,
        TrainRequest {
            trainer: Trainer::Head,
            ..TrainRequest::default()
        },
    );
    assert_eq!(version.relation_trainer.as_deref(), Some("head"));
    let m = version
        .relation_metrics
        .as_ref()
        .expect("held-out relation metrics");
    let accuracy = m.pairs.accuracy().expect("held-out pairs");
    let baseline = m.pairs.no_relation_rate().expect("held-out pairs");
    println!(
        "held-out: {} items, {} candidate pairs; pair accuracy {accuracy:.3} vs always \"no relation\" {baseline:.3}; relation micro-F1 from confirmed spans {:.3}, end to end {:.3}",
        m.items, m.pairs.pairs, m.given_spans.micro_f1, m.end_to_end.micro_f1
    );
    for t in &m.given_spans.per_type {
        println!(
            "  {:<11} P {:.2} R {:.2} F1 {:.2} (support {})",
            t.label, t.precision, t.recall, t.f1, t.support
        );
    }
    assert!(m.items > 0 && m.pairs.pairs > 0, "{m:?}");
    assert!(
        accuracy > baseline,
        "pair accuracy {accuracy} is not above always \"no relation\" ({baseline})"
    );
    assert!(m.given_spans.micro_f1 > 0.0, "{m:?}");
    assert!(m.end_to_end.micro_f1 > 0.0, "{m:?}");
    // The per-type figures add up to the micro ones.
    let support: u64 = m.given_spans.per_type.iter().map(|t| t.support).sum();
    assert_eq!(support, m.given_spans.support);
    let validation = version
        .relation_validation
        .as_deref()
        .expect("a relation validation sentence");
    assert!(validation.contains("no relation"), "{validation}");

    // Suggestions carry relations between their own spans, of types their ends allow.
    let (env, suggestions) =
        env.with_store(|store| store.suggestions(project).expect("suggestions"));
    let allowed = [
        ("works_for", "PER", "ORG"),
        ("located_in", "ORG", "LOC"),
        ("founded_by", "ORG", "PER"),
    ];
    let mut with_relations = 0;
    for (seq, s) in &suggestions {
        for r in &s.relations {
            let (from, to) = (&s.spans[r.from as usize], &s.spans[r.to as usize]);
            assert!(
                allowed.contains(&(r.label.as_str(), from.label.as_str(), to.label.as_str())),
                "item {seq}: {r:?} between {from:?} and {to:?}"
            );
            assert!((0.0..=1.0).contains(&r.confidence), "{r:?}");
        }
        with_relations += usize::from(!s.relations.is_empty());
    }
    assert!(
        with_relations > items.len() / 4,
        "only {with_relations} of {} suggestions have relations",
        suggestions.len()
    );

    // The annotation page is told whether the relations are pre-accepted, and why.
    let annotator = env.member(project, "second", Role::Annotator);
    let item = env
        .engine
        .next_item(&annotator, project, &[])
        .expect("next item")
        .expect("an item for the second annotator");
    let suggestion = item.suggestion.expect("a suggestion");
    assert!(
        suggestion
            .relations_validation
            .contains("held-out span pairs"),
        "{suggestion:?}"
    );
    assert_eq!(
        suggestion.relations_preselect,
        suggestion.relations_validation.contains("pre-accepted"),
        "{suggestion:?}"
    );
}

#[test]
fn fine_tuning_a_relations_project_keeps_one_encoder_for_spans_and_relations() {
    let env = TestEngine::with_models();
    let (project, _) = news_project(&env);
    // One epoch each (spans, then relations) keeps the test short; the benchmark
    // (`crates/ml/examples/relations_heldout.rs`) measures the default schedule.
    let version = train_relations(
        &env,
        project,
        TrainRequest {
            trainer: Trainer::FineTune,
            epochs: Some(1),
            ..TrainRequest::default()
        },
    );
    assert_eq!(version.trainer, "fine_tune");
    assert_eq!(version.relation_trainer.as_deref(), Some("fine_tune"));
    assert!(
        version.params["encoder_file"].is_string(),
        "{:?}",
        version.params
    );
    let m = version
        .relation_metrics
        .as_ref()
        .expect("held-out relation metrics");
    assert!(m.pairs.pairs > 0, "{m:?}");
    let span_metrics = version.span_metrics.as_ref().expect("span metrics");
    // The tag head refitted on the final encoder still finds entities.
    assert!(span_metrics.micro_f1 > 0.5, "{span_metrics:?}");
    // After a restart, the stored encoder and both models predict again.
    let env = env.restart();
    env.predict(project);
    let (_, suggestions) = env.with_store(|store| store.suggestions(project).expect("suggestions"));
    assert!(
        suggestions.iter().any(|(_, s)| !s.relations.is_empty()),
        "no relation suggested after the restart"
    );
}

#[test]
fn without_confirmed_relations_the_spans_train_alone_and_say_why() {
    let env = TestEngine::with_models();
    let (project, _) = news_project_answered(&env, false);
    let info = env.train(project);
    let result = info.result.expect("a training result");
    let skipped = result["relations_skipped"].as_str().unwrap_or_default();
    assert!(skipped.contains("holds a relation"), "{result}");
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    let version = active_version(&versions);
    assert!(version.span_metrics.is_some());
    assert!(version.relation_metrics.is_none() && version.relation_trainer.is_none());
    let (_, suggestions) = env.with_store(|store| store.suggestions(project).expect("suggestions"));
    assert!(suggestions.iter().all(|(_, s)| s.relations.is_empty()));
    assert!(suggestions.iter().any(|(_, s)| !s.spans.is_empty()));
}
