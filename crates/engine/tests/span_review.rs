//! Span projects in the engine: annotating with code point offsets (emoji included), the
//! overlap policy, "no entities", unanimous span answers settled as gold, disagreements in
//! the review queue with the majority proposal, the reviewer's edited spans, span agreement
//! on a case computed by hand, and a model version scored as a rater.

use crate::common;

use common::{assert_close, span_submission, spans, spec, TestEngine};
use concord_domain::{
    AnnotationSource, ErrorKind, GoldSource, ProjectId, ProjectSettings, ReviewState, Role, Span,
    SuggestedSpan, TaskKind,
};
use concord_engine::{Principal, SpanAgreementFigures, Submission, SubmitOutcome};

const TYPES: &[&str] = &["per", "loc", "org"];

fn settings(overlap: u32, overlapping_spans: bool) -> ProjectSettings {
    ProjectSettings {
        overlap,
        blind: false,
        gold_every: 0,
        overlapping_spans,
        ..ProjectSettings::default()
    }
}

fn span_answer(item: &str, list: &[(u32, u32, &str)]) -> Submission {
    span_submission(item, spans(list), Vec::new())
}

/// A span project of [`TYPES`] with `texts` imported as items `t1`, `t2`, …
fn span_project(
    env: &TestEngine,
    name: &str,
    settings: ProjectSettings,
    texts: &[&str],
) -> ProjectId {
    let project = env.create_project(spec(name, TaskKind::Spans, TYPES, settings));
    env.import_texts_with_t_ids(project, texts.iter().copied());
    project
}

fn submit(
    env: &TestEngine,
    who: &Principal,
    project: ProjectId,
    item: &str,
    list: &[(u32, u32, &str)],
) -> SubmitOutcome {
    env.answer_spans(who, project, item, spans(list))
}

/// "🙂 Zoë met 東京 friends" in code points: 🙂 0..1, Zoë 2..5 (the ë precomposed), met 6..9,
/// 東 10..11, 京 11..12, friends 13..20. In UTF-16 東京 would start at 11; in bytes at 14.
const EMOJI_TEXT: &str = "🙂 Zoë met 東京 friends";

#[test]
fn span_answers_use_code_points_and_are_checked_against_the_text() {
    let env = TestEngine::new();
    let project = span_project(&env, "ner", settings(1, false), &[EMOJI_TEXT]);
    let ann = env.member(project, "ann", Role::Annotator);

    let item = env.engine.next_item(&ann, project, &[]).unwrap().unwrap();
    assert_eq!(item.id, "t1");
    assert_eq!(item.tokens, concord_domain::tokens::tokenize(EMOJI_TEXT));
    assert!(
        item.tokens.iter().any(|t| (t.start, t.end) == (2, 5)),
        "{:?}",
        item.tokens
    );
    assert_eq!(item.others, None, "span projects show no label counts");

    // Given out of order: stored in canonical order.
    assert_eq!(
        submit(&env, &ann, project, "t1", &[(10, 12, "loc"), (2, 5, "per")]),
        SubmitOutcome::Created
    );
    let mine = env
        .engine
        .item_for_annotation(&ann, project, "t1")
        .unwrap()
        .mine
        .unwrap();
    assert_eq!(mine.spans, spans(&[(2, 5, "per"), (10, 12, "loc")]));
    assert!(mine.labels.is_empty());
    let chars: Vec<char> = EMOJI_TEXT.chars().collect();
    let covered: String = chars[10..12].iter().collect();
    assert_eq!(covered, "東京");

    // The text has 20 code points: a span ending at 21 is refused, naming the span and the
    // unit, and the earlier answer stands.
    let err = env
        .engine
        .submit(&ann, project, span_answer("t1", &[(13, 21, "per")]))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let message = err.to_string();
    assert!(message.contains("13..21"), "{message}");
    assert!(message.contains("20 characters"), "{message}");
    assert!(message.contains("code points"), "{message}");
    // Its end fits in UTF-16 units (22) but not in code points: offsets are code points.
    assert_eq!(EMOJI_TEXT.encode_utf16().count(), 21);
    let still = env.engine.item_for_annotation(&ann, project, "t1").unwrap();
    assert_eq!(still.mine.unwrap().spans.len(), 2);

    // Item labels are not a span answer.
    let labels = Submission {
        item_id: "t1".into(),
        labels: vec!["per".into()],
        spans: Vec::new(),
        time_spent_ms: 0,
        relations: Vec::new(),
    };
    assert_eq!(
        env.engine.submit(&ann, project, labels).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );

    // "No entities" is an answer of its own.
    assert_eq!(
        submit(&env, &ann, project, "t1", &[]),
        SubmitOutcome::Updated
    );
    let none = env.engine.item_for_annotation(&ann, project, "t1").unwrap();
    assert_eq!(none.mine.unwrap().spans, Vec::<Span>::new());
    assert_eq!(
        submit(&env, &ann, project, "t1", &[]),
        SubmitOutcome::Unchanged
    );
}

