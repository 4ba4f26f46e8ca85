//! Relations projects in review and agreement: relation F1 between two annotators on a case
//! computed by hand (three relation types, one reversed relation, one relation on a span with
//! other bounds), per type, per pair and as CSV; a model version's suggested relations scored
//! as a rater; the review queue showing each annotator's spans and relations side by side,
//! the `aggregate_relations` starting point, unanimous answers (relations included) settled
//! as gold, gold set with relations, and gold with an invalid relation refused with nothing
//! written.

use crate::common;

use common::{assert_close, error_kind, relation_label, relations, spans, spec, TestEngine};
use concord_domain::{
    AnnotationValue, ErrorKind, GoldSource, ProjectId, ProjectSettings, RelationLabel, ReviewState,
    Role, SuggestedRelation, SuggestedSpan, TaskKind,
};
use concord_engine::{AgreementTable, ImportFormat, Principal, SubmitOutcome};

/// "Alice works for Acme in Paris": Alice 0..5, Acme 16..20, Paris 24..29.
const T1: &str = "Alice works for Acme in Paris";
/// "Bob founded Globex in Berlin": Bob 0..3, Globex 12..18, "in Berlin" 19..28, Berlin 22..28.
const T2: &str = "Bob founded Globex in Berlin";
/// "Carol joined Initech": Carol 0..5, Initech 13..20.
const T3: &str = "Carol joined Initech";

const ENTITIES: &[&str] = &["per", "org", "loc"];

/// works_for: per → org; founded_by: org → per; located_in: any → any (so that a reversed
/// located_in is a valid answer, and counts as a different relation).
fn relations_spec(name: &str) -> concord_domain::ProjectSpec {
    let mut spec = spec(
        name,
        TaskKind::Relations,
        ENTITIES,
        ProjectSettings {
            overlap: 2,
            blind: false,
            gold_every: 0,
            ..ProjectSettings::default()
        },
    );
    spec.relation_labels = vec![
        relation_label("works_for", &["per"], &["org"]),
        relation_label("founded_by", &["org"], &["per"]),
        RelationLabel::named("located_in"),
    ];
    spec
}

fn relations_project(env: &TestEngine, name: &str, texts: &[&str]) -> ProjectId {
    let project = env.create_project(relations_spec(name));
    env.import_texts_with_t_ids(project, texts.iter().copied());
    project
}

fn submit(
    env: &TestEngine,
    who: &Principal,
    project: ProjectId,
    item: &str,
    span_list: &[(u32, u32, &str)],
    relation_list: &[(u32, u32, &str)],
) {
    let outcome = env.answer_relations(
        who,
        project,
        item,
        spans(span_list),
        relations(relation_list),
    );
    assert_eq!(outcome, SubmitOutcome::Created);
}

/// The hand-computed case. Spans in each answer are given in start order, so relation
/// indexes read as the spans listed.
///
/// t1 — both: Alice(per 0..5), Acme(org 16..20), Paris(loc 24..29).
///   ann: Alice works_for Acme; Acme located_in Paris.
///   bob: Alice works_for Acme; Paris located_in Acme (reversed).
/// t2 — ann: Bob(per 0..3), Globex(org 12..18), Berlin(loc 22..28);
///      bob: the same but "in Berlin" (loc 19..28), bounded differently.
///   ann: Globex founded_by Bob; Globex located_in Berlin.
///   bob: Globex founded_by Bob; Globex located_in "in Berlin"; Bob works_for Globex.
fn hand_case(env: &TestEngine) -> (ProjectId, Principal, Principal) {
    let project = relations_project(env, "hand", &[T1, T2, T3]);
    let [ann, bob] = env.annotators(project, ["ann", "bob"]);
    let t1 = [(0, 5, "per"), (16, 20, "org"), (24, 29, "loc")];
    submit(
        env,
        &ann,
        project,
        "t1",
        &t1,
        &[(0, 1, "works_for"), (1, 2, "located_in")],
    );
    submit(
        env,
        &bob,
        project,
        "t1",
        &t1,
        &[(0, 1, "works_for"), (2, 1, "located_in")],
    );
    submit(
        env,
        &ann,
        project,
        "t2",
        &[(0, 3, "per"), (12, 18, "org"), (22, 28, "loc")],
        &[(1, 0, "founded_by"), (1, 2, "located_in")],
    );
    submit(
        env,
        &bob,
        project,
        "t2",
        &[(0, 3, "per"), (12, 18, "org"), (19, 28, "loc")],
        &[
            (1, 0, "founded_by"),
            (1, 2, "located_in"),
            (0, 1, "works_for"),
        ],
    );
    (project, ann, bob)
}

