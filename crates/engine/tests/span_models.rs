//! The model loop of span projects: pattern pre-annotation (terms and regular expressions on
//! token boundaries, invalid ones refused when saved), a token classifier trained on
//! confirmed spans with held-out entity metrics, span suggestions for every item (a
//! 5,000-word one too), active learning's reason from token margins, fine-tuning and
//! rollback, a prediction resumed after a restart, and never an item-level label suggestion.
//!
//! Like the other engine model tests (`models.rs`), the jobs run the real all-MiniLM-L6-v2
//! from `scripts/setup.sh` (`TestEngine::with_models`): a job refuses to start without an
//! encoder, and patterns versions embed items for the queue's diversity. The data are a few
//! hundred short sentences and one long item at most, so each test takes seconds.

use crate::common;

use common::{active_version, error_kind, finish, spec, without_auto_train, TestEngine};
use concord_domain::tokens::{on_token_boundaries, tokenize};
use concord_domain::{
    ErrorKind, PatternKind, ProjectId, ProjectSettings, Role, Span, SpanPattern, TaskKind,
};
use concord_engine::{ImportFormat, TrainRequest, Trainer};
use concord_store::SuggestionRecord;

/// The code point span of the `nth` occurrence of `needle` in `text`.
fn at(text: &str, needle: &str, nth: usize) -> (u32, u32) {
    let (byte, _) = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} #{nth} in {text:?}"));
    let start = text[..byte].chars().count() as u32;
    (start, start + needle.chars().count() as u32)
}

fn rule(label: &str, kind: PatternKind, pattern: &str, case_insensitive: bool) -> SpanPattern {
    SpanPattern {
        label: label.into(),
        kind,
        pattern: pattern.into(),
        case_insensitive,
    }
}

fn span_project(env: &TestEngine, settings: ProjectSettings) -> ProjectId {
    env.create_project(spec(
        "Entities",
        TaskKind::Spans,
        &["person", "city", "year"],
        settings,
    ))
}

fn import_lines(env: &TestEngine, project: ProjectId, texts: &[String]) {
    let body: String = texts
        .iter()
        .map(|t| format!("{}\n", serde_json::json!({ "text": t })))
        .collect();
    env.import(project, ImportFormat::Jsonl, body.as_bytes())
        .expect("import");
}

/// Every stored suggestion of `project`, by seq (the engine is reopened around the read).
fn stored_suggestions(
    env: TestEngine,
    project: ProjectId,
) -> (TestEngine, Vec<(u64, SuggestionRecord)>) {
    env.with_store(|store| store.suggestions(project).expect("suggestions"))
}

/// (start, end, label) of a suggestion's spans.
fn spans_of(s: &SuggestionRecord) -> Vec<(u32, u32, String)> {
    s.spans
        .iter()
        .map(|x| (x.start, x.end, x.label.clone()))
        .collect()
}

fn assert_no_item_labels(suggestions: &[(u64, SuggestionRecord)]) {
    for (seq, s) in suggestions {
        assert!(
            s.labels.is_empty() && s.probabilities.is_empty(),
            "item {seq} got an item-level suggestion: {s:?}"
        );
    }
}

