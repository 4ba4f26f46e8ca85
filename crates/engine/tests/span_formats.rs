//! Span projects in and out of every format, against real files in a temp dir: CoNLL, Prodigy
//! JSONL, Label Studio JSON and Concord's JSONL. Export → import into a new project keeps the
//! items, tokens, gold and answers; offsets stay exact through emoji (UTF-16 surrogate pairs in
//! Label Studio), CJK and combining marks; bad files are refused whole with their line.

use crate::common;

use std::io::Read;

use common::{
    contents, export, export_jsonl, import_as, import_error, item_count, reader_of,
    span_submission, TestEngine,
};
use concord_domain::{ErrorKind, ProjectId, ProjectSettings, Role, TaskKind};
use concord_engine::{
    ExportFormat, ImportFormat, ImportOptions, ImportReport, ImportedLabels, Submission,
    EXTERNAL_TRAINER,
};
use serde_json::{json, Value};

const WNUT_TYPES: &[&str] = &[
    "company",
    "facility",
    "geo-loc",
    "movie",
    "musicartist",
    "other",
    "person",
    "product",
    "sportsteam",
    "tvshow",
];

/// The first 20 tweets of WNUT-16's dev set, as distributed (tab-separated IOB2).
const WNUT_HEAD: &str = include_str!("data/wnut16_dev_head.conll");

fn span_project(env: &TestEngine, name: &str, labels: &[&str], overlapping: bool) -> ProjectId {
    env.create_project(common::spec(
        name,
        TaskKind::Spans,
        labels,
        ProjectSettings {
            overlapping_spans: overlapping,
            ..ProjectSettings::default()
        },
    ))
}

/// Writes `body` to a file in the test's temp dir and imports it from there, as the CLI does.
fn import_file(
    env: &TestEngine,
    project: ProjectId,
    format: ImportFormat,
    name: &str,
    body: &[u8],
) -> Result<ImportReport, concord_engine::EngineError> {
    let path = env.dir.path().join(name);
    std::fs::write(&path, body).expect("write the file");
    let reader = std::io::BufReader::new(std::fs::File::open(&path).expect("open the file"));
    let options = ImportOptions {
        format,
        ..ImportOptions::default()
    };
    env.engine
        .import(&env.admin, project, reader, &options, &mut |_| {})
}

fn answer_spans(
    env: &TestEngine,
    who: &concord_engine::Principal,
    project: ProjectId,
    item: &str,
    spans: &[(u32, u32, &str)],
) {
    let submission = Submission {
        time_spent_ms: 1_234,
        ..span_submission(item, common::spans(spans), Vec::new())
    };
    env.engine.submit(who, project, submission).expect("submit");
}

