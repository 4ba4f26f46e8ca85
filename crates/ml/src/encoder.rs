//! A sentence encoder: a model folder (Hugging Face layout: `config.json`, `model.safetensors`,
//! `tokenizer.json`) turned into L2-normalised mean-pooled embeddings, batched with padding to
//! the longest item of each batch and items sorted by length, so little work goes to padding.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationParams};

use crate::bert::{mean_pool_normalized, var_builder, Bert, BertConfig, Mode};
use crate::MlError;

/// Longest input, in tokens, when the model folder does not say (sentence-transformers' 256
/// for MiniLM, capped by the model's position embeddings).
const DEFAULT_MAX_TOKENS: usize = 256;

/// A loaded encoder and its tokenizer.
pub struct Encoder {
    bert: Bert,
    varmap: VarMap,
    tokenizer: Tokenizer,
    device: Device,
    max_tokens: usize,
    fingerprint: String,
}

fn read(path: &Path) -> Result<Vec<u8>, MlError> {
    std::fs::read(path).map_err(|source| MlError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The files of a model folder, checked to exist.
pub struct ModelFolder {
    pub config: PathBuf,
    pub weights: PathBuf,
    pub tokenizer: PathBuf,
    pub max_tokens: usize,
}

impl ModelFolder {
    pub fn open(dir: &Path) -> Result<ModelFolder, MlError> {
        let need = |name: &str| {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(MlError::Missing { path: p })
            }
        };
        let max_tokens = max_tokens_from(
            std::fs::read(dir.join("sentence_bert_config.json"))
                .ok()
                .as_deref(),
        );
        Ok(ModelFolder {
            config: need("config.json")?,
            weights: need("model.safetensors")?,
            tokenizer: need("tokenizer.json")?,
            max_tokens,
        })
    }
}

/// The longest input a model takes, from its `sentence_bert_config.json` (when it has one).
fn max_tokens_from(sentence_config: Option<&[u8]>) -> usize {
    sentence_config
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v.get("max_seq_length").and_then(|m| m.as_u64()))
        .map_or(DEFAULT_MAX_TOKENS, |m| m as usize)
}

/// A model's files held in memory (a model compiled into the binary): the contents of what a
/// [`ModelFolder`] names on disk.
#[derive(Debug, Clone, Copy)]
pub struct ModelFiles<'a> {
    /// `config.json`.
    pub config: &'a [u8],
    /// `model.safetensors`; tensors stored in another float type than the model computes in
    /// (f16) are converted on loading.
    pub weights: &'a [u8],
    /// `tokenizer.json`.
    pub tokenizer: &'a [u8],
    /// `sentence_bert_config.json`, when the model has one.
    pub sentence_config: Option<&'a [u8]>,
}

