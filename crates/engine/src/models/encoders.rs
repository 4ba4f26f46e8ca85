//! The encoders: each base model (a folder of the models folder, else a model compiled into
//! the binary) loaded on first use and kept, the last fine-tuned one used, and the fine-tuned
//! weights files, named by their SHA-256, in the data directory's encoders folder. Weights
//! files no version references (a training stopped between saving them and storing its
//! version) and temporary files a crash left are removed.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use concord_ml::{Encoder, ModelFiles};
use concord_store::ModelVersionRecord;
use sha2::{Digest, Sha256};

use super::portable::FileDigest;
use super::{version_model, ModelStatus, DEFAULT_MODEL};
use crate::{Engine, EngineError};

/// Where fine-tuned encoder weights live, inside the data directory.
pub(crate) const ENCODERS_DIR: &str = "encoders";
/// A fine-tuned weights file being written is `.job-<job id>.safetensors.tmp` in the encoders
/// folder until it is renamed to its hash.
const WEIGHTS_TEMP_PREFIX: &str = ".job-";
const WEIGHTS_TEMP_SUFFIX: &str = ".safetensors.tmp";
/// The extension of a fine-tuned weights file (named `<sha256 hex>.safetensors`).
const WEIGHTS_EXTENSION: &str = ".safetensors";

/// Whether `name` is a fine-tuned weights file's name: 64 hex digits and the extension. Only
/// such files are ever removed as unreferenced, and only such a name is read beside an
/// exported model.
pub(super) fn is_weights_file_name(name: &str) -> bool {
    name.strip_suffix(WEIGHTS_EXTENSION)
        .is_some_and(|hash| hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Removes the plain files in `dir` whose names `matches` accepts; returns how many. A folder
/// that does not exist holds nothing to remove; a file that cannot be removed is logged and
/// left.
pub(crate) fn remove_files(dir: &Path, matches: impl Fn(&str) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !matches(name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        match std::fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) => {
                tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove a leftover file")
            }
        }
    }
    removed
}

/// The files of a model folder an encoder is loaded from (`concord_ml::ModelFolder`): its
/// configuration, weights, tokenizer and, when it has one, the sentence-transformers
/// configuration that sets the longest input.
pub(super) const CONFIG_FILE: &str = "config.json";
pub(super) const WEIGHTS_FILE: &str = "model.safetensors";
pub(super) const TOKENIZER_FILE: &str = "tokenizer.json";
pub(super) const SENTENCE_CONFIG_FILE: &str = "sentence_bert_config.json";

/// Where a base model's files are: a folder of the models folder wins over a copy compiled
/// into the binary (release builds carry [`DEFAULT_MODEL`]), so `--models DIR` adds models and
/// overrides the built-in one.
pub(super) enum Source {
    Folder(PathBuf),
    Embedded(ModelFiles<'static>),
}

impl Source {
    /// Where `model` is: its folder in the models folder `dir` when that holds a loadable
    /// model, else the copy compiled into the binary, if any.
    pub(super) fn find(dir: Option<&Path>, model: &str) -> Option<Source> {
        match dir.map(|d| d.join(model)) {
            Some(folder) if concord_ml::ModelFolder::open(&folder).is_ok() => {
                Some(Source::Folder(folder))
            }
            _ => concord_ml::embedded_model(model).map(Source::Embedded),
        }
    }

    /// The base model, or its configuration with the fine-tuned weights at `weights`.
    pub(super) fn load(
        &self,
        weights: Option<&std::path::Path>,
    ) -> Result<Encoder, concord_ml::MlError> {
        let device = concord_ml::default_device();
        match self {
            Source::Folder(folder) => Encoder::load_with_weights(folder, weights, &device),
            Source::Embedded(files) => Encoder::load_from_memory(files, weights, &device),
        }
    }

    /// Each file the encoder is loaded from with its SHA-256 (hex), in a fixed order: the
    /// configuration, the weights (left out when fine-tuned weights replace them), the
    /// tokenizer, and the sentence-transformers configuration when the model has one. A copy
    /// compiled into the binary is hashed as the bytes it holds.
    pub(super) fn file_digests(
        &self,
        with_weights: bool,
    ) -> Result<Vec<FileDigest>, concord_ml::MlError> {
        let digest = |name: &str, sha256: String| FileDigest {
            name: name.to_string(),
            sha256,
        };
        let mut out = Vec::with_capacity(4);
        match self {
            Source::Folder(folder) => {
                for name in [
                    CONFIG_FILE,
                    WEIGHTS_FILE,
                    TOKENIZER_FILE,
                    SENTENCE_CONFIG_FILE,
                ] {
                    let path = folder.join(name);
                    let skipped = (name == WEIGHTS_FILE && !with_weights)
                        || (name == SENTENCE_CONFIG_FILE && !path.is_file());
                    if !skipped {
                        out.push(digest(name, concord_ml::file_sha256(&path)?));
                    }
                }
            }
            Source::Embedded(files) => {
                let sha256 = |bytes: &[u8]| hex::encode(Sha256::digest(bytes));
                out.push(digest(CONFIG_FILE, sha256(files.config)));
                if with_weights {
                    out.push(digest(WEIGHTS_FILE, sha256(files.weights)));
                }
                out.push(digest(TOKENIZER_FILE, sha256(files.tokenizer)));
                if let Some(sentence_config) = files.sentence_config {
                    out.push(digest(SENTENCE_CONFIG_FILE, sha256(sentence_config)));
                }
            }
        }
        Ok(out)
    }