#[test]
fn relation_agreement_matches_a_hand_computed_case() {
    let env = TestEngine::new();
    let (project, _, _) = hand_case(&env);
    let figures = env.agreement(project);
    assert!(
        figures.spans.is_some(),
        "relations projects keep the span section"
    );
    let r = figures
        .relations
        .as_ref()
        .expect("relations projects have a relations section");
    assert_eq!(r.annotators, ["ann", "bob"]);
    // Two items with two answers; ann gave 2 + 2 relations, bob 2 + 3.
    assert_eq!((r.items_compared, r.relations_compared), (2, 9));

    // Per type (ann read as the prediction):
    //   works_for: ann 1, bob 2, shared 1 (Alice → Acme) → F1 2·1/3 = 2/3.
    //   founded_by: 1, 1, shared 1 → 1.
    //   located_in: 2, 2, shared 0 — the reversed one and the one on "in Berlin" do not
    //   count → 0.
    // Micro: shared 2 of 4 and 5 → P 1/2, R 2/5, F1 4/9. Macro: (2/3 + 1 + 0) / 3 = 5/9.
    let row = |label: &str| {
        r.per_type
            .iter()
            .find(|t| t.label == label)
            .unwrap_or_else(|| panic!("no row for {label}"))
    };
    // The project's relation types in schema order.
    let order: Vec<&str> = r.per_type.iter().map(|t| t.label.as_str()).collect();
    assert_eq!(order, ["works_for", "founded_by", "located_in"]);
    assert_close("works_for", row("works_for").f1.value(), 2.0 / 3.0);
    assert_close("founded_by", row("founded_by").f1.value(), 1.0);
    assert_close("located_in", row("located_in").f1.value(), 0.0);
    assert_eq!(
        (
            row("works_for").relations,
            row("founded_by").relations,
            row("located_in").relations
        ),
        (3, 2, 4)
    );
    assert_close("micro", r.micro_f1.value(), 4.0 / 9.0);
    assert_close("macro", r.macro_f1.value(), 5.0 / 9.0);

    assert_eq!(r.pairs.len(), 1);
    let pair = &r.pairs[0];
    assert_eq!((pair.first, pair.second, pair.items), (0, 1, 2));
    let a = &pair.agreement;
    assert_eq!((a.relations_a, a.relations_b, a.matched), (4, 5, 2));
    assert_close("pair precision", a.micro_precision.value(), 0.5);
    assert_close("pair recall", a.micro_recall.value(), 0.4);
    assert_close("pair micro", a.micro_f1.value(), 4.0 / 9.0);
    assert_close("pair macro", a.macro_f1.value(), 5.0 / 9.0);
    let located = a.per_type.iter().find(|t| t.label == "located_in").unwrap();
    assert_eq!(
        (located.relations_a, located.relations_b, located.matched),
        (2, 2, 0)
    );

    let stats = &r.annotator_stats;
    assert_eq!(
        (stats[0].name.as_str(), stats[0].items, stats[0].relations),
        ("ann", 2, 4)
    );
    assert_eq!((stats[1].items, stats[1].relations), (2, 5));
    assert_close(
        "ann with others",
        stats[0].f1_with_others.value(),
        4.0 / 9.0,
    );
    assert_eq!(stats[0].gold.items, 0, "no independent gold yet");

    // The dashboard's CSV tables carry the same figures at full precision.
    let types = figures.csv(AgreementTable::RelationTypes).unwrap();
    let mut lines = types.lines();
    assert_eq!(lines.next(), Some("type,relations,f1"));
    assert_eq!(
        lines.next(),
        Some(format!("works_for,3,{}", 2.0f64 / 3.0).as_str())
    );
    assert_eq!(lines.next(), Some("founded_by,2,1"));
    assert_eq!(lines.next(), Some("located_in,4,0"));
    let pairs = figures.csv(AgreementTable::RelationPairs).unwrap();
    let row: Vec<&str> = pairs.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row[..6], ["ann", "bob", "2", "4", "5", "2"]);
    assert_close("csv micro", row[6].parse().ok(), 4.0 / 9.0);
    assert_close("csv macro", row[7].parse().ok(), 5.0 / 9.0);
    assert!(figures
        .csv(AgreementTable::RelationModels)
        .unwrap()
        .starts_with("version,"));
}

