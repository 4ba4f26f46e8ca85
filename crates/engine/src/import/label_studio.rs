//! Label Studio import: a JSON array of tasks, read one task at a time (a task over
//! [`MAX_LINE_BYTES`] is refused, so memory stays bounded whatever the file's size), each
//! numbered in errors by its index and the line it starts on.
//!
//! A task gives `data.<text field>` (other `data` fields and the task's `meta` become the
//! item's metadata; `data.<id field>`, else the task's `id`, its id), `annotations[]` and
//! `predictions[]`, each with `result[]`: `labels` regions (`value: {start, end, text,
//! labels}`, offsets in UTF-16 code units, converted to code points and checked against
//! `value.text`) in span projects, with `relation` results (`from_id`, `to_id` naming regions
//! by their `id`, `direction` `right` (from → to, the default) or `left` (to → from), one
//! relation per name in `labels`) in relations projects, `choices` (`value: {choices}`) in
//! the others. An annotation
//! Concord exported names its annotator (`concord.annotator`); of the others, the one marked
//! `ground_truth` (or the only one) holds the task's labels, whose meaning
//! [`super::ImportedLabels`] decides. The first prediction becomes the item's suggestion.

use std::collections::HashMap;
use std::io::{BufRead, Read};

use concord_domain::tokens::OffsetMap;
use concord_domain::{AnnotationValue, ProjectSpec, Relation, Span};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::parse::{
    read_times, GivenLabels, GivenPrediction, ItemSink, Parsed, ParsedAnnotation, MAX_LINE_BYTES,
    UTF8_BOM,
};
use super::spans::{as_u32, read_score, read_tokens};
use super::{line_error, with_task, ImportOptions, ImportProgress, ImportReport};
use crate::EngineError;

/// The key of the object Concord adds to the annotations it exports: who gave the answer and
/// when, which Label Studio's own fields cannot carry exactly.
pub(crate) const CONCORD_KEY: &str = "concord";

/// The input, counting bytes and lines and refusing a task longer than [`MAX_LINE_BYTES`].
struct Counting<R> {
    inner: R,
    bytes: u64,
    newlines: u64,
    /// Bytes read since the current task started (`None` between tasks).
    task_bytes: Option<usize>,
}

/// The io error [`Counting`] stops the JSON reader with.
#[derive(Debug, thiserror::Error)]
#[error("a task longer than {MAX_LINE_BYTES} bytes")]
struct TaskTooLong;

impl<R: BufRead> Counting<R> {
    /// The next byte that is not whitespace, without consuming it.
    fn peek_non_space(&mut self) -> std::io::Result<Option<u8>> {
        loop {
            let buf = self.inner.fill_buf()?;
            let Some(&b) = buf.first() else {
                return Ok(None);
            };
            if !b.is_ascii_whitespace() {
                return Ok(Some(b));
            }
            self.bytes += 1;
            self.newlines += u64::from(b == b'\n');
            self.inner.consume(1);
        }
    }

    fn consume_byte(&mut self) {
        self.bytes += 1;
        self.inner.consume(1);
    }
}

impl<R: BufRead> Read for Counting<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if let Some(n) = self.task_bytes {
            if n > MAX_LINE_BYTES {
                return Err(std::io::Error::other(TaskTooLong));
            }
        }
        // Byte by byte: the JSON reader then never holds bytes past the task it reads, and
        // the line count stays exact (the BufRead underneath does the real buffering).
        let n = {
            let buf = self.inner.fill_buf()?;
            match (buf.first(), out.first_mut()) {
                (Some(&b), Some(slot)) => {
                    *slot = b;
                    self.newlines += u64::from(b == b'\n');
                    1
                }
                _ => 0,
            }
        };
        self.inner.consume(n);
        self.bytes += n as u64;
        if let Some(t) = self.task_bytes.as_mut() {
            *t += n;
        }
        Ok(n)
    }
}

