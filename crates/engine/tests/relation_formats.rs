//! Relations projects in and out of every format that carries relations — Concord's JSONL,
//! Prodigy JSONL (`rel.manual`), Label Studio JSON and doccano JSONL — against a real redb:
//! export → import into a new project keeps the items, gold and every annotator's answer with
//! their relations (and Label Studio the suggestions' relation confidences), and the copy
//! exports the same bytes; a file's labels mean gold, an annotator's answers or a model's
//! suggestions as `ImportedLabels` says; every bad relation is refused whole, with its line
//! and the domain's message.

use crate::common;

use common::{
    contents, export, export_jsonl, import_as, import_error, item_count, reader_of, relation_label,
    span_submission, TestEngine,
};
use concord_domain::{ProjectId, ProjectSettings, RelationLabel, Role, TaskKind};
use concord_engine::{ExportFormat, ImportFormat, ImportedLabels, Principal, Submission};
use serde_json::{json, Value};

const ENTITY_TYPES: &[&str] = &["PER", "ORG", "LOC"];

/// A small annotated set: seven sentences, gold spans and relations of three restricted
/// types in Concord's JSONL shape (emoji, a flag and CJK among them), one item without gold.
const FIXTURE: &str = include_str!("data/relations_small.jsonl");

/// works_for: PER → ORG; located_in: ORG or LOC → LOC; founded_by: ORG → PER; knows: any.
fn relation_types() -> Vec<RelationLabel> {
    vec![
        relation_label("works_for", &["PER"], &["ORG"]),
        relation_label("located_in", &["ORG", "LOC"], &["LOC"]),
        relation_label("founded_by", &["ORG"], &["PER"]),
        RelationLabel::named("knows"),
    ]
}

fn relations_project(env: &TestEngine, name: &str) -> ProjectId {
    let mut spec = common::spec(
        name,
        TaskKind::Relations,
        ENTITY_TYPES,
        ProjectSettings::default(),
    );
    spec.relation_labels = relation_types();
    env.create_project(spec)
}

/// A JSONL export with every line's `suggestion` null, written as the export writes it.
fn without_suggestions(jsonl: &str) -> String {
    jsonl
        .lines()
        .map(|line| {
            let mut value: Value = serde_json::from_str(line).expect("a JSON line");
            value["suggestion"] = Value::Null;
            format!("{value}\n")
        })
        .collect()
}

/// `who` answers `item` with `spans` and relations `(from, to, type)` between them.
fn answer(
    env: &TestEngine,
    who: &Principal,
    project: ProjectId,
    item: &str,
    spans: &[(u32, u32, &str)],
    relations: &[(u32, u32, &str)],
) {
    let submission = Submission {
        time_spent_ms: 2_500,
        ..span_submission(item, common::spans(spans), common::relations(relations))
    };
    env.engine.submit(who, project, submission).expect("submit");
}

/// The fixture as gold, two annotators' answers with relations (disagreeing on one item), and
/// an external model's suggestions with relation confidences on two more items.
struct Rich {
    env: TestEngine,
    project: ProjectId,
}

