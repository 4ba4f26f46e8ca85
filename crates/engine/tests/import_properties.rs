//! Properties of the import, over generated items (64 cases each, so the suite stays fast; the
//! time-boxed fuzzing of malformed files is the `import_fuzz` bench):
//! - valid items round-trip exactly through export and import, in JSONL and in CSV, whatever
//!   their texts hold (quotes, newlines, emoji, a leading `=`, `+`, `-`, `@` or `'`);
//! - a file whose line k alone is broken fails naming line k, and stores nothing.

use crate::common;

use std::cell::Cell;

use common::{spec, TestEngine};
use concord_domain::{ProjectId, ProjectSettings, TaskKind};
use concord_engine::{EngineError, ExportFormat, ImportFormat};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};

const LABELS: [&str; 3] = ["pos", "neg", "neu"];
const CASES: u32 = 64;

/// One generated item, as it is imported.
#[derive(Debug, Clone)]
struct Item {
    id: String,
    text: String,
    gold: Option<&'static str>,
    meta: Map<String, Value>,
}

impl Item {
    fn jsonl(&self) -> String {
        let mut obj = Map::new();
        obj.insert("id".into(), Value::String(self.id.clone()));
        obj.insert("text".into(), Value::String(self.text.clone()));
        if let Some(gold) = self.gold {
            obj.insert("gold".into(), Value::String(gold.into()));
        }
        if !self.meta.is_empty() {
            obj.insert("meta".into(), Value::Object(self.meta.clone()));
        }
        format!("{}\n", Value::Object(obj))
    }
}

/// Texts that are hard to carry through a file: quotes, separators, newlines, emoji, and
/// starts that a spreadsheet would run as formulas (which the CSV export neutralises).
fn text() -> impl Strategy<Value = String> {
    let start = prop::sample::select(vec![
        "",
        "=",
        "+",
        "-",
        "@",
        "'",
        "'=",
        "''+",
        "\t",
        " ",
        "\r",
        "=HYPERLINK(\"x\")",
        "-1",
    ]);
    // At least one character that is not blank, so the text is not empty.
    let body = "[a-zA-Z0-9\u{e9}\u{1F600}\"',;|=+@{}\\[\\]\\\\]{1,12}";
    let tail = "[a-zA-Z \"',;|\n\r\t\u{1F600}]{0,12}";
    (start, body, tail).prop_map(|(s, b, t)| format!("{s}{b}{t}"))
}

fn meta() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-z]{1,6}", "[a-zA-Z =\"\n]{0,8}", 0..3)
        .prop_map(|m| m.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

/// 1 to 8 items; ids are unique (a numbered prefix) but may start like a formula too.
fn items() -> impl Strategy<Value = Vec<Item>> {
    let item = (
        prop::sample::select(vec!["", "=", "-", "@", "'", "+"]),
        "[a-z0-9 |\"]{0,6}",
        text(),
        prop::option::of(prop::sample::select(LABELS.to_vec())),
        meta(),
    );
    prop::collection::vec(item, 1..8).prop_map(|parts| {
        parts
            .into_iter()
            .enumerate()
            .map(|(i, (id_start, id_rest, text, gold, meta))| Item {
                id: format!("{id_start}{i}{id_rest}"),
                text,
                gold,
                meta,
            })
            .collect()
    })
}

fn jsonl(items: &[Item]) -> String {
    items.iter().map(Item::jsonl).collect()
}

fn new_project(env: &TestEngine, n: &Cell<u32>) -> ProjectId {
    n.set(n.get() + 1);
    env.create_project(spec(
        &format!("p{}", n.get()),
        TaskKind::Classification,
        &LABELS,
        ProjectSettings::default(),
    ))
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    })
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if ok {
        Ok(())
    } else {
        Err(TestCaseError::fail(what()))
    }
}

/// The items of a JSONL export as they were imported: id, text, gold and metadata.
fn exported_items(export: &str) -> Vec<(String, String, Value, Value)> {
    export
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("an export line is JSON");
            (
                v["id"].as_str().expect("id").to_string(),
                v["text"].as_str().expect("text").to_string(),
                v["gold"].clone(),
                v["meta"].clone(),
            )
        })
        .collect()
}

