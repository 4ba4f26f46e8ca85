//! The parsing half of an import: JSONL, CSV and plain text turned into items, each with the
//! line it came from, blank lines counted and skipped (CoNLL and Label Studio in their own
//! modules). The first malformed line is an error with its number. Nothing here reads or
//! writes the store.

use std::io::BufRead;

use concord_domain::{AnnotationSource, AnnotationValue, ProjectSpec, Token};
use serde_json::{Map, Value};

use super::relations::{read_answer, read_prodigy_relations, read_relations};
use super::spans::{read_score, read_spans, read_tokens};
use super::{
    line_error, ImportFormat, ImportOptions, ImportProgress, ImportReport, ImportedLabels,
};
use crate::csv_columns::{self, ColumnRole, ImportColumns};
use crate::EngineError;

/// Longest accepted line (JSONL/text) or record (CSV), in bytes.
pub(super) const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// The UTF-8 byte order mark.
pub(super) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// One parsed input line before it is checked against the project.
pub(super) struct Parsed {
    pub line: u64,
    /// The index of the Label Studio task the item is, named in errors beside the line.
    pub task: Option<u64>,
    pub text: String,
    pub id: String,
    pub meta: Map<String, Value>,
    /// The file's labels for the item: gold, an annotator's answer or a model's suggestion,
    /// as [`ImportedLabels`] says.
    pub labels: Option<GivenLabels>,
    pub annotations: Vec<ParsedAnnotation>,
    /// Tokens the file gives (CoNLL, Prodigy), kept as the item's instead of Concord's own.
    pub tokens: Option<Vec<Token>>,
    /// A prediction the file carries besides its labels (Label Studio's `predictions`).
    pub prediction: Option<GivenPrediction>,
}

impl Parsed {
    /// An item of just a text (plain text lines).
    pub(super) fn text_only(line: u64, text: String) -> Parsed {
        Parsed {
            line,
            task: None,
            text,
            id: String::new(),
            meta: Map::new(),
            labels: None,
            annotations: vec![],
            tokens: None,
            prediction: None,
        }
    }
}

/// Labels (or spans) a file gives, with the scores it gives them (used when they are a model's
/// suggestions).
pub(super) struct GivenLabels {
    pub value: AnnotationValue,
    /// The item-level score, 0–1.
    pub score: Option<f32>,
    /// Each span's own score, in the order of `value.spans` as read.
    pub span_scores: Vec<Option<f32>>,
    /// Each relation's own score, in the order of `value.relations` as read.
    pub relation_scores: Vec<Option<f32>>,
}

impl GivenLabels {
    pub(super) fn unscored(value: AnnotationValue) -> GivenLabels {
        let span_scores = vec![None; value.spans.len()];
        let relation_scores = vec![None; value.relations.len()];
        GivenLabels {
            value,
            score: None,
            span_scores,
            relation_scores,
        }
    }
}

/// A model's prediction a file carries, with the model's name when it gives one.
pub(super) struct GivenPrediction {
    pub labels: GivenLabels,
    pub model_version: Option<String>,
}

/// One answer given on an input line.
pub(super) struct ParsedAnnotation {
    /// The annotator's account name.
    pub annotator: String,
    pub value: AnnotationValue,
    /// The answer's times and source, when the line carried all of them (an export does);
    /// otherwise the import's time and [`AnnotationSource::Import`].
    pub times: Option<AnnotationTimes>,
}

/// When and how an imported answer was given, as an export records it.
pub(super) struct AnnotationTimes {
    pub created_ms: u64,
    pub updated_ms: u64,
    pub time_spent_ms: u64,
    pub source: AnnotationSource,
}

/// Fields of Concord's own JSONL export that are derived, not data: ignored on import so that
/// an export re-imports to the same project.
/// (Gold re-imports as imported gold, whoever set it.)
const DERIVED_FIELDS: &[&str] = &["aggregate", "gold_source", "gold_question", "suggestion"];

/// Receives each parsed item with the running progress and report.
pub(super) type ItemSink<'a> =
    dyn FnMut(Parsed, &mut ImportProgress, &mut ImportReport) -> Result<(), EngineError> + 'a;