#[test]
fn the_overlap_policy_is_the_projects() {
    let env = TestEngine::new();
    let nested = [(2, 12, "org"), (6, 9, "per")];
    let flat = span_project(&env, "flat", settings(1, false), &[EMOJI_TEXT]);
    let ann = env.member(flat, "ann", Role::Annotator);
    let err = env
        .engine
        .submit(&ann, flat, span_answer("t1", &nested))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("overlap"), "{err}");
    assert!(env
        .engine
        .item_for_annotation(&ann, flat, "t1")
        .unwrap()
        .mine
        .is_none());

    let overlapping = span_project(&env, "nested", settings(1, true), &[EMOJI_TEXT]);
    env.engine
        .set_member(&env.admin, overlapping, "ann", Some(Role::Annotator))
        .unwrap();
    assert_eq!(
        submit(&env, &ann, overlapping, "t1", &nested),
        SubmitOutcome::Created
    );
    let mine = env
        .engine
        .item_for_annotation(&ann, overlapping, "t1")
        .unwrap()
        .mine
        .unwrap();
    assert_eq!(mine.spans, spans(&nested));
}

#[test]
fn identical_span_answers_are_accepted_as_gold() {
    let env = TestEngine::new();
    let project = span_project(
        &env,
        "agree",
        settings(2, false),
        &["Alice met Bob in Paris", "nothing here"],
    );
    let [ann, bob] = env.annotators(project, ["ann", "bob"]);
    let rev = env.member(project, "rev", Role::Reviewer);
    // The same spans in another order are the same answer.
    submit(&env, &ann, project, "t1", &[(0, 5, "per"), (17, 22, "loc")]);
    submit(&env, &bob, project, "t1", &[(17, 22, "loc"), (0, 5, "per")]);
    // Both say "no entities": settled too.
    submit(&env, &ann, project, "t2", &[]);
    submit(&env, &bob, project, "t2", &[]);

    let summary = env.engine.review_summary(&rev, project).unwrap();
    assert_eq!(summary.accepted, 2, "{summary:?}");
    assert_eq!(summary.needs_review, 0);
    assert!(env
        .engine
        .review_next(&rev, project, None)
        .unwrap()
        .is_none());
    let item = env.engine.review_item(&rev, project, "t1").unwrap();
    assert_eq!(item.state, ReviewState::Accepted);
    assert_eq!(item.gold_source, Some(GoldSource::Unanimous));
    assert_eq!(
        item.gold_spans,
        Some(spans(&[(0, 5, "per"), (17, 22, "loc")]))
    );
    assert_eq!(
        item.proposal_spans,
        spans(&[(0, 5, "per"), (17, 22, "loc")])
    );
    assert_eq!(
        item.tokens,
        concord_domain::tokens::tokenize("Alice met Bob in Paris")
    );
    let empty = env.engine.review_item(&rev, project, "t2").unwrap();
    assert_eq!(empty.gold_spans, Some(Vec::new()));
}