fn rich() -> Rich {
    let env = TestEngine::new();
    let project = relations_project(&env, "Relations");
    let report = import_as(
        &env,
        project,
        ImportFormat::Jsonl,
        ImportedLabels::Gold,
        FIXTURE.as_bytes(),
    )
    .expect("import the fixture");
    assert_eq!(report.imported, 7);
    let [ann, bob] = env.annotators(project, ["ann", "bob"]);
    // "Grace Hopper and Alan Turing met at Bletchley Park." — spans sent out of order: the
    // stored answer re-indexes its relations to the sorted spans.
    answer(
        &env,
        &ann,
        project,
        "r7",
        &[(36, 50, "LOC"), (0, 12, "PER"), (17, 28, "PER")],
        &[(1, 2, "knows"), (2, 1, "knows")],
    );
    answer(
        &env,
        &bob,
        project,
        "r7",
        &[(0, 12, "PER"), (17, 28, "PER")],
        &[(0, 1, "knows")],
    );
    answer(
        &env,
        &bob,
        project,
        "r3",
        &[(2, 12, "PER"), (20, 27, "ORG")],
        &[(0, 1, "works_for")],
    );
    // Prodigy lines from another tool's model: scores per span and per relation.
    let suggested = [
        json!({"id": "m1", "text": "Ken Thompson works for Bell Labs.",
            "spans": [{"start": 0, "end": 12, "label": "PER", "score": 0.9},
                      {"start": 23, "end": 32, "label": "ORG", "score": 0.8}],
            "relations": [{"head_span": {"start": 0, "end": 12, "label": "PER"},
                           "child_span": {"start": 23, "end": 32, "label": "ORG"},
                           "label": "works_for", "score": 0.7}]}),
        json!({"id": "m2", "text": "Oslo lies in Norway.",
            "spans": [{"start": 0, "end": 4, "label": "LOC", "score": 0.95},
                      {"start": 13, "end": 19, "label": "LOC", "score": 0.6}],
            "relations": [{"head_span": {"start": 0, "end": 4, "label": "LOC"},
                           "child_span": {"start": 13, "end": 19, "label": "LOC"},
                           "label": "located_in", "score": 0.35}]}),
    ];
    let body: String = suggested.iter().map(|l| format!("{l}\n")).collect();
    let report = import_as(
        &env,
        project,
        ImportFormat::Jsonl,
        ImportedLabels::Model {
            version_name: "ext-rel".into(),
        },
        body.as_bytes(),
    )
    .expect("import the suggestions");
    assert_eq!((report.suggestions, report.model_version), (2, Some(1)));
    Rich { env, project }
}

#[test]
fn every_format_round_trips_gold_answers_and_their_relations() {
    let Rich { env, project } = rich();
    let original = contents(&env, project);
    assert_eq!(original.len(), 9);
    // The answer given with its spans out of order is stored canonically: spans sorted,
    // relations re-indexed to them and sorted.
    let r7 = &original[6];
    assert_eq!(r7["annotations"][0]["annotator"], "ann");
    assert_eq!(
        r7["annotations"][0]["relations"],
        json!([{"from": 0, "to": 1, "label": "knows"}, {"from": 1, "to": 0, "label": "knows"}])
    );
    for format in [
        ExportFormat::Jsonl,
        ExportFormat::Prodigy,
        ExportFormat::LabelStudio,
        ExportFormat::Doccano,
    ] {
        let file = export(&env.engine, &env.admin, project, format);
        let copy = relations_project(&env, &format!("Copy {}", format.as_str()));
        let report = import_as(
            &env,
            copy,
            reader_of(format),
            ImportedLabels::Gold,
            file.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}\n{file}", format.as_str()));
        assert_eq!(report.imported, 9, "{}", format.as_str());
        assert_eq!(
            contents(&env, copy),
            original,
            "{} export → import changed the stored answers",
            format.as_str()
        );
        // Concord's JSONL writes the latest suggestion as a derived field that its import
        // leaves alone (suggestions come in as `labels_as: model`): the rest is the same bytes.
        let expected = if format == ExportFormat::Jsonl {
            without_suggestions(&file)
        } else {
            file.clone()
        };
        assert_eq!(
            export(&env.engine, &env.admin, copy, format),
            expected,
            "{}: the copy exports other bytes",
            format.as_str()
        );
    }
}

