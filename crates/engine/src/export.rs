//! Export: every item with its text, metadata, gold label (explicit, or the unanimous answer
//! of an accepted item) with its source, each annotator's answer, the aggregated label and the
//! latest model suggestion. Field and column order is fixed, annotators are sorted by name, so the
//! same project always exports to the same bytes, and an export re-imports losslessly.
//! Span projects export JSONL (spans and tokens in the same shape), CoNLL, Prodigy JSONL,
//! Label Studio JSON and doccano JSONL ([`formats`]); relations projects the same, each
//! carrying the relations wherever it carries spans (gold, each annotator's answer, the
//! latest suggestion with its relations' confidences; CoNLL only the gold spans). Offsets are
//! code points except in Label Studio's UTF-16.

mod formats;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;

use concord_domain::{
    aggregate_labels, Aggregate, AnnotationValue, ProjectId, ProjectSpec, Role, TaskKind, UserId,
};
use concord_store::{AnnotationRecord, ItemRecord, SuggestionRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::csv_columns::{export_header, ExportRow};
use crate::review::effective_gold;
use crate::{Engine, EngineError, Principal};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Jsonl,
    Csv,
    /// Span projects: the gold spans as BIO tags, one token per line (items without gold are
    /// left out: the file is a gold corpus).
    Conll,
    /// A JSON array of Label Studio tasks (UTF-16 offsets).
    #[serde(rename = "label-studio")]
    LabelStudio,
    /// Span projects: Prodigy's JSONL (`text`, `tokens`, `spans`, `answer`; `relations` in
    /// relations projects).
    Prodigy,
    /// Span projects: doccano's JSONL (`text`, `entities`, `relations`).
    Doccano,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" => Some(ExportFormat::Jsonl),
            "csv" => Some(ExportFormat::Csv),
            "conll" => Some(ExportFormat::Conll),
            "label-studio" | "label_studio" | "labelstudio" => Some(ExportFormat::LabelStudio),
            "prodigy" => Some(ExportFormat::Prodigy),
            "doccano" => Some(ExportFormat::Doccano),
            _ => None,
        }
    }

    /// The name [`ExportFormat::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
            ExportFormat::Conll => "conll",
            ExportFormat::LabelStudio => "label-studio",
            ExportFormat::Prodigy => "prodigy",
            ExportFormat::Doccano => "doccano",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Jsonl | ExportFormat::Prodigy | ExportFormat::Doccano => {
                "application/x-ndjson"
            }
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Conll => "text/plain; charset=utf-8",
            ExportFormat::LabelStudio => "application/json",
        }
    }

    /// The download's file name ending (after the project's name).
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
            ExportFormat::Conll => "conll",
            ExportFormat::LabelStudio => "label-studio.json",
            ExportFormat::Prodigy => "prodigy.jsonl",
            ExportFormat::Doccano => "doccano.jsonl",
        }
    }

    /// Whether a project of `task` can be exported in this format.
    pub fn supports(self, task: TaskKind) -> bool {
        match self {
            ExportFormat::Jsonl | ExportFormat::LabelStudio => true,
            // A CSV cell holds labels, not spans.
            ExportFormat::Csv => !task.is_spans(),
            ExportFormat::Conll | ExportFormat::Prodigy | ExportFormat::Doccano => task.is_spans(),
        }
    }
}

