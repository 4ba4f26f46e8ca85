//! The `generate` job: a generative model labels every item of a single-label project by the
//! log-probability of each label's words after a prompt made of the project's guidelines,
//! label descriptions and, per item, demonstrations (the confirmed labels of the training
//! split nearest to the item by embedding). The generator is a GGUF file of the models folder
//! run in process, or the OpenAI-compatible server the environment names. The run becomes a
//! version with trainer `llm`, measured on the held-out split like every other version, so
//! its suggestions are pre-selected only once they beat the majority label there.
//!
//! What is chosen here is chosen on the training split only: whether contextual calibration
//! (Zhao et al. 2021) is used is decided by accuracy on the training split's confirmed items
//! (raw probabilities when there are none to decide on); the held-out split only measures.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use concord_domain::{GenerateParams, HeldOutPrediction, ProjectId, TaskKind};
use concord_ml::generative::{
    score_items, ChatFormat, Demonstration, GenerativeModel, ItemInput, LabelSpec, PromptSpec,
    ScoringOptions,
};
use concord_store::{ModelVersionRecord, SuggestionRecord, VersionParams};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::encoders::fingerprint_bytes;
use super::jobs::Stop;
use super::openai::{OpenAiClassifier, OpenAiConfig, ScoringMethod};
use super::project_model;
use crate::{now_ms, Engine, EngineError, Principal};
use concord_domain::{JobSpec, Role};

/// The trainer name of a generator's version.
pub const LLM_TRAINER: &str = "llm";

/// The prefix of the generator name `GET /api/v1/models` lists for the configured
/// OpenAI-compatible server.
const SERVER_PREFIX: &str = "server:";

/// One item's probability per label, in the project's label order; `None` where a server's
/// answer named no label.
type ItemProbabilities = Option<Vec<f32>>;

/// A generator the models folder or the environment offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GeneratorInfo {
    /// What `POST /projects/{id}/predict {"generator": ...}` takes.
    pub name: String,
    /// `gguf` (in process) or `openai` (an OpenAI-compatible server).
    pub kind: &'static str,
    /// The GGUF's `general.architecture`; absent for a server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Whether this binary runs that architecture.
    pub supported: bool,
    /// The file's size in bytes; absent for a server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// Where a generator comes from.
enum Source {
    Gguf(PathBuf),
    Server(OpenAiConfig),
}

impl Engine {
    /// The GGUF files of the models folder (and of its `gguf/` folder), by file stem, and the
    /// OpenAI-compatible server [`Engine::set_generator_server`] gave.
    /// No paths: names only.
    pub fn generators(&self) -> Vec<GeneratorInfo> {
        let mut out: Vec<GeneratorInfo> = self
            .gguf_files()
            .into_iter()
            .map(|(name, path)| {
                let architecture = concord_ml::generative::gguf_architecture(&path).ok();
                GeneratorInfo {
                    supported: architecture.as_deref().is_some_and(|a| {
                        concord_ml::generative::SUPPORTED_ARCHITECTURES.contains(&a)
                    }),
                    architecture,
                    bytes: std::fs::metadata(&path).ok().map(|m| m.len()),
                    kind: "gguf",
                    name,
                }
            })
            .collect();
        if let Some(config) = self.generator_server() {
            out.push(GeneratorInfo {
                name: format!("{SERVER_PREFIX}{}", config.model),
                kind: "openai",
                architecture: None,
                supported: true,
                bytes: None,
            });
        }
        out
    }

    /// Sets the OpenAI-compatible server generators may run on (`server:MODEL` in
    /// [`Engine::generators`]); `concord serve` reads it from the environment
    /// ([`OpenAiConfig::from_env`]). Its API key is kept in memory only: never stored, logged
    /// or answered.
    pub fn set_generator_server(&self, config: Option<OpenAiConfig>) {
        if let Ok(mut slot) = self.inner.generator_server.lock() {
            *slot = config;
        }
    }

    fn generator_server(&self) -> Option<OpenAiConfig> {
        self.inner
            .generator_server
            .lock()
            .ok()
            .and_then(|slot| slot.clone())
    }

