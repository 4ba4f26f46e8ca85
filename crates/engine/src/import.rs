//! Import of JSONL, CSV and plain text: streamed line by line, staged in batched transactions,
//! and all-or-nothing — the first bad line aborts the import with its line number and nothing
//! of it stays stored.

use std::collections::HashMap;
use std::io::BufRead;

use concord_domain::{AnnotationSource, AnnotationValue, ProjectId, ProjectSpec, Role, UserId};
use concord_store::{AnnotationRecord, ItemRecord, StagedImport, StagedItem};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{now_ms, Engine, EngineError, Principal};

/// Longest accepted line (JSONL/text) or record (CSV), in bytes.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
/// Items per staged transaction: big enough that per-transaction costs vanish, small enough that
/// the three batches in flight (parsing, queued, staging) stay within a few tens of MB.
const BATCH_ITEMS: usize = 50_000;
const REPORTED_DUPLICATES: usize = 100;

/// Parsed items on their way to staging, with the line each came from.
type Batch = (Vec<StagedItem>, Vec<u64>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportFormat {
    Jsonl,
    Csv,
    Text,
}

impl ImportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json" => Some(ImportFormat::Jsonl),
            "csv" => Some(ImportFormat::Csv),
            "text" | "txt" => Some(ImportFormat::Text),
            _ => None,
        }
    }

    /// Guesses the format from a file name's extension.
    pub fn from_file_name(name: &str) -> Option<Self> {
        name.rsplit_once('.').and_then(|(_, ext)| Self::parse(ext))
    }
}

/// How to read an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportOptions {
    pub format: ImportFormat,
    /// Field (JSONL) or column (CSV) holding the text.
    pub text_field: String,
    pub id_field: String,
    /// Field or column holding the gold label(s).
    pub gold_field: String,
    /// Skip items whose text is already in the project (or earlier in the file) instead of
    /// keeping them; either way they are reported.
    pub skip_duplicates: bool,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            format: ImportFormat::Jsonl,
            text_field: "text".into(),
            id_field: "id".into(),
            gold_field: "gold".into(),
            skip_duplicates: false,
        }
    }
}

/// An item given directly (API, UI) rather than as a file line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemInput {
    pub text: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub meta: Map<String, Value>,
    #[serde(default)]
    pub gold: Option<Vec<String>>,
}

/// A duplicate text found during an import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DuplicateText {
    pub line: u64,
    pub existing_id: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub imported: u64,
    /// Items whose text was already present (kept or skipped per the options).
    pub duplicates: u64,
    pub skipped_duplicates: u64,
    /// The first duplicates, with their lines.
    pub duplicate_examples: Vec<DuplicateText>,
    pub blank_lines: u64,
    pub annotations: u64,
}

/// Progress reported while an import runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportProgress {
    pub lines: u64,
    pub bytes: u64,
    pub items: u64,
}

fn err(line: u64, problem: impl Into<String>) -> EngineError {
    EngineError::Import {
        line,
        problem: problem.into(),
    }
}

/// One parsed input line before it is checked against the project.
struct Parsed {
    line: u64,
    text: String,
    id: String,
    meta: Map<String, Value>,
    gold: Option<Vec<String>>,
    annotations: Vec<(String, AnnotationValue, Option<AnnotationTimes>)>,
}

struct AnnotationTimes {
    created_ms: u64,
    updated_ms: u64,
    time_spent_ms: u64,
    source: AnnotationSource,
}

/// Fields of Concord's own JSONL export that are derived, not data: ignored on import so that
/// an export re-imports to the same project.
/// (Gold re-imports as imported gold, whoever set it.)
const DERIVED_FIELDS: &[&str] = &["aggregate", "gold_source", "gold_question", "suggestion"];