fn io_err(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> EngineError {
    EngineError::internal("export write", e)
}

impl Engine {
    /// Writes the project to `out`; reviewers and admins only (the export shows every
    /// annotator's answers). Returns the number of items written.
    pub fn export(
        &self,
        actor: &Principal,
        project: ProjectId,
        format: ExportFormat,
        out: &mut dyn Write,
    ) -> Result<u64, EngineError> {
        self.export_with_progress(actor, project, format, out, &mut |_| {})
    }

    /// Whether `actor` may export `project` in `format` (reviewers and admins; a format the
    /// project's task kind has), before a download starts: returns the project's spec.
    pub fn check_export(
        &self,
        actor: &Principal,
        project: ProjectId,
        format: ExportFormat,
    ) -> Result<ProjectSpec, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        let spec = self.project_record(project)?.spec;
        if !format.supports(spec.task) {
            return Err(EngineError::Invalid(format!(
                "a {} project cannot be exported as {}; use {}",
                spec.task.as_str(),
                format.as_str(),
                if spec.task.is_spans() {
                    "jsonl, conll, prodigy, doccano or label-studio"
                } else {
                    "jsonl, csv or label-studio"
                }
            )));
        }
        Ok(spec)
    }

    /// [`Engine::export`], calling `progress` with the number of items written so far.
    pub fn export_with_progress(
        &self,
        actor: &Principal,
        project: ProjectId,
        format: ExportFormat,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, EngineError> {
        let spec = self.check_export(actor, project, format)?;
        let names = self.user_names()?;
        let questions: HashSet<u64> = self.store().gold_questions(project)?.into_iter().collect();
        let suggestions: HashMap<u64, SuggestionRecord> =
            self.store().suggestions(project)?.into_iter().collect();
        let name_of = |id: UserId| {
            names
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("user-{}", id.0))
        };
        let mut count = 0;
        match format {
            ExportFormat::Jsonl => {
                self.store()
                    .for_each_item::<EngineError>(project, |seq, item, anns| {
                        let question = questions.contains(&seq);
                        let suggestion = suggestions.get(&seq);
                        let line = if spec.task.is_spans() {
                            formats::span_jsonl_line(&spec, item, anns, question, suggestion, &name_of)
                        } else {
                            let mut line = jsonl_line(&spec, item, anns, question, &name_of);
                            line.insert(
                                "suggestion".into(),
                                suggestion.map_or(Value::Null, |s| {
                                    json!({ "labels": s.labels, "confidence": s.confidence, "model_version": s.version })
                                }),
                            );
                            line
                        };
                        serde_json::to_writer(&mut *out, &line).map_err(io_err)?;
                        out.write_all(b"\n").map_err(io_err)?;
                        count += 1;
                        if count % 10_000 == 0 {
                            progress(count);
                        }
                        Ok(())
                    })?;
            }
            ExportFormat::Csv => {
                // First pass: the annotator columns.
                let mut annotators = BTreeSet::new();
                self.store()
                    .for_each_item::<EngineError>(project, |_, _, anns| {
                        annotators.extend(anns.iter().map(|(u, _)| name_of(*u)));
                        Ok(())
                    })?;
                let mut writer = csv::Writer::from_writer(&mut *out);
                writer
                    .write_record(export_header(&annotators))
                    .map_err(io_err)?;
                self.store()
                    .for_each_item::<EngineError>(project, |seq, item, anns| {
                        let by_name: BTreeMap<String, &AnnotationRecord> =
                            anns.iter().map(|(u, a)| (name_of(*u), a)).collect();
                        let aggregate = aggregate_of(&spec, &anns);
                        let gold =
                            effective_gold(&spec, item.gold.as_ref(), item.gold_source(), &anns);
                        let (aggregate_status, aggregate_labels) = aggregate_parts(&aggregate);
                        let row = ExportRow {
                            id: item.id,
                            text: item.text,
                            gold: gold
                                .as_ref()
                                .map(|(g, s)| (g.labels.as_slice(), s.as_str())),
                            gold_question: questions.contains(&seq),
                            meta: item.meta,
                            answers: annotators
                                .iter()
                                .map(|a| by_name.get(a).map(|r| r.value.labels.as_slice()))
                                .collect(),
                            aggregate_status,
                            aggregate_labels,
                            suggestion: suggestions
                                .get(&seq)
                                .map(|s| (s.labels.as_slice(), s.confidence, s.version)),
                        };
                        writer.write_record(row.into_record()).map_err(io_err)?;
                        count += 1;
                        if count % 10_000 == 0 {
                            progress(count);
                        }
                        Ok(())
                    })?;
                writer.flush().map_err(io_err)?;
            }
            ExportFormat::Conll => {
                let tags = formats::ConllWriter::new(&spec);
                self.store()
                    .for_each_item::<EngineError>(project, |_, item, anns| {
                        let gold =
                            effective_gold(&spec, item.gold.as_ref(), item.gold_source(), &anns);
                        // A gold corpus: items nobody has settled are not in it.
                        if let Some((gold, _)) = gold {
                            out.write_all(tags.sentence(&item, &gold.spans).as_bytes())
                                .map_err(io_err)?;
                            count += 1;
                            if count % 10_000 == 0 {
                                progress(count);
                            }
                        }
                        Ok(())
                    })?;
            }
            ExportFormat::Prodigy | ExportFormat::Doccano => {
                self.store()
                    .for_each_item::<EngineError>(project, |_, item, anns| {
                        let line = if format == ExportFormat::Prodigy {
                            formats::prodigy_line(&spec, item, anns, &name_of)
                        } else {
                            formats::doccano_line(&spec, item, anns, &name_of)
                        };
                        serde_json::to_writer(&mut *out, &line).map_err(io_err)?;
                        out.write_all(b"\n").map_err(io_err)?;
                        count += 1;
                        if count % 10_000 == 0 {
                            progress(count);
                        }
                        Ok(())
                    })?;
            }
            ExportFormat::LabelStudio => {
                let version_names: HashMap<u64, String> = self
                    .store()
                    .model_versions(project)?
                    .into_iter()
                    .map(|(v, r)| (v, r.name.unwrap_or_else(|| format!("concord-v{v}"))))
                    .collect();
                out.write_all(b"[").map_err(io_err)?;
                self.store()
                    .for_each_item::<EngineError>(project, |seq, item, anns| {
                        let task = formats::label_studio_task(
                            &spec,
                            seq,
                            item,
                            anns,
                            suggestions.get(&seq),
                            &version_names,
                            &name_of,
                        );
                        out.write_all(if count == 0 { b"\n" } else { b",\n" })
                            .map_err(io_err)?;
                        serde_json::to_writer(&mut *out, &task).map_err(io_err)?;
                        count += 1;
                        if count % 10_000 == 0 {
                            progress(count);
                        }
                        Ok(())
                    })?;
                out.write_all(b"\n]\n").map_err(io_err)?;
            }
        }
        progress(count);
        Ok(count)
    }
}

