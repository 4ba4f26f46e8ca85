//! A classification version as a self-contained model file (`model.json`), for pre-annotating
//! on machines without the database: its classifier exactly as the version stores it, its
//! label names, and its encoder referenced, not embedded — the model folder's name and the
//! SHA-256 of each file the encoder is loaded from (a fine-tuned version's weights are a file
//! beside `model.json`, named by their SHA-256 as in the data directory).
//! [`Engine::export_model`] makes one from a version; [`PortableModel::load`] checks the files
//! on any machine and gives a [`PortablePredictor`], which predicts with the predict job's own
//! pieces: the same encoder batch size, the same classifier code, the same choice of label.

use std::path::{Path, PathBuf};

use concord_domain::{ProjectId, Role, TaskKind};
use concord_ml::Encoder;
use serde::{Deserialize, Serialize};

use super::classifier::{single_label, Classifier};
use super::embeddings::ENCODER_BATCH;
use super::encoders::{is_weights_file_name, Source, WEIGHTS_FILE};
use super::{has_model, version_model};
use crate::{Engine, EngineError, Principal};

/// The `format` of the model files this release writes and reads.
pub const PORTABLE_MODEL_FORMAT: u32 = 1;

/// A classification version, self-contained but for its encoder's files (see the module
/// documentation). Serialised, it is `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortableModel {
    /// [`PORTABLE_MODEL_FORMAT`]; a reader refuses a format it does not know.
    pub format: u32,
    /// The name of the project the version belongs to, for people.
    pub project: String,
    /// The version's number in its project.
    pub version: u64,
    /// How the version was made (`zero_shot`, `head`, `fine_tune`).
    pub trainer: String,
    /// The label names, in the classifier's class order.
    pub labels: Vec<String>,
    pub encoder: PortableEncoder,
    /// The classifier as the version stores it (`kind` `head`, or `zero_shot` with its
    /// calibration, temperature and label priors), copied as stored so that it reads back to
    /// the very same numbers.
    pub classifier: serde_json::Value,
}

/// The encoder a portable model needs, by reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortableEncoder {
    /// The model folder's name in the models folder (`all-MiniLM-L6-v2`).
    pub model: String,
    /// The encoder fingerprint the version records (the first 16 hex digits of its weights'
    /// SHA-256), for people; the files below are what is checked.
    pub fingerprint: String,
    /// Each file read from the model folder, with its SHA-256.
    pub files: Vec<FileDigest>,
    /// A fine-tuned version's weights, which replace the folder's `model.safetensors`: a file
    /// of this name beside the model file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<FileDigest>,
}

/// A file by name and SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub name: String,
    pub sha256: String,
}

/// Why a model file cannot be read, or its encoder not loaded, on this machine.
#[derive(Debug, thiserror::Error)]
pub enum PortableError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a Concord model file: {reason}")]
    NotAModel { path: PathBuf, reason: String },
    #[error("{path} is a model file of format {found}; this Concord reads format {supported}")]
    Format {
        path: PathBuf,
        found: u64,
        supported: u32,
    },
    #[error("model {model} is not installed: it is not a model folder in {models} and not compiled into this binary (scripts/setup.sh fetches all-MiniLM-L6-v2; --models names the folder)")]
    NotInstalled { model: String, models: String },
    #[error("{file} has SHA-256 {found}, but the model file names {expected}: it is not the file the version was made with")]
    Checksum {
        file: String,
        expected: String,
        found: String,
    },
    #[error("{file} is missing; the model file names it (SHA-256 {expected})")]
    Missing { file: String, expected: String },
    #[error("{file} is there, but the model file names no such file: it would change how texts are read, so this is not the encoder the version was made with")]
    Unexpected { file: String },
    #[error("the model file names {name:?} as fine-tuned weights, which is not a weights file name (64 hex digits and .safetensors)")]
    WeightsName { name: String },
    #[error("the model file's classifier cannot be used: {0}")]
    Classifier(String),
    /// Boxed: the model's errors carry tensor shapes, and this error travels in every result.
    #[error(transparent)]
    Model(Box<concord_ml::MlError>),
}

impl From<concord_ml::MlError> for PortableError {
    fn from(e: concord_ml::MlError) -> Self {
        PortableError::Model(Box::new(e))
    }
}