impl Engine {
    /// Imports items from a reader. Project admins only. On error nothing is stored.
    pub fn import(
        &self,
        actor: &Principal,
        project: ProjectId,
        input: impl BufRead,
        options: &ImportOptions,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportReport, EngineError> {
        self.authorize(actor, project, Role::Admin)?;
        let spec = self.project_record(project)?.spec;
        let _guard = self.import_guard(project)?;
        let mut staged = self.store().begin_import(project)?;
        match self.run_import(&spec, &mut staged, input, options, progress) {
            Ok(report) => {
                self.store().commit_import(staged)?;
                tracing::info!(project = %project, imported = report.imported, "import committed");
                self.reload_assignment(project)?;
                Ok(report)
            }
            Err(e) => {
                if let Err(rollback) = self.store().abort_import(staged) {
                    tracing::error!(%rollback, "rolling back a failed import failed; it will be retried at next start");
                }
                Err(e)
            }
        }
    }

    /// Imports items given as values (API and UI); same rules as a file.
    pub fn import_items(
        &self,
        actor: &Principal,
        project: ProjectId,
        items: Vec<ItemInput>,
        skip_duplicates: bool,
    ) -> Result<ImportReport, EngineError> {
        let mut jsonl = Vec::new();
        for item in items {
            let mut obj = Map::new();
            if let Some(id) = item.id {
                obj.insert("id".into(), Value::String(id));
            }
            obj.insert("text".into(), Value::String(item.text));
            if !item.meta.is_empty() {
                obj.insert("meta".into(), Value::Object(item.meta));
            }
            if let Some(gold) = item.gold {
                obj.insert("gold".into(), gold.into_iter().map(Value::String).collect());
            }
            serde_json::to_writer(&mut jsonl, &obj)
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            jsonl.push(b'\n');
        }
        let options = ImportOptions {
            skip_duplicates,
            ..ImportOptions::default()
        };
        self.import(actor, project, jsonl.as_slice(), &options, &mut |_| {})
    }

    fn import_guard(&self, project: ProjectId) -> Result<ImportGuard<'_>, EngineError> {
        let mut running = self
            .inner
            .imports
            .lock()
            .map_err(|_| EngineError::Internal("import registry poisoned".into()))?;
        if !running.insert(project) {
            return Err(EngineError::Conflict(
                "another import into this project is running".into(),
            ));
        }
        Ok(ImportGuard {
            engine: self,
            project,
        })
    }

    fn run_import(
        &self,
        spec: &ProjectSpec,
        staged: &mut StagedImport,
        input: impl BufRead,
        options: &ImportOptions,
        progress: &mut dyn FnMut(ImportProgress),
    ) -> Result<ImportReport, EngineError> {
        // Parsing runs here while a second thread stages the previous batch: redb writes are
        // single-threaded, so the two overlap on a two-core machine.
        std::thread::scope(|scope| {
            let (to_stager, batches) = std::sync::mpsc::sync_channel::<Batch>(1);
            let stager = scope.spawn(move || self.stage_batches(staged, batches, options));
            let parsed = self.parse_input(spec, input, options, progress, &to_stager);
            drop(to_stager);
            let staged_report = stager
                .join()
                .map_err(|_| EngineError::Internal("import staging thread panicked".into()))?;
            // A staging error stops the parser (its channel closes), so it is the cause.
            let staged_report = staged_report?;
            let mut report = parsed?;
            report.imported = staged_report.imported;
            report.duplicates = staged_report.duplicates;
            report.skipped_duplicates = staged_report.skipped_duplicates;
            report.duplicate_examples = staged_report.duplicate_examples;
            Ok(report)
        })
    }

    /// Stores each parsed batch as it arrives; fills in the counts staging decides.
    fn stage_batches(
        &self,
        staged: &mut StagedImport,
        batches: std::sync::mpsc::Receiver<Batch>,
        options: &ImportOptions,
    ) -> Result<ImportReport, EngineError> {
        let mut report = ImportReport::default();
        for (mut batch, lines) in batches {
            let outcome = self
                .store()
                .stage_items(staged, &mut batch, options.skip_duplicates)
                .map_err(|(index, e)| match (index.and_then(|i| lines.get(i)), e) {
                    (Some(line), concord_store::StoreError::Exists(what)) => {
                        err(*line, format!("{what} is already used by another item"))
                    }
                    (_, e) => EngineError::from(e),
                })?;
            report.imported += outcome.inserted;
            report.duplicates += outcome.duplicate_texts.len() as u64;
            if options.skip_duplicates {
                report.skipped_duplicates += outcome.duplicate_texts.len() as u64;
            }
            for (index, existing_id) in outcome.duplicate_texts {
                if report.duplicate_examples.len() < REPORTED_DUPLICATES {
                    let line = lines.get(index).copied().unwrap_or_default();
                    report
                        .duplicate_examples
                        .push(DuplicateText { line, existing_id });
                }
            }
        }
        Ok(report)
    }