#[test]
fn patterns_suggest_spans_on_token_boundaries_only() {
    let env = TestEngine::with_models();
    let settings = ProjectSettings {
        patterns: vec![
            rule("city", PatternKind::Term, "new york", true),
            rule("city", PatternKind::Term, "York", false),
            rule("city", PatternKind::Term, "Paris", false),
            rule("year", PatternKind::Regex, r"\d{4}", false),
        ],
        ..ProjectSettings::default()
    };
    let project = span_project(&env, settings.clone());
    let texts: Vec<String> = [
        // Emoji before the match: offsets count code points (the family is 5 of them).
        "👨‍👩‍👧 🙂 New York is big",
        // "York" is no whole token of "Yorkshire"; the longer "NEW YORK" wins over "YORK"
        // (which the case-sensitive "York" does not match anyway).
        "Yorkshire and NEW YORK and York",
        // Case-sensitive term: "paris" is not "Paris".
        "paris or Paris?",
        // A regex match counts only on token boundaries: not inside "12345" or "x2020".
        "👍🏽 12345 born 1999, x2020",
    ]
    .map(String::from)
    .to_vec();
    import_lines(&env, project, &texts);
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    let info = finish(&env.engine, &env.admin, job);
    assert_eq!((info.done, info.total), (4, 4));

    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    let patterns = active_version(&versions);
    assert_eq!(patterns.trainer, "patterns");
    assert_eq!(patterns.name.as_deref(), Some("patterns"));
    let rules = patterns.params["rules"]
        .as_array()
        .expect("the rules, recorded");
    assert_eq!(rules.len(), 4);
    assert!(
        rules[0]["confidence"]
            .as_str()
            .is_some_and(|c| c.starts_with("unvalidated rule")),
        "{rules:?}"
    );

    let (env, suggestions) = stored_suggestions(env, project);
    assert_eq!(suggestions.len(), 4);
    assert_no_item_labels(&suggestions);
    let city = |t: &str, n: &str, i| {
        let (s, e) = at(t, n, i);
        (s, e, "city".to_string())
    };
    let expected = vec![
        vec![city(&texts[0], "New York", 0)],
        vec![city(&texts[1], "NEW YORK", 0), city(&texts[1], "York", 1)],
        vec![city(&texts[2], "Paris", 0)],
        vec![{
            let (s, e) = at(&texts[3], "1999", 0);
            (s, e, "year".to_string())
        }],
    ];
    for ((seq, s), want) in suggestions.iter().zip(&expected) {
        assert_eq!(&spans_of(s), want, "item {seq}");
        let tokens = tokenize(&texts[*seq as usize]);
        for x in &s.spans {
            assert!(on_token_boundaries(&tokens, x.start, x.end), "{x:?}");
            // No confirmed item has checked the rules: their suggestions claim nothing.
            assert_eq!(x.confidence, 0.0, "{x:?}");
        }
    }
    // The family emoji and the space before "🙂" put "New York" at code point 8.
    assert_eq!(expected[0][0].0, 8);

    // Changed patterns pre-annotate again, through a prediction the save queues.
    let changed = without_auto_train(ProjectSettings {
        patterns: vec![rule("city", PatternKind::Regex, r"(?i)paris", false)],
        ..settings
    });
    env.engine
        .update_settings(&env.admin, project, changed)
        .unwrap();
    let job = env.engine.project_jobs(&env.admin, project).unwrap()[0].id;
    finish(&env.engine, &env.admin, job);
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    assert_eq!(active_version(&versions).version, 2);
    assert!(
        active_version(&versions).span_metrics.is_none(),
        "nothing confirmed yet"
    );
    let (env, suggestions) = stored_suggestions(env, project);
    let found: Vec<Vec<(u32, u32, String)>> =
        suggestions.iter().map(|(_, s)| spans_of(s)).collect();
    assert_eq!(
        found,
        [
            vec![],
            vec![],
            vec![city(&texts[2], "paris", 0), city(&texts[2], "Paris", 0)],
            vec![]
        ]
    );

    // Once an item is confirmed, the rule is measured on it: a new patterns version records
    // how it fared (still too few matches to speak for a confidence) and its metrics there.
    env.answer_spans(
        &env.admin,
        project,
        "3",
        vec![Span::new(
            at(&texts[2], "Paris", 0).0,
            at(&texts[2], "Paris", 0).1,
            "city",
        )],
    );
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    finish(&env.engine, &env.admin, job);
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    let measured = active_version(&versions);
    assert_eq!((measured.version, measured.parent), (3, Some(2)));
    let rules = measured.params["rules"].as_array().expect("rules");
    assert_eq!(
        (rules[0]["matched"].as_u64(), rules[0]["correct"].as_u64()),
        (Some(2), Some(1))
    );
    let metrics = measured
        .span_metrics
        .as_ref()
        .expect("metrics on the confirmed item");
    assert_eq!((metrics.items, metrics.support), (1, 1));
    assert!((metrics.micro_precision - 0.5).abs() < 1e-9 && metrics.micro_recall == 1.0);
    // Nothing changed since: the next prediction keeps version 3.
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    finish(&env.engine, &env.admin, job);
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    assert_eq!((versions.len(), active_version(&versions).version), (3, 3));
}

