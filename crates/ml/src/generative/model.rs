//! A generative language model run in process from one GGUF file (llama.cpp's format): one of
//! candle-transformers' quantized decoders, chosen by the file's `general.architecture`, and the
//! tokenizer the file carries. What it offers is scoring: the summed log-probability of given
//! continuations of a prompt, with the KV cache of a prompt prefix shared by many items computed
//! once ([`Prefix`]) and reused for each; and, for the span extraction, generation one token at
//! a time (`Decoding`: the next token's logits, the chosen token fed), continuing a prefix the
//! same way.
//!
//! # Reusing a KV cache by cloning (checked in candle-transformers 0.11.1)
//!
//! Every decoder keeps its KV cache inside the model value and its `forward` returns the logits
//! of the last position only. A prefix is fed once; each item continues a `clone()` of it at
//! `index_pos = prefix length`. That is sound only if feeding a clone leaves the original as it
//! was, which depends on how each module updates its cache:
//!
//! - `quantized_llama`, `quantized_gemma3`: a layer's cache is `Option<(Tensor, Tensor)>`,
//!   replaced on every step by `Tensor::cat(&[cache, new], 2)`, a new tensor. A clone shares
//!   the old tensors (reference-counted, never written), so the original is untouched.
//!   `index_pos == 0` drops the cache.
//! - `quantized_qwen3`: off the CPU a `ConcatKvCache` (`cat` again). On the CPU an
//!   `InterleavedKvCache` (`cat`) and a `RawInterleavedKvCache`, a `Vec<f32>` written in place
//!   that `clone()` copies deeply: independent, but every clone copies the whole buffer (sized
//!   for 4096 positions: about 1 GB for Qwen3-0.6B). Its `forward` does *not* drop the cache at
//!   offset 0, so a run from the start always begins from a never-fed clone of the loaded model.
//!   Its one-token CPU step writes only the raw cache, while a multi-token step appends to the
//!   interleaved one and attends to that: once a state has taken a one-token step, every later
//!   token is fed alone too (and chunking never leaves a lone token between chunks).
//! - `quantized_phi3`: `candle_nn::kv_cache::KvCache`, a preallocated tensor written in place
//!   by `slice_set`, which a clone *shares*. A state of length `n` reads positions `< n` and
//!   writes at positions `>= n`, so feeding a clone never changes what the original reads; but two
//!   clones of one state write the same positions, so each clone's work must be finished before
//!   the next sibling is fed. The scoring here is sequential and depth first, which keeps that
//!   rule, and [`GenerativeModel::score_continuations`] takes `&mut Prefix` so one prefix cannot
//!   be used from two threads at once. (A never-fed model has no buffer yet — `KvCache` allocates
//!   on first use — so fresh clones of the loaded model share nothing.)
//! - `quantized_qwen2::ModelWeights` is not `Clone`: it sits behind a mutex and every item is run
//!   from the start (its `index_pos == 0` drops the cache), the prompt again for each label of
//!   more than one token. Correct, without prefix reuse.
//!
//! `quantized_gemma3` builds the mask of a multi-token step after a cached prefix from tensors
//! of different dtypes (and would hide the prefix if it did not fail), so after its first step
//! tokens are fed one at a time: a one-token step has no mask and attends to the whole cache.
//! One-token steps also ignore the sliding window of its local layers, so Gemma 3 prompts are
//! capped at that window (512 tokens for Gemma 3 270M), where both are exact.
//!
//! # Throughput
//!
//! Items are scored one after another, each on a clone of the prefix state. The quantized
//! decoders take no padding mask, so items of different lengths cannot share one batched
//! `forward`; and candle's CPU kernels already spread one forward over the cores, so running
//! clones in parallel would mostly contend for them (and would break the phi3 rule above).

use std::fmt;
use std::io::BufReader;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::{
    quantized_gemma3, quantized_llama, quantized_phi3, quantized_qwen2, quantized_qwen3,
};

use super::tokenizer::GgufTokenizer;
use crate::MlError;

