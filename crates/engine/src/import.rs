//! Import of JSONL, CSV and plain text: streamed line by line, staged in batched transactions,
//! and all-or-nothing — the first bad line aborts the import with its line number and nothing
//! of it stays stored. Two halves, on two threads: [`parse`] turns each format into items with
//! their line numbers and touches no store; [`stage`] checks the items against the project and
//! its accounts, batches them, writes them to the store's staging area, finds duplicate texts
//! and reports progress.

mod parse;
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
            // The names the export writes, so that an export re-imports with the defaults.
            text_field: csv_columns::TEXT.into(),
            id_field: csv_columns::ID.into(),
            gold_field: csv_columns::GOLD.into(),
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

/// An import error at `line` (1-based) of the input.
fn line_error(line: u64, problem: impl Into<String>) -> EngineError {
    EngineError::Import {
        line,
        problem: problem.into(),
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
    ) -> Result<ImportReport, EngineError> {
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
            let mut report = parsed?;
            report.imported = staged_report.imported;
            report.duplicates = staged_report.duplicates;
            report.skipped_duplicates = staged_report.skipped_duplicates;
            report.duplicate_examples = staged_report.duplicate_examples;
            Ok(report)
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