/// A rule's confidence must come from answers people gave on their own: an annotator who took
/// the rule's suggestion unchanged says nothing about whether the rule is right.
#[test]
fn a_rule_is_not_validated_by_answers_that_took_its_suggestion() {
    let env = TestEngine::with_models();
    let settings = ProjectSettings {
        patterns: vec![rule("city", PatternKind::Term, "paris", true)],
        ..ProjectSettings::default()
    };
    let project = span_project(&env, settings);
    let texts: Vec<String> = ["I love Paris", "Paris Hilton again"]
        .map(String::from)
        .to_vec();
    import_lines(&env, project, &texts);
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    finish(&env.engine, &env.admin, job);
    let rules_of = |env: &TestEngine| {
        let versions = env.engine.model_versions(&env.admin, project).unwrap();
        let v = active_version(&versions);
        let rule = &v.params["rules"][0];
        (
            v.version,
            rule["matched"].as_u64(),
            rule["correct"].as_u64(),
        )
    };
    assert_eq!(rules_of(&env), (1, Some(0), Some(0)));
    let answer = |item: &str, spans: Vec<Span>| {
        env.answer_spans(&env.admin, project, item, spans);
    };
    // Taking the suggestion as it is: the rule is not measured there, so nothing changes.
    let paris = at(&texts[0], "Paris", 0);
    answer("1", vec![Span::new(paris.0, paris.1, "city")]);
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    finish(&env.engine, &env.admin, job);
    assert_eq!(rules_of(&env), (1, Some(0), Some(0)));
    // Correcting it (this Paris is a person) is evidence: the rule matched once, wrongly.
    let hilton = at(&texts[1], "Paris Hilton", 0);
    answer("2", vec![Span::new(hilton.0, hilton.1, "person")]);
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    finish(&env.engine, &env.admin, job);
    assert_eq!(rules_of(&env), (2, Some(1), Some(0)));
}

#[test]
fn an_invalid_regex_is_refused_when_settings_are_saved() {
    let env = TestEngine::new();
    let project = span_project(&env, ProjectSettings::default());
    let settings = ProjectSettings {
        patterns: vec![
            rule("year", PatternKind::Regex, r"\d{4}", false),
            rule("city", PatternKind::Regex, "(Paris|London", false),
        ],
        ..ProjectSettings::default()
    };
    let refused = env
        .engine
        .update_settings(&env.admin, project, settings.clone())
        .expect_err("an unclosed group is refused");
    assert_eq!(refused.kind(), ErrorKind::InvalidInput);
    let message = refused.to_string();
    assert!(
        message.contains("pattern 2") && message.contains("(Paris|London"),
        "the message names the pattern: {message}"
    );
    // Nothing was saved.
    let stored = env.engine.project_summary(&env.admin, project).unwrap();
    assert!(stored.spec.settings.patterns.is_empty());
    // A project is not created with one either; a regex too large to compile is refused too.
    let mut created = spec("Other", TaskKind::Spans, &["city", "year"], settings);
    assert_eq!(
        error_kind(env.engine.create_project(&env.admin, created.clone())),
        ErrorKind::InvalidInput
    );
    created.settings.patterns = vec![rule("year", PatternKind::Regex, r"\w{1000}{1000}", false)];
    assert_eq!(
        error_kind(env.engine.create_project(&env.admin, created)),
        ErrorKind::InvalidInput
    );
}

#[test]
fn a_span_project_without_patterns_or_training_gets_no_suggestion() {
    let env = TestEngine::with_models();
    let project = span_project(&env, ProjectSettings::default());
    import_lines(&env, project, &["Alice lives in Paris".to_string()]);
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    finish(&env.engine, &env.admin, job);
    // No zero-shot version: it would suggest one label for the whole item.
    assert!(env
        .engine
        .model_versions(&env.admin, project)
        .unwrap()
        .is_empty());
    let (_env, suggestions) = stored_suggestions(env, project);
    assert!(suggestions.is_empty(), "{suggestions:?}");
}

const PEOPLE: [&str; 6] = ["Alice", "Bob", "Carol", "David", "Emma", "Frank"];
const CITIES: [&str; 6] = ["Paris", "London", "Berlin", "Madrid", "Rome", "Tokyo"];
const TEMPLATES: [&str; 5] = [
    "{p} moved to {c} last year .",
    "yesterday {p} flew from {c} .",
    "we met {p} in {c} on Monday .",
    "{c} welcomed {p} warmly .",
    "the train took {p} to {c} .",
];

/// A sentence of the templates with its person and city spans.
fn sentence(i: usize) -> (String, Vec<Span>) {
    let (p, c) = (PEOPLE[i % 6], CITIES[(i / 6 + i) % 6]);
    let text = TEMPLATES[i % 5].replace("{p}", p).replace("{c}", c);
    let (ps, pe) = at(&text, p, 0);
    let (cs, ce) = at(&text, c, 0);
    let mut spans = vec![Span::new(ps, pe, "person"), Span::new(cs, ce, "city")];
    spans.sort_by_key(|s| s.start);
    (text, spans)
}