/// The `general.architecture` values [`GenerativeModel::load`] accepts (SmolLM2 and most
/// Llama-family files say `llama`).
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "qwen2", "qwen3", "phi3", "gemma3"];

/// The `general.architecture` a GGUF file's header names (only the metadata is read).
pub fn gguf_architecture(path: &Path) -> Result<String, MlError> {
    let mut file = std::fs::File::open(path).map_err(|source| MlError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let content = gguf_file::Content::read(&mut file)?;
    match content.metadata.get("general.architecture") {
        Some(v) => Ok(v.to_string()?.clone()),
        None => Err(MlError::Config(format!(
            "{} names no general.architecture",
            path.display()
        ))),
    }
}

/// Longest run of tokens given to one `forward`: a long prompt is fed in chunks, which bounds
/// the attention matrices (heads × chunk × length) without changing the result.
const PREFILL_CHUNK: usize = 512;

/// The decoders whose model value can be cloned to fork a KV cache.
#[derive(Clone)]
enum Decoder {
    Llama(quantized_llama::ModelWeights),
    Qwen3(quantized_qwen3::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
    Gemma3(quantized_gemma3::ModelWeights),
}

/// How many tokens one `forward` of a state may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stepping {
    /// Any number (in chunks of [`PREFILL_CHUNK`]).
    Free,
    /// One at a time once anything is cached (gemma3).
    SingleAfterStart,
    /// One at a time once a one-token step has been taken (qwen3 on the CPU).
    SingleAfterSingle,
}

impl Decoder {
    /// Logits `(1, vocabulary)` of the last position of `x` `(1, tokens)`, which continues the
    /// `index_pos` tokens in the cache.
    fn forward(&mut self, x: &Tensor, index_pos: usize) -> candle_core::Result<Tensor> {
        match self {
            Decoder::Llama(m) => m.forward(x, index_pos),
            // `forward(&mut self, input, offset)`: the same contract, another name.
            Decoder::Qwen3(m) => m.forward(x, index_pos),
            Decoder::Phi3(m) => m.forward(x, index_pos),
            Decoder::Gemma3(m) => m.forward(x, index_pos),
        }
    }

    /// How this decoder must be fed on `device` (see the module docs).
    fn stepping(&self, device: &Device) -> Stepping {
        match self {
            Decoder::Gemma3(_) => Stepping::SingleAfterStart,
            Decoder::Qwen3(_) if device.is_cpu() => Stepping::SingleAfterSingle,
            _ => Stepping::Free,
        }
    }
}

enum Weights {
    /// Never fed itself: every run starts from a clone, so its cache stays empty.
    Forkable(Decoder),
    Qwen2(Mutex<quantized_qwen2::ModelWeights>),
}

/// A quantized generative model and its tokenizer, loaded from one GGUF file.
pub struct GenerativeModel {
    weights: Weights,
    tokenizer: GgufTokenizer,
    architecture: String,
    name: Option<String>,
    parameters: u64,
    context_length: Option<usize>,
    max_tokens: usize,
    device: Device,
    /// Each id's text as generated output, built on first use ([`GenerativeModel::token_texts`]).
    token_texts: OnceLock<Vec<Option<String>>>,
}

impl fmt::Debug for GenerativeModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenerativeModel")
            .field("architecture", &self.architecture)
            .field("name", &self.name)
            .field("parameters", &self.parameters)
            .field("context_length", &self.context_length)
            .field("max_tokens", &self.max_tokens)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl GenerativeModel {
    /// Reads the GGUF file at `path` (metadata, tokenizer, weights) onto `device`.
    pub fn load(path: &Path, device: &Device) -> Result<GenerativeModel, MlError> {
        let file = std::fs::File::open(path).map_err(|source| MlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        // Metadata is read in many small pieces (one string per vocabulary entry).
        let mut reader = BufReader::new(file);
        let content = gguf_file::Content::read(&mut reader).map_err(|e| {
            MlError::Config(format!(
                "{} is not a readable GGUF file: {e}",
                path.display()
            ))
        })?;

        let metadata_string = |key: &str| -> Option<String> {
            content
                .metadata
                .get(key)
                .and_then(|v| v.to_string().ok())
                .cloned()
        };
        let metadata_u64 =
            |key: &str| -> Option<u64> { content.metadata.get(key).and_then(|v| v.to_u64().ok()) };
        let architecture = metadata_string("general.architecture").ok_or_else(|| {
            MlError::Config(format!(
                "{} has no general.architecture in its metadata",
                path.display()
            ))
        })?;
        if !SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(MlError::Config(format!(
                "{}: the GGUF architecture `{architecture}` is not supported (supported: {})",
                path.display(),
                SUPPORTED_ARCHITECTURES.join(", ")
            )));
        }
        let name = metadata_string("general.name");
        let context_length =
            metadata_u64(&format!("{architecture}.context_length")).map(|v| v as usize);
        let sliding_window =
            metadata_u64(&format!("{architecture}.attention.sliding_window")).map(|v| v as usize);
        let parameters: u64 = content
            .tensor_infos
            .values()
            .map(|t| t.shape.elem_count() as u64)
            .sum();
        // Positions the decoder can take: its RoPE tables' length, and for Gemma 3 the sliding
        // window (see the module docs).
        let cap = match architecture.as_str() {
            "llama" => quantized_llama::MAX_SEQ_LEN,
            "gemma3" => sliding_window
                .unwrap_or(quantized_gemma3::MAX_SEQ_LEN)
                .min(quantized_gemma3::MAX_SEQ_LEN),
            _ => usize::MAX,
        };
        let max_tokens = context_length.unwrap_or(cap.min(4096)).min(cap);

        let tokenizer = GgufTokenizer::from_gguf(&content)?;

        let loading = |e: candle_core::Error| {
            MlError::Config(format!(
                "{}: cannot load the {architecture} weights: {e}",
                path.display()
            ))
        };
        let weights = match architecture.as_str() {
            "llama" => Weights::Forkable(Decoder::Llama(
                quantized_llama::ModelWeights::from_gguf(content, &mut reader, device)
                    .map_err(loading)?,
            )),
            "qwen2" => Weights::Qwen2(Mutex::new(
                quantized_qwen2::ModelWeights::from_gguf(content, &mut reader, device)
                    .map_err(loading)?,
            )),
            "qwen3" => Weights::Forkable(Decoder::Qwen3(
                quantized_qwen3::ModelWeights::from_gguf(content, &mut reader, device)
                    .map_err(loading)?,
            )),
            "phi3" => Weights::Forkable(Decoder::Phi3(
                quantized_phi3::ModelWeights::from_gguf(false, content, &mut reader, device)
                    .map_err(loading)?,
            )),
            "gemma3" => Weights::Forkable(Decoder::Gemma3(
                quantized_gemma3::ModelWeights::from_gguf(content, &mut reader, device)
                    .map_err(loading)?,
            )),
            other => unreachable!("architecture {other} passed the supported check"),
        };

        Ok(GenerativeModel {
            weights,
            tokenizer,
            architecture,
            name,
            parameters,
            context_length,
            max_tokens,
            device: device.clone(),
            token_texts: OnceLock::new(),
        })
    }

    /// The file's `general.architecture` (`llama`, `qwen2`, `qwen3`, `phi3`, `gemma3`).
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The file's `general.name`, when it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Number of weights (elements of every tensor in the file).
    pub fn parameters(&self) -> u64 {
        self.parameters
    }

    /// The context length the file declares (`{architecture}.context_length`).
    pub fn context_length(&self) -> Option<usize> {
        self.context_length
    }

    /// The most tokens one prompt and answer may take here: the declared context, capped by
    /// what the decoder implementation supports (4096 for `llama`, the sliding window for
    /// `gemma3`).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.tokenizer
    }

    /// The file's chat template (Jinja source), when it has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.tokenizer.chat_template.as_deref()
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Whether a [`Prefix`] actually saves work (false for `qwen2`, whose model cannot be
    /// cloned: every item is then run from the start).
    pub fn reuses_prefix(&self) -> bool {
        matches!(self.weights, Weights::Forkable(_))
    }

    /// Token ids of a prompt, with the beginning-of-sequence token when the model wants one.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, MlError> {
        let mut ids = self.tokenizer.encode(text, true)?;
        // Never two BOS tokens, should both the file's flag and the tokenizer add one.
        if let Some(bos) = self.tokenizer.bos {
            if ids.len() >= 2 && ids[0] == bos && ids[1] == bos {
                ids.remove(0);
            }
        }
        Ok(ids)
    }

    /// Feeds `ids` once, for [`GenerativeModel::score_continuations`] to continue from.
    pub fn prefix(&self, ids: &[u32]) -> Result<Prefix, MlError> {
        if ids.len() > self.max_tokens {
            return Err(MlError::Config(format!(
                "a prompt prefix of {} tokens exceeds the model's {} tokens",
                ids.len(),
                self.max_tokens
            )));
        }
        let state = match &self.weights {
            Weights::Forkable(base) if !ids.is_empty() => {
                let mut state = State::new(base.clone(), &self.device);
                state.feed(ids)?;
                Some(state)
            }
            _ => None,
        };
        Ok(Prefix {
            ids: ids.to_vec(),
            state,
        })
    }

    /// The summed log-probability of each continuation's tokens following `context` (all the
    /// prompt's tokens, the prefix's included). When `prefix` is given, its ids begin
    /// `context` and it is shorter, the work starts from its cache; otherwise (or when they do
    /// not match) the whole context is run from the start, with the same result.
    ///
    /// Continuations sharing leading tokens share their computation; a one-token continuation
    /// costs nothing beyond the context's own step.
    pub fn score_continuations(
        &self,
        prefix: Option<&mut Prefix>,
        context: &[u32],
        continuations: &[Vec<u32>],
    ) -> Result<Vec<f64>, MlError> {
        if context.is_empty() {
            return Err(MlError::Config(
                "a prompt to score has no tokens".to_string(),
            ));
        }
        if continuations.iter().any(Vec::is_empty) {
            return Err(MlError::Config(
                "a continuation to score has no tokens".to_string(),
            ));
        }
        let longest = continuations.iter().map(Vec::len).max().unwrap_or(1);
        // The last token of a continuation is scored, never fed.
        let needed = context.len() + longest - 1;
        if needed > self.max_tokens {
            return Err(MlError::Config(format!(
                "the prompt and answer need {needed} tokens, more than the model's {}",
                self.max_tokens
            )));
        }
        match &self.weights {
            Weights::Forkable(base) => {
                let mut state = match prefix {
                    Some(p) if p.ids.len() < context.len() && context.starts_with(&p.ids) => {
                        match &p.state {
                            Some(s) => s.clone(),
                            None => State::new(base.clone(), &self.device),
                        }
                    }
                    _ => State::new(base.clone(), &self.device),
                };
                let start = state.len;
                let next = state.feed(&context[start..])?;
                let mut scores = vec![0.0; continuations.len()];
                let pending = continuations
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (i, c.as_slice()))
                    .collect();
                score_tree(state, &next, pending, &mut scores)?;
                Ok(scores)
            }
            Weights::Qwen2(model) => {
                // A poisoned lock is harmless: every run starts at position 0, which drops
                // whatever cache a failed run left.
                let mut model = model.lock().unwrap_or_else(PoisonError::into_inner);
                let device = &self.device;
                let (mut len, mut single) = (0usize, false);
                let mut feed = |restart: bool, ids: &[u32]| {
                    if restart {
                        len = 0;
                    }
                    feed_tokens(
                        |x, pos| model.forward(x, pos),
                        device,
                        (&mut len, &mut single),
                        ids,
                        Stepping::Free,
                    )
                };
                score_recomputing(&mut feed, context, continuations)
            }
        }
    }

    /// Starts generating after `context` (all the prompt's tokens): feeds it, from `prefix`'s
    /// cache when its ids begin `context` and it is shorter (as in
    /// [`GenerativeModel::score_continuations`]), and returns the distribution of the first new
    /// token. The prefix stays borrowed while the generation runs (the phi3 rule in the module
    /// docs); a `qwen2` model stays locked.
    pub(crate) fn start<'a>(
        &'a self,
        prefix: Option<&'a mut Prefix>,
        context: &[u32],
    ) -> Result<Decoding<'a>, MlError> {
        if context.is_empty() {
            return Err(MlError::Config(
                "a prompt to continue has no tokens".to_string(),
            ));
        }
        if context.len() > self.max_tokens {
            return Err(MlError::Config(format!(
                "a prompt of {} tokens exceeds the model's {} tokens",
                context.len(),
                self.max_tokens
            )));
        }
        let (runner, next) = match &self.weights {
            Weights::Forkable(base) => {
                let mut state = match prefix.as_deref() {
                    Some(p) if p.ids.len() < context.len() && context.starts_with(&p.ids) => {
                        match &p.state {
                            Some(s) => s.clone(),
                            None => State::new(base.clone(), &self.device),
                        }
                    }
                    _ => State::new(base.clone(), &self.device),
                };
                let start = state.len;
                let next = state.feed(&context[start..])?;
                (Runner::Forkable(Box::new(state)), next)
            }
            Weights::Qwen2(model) => {
                // Position 0 drops whatever cache an earlier (or failed) run left.
                let mut model = model.lock().unwrap_or_else(PoisonError::into_inner);
                let (mut len, mut single) = (0usize, false);
                let next = feed_tokens(
                    |x, pos| model.forward(x, pos),
                    &self.device,
                    (&mut len, &mut single),
                    context,
                    Stepping::Free,
                )?;
                (
                    Runner::Qwen2 {
                        model,
                        len,
                        single,
                        device: &self.device,
                    },
                    next,
                )
            }
        };
        Ok(Decoding {
            runner,
            next,
            max_tokens: self.max_tokens,
            _prefix: PhantomData,
        })
    }

    /// Each id's text as a piece of generated output (`None`: no text of its own), built by
    /// `spans::token_texts` on first use and kept.
    pub(crate) fn token_texts(&self) -> Result<&[Option<String>], MlError> {
        if let Some(texts) = self.token_texts.get() {
            return Ok(texts);
        }
        let texts = super::spans::token_texts(&self.tokenizer)?;
        Ok(self.token_texts.get_or_init(|| texts))
    }
}

