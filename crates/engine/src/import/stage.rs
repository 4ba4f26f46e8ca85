//! The staging half of an import: each parsed item checked against the project's labels and
//! accounts, gathered into batches and written, on a second thread, to the store's staging
//! area past the project's visible end; duplicate texts are found there and reported, and
//! progress is reported per batch.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::mpsc::{Receiver, SyncSender};

use concord_domain::{AnnotationSource, AnnotationValue, ProjectSpec, UserId};
use concord_store::{AnnotationRecord, ItemRecord, StagedImport, StagedItem};

use super::parse::{parse_items, AnnotationTimes, Parsed};
use super::{line_error, DuplicateText, ImportOptions, ImportProgress, ImportReport};
use crate::{now_ms, Engine, EngineError};

/// Items per staged transaction: big enough that per-transaction costs vanish, small enough that
/// the three batches in flight (parsing, queued, staging) stay within a few tens of MB.
pub const BATCH_ITEMS: usize = 50_000;
/// Bytes of item text, ids and metadata per batch, at most (roughly): a batch of long texts ends
/// before [`BATCH_ITEMS`], so batches in flight stay bounded in memory whatever the items' size.
pub const BATCH_BYTES: usize = 32 * 1024 * 1024;

/// The bytes an item adds to a batch, roughly: its text, id, metadata and answers.
fn staged_bytes(item: &StagedItem) -> usize {
    let meta: usize = item
        .item
        .meta
        .iter()
        .map(|(k, v)| k.len() + v.to_string().len())
        .sum();
    item.item.text.len() + item.item.id.len() + meta + 64 * item.annotations.len()
}
const REPORTED_DUPLICATES: usize = 100;

/// Checked items on their way to staging, with the line each came from.
pub(super) struct Batch {
    items: Vec<StagedItem>,
    /// `lines[i]` is the input line of `items[i]`, for errors and duplicate reports.
    lines: Vec<u64>,
}

impl Engine {
    /// Stores each parsed batch as it arrives; fills in the counts staging decides.
    pub(super) fn stage_batches(
        &self,
        staged: &mut StagedImport,
        batches: Receiver<Batch>,
        options: &ImportOptions,
    ) -> Result<ImportReport, EngineError> {
        let mut report = ImportReport::default();
        for Batch { mut items, lines } in batches {
            let outcome = self
                .store()
                .stage_items(staged, &mut items, options.skip_duplicates)
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

    /// Reads and checks the input, handing batches of items to the staging thread.
    pub(super) fn check_and_batch(
        &self,
        spec: &ProjectSpec,
        input: impl BufRead,
        options: &ImportOptions,
        progress: &mut dyn FnMut(ImportProgress),
        to_stager: &SyncSender<Batch>,
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
                let full = Batch {
                    items: std::mem::replace(batch, Vec::with_capacity(BATCH_ITEMS)),
                    lines: std::mem::replace(lines, Vec::with_capacity(BATCH_ITEMS)),
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
            let line = parsed.line;
            let item = self.check_item(spec, parsed, &mut annotators, now, report)?;
            batch_bytes += staged_bytes(&item);
            lines.push(line);
            batch.push(item);
            counter.items += 1;
            if batch.len() >= BATCH_ITEMS || batch_bytes >= BATCH_BYTES {
                batch_bytes = 0;
                flush(&mut batch, &mut lines)?;
                progress(*counter);
            }
            Ok(())
        };
        parse_items(input, options, &mut counter, &mut report, &mut sink)?;
        flush(&mut batch, &mut lines)?;
        progress(counter);
        if counter.items == 0 {
            return Err(line_error(
                counter.lines.max(1),
                "the file contains no items",
            ));
        }
        Ok(report)
    }

    /// Checks one parsed line against the project's labels and accounts: the item as it will
    /// be stored.
    fn check_item(
        &self,
        spec: &ProjectSpec,
        parsed: Parsed,
        annotators: &mut HashMap<String, UserId>,
        now: u64,
        report: &mut ImportReport,
    ) -> Result<StagedItem, EngineError> {
        let line = parsed.line;
        if parsed.text.trim().is_empty() {
            return Err(line_error(line, "the text is empty"));
        }
        let gold = match parsed.gold {
            Some(labels) => Some(check_labels(
                spec,
                line,
                &parsed.text,
                "gold label",
                AnnotationValue::labels(labels),
            )?),
            None => None,
        };
        let mut annotations = Vec::with_capacity(parsed.annotations.len());
        for annotation in parsed.annotations {
            let name = annotation.annotator;
            let user = match annotators.get(&name) {
                Some(u) => *u,
                None => {
                    let Some((id, _)) = self.store().user_by_name(&name)? else {
                        return Err(line_error(line, format!("annotator {name:?} has no account here; create it first (concord user add {name})")));
                    };
                    annotators.insert(name.clone(), id);
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
                created_ms: now,
                updated_ms: now,
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
                },
            ));
        }
        report.annotations += annotations.len() as u64;
        // Span projects fix their tokens at import, so offsets and token snapping never change.
        let tokens = if spec.task.is_spans() {
            concord_domain::tokens::tokenize(&parsed.text)
        } else {
            Vec::new()
        };
        Ok(StagedItem {
            item: ItemRecord {
                id: parsed.id,
                text: parsed.text,
                meta: parsed.meta,
                gold,
                gold_source: None,
                tokens,
            },
            annotations,
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
        let allowed: Vec<&str> = spec.labels.iter().map(|l| l.name.as_str()).collect();
        line_error(
            line,
            format!("{what}: {e} (labels: {})", allowed.join(", ")),
        )
    })
}
