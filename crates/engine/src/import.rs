//! Import of JSONL (Concord's own shape and Prodigy's), CSV, plain text, CoNLL, Label Studio
//! tasks and doccano JSONL: streamed, staged in batched transactions, and all-or-nothing — the first bad
//! line aborts the import with its line number and nothing of it stays stored. Two halves, on
//! two threads: [`parse`] (with [`conll`], [`label_studio`] and [`doccano`]; spans in
//! [`spans`], relations in [`relations`]) turns each format into items
//! with their line numbers and touches no store; [`stage`] checks the items against the project
//! and its accounts, decides what the file's labels mean ([`ImportedLabels`]), batches them,
//! writes them to the store's staging area, finds duplicate texts and reports progress.
//!
//! Offsets of spans are Unicode code points of the item text everywhere (Prodigy's unit);
//! Label Studio's UTF-16 offsets are converted on the way in and out.

mod conll;
mod doccano;
pub(crate) mod label_studio;
mod parse;
mod relations;
mod spans;
mod stage;

pub use stage::{BATCH_BYTES, BATCH_ITEMS};

use std::io::BufRead;

use concord_domain::{ProjectId, ProjectSpec, Role};
use concord_store::StagedImport;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{csv_columns, Engine, EngineError, Principal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportFormat {
    /// One JSON object per line: Concord's export shape, or Prodigy's (`text`, `tokens`,
    /// `spans`) in span projects.
    Jsonl,
    Csv,
    Text,
    /// One token per line with its BIO tag in the last column, a blank line between items.
    Conll,
    /// A JSON array of Label Studio tasks.
    #[serde(rename = "label-studio")]
    LabelStudio,
    /// doccano's relation JSONL: `text`, `entities` and `relations` that name entities by id.
    Doccano,
}

impl ImportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json" | "prodigy" => Some(ImportFormat::Jsonl),
            "csv" => Some(ImportFormat::Csv),
            "text" | "txt" => Some(ImportFormat::Text),
            "conll" | "bio" | "iob" | "iob2" => Some(ImportFormat::Conll),
            "label-studio" | "label_studio" | "labelstudio" => Some(ImportFormat::LabelStudio),
            "doccano" => Some(ImportFormat::Doccano),
            _ => None,
        }
    }

    /// The name [`ImportFormat::parse`] reads, as the API and forms write it.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportFormat::Jsonl => "jsonl",
            ImportFormat::Csv => "csv",
            ImportFormat::Text => "text",
            ImportFormat::Conll => "conll",
            ImportFormat::LabelStudio => "label-studio",
            ImportFormat::Doccano => "doccano",
        }
    }

    /// Guesses the format from a file name's extension.
    pub fn from_file_name(name: &str) -> Option<Self> {
        // Concord's doccano export is named `….doccano.jsonl`: its lines are not Concord's.
        if name.to_ascii_lowercase().ends_with(".doccano.jsonl") {
            return Some(ImportFormat::Doccano);
        }
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
    /// What the file's labels (the gold field or column, CoNLL tags, Prodigy spans, a Label
    /// Studio task's annotation) mean.
    pub labels_as: ImportedLabels,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            format: ImportFormat::Jsonl,
            // The names the export writes, so that an export re-imports with the defaults.
            text_field: csv_columns::TEXT.into(),
            id_field: csv_columns::ID.into(),
            gold_field: csv_columns::GOLD.into(),
            skip_duplicates: false,
            labels_as: ImportedLabels::Gold,
        }
    }
}

/// What an import's labels are: the importer's choice, for every task kind and format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "as", rename_all = "snake_case")]
pub enum ImportedLabels {
    /// The items' gold labels (spans).
    #[default]
    Gold,
    /// The answers of this annotator account (which must exist), so that agreement with
    /// another tool's annotators can be measured.
    Annotator { name: String },
    /// Suggestions of a model made elsewhere: the import creates a model version of trainer
    /// [`EXTERNAL_TRAINER`] with this name (active when the project has none), whose
    /// suggestions are shown and measured like Concord's own.
    Model { version_name: String },
}

/// [`concord_store::ModelVersionRecord::trainer`] of a version imported from another tool:
/// it has no classifier, only the suggestions the import stored.
pub const EXTERNAL_TRAINER: &str = "external";

/// The longest name an imported model version may have.
pub const MAX_VERSION_NAME_CHARS: usize = 100;