pub(super) fn read_tasks(
    input: impl BufRead,
    spec: &ProjectSpec,
    options: &ImportOptions,
    counter: &mut ImportProgress,
    report: &mut ImportReport,
    each: &mut ItemSink<'_>,
) -> Result<(), EngineError> {
    let mut input = Counting {
        inner: input,
        bytes: 0,
        newlines: 0,
        task_bytes: None,
    };
    let io = |line: u64| move |e: std::io::Error| line_error(line, format!("read error: {e}"));
    // A byte order mark is no part of the JSON.
    if input.inner.fill_buf().map_err(io(1))?.starts_with(UTF8_BOM) {
        input.inner.consume(UTF8_BOM.len());
    }
    match input.peek_non_space().map_err(io(1))? {
        Some(b'[') => input.consume_byte(),
        _ => {
            return Err(line_error(
                input.newlines + 1,
                "a Label Studio file is a JSON array of tasks: it must start with [",
            ))
        }
    }
    let mut index: u64 = 0;
    loop {
        let line = input.newlines + 1;
        match input.peek_non_space().map_err(io(line))? {
            Some(b']') => {
                input.consume_byte();
                break;
            }
            None => return Err(line_error(line, "the array of tasks is not closed with ]")),
            Some(b',') if index > 0 => {
                input.consume_byte();
            }
            Some(_) if index > 0 => {
                return Err(line_error(
                    line,
                    format!("expected , or ] after task {}", index - 1),
                ))
            }
            Some(_) => {}
        }
        if index > 0 {
            // After a comma: the next task (a trailing comma before ] is refused by the parse).
            if input.peek_non_space().map_err(io(line))?.is_none() {
                return Err(line_error(line, "the array of tasks is not closed with ]"));
            }
        }
        let line = input.newlines + 1;
        let task = index;
        input.task_bytes = Some(0);
        let mut de = serde_json::Deserializer::from_reader(&mut input);
        let value = Value::deserialize(&mut de);
        drop(de);
        let too_long = input.task_bytes.is_some_and(|n| n > MAX_LINE_BYTES);
        input.task_bytes = None;
        let value = match value {
            Ok(v) => v,
            Err(_) if too_long => {
                return Err(line_error(
                    line,
                    format!("task {task} is longer than {MAX_LINE_BYTES} bytes"),
                ))
            }
            Err(e) => {
                let message = e.to_string();
                let message = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(m, _)| m);
                return Err(line_error(
                    line + e.line().saturating_sub(1) as u64,
                    format!("task {task}: invalid JSON: {message}"),
                ));
            }
        };
        counter.lines = input.newlines + 1;
        counter.bytes = input.bytes;
        let parsed = task_item(line, task, value, spec, options)?;
        each(parsed, counter, report)?;
        index += 1;
    }
    if let Some(b) = input.peek_non_space().map_err(io(input.newlines + 1))? {
        return Err(line_error(
            input.newlines + 1,
            format!("unexpected {:?} after the array of tasks", b as char),
        ));
    }
    Ok(())
}