impl PortableModel {
    /// Reads a model file, refusing one of another format.
    pub fn read(path: &Path) -> Result<PortableModel, PortableError> {
        let text = std::fs::read_to_string(path).map_err(|source| PortableError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let not_a_model = |reason: String| PortableError::NotAModel {
            path: path.to_path_buf(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| not_a_model(e.to_string()))?;
        match value.get("format").and_then(serde_json::Value::as_u64) {
            None => return Err(not_a_model("it has no \"format\" number".into())),
            Some(found) if found != u64::from(PORTABLE_MODEL_FORMAT) => {
                return Err(PortableError::Format {
                    path: path.to_path_buf(),
                    found,
                    supported: PORTABLE_MODEL_FORMAT,
                })
            }
            Some(_) => {}
        }
        serde_json::from_value(value).map_err(|e| not_a_model(e.to_string()))
    }

    /// Checks every encoder file against the SHA-256 this model names, then loads the encoder
    /// and the classifier. The base model comes from its folder in `models` (else a copy
    /// compiled into the binary); fine-tuned weights from `beside`, the model file's folder.
    /// A file that differs, is missing, or is there unnamed is an error naming it: another
    /// encoder would give other embeddings, and the classifier would read them wrong.
    pub fn load(
        &self,
        models: Option<&Path>,
        beside: &Path,
    ) -> Result<PortablePredictor, PortableError> {
        let classifier: Classifier = serde_json::from_value(self.classifier.clone())
            .map_err(|e| PortableError::Classifier(e.to_string()))?;
        if self.labels.is_empty() {
            return Err(PortableError::Classifier("it names no labels".into()));
        }
        let name = &self.encoder.model;
        let source = Source::find(models, name).ok_or_else(|| PortableError::NotInstalled {
            model: name.clone(),
            models: models.map_or_else(|| "no models folder".into(), |d| d.display().to_string()),
        })?;
        let weights = match &self.encoder.weights {
            None => None,
            Some(w) => {
                if !is_weights_file_name(&w.name) {
                    return Err(PortableError::WeightsName {
                        name: w.name.clone(),
                    });
                }
                let path = beside.join(&w.name);
                if !path.is_file() {
                    return Err(PortableError::Missing {
                        file: path.display().to_string(),
                        expected: w.sha256.clone(),
                    });
                }
                let found = concord_ml::file_sha256(&path)?;
                if !found.eq_ignore_ascii_case(&w.sha256) {
                    return Err(PortableError::Checksum {
                        file: path.display().to_string(),
                        expected: w.sha256.clone(),
                        found,
                    });
                }
                Some(path)
            }
        };
        let here = source.file_digests(weights.is_none())?;
        for expected in &self.encoder.files {
            match here.iter().find(|f| f.name == expected.name) {
                None => {
                    return Err(PortableError::Missing {
                        file: source.file_label(&expected.name),
                        expected: expected.sha256.clone(),
                    })
                }
                Some(found) if !found.sha256.eq_ignore_ascii_case(&expected.sha256) => {
                    return Err(PortableError::Checksum {
                        file: source.file_label(&found.name),
                        expected: expected.sha256.clone(),
                        found: found.sha256.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        if let Some(unnamed) = here
            .iter()
            .find(|f| !self.encoder.files.iter().any(|e| e.name == f.name))
        {
            return Err(PortableError::Unexpected {
                file: source.file_label(&unnamed.name),
            });
        }
        let encoder = source.load(weights.as_deref())?;
        Ok(PortablePredictor {
            encoder,
            classifier,
            labels: self.labels.clone(),
        })
    }
}

/// A portable model loaded: texts in, labels and probabilities out.
pub struct PortablePredictor {
    encoder: Encoder,
    classifier: Classifier,
    labels: Vec<String>,
}

/// What a portable model says of one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortablePrediction {
    /// The label with the highest probability (the first of ties).
    pub label: String,
    /// That label's probability: the suggestion's confidence.
    pub score: f32,
    /// Every label's probability, in the model's label order.
    pub probabilities: Vec<f32>,
}

impl PortablePredictor {
    /// The label names, in the order of [`PortablePrediction::probabilities`].
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Each text's label and probabilities, in order. The texts are embedded as the predict
    /// job embeds a project's items (sorted by length, in forward passes of the same size) and
    /// classified by the same code, so the same texts in the same order give the very numbers
    /// the job stores; another grouping pads differently and can move the last bits.
    pub fn predict(&self, texts: &[&str]) -> Result<Vec<PortablePrediction>, PortableError> {
        let x = self.encoder.embed(texts, ENCODER_BATCH, &mut |_| {})?;
        self.classifier
            .predict(&x)
            .into_iter()
            .map(|p| {
                if p.len() != self.labels.len() {
                    return Err(PortableError::Classifier(format!(
                        "it gives {} probabilities for {} labels",
                        p.len(),
                        self.labels.len()
                    )));
                }
                let (label, score) = single_label(&self.labels, &p);
                Ok(PortablePrediction {
                    label,
                    score,
                    probabilities: p,
                })
            })
            .collect()
    }
}

impl Engine {
    /// Version `version` of `project` as a portable model (project administrators): its
    /// classifier and label names, and its encoder named with the SHA-256 of each file as the
    /// models folder holds it now — checked to be the weights the version was made with. A
    /// fine-tuned version's weights file is named, not copied: it stays in the data directory
    /// ([`Engine::fine_tuned_weights_file`]). Span, relation and multi-label versions and
    /// imported ones (an external model's suggestions, no model) are refused.
    pub fn export_model(
        &self,
        actor: &Principal,
        project: ProjectId,
        version: u64,
    ) -> Result<PortableModel, EngineError> {
        self.authorize(actor, project, Role::Admin)?;
        let spec = self.project_record(project)?.spec;
        let record = self
            .store()
            .model_version(project, version)?
            .ok_or_else(|| {
                EngineError::NotFound(format!("version {version} of project {:?}", spec.name))
            })?;
        let refused = match spec.task {
            TaskKind::Spans => Some("a span version"),
            TaskKind::Relations => Some("a relation version"),
            TaskKind::Multilabel => Some("a multi-label version"),
            TaskKind::Classification if !has_model(&record) => {
                Some("an imported version (an external model's suggestions, without a model)")
            }
            TaskKind::Classification => None,
        };
        if let Some(what) = refused {
            return Err(EngineError::Invalid(format!(
                "version {version} of project {:?} is {what}; only single-label classification versions can be exported yet",
                spec.name
            )));
        }
        // What the predict job would read; a version it cannot read is not exported either.
        serde_json::from_value::<Classifier>(record.classifier.clone())
            .map_err(|e| EngineError::internal(format!("reading stored model {version}"), e))?;
        let model = version_model(&record).to_string();
        let models = &self.inner.models;
        let source = models.source(&model)?;
        let unreadable = |e: concord_ml::MlError| {
            EngineError::Unavailable(format!("cannot read the files of model {model}: {e}"))
        };
        let (files, weights) = match record.params.encoder_file.as_deref() {
            None => (source.file_digests(true).map_err(unreadable)?, None),
            Some(file) => {
                let sha256 = concord_ml::file_sha256(&models.weights_path(file)).map_err(|e| {
                    EngineError::Unavailable(format!(
                        "cannot read the fine-tuned weights of version {version}: {e}"
                    ))
                })?;
                let digest = FileDigest {
                    name: file.to_string(),
                    sha256,
                };
                (
                    source.file_digests(false).map_err(unreadable)?,
                    Some(digest),
                )
            }
        };
        // The version's classifier reads the embeddings of the weights it was made with: a
        // models folder that now holds others would have every shard predict something else.
        let weights_sha256 = weights
            .as_ref()
            .or_else(|| files.iter().find(|f| f.name == WEIGHTS_FILE))
            .map_or("", |f| f.sha256.as_str());
        if record.encoder.is_empty() || !weights_sha256.starts_with(&record.encoder) {
            return Err(EngineError::Invalid(format!(
                "the weights of model {model} here (SHA-256 {weights_sha256}) are not the ones version {version} was made with (fingerprint {}): install that model's files to export it",
                record.encoder
            )));
        }
        Ok(PortableModel {
            format: PORTABLE_MODEL_FORMAT,
            project: spec.name,
            version,
            trainer: record.trainer,
            labels: record.labels,
            encoder: PortableEncoder {
                model,
                fingerprint: record.encoder,
                files,
                weights,
            },
            classifier: record.classifier,
        })
    }

    /// Where the fine-tuned weights an exported `model` names are kept, to be copied beside
    /// its model file; `None` when it has none (or names no weights file).
    pub fn fine_tuned_weights_file(&self, model: &PortableModel) -> Option<PathBuf> {
        model
            .encoder
            .weights
            .as_ref()
            .filter(|w| is_weights_file_name(&w.name))
            .map(|w| self.inner.models.weights_path(&w.name))
    }
}