/// A generation in progress ([`GenerativeModel::start`]): the next token's logits, and the
/// chosen token fed to get the following ones.
pub(crate) struct Decoding<'a> {
    runner: Runner<'a>,
    next: NextToken,
    max_tokens: usize,
    /// The prefix this generation continues, which must not be continued by another meanwhile.
    _prefix: PhantomData<&'a mut Prefix>,
}

/// The model state a [`Decoding`] feeds (boxed: a decoder is far larger than a lock).
enum Runner<'a> {
    Forkable(Box<State>),
    Qwen2 {
        model: MutexGuard<'a, quantized_qwen2::ModelWeights>,
        len: usize,
        single: bool,
        device: &'a Device,
    },
}

impl Decoding<'_> {
    /// The logits of the next token, one per id of the model's output layer.
    pub(crate) fn next_logits(&self) -> &[f32] {
        &self.next.logits
    }

    /// Tokens in the cache: the prompt's and those pushed since.
    pub(crate) fn tokens(&self) -> usize {
        match &self.runner {
            Runner::Forkable(state) => state.len,
            Runner::Qwen2 { len, .. } => *len,
        }
    }

    /// Feeds `token` (the one chosen from [`Decoding::next_logits`]) and computes the logits
    /// of the token after it.
    pub(crate) fn push(&mut self, token: u32) -> Result<(), MlError> {
        if self.tokens() >= self.max_tokens {
            return Err(MlError::Config(format!(
                "the generation reached the model's {} tokens",
                self.max_tokens
            )));
        }
        self.next = match &mut self.runner {
            Runner::Forkable(state) => state.feed(&[token])?,
            Runner::Qwen2 {
                model,
                len,
                single,
                device,
            } => feed_tokens(
                |x, pos| model.forward(x, pos),
                device,
                (len, single),
                &[token],
                Stepping::Free,
            )?,
        };
        Ok(())
    }
}