#[test]
fn disagreements_are_reviewed_from_the_majority_and_resolved_with_edited_spans() {
    let env = TestEngine::new();
    let project = span_project(
        &env,
        "review",
        settings(3, false),
        &["Alice met Bob in Paris"],
    );
    let people = env.annotators(project, ["ann", "bob", "cyd"]);
    let rev = env.member(project, "rev", Role::Reviewer);
    submit(
        &env,
        &people[0],
        project,
        "t1",
        &[(0, 5, "per"), (17, 22, "loc")],
    );
    submit(
        &env,
        &people[1],
        project,
        "t1",
        &[(0, 5, "per"), (10, 13, "per")],
    );
    // Two of three answers have not come in yet: nothing to review.
    assert!(env
        .engine
        .review_next(&rev, project, None)
        .unwrap()
        .is_none());
    submit(
        &env,
        &people[2],
        project,
        "t1",
        &[(0, 9, "per"), (17, 22, "loc")],
    );

    let item = env.next_to_review(&rev, project, None);
    assert_eq!(item.state, ReviewState::Disagreement);
    let shown: Vec<(&str, Vec<Span>)> = item
        .answers
        .iter()
        .map(|a| (a.annotator.as_str(), a.spans.clone()))
        .collect();
    assert_eq!(
        shown,
        [
            ("ann", spans(&[(0, 5, "per"), (17, 22, "loc")])),
            ("bob", spans(&[(0, 5, "per"), (10, 13, "per")])),
            ("cyd", spans(&[(0, 9, "per"), (17, 22, "loc")])),
        ]
    );
    // Spans two of the three marked.
    assert_eq!(
        item.proposal_spans,
        spans(&[(0, 5, "per"), (17, 22, "loc")])
    );
    assert_eq!(item.gold_spans, None);
    assert!(item.proposal.is_empty());

    // The reviewer takes the proposal and adds Bob.
    let edited = spans(&[(0, 5, "per"), (10, 13, "per"), (17, 22, "loc")]);
    let refused = env.engine.resolve(
        &rev,
        project,
        "t1",
        Vec::new(),
        spans(&[(17, 23, "loc")]),
        None,
    );
    assert!(refused.unwrap_err().to_string().contains("22 characters"));
    let labels = env
        .engine
        .resolve(&rev, project, "t1", vec!["per".into()], Vec::new(), None);
    assert_eq!(labels.unwrap_err().kind(), ErrorKind::InvalidInput);
    assert_eq!(
        env.engine
            .resolve(&people[0], project, "t1", Vec::new(), edited.clone(), None)
            .unwrap_err()
            .kind(),
        ErrorKind::Forbidden
    );
    // Given out of order, stored in canonical order.
    let mut shuffled = edited.clone();
    shuffled.reverse();
    env.engine
        .resolve(&rev, project, "t1", Vec::new(), shuffled, None)
        .unwrap();
    let resolved = env.engine.review_item(&rev, project, "t1").unwrap();
    assert_eq!(resolved.state, ReviewState::Resolved);
    assert_eq!(resolved.gold_spans, Some(edited));
    assert!(matches!(
        resolved.gold_source,
        Some(GoldSource::Review { .. })
    ));
    assert!(env
        .engine
        .review_next(&rev, project, None)
        .unwrap()
        .is_none());
    let summary = env.engine.review_summary(&rev, project).unwrap();
    assert_eq!((summary.gold_by_review, summary.needs_review), (1, 0));
}

fn type_row<'a>(
    figures: &'a SpanAgreementFigures,
    label: &str,
) -> &'a concord_engine::SpanTypeAgreement {
    figures
        .per_type
        .iter()
        .find(|t| t.label == label)
        .unwrap_or_else(|| panic!("no row for {label}"))
}

/// The hand-computed case: "Alice met Bob in Paris" and "Visit New York now".
fn hand_case(env: &TestEngine) -> (ProjectId, Principal, Principal) {
    let project = span_project(
        env,
        "hand",
        settings(2, false),
        &["Alice met Bob in Paris", "Visit New York now"],
    );
    let [a, b] = env.annotators(project, ["ann", "bob"]);
    submit(
        env,
        &a,
        project,
        "t1",
        &[(0, 5, "per"), (10, 13, "per"), (17, 22, "loc")],
    );
    submit(
        env,
        &b,
        project,
        "t1",
        &[(0, 9, "per"), (10, 13, "loc"), (17, 22, "loc")],
    );
    submit(env, &a, project, "t2", &[(6, 14, "loc")]);
    submit(env, &b, project, "t2", &[(10, 14, "loc")]);
    (project, a, b)
}