#[test]
fn the_jsonl_export_carries_relations_wherever_it_carries_spans() {
    let Rich { env, project } = rich();
    let items = export_jsonl(&env.engine, &env.admin, project);
    // Gold in the shape an answer is submitted in, relations re-indexed to the sorted spans
    // (the fixture lists r2's PER before its ORG).
    assert_eq!(
        items[1]["gold"],
        json!({
            "spans": [{"start": 0, "end": 6, "label": "ORG"}, {"start": 22, "end": 34, "label": "PER"}],
            "relations": [{"from": 0, "to": 1, "label": "founded_by"}, {"from": 1, "to": 0, "label": "works_for"}],
        })
    );
    assert_eq!(items[4]["gold"], json!({"spans": [], "relations": []}));
    assert_eq!(items[6]["gold"], Value::Null);
    // Each annotator's answer, and the majority: both annotators share one PER–PER relation.
    let bob = &items[6]["annotations"][1];
    assert_eq!(bob["annotator"], "bob");
    assert_eq!(
        bob["relations"],
        json!([{"from": 0, "to": 1, "label": "knows"}])
    );
    assert_eq!(
        items[6]["aggregate"],
        json!({
            "spans": [{"start": 0, "end": 12, "label": "PER"}, {"start": 17, "end": 28, "label": "PER"}],
            "relations": [{"from": 0, "to": 1, "label": "knows"}],
        })
    );
    // The latest suggestion with each relation's confidence.
    assert_eq!(
        items[7]["suggestion"],
        json!({
            "spans": [
                {"start": 0, "end": 12, "label": "PER", "confidence": 0.9},
                {"start": 23, "end": 32, "label": "ORG", "confidence": 0.8}],
            "relations": [{"from": 0, "to": 1, "label": "works_for", "confidence": 0.7}],
            "confidence": 0.8,
            "model_version": 1,
        })
    );
}

#[test]
fn label_studio_regions_have_ids_that_relations_name() {
    let Rich { env, project } = rich();
    let file = export(&env.engine, &env.admin, project, ExportFormat::LabelStudio);
    let tasks: Value = serde_json::from_str(&file).expect("a JSON array");
    // r4, "Paris is in France.": the ground truth's regions s0, s1 and one relation.
    assert_eq!(
        tasks[3]["annotations"][0]["result"],
        json!([
            {"id": "s0", "from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": 0, "end": 5, "text": "Paris", "labels": ["LOC"]}},
            {"id": "s1", "from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": 12, "end": 18, "text": "France", "labels": ["LOC"]}},
            {"from_id": "s0", "to_id": "s1", "type": "relation", "direction": "right",
             "labels": ["located_in"]},
        ])
    );
    // r3's emoji shifts UTF-16 offsets by one; the relation still names the regions.
    let r3 = &tasks[2]["annotations"][0]["result"];
    assert_eq!(r3[0]["value"]["start"], 3, "🙂 is two UTF-16 code units");
    assert_eq!(r3[3]["from_id"], "s0");
    assert_eq!(r3[3]["to_id"], "s1");
    // A prediction's relations carry their scores.
    let prediction = &tasks[7]["predictions"][0];
    assert_eq!(prediction["model_version"], "ext-rel");
    assert_eq!(prediction["result"][2]["type"], "relation");
    assert_eq!(prediction["result"][2]["score"], 0.7);

    // A foreign task: random region ids, a relation listed before its regions, and one drawn
    // right to left.
    let tasks = json!([{"data": {"text": "Acme Corp hired Ann Lee."},
    "annotations": [{"result": [
        {"from_id": "Xq1", "to_id": "b7P", "type": "relation", "direction": "left", "labels": ["works_for"]},
        {"id": "b7P", "type": "labels", "from_name": "label", "to_name": "text",
         "value": {"start": 16, "end": 23, "text": "Ann Lee", "labels": ["PER"]}},
        {"id": "Xq1", "type": "labels", "from_name": "label", "to_name": "text",
         "value": {"start": 0, "end": 9, "text": "Acme Corp", "labels": ["ORG"]}},
    ]}]}]);
    let other = relations_project(&env, "Foreign LS");
    import_as(
        &env,
        other,
        ImportFormat::LabelStudio,
        ImportedLabels::Gold,
        tasks.to_string().as_bytes(),
    )
    .expect("import the foreign task");
    assert_eq!(
        contents(&env, other)[0]["gold"],
        json!({
            "spans": [{"start": 0, "end": 9, "label": "ORG"}, {"start": 16, "end": 23, "label": "PER"}],
            "relations": [{"from": 1, "to": 0, "label": "works_for"}],
        })
    );
}

