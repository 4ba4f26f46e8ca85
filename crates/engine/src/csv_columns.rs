//! The CSV column contract: every column of Concord's CSV export, in order, which of them are
//! data and which are derived, and how each cell is written and read back. The export writes
//! rows through [`ExportRow`] and the import resolves a header through [`ImportColumns`], so the
//! two sides cannot drift apart and an export re-imports with the default import options.
//!
//! Cells a spreadsheet would run as a formula are written with a leading `'` (see
//! [`neutralise_formula`]) and read back without it ([`read_cell`]), here and in every other
//! CSV Concord writes.

use std::collections::BTreeSet;

use csv::StringRecord;
use serde_json::{Map, Value};

/// The item's id (import: [`crate::ImportOptions::id_field`], default this name).
pub(crate) const ID: &str = "id";
/// The item's text (import: [`crate::ImportOptions::text_field`], default this name).
pub(crate) const TEXT: &str = "text";
/// The gold label(s) (import: [`crate::ImportOptions::gold_field`], default this name).
pub(crate) const GOLD: &str = "gold";
/// Where the gold came from. Derived.
pub(crate) const GOLD_SOURCE: &str = "gold_source";
/// `true` or `false`: whether the item is a gold question. Derived.
pub(crate) const GOLD_QUESTION: &str = "gold_question";
/// The item's metadata as a JSON object, empty when it has none.
pub(crate) const META: &str = "meta";
/// The aggregated labels of the answers. Derived.
pub(crate) const AGGREGATE: &str = "aggregate";
/// `none`, `agreed` or `tie`. Derived.
pub(crate) const AGGREGATE_STATUS: &str = "aggregate_status";
/// The latest model suggestion's labels. Derived.
pub(crate) const SUGGESTION: &str = "suggestion";
/// Its confidence. Derived.
pub(crate) const SUGGESTION_CONFIDENCE: &str = "suggestion_confidence";
/// The model version that made it. Derived.
pub(crate) const SUGGESTION_VERSION: &str = "suggestion_version";
/// Prefix of the per-annotator columns: `ann:NAME` holds NAME's answer.
pub(crate) const ANNOTATOR_PREFIX: &str = "ann:";

/// The columns before the annotator columns, in export order.
const LEADING: [&str; 6] = [ID, TEXT, GOLD, GOLD_SOURCE, GOLD_QUESTION, META];
/// The columns after the annotator columns, in export order.
const TRAILING: [&str; 5] = [
    AGGREGATE,
    AGGREGATE_STATUS,
    SUGGESTION,
    SUGGESTION_CONFIDENCE,
    SUGGESTION_VERSION,
];
/// Columns computed from the data rather than data: the import ignores them, so re-importing
/// an export neither stores them as metadata nor mistakes them for answers.
const DERIVED: [&str; 7] = [
    GOLD_SOURCE,
    GOLD_QUESTION,
    AGGREGATE,
    AGGREGATE_STATUS,
    SUGGESTION,
    SUGGESTION_CONFIDENCE,
    SUGGESTION_VERSION,
];

/// The first characters that make a spreadsheet (Excel, LibreOffice, Google Sheets) read a
/// cell as a formula, or that it drops before reading one.
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether `cell` is a plain decimal number (`-0.25`, `+3`, `1e-7`): a spreadsheet reads it as
/// a number, never as a formula, so it is written as it is (negative coefficients stay
/// numbers).
fn is_plain_number(cell: &str) -> bool {
    let unsigned = cell.strip_prefix(['-', '+']).unwrap_or(cell);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['-', '+']).unwrap_or(e))),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((whole, fraction)) => {
            (digits(whole) || whole.is_empty())
                && (digits(fraction) || fraction.is_empty())
                && !(whole.is_empty() && fraction.is_empty())
        }
        None => digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(digits)
}

/// Whether `cell`, past any leading `'`, starts with a formula trigger.
fn starts_like_formula(cell: &str) -> bool {
    cell.trim_start_matches('\'').starts_with(FORMULA_TRIGGERS)
}

/// A cell as Concord writes it to CSV: one that a spreadsheet would run as a formula (it
/// starts with `=`, `+`, `-`, `@`, a tab or a carriage return, and is not a plain number)
/// gets a leading `'`, which spreadsheets show as text. So that [`read_cell`] can tell such a
/// prefix from a text that itself starts with `'`, a cell that starts with one or more `'`
/// followed by a trigger gets one more.
pub(crate) fn neutralise_formula(cell: String) -> String {
    if starts_like_formula(&cell) && !is_plain_number(&cell) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// A CSV cell as it was before [`neutralise_formula`]: one `'` fewer when it starts with `'`
/// and, past its leading `'`s, with a formula trigger; any other cell as it is.
pub(crate) fn read_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if starts_like_formula(rest) => rest,
        _ => cell,
    }
}