#[test]
fn span_agreement_matches_a_hand_computed_case() {
    let env = TestEngine::new();
    let (project, _, _) = hand_case(&env);
    let figures = env.agreement(project);
    let s = figures.spans.expect("span projects have a spans section");
    assert_eq!(s.annotators, ["ann", "bob"]);
    assert_eq!((s.items_compared, s.spans_compared), (2, 8));

    // Exact. per: ann 2, bob 1, no match → 0. loc: ann 2, bob 3, one match (17..22) →
    // P 1/2, R 1/3, F1 2/5. Micro: 1 match of 4 and 4 → 1/4. Macro: (0 + 2/5) / 2 = 1/5.
    assert_close("exact micro", s.exact.micro_f1.value(), 0.25);
    assert_close("exact macro", s.exact.macro_f1.value(), 0.2);
    assert_close("exact per", type_row(&s, "per").exact_f1.value(), 0.0);
    assert_close("exact loc", type_row(&s, "loc").exact_f1.value(), 0.4);
    // Overlap. per: ann's 0..5 touches bob's 0..9, ann's 10..13 touches no per → P 1/2;
    // bob's 0..9 touches 0..5 → R 1 → F1 2/3. loc: both of ann's touch one of bob's → P 1;
    // bob's 10..13 touches no loc of ann's → R 2/3 → F1 4/5. Micro: P 3/4, R 3/4 → 3/4.
    // Macro: (2/3 + 4/5) / 2 = 11/15.
    assert_close("overlap micro", s.overlap.micro_f1.value(), 0.75);
    assert_close("overlap macro", s.overlap.macro_f1.value(), 11.0 / 15.0);
    assert_close(
        "overlap per",
        type_row(&s, "per").overlap_f1.value(),
        2.0 / 3.0,
    );
    assert_close("overlap loc", type_row(&s, "loc").overlap_f1.value(), 0.8);
    assert_eq!(type_row(&s, "per").spans, 3);
    assert_eq!(type_row(&s, "loc").spans, 5);
    assert_eq!(type_row(&s, "org").spans, 0);
    assert!(!type_row(&s, "org").exact_f1.is_defined());

    assert_eq!(s.pairs.len(), 1);
    let pair = &s.pairs[0];
    assert_eq!((pair.first, pair.second, pair.items), (0, 1, 2));
    assert_close("pair exact", pair.exact.micro_f1.value(), 0.25);
    let loc = pair
        .exact
        .per_label
        .iter()
        .find(|l| l.label == "loc")
        .unwrap();
    assert_eq!((loc.spans_a, loc.spans_b, loc.matched_a), (2, 3, 1));

    // α_U: both answered every item, so the overall and the pair figure are the same; the
    // answers differ, so it is below 1.
    let overall = s.unitizing.alpha.as_ref().expect("α_U computed");
    assert_eq!((s.unitizing.items, s.unitizing.length), (2, 40));
    let alpha = overall.coefficient.value().unwrap();
    assert!(alpha < 1.0, "{alpha}");
    assert_close("pair α_U", pair.unitizing.coefficient().value(), alpha);
    assert_close(
        "mean pairwise α_U",
        s.unitizing_mean_pairwise.value(),
        alpha,
    );

    // The classification figures are still there (over the empty item labels).
    assert_eq!(figures.annotators, ["ann", "bob"]);
    let stats = &s.annotator_stats;
    assert_eq!((stats[0].items, stats[0].spans), (2, 4));
    assert_close(
        "ann with others",
        stats[0].exact_f1_with_others.value(),
        0.25,
    );
}