#[test]
fn prodigy_relations_name_each_span_by_its_last_token() {
    let Rich { env, project } = rich();
    let file = export(&env.engine, &env.admin, project, ExportFormat::Prodigy);
    let first: Value = serde_json::from_str(file.lines().next().unwrap()).unwrap();
    // "Ada Lovelace works for Acme Corp in London.": works_for from a two-token PER to a
    // two-token ORG; head and child are the index of each span's last token.
    let tokens = first["tokens"].as_array().unwrap();
    let ending_at = |end: u64| {
        tokens
            .iter()
            .position(|t| t["end"] == end)
            .expect("a token ends there") as u64
    };
    let works_for = &first["relations"][0];
    assert_eq!(works_for["label"], "works_for");
    assert_eq!(works_for["head"], ending_at(12));
    assert_eq!(works_for["child"], ending_at(32));
    assert_eq!(works_for["head_span"]["token_end"], works_for["head"]);
    assert_eq!(works_for["child_span"]["start"], 23);
    assert_eq!(first["answer"], "accept");

    // A foreign rel.manual line naming its ends by token only, with its tokens.
    let line = json!({"text": "Bell Labs employs Dennis Ritchie",
        "tokens": [
            {"text": "Bell", "start": 0, "end": 4, "id": 0},
            {"text": "Labs", "start": 5, "end": 9, "id": 1},
            {"text": "employs", "start": 10, "end": 17, "id": 2},
            {"text": "Dennis", "start": 18, "end": 24, "id": 3},
            {"text": "Ritchie", "start": 25, "end": 32, "id": 4}],
        "spans": [
            {"start": 0, "end": 9, "label": "ORG", "token_start": 0, "token_end": 1},
            {"start": 18, "end": 32, "label": "PER", "token_start": 3, "token_end": 4}],
        "relations": [{"head": 4, "child": 1, "label": "works_for"}],
        "answer": "accept"});
    let other = relations_project(&env, "Foreign Prodigy");
    import_as(
        &env,
        other,
        ImportFormat::Jsonl,
        ImportedLabels::Gold,
        format!("{line}\n").as_bytes(),
    )
    .expect("import the rel.manual line");
    assert_eq!(
        contents(&env, other)[0]["gold"]["relations"],
        json!([{"from": 1, "to": 0, "label": "works_for"}])
    );
}

#[test]
fn doccano_entities_and_relations_are_named_by_id() {
    let Rich { env, project } = rich();
    let file = export(&env.engine, &env.admin, project, ExportFormat::Doccano);
    let first: Value = serde_json::from_str(file.lines().next().unwrap()).unwrap();
    assert_eq!(
        (&first["entities"], &first["relations"]),
        (
            &json!([
                {"id": 1, "label": "PER", "start_offset": 0, "end_offset": 12},
                {"id": 2, "label": "ORG", "start_offset": 23, "end_offset": 32},
                {"id": 3, "label": "LOC", "start_offset": 36, "end_offset": 42}]),
            &json!([
                {"id": 1, "from_id": 1, "to_id": 2, "type": "works_for"},
                {"id": 2, "from_id": 2, "to_id": 3, "type": "located_in"}])
        )
    );
    // An item without gold has no entities at all (an empty list would say "none").
    let r7: Value = serde_json::from_str(file.lines().nth(6).unwrap()).unwrap();
    assert!(r7.get("entities").is_none(), "{r7}");
    assert_eq!(r7["annotations"][1]["relations"][0]["type"], "knows");

    // doccano's own export: database ids, code point offsets after an emoji, extra fields.
    let line = json!({"id": 311, "text": "🙂 Initech is in Zürich",
        "entities": [{"id": 901, "label": "LOC", "start_offset": 16, "end_offset": 22},
                     {"id": 77, "label": "ORG", "start_offset": 2, "end_offset": 9}],
        "relations": [{"id": 5, "from_id": 77, "to_id": 901, "type": "located_in"}],
        "Comments": []});
    let other = relations_project(&env, "Foreign doccano");
    import_as(
        &env,
        other,
        ImportFormat::Doccano,
        ImportedLabels::Gold,
        format!("{line}\n").as_bytes(),
    )
    .expect("import the doccano line");
    let item = &contents(&env, other)[0];
    assert_eq!(item["id"], "311");
    assert_eq!(item["meta"], json!({"Comments": []}));
    assert_eq!(
        item["gold"],
        json!({
            "spans": [{"start": 2, "end": 9, "label": "ORG"}, {"start": 16, "end": 22, "label": "LOC"}],
            "relations": [{"from": 0, "to": 1, "label": "located_in"}],
        })
    );
}