#[test]
fn valid_items_round_trip_exactly_through_jsonl_and_csv() {
    let env = TestEngine::new();
    let n = Cell::new(0);
    runner()
        .run(&items(), |items| {
            let original = new_project(&env, &n);
            env.import(original, ImportFormat::Jsonl, jsonl(&items).as_bytes())
                .map_err(|e| TestCaseError::fail(format!("import: {e}")))?;
            let first_jsonl = env.export(original, ExportFormat::Jsonl);
            let expected: Vec<_> = items
                .iter()
                .map(|i| {
                    (
                        i.id.clone(),
                        i.text.clone(),
                        i.gold.map_or(Value::Null, |g| json!(g)),
                        Value::Object(i.meta.clone()),
                    )
                })
                .collect();
            check(exported_items(&first_jsonl) == expected, || {
                format!("stored items differ from the imported ones:\n{first_jsonl}")
            })?;

            for format in [ExportFormat::Jsonl, ExportFormat::Csv] {
                let first = env.export(original, format);
                let copy = new_project(&env, &n);
                // Both names are read by the import too.
                let import_format = ImportFormat::parse(format.as_str()).expect("an import format");
                env.import(copy, import_format, first.as_bytes())
                    .map_err(|e| TestCaseError::fail(format!("re-import of {format:?}: {e}")))?;
                check(env.export(copy, format) == first, || {
                    format!("{format:?} export differs after a round trip:\n{first}")
                })?;
                check(env.export(copy, ExportFormat::Jsonl) == first_jsonl, || {
                    format!("items differ after a {format:?} round trip")
                })?;
            }
            Ok(())
        })
        .unwrap();
}

/// How line k of a file is broken.
#[derive(Debug, Clone, Copy)]
enum Breakage {
    /// Cut in the middle (JSONL) or given one field too many (CSV).
    Malformed,
    /// A gold label the project does not have.
    UnknownLabel,
    /// A byte that is not UTF-8 in the text.
    InvalidUtf8,
    /// An empty text.
    EmptyText,
    /// The id of an earlier line.
    DuplicateId,
}

fn breakage() -> impl Strategy<Value = Breakage> {
    prop::sample::select(vec![
        Breakage::Malformed,
        Breakage::UnknownLabel,
        Breakage::InvalidUtf8,
        Breakage::EmptyText,
        Breakage::DuplicateId,
    ])
}

/// Items, the index of the one to break (a duplicate id needs an earlier item) and how.
fn broken_file() -> impl Strategy<Value = (Vec<Item>, usize, Breakage)> {
    (items(), any::<prop::sample::Index>(), breakage()).prop_filter_map(
        "a duplicate id needs an earlier item",
        |(items, index, breakage)| {
            let k = index.index(items.len());
            (!matches!(breakage, Breakage::DuplicateId) || k > 0).then_some((items, k, breakage))
        },
    )
}

/// The bytes of `items` as JSONL with item `k` broken; its line is `k + 1`.
fn broken_jsonl(items: &[Item], k: usize, breakage: Breakage) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if i != k {
            out.extend(item.jsonl().into_bytes());
            continue;
        }
        let mut item = item.clone();
        match breakage {
            Breakage::Malformed => {
                let line = item.jsonl();
                out.extend(&line.as_bytes()[..line.len() / 2]);
                out.push(b'\n');
                continue;
            }
            Breakage::UnknownLabel => item.gold = Some("nope"),
            Breakage::EmptyText => item.text = " ".into(),
            Breakage::DuplicateId => item.id = items[0].id.clone(),
            Breakage::InvalidUtf8 => {
                let line = item.jsonl();
                // Right after `{"id":"` (ids are ASCII), inside the id string.
                let (head, tail) = line.split_at(7);
                out.extend(head.as_bytes());
                out.push(0xff);
                out.extend(tail.as_bytes());
                continue;
            }
        }
        out.extend(item.jsonl().into_bytes());
    }
    (out, k as u64 + 1)
}