#[test]
fn wnut_tweets_round_trip_through_conll_byte_for_byte() {
    let env = TestEngine::new();
    let first = span_project(&env, "WNUT", WNUT_TYPES, false);
    let report = import_file(
        &env,
        first,
        ImportFormat::Conll,
        "wnut.conll",
        WNUT_HEAD.as_bytes(),
    )
    .expect("import the WNUT slice");
    assert_eq!(report.imported, 20);
    let items = contents(&env, first);
    // The first tweet: its text is its tokens joined by spaces, "Empire State Building" a
    // facility and "ESB" another, at code point offsets.
    let tweet = &items[0];
    assert!(
        tweet["text"]
            .as_str()
            .unwrap()
            .starts_with("@paulwalk It 's the view from where I 'm living"),
        "{tweet}"
    );
    let text = tweet["text"].as_str().unwrap();
    let gold = tweet["gold"].as_array().unwrap();
    // Offsets are code points: slice through the offset map, never as bytes.
    let map = concord_domain::tokens::OffsetMap::new(text);
    let named: Vec<(&str, &str)> = gold
        .iter()
        .map(|s| {
            let (start, end) = (
                s["start"].as_u64().unwrap() as u32,
                s["end"].as_u64().unwrap() as u32,
            );
            (
                map.slice(text, start, end).unwrap(),
                s["label"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [("Empire State Building", "facility"), ("ESB", "facility")]
    );
    let entities: usize = items
        .iter()
        .map(|i| i["gold"].as_array().unwrap().len())
        .sum();
    let begins = WNUT_HEAD.lines().filter(|l| l.contains("\tB-")).count();
    assert_eq!(
        (entities, begins),
        (10, 10),
        "one entity per B- tag in the slice"
    );

    let exported = export(&env.engine, &env.admin, first, ExportFormat::Conll);
    assert_eq!(
        exported, WNUT_HEAD,
        "the CoNLL export is the file imported, byte for byte"
    );

    let second = span_project(&env, "WNUT again", WNUT_TYPES, false);
    import_file(
        &env,
        second,
        ImportFormat::Conll,
        "again.conll",
        exported.as_bytes(),
    )
    .unwrap();
    assert_eq!(contents(&env, second), items);
}

/// A span project with emoji (a ZWJ family: 5 code points, 8 UTF-16 units), CJK, a combining
/// accent, metadata, file-given tokens, gold and two annotators' answers.
struct Rich {
    env: TestEngine,
    project: ProjectId,
}

const RICH_LABELS: &[&str] = &["PER", "LOC", "ORG"];

fn rich() -> Rich {
    let env = TestEngine::new();
    let project = span_project(&env, "Rich", RICH_LABELS, false);
    let [ann, bob] = env.annotators(project, ["ann", "bob"]);
    // "👨‍👩‍👧 José\u{301} met 李雷 in 東京" — code points: family 0..5, José́ 6..11, met 12..15,
    // 李雷 16..18, in 19..21, 東京 22..24.
    let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
    let text1 = format!("{family} Jose\u{301} met 李雷 in 東京");
    // Prodigy-style tokens that keep 李雷 and 東京 whole (Concord's tokenizer splits ideographs).
    let tokens1 = json!([
        {"text": family, "start": 0, "end": 5, "id": 0},
        {"text": "Jose\u{301}", "start": 6, "end": 11, "id": 1},
        {"text": "met", "start": 12, "end": 15, "id": 2},
        {"text": "李雷", "start": 16, "end": 18, "id": 3},
        {"text": "in", "start": 19, "end": 21, "id": 4},
        {"text": "東京", "start": 22, "end": 24, "id": 5},
    ]);
    let lines = [
        json!({
            "id": "u1",
            "text": text1,
            "tokens": tokens1,
            "spans": [
                {"start": 6, "end": 11, "label": "PER", "token_start": 1, "token_end": 1},
                {"start": 16, "end": 18, "label": "PER", "token_start": 3, "token_end": 3},
                {"start": 22, "end": 24, "label": "LOC", "token_start": 5, "token_end": 5},
            ],
            "answer": "accept",
            "meta": {"source": "tweet", "lang": "mixed"},
        }),
        // No tokens given: Concord's tokenizer. A gold of no entities.
        json!({"id": "u2", "text": "🇫🇷 nothing here 🙂", "gold": []}),
        // No gold.
        json!({"id": "u3", "text": "Acme Corp hired Zoë in Zürich 👍🏽", "meta": {"n": 3}}),
    ];
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    import_as(
        &env,
        project,
        ImportFormat::Jsonl,
        ImportedLabels::Gold,
        body.as_bytes(),
    )
    .expect("import the rich file");
    answer_spans(
        &env,
        &ann,
        project,
        "u3",
        &[(0, 9, "ORG"), (16, 19, "PER"), (23, 29, "LOC")],
    );
    answer_spans(&env, &bob, project, "u3", &[(0, 4, "ORG"), (23, 29, "LOC")]);
    answer_spans(&env, &ann, project, "u2", &[]);
    answer_spans(&env, &bob, project, "u1", &[(6, 11, "PER")]);
    Rich { env, project }
}

#[test]
fn every_format_round_trips_items_tokens_gold_and_answers() {
    let Rich { env, project } = rich();
    let original = contents(&env, project);
    assert_eq!(original.len(), 3);
    // The file's tokens were kept: 李雷 is one token.
    assert_eq!(original[0]["tokens"][3]["text"], "李雷");
    assert_eq!(original[2]["annotations"].as_array().unwrap().len(), 2);
    for format in [
        ExportFormat::Jsonl,
        ExportFormat::Prodigy,
        ExportFormat::LabelStudio,
    ] {
        let file = export(&env.engine, &env.admin, project, format);
        let copy = span_project(
            &env,
            &format!("Copy {}", format.as_str()),
            RICH_LABELS,
            false,
        );
        let report = import_file(
            &env,
            copy,
            reader_of(format),
            &format!("export.{}", format.extension()),
            file.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}\n{file}", format.as_str()));
        assert_eq!(report.imported, 3, "{}", format.as_str());
        assert_eq!(
            contents(&env, copy),
            original,
            "{} export → import changed the project",
            format.as_str()
        );
        // And the copy exports the same bytes again.
        assert_eq!(
            export(&env.engine, &env.admin, copy, format),
            file,
            "{}",
            format.as_str()
        );
    }
}

#[test]
fn conll_round_trips_emoji_cjk_and_combining_marks() {
    let env = TestEngine::new();
    let project = span_project(&env, "Unicode", RICH_LABELS, false);
    let file = "👨\u{200D}👩\u{200D}👧\tO\nJose\u{301}\tB-PER\nGarci\u{301}a\tI-PER\nvisited\tO\n東京\tB-LOC\n🇫🇷\tO\n\n李\tB-PER\n雷\tB-PER\n!\tO\n\n";
    import_as(
        &env,
        project,
        ImportFormat::Conll,
        ImportedLabels::Gold,
        file.as_bytes(),
    )
    .unwrap();
    let items = contents(&env, project);
    let text = items[0]["text"].as_str().unwrap();
    assert_eq!(
        text,
        "👨\u{200D}👩\u{200D}👧 Jose\u{301} Garci\u{301}a visited 東京 🇫🇷"
    );
    // Code points: the family is 5, "José" 5 (e + combining acute), "García" 7, 東京 2.
    assert_eq!(
        items[0]["gold"],
        json!([{"start": 6, "end": 19, "label": "PER"}, {"start": 28, "end": 30, "label": "LOC"}])
    );
    // Two adjacent entities of one type stay two.
    assert_eq!(
        items[1]["gold"],
        json!([{"start": 0, "end": 1, "label": "PER"}, {"start": 2, "end": 3, "label": "PER"}])
    );
    assert_eq!(
        export(&env.engine, &env.admin, project, ExportFormat::Conll),
        file
    );
}

#[test]
fn label_studio_offsets_are_utf16_and_convert_exactly() {
    let Rich { env, project } = rich();
    let file = export(&env.engine, &env.admin, project, ExportFormat::LabelStudio);
    let tasks: Value = serde_json::from_str(&file).expect("a JSON array");
    let gold = &tasks[0]["annotations"][0];
    assert_eq!(gold["ground_truth"], true);
    let regions: Vec<(u64, u64, &str)> = gold["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["value"]["start"].as_u64().unwrap(),
                r["value"]["end"].as_u64().unwrap(),
                r["value"]["text"].as_str().unwrap(),
            )
        })
        .collect();
    // The family emoji is 5 code points but 8 UTF-16 units (three surrogate pairs, two
    // joiners): José́ is at 6..11 in code points, 9..14 in UTF-16.
    assert_eq!(
        regions,
        [(9, 14, "Jose\u{301}"), (19, 21, "李雷"), (25, 27, "東京")]
    );

    // A foreign task in UTF-16 offsets: "🙂 Paris" has Paris at 3..8.
    let tasks = json!([{
        "id": 41,
        "data": {"text": "🙂 Paris"},
        "annotations": [{"result": [
            {"type": "labels", "from_name": "label", "to_name": "text",
             "value": {"start": 3, "end": 8, "text": "Paris", "labels": ["LOC"]}}
        ]}]
    }]);
    let other = span_project(&env, "Foreign", RICH_LABELS, false);
    import_as(
        &env,
        other,
        ImportFormat::LabelStudio,
        ImportedLabels::Gold,
        tasks.to_string().as_bytes(),
    )
    .unwrap();
    let items = contents(&env, other);
    assert_eq!(items[0]["id"], "41", "the task id is the item id");
    assert_eq!(
        items[0]["gold"],
        json!([{"start": 2, "end": 7, "label": "LOC"}])
    );

    // An offset inside a surrogate pair, and a region whose text is not the text there, are
    // refused with the task's index; nothing is stored.
    let bad = |start: u64, end: u64, text: &str| {
        let tasks = json!([
            {"data": {"text": "fine"}},
            {"data": {"text": "🙂 Paris"},
             "annotations": [{"result": [{"type": "labels",
                "value": {"start": start, "end": end, "text": text, "labels": ["LOC"]}}]}]}
        ]);
        let target = span_project(
            &env,
            &format!("Bad {start} {end} {text}"),
            RICH_LABELS,
            false,
        );
        let error = import_error(import_as(
            &env,
            target,
            ImportFormat::LabelStudio,
            ImportedLabels::Gold,
            serde_json::to_string_pretty(&tasks).unwrap().as_bytes(),
        ));
        assert_eq!(item_count(&env, target), 0);
        error
    };
    let (line, problem) = bad(1, 8, "Paris");
    assert!(problem.starts_with("task 1:"), "{problem}");
    assert!(problem.contains("not a character boundary"), "{problem}");
    assert_eq!(line, 7, "the line task 1 starts on");
    // Code point offsets given where UTF-16 is expected: the text does not match.
    let (_, problem) = bad(2, 7, "Paris");
    assert!(
        problem.starts_with("task 1:") && problem.contains("value.text"),
        "{problem}"
    );
}

#[test]
fn prodigy_tokens_and_spans_are_checked_against_the_text() {
    let env = TestEngine::new();
    let check = |line: Value, expected: &str| {
        let project = span_project(&env, &format!("P {expected}"), RICH_LABELS, false);
        let body = format!("{}\n{line}\n", json!({"text": "fine"}));
        let (at, problem) = import_error(import_as(
            &env,
            project,
            ImportFormat::Jsonl,
            ImportedLabels::Gold,
            body.as_bytes(),
        ));
        assert_eq!(at, 2, "{problem}");
        assert!(problem.contains(expected), "{problem}");
        assert_eq!(item_count(&env, project), 0);
    };
    // A token whose text is not the text at its offsets (UTF-16 offsets given as code points).
    check(
        json!({"text": "🙂 Paris", "tokens": [
            {"text": "🙂", "start": 0, "end": 1, "id": 0},
            {"text": "Paris", "start": 3, "end": 8, "id": 1}]}),
        "token 1 (3..8)",
    );
    // A span whose token_end is not the token it ends at.
    check(
        json!({"text": "New York", "tokens": [
            {"text": "New", "start": 0, "end": 3, "id": 0},
            {"text": "York", "start": 4, "end": 8, "id": 1}],
            "spans": [{"start": 0, "end": 8, "label": "LOC", "token_start": 0, "token_end": 0}]}),
        "token_end 0",
    );
    // A span past the text's end.
    check(
        json!({"text": "🙂 Paris", "spans": [{"start": 2, "end": 8, "label": "LOC"}]}),
        "not inside the text",
    );
    // A span's text that is not the text there.
    check(
        json!({"text": "🙂 Paris", "spans": [{"start": 3, "end": 8, "label": "LOC", "text": "Paris"}]}),
        "offsets count Unicode code points",
    );
    // A rejected Prodigy example is imported without its spans as labels.
    let project = span_project(&env, "Rejected", RICH_LABELS, false);
    let line = json!({"text": "Paris", "spans": [{"start": 0, "end": 5, "label": "LOC"}], "answer": "reject"});
    import_as(
        &env,
        project,
        ImportFormat::Jsonl,
        ImportedLabels::Gold,
        format!("{line}\n").as_bytes(),
    )
    .unwrap();
    let items = contents(&env, project);
    assert_eq!(items[0]["gold"], Value::Null);
    assert_eq!(items[0]["meta"]["answer"], "reject");
}

#[test]
fn a_broken_conll_line_is_refused_with_its_number_and_nothing_is_stored() {
    let env = TestEngine::new();
    let project = span_project(&env, "Broken", WNUT_TYPES, false);
    // The WNUT slice with line 30's tag removed.
    let mut lines: Vec<String> = WNUT_HEAD.lines().map(String::from).collect();
    let token = lines[29].split('\t').next().unwrap().to_string();
    lines[29] = token;
    let file = lines.join("\n") + "\n";
    let (line, problem) = import_error(import_file(
        &env,
        project,
        ImportFormat::Conll,
        "broken.conll",
        file.as_bytes(),
    ));
    assert_eq!(line, 30);
    assert!(
        problem.contains("expected a token and its tag"),
        "{problem}"
    );
    assert_eq!(item_count(&env, project), 0);
    let (_env, rows) = env.with_store(|store| store.item_rows(project).unwrap());
    assert_eq!(rows, 0, "the staged items were rolled back");
}

#[test]
fn an_unknown_entity_type_is_refused_naming_it() {
    let env = TestEngine::new();
    // The project lacks "tvshow", which tweet 11 uses.
    let types: Vec<&str> = WNUT_TYPES
        .iter()
        .copied()
        .filter(|t| *t != "tvshow")
        .collect();
    let project = span_project(&env, "No TV", &types, false);
    let expected_line = WNUT_HEAD
        .lines()
        .position(|l| l.ends_with("\tB-tvshow"))
        .unwrap() as u64
        + 1;
    let (line, problem) = import_error(import_as(
        &env,
        project,
        ImportFormat::Conll,
        ImportedLabels::Gold,
        WNUT_HEAD.as_bytes(),
    ));
    assert_eq!(line, expected_line);
    assert!(problem.contains("\"tvshow\""), "{problem}");
    assert_eq!(item_count(&env, project), 0);
}

#[test]
fn overlapping_spans_are_refused_by_a_flat_project_with_their_line() {
    let env = TestEngine::new();
    let nested = json!({"text": "New York City", "gold": [
        {"start": 0, "end": 13, "label": "LOC"},
        {"start": 0, "end": 8, "label": "LOC"}]});
    let body = format!("{}\n{nested}\n", json!({"text": "fine"}));
    let flat = span_project(&env, "Flat", RICH_LABELS, false);
    let (line, problem) = import_error(import_as(
        &env,
        flat,
        ImportFormat::Jsonl,
        ImportedLabels::Gold,
        body.as_bytes(),
    ));
    assert_eq!(line, 2);
    assert!(problem.contains("overlap"), "{problem}");
    assert_eq!(item_count(&env, flat), 0);
    // The same in Label Studio's shape, numbered by task.
    let tasks = json!([{"data": {"text": "New York City"}, "annotations": [{"result": [
        {"type": "labels", "value": {"start": 0, "end": 13, "labels": ["LOC"]}},
        {"type": "labels", "value": {"start": 0, "end": 8, "labels": ["LOC"]}}]}]}]);
    let (_, problem) = import_error(import_as(
        &env,
        flat,
        ImportFormat::LabelStudio,
        ImportedLabels::Gold,
        tasks.to_string().as_bytes(),
    ));
    assert!(
        problem.contains("task 0") && problem.contains("overlap"),
        "{problem}"
    );
    // A project that allows overlapping spans takes both.
    let nesting = span_project(&env, "Nested", RICH_LABELS, true);
    import_as(
        &env,
        nesting,
        ImportFormat::Jsonl,
        ImportedLabels::Gold,
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(
        contents(&env, nesting)[1]["gold"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn labels_import_as_an_annotators_answers() {
    let env = TestEngine::new();
    let project = span_project(&env, "Other tool", WNUT_TYPES, false);
    let missing = ImportedLabels::Annotator {
        name: "tagger".into(),
    };
    let e = import_as(
        &env,
        project,
        ImportFormat::Conll,
        missing.clone(),
        WNUT_HEAD.as_bytes(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("\"tagger\" has no account"), "{e}");
    assert_eq!(item_count(&env, project), 0);

    env.member(project, "tagger", Role::Annotator);
    let report = import_as(
        &env,
        project,
        ImportFormat::Conll,
        missing,
        WNUT_HEAD.as_bytes(),
    )
    .unwrap();
    assert_eq!(report.annotations, 20);
    let (_env, (items, tagger)) = env.with_store(|store| {
        let mut items = Vec::new();
        store
            .for_each_item::<concord_store::StoreError>(project, |_, item, anns| {
                items.push((item, anns));
                Ok(())
            })
            .unwrap();
        let tagger = store
            .user_by_name("tagger")
            .unwrap()
            .expect("tagger's account")
            .0;
        (items, tagger)
    });
    assert_eq!(items.len(), 20);
    for (item, anns) in &items {
        assert_eq!(item.gold, None, "no gold: the tags are tagger's answers");
        assert_eq!(anns.len(), 1);
        assert_eq!(anns[0].0, tagger);
        assert_eq!(anns[0].1.source, concord_domain::AnnotationSource::Import);
    }
    let spans: usize = items.iter().map(|(_, a)| a[0].1.value.spans.len()).sum();
    assert_eq!(spans, 10, "one per B- tag");
}

#[test]
fn labels_import_as_an_external_models_suggestions() {
    let env = TestEngine::new();
    let project = span_project(&env, "Pre-annotated", RICH_LABELS, false);
    // Prodigy lines with a score per span on one line, none on the other.
    let body = [
        json!({"text": "🙂 Paris and Berlin", "spans": [
            {"start": 2, "end": 7, "label": "LOC", "score": 0.9},
            {"start": 12, "end": 18, "label": "LOC", "score": 0.55}]}),
        json!({"text": "Ada Lovelace", "spans": [{"start": 0, "end": 12, "label": "PER"}]}),
        json!({"text": "no labels here"}),
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect::<String>();
    let as_model = ImportedLabels::Model {
        version_name: "spacy-en-core-web-sm".into(),
    };
    let report = import_as(
        &env,
        project,
        ImportFormat::Jsonl,
        as_model,
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(report.suggestions, 2);
    assert_eq!(report.suggestions_without_score, 1);
    assert_eq!(report.model_version, Some(1));
    let items = export_jsonl(&env.engine, &env.admin, project);
    assert_eq!(items[0]["gold"], Value::Null, "suggestions are not gold");
    assert_eq!(
        items[0]["suggestion"],
        json!({"spans": [
            {"start": 2, "end": 7, "label": "LOC", "confidence": 0.9},
            {"start": 12, "end": 18, "label": "LOC", "confidence": 0.55}],
            "confidence": 0.55, "model_version": 1})
    );
    assert_eq!(items[1]["suggestion"]["spans"][0]["confidence"], 0.0);
    assert_eq!(items[2]["suggestion"], Value::Null);

    // Label Studio predictions name their model; a second import's version is not made
    // active over the first.
    let tasks = json!([{"data": {"text": "Grace Hopper"},
        "predictions": [{"model_version": "ls-ner-3", "score": 0.75, "result": [
            {"type": "labels", "value": {"start": 0, "end": 12, "text": "Grace Hopper", "labels": ["PER"]}}]}]}]);
    let report = import_as(
        &env,
        project,
        ImportFormat::LabelStudio,
        ImportedLabels::Gold,
        tasks.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!((report.suggestions, report.model_version), (1, Some(2)));
    let items = export_jsonl(&env.engine, &env.admin, project);
    assert_eq!(items[3]["suggestion"]["model_version"], 2);
    assert_eq!(items[3]["suggestion"]["spans"][0]["confidence"], 0.75);

    let (_env, (versions, active)) = env.with_store(|store| {
        let versions = store.model_versions(project).unwrap();
        let active = store.project(project).unwrap().unwrap().active_model;
        (versions, active)
    });
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].1.trainer, EXTERNAL_TRAINER);
    assert_eq!(versions[0].1.name.as_deref(), Some("spacy-en-core-web-sm"));
    assert_eq!(versions[1].1.name.as_deref(), Some("ls-ner-3"));
    assert_eq!(
        active,
        Some(1),
        "made active only where the project had none"
    );
}

#[test]
fn a_failed_import_leaves_no_model_version_or_suggestion() {
    let env = TestEngine::new();
    let project = span_project(&env, "All or nothing", RICH_LABELS, false);
    let body = format!(
        "{}\n{}\n",
        json!({"text": "Paris", "spans": [{"start": 0, "end": 5, "label": "LOC"}]}),
        json!({"text": "Rome", "spans": [{"start": 0, "end": 4, "label": "CITY"}]}),
    );
    let as_model = ImportedLabels::Model {
        version_name: "m".into(),
    };
    let (line, problem) = import_error(import_as(
        &env,
        project,
        ImportFormat::Jsonl,
        as_model,
        body.as_bytes(),
    ));
    assert_eq!(line, 2);
    assert!(problem.contains("\"CITY\""), "{problem}");
    let (_env, (versions, suggestions)) = env.with_store(|store| {
        (
            store.model_versions(project).unwrap().len(),
            store.suggestions(project).unwrap().len(),
        )
    });
    assert_eq!((versions, suggestions), (0, 0));
}

#[test]
fn classification_round_trips_through_label_studio_and_imports_choices_as_a_model() {
    let env = TestEngine::new();
    let project = env.create_classification_project("Mail", &["spam", "ham"]);
    let ann = env.member(project, "ann", Role::Annotator);
    env.import(
        project,
        ImportFormat::Jsonl,
        "{\"id\":\"a\",\"text\":\"win money 💰\",\"gold\":\"spam\"}\n{\"id\":\"b\",\"text\":\"lunch?\",\"meta\":{\"k\":1}}\n"
            .as_bytes(),
    )
    .unwrap();
    env.answer(&ann, project, "b", &["ham"]);
    let original = contents(&env, project);
    let file = export(&env.engine, &env.admin, project, ExportFormat::LabelStudio);
    let copy = env.create_classification_project("Mail copy", &["spam", "ham"]);
    import_file(
        &env,
        copy,
        ImportFormat::LabelStudio,
        "mail.json",
        file.as_bytes(),
    )
    .unwrap();
    assert_eq!(contents(&env, copy), original);

    let tasks = json!([{"data": {"text": "cheap pills"}, "annotations": [{"result": [
        {"type": "choices", "value": {"choices": ["spam"]}}]}]}]);
    let third = env.create_classification_project("Mail model", &["spam", "ham"]);
    let report = import_as(
        &env,
        third,
        ImportFormat::LabelStudio,
        ImportedLabels::Model {
            version_name: "old-filter".into(),
        },
        tasks.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(
        (report.suggestions, report.suggestions_without_score),
        (1, 1)
    );
    let items = export_jsonl(&env.engine, &env.admin, third);
    assert_eq!(
        items[0]["suggestion"],
        json!({"labels": ["spam"], "confidence": 0.0, "model_version": 1})
    );
    // CoNLL is for span projects.
    let e = import_as(
        &env,
        third,
        ImportFormat::Conll,
        ImportedLabels::Gold,
        b"a\tO\n",
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

/// A reader that counts what it hands out.
struct Counted<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<usize>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n);
        Ok(n)
    }
}

#[test]
fn a_label_studio_task_too_long_is_refused_without_reading_the_rest() {
    let env = TestEngine::new();
    let project = span_project(&env, "Huge", RICH_LABELS, false);
    // Task 1's text never ends: 64 MB of it.
    let head = b"[\n{\"data\": {\"text\": \"fine\"}},\n{\"data\": {\"text\": \"".as_slice();
    let rest = std::io::repeat(b'x').take(64 * 1024 * 1024);
    let read = std::rc::Rc::new(std::cell::Cell::new(0));
    let input = std::io::BufReader::new(Counted {
        inner: head.chain(rest),
        read: read.clone(),
    });
    let options = ImportOptions {
        format: ImportFormat::LabelStudio,
        ..ImportOptions::default()
    };
    let (line, problem) =
        import_error(
            env.engine
                .import(&env.admin, project, input, &options, &mut |_| {}),
        );
    assert_eq!(line, 3);
    assert!(problem.starts_with("task 1 is longer than"), "{problem}");
    assert!(
        read.get() < 6 * 1024 * 1024,
        "read {} bytes of a 64 MB input",
        read.get()
    );
    assert_eq!(item_count(&env, project), 0);
}

#[test]
fn conll_export_widens_character_spans_and_leaves_out_items_without_gold() {
    let env = TestEngine::new();
    let project = span_project(&env, "Characters", RICH_LABELS, false);
    let body = [
        // A character-mode span inside a token: "Paris" of "Parisians".
        json!({"id": "a", "text": "Parisians love 🥐", "gold": [{"start": 0, "end": 5, "label": "LOC"}]}),
        json!({"id": "b", "text": "not settled yet"}),
        json!({"id": "c", "text": "Zoë", "gold": []}),
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect::<String>();
    import_as(
        &env,
        project,
        ImportFormat::Jsonl,
        ImportedLabels::Gold,
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(
        export(&env.engine, &env.admin, project, ExportFormat::Conll),
        "Parisians\tB-LOC\nlove\tO\n🥐\tO\n\nZoë\tO\n\n"
    );
    // Prodigy spans carry token indices only where they sit on token boundaries.
    let prodigy = export(&env.engine, &env.admin, project, ExportFormat::Prodigy);
    let first: Value = serde_json::from_str(prodigy.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["spans"],
        json!([{"start": 0, "end": 5, "label": "LOC"}])
    );
    assert_eq!(first["answer"], "accept");
    let second: Value = serde_json::from_str(prodigy.lines().nth(1).unwrap()).unwrap();
    assert_eq!(second.get("answer"), None, "no gold, no answer");
}

#[test]
fn classification_labels_import_as_an_annotator_or_a_model_from_jsonl_and_csv() {
    let env = TestEngine::new();
    let project = env.create_classification_project("Mail", &["spam", "ham"]);
    env.member(project, "old-tool", Role::Annotator);
    let as_annotator = ImportedLabels::Annotator {
        name: "old-tool".into(),
    };
    import_as(
        &env,
        project,
        ImportFormat::Csv,
        as_annotator,
        b"text,gold\nbuy now,spam\nsee you,ham\n",
    )
    .unwrap();
    let items = export_jsonl(&env.engine, &env.admin, project);
    assert_eq!(items[0]["annotations"][0]["annotator"], "old-tool");
    assert_eq!(items[0]["annotations"][0]["labels"], json!(["spam"]));
    let as_model = ImportedLabels::Model {
        version_name: "filter-2019".into(),
    };
    let report = import_as(
        &env,
        project,
        ImportFormat::Jsonl,
        as_model,
        b"{\"text\":\"cheap\",\"gold\":\"spam\",\"score\":0.8}\n{\"text\":\"hi\",\"gold\":\"ham\",\"score\":2}\n",
    );
    let (line, problem) = import_error(report);
    assert_eq!(line, 2);
    assert!(problem.contains("between 0 and 1"), "{problem}");
    let as_model = ImportedLabels::Model {
        version_name: "filter-2019".into(),
    };
    let report = import_as(
        &env,
        project,
        ImportFormat::Jsonl,
        as_model,
        b"{\"text\":\"cheap\",\"gold\":\"spam\",\"score\":0.8}\n",
    )
    .unwrap();
    assert_eq!(
        (report.suggestions, report.suggestions_without_score),
        (1, 0)
    );
    let items = export_jsonl(&env.engine, &env.admin, project);
    assert_eq!(items[2]["gold"], Value::Null);
    assert_eq!(items[2]["suggestion"]["labels"], json!(["spam"]));
    assert!((items[2]["suggestion"]["confidence"].as_f64().unwrap() - 0.8).abs() < 1e-6);
    assert_eq!(items[2]["meta"], json!({}), "the score is not metadata");
}