/// Reads `input` in `options.format`, handing every item to `each` in input order.
pub(super) fn parse_items(
    input: impl BufRead,
    spec: &ProjectSpec,
    options: &ImportOptions,
    counter: &mut ImportProgress,
    report: &mut ImportReport,
    each: &mut ItemSink<'_>,
) -> Result<(), EngineError> {
    match options.format {
        ImportFormat::Jsonl => read_lines(input, counter, report, |line, text, counter, report| {
            each(parse_json_line(line, text, spec, options)?, counter, report)
        }),
        ImportFormat::Text => read_lines(input, counter, report, |line, text, counter, report| {
            each(Parsed::text_only(line, text.to_string()), counter, report)
        }),
        ImportFormat::Csv => read_csv(input, options, counter, report, each),
        ImportFormat::Conll => super::conll::read_conll(input, spec, counter, report, each),
        ImportFormat::LabelStudio => {
            super::label_studio::read_tasks(input, spec, options, counter, report, each)
        }
        ImportFormat::Doccano => {
            read_lines(input, counter, report, |line, text, counter, report| {
                each(
                    super::doccano::parse_line(line, text, spec, options)?,
                    counter,
                    report,
                )
            })
        }
    }
}

/// Reads `\n`-separated lines with a length limit, checking UTF-8 and skipping blank lines.
pub(super) fn read_lines(
    input: impl BufRead,
    counter: &mut ImportProgress,
    report: &mut ImportReport,
    mut each: impl FnMut(u64, &str, &mut ImportProgress, &mut ImportReport) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    read_all_lines(input, counter, |line, text, counter| {
        if text.trim().is_empty() {
            report.blank_lines += 1;
            return Ok(());
        }
        each(line, text, counter, report)
    })
}