/// Where an encoder's weights come from.
enum Weights<'a> {
    /// A safetensors file, memory-mapped.
    File(&'a Path),
    /// Safetensors bytes already in memory.
    Bytes(&'a [u8]),
}

impl Encoder {
    /// Loads a model folder onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<Encoder, MlError> {
        Encoder::load_with_weights(dir, None, device)
    }

    /// Loads a model folder's configuration and tokenizer with `weights` (a fine-tuned copy of
    /// the folder's model, as [`Encoder::save_weights`] wrote it) instead of its own weights.
    pub fn load_with_weights(
        dir: &Path,
        weights: Option<&Path>,
        device: &Device,
    ) -> Result<Encoder, MlError> {
        let mut folder = ModelFolder::open(dir)?;
        if let Some(w) = weights {
            if !w.is_file() {
                return Err(MlError::Missing {
                    path: w.to_path_buf(),
                });
            }
            folder.weights = w.to_path_buf();
        }
        let config: BertConfig = serde_json::from_slice(&read(&folder.config)?)
            .map_err(|e| MlError::Config(format!("{}: {e}", folder.config.display())))?;
        let tokenizer = Tokenizer::from_file(&folder.tokenizer)
            .map_err(|e| MlError::Tokenizer(format!("{}: {e}", folder.tokenizer.display())))?;
        Encoder::with_weights(
            &config,
            tokenizer,
            folder.max_tokens,
            Weights::File(&folder.weights),
            device,
        )
    }

    /// Loads a model held in memory onto `device`, with `weights` (a fine-tuned copy of its
    /// model, as [`Encoder::save_weights`] wrote it) instead of its own weights when given.
    /// The same files give the same encoder, fingerprint included, as [`Encoder::load`] does
    /// from a folder.
    pub fn load_from_memory(
        files: &ModelFiles<'_>,
        weights: Option<&Path>,
        device: &Device,
    ) -> Result<Encoder, MlError> {
        let config: BertConfig = serde_json::from_slice(files.config)
            .map_err(|e| MlError::Config(format!("config.json: {e}")))?;
        let tokenizer = Tokenizer::from_bytes(files.tokenizer)
            .map_err(|e| MlError::Tokenizer(format!("tokenizer.json: {e}")))?;
        let max_tokens = max_tokens_from(files.sentence_config);
        let source = match weights {
            Some(path) if !path.is_file() => {
                return Err(MlError::Missing {
                    path: path.to_path_buf(),
                })
            }
            Some(path) => Weights::File(path),
            None => Weights::Bytes(files.weights),
        };
        Encoder::with_weights(&config, tokenizer, max_tokens, source, device)
    }

    fn with_weights(
        config: &BertConfig,
        tokenizer: Tokenizer,
        max_tokens: usize,
        weights: Weights<'_>,
        device: &Device,
    ) -> Result<Encoder, MlError> {
        let mut varmap = VarMap::new();
        let bert = Bert::new(&var_builder(&varmap, device), config)?;
        let fingerprint = match weights {
            Weights::File(path) => {
                varmap
                    .load(path)
                    .map_err(|e| MlError::Config(format!("{}: {e}", path.display())))?;
                file_fingerprint(path)?
            }
            Weights::Bytes(bytes) => {
                set_from_safetensors(&varmap, bytes, device)?;
                // As `file_fingerprint` hashes a file: the same weights, on disk or in memory,
                // share their cached embeddings.
                hex::encode(Sha256::digest(bytes))[..16].to_string()
            }
        };
        Encoder::assemble(bert, varmap, tokenizer, device, max_tokens, fingerprint)
    }

    /// An encoder from parts already in memory (tests build tiny ones this way).
    pub fn from_parts(
        config: &BertConfig,
        varmap: VarMap,
        tokenizer: Tokenizer,
        device: &Device,
        max_tokens: usize,
        fingerprint: String,
    ) -> Result<Encoder, MlError> {
        let bert = Bert::new(&var_builder(&varmap, device), config)?;
        Encoder::assemble(bert, varmap, tokenizer, device, max_tokens, fingerprint)
    }

    fn assemble(
        bert: Bert,
        varmap: VarMap,
        mut tokenizer: Tokenizer,
        device: &Device,
        max_tokens: usize,
        fingerprint: String,
    ) -> Result<Encoder, MlError> {
        let max_tokens = max_tokens.min(bert.config().max_position_embeddings).max(2);
        // The shipped tokenizer.json pads every input to 128: we pad per batch ourselves.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..TruncationParams::default()
            }))
            .map_err(|e| MlError::Tokenizer(e.to_string()))?;
        Ok(Encoder {
            bert,
            varmap,
            tokenizer,
            device: device.clone(),
            max_tokens,
            fingerprint,
        })
    }

    /// Identifies the weights (a hash of the safetensors file): embeddings cached under one
    /// fingerprint are never reused for another model.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    pub fn dimension(&self) -> usize {
        self.bert.hidden_size()
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    pub fn bert(&self) -> &Bert {
        &self.bert
    }

    /// Token ids of each text, with the special tokens, truncated to the model's limit.
    pub fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, MlError> {
        texts
            .iter()
            .map(|t| {
                self.tokenizer
                    .encode(*t, true)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| MlError::Tokenizer(e.to_string()))
            })
            .collect()
    }

    /// (ids, mask) tensors for a batch, padded to its longest member.
    pub fn batch_tensors(&self, batch: &[&[u32]]) -> Result<(Tensor, Tensor), MlError> {
        let longest = batch.iter().map(|t| t.len()).max().unwrap_or(1).max(1);
        let mut ids = Vec::with_capacity(batch.len() * longest);
        let mut mask = Vec::with_capacity(batch.len() * longest);
        for tokens in batch {
            ids.extend_from_slice(tokens);
            mask.extend(std::iter::repeat_n(1u32, tokens.len()));
            let pad = longest - tokens.len();
            ids.extend(std::iter::repeat_n(0u32, pad));
            mask.extend(std::iter::repeat_n(0u32, pad));
        }
        let shape = (batch.len(), longest);
        Ok((
            Tensor::from_vec(ids, shape, &self.device)?,
            Tensor::from_vec(mask, shape, &self.device)?,
        ))
    }

    /// Pooled, normalised embeddings of one padded batch, (batch, hidden).
    pub fn embed_batch(&self, batch: &[&[u32]], mode: Mode) -> Result<Tensor, MlError> {
        let (ids, mask) = self.batch_tensors(batch)?;
        let hidden = self.bert.forward(&ids, &mask, mode)?;
        Ok(mean_pool_normalized(&hidden, &mask)?)
    }

    /// Embeddings of `texts`, in their order. Items are sorted by length and cut into batches
    /// of at most `batch_size` (see [`length_batches`]); `progress` gets the number done after
    /// each batch.
    pub fn embed(
        &self,
        texts: &[&str],
        batch_size: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<f32>>, MlError> {
        let tokens = self.tokenize(texts)?;
        self.embed_tokens(&tokens, batch_size, progress)
    }

    /// [`Encoder::embed`] for texts already tokenized.
    pub fn embed_tokens(
        &self,
        tokens: &[Vec<u32>],
        batch_size: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<f32>>, MlError> {
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by_key(|&i| tokens[i].len());
        let lengths: Vec<usize> = order.iter().map(|&i| tokens[i].len()).collect();
        let mut out = vec![Vec::new(); tokens.len()];
        let mut done = 0;
        for range in length_batches(&lengths, batch_size) {
            let chunk = &order[range];
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| tokens[i].as_slice()).collect();
            let pooled = self.embed_batch(&batch, Mode::Infer)?.to_vec2::<f32>()?;
            for (&i, row) in chunk.iter().zip(pooled) {
                out[i] = row;
            }
            done += chunk.len();
            progress(done);
        }
        Ok(out)
    }

    /// The sub-word pieces of words already split (an item's word tokens, cased as written):
    /// each word is tokenized on its own, so every piece belongs to exactly one word. A word
    /// the tokenizer turns into no piece at all (a control or zero-width character) gets the
    /// unknown token, so every word keeps at least one piece. No special tokens, no truncation
    /// beyond the tokenizer's own per-input limit (a single word longer than the model's
    /// input keeps only its first pieces).
    pub fn word_pieces<S: AsRef<str>>(&self, words: &[S]) -> Result<WordPieces, MlError> {
        let unknown = self.unknown_id();
        let mut ids = Vec::with_capacity(words.len() * 2);
        let mut ranges = Vec::with_capacity(words.len());
        for word in words {
            let encoding = self
                .tokenizer
                .encode(word.as_ref(), false)
                .map_err(|e| MlError::Tokenizer(e.to_string()))?;
            let start = ids.len();
            ids.extend_from_slice(encoding.get_ids());
            if ids.len() == start {
                ids.push(unknown);
            }
            ranges.push(start..ids.len());
        }
        Ok(WordPieces { ids, words: ranges })
    }

    /// The special tokens the tokenizer puts before and after one text (`[CLS]` and `[SEP]`
    /// for BERT), read from its post-processor by encoding an empty text.
    pub fn special_tokens(&self) -> Result<(Vec<u32>, Vec<u32>), MlError> {
        let bare = self
            .tokenizer
            .encode("", true)
            .map_err(|e| MlError::Tokenizer(e.to_string()))?;
        let special = bare.get_special_tokens_mask();
        let ids = bare.get_ids();
        // An empty text is all special tokens: split them where a text's pieces would go,
        // i.e. after the first (BERT's template is `[CLS] $A [SEP]`).
        let cut = special.iter().take_while(|&&m| m == 1).count().min(1);
        Ok((ids[..cut].to_vec(), ids[cut..].to_vec()))
    }

    /// The id of the tokenizer's unknown token (`[UNK]`), or 0 when it has none by that name.
    fn unknown_id(&self) -> u32 {
        ["[UNK]", "<unk>"]
            .iter()
            .find_map(|t| self.tokenizer.token_to_id(t))
            .unwrap_or(0)
    }

    /// Last hidden states of one padded batch, (batch, tokens, hidden): one vector per piece,
    /// before pooling (what a token classifier reads).
    pub fn hidden_states(&self, batch: &[&[u32]], mode: Mode) -> Result<Tensor, MlError> {
        let (ids, mask) = self.batch_tensors(batch)?;
        Ok(self.bert.forward(&ids, &mask, mode)?)
    }

    /// Writes the encoder's weights as safetensors (after fine-tuning).
    pub fn save_weights(&self, path: &Path) -> Result<(), MlError> {
        self.varmap
            .save(path)
            .map_err(|e| MlError::Config(format!("{}: {e}", path.display())))
    }
}