/// The KV cache of a prompt prefix shared by many items ([`GenerativeModel::prefix`]).
pub struct Prefix {
    ids: Vec<u32>,
    /// None when the model cannot fork (`qwen2`) or the prefix is empty.
    state: Option<State>,
}

impl Prefix {
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// A forkable decoder with the tokens fed so far in its cache.
#[derive(Clone)]
struct State {
    decoder: Decoder,
    len: usize,
    /// Whether every later token must be fed alone ([`Stepping`]).
    single: bool,
    stepping: Stepping,
    device: Device,
}

impl State {
    fn new(decoder: Decoder, device: &Device) -> State {
        State {
            stepping: decoder.stepping(device),
            decoder,
            len: 0,
            single: false,
            device: device.clone(),
        }
    }
}

/// What the scoring needs of a model state: feeding tokens, and forking by `clone`.
trait Lm: Clone {
    fn feed(&mut self, ids: &[u32]) -> Result<NextToken, MlError>;
}

impl Lm for State {
    fn feed(&mut self, ids: &[u32]) -> Result<NextToken, MlError> {
        let decoder = &mut self.decoder;
        feed_tokens(
            |x, pos| decoder.forward(x, pos),
            &self.device,
            (&mut self.len, &mut self.single),
            ids,
            self.stepping,
        )
    }
}

/// Feeds `ids` after the `*len` tokens in the cache and returns the next token's
/// distribution: in chunks of at most [`PREFILL_CHUNK`] (never leaving one lone token after a
/// chunk), or one token at a time once `*single` is set, which `stepping` decides after each
/// step.
fn feed_tokens(
    mut forward: impl FnMut(&Tensor, usize) -> candle_core::Result<Tensor>,
    device: &Device,
    (len, single): (&mut usize, &mut bool),
    ids: &[u32],
    stepping: Stepping,
) -> Result<NextToken, MlError> {
    let mut rest = ids;
    let mut logits = None;
    while !rest.is_empty() {
        let n = if *single {
            1
        } else {
            let n = rest.len().min(PREFILL_CHUNK);
            if rest.len() - n == 1 {
                n - 1
            } else {
                n
            }
        };
        let x = Tensor::new(&rest[..n], device)?.unsqueeze(0)?;
        logits = Some(forward(&x, *len)?);
        *len += n;
        rest = &rest[n..];
        match stepping {
            Stepping::Free => {}
            Stepping::SingleAfterStart => *single = true,
            Stepping::SingleAfterSingle => *single |= n == 1,
        }
    }
    match logits {
        Some(logits) => NextToken::from_logits(&logits),
        None => Err(MlError::Config("no tokens to feed".to_string())),
    }
}

/// The distribution of the next token, as logits and their log normaliser.
struct NextToken {
    logits: Vec<f32>,
    log_norm: f64,
}

impl NextToken {
    fn from_logits(logits: &Tensor) -> Result<NextToken, MlError> {
        let logits = logits
            .flatten_all()?
            .to_dtype(DType::F32)?
            .to_vec1::<f32>()?;
        Ok(NextToken::new(logits))
    }