    fn gguf_files(&self) -> Vec<(String, PathBuf)> {
        let Some(dir) = self.inner.models.dir() else {
            return Vec::new();
        };
        let mut files: Vec<(String, PathBuf)> = [dir.to_path_buf(), dir.join("gguf")]
            .iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "gguf"))
            .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p.clone())))
            .collect();
        files.sort();
        files.dedup_by(|a, b| a.0 == b.0);
        files
    }

    fn generator_source(&self, name: &str) -> Result<Source, EngineError> {
        if let Some(model) = name.strip_prefix(SERVER_PREFIX) {
            return match self.generator_server() {
                Some(config) if config.model == model => Ok(Source::Server(config)),
                _ => Err(EngineError::NotFound(format!(
                    "generator {name:?} (GET /api/v1/models lists the generators)"
                ))),
            };
        }
        self.gguf_files()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, path)| Source::Gguf(path))
            .ok_or_else(|| {
                EngineError::NotFound(format!(
                    "generator {name:?} (GET /api/v1/models lists the generators)"
                ))
            })
    }

    /// Queues a generator run over the project's items. Project admins; single-label
    /// classification projects.
    pub fn enqueue_generate(
        &self,
        actor: &Principal,
        project: ProjectId,
        params: GenerateParams,
    ) -> Result<u64, EngineError> {
        self.authorize(actor, project, Role::Admin)?;
        if self.project_record(project)?.spec.task != TaskKind::Classification {
            return Err(EngineError::Invalid(
                "generators pre-annotate single-label classification projects".into(),
            ));
        }
        if params.shots.is_some_and(|s| s > GenerateParams::MAX_SHOTS) {
            return Err(EngineError::Invalid(format!(
                "shots must be at most {}",
                GenerateParams::MAX_SHOTS
            )));
        }
        self.generator_source(&params.generator)?;
        self.enqueue_job_without_encoder(
            actor,
            project,
            JobSpec::Generate(params),
            super::jobs::WhenQueued::Refuse,
        )
    }

    pub(super) fn process_generate(
        &self,
        id: u64,
        project: ProjectId,
        params: GenerateParams,
    ) -> Result<serde_json::Value, Stop> {
        let record = self.project_record(project)?;
        let spec = record.spec.clone();
        if spec.task != TaskKind::Classification {
            return Err(Stop::Failed(EngineError::Invalid(
                "generators pre-annotate single-label classification projects".into(),
            )));
        }
        let source = self.generator_source(&params.generator)?;
        let names: Vec<String> = spec.labels.iter().map(|l| l.name.clone()).collect();
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut items: Vec<(u64, String)> = Vec::new();
        let mut from = 0;
        loop {
            let batch = self.store().texts_from(project, from, 1024)?;
            let Some(last) = batch.last().map(|(s, _)| *s) else {
                break;
            };
            items.extend(batch);
            from = last + 1;
        }
        let confirmed: HashMap<u64, (usize, bool)> = self
            .confirmed_labels(project, &spec)?
            .into_iter()
            .filter_map(|c| Some((c.seq, (*index.get(c.label.as_str())?, c.held_out))))
            .collect();

        // Demonstrations: the training split's confirmed items nearest by embedding.
        let shots = params.shots();
        let (demos, encoder_fp) = if shots > 0 && confirmed.values().any(|(_, held)| !held) {
            let encoder = self.inner.models.encoder(project_model(&spec))?;
            self.embed_items(id, project, 0, &encoder)?;
            let all: Vec<(u64, usize)> = items.iter().map(|(s, _)| (*s, 0)).collect();
            let vectors = self.embeddings_of(project, &encoder, &all)?;
            let pool: Vec<(usize, usize)> = items
                .iter()
                .enumerate()
                .filter_map(|(i, (seq, _))| match confirmed.get(seq) {
                    Some(&(label, false)) => Some((i, label)),
                    _ => None,
                })
                .collect();
            let demos: Vec<Vec<Demonstration>> = (0..items.len())
                .map(|i| {
                    let mut near: Vec<(f32, usize, usize)> = pool
                        .iter()
                        .filter(|(j, _)| *j != i)
                        .map(|&(j, label)| (concord_ml::dot(&vectors[i], &vectors[j]), j, label))
                        .collect();
                    near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    near.truncate(shots);
                    // Nearest last: closest to the item in the prompt.
                    near.reverse();
                    near.into_iter()
                        .map(|(_, j, label)| Demonstration {
                            text: items[j].1.clone(),
                            label,
                        })
                        .collect()
                })
                .collect();
            (demos, hex::encode(fingerprint_bytes(&encoder)))
        } else {
            (vec![Vec::new(); items.len()], String::new())
        };

        let prompt = PromptSpec {
            guidelines: Some(spec.guidelines.clone()).filter(|g| !g.trim().is_empty()),
            labels: spec
                .labels
                .iter()
                .map(|l| LabelSpec {
                    name: l.name.clone(),
                    description: l.description.clone().filter(|d| !d.trim().is_empty()),
                })
                .collect(),
            demonstrations: Vec::new(),
        };
        let inputs: Vec<ItemInput<'_>> = items
            .iter()
            .zip(&demos)
            .map(|((_, text), d)| ItemInput {
                text,
                demonstrations: d,
            })
            .collect();
        let total = inputs.len() as u64;
        self.store().update_job(id, |j| {
            j.total = total;
            j.done = 0;
        })?;
        let started = Instant::now();
        let mut last_update = Instant::now();
        // Why the run was stopped: a cancel, or the shutdown (then the worker queues the job
        // again, to run from the start at the next start).
        let mut stopped: Option<Stop> = None;
        let mut progress = |done: usize, _total: usize| -> ControlFlow<()> {
            if last_update.elapsed().as_millis() < 500 && done < inputs.len() {
                return ControlFlow::Continue(());
            }
            last_update = Instant::now();
            if let Err(stop) = self.check_cancel(id) {
                stopped = Some(stop);
                return ControlFlow::Break(());
            }
            let _ = self.store().update_job(id, |j| j.done = done as u64);
            ControlFlow::Continue(())
        };
        let mut settings = serde_json::Map::new();
        // A server's token usage, for the job's result.
        let mut usage = serde_json::Value::Null;
        settings.insert("generator".into(), params.generator.clone().into());
        settings.insert("shots".into(), shots.into());
        // Per item: raw and calibrated probabilities (equal when the backend has no
        // calibration).
        let (raw, calibrated): (Vec<ItemProbabilities>, Vec<ItemProbabilities>) = match source {
            Source::Gguf(path) => {
                let model = GenerativeModel::load(&path, &concord_ml::default_device())?;
                let sha = concord_ml::file_sha256(&path)?;
                settings.insert("backend".into(), "gguf".into());
                settings.insert("architecture".into(), model.architecture().into());
                settings.insert("gguf_sha256".into(), sha.into());
                let format = model
                    .chat_template()
                    .map_or(ChatFormat::Plain, |t| ChatFormat::detect(Some(t)));
                let options = ScoringOptions {
                    format: Some(format),
                    ..ScoringOptions::default()
                };
                settings.insert("prompt_format".into(), format!("{format:?}").into());
                let scores = match score_items(&model, &prompt, &inputs, &options, &mut progress) {
                    Ok(scores) => scores,
                    Err(concord_ml::MlError::Cancelled) => {
                        return Err(stopped.take().unwrap_or(Stop::Cancelled))
                    }
                    Err(e) => return Err(Stop::Failed(e.into())),
                };
                settings.insert("prefix_tokens".into(), scores.prefix_tokens.into());
                settings.insert(
                    "truncated_items".into(),
                    scores.items.iter().filter(|s| s.truncated).count().into(),
                );
                scores
                    .items
                    .into_iter()
                    .map(|s| (Some(s.probabilities), Some(s.calibrated)))
                    .unzip()
            }
            Source::Server(config) => {
                let client = OpenAiClassifier::new(config).map_err(EngineError::from)?;
                let run =
                    client
                        .classify(&prompt, &inputs, &mut progress)
                        .map_err(|e| match e {
                            super::openai::OpenAiError::Cancelled => Stop::Cancelled,
                            e => Stop::Failed(e.into()),
                        })?;
                settings.insert("backend".into(), "openai".into());
                settings.insert(
                    "method".into(),
                    match run.method {
                        ScoringMethod::LogProbs => "log_probs",
                        ScoringMethod::JsonSchema => "json_schema",
                    }
                    .into(),
                );
                usage = serde_json::json!({
                    "prompt_tokens": run.prompt_tokens,
                    "completion_tokens": run.completion_tokens,
                    "total_tokens": run.total_tokens,
                    "requests": run.requests,
                    "retries": run.retries,
                    "unparsed": run.unparsed,
                });
                settings.insert("usage".into(), usage.clone());
                (run.probabilities.clone(), run.probabilities)
            }
        };
        if let Some(stop) = stopped {
            return Err(stop);
        }
        let seconds = started.elapsed().as_secs_f64();
        settings.insert("seconds".into(), seconds.into());
        settings.insert(
            "items_per_second".into(),
            (inputs.len() as f64 / seconds.max(1e-9)).into(),
        );

        // Calibration chosen on the training split's confirmed items only.
        let accuracy_on = |probs: &[Option<Vec<f32>>], held: bool| -> (usize, usize) {
            let mut right = 0;
            let mut n = 0;
            for ((seq, _), p) in items.iter().zip(probs) {
                if let (Some(&(gold, h)), Some(p)) = (confirmed.get(seq), p) {
                    if h == held {
                        n += 1;
                        right += usize::from(concord_ml::argmax(p) == gold);
                    }
                }
            }
            (right, n)
        };
        let (raw_right, dev) = accuracy_on(&raw, false);
        let (cal_right, _) = accuracy_on(&calibrated, false);
        let use_calibrated = dev > 0 && cal_right > raw_right;
        settings.insert(
            "calibration".into(),
            if use_calibrated { "contextual" } else { "none" }.into(),
        );
        settings.insert(
            "calibration_choice".into(),
            serde_json::json!({
                "training_items": dev,
                "raw_right": raw_right,
                "calibrated_right": cal_right,
            }),
        );
        let chosen = if use_calibrated { calibrated } else { raw };

        let mut held_out_rows = Vec::new();
        let (mut test_probs, mut test_gold) = (Vec::new(), Vec::new());
        for ((seq, _), p) in items.iter().zip(&chosen) {
            if let (Some(&(gold, true)), Some(p)) = (confirmed.get(seq), p) {
                let predicted = concord_ml::argmax(p);
                held_out_rows.push(HeldOutPrediction {
                    gold: gold as u32,
                    predicted: predicted as u32,
                    confidence: p.get(predicted).copied().unwrap_or(0.0),
                });
                test_probs.push(p.clone());
                test_gold.push(gold);
            }
        }
        let metrics = (!test_gold.is_empty())
            .then(|| concord_ml::evaluate(&test_probs, &test_gold, names.len()));
        let mut hasher = Sha256::new();
        hasher.update(params.generator.as_bytes());
        for (seq, (label, held)) in &confirmed {
            if !held {
                hasher.update(seq.to_le_bytes());
                hasher.update(names[*label].as_bytes());
            }
        }
        let train_size = confirmed.values().filter(|(_, h)| !h).count() as u64;
        let version_record = ModelVersionRecord {
            trainer: LLM_TRAINER.into(),
            created_ms: now_ms(),
            parent: record.active_model,
            params: VersionParams {
                model: None,
                encoder_file: None,
                calibration_items: None,
                settings,
            },
            train_size,
            train_hash: hex::encode(hasher.finalize()),
            labels: names.clone(),
            encoder: encoder_fp,
            metrics: metrics.as_ref().and_then(|m| serde_json::to_value(m).ok()),
            classifier: serde_json::json!({"kind": "generator", "generator": params.generator}),
            name: Some(params.generator.clone()),
            held_out: held_out_rows,
            held_out_spans: Vec::new(),
            confirmed: Some(confirmed.len() as u64),
            auto: None,
            comparison: None,
        };
        let (version, activated, _) =
            self.store_trained_version(project, version_record, record.active_model)?;
        let now = now_ms();
        let suggestions: Vec<(u64, SuggestionRecord)> = items
            .iter()
            .zip(chosen)
            .filter_map(|((seq, _), p)| {
                let p = p?;
                let (label, confidence) = super::classifier::single_label(&names, &p);
                Some((
                    *seq,
                    SuggestionRecord {
                        labels: vec![label],
                        confidence,
                        probabilities: p,
                        version,
                        created_ms: now,
                        spans: Vec::new(),
                        relations: Vec::new(),
                    },
                ))
            })
            .collect();
        let written = suggestions.len();
        for chunk in suggestions.chunks(2048) {
            self.store()
                .put_predictions(project, &[0u8; 8], &[], chunk, None)?;
        }
        if activated {
            self.order_queue(project, version)?;
        }
        tracing::info!(project = %project, version, generator = %params.generator, items = written, seconds, "generator run stored");
        Ok(serde_json::json!({
            "version": version,
            "trainer": LLM_TRAINER,
            "generator": params.generator,
            "suggestions": written,
            "test_size": test_gold.len(),
            "accuracy": metrics.as_ref().map(|m| m.accuracy),
            "macro_f1": metrics.as_ref().map(|m| m.macro_f1),
            "calibration": if use_calibrated { "contextual" } else { "none" },
            "seconds": seconds,
            "usage": usage,
        }))
    }
}