    /// Reads and checks the input, handing batches of items to the staging thread.
    fn parse_input(
        &self,
        spec: &ProjectSpec,
        input: impl BufRead,
        options: &ImportOptions,
        progress: &mut dyn FnMut(ImportProgress),
        to_stager: &std::sync::mpsc::SyncSender<Batch>,
    ) -> Result<ImportReport, EngineError> {
        let mut report = ImportReport::default();
        let mut batch: Vec<StagedItem> = Vec::with_capacity(BATCH_ITEMS);
        let mut lines: Vec<u64> = Vec::with_capacity(BATCH_ITEMS);
        let mut annotators: HashMap<String, UserId> = HashMap::new();
        let mut counter = ImportProgress::default();
        let now = now_ms();
        let flush =
            |batch: &mut Vec<StagedItem>, lines: &mut Vec<u64>| -> Result<(), EngineError> {
                if batch.is_empty() {
                    return Ok(());
                }
                let full = (
                    std::mem::replace(batch, Vec::with_capacity(BATCH_ITEMS)),
                    std::mem::replace(lines, Vec::with_capacity(BATCH_ITEMS)),
                );
                // A closed channel means staging failed; its error is reported instead.
                to_stager
                    .send(full)
                    .map_err(|_| EngineError::Internal("import staging stopped".into()))
            };
        let mut sink = |parsed: Parsed,
                        counter: &mut ImportProgress,
                        report: &mut ImportReport|
         -> Result<(), EngineError> {
            let item = self.check_item(spec, parsed, &mut annotators, now, report)?;
            lines.push(item.0);
            batch.push(item.1);
            counter.items += 1;
            if batch.len() >= BATCH_ITEMS {
                flush(&mut batch, &mut lines)?;
                progress(*counter);
            }
            Ok(())
        };
        match options.format {
            ImportFormat::Jsonl => read_lines(
                input,
                &mut counter,
                &mut report,
                |line, text, counter, report| {
                    let parsed = parse_json_line(line, text, options)?;
                    sink(parsed, counter, report)
                },
            )?,
            ImportFormat::Text => read_lines(
                input,
                &mut counter,
                &mut report,
                |line, text, counter, report| {
                    let parsed = Parsed {
                        line,
                        text: text.to_string(),
                        id: String::new(),
                        meta: Map::new(),
                        gold: None,
                        annotations: vec![],
                    };
                    sink(parsed, counter, report)
                },
            )?,
            ImportFormat::Csv => read_csv(input, options, &mut counter, &mut report, &mut sink)?,
        }
        flush(&mut batch, &mut lines)?;
        progress(counter);
        if counter.items == 0 {
            return Err(err(counter.lines.max(1), "the file contains no items"));
        }
        Ok(report)
    }

    /// Checks one parsed line against the project's schema and accounts.
    fn check_item(
        &self,
        spec: &ProjectSpec,
        parsed: Parsed,
        annotators: &mut HashMap<String, UserId>,
        now: u64,
        report: &mut ImportReport,
    ) -> Result<(u64, StagedItem), EngineError> {
        let line = parsed.line;
        if parsed.text.trim().is_empty() {
            return Err(err(line, "the text is empty"));
        }
        let gold = match parsed.gold {
            Some(labels) => Some(check_labels(
                spec,
                line,
                "gold label",
                AnnotationValue::labels(labels),
            )?),
            None => None,
        };
        let mut annotations = Vec::with_capacity(parsed.annotations.len());
        for (name, value, times) in parsed.annotations {
            let user = match annotators.get(&name) {
                Some(u) => *u,
                None => {
                    let Some((id, _)) = self.store().user_by_name(&name)? else {
                        return Err(err(line, format!("annotator {name:?} has no account here; create it first (concord user add {name})")));
                    };
                    annotators.insert(name.clone(), id);
                    id
                }
            };
            let value = check_labels(spec, line, &format!("label of annotator {name:?}"), value)?;
            let times = times.unwrap_or(AnnotationTimes {
                created_ms: now,
                updated_ms: now,
                time_spent_ms: 0,
                source: AnnotationSource::Import,
            });
            if annotations.iter().any(|(u, _)| *u == user) {
                return Err(err(line, format!("annotator {name:?} appears twice")));
            }
            annotations.push((
                user,
                AnnotationRecord {
                    value,
                    created_ms: times.created_ms,
                    updated_ms: times.updated_ms,
                    time_spent_ms: times.time_spent_ms,
                    source: times.source,
                },
            ));
        }
        report.annotations += annotations.len() as u64;
        Ok((
            line,
            StagedItem {
                item: ItemRecord {
                    id: parsed.id,
                    text: parsed.text,
                    meta: parsed.meta,
                    gold,
                    gold_source: None,
                },
                annotations,
            },
        ))
    }
}

