//! The encoders: each base model (a folder of the models folder, else a model compiled into
//! the binary) loaded on first use and kept, the last fine-tuned one used, and the fine-tuned
//! weights files, named by their SHA-256, in the data directory's encoders folder.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use concord_ml::{Encoder, ModelFiles};
use concord_store::ModelVersionRecord;

use super::{version_model, ModelStatus, DEFAULT_MODEL};
use crate::EngineError;

/// Where fine-tuned encoder weights live, inside the data directory.
pub(crate) const ENCODERS_DIR: &str = "encoders";

/// Where a base model's files are: a folder of the models folder wins over a copy compiled
/// into the binary (release builds carry [`DEFAULT_MODEL`]), so `--models DIR` adds models and
/// overrides the built-in one.
enum Source {
    Folder(PathBuf),
    Embedded(ModelFiles<'static>),
}

impl Source {
    /// The base model, or its configuration with the fine-tuned weights at `weights`.
    fn load(&self, weights: Option<&std::path::Path>) -> Result<Encoder, concord_ml::MlError> {
        let device = concord_ml::default_device();
        match self {
            Source::Folder(folder) => Encoder::load_with_weights(folder, weights, &device),
            Source::Embedded(files) => Encoder::load_from_memory(files, weights, &device),
        }
    }
}

/// The encoders: each base model (a folder in the models folder, or compiled in), loaded on
/// first use, and the last fine-tuned one used.
pub(crate) struct Models {
    dir: Option<PathBuf>,
    encoders_dir: PathBuf,
    base: Mutex<HashMap<String, Arc<Encoder>>>,
    tuned: Mutex<Option<(String, Arc<Encoder>)>>,
}

fn lock_poisoned<T>(_: T) -> EngineError {
    EngineError::internal_fault("model cache lock poisoned")
}

impl Models {
    pub(crate) fn new(dir: Option<PathBuf>, encoders_dir: PathBuf) -> Models {
        Models {
            dir,
            encoders_dir,
            base: Mutex::new(HashMap::new()),
            tuned: Mutex::new(None),
        }
    }

    /// The model folders that hold a loadable model (config.json, model.safetensors,
    /// tokenizer.json), by name.
    pub(crate) fn installed(&self) -> Vec<String> {
        let Some(dir) = &self.dir else {
            return concord_ml::embedded_models()
                .into_iter()
                .map(String::from)
                .collect();
        };
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| concord_ml::ModelFolder::open(&e.path()).is_ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.extend(concord_ml::embedded_models().into_iter().map(String::from));
        names.sort();
        names.dedup();
        names
    }

    /// The encoder that made `record`'s embeddings: its base model, or the fine-tuned weights
    /// the version names (loaded once and kept until another fine-tuned version is used).
    pub(crate) fn encoder_for(
        &self,
        record: &ModelVersionRecord,
    ) -> Result<Arc<Encoder>, EngineError> {
        self.encoder_from_file(version_model(record), record.params.encoder_file.as_deref())
    }

    /// `model`'s encoder, or one with its configuration and the fine-tuned weights in `file`
    /// (in the encoders folder).
    pub(super) fn encoder_from_file(
        &self,
        model: &str,
        file: Option<&str>,
    ) -> Result<Arc<Encoder>, EngineError> {
        let Some(file) = file else {
            return self.encoder(model);
        };
        let key = format!("{model}/{file}");
        let mut slot = self.tuned.lock().map_err(lock_poisoned)?;
        if let Some((name, e)) = slot.as_ref() {
            if *name == key {
                return Ok(e.clone());
            }
        }
        let source = self.source(model)?;
        let path = self.encoders_dir.join(file);
        let encoder = Arc::new(source.load(Some(&path)).map_err(|e| {
            EngineError::Unavailable(format!("cannot load fine-tuned weights: {e}"))
        })?);
        *slot = Some((key, encoder.clone()));
        Ok(encoder)
    }

