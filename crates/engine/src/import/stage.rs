//! The staging half of an import: each parsed item checked against the project's labels and
//! accounts, gathered into batches and written, on a second thread, to the store's staging
//! area past the project's visible end; duplicate texts are found there and reported, and
//! progress is reported per batch.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::mpsc::{Receiver, SyncSender};

use concord_domain::{
    AnnotationSource, AnnotationValue, DomainError, ProjectSpec, RelationTriple, SuggestedRelation,
    SuggestedSpan, UserId,
};
use concord_store::{
    AnnotationRecord, ItemRecord, ModelVersionRecord, StagedImport, StagedItem, SuggestionRecord,
    VersionParams,
};

use super::parse::{parse_items, AnnotationTimes, GivenLabels, Parsed, ParsedAnnotation};
use super::{
    line_error, DuplicateText, ImportOptions, ImportProgress, ImportReport, ImportedLabels,
    EXTERNAL_TRAINER,
};
use crate::{now_ms, Engine, EngineError};

/// Items per staged transaction: big enough that per-transaction costs vanish, small enough that
/// the three batches in flight (parsing, queued, staging) stay within a few tens of MB.
pub const BATCH_ITEMS: usize = 50_000;
/// Bytes of item text, ids and metadata per batch, at most (roughly): a batch of long texts ends
/// before [`BATCH_ITEMS`], so batches in flight stay bounded in memory whatever the items' size.
pub const BATCH_BYTES: usize = 32 * 1024 * 1024;

/// The bytes an item adds to a batch, roughly: its text, id, metadata and answers.
fn staged_bytes(item: &StagedItem, suggestion: Option<&SuggestionRecord>) -> usize {
    let meta: usize = item
        .item
        .meta
        .iter()
        .map(|(k, v)| k.len() + v.to_string().len())
        .sum();
    // A relation takes about what a span does.
    let parts = |v: &AnnotationValue| v.spans.len() + v.relations.len();
    let spans: usize = item
        .annotations
        .iter()
        .map(|(_, a)| parts(&a.value))
        .sum::<usize>()
        + item.item.gold.as_ref().map_or(0, parts)
        + suggestion.map_or(0, |s| s.spans.len() + s.relations.len());
    item.item.text.len()
        + item.item.id.len()
        + meta
        + 64 * item.annotations.len()
        + 8 * item.item.tokens.len()
        + 48 * spans
}
const REPORTED_DUPLICATES: usize = 100;

/// Checked items on their way to staging, with the line each came from.
pub(super) struct Batch {
    items: Vec<StagedItem>,
    /// `lines[i]` is the input line of `items[i]`, for errors and duplicate reports.
    lines: Vec<u64>,
    /// `suggestions[i]`: the model suggestion the file gives for `items[i]`, if any.
    suggestions: Vec<Option<SuggestionRecord>>,
}

/// What checking needs across items: the accounts met so far, and where the file's labels
/// go.
struct CheckState {
    annotators: HashMap<String, UserId>,
    now: u64,
    /// The name of the external model version, once suggestions are met: the importer's, or
    /// the first Label Studio prediction's `model_version`.
    version_name: Option<String>,
}

/// The name of an imported version when neither the importer nor the file names it.
const UNNAMED_VERSION: &str = "imported";