#[test]
fn span_versions_train_predict_every_item_and_roll_back() {
    let env = TestEngine::with_models();
    let project = span_project(&env, ProjectSettings::default());
    let labelled: Vec<(String, Vec<Span>)> = (0..30).map(sentence).collect();
    // One long item (5,000 words) nobody labels: read in windows and stitched back.
    let unit = "🙂 Alice met Bob in Paris .";
    let long = vec![unit; 5000 / 6].join(" ");
    let mut texts: Vec<String> = labelled.iter().map(|(t, _)| t.clone()).collect();
    texts.push(long.clone());
    import_lines(&env, project, &texts);
    for (i, (_, spans)) in labelled.iter().enumerate() {
        env.answer_spans(&env.admin, project, &(i + 1).to_string(), spans.clone());
    }

    let info = env.train_with(
        project,
        TrainRequest {
            trainer: Trainer::Head,
            epochs: None,
            auto: None,
        },
    );
    assert_eq!((info.done, info.total), (31, 31), "every item predicted");
    let result = info.result.expect("a result");
    assert_eq!(result["trainer"], "head");

    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    let head = active_version(&versions);
    assert_eq!((head.version, head.trainer.as_str()), (1, "head"));
    assert!(head.metrics.is_none(), "no label-project metrics");
    let metrics = head.span_metrics.as_ref().expect("held-out span metrics");
    let test_size = result["test_size"].as_u64().expect("test size");
    assert!(test_size > 0 && test_size < 30, "{result}");
    assert_eq!(head.train_size + test_size, 30);
    assert_eq!(metrics.items, test_size);
    assert_eq!(
        metrics.support,
        2 * test_size,
        "two entities per held-out item"
    );
    let types: Vec<&str> = metrics.per_type.iter().map(|t| t.label.as_str()).collect();
    assert_eq!(types, ["person", "city"]);
    // Names and cities seen in training, in templates seen in training: strict F1 is high.
    assert!(metrics.micro_f1 >= 0.8, "{metrics:?}");
    assert!(metrics.macro_f1 >= 0.8, "{metrics:?}");

    // Active learning: the one open item comes with why, from its token margins.
    let ann = env.member(project, "ann", Role::Annotator);
    let item = env
        .engine
        .next_item(&ann, project, &[])
        .unwrap()
        .expect("the long item is open");
    assert_eq!(item.id, "31");
    let reason = item.reason.expect("active learning picked it");
    assert!(reason.starts_with("token margin "), "{reason}");

    let (env, suggestions) = stored_suggestions(env, project);
    assert_eq!(suggestions.len(), 31, "a suggestion for every item");
    assert_no_item_labels(&suggestions);
    for (seq, s) in &suggestions {
        assert_eq!(s.version, 1);
        assert!((0.0..=1.0).contains(&s.confidence), "{s:?}");
        let tokens = tokenize(&texts[*seq as usize]);
        for x in &s.spans {
            assert!(
                on_token_boundaries(&tokens, x.start, x.end),
                "item {seq}: {x:?}"
            );
            assert!((0.0..=1.0).contains(&x.confidence), "{x:?}");
        }
    }
    // The long item: entities found through its end, not only in its first window.
    let (_, long_suggestion) = &suggestions[30];
    let length = long.chars().count() as u32;
    assert!(
        long_suggestion.spans.len() >= 1000,
        "{}",
        long_suggestion.spans.len()
    );
    assert!(
        long_suggestion
            .spans
            .iter()
            .any(|s| s.start > length - length / 10 && s.label == "city"),
        "no entity in the last tenth"
    );

    // Fine-tuning (one epoch: this checks the path, not the quality) makes version 2, with
    // its own encoder weights and held-out metrics, and predicts every item with them.
    let info = env.train_with(
        project,
        TrainRequest {
            trainer: Trainer::FineTune,
            epochs: Some(1),
            auto: None,
        },
    );
    assert_eq!((info.done, info.total), (31, 31), "every item predicted");
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    let tuned = active_version(&versions);
    assert_eq!(
        (tuned.version, tuned.trainer.as_str(), tuned.parent),
        (2, "fine_tune", Some(1))
    );
    assert!(
        tuned.params["encoder_file"].is_string(),
        "{:?}",
        tuned.params
    );
    assert!(tuned.span_metrics.is_some());
    let (env, suggestions) = stored_suggestions(env, project);
    assert!(suggestions.iter().all(|(_, s)| s.version == 2));
    assert_no_item_labels(&suggestions);

    // Rolling back to the head brings its suggestions back.
    let job = env.engine.activate_model(&env.admin, project, 1).unwrap();
    finish(&env.engine, &env.admin, job);
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    assert_eq!(active_version(&versions).version, 1);
    let (_env, suggestions) = stored_suggestions(env, project);
    assert_eq!(suggestions.len(), 31);
    assert!(suggestions.iter().all(|(_, s)| s.version == 1));
}

/// Items of the resume test: ten batches of the span prediction.
const RESUME_ITEMS: usize = 320;