impl ImportedLabels {
    /// Reads the API's and forms' `labels_as` (`gold`, `annotator`, `model`) with the
    /// `labels_name` it needs (the annotator's account name or the model version's name).
    pub fn from_parts(labels_as: Option<&str>, name: Option<&str>) -> Result<Self, String> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        match labels_as.map(str::trim).unwrap_or("gold") {
            "" | "gold" => Ok(ImportedLabels::Gold),
            "annotator" => match name {
                Some(n) => Ok(ImportedLabels::Annotator {
                    name: n.to_string(),
                }),
                None => Err(
                    "labels_as=annotator needs labels_name, the annotator's account name".into(),
                ),
            },
            "model" => match name {
                Some(n) if n.chars().count() <= MAX_VERSION_NAME_CHARS => {
                    Ok(ImportedLabels::Model {
                        version_name: n.to_string(),
                    })
                }
                Some(_) => Err(format!(
                    "a model version name has at most {MAX_VERSION_NAME_CHARS} characters"
                )),
                None => Err("labels_as=model needs labels_name, the model version's name".into()),
            },
            other => Err(format!(
                "labels_as must be gold, annotator or model, not {other:?}"
            )),
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
    /// Model suggestions stored (labels imported as a model's, Label Studio predictions).
    #[serde(default)]
    pub suggestions: u64,
    /// Of those, how many had no score in the file and got confidence 1.0.
    #[serde(default)]
    pub suggestions_without_score: u64,
    /// The model version the suggestions belong to, created by this import.
    #[serde(default)]
    pub model_version: Option<u64>,
}

/// Progress reported while an import runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportProgress {
    pub lines: u64,
    pub bytes: u64,
    pub items: u64,
}

/// An import error at `line` (1-based) of the input.
fn line_error(line: u64, problem: impl Into<String>) -> EngineError {
    EngineError::Import {
        line,
        problem: problem.into(),
    }
}

/// `error` with the Label Studio task it is about named first (`task 12: …`), when there is
/// one and the message does not name it yet.
fn with_task(error: EngineError, task: Option<u64>) -> EngineError {
    match (error, task) {
        (EngineError::Import { line, problem }, Some(task))
            if !problem.starts_with(&format!("task {task}")) =>
        {
            EngineError::Import {
                line,
                problem: format!("task {task}: {problem}"),
            }
        }
        (error, _) => error,
    }
}

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
            Ok((mut report, version)) => {
                let (_, created) = self
                    .store()
                    .commit_import_with_version(staged, version.as_ref())?;
                report.model_version = created;
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
                .map_err(|e| EngineError::internal("encoding items as JSON lines", e))?;
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
            .map_err(|_| EngineError::internal_fault("import registry lock poisoned"))?;
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
    ) -> Result<(ImportReport, Option<concord_store::ModelVersionRecord>), EngineError> {
        // Parsing runs here while a second thread stages the previous batch: redb writes are
        // single-threaded, so the two overlap on a two-core machine.
        std::thread::scope(|scope| {
            let (to_stager, batches) = std::sync::mpsc::sync_channel::<stage::Batch>(1);
            let stager = scope.spawn(move || self.stage_batches(staged, batches, options));
            let parsed = self.check_and_batch(spec, input, options, progress, &to_stager);
            drop(to_stager);
            let staged_report = stager
                .join()
                .map_err(|_| EngineError::internal_fault("import staging thread panicked"))?;
            // A staging error stops the parser (its channel closes), so it is the cause.
            let staged_report = staged_report?;
            let (mut report, version) = parsed?;
            report.imported = staged_report.imported;
            report.duplicates = staged_report.duplicates;
            report.skipped_duplicates = staged_report.skipped_duplicates;
            report.duplicate_examples = staged_report.duplicate_examples;
            Ok((report, version))
        })
    }
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

#[cfg(test)]
mod tests {
    use super::ImportFormat;

    #[test]
    fn file_names_and_format_names_choose_the_reader() {
        let check = |name: &str, expected: Option<ImportFormat>| {
            assert_eq!(ImportFormat::from_file_name(name), expected, "{name}");
        };
        check("items.jsonl", Some(ImportFormat::Jsonl));
        // Concord's doccano export is JSONL of doccano's shape, not Concord's.
        check("Project.doccano.jsonl", Some(ImportFormat::Doccano));
        check("PROJECT.DOCCANO.JSONL", Some(ImportFormat::Doccano));
        check("Project.prodigy.jsonl", Some(ImportFormat::Jsonl));
        check("tasks.label-studio.json", Some(ImportFormat::Jsonl));
        check("notes", None);
        for format in [
            ImportFormat::Jsonl,
            ImportFormat::Csv,
            ImportFormat::Text,
            ImportFormat::Conll,
            ImportFormat::LabelStudio,
            ImportFormat::Doccano,
        ] {
            assert_eq!(ImportFormat::parse(format.as_str()), Some(format));
        }
    }
}