/// The bytes of `items` as CSV (header `id,text,gold,meta`) with item `k` broken, and the line
/// its record starts on (texts with newlines span lines).
fn broken_csv(items: &[Item], k: usize, breakage: Breakage) -> (Vec<u8>, u64) {
    let record = |item: &Item| {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let meta = if item.meta.is_empty() {
            String::new()
        } else {
            Value::Object(item.meta.clone()).to_string()
        };
        // A leading `'` before a formula character is taken off on import; this writer does
        // not neutralise, so texts starting so are written with one more to stay exact.
        let cell = |s: &str| {
            if s.trim_start_matches('\'')
                .starts_with(['=', '+', '-', '@', '\t', '\r'])
                && s.starts_with('\'')
            {
                format!("'{s}")
            } else {
                s.to_string()
            }
        };
        writer
            .write_record([
                cell(&item.id),
                cell(&item.text),
                item.gold.unwrap_or("").to_string(),
                meta,
            ])
            .expect("write a record");
        writer.into_inner().expect("flush a record")
    };
    let mut out = b"id,text,gold,meta\n".to_vec();
    let mut line = 0;
    for (i, item) in items.iter().enumerate() {
        if i != k {
            out.extend(record(item));
            continue;
        }
        line = 1 + out.iter().filter(|b| **b == b'\n').count() as u64;
        let mut item = item.clone();
        match breakage {
            Breakage::Malformed => {
                let mut bytes = record(&item);
                let end = bytes.pop();
                debug_assert_eq!(end, Some(b'\n'));
                out.extend(bytes);
                out.extend(b",one too many\n");
                continue;
            }
            Breakage::UnknownLabel => item.gold = Some("nope"),
            Breakage::EmptyText => item.text = String::new(),
            Breakage::DuplicateId => item.id = items[0].id.clone(),
            Breakage::InvalidUtf8 => {
                let mut bytes = record(&item);
                // Before the record's line end: in its last (gold or meta) cell or after it.
                let at = bytes.len() - 1;
                bytes.insert(at, 0xff);
                out.extend(bytes);
                continue;
            }
        }
        out.extend(record(&item));
    }
    (out, line)
}

#[test]
fn a_broken_line_fails_naming_that_line_and_stores_nothing() {
    let env = TestEngine::new();
    let n = Cell::new(0);
    runner()
        .run(&broken_file(), |(items, k, breakage)| {
            for format in [ImportFormat::Jsonl, ImportFormat::Csv] {
                let project = new_project(&env, &n);
                env.import(
                    project,
                    ImportFormat::Jsonl,
                    b"{\"id\":\"before\",\"text\":\"already here\"}\n",
                )
                .map_err(|e| TestCaseError::fail(format!("first import: {e}")))?;
                let before = env.export(project, ExportFormat::Jsonl);
                let (input, line) = match format {
                    ImportFormat::Csv => broken_csv(&items, k, breakage),
                    _ => broken_jsonl(&items, k, breakage),
                };
                let shown = String::from_utf8_lossy(&input).into_owned();
                match env.import(project, format, &input) {
                    Err(EngineError::Import { line: got, problem }) => {
                        check(got == line, || {
                            format!(
                                "{format:?} {breakage:?}: error on line {got} ({problem}), expected line {line}:\n{shown}"
                            )
                        })?;
                    }
                    other => {
                        return Err(TestCaseError::fail(format!(
                            "{format:?} {breakage:?}: expected an import error on line {line}, got {other:?}:\n{shown}"
                        )))
                    }
                }
                check(env.export(project, ExportFormat::Jsonl) == before, || {
                    format!("{format:?} {breakage:?}: the failed import left items behind")
                })?;
            }
            Ok(())
        })
        .unwrap();
}

/// Found by the `import_fuzz` seeds: a JSONL file saved with a byte order mark was refused on
/// line 1, and a text file's first item kept the mark in its text; CSV already dropped it.
#[test]
fn a_byte_order_mark_is_not_part_of_the_first_item() {
    let env = TestEngine::new();
    let n = Cell::new(0);
    for (format, body) in [
        (
            ImportFormat::Jsonl,
            "\u{feff}{\"id\":\"a\",\"text\":\"first\"}\n",
        ),
        (ImportFormat::Csv, "\u{feff}id,text\na,first\n"),
        (ImportFormat::Text, "\u{feff}first\n"),
    ] {
        let project = new_project(&env, &n);
        env.import(project, format, body.as_bytes())
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        let stored = exported_items(&env.export(project, ExportFormat::Jsonl));
        assert_eq!(stored.len(), 1, "{format:?}");
        assert_eq!(stored[0].1, "first", "{format:?}");
    }
    // Only the file's start is a mark: inside a later line it stays text.
    let project = new_project(&env, &n);
    env.import(project, ImportFormat::Text, "one\n\u{feff}two\n".as_bytes())
        .expect("import");
    let stored = exported_items(&env.export(project, ExportFormat::Jsonl));
    assert_eq!(stored[1].1, "\u{feff}two");
}