#[test]
fn a_span_prediction_interrupted_by_a_restart_resumes_after_its_last_stored_batch() {
    let env = TestEngine::with_models();
    let settings = ProjectSettings {
        patterns: vec![rule("city", PatternKind::Term, "Paris", false)],
        ..ProjectSettings::default()
    };
    let project = span_project(&env, settings);
    let texts: Vec<String> = (0..RESUME_ITEMS)
        .map(|i| format!("Item {i} is about Paris and {}", PEOPLE[i % 6]))
        .collect();
    import_lines(&env, project, &texts);
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    // Stop the worker as soon as a first batch is stored; it finishes the batch it is on.
    let start = std::time::Instant::now();
    loop {
        let info = env.engine.job(&env.admin, job).unwrap();
        assert!(
            !info.state.is_finished(),
            "the job ended before it could be interrupted: {info:?}"
        );
        if info.done > 0 {
            env.engine.shutdown_jobs();
            break;
        }
        assert!(start.elapsed().as_secs() < 300, "no batch stored: {info:?}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // The first item's stored suggestion is replaced by a marker: a job that predicted it
    // again would overwrite it.
    let (env, stored) = env.with_store(|store| {
        let stored: Vec<u64> = store
            .suggestions(project)
            .unwrap()
            .into_iter()
            .map(|(seq, _)| seq)
            .collect();
        let mut marker = store
            .suggestion(project, 0)
            .unwrap()
            .expect("item 1 predicted");
        marker.confidence = 0.123;
        store
            .put_predictions(project, &[0; 8], &[], &[(0, marker)], None)
            .unwrap();
        stored
    });
    let cursor = stored.len() as u64;
    assert!(
        cursor > 0 && cursor < RESUME_ITEMS as u64,
        "the job was not interrupted mid-way ({cursor} of {RESUME_ITEMS} predicted)"
    );
    assert_eq!(stored, (0..cursor).collect::<Vec<u64>>(), "whole batches");

    // The reopened engine resumes the same job with the same patterns version.
    let info = finish(&env.engine, &env.admin, job);
    assert_eq!(
        (info.done, info.total),
        (RESUME_ITEMS as u64, RESUME_ITEMS as u64)
    );
    assert_eq!(
        env.engine
            .model_versions(&env.admin, project)
            .unwrap()
            .len(),
        1,
        "no second patterns version"
    );
    let (_env, suggestions) = stored_suggestions(env, project);
    assert_eq!(suggestions.len(), RESUME_ITEMS);
    assert_eq!(
        suggestions[0].1.confidence, 0.123,
        "item 1 was not predicted again"
    );
    for (seq, s) in &suggestions {
        let (start, end) = at(&texts[*seq as usize], "Paris", 0);
        assert_eq!(
            spans_of(s),
            [(start, end, "city".to_string())],
            "item {seq}"
        );
    }
}

#[test]
fn suggestions_imported_with_a_version_stand_and_that_version_is_not_activated_again() {
    let env = TestEngine::with_models();
    let settings = ProjectSettings {
        patterns: vec![rule("city", PatternKind::Term, "Paris", false)],
        ..ProjectSettings::default()
    };
    let project = span_project(&env, settings);
    let texts = ["Alice lives in Paris".to_string(), "Bob too".to_string()];
    import_lines(&env, project, &texts);
    // What an import of another tool's predictions leaves: a version without a model, made
    // active, and its suggestions.
    let (alice_start, alice_end) = at(&texts[0], "Alice", 0);
    let imported = SuggestionRecord {
        labels: Vec::new(),
        confidence: 0.9,
        probabilities: Vec::new(),
        version: 1,
        created_ms: 1,
        spans: vec![concord_domain::SuggestedSpan {
            start: alice_start,
            end: alice_end,
            label: "person".into(),
            confidence: 0.9,
        }],
        relations: Vec::new(),
    };
    let (env, version) =
        env.with_external_suggestion(project, "spacy", &["person", "city", "year"], |_| {
            imported.clone()
        });
    assert_eq!(version, 1);
    let job = env.engine.enqueue_predict(&env.admin, project).unwrap();
    finish(&env.engine, &env.admin, job);
    let versions = env.engine.model_versions(&env.admin, project).unwrap();
    assert_eq!(
        versions.len(),
        1,
        "no patterns version over the imported one"
    );
    assert_eq!(
        error_kind(env.engine.activate_model(&env.admin, project, 1)),
        ErrorKind::InvalidInput
    );
    let (_env, suggestions) = stored_suggestions(env, project);
    assert_eq!(suggestions, [(0, imported)]);
}