/// Reads `\n`-separated lines with a length limit, checking UTF-8, handing every line (blank
/// ones too) without its line ending to `each`.
pub(super) fn read_all_lines(
    mut input: impl BufRead,
    counter: &mut ImportProgress,
    mut each: impl FnMut(u64, &str, &mut ImportProgress) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let line = counter.lines + 1;
        let reader: &mut dyn BufRead = &mut input;
        let n = std::io::Read::take(reader, MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| line_error(line, format!("read error: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        if buf.len() > MAX_LINE_BYTES {
            return Err(line_error(
                line,
                format!("the line is longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        counter.lines = line;
        counter.bytes += n as u64;
        // Editors on Windows start UTF-8 files with a byte order mark; it is no part of the
        // first line's JSON or text (the CSV reader drops it the same way).
        let content = match buf.strip_prefix(UTF8_BOM) {
            Some(rest) if line == 1 => rest,
            _ => &buf[..],
        };
        let text = std::str::from_utf8(content).map_err(|e| {
            line_error(
                line,
                format!(
                    "not valid UTF-8 (at byte {} of the line)",
                    e.valid_up_to() + 1
                ),
            )
        })?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        each(line, text, counter)?;
    }
}

/// A JSONL line as the JSON object it must be (Concord's JSONL, Prodigy's and doccano's).
pub(super) fn read_object(line: u64, text: &str) -> Result<Map<String, Value>, EngineError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| line_error(line, format!("invalid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(line_error(line, "expected a JSON object"));
    };
    Ok(obj)
}

/// The item's text, taken out of a line's object from `field`, which must be there.
pub(super) fn take_text(
    line: u64,
    obj: &mut Map<String, Value>,
    field: &str,
) -> Result<String, EngineError> {
    match obj.remove(field) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(line_error(line, format!("field {field:?} is not a string"))),
        None => Err(line_error(line, format!("no {field:?} field"))),
    }
}

/// The item's id, taken out of a line's object from `field`: a string or a number, or empty
/// when the line gives none.
pub(super) fn take_id(
    line: u64,
    obj: &mut Map<String, Value>,
    field: &str,
) -> Result<String, EngineError> {
    match obj.remove(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(line_error(
            line,
            format!("field {field:?} must be a non-empty string or a number"),
        )),
    }
}

/// The answers under a line's `annotations` (absent or null is none), each read by `read`.
pub(super) fn take_annotations(
    line: u64,
    obj: &mut Map<String, Value>,
    read: impl FnMut(&Value) -> Result<ParsedAnnotation, EngineError>,
) -> Result<Vec<ParsedAnnotation>, EngineError> {
    match obj.remove("annotations") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list.iter().map(read).collect(),
        Some(_) => Err(line_error(line, "field \"annotations\" must be a list")),
    }
}

/// The item's metadata: the line's `meta` object (a `meta` that is not an object is kept
/// under `meta`) with every field the line has left beside it, so that nothing of the line
/// is lost.
pub(super) fn into_meta(mut obj: Map<String, Value>) -> Map<String, Value> {
    let mut meta = match obj.remove("meta") {
        Some(Value::Object(m)) => m,
        Some(other) => Map::from_iter([("meta".to_string(), other)]),
        None => Map::new(),
    };
    meta.extend(obj);
    meta
}

fn parse_json_line(
    line: u64,
    text: &str,
    spec: &ProjectSpec,
    options: &ImportOptions,
) -> Result<Parsed, EngineError> {
    let mut obj = read_object(line, text)?;
    let text = take_text(line, &mut obj, &options.text_field)?;
    let id = take_id(line, &mut obj, &options.id_field)?;
    let spans_project = spec.task.is_spans();
    let tokens = match obj.get("tokens") {
        Some(given) if spans_project && !given.is_null() => Some(read_tokens(line, &text, given)?),
        _ => None,
    };
    if spans_project {
        obj.remove("tokens");
    }
    // The file's score for its labels, read only when they are a model's suggestions (a
    // `score` field is metadata otherwise, as it always was).
    let score = match (&options.labels_as, obj.get("score")) {
        (ImportedLabels::Model { .. }, Some(v)) => {
            let score = read_score(line, "score", v)?;
            obj.remove("score");
            score
        }
        _ => None,
    };
    let mut labels = match obj.remove(&options.gold_field) {
        None | Some(Value::Null) => None,
        Some(v) if spans_project => {
            let what = format!("field {:?}", options.gold_field);
            Some(read_answer(line, &what, &text, tokens.as_deref(), &v)?)
        }
        Some(v) => Some(GivenLabels::unscored(AnnotationValue::labels(
            label_list(&v).ok_or_else(|| {
                line_error(
                    line,
                    format!(
                        "field {:?} must be a label or a list of labels",
                        options.gold_field
                    ),
                )
            })?,
        ))),
    };
    if spans_project {
        labels = prodigy_spans(line, &text, tokens.as_deref(), &mut obj, labels)?;
    }
    if let Some(labels) = labels.as_mut() {
        labels.score = labels.score.or(score);
    }
    let annotations = take_annotations(line, &mut obj, |a| {
        parse_annotation(line, a, &text, tokens.as_deref(), spans_project)
    })?;
    for derived in DERIVED_FIELDS {
        obj.remove(*derived);
    }
    let meta = into_meta(obj);
    Ok(Parsed {
        line,
        task: None,
        text,
        id,
        meta,
        labels,
        annotations,
        tokens,
        prediction: None,
    })
}

/// Prodigy's labels: `spans` (and, from `rel.manual`, `relations`) with `answer` `accept` (or
/// no answer). A rejected or ignored example keeps its spans, relations and answer as
/// metadata, since they are not an accepted answer.
fn prodigy_spans(
    line: u64,
    text: &str,
    tokens: Option<&[Token]>,
    obj: &mut Map<String, Value>,
    gold: Option<GivenLabels>,
) -> Result<Option<GivenLabels>, EngineError> {
    let accepted = match obj.get("answer") {
        None => true,
        Some(Value::String(a)) => a == "accept",
        Some(_) => return Err(line_error(line, "field \"answer\" must be a string")),
    };
    let has_relations = obj
        .get("relations")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty());
    if accepted && has_relations && !obj.contains_key("spans") {
        return Err(line_error(
            line,
            "Prodigy \"relations\" are given without the \"spans\" they link",
        ));
    }
    if !accepted || !obj.contains_key("spans") {
        return Ok(gold);
    }
    if gold.is_some() {
        return Err(line_error(
            line,
            "both a gold field and Prodigy \"spans\" are given: keep one",
        ));
    }
    obj.remove("answer");
    let relations = obj.remove("relations");
    match obj.remove("spans") {
        None | Some(Value::Null) => Ok(None),
        Some(spans) => {
            let mut given = read_spans(line, "field \"spans\"", text, tokens, &spans)?;
            let relations =
                read_prodigy_relations(line, &given.value.spans, tokens, relations.as_ref())?;
            given.value.relations = relations.relations;
            given.relation_scores = relations.scores;
            Ok(Some(given))
        }
    }
}

fn label_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(list) => list.iter().map(|l| l.as_str().map(String::from)).collect(),
        _ => None,
    }
}