pub(super) fn aggregate_of(spec: &ProjectSpec, anns: &[(UserId, AnnotationRecord)]) -> Aggregate {
    let answers: Vec<&[String]> = anns
        .iter()
        .map(|(_, a)| a.value.labels.as_slice())
        .collect();
    let order: Vec<String> = spec.labels.iter().map(|l| l.name.clone()).collect();
    aggregate_labels(spec.task, &answers, &order)
}

fn aggregate_parts(aggregate: &Aggregate) -> (&'static str, &[String]) {
    match aggregate {
        Aggregate::None => ("none", &[]),
        Aggregate::Agreed { labels } => ("agreed", labels),
        Aggregate::Tie { labels } => ("tie", labels),
    }
}

fn gold_json(task: TaskKind, gold: &AnnotationValue) -> Value {
    match (task, gold.labels.as_slice()) {
        (TaskKind::Classification, [one]) => Value::String(one.clone()),
        (_, labels) => json!(labels),
    }
}

fn jsonl_line(
    spec: &ProjectSpec,
    item: ItemRecord,
    anns: Vec<(UserId, AnnotationRecord)>,
    gold_question: bool,
    name_of: &dyn Fn(UserId) -> String,
) -> Map<String, Value> {
    let aggregate = aggregate_of(spec, &anns);
    let gold = effective_gold(spec, item.gold.as_ref(), item.gold_source(), &anns);
    let mut sorted: Vec<(String, AnnotationRecord)> =
        anns.into_iter().map(|(u, a)| (name_of(u), a)).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut line = Map::new();
    line.insert("id".into(), Value::String(item.id));
    line.insert("text".into(), Value::String(item.text));
    line.insert("meta".into(), Value::Object(item.meta));
    line.insert(
        "gold".into(),
        gold.as_ref()
            .map(|(g, _)| gold_json(spec.task, g))
            .unwrap_or(Value::Null),
    );
    line.insert(
        "gold_source".into(),
        gold.as_ref()
            .map(|(_, s)| Value::String(s.as_str().into()))
            .unwrap_or(Value::Null),
    );
    line.insert("gold_question".into(), Value::Bool(gold_question));
    line.insert(
        "annotations".into(),
        sorted
            .into_iter()
            .map(|(name, a)| {
                json!({
                    "annotator": name,
                    "labels": a.value.labels,
                    "source": a.source,
                    "created_ms": a.created_ms,
                    "updated_ms": a.updated_ms,
                    "time_spent_ms": a.time_spent_ms,
                })
            })
            .collect(),
    );
    let (status, labels) = aggregate_parts(&aggregate);
    line.insert(
        "aggregate".into(),
        json!({ "status": status, "labels": labels }),
    );
    line
}