/// One task as an item.
fn task_item(
    line: u64,
    task: u64,
    value: Value,
    spec: &ProjectSpec,
    options: &ImportOptions,
) -> Result<Parsed, EngineError> {
    let fail = |problem: String| line_error(line, format!("task {task}: {problem}"));
    let Value::Object(mut obj) = value else {
        return Err(fail("expected a JSON object".into()));
    };
    let Some(Value::Object(mut data)) = obj.remove("data") else {
        return Err(fail("no \"data\" object".into()));
    };
    let text = match data.remove(&options.text_field) {
        Some(Value::String(s)) => s,
        Some(_) => return Err(fail(format!("data.{} is not a string", options.text_field))),
        None => return Err(fail(format!("no data.{} field", options.text_field))),
    };
    let id = match data.remove(&options.id_field).or_else(|| obj.remove("id")) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(fail(
                "the task id must be a non-empty string or a number".into(),
            ))
        }
    };
    let mut meta = match obj.remove("meta") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(fail("\"meta\" must be an object".into())),
    };
    meta.extend(data);
    // Concord's export adds the item's tokens (Label Studio has no place for them).
    let tokens = match obj.get(CONCORD_KEY).and_then(|c| c.get("tokens")) {
        Some(given) if spec.task.is_spans() => {
            Some(read_tokens(line, &text, given).map_err(|e| with_task(e, Some(task)))?)
        }
        _ => None,
    };
    let map = OffsetMap::new(&text);
    let read = |what: &str, result: Option<&Value>| -> Result<GivenLabels, EngineError> {
        read_result(spec, &text, &map, what, result)
            .map_err(|problem| line_error(line, format!("task {task}: {problem}")))
    };
    let mut annotations = Vec::new();
    let mut foreign: Vec<(bool, GivenLabels)> = Vec::new();
    let mut list = |key: &str| -> Result<Vec<Value>, EngineError> {
        match obj.remove(key) {
            None | Some(Value::Null) => Ok(vec![]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(line_error(
                line,
                format!("task {task}: \"{key}\" must be a list"),
            )),
        }
    };
    let predictions = list("predictions")?;
    for (i, annotation) in list("annotations")?.iter().enumerate() {
        if annotation.get("was_cancelled").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let what = format!("annotation {i}");
        let given = read(&what, annotation.get("result"))?;
        match annotation.get(CONCORD_KEY).and_then(|c| c.get("annotator")) {
            Some(Value::String(name)) => {
                let concord = &annotation[CONCORD_KEY];
                annotations.push(ParsedAnnotation {
                    annotator: name.clone(),
                    value: given.value,
                    times: read_times(line, concord)?,
                });
            }
            Some(_) => return Err(fail(format!("{what}: concord.annotator must be a name"))),
            None => {
                let ground_truth =
                    annotation.get("ground_truth").and_then(Value::as_bool) == Some(true);
                foreign.push((ground_truth, given));
            }
        }
    }
    let labels = match foreign.iter().position(|(truth, _)| *truth) {
        Some(i) => Some(foreign.swap_remove(i).1),
        None if foreign.len() > 1 => {
            return Err(fail(format!(
                "{} annotations and none is marked ground_truth: mark the one to import",
                foreign.len()
            )))
        }
        None => foreign.pop().map(|(_, g)| g),
    };
    let prediction = match predictions.first() {
        Some(p) => {
            let mut given = read("prediction 0", p.get("result"))?;
            given.score = match p.get("score") {
                Some(v) => read_score(line, &format!("task {task}: prediction 0's score"), v)?,
                None => None,
            };
            let model_version = match p.get("model_version") {
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            };
            Some(GivenPrediction {
                labels: given,
                model_version,
            })
        }
        None => None,
    };
    Ok(Parsed {
        line,
        task: Some(task),
        text,
        id,
        meta,
        labels,
        annotations,
        tokens,
        prediction,
    })
}