fn check_labels(
    spec: &ProjectSpec,
    line: u64,
    what: &str,
    value: AnnotationValue,
) -> Result<AnnotationValue, EngineError> {
    value.validate(spec).map_err(|e| {
        let allowed: Vec<&str> = spec.labels.iter().map(|l| l.name.as_str()).collect();
        err(
            line,
            format!("{what}: {e} (labels: {})", allowed.join(", ")),
        )
    })
}

struct ImportGuard<'a> {
    engine: &'a Engine,
    project: ProjectId,
}

impl Drop for ImportGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut running) = self.engine.inner.imports.lock() {
            running.remove(&self.project);
        }
    }
}

/// Reads `\n`-separated lines with a length limit, checking UTF-8 and skipping blank lines.
fn read_lines(
    mut input: impl BufRead,
    counter: &mut ImportProgress,
    report: &mut ImportReport,
    mut each: impl FnMut(u64, &str, &mut ImportProgress, &mut ImportReport) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let line = counter.lines + 1;
        let reader: &mut dyn BufRead = &mut input;
        let n = std::io::Read::take(reader, MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| err(line, format!("read error: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        if buf.len() > MAX_LINE_BYTES {
            return Err(err(
                line,
                format!("the line is longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        counter.lines = line;
        counter.bytes += n as u64;
        let text = std::str::from_utf8(&buf).map_err(|e| {
            err(
                line,
                format!(
                    "not valid UTF-8 (at byte {} of the line)",
                    e.valid_up_to() + 1
                ),
            )
        })?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.trim().is_empty() {
            report.blank_lines += 1;
            continue;
        }
        each(line, text, counter, report)?;
    }
}

fn parse_json_line(line: u64, text: &str, options: &ImportOptions) -> Result<Parsed, EngineError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| err(line, format!("invalid JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(err(line, "expected a JSON object"));
    };
    let text = match obj.remove(&options.text_field) {
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(err(
                line,
                format!("field {:?} is not a string", options.text_field),
            ))
        }
        None => return Err(err(line, format!("no {:?} field", options.text_field))),
    };
    let id = match obj.remove(&options.id_field) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err(err(
                line,
                format!(
                    "field {:?} must be a non-empty string or a number",
                    options.id_field
                ),
            ))
        }
    };
    let gold = match obj.remove(&options.gold_field) {
        None | Some(Value::Null) => None,
        Some(v) => Some(label_list(&v).ok_or_else(|| {
            err(
                line,
                format!(
                    "field {:?} must be a label or a list of labels",
                    options.gold_field
                ),
            )
        })?),
    };
    let annotations = match obj.remove("annotations") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(list)) => list
            .iter()
            .map(|a| parse_annotation(line, a))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(err(line, "field \"annotations\" must be a list")),
    };
    for derived in DERIVED_FIELDS {
        obj.remove(*derived);
    }
    let mut meta = match obj.remove("meta") {
        Some(Value::Object(m)) => m,
        Some(other) => {
            let mut m = Map::new();
            m.insert("meta".into(), other);
            m
        }
        None => Map::new(),
    };
    meta.extend(obj);
    Ok(Parsed {
        line,
        text,
        id,
        meta,
        gold,
        annotations,
    })
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
) -> Result<(String, AnnotationValue, Option<AnnotationTimes>), EngineError> {
    let bad = || {
        err(
            line,
            "each entry of \"annotations\" needs \"annotator\" and \"labels\"",
        )
    };
    let name = a.get("annotator").and_then(Value::as_str).ok_or_else(bad)?;
    let labels = a.get("labels").and_then(label_list).ok_or_else(bad)?;
    let num = |k: &str| a.get(k).and_then(Value::as_u64);
    let source = a
        .get("source")
        .cloned()
        .map(serde_json::from_value::<AnnotationSource>);
    let times = match (
        num("created_ms"),
        num("updated_ms"),
        num("time_spent_ms"),
        source,
    ) {
        (Some(created_ms), Some(updated_ms), Some(time_spent_ms), Some(Ok(source))) => {
            Some(AnnotationTimes {
                created_ms,
                updated_ms,
                time_spent_ms,
                source,
            })
        }
        (_, _, _, Some(Err(e))) => return Err(err(line, format!("annotation source: {e}"))),
        _ => None,
    };
    Ok((name.to_string(), AnnotationValue::labels(labels), times))
}