#[test]
fn relations_import_as_an_annotators_answers_or_a_models_suggestions() {
    let env = TestEngine::new();
    let project = relations_project(&env, "Other tools");
    env.member(project, "tagger", Role::Annotator);
    let line = json!({"text": "Ann Lee works for Acme.", "entities": [
            {"id": "a", "label": "PER", "start_offset": 0, "end_offset": 7},
            {"id": "b", "label": "ORG", "start_offset": 18, "end_offset": 22}],
        "relations": [{"id": 1, "from_id": "a", "to_id": "b", "type": "works_for"}]});
    let report = import_as(
        &env,
        project,
        ImportFormat::Doccano,
        ImportedLabels::Annotator {
            name: "tagger".into(),
        },
        format!("{line}\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(report.annotations, 1);
    let items = contents(&env, project);
    assert_eq!(
        items[0]["gold"],
        Value::Null,
        "the tagger's answer is not gold"
    );
    assert_eq!(items[0]["annotations"][0]["annotator"], "tagger");
    assert_eq!(
        items[0]["annotations"][0]["relations"],
        json!([{"from": 0, "to": 1, "label": "works_for"}])
    );

    // Label Studio predictions: relation scores kept, one without a score takes the
    // prediction's.
    let tasks = json!([{"data": {"text": "Ann Lee works for Acme."},
        "predictions": [{"model_version": "ls-rel", "score": 0.5, "result": [
            {"id": "p", "type": "labels", "score": 0.9,
             "value": {"start": 0, "end": 7, "text": "Ann Lee", "labels": ["PER"]}},
            {"id": "o", "type": "labels", "score": 0.8,
             "value": {"start": 18, "end": 22, "text": "Acme", "labels": ["ORG"]}},
            {"from_id": "p", "to_id": "o", "type": "relation", "labels": ["works_for"], "score": 0.65},
            {"from_id": "o", "to_id": "p", "type": "relation", "labels": ["founded_by"]}]}]}]);
    let report = import_as(
        &env,
        project,
        ImportFormat::LabelStudio,
        ImportedLabels::Gold,
        tasks.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(report.suggestions, 1);
    let items = export_jsonl(&env.engine, &env.admin, project);
    assert_eq!(
        items[1]["suggestion"]["relations"],
        json!([
            {"from": 0, "to": 1, "label": "works_for", "confidence": 0.65},
            {"from": 1, "to": 0, "label": "founded_by", "confidence": 0.5}])
    );
}

/// A format, the file, the line the error names and what its message says.
struct Case {
    format: ImportFormat,
    body: String,
    line: u64,
    says: &'static [&'static str],
}

/// Two JSONL lines: a good one, then `bad`.
fn second_line(format: ImportFormat, bad: Value, says: &'static [&'static str]) -> Case {
    Case {
        format,
        body: format!("{}\n{bad}\n", json!({"text": "fine"})),
        line: 2,
        says,
    }
}

/// A Label Studio file whose second task (starting on line 3) is `bad`.
fn second_task(bad: Value, says: &'static [&'static str]) -> Case {
    Case {
        format: ImportFormat::LabelStudio,
        body: format!("[\n{},\n{bad}\n]\n", json!({"data": {"text": "fine"}})),
        line: 3,
        says,
    }
}

fn region(id: &str, start: u32, end: u32, label: &str) -> Value {
    json!({"id": id, "type": "labels", "value": {"start": start, "end": end, "labels": [label]}})
}