    /// A fresh copy of `model`'s encoder, for fine-tuning (which changes its weights).
    pub(super) fn fresh_base(&self, model: &str) -> Result<Encoder, EngineError> {
        self.source(model)?
            .load(None)
            .map_err(|e| EngineError::Unavailable(format!("cannot load the model: {e}")))
    }

    /// Writes fine-tuned weights under their SHA-256 (via a temporary file and a rename, so a
    /// crash never leaves a half-written file under a hash name). Returns the file name.
    pub(super) fn store_weights(&self, encoder: &Encoder, job: u64) -> Result<String, EngineError> {
        let dir = &self.encoders_dir;
        let io = |e: std::io::Error| {
            EngineError::internal(
                format!("writing fine-tuned weights in {}", dir.display()),
                e,
            )
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = dir.join(format!(".job-{job}.safetensors.tmp"));
        encoder
            .save_weights(&tmp)
            .map_err(|e| EngineError::internal("saving fine-tuned weights", e))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        let sha = concord_ml::file_sha256(&tmp)
            .map_err(|e| EngineError::internal("hashing fine-tuned weights", e))?;
        let name = format!("{sha}.safetensors");
        std::fs::rename(&tmp, dir.join(&name)).map_err(io)?;
        Ok(name)
    }

    fn source(&self, model: &str) -> Result<Source, EngineError> {
        let status = self.status(model);
        if !status.available {
            return Err(EngineError::Unavailable(format!(
                "model features are unavailable: {}",
                status.reason.unwrap_or_default()
            )));
        }
        match self.folder(model) {
            Some(folder) if concord_ml::ModelFolder::open(&folder).is_ok() => {
                Ok(Source::Folder(folder))
            }
            _ => concord_ml::embedded_model(model)
                .map(Source::Embedded)
                .ok_or_else(|| EngineError::Unavailable(format!("model {model} is not installed"))),
        }
    }

    fn folder(&self, model: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(model))
    }

    pub(crate) fn status(&self, model: &str) -> ModelStatus {
        let reason = match self.folder(model) {
            _ if concord_ml::embedded_model(model).is_some() => None,
            None => Some("no models folder is configured (concord serve --models DIR)".into()),
            Some(f) => match concord_ml::ModelFolder::open(&f) {
                Ok(_) => None,
                Err(e) if model == DEFAULT_MODEL => {
                    Some(format!("{e} (scripts/setup.sh fetches all-MiniLM-L6-v2)"))
                }
                Err(e) => Some(e.to_string()),
            },
        };
        ModelStatus {
            available: reason.is_none(),
            model: model.to_string(),
            reason,
        }
    }

    pub(crate) fn encoder(&self, model: &str) -> Result<Arc<Encoder>, EngineError> {
        let mut loaded = self.base.lock().map_err(lock_poisoned)?;
        if let Some(e) = loaded.get(model) {
            return Ok(e.clone());
        }
        let source = self.source(model)?;
        let encoder = Arc::new(
            source
                .load(None)
                .map_err(|e| EngineError::Unavailable(format!("cannot load the model: {e}")))?,
        );
        let from = match &source {
            Source::Folder(folder) => folder.display().to_string(),
            Source::Embedded(_) => "compiled into the binary".to_string(),
        };
        tracing::info!(
            model,
            from,
            fingerprint = encoder.fingerprint(),
            "model loaded"
        );
        loaded.insert(model.to_string(), encoder.clone());
        Ok(encoder)
    }
}

/// The 8-byte key the store files `encoder`'s embeddings under.
pub(super) fn fingerprint_bytes(encoder: &Encoder) -> [u8; 8] {
    fingerprint_from_hex(encoder.fingerprint())
}

/// The store key of an encoder fingerprint as a version records it (hex).
pub(super) fn fingerprint_from_hex(fingerprint: &str) -> [u8; 8] {
    let mut out = [0u8; 8];
    if let Ok(bytes) = hex::decode(fingerprint) {
        for (o, b) in out.iter_mut().zip(bytes) {
            *o = b;
        }
    }
    out
}