#[test]
fn relation_figures_are_only_for_relations_projects_and_undefined_without_relations() {
    let env = TestEngine::new();
    let spans_project = env.create_project(spec(
        "ner",
        TaskKind::Spans,
        ENTITIES,
        ProjectSettings::default(),
    ));
    let figures = env.agreement(spans_project);
    assert!(figures.relations.is_none());
    assert_eq!(
        error_kind(figures.csv(AgreementTable::RelationTypes)),
        ErrorKind::NotFound
    );

    // Two annotators, spans but no relations: F1 is undefined (not 0, not NaN), with why.
    let project = relations_project(&env, "bare", &[T3]);
    let [ann, bob] = env.annotators(project, ["ann", "bob"]);
    for who in [&ann, &bob] {
        submit(&env, who, project, "t1", &[(0, 5, "per")], &[]);
    }
    let r = env.agreement(project).relations.unwrap();
    assert_eq!((r.items_compared, r.relations_compared), (1, 0));
    assert!(!r.pairs[0].agreement.micro_f1.is_defined());
    assert_eq!(
        r.pairs[0]
            .agreement
            .micro_f1
            .undefined_reason()
            .map(|w| w.to_string()),
        Some("undefined because there are no relations to compare".to_string())
    );
    assert!(!r.micro_f1.is_defined());
}

#[test]
fn review_shows_relations_side_by_side_and_starts_from_the_majority() {
    let env = TestEngine::new();
    let (project, _, _) = hand_case(&env);
    let rev = env.member(project, "rev", Role::Reviewer);

    let item = env.next_to_review(&rev, project, None);
    assert_eq!(item.id, "t1");
    assert_eq!(item.state, ReviewState::Disagreement);
    let names: Vec<&str> = item.answers.iter().map(|a| a.annotator.as_str()).collect();
    assert_eq!(names, ["ann", "bob"]);
    let t1 = spans(&[(0, 5, "per"), (16, 20, "org"), (24, 29, "loc")]);
    assert_eq!(item.answers[0].spans, t1);
    assert_eq!(
        item.answers[0].relations,
        relations(&[(0, 1, "works_for"), (1, 2, "located_in")])
    );
    assert_eq!(item.answers[1].spans, t1);
    assert_eq!(
        item.answers[1].relations,
        relations(&[(0, 1, "works_for"), (2, 1, "located_in")])
    );
    // Starting point: the spans both marked, and the one relation both gave.
    assert_eq!(item.proposal_spans, t1);
    assert_eq!(item.proposal_relations, relations(&[(0, 1, "works_for")]));
    assert_eq!(
        (item.gold_spans.as_ref(), item.gold_relations.as_ref()),
        (None, None)
    );

    // t2: "Berlin" and "in Berlin" are each one answer's, so neither span is proposed, and
    // the located_in relation on it goes with it; founded_by (Globex → Bob) stays, indexed
    // into the proposed spans.
    let item = env.next_to_review(&rev, project, Some("t1"));
    assert_eq!(item.id, "t2");
    assert_eq!(
        item.proposal_spans,
        spans(&[(0, 3, "per"), (12, 18, "org")])
    );
    assert_eq!(item.proposal_relations, relations(&[(1, 0, "founded_by")]));
    assert_eq!(item.answers[1].relations.len(), 3);
}