/// Words split into sub-word pieces by [`Encoder::word_pieces`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordPieces {
    /// The piece ids of all words, in order, without special tokens.
    pub ids: Vec<u32>,
    /// Per word, the range of its pieces in `ids` (never empty).
    pub words: Vec<std::ops::Range<usize>>,
}

/// Sets every variable of `varmap` from the safetensors `bytes`, converted to the variable's
/// float type (what `VarMap::load` does for a file, which has no way to read from memory).
fn set_from_safetensors(varmap: &VarMap, bytes: &[u8], device: &Device) -> Result<(), MlError> {
    let tensors = candle_core::safetensors::load_buffer(bytes, device)
        .map_err(|e| MlError::Config(format!("model.safetensors: {e}")))?;
    let vars = varmap.data().lock().map_err(|_| {
        MlError::Config("the model's variables are locked by a panicked thread".into())
    })?;
    for (name, var) in vars.iter() {
        let tensor = tensors
            .get(name)
            .ok_or_else(|| MlError::Config(format!("model.safetensors has no tensor {name}")))?;
        var.set(&tensor.to_dtype(var.dtype())?)
            .map_err(|e| MlError::Config(format!("model.safetensors, {name}: {e}")))?;
    }
    Ok(())
}

/// Cuts items sorted by token count (`lengths`, ascending) into consecutive batches of at most
/// `max_items`, also closing a batch before padding would make it more than a quarter (plus 32
/// tokens) larger than its real tokens: a batch costs as much as its longest item times its
/// size, so a long tail of short items padded to one long item wastes more than the larger
/// matrix products gain.
pub fn length_batches(lengths: &[usize], max_items: usize) -> Vec<std::ops::Range<usize>> {
    let max_items = max_items.max(1);
    let mut batches = Vec::new();
    let (mut start, mut real) = (0, 0usize);
    for (i, &len) in lengths.iter().enumerate() {
        let count = i - start;
        let padded = len * (count + 1);
        if count > 0 && (count == max_items || padded * 4 > (real + len) * 5 + 128) {
            batches.push(start..i);
            start = i;
            real = 0;
        }
        real += len;
    }
    if start < lengths.len() {
        batches.push(start..lengths.len());
    }
    batches
}