    /// The file `name` of this model as a message names it: its path, or its name and that it
    /// is compiled in.
    pub(super) fn file_label(&self, name: &str) -> String {
        match self {
            Source::Folder(folder) => folder.join(name).display().to_string(),
            Source::Embedded(_) => format!("{name} (compiled into this binary)"),
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

/// A cache's lock, also after a job panicked while holding it: the caches only ever gain
/// whole, loaded encoders, so what they hold stays usable, and the next job is not failed for
/// an earlier one's panic.
fn lock_cache<T>(cache: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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

    /// The models folder, when the server has one.
    pub(crate) fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_deref()
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
        let mut slot = lock_cache(&self.tuned);
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

    /// Where the fine-tuned weights file `file` (a name a version records) is.
    pub(super) fn weights_path(&self, file: &str) -> PathBuf {
        self.encoders_dir.join(file)
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
        let tmp = dir.join(format!("{WEIGHTS_TEMP_PREFIX}{job}{WEIGHTS_TEMP_SUFFIX}"));
        encoder
            .save_weights(&tmp)
            .map_err(|e| EngineError::internal("saving fine-tuned weights", e))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        let sha = concord_ml::file_sha256(&tmp)
            .map_err(|e| EngineError::internal("hashing fine-tuned weights", e))?;
        let name = format!("{sha}{WEIGHTS_EXTENSION}");
        std::fs::rename(&tmp, dir.join(&name)).map_err(io)?;
        // The version that names the file is committed next: the rename must be durable
        // first, or a crash could leave a version whose weights are gone.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(name)
    }

    pub(super) fn source(&self, model: &str) -> Result<Source, EngineError> {
        let status = self.status(model);
        if !status.available {
            return Err(EngineError::Unavailable(format!(
                "model features are unavailable: {}",
                status.reason.unwrap_or_default()
            )));
        }
        Source::find(self.dir.as_deref(), model)
            .ok_or_else(|| EngineError::Unavailable(format!("model {model} is not installed")))
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
        let mut loaded = lock_cache(&self.base);
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
pub(crate) fn fingerprint_bytes(encoder: &Encoder) -> [u8; 8] {
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

impl Engine {
    /// Removes the fine-tuned weights files no model version of any project names. Runs at
    /// start and after each training job, on the job worker's thread or before it starts: the
    /// worker is the only writer of weights files, so none is being written meanwhile.
    /// Returns how many were removed; when the versions cannot be read, none is.
    pub(crate) fn remove_unreferenced_weights(&self) -> usize {
        let referenced = match self.referenced_weights_files() {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the model versions; fine-tuned weights files left as they are");
                return 0;
            }
        };
        let removed = remove_files(&self.inner.models.encoders_dir, |name| {
            is_weights_file_name(name) && !referenced.contains(name)
        });
        if removed > 0 {
            tracing::info!(
                removed,
                "removed fine-tuned weights files no model version uses"
            );
        }
        removed
    }

    /// Removes the weights files a training was writing when the process stopped. Only at
    /// start, before the job worker runs.
    pub(crate) fn remove_weights_temp_files(&self) -> usize {
        remove_files(&self.inner.models.encoders_dir, |name| {
            name.starts_with(WEIGHTS_TEMP_PREFIX) && name.ends_with(WEIGHTS_TEMP_SUFFIX)
        })
    }

    /// The weights files that model versions name, over every project.
    fn referenced_weights_files(&self) -> Result<HashSet<String>, EngineError> {
        let mut files = HashSet::new();
        for (project, _) in self.store().projects()? {
            for (_, version) in self.store().model_versions(project)? {
                files.extend(version.params.encoder_file);
            }
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::is_weights_file_name;

    #[test]
    fn only_hash_named_safetensors_files_count_as_weights_files() {
        let hash = "0123456789abcdef".repeat(4);
        assert!(is_weights_file_name(&format!("{hash}.safetensors")));
        assert!(!is_weights_file_name(&format!("{hash}.safetensors.tmp")));
        assert!(!is_weights_file_name(&format!(
            "{}.safetensors",
            &hash[1..]
        )));
        assert!(!is_weights_file_name("model.safetensors"));
        assert!(!is_weights_file_name(&format!(
            "{}x.safetensors",
            &hash[1..]
        )));
    }
}