#[test]
fn identical_span_answers_have_unitizing_alpha_one() {
    let env = TestEngine::new();
    let project = span_project(
        &env,
        "same",
        settings(2, false),
        &["Alice met Bob in Paris", "Visit New York now", "nothing"],
    );
    let [a, b] = env.annotators(project, ["ann", "bob"]);
    for who in [&a, &b] {
        submit(&env, who, project, "t1", &[(0, 5, "per"), (17, 22, "loc")]);
        submit(&env, who, project, "t2", &[(6, 14, "loc")]);
        submit(&env, who, project, "t3", &[]);
    }
    let s = env.agreement(project).spans.unwrap();
    assert_close("α_U", s.unitizing.coefficient().value(), 1.0);
    assert_close("exact", s.exact.micro_f1.value(), 1.0);
    assert_close("overlap", s.overlap.micro_f1.value(), 1.0);
    assert_close("α_U per", type_row(&s, "per").alpha_u.value(), 1.0);
    assert_eq!(s.unitizing.length, 22 + 18 + 7);
}

#[test]
fn classification_projects_have_no_spans_section() {
    let env = TestEngine::new();
    let project = env.create_classification_project("cls", &["pos", "neg"]);
    assert!(env.agreement(project).spans.is_none());
}

#[test]
fn a_model_version_is_scored_as_a_rater_and_its_spans_are_suggested() {
    let env = TestEngine::new();
    let (project, a, _) = hand_case(&env);
    let rev = env.member(project, "rev", Role::Reviewer);
    // Gold for t1 is ann's answer.
    env.engine
        .resolve(
            &rev,
            project,
            "t1",
            Vec::new(),
            spans(&[(0, 5, "per"), (10, 13, "per"), (17, 22, "loc")]),
            None,
        )
        .unwrap();
    // An external model's suggestions for t1, as a version of its own.
    let (env, version) = env.with_external_suggestion(project, "spacy-sm", TYPES, |version| {
        let suggested = |s: u32, e: u32, l: &str| SuggestedSpan {
            start: s,
            end: e,
            label: l.into(),
            confidence: 0.9,
        };
        concord_store::SuggestionRecord {
            labels: Vec::new(),
            confidence: 0.7,
            probabilities: Vec::new(),
            version,
            created_ms: 1,
            spans: vec![suggested(0, 5, "per"), suggested(17, 22, "loc")],
            relations: Vec::new(),
        }
    });

    let s = env.agreement(project).spans.unwrap();
    assert_eq!(s.model_raters.len(), 1);
    let m = &s.model_raters[0];
    assert_eq!(
        (m.version, m.trainer.as_str(), m.name.as_deref()),
        (version, "external", Some("spacy-sm"))
    );
    assert_eq!(m.items, 1);
    // Against ann (3 spans): both suggested spans match → P 1, R 2/3, F1 4/5.
    assert_close("vs ann", m.with_annotators[0].exact_f1.value(), 0.8);
    assert_close(
        "vs ann P",
        m.with_annotators[0].exact_precision.value(),
        1.0,
    );
    assert_close(
        "vs ann R",
        m.with_annotators[0].exact_recall.value(),
        2.0 / 3.0,
    );
    // Against bob (0..9 per, 10..13 loc, 17..22 loc): one match → P 1/2, R 1/3, F1 2/5;
    // overlapping: both suggested spans touch one of bob's (P 1), two of bob's three are
    // touched (R 2/3) → F1 4/5.
    assert_close("vs bob", m.with_annotators[1].exact_f1.value(), 0.4);
    assert_close(
        "vs bob overlap",
        m.with_annotators[1].overlap_f1.value(),
        0.8,
    );
    assert_close("mean", m.mean_exact_f1, 0.6);
    // Against the reviewed gold of t1 (ann's spans): as against ann.
    assert_eq!(m.gold.items, 1);
    assert_close("vs gold", m.gold.exact_f1.value(), 0.8);

    // Annotators outside a blind project see the suggested spans; taking them unchanged is
    // recorded as accepting them, anything else as correcting them.
    let shown = env.engine.item_for_annotation(&a, project, "t1").unwrap();
    let suggestion = shown.suggestion.expect("a suggestion");
    assert_eq!(suggestion.model_version, version);
    assert_eq!(
        suggestion
            .spans
            .iter()
            .map(|s| (s.start, s.end, s.label.as_str()))
            .collect::<Vec<_>>(),
        [(0, 5, "per"), (17, 22, "loc")]
    );
    assert!(suggestion.labels.is_empty());
    // The page says what the confidences rest on: here, nothing measured in this project.
    assert!(
        suggestion.validation.contains("spacy-sm")
            && suggestion.validation.contains("not validated"),
        "{}",
        suggestion.validation
    );
    submit(&env, &a, project, "t1", &[(17, 22, "loc"), (0, 5, "per")]);
    let rev_view = env.engine.review_item(&rev, project, "t1").unwrap();
    let ann_answer = rev_view
        .answers
        .iter()
        .find(|x| x.annotator == "ann")
        .unwrap();
    assert_eq!(
        ann_answer.source,
        AnnotationSource::ModelAccepted {
            model_version: version
        }
    );
    submit(&env, &a, project, "t1", &[(0, 5, "per")]);
    let rev_view = env.engine.review_item(&rev, project, "t1").unwrap();
    let ann_answer = rev_view
        .answers
        .iter()
        .find(|x| x.annotator == "ann")
        .unwrap();
    assert_eq!(
        ann_answer.source,
        AnnotationSource::ModelCorrected {
            model_version: version
        }
    );
}