/// A label cell holding the explicit empty answer ("none of the labels"); an empty cell is
/// no answer.
const EMPTY_ANSWER: &str = "|";

/// Labels as one cell: separated by `|` (label names cannot contain it), [`EMPTY_ANSWER`] for
/// an answer with no label.
pub(crate) fn write_labels(labels: &[String]) -> String {
    if labels.is_empty() {
        EMPTY_ANSWER.to_string()
    } else {
        labels.join("|")
    }
}

/// The labels of a non-empty label cell: the inverse of [`write_labels`].
fn split_labels(cell: &str) -> Vec<String> {
    if cell == EMPTY_ANSWER {
        return vec![];
    }
    cell.split('|').map(|s| s.to_string()).collect()
}

/// A label cell read back: `None` for an empty cell (no answer, no gold).
pub(crate) fn read_labels(cell: &str) -> Option<Vec<String>> {
    (!cell.is_empty()).then(|| split_labels(cell))
}

/// The header of an export whose annotators are `annotators` (sorted, so the same project
/// always exports the same bytes).
pub(crate) fn export_header(annotators: &BTreeSet<String>) -> Vec<String> {
    let mut header: Vec<String> = LEADING.iter().map(|c| c.to_string()).collect();
    header.extend(annotators.iter().map(|a| format!("{ANNOTATOR_PREFIX}{a}")));
    header.extend(TRAILING.iter().map(|c| c.to_string()));
    header
}

/// One exported item, field by field; [`ExportRow::into_record`] lays it out in the order of
/// [`export_header`].
pub(crate) struct ExportRow<'a> {
    pub id: String,
    pub text: String,
    /// The effective gold labels and their source's name.
    pub gold: Option<(&'a [String], &'static str)>,
    pub gold_question: bool,
    pub meta: Map<String, Value>,
    /// Each annotator's answer in header order; `None` where that annotator gave none.
    pub answers: Vec<Option<&'a [String]>>,
    pub aggregate_status: &'static str,
    pub aggregate_labels: &'a [String],
    /// The latest suggestion: labels, confidence and model version.
    pub suggestion: Option<(&'a [String], f32, u64)>,
}

impl ExportRow<'_> {
    /// The row's cells.
    pub(crate) fn into_record(self) -> Vec<String> {
        let (gold, gold_source) = match self.gold {
            Some((labels, source)) => (write_labels(labels), source.to_string()),
            None => Default::default(),
        };
        let mut row = vec![
            self.id,
            self.text,
            gold,
            gold_source,
            self.gold_question.to_string(),
            if self.meta.is_empty() {
                String::new()
            } else {
                Value::Object(self.meta).to_string()
            },
        ];
        row.extend(
            self.answers
                .into_iter()
                .map(|a| a.map(write_labels).unwrap_or_default()),
        );
        // An aggregate of no labels is written empty, not as the empty answer: it is derived
        // and never read back.
        row.push(self.aggregate_labels.join("|"));
        row.push(self.aggregate_status.to_string());
        match self.suggestion {
            Some((labels, confidence, version)) => {
                row.push(write_labels(labels));
                row.push(confidence.to_string());
                row.push(version.to_string());
            }
            None => row.extend([String::new(), String::new(), String::new()]),
        }
        // Labels and ids can start like formulas too; the meta cell (a JSON object), numbers
        // and fixed words never change.
        row.into_iter().map(neutralise_formula).collect()
    }
}

/// What one column of an imported CSV file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnRole<'h> {
    Text,
    Id,
    Gold,
    Meta,
    /// A derived export column, ignored.
    Derived,
    /// `ann:NAME`: NAME's answers.
    Annotator(&'h str),
    /// Any other column: stored in the item's metadata under its name.
    Extra(&'h str),
}

/// An imported CSV header, resolved once: where the text, id, gold and metadata are, and what
/// every column holds.
#[derive(Debug)]
pub(crate) struct ImportColumns<'h> {
    pub text: usize,
    pub id: Option<usize>,
    pub gold: Option<usize>,
    pub meta: Option<usize>,
    /// One role per column, in header order.
    pub roles: Vec<ColumnRole<'h>>,
}