fn parse_annotation(
    line: u64,
    a: &Value,
    text: &str,
    tokens: Option<&[Token]>,
    spans_project: bool,
) -> Result<ParsedAnnotation, EngineError> {
    let field = if spans_project { "spans" } else { "labels" };
    let bad = || {
        line_error(
            line,
            format!("each entry of \"annotations\" needs \"annotator\" and \"{field}\""),
        )
    };
    let name = a.get("annotator").and_then(Value::as_str).ok_or_else(bad)?;
    let value = if spans_project {
        let spans = a.get("spans").ok_or_else(bad)?;
        let what = format!("spans of annotator {name:?}");
        let mut value = read_spans(line, &what, text, tokens, spans)?.value;
        let what = format!("relations of annotator {name:?}");
        value.relations = read_relations(line, &what, a.get("relations"))?.relations;
        value
    } else {
        AnnotationValue::labels(a.get("labels").and_then(label_list).ok_or_else(bad)?)
    };
    let times = read_times(line, a)?;
    Ok(ParsedAnnotation {
        annotator: name.to_string(),
        value,
        times,
    })
}

/// An answer's times and source as Concord's exports record them (`created_ms`,
/// `updated_ms`, `time_spent_ms`, `source`), when `a` has all of them.
pub(super) fn read_times(line: u64, a: &Value) -> Result<Option<AnnotationTimes>, EngineError> {
    let num = |k: &str| a.get(k).and_then(Value::as_u64);
    let source = a
        .get("source")
        .cloned()
        .map(serde_json::from_value::<AnnotationSource>);
    match (
        num("created_ms"),
        num("updated_ms"),
        num("time_spent_ms"),
        source,
    ) {
        (Some(created_ms), Some(updated_ms), Some(time_spent_ms), Some(Ok(source))) => {
            Ok(Some(AnnotationTimes {
                created_ms,
                updated_ms,
                time_spent_ms,
                source,
            }))
        }
        (_, _, _, Some(Err(e))) => Err(line_error(line, format!("annotation source: {e}"))),
        _ => Ok(None),
    }
}

/// What the CSV reader has been handed: bytes since the last complete record (so an unclosed
/// quote fails once a record has grown past [`MAX_LINE_BYTES`] instead of reading the rest of
/// the upload into memory first) and where the line breaks are (to name the line a record
/// starts on: the csv crate's own line numbers skip blank lines and miscount CRLF files).
#[derive(Default)]
struct CsvInputState {
    /// Bytes handed out so far.
    offset: u64,
    /// Bytes handed out since the last complete record.
    since_record: usize,
    /// Offsets of the `\r` and `\n` bytes not yet behind a located record, in order.
    breaks: std::collections::VecDeque<(u64, u8)>,
    /// `\n` bytes already behind a located record.
    newlines_before: u64,
}

impl CsvInputState {
    /// The 1-based line of the record the csv crate places at byte `byte`. The crate counts a
    /// record from the end of the previous one's content, so the line breaks (and blank lines)
    /// right at `byte` still come before the record. Calls must not go backwards.
    fn line_at(&mut self, byte: u64) -> u64 {
        while let Some(&(at, b)) = self.breaks.front() {
            if at >= byte {
                break;
            }
            self.newlines_before += u64::from(b == b'\n');
            self.breaks.pop_front();
        }
        // The run of line breaks that starts right at `byte`.
        let newlines_at = self
            .breaks
            .iter()
            .zip(byte..)
            .take_while(|(&(at, _), expected)| at == *expected)
            .filter(|(&(_, b), _)| b == b'\n')
            .count() as u64;
        1 + self.newlines_before + newlines_at
    }
}