impl Engine {
    /// Stores each parsed batch as it arrives; fills in the counts staging decides.
    pub(super) fn stage_batches(
        &self,
        staged: &mut StagedImport,
        batches: Receiver<Batch>,
        options: &ImportOptions,
    ) -> Result<ImportReport, EngineError> {
        let mut report = ImportReport::default();
        for Batch {
            mut items,
            lines,
            suggestions,
        } in batches
        {
            let outcome = self
                .store()
                .stage_items_with_suggestions(
                    staged,
                    &mut items,
                    &suggestions,
                    options.skip_duplicates,
                )
                .map_err(|(index, e)| match (index.and_then(|i| lines.get(i)), e) {
                    (Some(line), concord_store::StoreError::Exists(what)) => {
                        line_error(*line, format!("{what} is already used by another item"))
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

    /// Reads and checks the input, handing batches of items to the staging thread. Returns the
    /// report and, when the file gave model suggestions, the version they belong to.
    pub(super) fn check_and_batch(
        &self,
        spec: &ProjectSpec,
        input: impl BufRead,
        options: &ImportOptions,
        progress: &mut dyn FnMut(ImportProgress),
        to_stager: &SyncSender<Batch>,
    ) -> Result<(ImportReport, Option<ModelVersionRecord>), EngineError> {
        let mut report = ImportReport::default();
        let mut batch: Vec<StagedItem> = Vec::with_capacity(BATCH_ITEMS);
        let mut lines: Vec<u64> = Vec::with_capacity(BATCH_ITEMS);
        let mut suggestions: Vec<Option<SuggestionRecord>> = Vec::with_capacity(BATCH_ITEMS);
        let mut state = CheckState {
            annotators: HashMap::new(),
            now: now_ms(),
            version_name: None,
        };
        if let ImportedLabels::Annotator { name } = &options.labels_as {
            // The account must exist before any line is read: the error names no line.
            if self.store().user_by_name(name)?.is_none() {
                return Err(EngineError::Invalid(format!(
                    "annotator {name:?} has no account here; create it first (concord user add {name})"
                )));
            }
        }
        let mut counter = ImportProgress::default();
        let flush = |batch: &mut Vec<StagedItem>,
                     lines: &mut Vec<u64>,
                     suggestions: &mut Vec<Option<SuggestionRecord>>|
         -> Result<(), EngineError> {
            if batch.is_empty() {
                return Ok(());
            }
            let full = Batch {
                items: std::mem::replace(batch, Vec::with_capacity(BATCH_ITEMS)),
                lines: std::mem::replace(lines, Vec::with_capacity(BATCH_ITEMS)),
                suggestions: std::mem::replace(suggestions, Vec::with_capacity(BATCH_ITEMS)),
            };
            // A closed channel means staging failed; its error is reported instead.
            to_stager
                .send(full)
                .map_err(|_| EngineError::internal_fault("import staging stopped"))
        };
        let mut batch_bytes = 0usize;
        let mut sink = |parsed: Parsed,
                        counter: &mut ImportProgress,
                        report: &mut ImportReport|
         -> Result<(), EngineError> {
            let (line, task) = (parsed.line, parsed.task);
            let (item, suggestion) = self
                .check_item(spec, options, parsed, &mut state, report)
                .map_err(|e| super::with_task(e, task))?;
            batch_bytes += staged_bytes(&item, suggestion.as_ref());
            lines.push(line);
            batch.push(item);
            suggestions.push(suggestion);
            counter.items += 1;
            if batch.len() >= BATCH_ITEMS || batch_bytes >= BATCH_BYTES {
                batch_bytes = 0;
                flush(&mut batch, &mut lines, &mut suggestions)?;
                progress(*counter);
            }
            Ok(())
        };
        parse_items(input, spec, options, &mut counter, &mut report, &mut sink)?;
        flush(&mut batch, &mut lines, &mut suggestions)?;
        progress(counter);
        if counter.items == 0 {
            return Err(line_error(
                counter.lines.max(1),
                "the file contains no items",
            ));
        }
        let version = state.version_name.map(|name| ModelVersionRecord {
            trainer: EXTERNAL_TRAINER.into(),
            created_ms: state.now,
            parent: None,
            params: VersionParams {
                model: None,
                encoder_file: None,
                calibration_items: None,
                settings: [(
                    "imported_from".to_string(),
                    serde_json::Value::from(options.format.as_str()),
                )]
                .into_iter()
                .collect(),
            },
            train_size: 0,
            train_hash: String::new(),
            labels: spec.labels.iter().map(|l| l.name.clone()).collect(),
            encoder: String::new(),
            metrics: None,
            classifier: serde_json::Value::Null,
            name: Some(name),
            held_out: Vec::new(),
            held_out_spans: Vec::new(),
            confirmed: None,
            auto: None,
            comparison: None,
        });
        Ok((report, version))
    }

    /// Checks one parsed line against the project's labels and accounts: the item as it will
    /// be stored, and the suggestion the file gives for it.
    fn check_item(
        &self,
        spec: &ProjectSpec,
        options: &ImportOptions,
        mut parsed: Parsed,
        state: &mut CheckState,
        report: &mut ImportReport,
    ) -> Result<(StagedItem, Option<SuggestionRecord>), EngineError> {
        let line = parsed.line;
        if parsed.text.trim().is_empty() {
            return Err(line_error(line, "the text is empty"));
        }
        let mut gold = None;
        let mut suggestion = None;
        match (&options.labels_as, parsed.labels.take()) {
            (_, None) => {}
            (ImportedLabels::Gold, Some(labels)) => {
                gold = Some(check_labels(
                    spec,
                    line,
                    &parsed.text,
                    "gold label",
                    labels.value,
                )?);
            }
            (ImportedLabels::Annotator { name }, Some(labels)) => {
                // Ahead of the file's own answers, so that the same annotator given twice is
                // refused like any other repeat.
                parsed.annotations.insert(
                    0,
                    ParsedAnnotation {
                        annotator: name.clone(),
                        value: labels.value,
                        times: None,
                    },
                );
            }
            (ImportedLabels::Model { version_name }, Some(labels)) => {
                if parsed.prediction.is_some() {
                    return Err(line_error(
                        line,
                        "the labels are to be a model's suggestions, and a prediction is given too: keep one",
                    ));
                }
                state
                    .version_name
                    .get_or_insert_with(|| version_name.clone());
                suggestion =
                    Some(self.suggestion(spec, line, &parsed.text, labels, state, report)?);
            }
        }
        if let Some(prediction) = parsed.prediction.take() {
            let name = match &options.labels_as {
                ImportedLabels::Model { version_name } => Some(version_name.clone()),
                _ => prediction.model_version,
            };
            state
                .version_name
                .get_or_insert_with(|| name.unwrap_or_else(|| UNNAMED_VERSION.to_string()));
            suggestion = Some(self.suggestion(
                spec,
                line,
                &parsed.text,
                prediction.labels,
                state,
                report,
            )?);
        }
        let mut annotations = Vec::with_capacity(parsed.annotations.len());
        for annotation in parsed.annotations {
            let name = annotation.annotator;
            let user = match state.annotators.get(&name) {
                Some(u) => *u,
                None => {
                    let Some((id, _)) = self.store().user_by_name(&name)? else {
                        return Err(line_error(line, format!("annotator {name:?} has no account here; create it first (concord user add {name})")));
                    };
                    state.annotators.insert(name.clone(), id);
                    id
                }
            };
            let value = check_labels(
                spec,
                line,
                &parsed.text,
                &format!("label of annotator {name:?}"),
                annotation.value,
            )?;
            let times = annotation.times.unwrap_or(AnnotationTimes {
                created_ms: state.now,
                updated_ms: state.now,
                time_spent_ms: 0,
                source: AnnotationSource::Import,
            });
            if annotations.iter().any(|(u, _)| *u == user) {
                return Err(line_error(
                    line,
                    format!("annotator {name:?} appears twice"),
                ));
            }
            annotations.push((
                user,
                AnnotationRecord {
                    value,
                    created_ms: times.created_ms,
                    updated_ms: times.updated_ms,
                    time_spent_ms: times.time_spent_ms,
                    source: times.source,
                    live_counted: false,
                },
            ));
        }
        report.annotations += annotations.len() as u64;
        // Span projects fix their tokens at import, so offsets and token snapping never change:
        // the file's tokens when it gives them (CoNLL, Prodigy), Concord's own otherwise.
        let tokens = if spec.task.is_spans() {
            parsed
                .tokens
                .unwrap_or_else(|| concord_domain::tokens::tokenize(&parsed.text))
        } else {
            Vec::new()
        };
        // Models, patterns and the page all walk an item's tokens: one item's work stays
        // bounded whatever format it came in.
        if tokens.len() > concord_domain::tokens::MAX_TOKENS {
            return Err(line_error(
                line,
                format!(
                    "the text has {} tokens; an item has at most {} (split it into several items)",
                    tokens.len(),
                    concord_domain::tokens::MAX_TOKENS
                ),
            ));
        }
        Ok((
            StagedItem {
                item: ItemRecord {
                    id: parsed.id,
                    text: parsed.text,
                    meta: parsed.meta,
                    gold,
                    gold_source: None,
                    tokens,
                },
                annotations,
            },
            suggestion,
        ))
    }

    /// A suggestion of the external model from labels the file gives: checked like an answer,
    /// each span with its own score, else the item's, else 0 (counted in the report).
    fn suggestion(
        &self,
        spec: &ProjectSpec,
        line: u64,
        text: &str,
        given: GivenLabels,
        state: &CheckState,
        report: &mut ImportReport,
    ) -> Result<SuggestionRecord, EngineError> {
        // Validation sorts the spans: remember each one's score by the span itself (a
        // repeated span is refused, so the key is unique).
        let scores: HashMap<(u32, u32, String), Option<f32>> = given
            .value
            .spans
            .iter()
            .zip(
                given
                    .span_scores
                    .iter()
                    .copied()
                    .chain(std::iter::repeat(None)),
            )
            .map(|(s, score)| ((s.start, s.end, s.label.clone()), score))
            .collect();
        // Relations are re-indexed too: remember each one's score by its ends and type (a
        // repeated relation is refused, so the key is unique).
        let relation_scores: HashMap<RelationTriple, Option<f32>> = given
            .value
            .relations
            .iter()
            .zip(
                given
                    .relation_scores
                    .iter()
                    .copied()
                    .chain(std::iter::repeat(None)),
            )
            .filter_map(|(r, score)| Some((RelationTriple::of(&given.value.spans, r)?, score)))
            .collect();
        let unscored = given.score.is_none()
            && scores.values().all(Option::is_none)
            && relation_scores.values().all(Option::is_none);
        let value = check_labels(spec, line, text, "suggestion", given.value)?;
        let relations: Vec<SuggestedRelation> = value
            .relations
            .iter()
            .map(|r| SuggestedRelation {
                from: r.from,
                to: r.to,
                label: r.label.clone(),
                confidence: RelationTriple::of(&value.spans, r)
                    .and_then(|t| relation_scores.get(&t).copied().flatten())
                    .or(given.score)
                    .unwrap_or(0.0),
            })
            .collect();
        let spans: Vec<SuggestedSpan> = value
            .spans
            .iter()
            .map(|s| SuggestedSpan {
                start: s.start,
                end: s.end,
                label: s.label.clone(),
                confidence: scores
                    .get(&(s.start, s.end, s.label.clone()))
                    .copied()
                    .flatten()
                    .or(given.score)
                    // No score, no claim: like an unvalidated rule, "accept all above the
                    // threshold" never takes it.
                    .unwrap_or(0.0),
            })
            .collect();
        // The item's certainty: the file's, else the least sure span's, else none claimed.
        let confidence = given.score.unwrap_or_else(|| {
            spans
                .iter()
                .map(|s| s.confidence)
                .reduce(f32::min)
                .unwrap_or(0.0)
        });
        report.suggestions += 1;
        if unscored {
            report.suggestions_without_score += 1;
        }
        Ok(SuggestionRecord {
            labels: value.labels,
            confidence,
            probabilities: Vec::new(),
            version: 0,
            created_ms: state.now,
            spans,
            relations,
        })
    }
}

fn check_labels(
    spec: &ProjectSpec,
    line: u64,
    text: &str,
    what: &str,
    value: AnnotationValue,
) -> Result<AnnotationValue, EngineError> {
    value.validate(spec, text).map_err(|e| {
        // The list that helps fix the line: relation types for a relation's type, entity
        // labels otherwise.
        let (kind, allowed): (&str, Vec<&str>) = match e {
            DomainError::UnknownRelationLabel { .. } => (
                "relation types",
                spec.relation_labels
                    .iter()
                    .map(|l| l.name.as_str())
                    .collect(),
            ),
            _ => (
                "labels",
                spec.labels.iter().map(|l| l.name.as_str()).collect(),
            ),
        };
        line_error(
            line,
            format!("{what}: {e} ({kind}: {})", allowed.join(", ")),
        )
    })
}