impl<'h> ImportColumns<'h> {
    /// Resolves `headers` with the import's names for the text, id and gold columns (the first
    /// column of each name counts); `None` when there is no text column.
    pub(crate) fn resolve(
        headers: &'h StringRecord,
        text: &str,
        id: &str,
        gold: &str,
    ) -> Option<ImportColumns<'h>> {
        let position = |name: &str| headers.iter().position(|h| h == name);
        let text = position(text)?;
        let (id, gold, meta) = (position(id), position(gold), position(META));
        let roles = headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                if i == text {
                    ColumnRole::Text
                } else if Some(i) == id {
                    ColumnRole::Id
                } else if Some(i) == gold {
                    ColumnRole::Gold
                } else if Some(i) == meta {
                    ColumnRole::Meta
                } else if DERIVED.contains(&h) {
                    ColumnRole::Derived
                } else if let Some(name) = h.strip_prefix(ANNOTATOR_PREFIX) {
                    ColumnRole::Annotator(name)
                } else {
                    ColumnRole::Extra(h)
                }
            })
            .collect();
        Some(ImportColumns {
            text,
            id,
            gold,
            meta,
            roles,
        })
    }
}

/// A [`META`] cell read back: empty is no metadata; otherwise it must be a JSON object.
pub(crate) fn read_meta(cell: &str) -> Result<Map<String, Value>, MetaNotAnObject> {
    if cell.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(cell) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(MetaNotAnObject),
    }
}

/// A [`META`] cell that does not hold a JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MetaNotAnObject;

impl std::fmt::Display for MetaNotAnObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column {META:?} must hold a JSON object")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_exported_column_is_read_back_as_data_or_ignored_as_derived() {
        let annotators: BTreeSet<String> = ["ann".to_string(), "bo".to_string()].into();
        let header = StringRecord::from(export_header(&annotators));
        let columns = ImportColumns::resolve(&header, TEXT, ID, GOLD).expect("text column");
        assert_eq!(
            columns.roles,
            [
                ColumnRole::Id,
                ColumnRole::Text,
                ColumnRole::Gold,
                ColumnRole::Derived,
                ColumnRole::Derived,
                ColumnRole::Meta,
                ColumnRole::Annotator("ann"),
                ColumnRole::Annotator("bo"),
                ColumnRole::Derived,
                ColumnRole::Derived,
                ColumnRole::Derived,
                ColumnRole::Derived,
                ColumnRole::Derived,
            ]
        );
        assert_eq!(
            (columns.text, columns.id, columns.gold),
            (1, Some(0), Some(2))
        );
    }

    #[test]
    fn a_row_has_one_cell_per_header_column_and_its_cells_read_back() {
        let annotators: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let gold = vec!["x".to_string(), "y".to_string()];
        let none: Vec<String> = vec![];
        let mut meta = Map::new();
        meta.insert("k".into(), Value::from(1));
        let row = ExportRow {
            id: "i1".into(),
            text: "t".into(),
            gold: Some((&gold, "import")),
            gold_question: true,
            meta: meta.clone(),
            answers: vec![Some(&none), None],
            aggregate_status: "none",
            aggregate_labels: &[],
            suggestion: Some((&gold, 0.5, 3)),
        }
        .into_record();
        assert_eq!(row.len(), export_header(&annotators).len());
        assert_eq!(read_labels(&row[2]), Some(gold.clone()));
        assert_eq!(row[4], "true");
        assert_eq!(read_meta(&row[5]), Ok(meta));
        // An explicit empty answer and no answer stay apart.
        assert_eq!(read_labels(&row[6]), Some(vec![]));
        assert_eq!(read_labels(&row[7]), None);
        assert_eq!(row[8], "");
        assert_eq!(&row[10..], ["x|y", "0.5", "3"]);
    }

    #[test]
    fn cells_that_start_like_formulas_are_written_as_text_and_read_back_exactly() {
        for (cell, written) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("-", "'-"),
            // A text starting with ' and a trigger keeps its own ' after the added one.
            ("'=1", "''=1"),
            ("''-x", "'''-x"),
            // Nothing to neutralise.
            ("'quoted", "'quoted"),
            ("'", "'"),
            ("a=1", "a=1"),
            ("", ""),
            ("{\"k\":\"=1\"}", "{\"k\":\"=1\"}"),
            // Plain numbers stay numbers.
            ("-0.25", "-0.25"),
            ("+3", "+3"),
            ("-1e-7", "-1e-7"),
            ("-.5", "-.5"),
            ("-1.", "-1."),
            ("-.", "'-."),
            ("-1e", "'-1e"),
            ("-inf", "'-inf"),
            ("-1-1", "'-1-1"),
        ] {
            assert_eq!(neutralise_formula(cell.to_string()), written, "{cell:?}");
            assert_eq!(read_cell(written), cell, "{written:?}");
        }
    }

    #[test]
    fn meta_must_be_an_object() {
        assert_eq!(read_meta(""), Ok(Map::new()));
        assert_eq!(read_meta("[1]"), Err(MetaNotAnObject));
        assert_eq!(read_meta("{"), Err(MetaNotAnObject));
        assert_eq!(
            MetaNotAnObject.to_string(),
            "column \"meta\" must hold a JSON object"
        );
    }
}