/// The CSV reader's input, recording what [`CsvInputState`] needs.
struct CsvInput<R> {
    inner: R,
    state: std::rc::Rc<std::cell::RefCell<CsvInputState>>,
}

/// The io error [`CsvInput`] stops the CSV reader with.
#[derive(Debug, thiserror::Error)]
#[error("a CSV record longer than {MAX_LINE_BYTES} bytes")]
struct RecordTooLong;

/// Read-ahead the CSV reader may hold beyond the record it is reading (its buffer is 8 KiB).
const CSV_READ_AHEAD: usize = 64 * 1024;

impl<R: std::io::Read> std::io::Read for CsvInput<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut state = self.state.borrow_mut();
        if state.since_record > MAX_LINE_BYTES + CSV_READ_AHEAD {
            return Err(std::io::Error::other(RecordTooLong));
        }
        let n = self.inner.read(buf)?;
        let start = state.offset;
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' || b == b'\r' {
                state.breaks.push_back((start + i as u64, b));
            }
        }
        state.offset += n as u64;
        state.since_record += n;
        Ok(n)
    }
}

/// Whether a CSV error is [`CsvInput`]'s refusal.
fn is_record_too_long(e: &csv::Error) -> bool {
    matches!(e.kind(), csv::ErrorKind::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<RecordTooLong>()))
}