#[test]
fn pairs_are_compared_on_the_items_they_share() {
    let env = TestEngine::new();
    let project = span_project(
        &env,
        "partial",
        settings(2, false),
        &["Alice met Bob", "Bob in Paris", "Visit Rome"],
    );
    let [ann, bob, cyd] = env.annotators(project, ["ann", "bob", "cyd"]);
    submit(&env, &ann, project, "t1", &[(0, 5, "per")]);
    submit(&env, &bob, project, "t1", &[(0, 5, "per")]);
    submit(&env, &bob, project, "t2", &[(7, 12, "loc")]);
    submit(&env, &cyd, project, "t2", &[(0, 3, "per")]);
    submit(&env, &ann, project, "t3", &[(6, 10, "loc")]);
    submit(&env, &cyd, project, "t3", &[(6, 10, "loc")]);

    let s = env.agreement(project).spans.unwrap();
    assert_eq!(s.annotators, ["ann", "bob", "cyd"]);
    let pairs: Vec<(usize, usize, u64, Option<f64>)> = s
        .pairs
        .iter()
        .map(|p| (p.first, p.second, p.items, p.exact.micro_f1.value()))
        .collect();
    assert_eq!(
        pairs,
        [
            (0, 1, 1, Some(1.0)),
            (0, 2, 1, Some(1.0)),
            (1, 2, 1, Some(0.0))
        ]
    );
    assert_close("mean exact", s.exact.micro_f1.value(), 2.0 / 3.0);
    assert_close(
        "ann",
        s.annotator_stats[0].exact_f1_with_others.value(),
        1.0,
    );
    assert_close(
        "bob",
        s.annotator_stats[1].exact_f1_with_others.value(),
        0.5,
    );
    // Each agreeing pair's α_U is 1 over its one shared item; the disagreeing pair's is lower.
    assert_close(
        "ann–bob α_U",
        s.pairs[0].unitizing.coefficient().value(),
        1.0,
    );
    assert_close(
        "ann–cyd α_U",
        s.pairs[1].unitizing.coefficient().value(),
        1.0,
    );
    assert_eq!(s.pairs[2].unitizing.items, 1);
    assert!(s.pairs[2]
        .unitizing
        .coefficient()
        .value()
        .is_none_or(|v| v < 1.0));
    // No item was answered by all three: the overall α_U says so instead of guessing.
    assert!(s.unitizing.alpha.is_none());
    assert_eq!(s.unitizing.items, 0);
    assert!(s
        .unitizing
        .note
        .as_deref()
        .unwrap()
        .contains("all of these annotators"));
}