#[test]
fn identical_answers_with_relations_settle_as_gold_and_differing_relations_do_not() {
    let env = TestEngine::new();
    let project = relations_project(&env, "settle", &[T3, T3]);
    let [ann, bob] = env.annotators(project, ["ann", "bob"]);
    let rev = env.member(project, "rev", Role::Reviewer);
    let carol = [(0, 5, "per"), (13, 20, "org")];
    // t1: the same spans and relation, the spans sent in a different order (the relation
    // indexes follow them): the stored answers are canonical and equal.
    submit(&env, &ann, project, "t1", &carol, &[(0, 1, "works_for")]);
    submit(
        &env,
        &bob,
        project,
        "t1",
        &[(13, 20, "org"), (0, 5, "per")],
        &[(1, 0, "works_for")],
    );
    // t2: the same spans, but only ann links them.
    submit(&env, &ann, project, "t2", &carol, &[(0, 1, "works_for")]);
    submit(&env, &bob, project, "t2", &carol, &[]);

    let settled = env.engine.review_item(&rev, project, "t1").unwrap();
    assert_eq!(settled.state, ReviewState::Accepted);
    assert_eq!(settled.gold_source, Some(GoldSource::Unanimous));
    assert_eq!(settled.gold_spans, Some(spans(&carol)));
    assert_eq!(
        settled.gold_relations,
        Some(relations(&[(0, 1, "works_for")]))
    );

    let open = env.next_to_review(&rev, project, None);
    assert_eq!(open.id, "t2");
    assert_eq!(open.state, ReviewState::Disagreement);
    // One of two answers is not a majority: the starting point has the spans only.
    assert_eq!(open.proposal_spans, spans(&carol));
    assert!(open.proposal_relations.is_empty());
    let summary = env.engine.review_summary(&rev, project).unwrap();
    assert_eq!((summary.accepted, summary.disagreements), (1, 1));
}