/// The labels of one annotation's or prediction's `result` list.
fn read_result(
    spec: &ProjectSpec,
    text: &str,
    map: &OffsetMap,
    what: &str,
    result: Option<&Value>,
) -> Result<GivenLabels, String> {
    let items = match result {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(format!("{what}: \"result\" must be a list")),
    };
    let spans_project = spec.task.is_spans();
    let mut spans = Vec::new();
    let mut span_scores = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    // Each region's id and the spans it became (one per label).
    let mut regions: HashMap<&str, (usize, Vec<u32>)> = HashMap::new();
    // Relation results, resolved once every region is known (a relation may come first).
    let mut relation_results: Vec<(usize, &Value, Option<f32>)> = Vec::new();
    for (r, item) in items.iter().enumerate() {
        let at = format!("{what}, result {r}");
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("");
        let value = item.get("value").unwrap_or(&Value::Null);
        let score = match item.get("score") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if (0.0..=1.0).contains(&x) => Some(x as f32),
                _ => return Err(format!("{at}: the score must be between 0 and 1")),
            },
            Some(other) => {
                return Err(format!(
                    "{at}: the score must be a number between 0 and 1, not {other}"
                ))
            }
        };
        match (kind, spans_project) {
            ("labels", true) => {
                let unit = |key: &str| {
                    value
                        .get(key)
                        .and_then(as_u32)
                        .ok_or_else(|| format!("{at}: value.{key} must be a whole number"))
                };
                let (start16, end16) = (unit("start")?, unit("end")?);
                let convert = |u: u32| {
                    map.from_utf16(u).ok_or_else(|| {
                        format!(
                            "{at}: offset {u} is not a character boundary of the text, which has {} UTF-16 code units (Label Studio offsets count UTF-16 code units)",
                            map.utf16(map.len()).unwrap_or(0)
                        )
                    })
                };
                let (start, end) = (convert(start16)?, convert(end16)?);
                if let Some(given) = value.get("text") {
                    let slice = map.slice(text, start, end);
                    if slice.is_none() || given.as_str() != slice {
                        return Err(format!(
                            "{at}: value.text is {given} but the text at {start16}..{end16} (UTF-16) is {}",
                            slice.map_or("nothing".to_string(), |s| format!("{s:?}"))
                        ));
                    }
                }
                let Some(Value::Array(names)) = value.get("labels") else {
                    return Err(format!("{at}: value.labels must be a list"));
                };
                let mut indices = Vec::with_capacity(names.len());
                for name in names {
                    let Some(name) = name.as_str() else {
                        return Err(format!("{at}: value.labels must hold names"));
                    };
                    indices.push(
                        u32::try_from(spans.len())
                            .map_err(|_| format!("{at}: too many regions"))?,
                    );
                    spans.push(Span::new(start, end, name));
                    span_scores.push(score);
                }
                match item.get("id") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(id)) => {
                        if let Some((earlier, _)) = regions.insert(id, (r, indices)) {
                            return Err(format!(
                                "{at}: region id {id:?} is also the id of result {earlier}"
                            ));
                        }
                    }
                    Some(other) => {
                        return Err(format!("{at}: the id must be a string, not {other}"))
                    }
                }
            }
            ("relation", true) if spec.task.has_relations() => {
                relation_results.push((r, item, score));
            }
            ("relation", true) => {
                return Err(format!(
                    "{at}: a {} project has no relation types, so it reads no results of type \"relation\"",
                    spec.task.as_str()
                ));
            }
            ("choices", false) => {
                let Some(Value::Array(names)) = value.get("choices") else {
                    return Err(format!("{at}: value.choices must be a list"));
                };
                for name in names {
                    let Some(name) = name.as_str() else {
                        return Err(format!("{at}: value.choices must hold names"));
                    };
                    labels.push(name.to_string());
                }
            }
            (other, _) => {
                let wanted = if spec.task.has_relations() {
                    "labels\" or \"relation"
                } else if spans_project {
                    "labels"
                } else {
                    "choices"
                };
                return Err(format!(
                    "{at}: a {} project reads results of type \"{wanted}\", not {other:?}",
                    spec.task.as_str()
                ));
            }
        }
    }
    let mut relations = Vec::with_capacity(relation_results.len());
    let mut relation_scores = Vec::with_capacity(relation_results.len());
    for (r, item, score) in relation_results {
        let at = format!("{what}, result {r}");
        let end = |key: &str| -> Result<u32, String> {
            let Some(id) = item.get(key).and_then(Value::as_str) else {
                return Err(format!(
                    "{at}: a relation needs {key}, the id of a labels region"
                ));
            };
            match regions.get(id) {
                Some((_, indices)) if indices.len() == 1 => Ok(indices[0]),
                Some((region, indices)) => Err(format!(
                    "{at}: {key} {id:?} is result {region}, a region of {} labels: a relation links two spans of one label each",
                    indices.len()
                )),
                None => Err(format!(
                    "{at}: {key} {id:?} is the id of no labels region of {what}"
                )),
            }
        };
        let (from, to) = (end("from_id")?, end("to_id")?);
        let (from, to) = match item.get("direction").and_then(Value::as_str) {
            None | Some("right") => (from, to),
            Some("left") => (to, from),
            Some(other) => {
                return Err(format!(
                    "{at}: direction {other:?}: a relation here is directed, \"right\" (from_id → to_id) or \"left\" (to_id → from_id)"
                ))
            }
        };
        let names = match item.get("labels") {
            Some(Value::Array(names)) if !names.is_empty() => names,
            _ => {
                return Err(format!(
                "{at}: a relation needs its type in labels (a list of one or more relation types)"
            ))
            }
        };
        for name in names {
            let Some(name) = name.as_str() else {
                return Err(format!("{at}: labels must hold relation type names"));
            };
            relations.push(Relation::new(from, to, name));
            relation_scores.push(score);
        }
    }
    let value = if spans_project {
        AnnotationValue {
            spans,
            relations,
            ..AnnotationValue::default()
        }
    } else {
        AnnotationValue::labels(labels)
    };
    Ok(GivenLabels {
        value,
        score: None,
        span_scores,
        relation_scores,
    })
}