/// Columns of Concord's CSV export that are derived, not data.
const DERIVED_COLUMNS: &[&str] = &[
    "aggregate",
    "aggregate_status",
    "gold_source",
    "gold_question",
    "suggestion",
    "suggestion_confidence",
    "suggestion_version",
];
/// Prefix of the per-annotator columns in Concord's CSV export.
pub(crate) const ANNOTATOR_COLUMN: &str = "ann:";

fn read_csv(
    input: impl BufRead,
    options: &ImportOptions,
    counter: &mut ImportProgress,
    report: &mut ImportReport,
    sink: &mut dyn FnMut(Parsed, &mut ImportProgress, &mut ImportReport) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let csv_err = |e: csv::Error| {
        let line = e.position().map(|p| p.line()).unwrap_or(1);
        match e.kind() {
            csv::ErrorKind::Utf8 { err: utf8, .. } => err(
                line,
                format!("not valid UTF-8 (in field {})", utf8.field() + 1),
            ),
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => err(
                line,
                format!("has {len} fields, the header has {expected_len}"),
            ),
            _ => err(line, format!("invalid CSV: {e}")),
        }
    };
    let headers = reader.headers().map_err(csv_err)?.clone();
    if headers.is_empty() {
        return Err(err(1, "the file is empty"));
    }
    let column = |name: &str| headers.iter().position(|h| h == name);
    let text_col = column(&options.text_field).ok_or_else(|| {
        err(
            1,
            format!(
                "no column named {:?} (columns: {})",
                options.text_field,
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
        )
    })?;
    let id_col = column(&options.id_field);
    let gold_col = column(&options.gold_field);
    let meta_col = column("meta");
    let mut record = csv::StringRecord::new();
    counter.lines = 1;
    loop {
        let more = reader.read_record(&mut record).map_err(csv_err)?;
        if !more {
            return Ok(());
        }
        let line = record
            .position()
            .map(|p| p.line())
            .unwrap_or(counter.lines + 1);
        counter.lines = line;
        counter.bytes = record.position().map(|p| p.byte()).unwrap_or(counter.bytes);
        if record.as_slice().len() > MAX_LINE_BYTES {
            return Err(err(
                line,
                format!("the record is longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        let field = |i: usize| record.get(i).unwrap_or("");
        let mut meta = match meta_col.map(field).filter(|m| !m.is_empty()) {
            Some(m) => match serde_json::from_str::<Value>(m) {
                Ok(Value::Object(o)) => o,
                _ => return Err(err(line, "column \"meta\" must hold a JSON object")),
            },
            None => Map::new(),
        };
        let mut annotations = Vec::new();
        for (i, h) in headers.iter().enumerate() {
            if Some(i) == Some(text_col)
                || Some(i) == id_col
                || Some(i) == gold_col
                || Some(i) == meta_col
                || DERIVED_COLUMNS.contains(&h)
            {
                continue;
            }
            if let Some(name) = h.strip_prefix(ANNOTATOR_COLUMN) {
                if !field(i).is_empty() {
                    annotations.push((
                        name.to_string(),
                        AnnotationValue::labels(split_labels(field(i))),
                        None,
                    ));
                }
                continue;
            }
            meta.insert(h.to_string(), Value::String(field(i).to_string()));
        }
        let gold = gold_col
            .map(field)
            .filter(|g| !g.is_empty())
            .map(split_labels);
        let parsed = Parsed {
            line,
            text: field(text_col).to_string(),
            id: id_col.map(field).unwrap_or("").to_string(),
            meta,
            gold,
            annotations,
        };
        sink(parsed, counter, report)?;
    }
}

/// Multi-label cells hold labels separated by `|` (label names cannot contain it); a cell of
/// just `|` is an explicit empty answer ("none of the labels"), an empty cell no answer.
pub(crate) fn split_labels(cell: &str) -> Vec<String> {
    if cell == EMPTY_ANSWER {
        return vec![];
    }
    cell.split('|').map(|s| s.to_string()).collect()
}

pub(crate) const EMPTY_ANSWER: &str = "|";

/// The inverse of [`split_labels`].
pub(crate) fn join_labels(labels: &[String]) -> String {
    if labels.is_empty() {
        EMPTY_ANSWER.to_string()
    } else {
        labels.join("|")
    }
}