/// The first 16 hex digits of the SHA-256 of a file.
pub fn file_fingerprint(path: &Path) -> Result<String, MlError> {
    Ok(file_sha256(path)?[..16].to_string())
}

/// The SHA-256 of a file, hex: what names fine-tuned weights on disk.
pub fn file_sha256(path: &Path) -> Result<String, MlError> {
    let mut file = std::fs::File::open(path).map_err(|source| MlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|source| MlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::length_batches;

    fn check(lengths: &[usize], max_items: usize, want: &[usize]) {
        let sizes: Vec<usize> = length_batches(lengths, max_items)
            .iter()
            .map(|r| r.len())
            .collect();
        assert_eq!(sizes, want, "{lengths:?} in batches of {max_items}");
    }

    #[test]
    fn batches_follow_the_size_limit_and_stop_before_wasteful_padding() {
        check(&[], 8, &[]);
        check(&[5], 8, &[1]);
        check(&[10; 20], 8, &[8, 8, 4]);
        check(&[10; 20], 1, &[1; 20]);
        // Similar lengths share a batch; a much longer tail item starts a new one.
        check(&[20, 21, 22, 23, 200], 8, &[4, 1]);
        // Short items are not padded to a long one even when the batch has room.
        check(&[4, 5, 6, 40, 41, 42, 250, 256], 128, &[3, 3, 2]);
    }
}