    fn new(logits: Vec<f32>) -> NextToken {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
        NextToken {
            log_norm: max + sum.ln(),
            logits,
        }
    }

    fn log_prob(&self, token: u32) -> Result<f64, MlError> {
        self.logits
            .get(token as usize)
            .map(|&l| l as f64 - self.log_norm)
            .ok_or_else(|| {
                MlError::Tokenizer(format!(
                    "token {token} is outside the model's vocabulary of {}",
                    self.logits.len()
                ))
            })
    }
}

/// Continuations still to score: each one's index into the scores and its tokens left.
type Pending<'a> = Vec<(usize, &'a [u32])>;

/// Feeds token ids to a model that cannot fork: `(restart, ids)`, see [`score_recomputing`].
type Feed<'a> = dyn FnMut(bool, &[u32]) -> Result<NextToken, MlError> + 'a;

/// Adds to `scores[i]` the log-probability of each pending `(i, tokens)` continuing `state`,
/// whose next-token distribution is `next`. Continuations are grouped by their first token, so
/// a shared leading token is fed once; depth first, each fork finished before its sibling
/// starts (the phi3 rule in the module docs); the last group takes `state` itself.
fn score_tree<L: Lm>(
    state: L,
    next: &NextToken,
    pending: Pending<'_>,
    scores: &mut [f64],
) -> Result<(), MlError> {
    let mut groups: Vec<(u32, Pending<'_>)> = Vec::new();
    for (i, tokens) in pending {
        let (first, rest) = (tokens[0], &tokens[1..]);
        scores[i] += next.log_prob(first)?;
        if rest.is_empty() {
            continue;
        }
        match groups.iter_mut().find(|(t, _)| *t == first) {
            Some((_, members)) => members.push((i, rest)),
            None => groups.push((first, vec![(i, rest)])),
        }
    }
    let count = groups.len();
    let mut state = Some(state);
    for (k, (token, members)) in groups.into_iter().enumerate() {
        let mut child = if k + 1 == count {
            state.take().expect("the state is kept for the last group")
        } else {
            state
                .as_ref()
                .expect("the state is kept for the last group")
                .clone()
        };
        let after = child.feed(&[token])?;
        score_tree(child, &after, members, scores)?;
    }
    Ok(())
}

/// Scoring without forks: `feed(restart, ids)` runs `ids` from position 0 when `restart`,
/// else after what was fed before. The context is run again for each continuation of more
/// than one token but the first.
fn score_recomputing(
    feed: &mut Feed<'_>,
    context: &[u32],
    continuations: &[Vec<u32>],
) -> Result<Vec<f64>, MlError> {
    let first = feed(true, context)?;
    let mut at_context_end = true;
    let mut scores = Vec::with_capacity(continuations.len());
    for tokens in continuations {
        let mut score = first.log_prob(tokens[0])?;
        if tokens.len() > 1 {
            if !at_context_end {
                feed(true, context)?;
            }
            at_context_end = false;
            for pair in tokens.windows(2) {
                let next = feed(false, &pair[..1])?;
                score += next.log_prob(pair[1])?;
            }
        }
        scores.push(score);
    }
    Ok(scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy language model: the logits of the next token are a fixed function of everything
    /// fed so far, so any way of feeding the same tokens must give the same numbers.
    #[derive(Clone, Default)]
    struct Toy {
        fed: Vec<u32>,
        forwards: std::rc::Rc<std::cell::Cell<usize>>,
    }

    const VOCAB: u32 = 7;

    fn toy_logits(fed: &[u32]) -> Vec<f32> {
        let mut h: u64 = 1469598103934665603;
        for &t in fed {
            h = (h ^ t as u64).wrapping_mul(1099511628211);
        }
        (0..VOCAB)
            .map(|v| ((h.rotate_left(v * 7) % 1000) as f32) / 250.0)
            .collect()
    }

    impl Lm for Toy {
        fn feed(&mut self, ids: &[u32]) -> Result<NextToken, MlError> {
            self.forwards.set(self.forwards.get() + 1);
            self.fed.extend_from_slice(ids);
            Ok(NextToken::new(toy_logits(&self.fed)))
        }
    }

    /// The log-probability of `tokens` after `context`, one token at a time from scratch.
    fn brute_force(context: &[u32], tokens: &[u32]) -> f64 {
        let mut fed = context.to_vec();
        let mut total = 0.0;
        for &t in tokens {
            total += NextToken::new(toy_logits(&fed)).log_prob(t).unwrap();
            fed.push(t);
        }
        total
    }

    #[test]
    fn next_token_log_probs_are_normalised() {
        let next = NextToken::from_logits(
            &Tensor::new(&[[1.0f32, 2.0, 3.0, -40.0]], &Device::Cpu).unwrap(),
        )
        .unwrap();
        let total: f64 = (0..4).map(|t| next.log_prob(t).unwrap().exp()).sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!((next.log_prob(2).unwrap() - next.log_prob(1).unwrap() - 1.0).abs() < 1e-6);
        assert!(matches!(next.log_prob(4), Err(MlError::Tokenizer(_))));
    }

    #[test]
    fn shared_leading_tokens_are_fed_once_and_score_as_if_fed_alone() {
        let context = [3u32, 1, 4];
        let continuations: Vec<Vec<u32>> = vec![
            vec![2],
            vec![5, 1, 6],
            vec![5, 1, 2],
            vec![5, 3],
            vec![0, 0],
            vec![2],
        ];
        let mut state = Toy::default();
        let next = state.feed(&context).unwrap();
        let forwards = state.forwards.clone();
        let mut scores = vec![0.0; continuations.len()];
        let pending = continuations
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.as_slice()))
            .collect();
        score_tree(state, &next, pending, &mut scores).unwrap();
        for (c, s) in continuations.iter().zip(&scores) {
            assert!((brute_force(&context, c) - s).abs() < 1e-9, "{c:?}");
        }
        assert_eq!(scores[0], scores[5]);
        // The context, then 5, 5·1, 0: the trie's inner nodes only.
        assert_eq!(forwards.get(), 4);
    }

    #[test]
    fn recomputing_scores_as_the_tree_does() {
        let context = [6u32, 2];
        let continuations: Vec<Vec<u32>> = vec![vec![1, 2, 3], vec![4], vec![1, 5], vec![0]];
        let mut fed: Vec<u32> = Vec::new();
        let mut restarts = 0;
        let mut feed = |restart: bool, ids: &[u32]| -> Result<NextToken, MlError> {
            if restart {
                fed.clear();
                restarts += 1;
            }
            fed.extend_from_slice(ids);
            Ok(NextToken::new(toy_logits(&fed)))
        };
        let scores = score_recomputing(&mut feed, &context, &continuations).unwrap();
        for (c, s) in continuations.iter().zip(&scores) {
            assert!((brute_force(&context, c) - s).abs() < 1e-9, "{c:?}");
        }
        // Once for the one-token answers and the first long one, again for the second.
        assert_eq!(restarts, 2);
    }

    /// The `(position, tokens)` of each step feeding `feeds` one after another to one state.
    fn steps(feeds: &[usize], stepping: Stepping) -> Vec<(usize, usize)> {
        let mut steps = Vec::new();
        let (mut len, mut single) = (0, false);
        for &count in feeds {
            let ids: Vec<u32> = (0..count as u32).collect();
            feed_tokens(
                |x, pos| {
                    steps.push((pos, x.dims2()?.1));
                    Tensor::zeros((1, 3), DType::F32, &Device::Cpu)
                },
                &Device::Cpu,
                (&mut len, &mut single),
                &ids,
                stepping,
            )
            .unwrap();
        }
        assert_eq!(len, feeds.iter().sum::<usize>());
        steps
    }

    #[test]
    fn long_prompts_are_fed_in_chunks_without_a_lone_last_token() {
        let c = PREFILL_CHUNK;
        assert_eq!(steps(&[c + 10], Stepping::Free), vec![(0, c), (c, 10)]);
        assert_eq!(
            steps(&[c + 1], Stepping::Free),
            vec![(0, c - 1), (c - 1, 2)]
        );
        assert_eq!(
            steps(&[3, 1, 4], Stepping::Free),
            vec![(0, 3), (3, 1), (4, 4)]
        );
    }

    #[test]
    fn gemma_takes_one_token_per_step_after_the_first() {
        let s = steps(&[PREFILL_CHUNK + 10, 2], Stepping::SingleAfterStart);
        assert_eq!(s.len(), 13);
        assert_eq!(s[0], (0, PREFILL_CHUNK));
        assert!(s[1..].iter().all(|&(_, n)| n == 1));
    }

    #[test]
    fn qwen3_takes_one_token_per_step_after_a_one_token_step() {
        assert_eq!(
            steps(&[3, 4, 1, 2], Stepping::SingleAfterSingle),
            vec![(0, 3), (3, 4), (7, 1), (8, 1), (9, 1)]
        );
    }
}