#[test]
fn a_bad_relation_is_refused_with_its_line_and_nothing_is_stored() {
    let env = TestEngine::new();
    // "Ann works for Acme in Oslo": Ann 0..3, Acme 14..18, Oslo 22..26.
    let text = "Ann works for Acme in Oslo";
    let spans = json!([
        {"start": 0, "end": 3, "label": "PER"},
        {"start": 14, "end": 18, "label": "ORG"},
        {"start": 22, "end": 26, "label": "LOC"}]);
    let gold =
        |relations: Value| json!({"text": text, "gold": {"spans": spans, "relations": relations}});
    let prodigy = |relations: Value| json!({"text": text, "spans": spans, "relations": relations});
    let ls = |result: Value| json!({"data": {"text": text}, "annotations": [{"result": result}]});
    let doccano = |relations: Value| {
        json!({"text": text, "entities": [
            {"id": 10, "label": "PER", "start_offset": 0, "end_offset": 3},
            {"id": 20, "label": "ORG", "start_offset": 14, "end_offset": 18},
            {"id": 20, "label": "LOC", "start_offset": 22, "end_offset": 26}],
            "relations": relations})
    };
    let jsonl = ImportFormat::Jsonl;
    let cases = [
        second_line(
            jsonl,
            gold(json!([{"from": 0, "to": 5, "label": "knows"}])),
            &["gold label: relation 0 (\"knows\") points at span 5, but the answer has 3 spans"],
        ),
        second_line(
            jsonl,
            gold(json!([{"from": 0, "to": 1, "label": "married_to"}])),
            &[
                "\"married_to\" is not in this project's relation types",
                "(relation types: works_for, located_in, founded_by, knows)",
            ],
        ),
        second_line(
            jsonl,
            gold(json!([{"from": 1, "to": 1, "label": "knows"}])),
            &["relation 0 (\"knows\") links span 1 to itself"],
        ),
        second_line(
            jsonl,
            gold(json!([{"from": 2, "to": 1, "label": "works_for"}])),
            &[
                "relation 0 (\"works_for\") cannot start at",
                "its head must be \"PER\"",
            ],
        ),
        second_line(
            jsonl,
            gold(
                json!([{"from": 0, "to": 1, "label": "knows"}, {"from": 0, "to": 1, "label": "knows"}]),
            ),
            &["relation \"knows\" from", "is given twice"],
        ),
        second_line(
            jsonl,
            json!({"text": text, "annotations": [{"annotator": "admin", "spans": spans,
                "relations": [{"from": 1, "to": 0, "label": "works_for"}]}]}),
            &["label of annotator \"admin\": relation 0 (\"works_for\") cannot start at"],
        ),
        second_line(
            jsonl,
            gold(json!([{"from": "Ann", "to": 1, "label": "knows"}])),
            &["relation 0: \"from\" must be a whole number (the index of a span, from 0)"],
        ),
        second_line(
            jsonl,
            prodigy(json!([{"head_span": {"start": 0, "end": 3, "label": "PER"},
                "child_span": {"start": 22, "end": 26, "label": "LOC"}, "label": "works_for"}])),
            &[
                "relation 0 (\"works_for\") cannot end at",
                "its tail must be \"ORG\"",
            ],
        ),
        second_line(
            jsonl,
            prodigy(json!([{"head_span": {"start": 0, "end": 4, "label": "PER"},
                "child_span": {"start": 14, "end": 18, "label": "ORG"}, "label": "works_for"}])),
            &["relation 0: head_span (0..4, \"PER\") is not one of the line's spans"],
        ),
        second_line(
            jsonl,
            prodigy(json!([{"head": 0, "child": 3, "label": "works_for"}])),
            &["relation 0: \"head\" is a token index, and the line gives no \"tokens\""],
        ),
        second_line(
            jsonl,
            json!({"text": text, "relations": [{"head": 0, "child": 3, "label": "works_for"}]}),
            &["Prodigy \"relations\" are given without the \"spans\" they link"],
        ),
        second_task(
            ls(json!([region("a", 0, 3, "PER"), region("b", 14, 18, "ORG"),
                {"from_id": "a", "to_id": "zz", "type": "relation", "labels": ["works_for"]}])),
            &["task 1: annotation 0, result 2: to_id \"zz\" is the id of no labels region"],
        ),
        second_task(
            ls(json!([region("a", 0, 3, "PER"), region("b", 14, 18, "ORG"),
                {"from_id": "a", "to_id": "b", "type": "relation", "direction": "bi", "labels": ["knows"]}])),
            &["direction \"bi\": a relation here is directed"],
        ),
        second_task(
            ls(json!([region("a", 0, 3, "PER"), region("b", 14, 18, "ORG"),
                {"from_id": "b", "to_id": "a", "type": "relation", "labels": ["works_for"]}])),
            &["task 1: gold label: relation 0 (\"works_for\") cannot start at"],
        ),
        second_task(
            ls(json!([region("a", 0, 3, "PER"), region("b", 14, 18, "ORG"),
                {"from_id": "a", "to_id": "b", "type": "relation", "labels": []}])),
            &["a relation needs its type in labels"],
        ),
        second_task(
            ls(json!([region("a", 0, 3, "PER"),
                {"id": "b", "type": "labels", "value": {"start": 14, "end": 18, "labels": ["ORG", "LOC"]}},
                {"from_id": "a", "to_id": "b", "type": "relation", "labels": ["works_for"]}])),
            &["to_id \"b\" is result 1, a region of 2 labels"],
        ),
        second_line(
            jsonl,
            json!({"text": text, "tokens": [
                {"text": "Ann", "start": 0, "end": 3, "id": 0},
                {"text": "works", "start": 4, "end": 9, "id": 1},
                {"text": "for", "start": 10, "end": 13, "id": 2},
                {"text": "Acme", "start": 14, "end": 18, "id": 3},
                {"text": "in", "start": 19, "end": 21, "id": 4},
                {"text": "Oslo", "start": 22, "end": 26, "id": 5}],
                "spans": [{"start": 0, "end": 3, "label": "PER"}, {"start": 14, "end": 18, "label": "ORG"},
                          {"start": 10, "end": 18, "label": "LOC"}],
                "relations": [{"head": 0, "child": 3, "label": "works_for"}]}),
            &["relation 0: several spans end at token 3: give \"child_span\" to say which"],
        ),
        second_task(
            ls(json!([
                region("a", 0, 3, "PER"),
                region("a", 14, 18, "ORG")
            ])),
            &["region id \"a\" is also the id of result 0"],
        ),
        second_line(
            ImportFormat::Doccano,
            doccano(json!([{"id": 1, "from_id": 10, "to_id": 30, "type": "works_for"}])),
            &["entity 2: id 20 is given to another entity of the line too"],
        ),
        second_line(
            ImportFormat::Doccano,
            json!({"text": text, "entities": [
                {"id": 10, "label": "PER", "start_offset": 0, "end_offset": 3},
                {"id": 20, "label": "ORG", "start_offset": 14, "end_offset": 18}],
                "relations": [{"id": 7, "from_id": 10, "to_id": 30, "type": "works_for"}]}),
            &["relation 0 (id 7): to_id 30 is not the id of an entity of field \"entities\""],
        ),
        second_line(
            ImportFormat::Doccano,
            json!({"text": text, "entities": [
                {"id": 10, "label": "PER", "start_offset": 0, "end_offset": 3},
                {"id": 20, "label": "ORG", "start_offset": 14, "end_offset": 18}],
                "relations": [{"id": 7, "from_id": 10, "to_id": 20, "type": "employs"}]}),
            &["\"employs\" is not in this project's relation types"],
        ),
    ];
    for (i, case) in cases.iter().enumerate() {
        let project = relations_project(&env, &format!("Bad {i}"));
        let (line, problem) = import_error(import_as(
            &env,
            project,
            case.format,
            ImportedLabels::Gold,
            case.body.as_bytes(),
        ));
        assert_eq!(line, case.line, "case {i}: {problem}");
        for says in case.says {
            assert!(
                problem.contains(says),
                "case {i}: {problem:?} lacks {says:?}"
            );
        }
        assert_eq!(item_count(&env, project), 0, "case {i} stored items");
    }

    // A spans project takes no relations, whatever the format.
    let spans_project = env.create_project(common::spec(
        "Spans only",
        TaskKind::Spans,
        ENTITY_TYPES,
        ProjectSettings::default(),
    ));
    let case = second_line(
        jsonl,
        gold(json!([{"from": 0, "to": 1, "label": "works_for"}])),
        &[],
    );
    let (line, problem) = import_error(import_as(
        &env,
        spans_project,
        case.format,
        ImportedLabels::Gold,
        case.body.as_bytes(),
    ));
    assert_eq!(line, 2);
    assert!(problem.contains("relation"), "{problem}");
    assert_eq!(item_count(&env, spans_project), 0);
}