#[test]
fn gold_with_relations_is_set_checked_and_shown() {
    let env = TestEngine::new();
    let (project, ann, _) = hand_case(&env);
    let rev = env.member(project, "rev", Role::Reviewer);

    // Refused: a works_for whose head is an org; a relation pointing past the spans; a
    // relation type the project does not have. Nothing is written.
    let t1_out_of_order = spans(&[(24, 29, "loc"), (0, 5, "per"), (16, 20, "org")]);
    for (bad, wanted) in [
        (relations(&[(2, 1, "works_for")]), "head"),
        (relations(&[(1, 3, "works_for")]), "span 3"),
        (relations(&[(1, 2, "owns")]), "owns"),
    ] {
        let value = AnnotationValue {
            labels: Vec::new(),
            spans: t1_out_of_order.clone(),
            relations: bad.clone(),
        };
        let err = env
            .engine
            .resolve_value(&rev, project, "t1", value, Some(true))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        assert!(err.to_string().contains(wanted), "{bad:?}: {err}");
    }
    let untouched = env.engine.review_item(&rev, project, "t1").unwrap();
    assert_eq!(untouched.gold_relations, None);
    assert!(!untouched.gold_question);
    // Annotators may not set gold.
    let value = AnnotationValue {
        labels: Vec::new(),
        spans: t1_out_of_order.clone(),
        relations: relations(&[(1, 2, "works_for")]),
    };
    assert_eq!(
        error_kind(
            env.engine
                .resolve_value(&ann, project, "t1", value.clone(), None)
        ),
        ErrorKind::Forbidden
    );

    // Set: spans as sent (Paris, Alice, Acme), relations indexing them — Alice works_for Acme
    // and Acme located_in Paris — stored canonical, re-indexed to the sorted spans. As a gold
    // question it becomes independent gold the annotators are scored against.
    let value = AnnotationValue {
        relations: relations(&[(1, 2, "works_for"), (2, 0, "located_in")]),
        ..value
    };
    env.engine
        .resolve_value(&rev, project, "t1", value, Some(true))
        .unwrap();
    let resolved = env.engine.review_item(&rev, project, "t1").unwrap();
    assert_eq!(resolved.state, ReviewState::Resolved);
    assert!(matches!(
        resolved.gold_source,
        Some(GoldSource::Review { .. })
    ));
    assert_eq!(
        resolved.gold_spans,
        Some(spans(&[(0, 5, "per"), (16, 20, "org"), (24, 29, "loc")]))
    );
    assert_eq!(
        resolved.gold_relations,
        Some(relations(&[(0, 1, "works_for"), (1, 2, "located_in")]))
    );
    assert!(resolved.gold_question);
    // The queue moves on to t2.
    let next = env.next_to_review(&rev, project, None);
    assert_eq!(next.id, "t2");

    // Against that gold, ann (identical) scores 1 and bob (the reversed located_in) 1/2
    // precision, 1/2 recall.
    let r = env.agreement(project).relations.unwrap();
    let ann_gold = &r.annotator_stats[0].gold;
    assert_eq!(ann_gold.items, 1);
    assert_close("ann against gold", ann_gold.f1.value(), 1.0);
    assert_close(
        "bob against gold",
        r.annotator_stats[1].gold.f1.value(),
        0.5,
    );

    // The classic `resolve` still sets span-only gold in a relations project (no relations).
    env.engine
        .resolve(
            &rev,
            project,
            "t2",
            Vec::new(),
            spans(&[(0, 3, "per")]),
            None,
        )
        .unwrap();
    let t2 = env.engine.review_item(&rev, project, "t2").unwrap();
    assert_eq!(t2.gold_relations, Some(Vec::new()));

    // Relations in a span-only project are refused.
    let ner = env.create_project(spec(
        "ner",
        TaskKind::Spans,
        ENTITIES,
        ProjectSettings::default(),
    ));
    env.import(
        ner,
        ImportFormat::Jsonl,
        b"{\"id\": \"a\", \"text\": \"Carol joined Initech\"}\n",
    )
    .unwrap();
    let err = env
        .engine
        .resolve_value(
            &env.admin,
            ner,
            "a",
            AnnotationValue {
                labels: Vec::new(),
                spans: spans(&[(0, 5, "per"), (13, 20, "org")]),
                relations: relations(&[(0, 1, "works_for")]),
            },
            None,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let shown = env.engine.review_item(&env.admin, ner, "a").unwrap();
    assert_eq!((shown.gold_spans, shown.gold_relations), (None, None));
}

#[test]
fn a_model_version_is_scored_on_its_suggested_relations() {
    let env = TestEngine::new();
    let (project, _, _) = hand_case(&env);
    let rev = env.member(project, "rev", Role::Reviewer);
    // Gold for t1 (item seq 0): ann's answer.
    env.engine
        .resolve_value(
            &rev,
            project,
            "t1",
            AnnotationValue {
                labels: Vec::new(),
                spans: spans(&[(0, 5, "per"), (16, 20, "org"), (24, 29, "loc")]),
                relations: relations(&[(0, 1, "works_for"), (1, 2, "located_in")]),
            },
            None,
        )
        .unwrap();
    // An external model's suggestion for t1: Alice works_for Acme (right), Paris located_in
    // Acme (reversed), and a relation to a span it does not have (left out).
    let (env, version) = env.with_external_suggestion(project, "rel-ext", ENTITIES, |version| {
        let span = |start: u32, end: u32, label: &str| SuggestedSpan {
            start,
            end,
            label: label.into(),
            confidence: 0.9,
        };
        let relation = |from: u32, to: u32, label: &str| SuggestedRelation {
            from,
            to,
            label: label.into(),
            confidence: 0.8,
        };
        concord_store::SuggestionRecord {
            labels: Vec::new(),
            confidence: 0.7,
            probabilities: Vec::new(),
            version,
            created_ms: 1,
            spans: vec![span(0, 5, "per"), span(16, 20, "org"), span(24, 29, "loc")],
            relations: vec![
                relation(0, 1, "works_for"),
                relation(2, 1, "located_in"),
                relation(0, 7, "works_for"),
            ],
        }
    });
    let r = env.agreement(project).relations.unwrap();
    assert_eq!(r.model_raters.len(), 1);
    let m = &r.model_raters[0];
    assert_eq!(
        (m.version, m.name.as_deref(), m.items),
        (version, Some("rel-ext"), 1)
    );
    // Against ann on t1: one of two shared → P 1/2, R 1/2, F1 1/2. Against bob (who has
    // the same reversed located_in): both shared → 1. Against the gold (ann's): 1/2.
    assert_close("with ann", m.with_annotators[0].f1.value(), 0.5);
    assert_close("with bob", m.with_annotators[1].f1.value(), 1.0);
    assert_close("mean", m.mean_f1, 0.75);
    assert_eq!(m.gold.items, 1);
    assert_close("gold precision", m.gold.precision.value(), 0.5);
    assert_close("gold recall", m.gold.recall.value(), 0.5);
    let csv = env
        .agreement(project)
        .csv(AgreementTable::RelationModels)
        .unwrap();
    assert_eq!(
        csv.lines().next(),
        Some("version,name,trainer,items,mean_f1_with_annotators,gold_items,gold_precision,gold_recall,gold_f1,f1_with_ann,f1_with_bob")
    );
    assert_eq!(
        csv.lines().nth(1),
        Some(format!("{version},rel-ext,external,1,0.75,1,0.5,0.5,0.5,0.5,1").as_str())
    );
}