fn read_csv(
    input: impl BufRead,
    options: &ImportOptions,
    counter: &mut ImportProgress,
    report: &mut ImportReport,
    sink: &mut ItemSink<'_>,
) -> Result<(), EngineError> {
    let input_state = std::rc::Rc::new(std::cell::RefCell::new(CsvInputState::default()));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(CsvInput {
            inner: input,
            state: input_state.clone(),
        });
    let line_at = |position: Option<&csv::Position>| {
        position.map_or(1, |p| input_state.borrow_mut().line_at(p.byte()))
    };
    let too_long = |line: u64| {
        line_error(
            line,
            format!("the record is longer than {MAX_LINE_BYTES} bytes"),
        )
    };
    let csv_err = |e: csv::Error| {
        let line = line_at(e.position());
        match e.kind() {
            csv::ErrorKind::Utf8 { err: utf8, .. } => line_error(
                line,
                format!("not valid UTF-8 (in field {})", utf8.field() + 1),
            ),
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => line_error(
                line,
                format!("has {len} fields, the header has {expected_len}"),
            ),
            _ => line_error(line, format!("invalid CSV: {e}")),
        }
    };
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(e) if is_record_too_long(&e) => return Err(too_long(1)),
        Err(e) => return Err(csv_err(e)),
    };
    input_state.borrow_mut().since_record = 0;
    // Where the next record starts (the reader's own position moves on inside a record).
    let mut next_record_byte = reader.position().byte();
    if headers.is_empty() {
        return Err(line_error(1, "the file is empty"));
    }
    let columns = ImportColumns::resolve(
        &headers,
        &options.text_field,
        &options.id_field,
        &options.gold_field,
    )
    .ok_or_else(|| {
        line_error(
            1,
            format!(
                "no column named {:?} (columns: {})",
                options.text_field,
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let mut record = csv::StringRecord::new();
    counter.lines = 1;
    loop {
        let more = match reader.read_record(&mut record) {
            Ok(more) => more,
            // The record that grew too long starts where the reader stands: after the last
            // complete one.
            Err(e) if is_record_too_long(&e) => {
                return Err(too_long(input_state.borrow_mut().line_at(next_record_byte)))
            }
            Err(e) => return Err(csv_err(e)),
        };
        if !more {
            return Ok(());
        }
        input_state.borrow_mut().since_record = 0;
        next_record_byte = reader.position().byte();
        let line = line_at(record.position());
        counter.lines = line;
        counter.bytes = record.position().map(|p| p.byte()).unwrap_or(counter.bytes);
        if record.as_slice().len() > MAX_LINE_BYTES {
            return Err(too_long(line));
        }
        // Cells as they were before Concord's export neutralised formulas (a leading `'`).
        let field = |i: usize| csv_columns::read_cell(record.get(i).unwrap_or(""));
        let mut meta = match columns.meta {
            Some(i) => {
                csv_columns::read_meta(field(i)).map_err(|e| line_error(line, e.to_string()))?
            }
            None => Map::new(),
        };
        let mut annotations = Vec::new();
        for (i, role) in columns.roles.iter().enumerate() {
            match *role {
                ColumnRole::Annotator(name) => {
                    if let Some(labels) = csv_columns::read_labels(field(i)) {
                        annotations.push(ParsedAnnotation {
                            annotator: name.to_string(),
                            value: AnnotationValue::labels(labels),
                            times: None,
                        });
                    }
                }
                ColumnRole::Extra(name) => {
                    meta.insert(name.to_string(), Value::String(field(i).to_string()));
                }
                ColumnRole::Text
                | ColumnRole::Id
                | ColumnRole::Gold
                | ColumnRole::Meta
                | ColumnRole::Derived => {}
            }
        }
        let parsed = Parsed {
            line,
            task: None,
            text: field(columns.text).to_string(),
            id: columns.id.map(field).unwrap_or("").to_string(),
            meta,
            labels: columns
                .gold
                .and_then(|i| csv_columns::read_labels(field(i)))
                .map(|labels| GivenLabels::unscored(AnnotationValue::labels(labels))),
            annotations,
            tokens: None,
            prediction: None,
        };
        sink(parsed, counter, report)?;
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufReader, Read};

    use super::*;

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
    fn an_unclosed_quote_fails_at_the_record_limit_without_reading_the_rest() {
        // Two good records, then a quote that never closes, then 64 MB more.
        let head = "text,id\nfirst,1\nsecond,2\n\"never closed,3\n".as_bytes();
        let rest = std::io::repeat(b'x').take(64 * 1024 * 1024);
        let read = std::rc::Rc::new(std::cell::Cell::new(0));
        let input = BufReader::new(Counted {
            inner: head.chain(rest),
            read: read.clone(),
        });
        let mut items = 0;
        let error = read_csv(
            input,
            &ImportOptions::default(),
            &mut ImportProgress::default(),
            &mut ImportReport::default(),
            &mut |_, _, _| {
                items += 1;
                Ok(())
            },
        )
        .expect_err("an endless record is refused");
        assert_eq!(items, 2);
        match error {
            EngineError::Import { line, problem } => {
                assert_eq!(line, 4, "the line the unclosed record starts on");
                assert!(problem.contains("longer than"), "{problem}");
            }
            other => panic!("expected an import error, got {other:?}"),
        }
        assert!(
            read.get() < MAX_LINE_BYTES + 2 * CSV_READ_AHEAD,
            "read {} bytes of a 64 MB input",
            read.get()
        );
    }
}

#[cfg(test)]
mod line_tests {
    use super::*;

    /// The line each CSV record is reported on, or the error's line.
    fn lines(csv: &str) -> Vec<Result<u64, u64>> {
        let mut out = Vec::new();
        let result = read_csv(
            csv.as_bytes(),
            &ImportOptions::default(),
            &mut ImportProgress::default(),
            &mut ImportReport::default(),
            &mut |_, progress, _| {
                out.push(Ok(progress.lines));
                Ok(())
            },
        );
        if let Err(EngineError::Import { line, .. }) = result {
            out.push(Err(line));
        }
        out
    }

    #[test]
    fn records_and_errors_name_their_own_line_with_blank_lines_crlf_and_multiline_fields() {
        let check = |csv: &str, expected: &[Result<u64, u64>]| {
            assert_eq!(lines(csv), expected, "{csv:?}");
        };
        check("text\na\nb\n", &[Ok(2), Ok(3)]);
        check("text\r\na\r\nb\r\n", &[Ok(2), Ok(3)]);
        check("text\na\n\nb\n", &[Ok(2), Ok(4)]);
        check("text\r\na\r\n\r\n\r\nb,c\r\n", &[Ok(2), Err(5)]);
        check("text\n\"a\nb\"\nc\n\n\nd,e\n", &[Ok(2), Ok(4), Err(7)]);
        check("text,id\n\"two\r\nlines\",1\r\nx\r\n", &[Ok(2), Err(4)]);
    }
}
