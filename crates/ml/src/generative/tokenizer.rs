//! A GGUF file's own tokenizer, rebuilt as a Hugging Face [`tokenizers::Tokenizer`] from the
//! file's metadata (`tokenizer.ggml.*`), so a model needs nothing but its one file.
//!
//! Two kinds of vocabulary are understood, the two that llama.cpp calls BPE and SPM:
//!
//! - `tokenizer.ggml.model = "gpt2"`: byte-level BPE with the file's `tokenizer.ggml.merges`.
//!   The text is first split by the regular expressions llama.cpp uses for the file's
//!   `tokenizer.ggml.pre` (SmolLM's digits one by one, Llama 3's, Qwen 2's, …); a name not in
//!   [`PRE_TOKENIZERS`] is an error, never a guess, since a wrong split silently changes ids.
//! - `tokenizer.ggml.model = "llama"`: SentencePiece-style BPE (Llama 2, Mistral, Gemma 3):
//!   spaces become `▁`, pieces merge best score first, characters outside the vocabulary fall
//!   back to `<0xNN>` byte tokens. The file has scores, not merges; the merges are derived from
//!   them as Hugging Face's `SentencePieceExtractor` does: every split of a piece into two
//!   pieces that are both in the vocabulary, ranked by the merged piece's score, which makes
//!   "lowest rank first" the same choice as SentencePiece's "highest score first".
//!
//! Control (and unknown) tokens become special added tokens and user-defined ones plain added
//! tokens, both matched in the raw text before anything else, as llama.cpp does with
//! `parse_special`: `<|im_start|>` or `<start_of_turn>` written in a prompt are one id each.
//! Gemma's runs of spaces, newlines and tabs are user-defined tokens, which is why they are
//! matched that way too.
//!
//! The reference is llama.cpp's tokenizer on the same file: `tests/gguf_tokenizer.rs` compares
//! with ids it produced (`scripts/gguf_tokenizer_reference.py`).

use std::collections::HashMap;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior,
    Tokenizer,
};

use crate::MlError;

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// SentencePiece's visible space.
const SPACE: &str = "\u{2581}";

/// The tokenizer part of a GGUF file's metadata, as plain data: what [`GgufTokenizer`] is
/// built from (and what tests build by hand).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GgufVocab {
    /// `tokenizer.ggml.model`: `"gpt2"` or `"llama"`.
    pub model: String,
    /// `tokenizer.ggml.pre`: the byte-level pre-tokenizer's name (ignored for `"llama"`).
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`, index = id.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.token_type`, one per token; empty = all normal.
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.scores`, one per token; needed by `"llama"`.
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.merges`, `"left right"` in rank order; needed by `"gpt2"`.
    pub merges: Vec<String>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub unknown: Option<u32>,
    pub padding: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`; absent = llama.cpp's default for the vocabulary.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`; absent = true for `"llama"` (llama.cpp's default).
    pub add_space_prefix: Option<bool>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

impl GgufVocab {
    /// Reads the `tokenizer.*` keys of a GGUF file's metadata.
    pub fn from_metadata(metadata: &HashMap<String, Value>) -> Result<Self, MlError> {
        let model = string(metadata, "tokenizer.ggml.model")?.ok_or_else(|| {
            MlError::Config("the GGUF file has no tokenizer (no tokenizer.ggml.model)".into())
        })?;
        let tokens = strings(metadata, "tokenizer.ggml.tokens")?
            .ok_or_else(|| MlError::Config("the GGUF file has no tokenizer.ggml.tokens".into()))?;
        Ok(Self {
            model,
            pre: string(metadata, "tokenizer.ggml.pre")?,
            tokens,
            token_types: ints(metadata, "tokenizer.ggml.token_type")?.unwrap_or_default(),
            scores: floats(metadata, "tokenizer.ggml.scores")?.unwrap_or_default(),
            merges: strings(metadata, "tokenizer.ggml.merges")?.unwrap_or_default(),
            bos: id(metadata, "tokenizer.ggml.bos_token_id")?,
            eos: id(metadata, "tokenizer.ggml.eos_token_id")?,
            unknown: id(metadata, "tokenizer.ggml.unknown_token_id")?,
            padding: id(metadata, "tokenizer.ggml.padding_token_id")?,
            add_bos: boolean(metadata, "tokenizer.ggml.add_bos_token")?,
            add_space_prefix: boolean(metadata, "tokenizer.ggml.add_space_prefix")?,
            chat_template: string(metadata, "tokenizer.chat_template")?,
        })
    }

    fn token_type(&self, id: usize) -> i32 {
        self.token_types
            .get(id)
            .copied()
            .unwrap_or(token_type::NORMAL)
    }
}

/// A GGUF model's tokenizer and the few facts about it that prompting needs.
#[derive(Clone)]
pub struct GgufTokenizer {
    pub tokenizer: Tokenizer,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    /// Whether a prompt starts with BOS (`tokenizer.ggml.add_bos_token`, else llama.cpp's
    /// default: yes for SentencePiece vocabularies and Llama 3-style byte-level ones).
    pub add_bos: bool,
    pub chat_template: Option<String>,
    /// Number of ids (`tokenizer.ggml.tokens`): anything at or above is not a token.
    vocab_len: usize,
}

impl std::fmt::Debug for GgufTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufTokenizer")
            .field("vocab_len", &self.vocab_len)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("add_bos", &self.add_bos)
            .finish_non_exhaustive()
    }
}

impl GgufTokenizer {
    /// The tokenizer a GGUF file describes (its metadata only; no tensor is read).
    pub fn from_gguf(content: &Content) -> Result<Self, MlError> {
        Self::from_vocab(&GgufVocab::from_metadata(&content.metadata)?)
    }

    /// The tokenizer a vocabulary describes.
    pub fn from_vocab(v: &GgufVocab) -> Result<Self, MlError> {
        let n = v.tokens.len();
        if n == 0 {
            return Err(MlError::Config("tokenizer.ggml.tokens is empty".into()));
        }
        if n > u32::MAX as usize {
            return Err(MlError::Config(format!("{n} tokens do not fit u32 ids")));
        }
        if !v.token_types.is_empty() && v.token_types.len() != n {
            return Err(MlError::Config(format!(
                "tokenizer.ggml.token_type has {} entries for {n} tokens",
                v.token_types.len()
            )));
        }
        let spm = match v.model.as_str() {
            "gpt2" => false,
            "llama" => true,
            other => {
                return Err(MlError::Config(format!(
                    "tokenizer model {other:?} (tokenizer.ggml.model) is not supported: only \
                     \"gpt2\" (byte-level BPE) and \"llama\" (SentencePiece BPE) are"
                )))
            }
        };
        // llama.cpp's defaults for SentencePiece files that name no special ids.
        let (bos, eos, unknown) = if spm {
            (v.bos.or(Some(1)), v.eos.or(Some(2)), v.unknown.or(Some(0)))
        } else {
            (v.bos, v.eos, v.unknown)
        };
        for (what, id) in [
            ("bos", bos),
            ("eos", eos),
            ("unknown", unknown),
            ("padding", v.padding),
        ] {
            if let Some(id) = id {
                if id as usize >= n {
                    return Err(MlError::Config(format!(
                        "tokenizer.ggml.{what}_token_id {id} is outside the {n} tokens"
                    )));
                }
            }
        }

        // Later duplicates win, as in llama.cpp's token-to-id map.
        let vocab: Vocab = v
            .tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();

        let (mut tokenizer, default_add_bos) = if spm {
            (sentencepiece(v, vocab, unknown)?, true)
        } else {
            byte_level(v, vocab)?
        };

        let added: Vec<AddedToken> = v
            .tokens
            .iter()
            .enumerate()
            .filter_map(|(i, text)| match v.token_type(i) {
                token_type::CONTROL | token_type::UNKNOWN => {
                    Some(AddedToken::from(text.clone(), true).normalized(false))
                }
                token_type::USER_DEFINED => {
                    Some(AddedToken::from(text.clone(), false).normalized(false))
                }
                // Reached through the model: normal pieces, byte tokens and unused ones
                // (llama.cpp does not look for those in the text either).
                token_type::NORMAL | token_type::BYTE | token_type::UNUSED => None,
                _ => None,
            })
            .collect();
        if !added.is_empty() {
            tokenizer.add_tokens(added).map_err(tokenizer_error)?;
        }

        let add_bos = v.add_bos.unwrap_or(default_add_bos);
        if add_bos && bos.is_none() {
            return Err(MlError::Config(
                "the tokenizer asks for a BOS token (tokenizer.ggml.add_bos_token) but names \
                 none (tokenizer.ggml.bos_token_id)"
                    .into(),
            ));
        }
        Ok(Self {
            tokenizer,
            bos,
            eos,
            add_bos,
            chat_template: v.chat_template.clone(),
            vocab_len: n,
        })
    }

    /// The ids of `text`. Special tokens written in the text are recognised; `add_special`
    /// puts BOS in front when the file asks for it ([`Self::add_bos`]).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>, MlError> {
        let encoding = self
            .tokenizer
            .encode_fast(text, false)
            .map_err(tokenizer_error)?;
        let mut ids = Vec::with_capacity(encoding.len() + 1);
        if add_special && self.add_bos {
            ids.extend(self.bos);
        }
        ids.extend_from_slice(encoding.get_ids());
        Ok(ids)
    }

    /// The text of `ids`, special tokens included (`decode(encode(t)) == t` for the texts
    /// these vocabularies can spell exactly).
    pub fn decode(&self, ids: &[u32]) -> Result<String, MlError> {
        self.decode_with(ids, false)
    }

    /// The text of `ids` without control tokens (BOS, EOS, `<end_of_turn>`, …).
    pub fn decode_skipping_special(&self, ids: &[u32]) -> Result<String, MlError> {
        self.decode_with(ids, true)
    }

    fn decode_with(&self, ids: &[u32], skip_special: bool) -> Result<String, MlError> {
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= self.vocab_len) {
            return Err(MlError::Tokenizer(format!(
                "id {bad} is outside the {} tokens",
                self.vocab_len
            )));
        }
        self.tokenizer
            .decode(ids, skip_special)
            .map_err(tokenizer_error)
    }

    /// The id of a token given by its text (`"<end_of_turn>"`), if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// The number of ids in the vocabulary.
    pub fn vocab_len(&self) -> usize {
        self.vocab_len
    }
}

fn tokenizer_error(e: impl std::fmt::Display) -> MlError {
    MlError::Tokenizer(e.to_string())
}

/// `tokenizer.ggml.model = "llama"`: SentencePiece BPE with byte fallback.
fn sentencepiece(v: &GgufVocab, vocab: Vocab, unknown: Option<u32>) -> Result<Tokenizer, MlError> {
    if v.scores.len() != v.tokens.len() {
        return Err(MlError::Config(format!(
            "a SentencePiece vocabulary needs one tokenizer.ggml.scores entry per token ({} \
             scores for {} tokens)",
            v.scores.len(),
            v.tokens.len()
        )));
    }
    let merges = sentencepiece_merges(&v.tokens, &v.scores, &vocab);
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .fuse_unk(true)
        .byte_fallback(true);
    if let Some(unk) = unknown {
        builder = builder.unk_token(v.tokens[unk as usize].clone());
    }
    let model = builder.build().map_err(tokenizer_error)?;
    let mut tokenizer = Tokenizer::new(model);

    let add_space_prefix = v.add_space_prefix.unwrap_or(true);
    let replace = Replace::new(" ", SPACE).map_err(tokenizer_error)?;
    let normalizer: NormalizerWrapper = if add_space_prefix {
        // llama.cpp puts a space before every stretch of text that starts the input or follows
        // a special token: the stretches the added tokens leave, each normalized on its own.
        NormalizerSequence::new(vec![Prepend::new(SPACE.to_string()).into(), replace.into()]).into()
    } else {
        replace.into()
    };
    tokenizer
        .with_normalizer(Some(normalizer))
        .map_err(tokenizer_error)?;

    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(SPACE, " ").map_err(tokenizer_error)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tokenizer)
}

/// BPE merges for a SentencePiece vocabulary, derived from the pieces' scores: for every
/// piece, each split into two pieces that are both in the vocabulary, ranked by the merged
/// piece's score, highest first (ties: lower merged id, then lower left id, then lower right
/// id). O(total characters of the vocabulary) look-ups, not O(V²).
pub fn sentencepiece_merges(tokens: &[String], scores: &[f32], vocab: &Vocab) -> Merges {
    // (score, merged id, left id, right id)
    let mut found: Vec<(f32, u32, u32, u32)> = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        let id = id as u32;
        // A duplicate piece is the vocabulary's last copy (its id in `vocab`), once.
        if vocab.get(piece.as_str()) != Some(&id) {
            continue;
        }
        // NaN ranks last; -0.0 and 0.0 rank together.
        let score = match scores.get(id as usize) {
            Some(s) if !s.is_nan() => *s + 0.0,
            _ => f32::NEG_INFINITY,
        };
        for (split, _) in piece.char_indices().skip(1) {
            let (left, right) = piece.split_at(split);
            if let (Some(&l), Some(&r)) = (vocab.get(left), vocab.get(right)) {
                found.push((score, id, l, r));
            }
        }
    }
    found.sort_unstable_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    found
        .into_iter()
        .map(|(_, _, l, r)| (tokens[l as usize].clone(), tokens[r as usize].clone()))
        .collect()
}

/// `tokenizer.ggml.model = "gpt2"`: byte-level BPE split by the file's pre-tokenizer.
fn byte_level(v: &GgufVocab, vocab: Vocab) -> Result<(Tokenizer, bool), MlError> {
    // llama.cpp reads a missing name as "default" (and warns that quality will suffer).
    let name = v.pre.as_deref().unwrap_or("default");
    let rules = pre_tokenizer_rules(name).ok_or_else(|| {
        MlError::Config(format!(
            "unknown pre-tokenizer {name:?} (tokenizer.ggml.pre): how it splits text is not \
             known here, and guessing would change the token ids"
        ))
    })?;
    if v.merges.is_empty() {
        return Err(MlError::Config(
            "a byte-level BPE vocabulary needs tokenizer.ggml.merges".into(),
        ));
    }
    let merges = v
        .merges
        .iter()
        .map(|m| {
            // As llama.cpp: the first space after the first character separates the two.
            m.char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(i, _)| (m[..i].to_string(), m[i + 1..].to_string()))
                .ok_or_else(|| {
                    MlError::Config(format!("tokenizer.ggml.merges entry {m:?} has no space"))
                })
        })
        .collect::<Result<Merges, MlError>>()?;
    let model = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(rules.ignore_merges)
        .build()
        .map_err(|e| MlError::Config(format!("tokenizer.ggml.merges: {e}")))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(byte_level_pre_tokenizer(&rules)?));
    tokenizer.with_decoder(Some(ByteLevel::new(false, false, false)));
    Ok((tokenizer, rules.add_bos))
}

/// Each of llama.cpp's expressions splits the pieces the previous ones left, keeping matches
/// and the text between them; then bytes become GPT-2's printable characters.
fn byte_level_pre_tokenizer(rules: &PreTokenizerRules) -> Result<PreTokenizerSequence, MlError> {
    let mut steps: Vec<PreTokenizerWrapper> = Vec::with_capacity(rules.regexes.len() + 1);
    for regex in rules.regexes {
        let split = Split::new(
            SplitPattern::Regex((*regex).to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| MlError::Config(format!("pre-tokenizer {}: {regex:?}: {e}", rules.name)))?;
        steps.push(split.into());
    }
    steps.push(ByteLevel::new(false, false, false).into());
    Ok(PreTokenizerSequence::new(steps))
}

/// How llama.cpp pre-tokenizes one family of byte-level vocabularies.
#[derive(Debug, Clone, Copy)]
pub struct PreTokenizerRules {
    pub name: &'static str,
    /// Applied in order, each to the pieces the previous left.
    pub regexes: &'static [&'static str],
    /// A piece that is itself a token is that token, whatever the merges say (Llama 3).
    pub ignore_merges: bool,
    /// llama.cpp's `add_bos` default for the family.
    pub add_bos: bool,
}

/// The rules for a `tokenizer.ggml.pre` name, if it is one of [`PRE_TOKENIZERS`].
pub fn pre_tokenizer_rules(name: &str) -> Option<PreTokenizerRules> {
    PRE_TOKENIZERS
        .iter()
        .find_map(|&(names, regexes, ignore_merges, add_bos)| {
            names
                .iter()
                .find(|n| **n == name)
                .map(|&name| PreTokenizerRules {
                    name,
                    regexes,
                    ignore_merges,
                    add_bos,
                })
        })
}

/// The byte-level pre-tokenizers known here: names (`tokenizer.ggml.pre`), llama.cpp's
/// expressions for them (`llm_tokenizer_bpe` in llama-vocab.cpp, copied verbatim), whether
/// merges are ignored for whole-token pieces, and whether BOS is added by default.
#[allow(clippy::type_complexity)]
pub const PRE_TOKENIZERS: &[(&[&str], &[&str], bool, bool)] = &[
    (&["default"], DEFAULT, false, false),
    (
        &[
            "llama3",
            "llama-v3",
            "llama-bpe",
            "falcon3",
            "falcon-h1",
            "pixtral",
            "midm-2.0",
            "lfm2",
        ],
        LLAMA3,
        true,
        true,
    ),
    (&["dbrx", "smaug-bpe"], LLAMA3, false, false),
    // deepseek-llm is left out: one of its llama.cpp split rules (a long explicit class of
    // cased letters) does not compile under fancy-regex; such a file is refused by name.
    (&["deepseek-coder"], DEEPSEEK_CODER, false, false),
    (&["deepseek-v3"], DEEPSEEK3_LLM, false, false),
    (&["falcon"], FALCON, false, false),
    (
        &[
            "smollm",
            "starcoder",
            "refact",
            "command-r",
            "codeshell",
            "exaone",
            "minerva-7b",
            "mellum2",
        ],
        STARCODER,
        false,
        false,
    ),
    (
        &[
            "gpt-2",
            "phi-2",
            "gigachat",
            "a.x-4.0",
            "mellum",
            "exaone4",
            "mpt",
            "olmo",
            "jais",
            "trillion",
            "granite-docling",
        ],
        GPT2,
        false,
        false,
    ),
    (
        &[
            "qwen2",
            "deepseek-r1-qwen",
            "megrez",
            "stablelm2",
            "hunyuan",
            "solar-open",
        ],
        QWEN2,
        false,
        false,
    ),
    (&["qwen35"], QWEN35, false, false),
    (&["poro-chat", "bloom", "gpt3-finnish"], PORO, false, false),
    (&["viking"], VIKING, false, false),
    (&["tekken"], TEKKEN, true, true),
    (&["gpt-4o", "llama4", "minimax-m2"], GPT4O, false, false),
    (&["seed-coder"], SEED_CODER, false, false),
    (
        &["bailingmoe", "bailingmoe2", "llada-moe"],
        BAILINGMOE,
        false,
        false,
    ),
    (&["grok-2"], GROK_2, false, false),
];

const DEFAULT: &[&str] = &[
    r##"[\p{P}\$\+<=>\^~\|]+"##,
    r##"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"##,
    r##"\p{N}+"##,
    r##"[0-9][0-9][0-9]"##,
];
const LLAMA3: &[&str] = &[
    r##"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const DEEPSEEK_CODER: &[&str] = &[
    r##"[\r\n]"##,
    r##"\s?\p{L}+"##,
    r##"\s?\p{P}+"##,
    r##"[一-龥ࠀ-一가-퟿]+"##,
    r##"\p{N}"##,
];
const DEEPSEEK3_LLM: &[&str] = &[
    r##"\p{N}{1,3}"##,
    r##"[一-龥぀-ゟ゠-ヿ]+"##,
    r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const FALCON: &[&str] = &[
    r##"[\p{P}\$\+<=>\^~\|`]+"##,
    r##"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"##,
    r##"[0-9][0-9][0-9]"##,
];
const STARCODER: &[&str] = &[
    r##"\p{N}"##,
    r##"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"##,
];
const GPT2: &[&str] =
    &[r##"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"##];
const QWEN2: &[&str] = &[
    r##"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const QWEN35: &[&str] = &[
    r##"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const PORO: &[&str] = &[r##" ?[^(\s|.,!?…。，、।۔،)]+"##];
const VIKING: &[&str] = &[r##" ?[^(\s|.,!?…。，、।۔،)]+"##, r##"\p{N}"##];
const TEKKEN: &[&str] = &[
    r##"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const GPT4O: &[&str] = &[
    r##"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const SEED_CODER: &[&str] = &[
    r##"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];
const BAILINGMOE: &[&str] = &[
    r##"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"##,
];
const GROK_2: &[&str] = &[
    r##"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##,
];

// Metadata readers: a key of the wrong type is an error, a missing key is `None`.

fn wrong_type(key: &str, want: &str, got: &Value) -> MlError {
    MlError::Config(format!(
        "GGUF metadata {key} should be {want}, is {:?}",
        got.value_type()
    ))
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::U8(v) => Some(i64::from(*v)),
        Value::I8(v) => Some(i64::from(*v)),
        Value::U16(v) => Some(i64::from(*v)),
        Value::I16(v) => Some(i64::from(*v)),
        Value::U32(v) => Some(i64::from(*v)),
        Value::I32(v) => Some(i64::from(*v)),
        Value::U64(v) => i64::try_from(*v).ok(),
        Value::I64(v) => Some(*v),
        _ => None,
    }
}

fn string(md: &HashMap<String, Value>, key: &str) -> Result<Option<String>, MlError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(wrong_type(key, "a string", other)),
    }
}

fn id(md: &HashMap<String, Value>, key: &str) -> Result<Option<u32>, MlError> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => integer(v)
            .and_then(|i| u32::try_from(i).ok())
            .map(Some)
            .ok_or_else(|| wrong_type(key, "a token id", v)),
    }
}

fn boolean(md: &HashMap<String, Value>, key: &str) -> Result<Option<bool>, MlError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => integer(v)
            .map(|i| Some(i != 0))
            .ok_or_else(|| wrong_type(key, "a boolean", v)),
    }
}

fn array<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<Option<&'a [Value]>, MlError> {
    match md.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.as_slice())),
        Some(other) => Err(wrong_type(key, "an array", other)),
    }
}

fn strings(md: &HashMap<String, Value>, key: &str) -> Result<Option<Vec<String>>, MlError> {
    let Some(items) = array(md, key)? else {
        return Ok(None);
    };
    items
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(wrong_type(key, "an array of strings", other)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn ints(md: &HashMap<String, Value>, key: &str) -> Result<Option<Vec<i32>>, MlError> {
    let Some(items) = array(md, key)? else {
        return Ok(None);
    };
    items
        .iter()
        .map(|v| {
            integer(v)
                .and_then(|i| i32::try_from(i).ok())
                .ok_or_else(|| wrong_type(key, "an array of integers", v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn floats(md: &HashMap<String, Value>, key: &str) -> Result<Option<Vec<f32>>, MlError> {
    let Some(items) = array(md, key)? else {
        return Ok(None);
    };
    items
        .iter()
        .map(|v| match v {
            Value::F32(f) => Ok(*f),
            Value::F64(f) => Ok(*f as f32),
            // llama.cpp accepts integer scores too.
            other => integer(other)
                .map(|i| i as f32)
                .ok_or_else(|| wrong_type(key, "an array of numbers", other)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::VersionedMagic;

    /// GPT-2's byte-to-character table: printable bytes stand for themselves, the others
    /// take the characters from U+0100 on.
    fn byte_chars() -> Vec<char> {
        let mut printable: Vec<u32> = (u32::from(b'!')..=u32::from(b'~'))
            .chain(0xA1..=0xAC)
            .chain(0xAE..=0xFF)
            .collect();
        let mut chars: Vec<u32> = printable.clone();
        let mut extra = 0;
        for b in 0..256u32 {
            if !printable.contains(&b) {
                printable.push(b);
                chars.push(256 + extra);
                extra += 1;
            }
        }
        let mut table = vec!['\0'; 256];
        for (b, c) in printable.iter().zip(chars) {
            table[*b as usize] = char::from_u32(c).unwrap();
        }
        table
    }

    /// A byte-level vocabulary: the 256 byte characters, a few merges, chat tokens.
    fn byte_level_vocab(pre: &str) -> GgufVocab {
        let mut tokens: Vec<String> = vec!["<|endoftext|>".into(), "<|im_start|>".into()];
        let mut token_types = vec![token_type::CONTROL, token_type::CONTROL];
        for c in byte_chars() {
            tokens.push(c.to_string());
            token_types.push(token_type::NORMAL);
        }
        let merges = ["Ġ t", "h e", "Ġt he", "1 2", "i s", "Ġ is"];
        for m in merges {
            tokens.push(m.replace(' ', ""));
            token_types.push(token_type::NORMAL);
        }
        GgufVocab {
            model: "gpt2".into(),
            pre: Some(pre.into()),
            tokens,
            token_types,
            merges: merges.iter().map(|m| m.to_string()).collect(),
            bos: Some(1),
            eos: Some(0),
            add_bos: Some(false),
            chat_template: Some("{{ messages }}".into()),
            ..GgufVocab::default()
        }
    }

    fn id_of(t: &GgufTokenizer, token: &str) -> u32 {
        t.token_id(token)
            .unwrap_or_else(|| panic!("{token:?} not in vocabulary"))
    }

    #[test]
    fn byte_level_merges_and_special_tokens() {
        let t = GgufTokenizer::from_vocab(&byte_level_vocab("gpt-2")).unwrap();
        let ids = t.encode("the is", false).unwrap();
        // "the" (no leading space): t, he; " is": Ġis.
        assert_eq!(ids, vec![id_of(&t, "t"), id_of(&t, "he"), id_of(&t, "Ġis")]);
        let ids = t.encode(" the<|im_start|>x", true).unwrap();
        assert_eq!(
            ids,
            vec![id_of(&t, "Ġthe"), 1, id_of(&t, "x")],
            "special token in the text is one id, no BOS when add_bos is false"
        );
        assert_eq!(t.decode(&ids).unwrap(), " the<|im_start|>x");
        assert_eq!(t.decode_skipping_special(&ids).unwrap(), " thex");
        assert_eq!(t.chat_template.as_deref(), Some("{{ messages }}"));
        assert_eq!((t.bos, t.eos, t.add_bos), (Some(1), Some(0), false));
        // Every byte is in the vocabulary: any text survives the round trip.
        for text in ["héllo wörld 🦀\n\ttab", "日本語 ", "  ", ""] {
            let ids = t.encode(text, false).unwrap();
            assert_eq!(t.decode(&ids).unwrap(), text);
        }
        assert!(matches!(t.decode(&[100_000]), Err(MlError::Tokenizer(_))));
    }

    #[test]
    fn the_pre_tokenizer_name_picks_the_split() {
        // gpt-2 keeps digits together ("12" merges); smollm splits every digit.
        let gpt2 = GgufTokenizer::from_vocab(&byte_level_vocab("gpt-2")).unwrap();
        assert_eq!(gpt2.encode("12", false).unwrap(), vec![id_of(&gpt2, "12")]);
        let smollm = GgufTokenizer::from_vocab(&byte_level_vocab("smollm")).unwrap();
        assert_eq!(
            smollm.encode("12", false).unwrap(),
            vec![id_of(&smollm, "1"), id_of(&smollm, "2")]
        );
        // llama-bpe adds BOS by default and ignores merges for whole tokens.
        let mut v = byte_level_vocab("llama-bpe");
        v.add_bos = None;
        let llama3 = GgufTokenizer::from_vocab(&v).unwrap();
        assert!(llama3.add_bos);
        assert_eq!(
            llama3.encode("x", true).unwrap(),
            vec![1, id_of(&llama3, "x")]
        );

        let err = GgufTokenizer::from_vocab(&byte_level_vocab("no-such-pre")).unwrap_err();
        assert!(
            matches!(&err, MlError::Config(m) if m.contains("no-such-pre")),
            "{err}"
        );
    }

    #[test]
    fn every_known_pre_tokenizer_compiles() {
        let mut failing = Vec::new();
        for (names, ..) in PRE_TOKENIZERS {
            for name in *names {
                let rules = pre_tokenizer_rules(name).unwrap();
                assert_eq!(rules.name, *name);
                if byte_level_pre_tokenizer(&rules).is_err() {
                    failing.push(*name);
                }
            }
        }
        assert!(
            failing.is_empty(),
            "pre-tokenizers that do not compile: {failing:?}"
        );
        assert!(pre_tokenizer_rules("nonsense").is_none());
    }

    /// A SentencePiece vocabulary: control tokens, byte tokens, scored pieces, a
    /// user-defined newline and a chat token.
    fn sentencepiece_vocab(pieces: &[(&str, f32)]) -> GgufVocab {
        let mut tokens: Vec<String> = vec!["<unk>".into(), "<bos>".into(), "<eos>".into()];
        let mut token_types = vec![
            token_type::UNKNOWN,
            token_type::CONTROL,
            token_type::CONTROL,
        ];
        let mut scores = vec![0.0, 0.0, 0.0];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            token_types.push(token_type::BYTE);
            scores.push(0.0);
        }
        for (piece, score) in pieces {
            tokens.push(piece.replace(' ', SPACE));
            token_types.push(token_type::NORMAL);
            scores.push(*score);
        }
        tokens.push("<start_of_turn>".into());
        token_types.push(token_type::CONTROL);
        scores.push(-1000.0);
        tokens.push("\n".into());
        token_types.push(token_type::USER_DEFINED);
        scores.push(-1000.0);
        GgufVocab {
            model: "llama".into(),
            pre: Some("default".into()),
            tokens,
            token_types,
            scores,
            bos: Some(1),
            eos: Some(2),
            unknown: Some(0),
            add_space_prefix: Some(false),
            ..GgufVocab::default()
        }
    }

    const PIECES: &[(&str, f32)] = &[
        (" ", -1.0),
        ("a", -2.0),
        ("b", -3.0),
        ("c", -4.0),
        ("h", -5.0),
        ("i", -6.0),
        ("ab", -7.0),
        ("bc", -8.0),
        (" h", -9.0),
        (" hi", -10.0),
    ];

    #[test]
    fn sentencepiece_merges_follow_the_scores() {
        let t = GgufTokenizer::from_vocab(&sentencepiece_vocab(PIECES)).unwrap();
        // "ab" outscores "bc": a b c → ab c.
        assert_eq!(
            t.encode("abc", false).unwrap(),
            vec![id_of(&t, "ab"), id_of(&t, "c")]
        );
        // The other way round: a bc.
        let mut swapped = PIECES.to_vec();
        swapped[6].1 = -8.0;
        swapped[7].1 = -7.0;
        let t = GgufTokenizer::from_vocab(&sentencepiece_vocab(&swapped)).unwrap();
        assert_eq!(
            t.encode("abc", false).unwrap(),
            vec![id_of(&t, "a"), id_of(&t, "bc")]
        );
    }

    #[test]
    fn sentencepiece_spaces_bytes_and_special_tokens() {
        let v = sentencepiece_vocab(PIECES);
        let t = GgufTokenizer::from_vocab(&v).unwrap();
        assert!(
            t.add_bos,
            "SentencePiece vocabularies add BOS unless told otherwise"
        );
        // Spaces are ▁; é is not a piece, so its two UTF-8 bytes stand for it.
        let ids = t.encode("ab hi é", true).unwrap();
        assert_eq!(
            ids,
            vec![
                1,
                id_of(&t, "ab"),
                id_of(&t, "▁hi"),
                id_of(&t, "▁"),
                id_of(&t, "<0xC3>"),
                id_of(&t, "<0xA9>"),
            ]
        );
        assert_eq!(t.decode(&ids[1..]).unwrap(), "ab hi é");
        // Chat tokens and the user-defined newline are matched in the raw text.
        let text = "<start_of_turn>a\nb";
        let ids = t.encode(text, false).unwrap();
        assert_eq!(
            ids,
            vec![
                id_of(&t, "<start_of_turn>"),
                id_of(&t, "a"),
                id_of(&t, "\n"),
                id_of(&t, "b")
            ]
        );
        assert_eq!(t.decode(&ids).unwrap(), text);
        assert_eq!(t.decode_skipping_special(&ids).unwrap(), "a\nb");

        // add_space_prefix: a ▁ before the text, taken off again when decoding.
        let mut v = v;
        v.add_space_prefix = Some(true);
        let t = GgufTokenizer::from_vocab(&v).unwrap();
        assert_eq!(t.encode("hi", false).unwrap(), vec![id_of(&t, "▁hi")]);
        assert_eq!(t.decode(&[id_of(&t, "▁hi")]).unwrap(), "hi");
    }

    #[test]
    fn merges_are_every_split_into_known_pieces_best_score_first() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "abc", "bc", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let scores = [0.0, 0.0, 0.0, -3.0, -1.0, -2.0, 0.0];
        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges = sentencepiece_merges(&tokens, &scores, &vocab);
        let pair = |l: &str, r: &str| (l.to_string(), r.to_string());
        assert_eq!(
            merges,
            vec![
                // abc (-1): a|bc and ab|c, left id order
                pair("a", "bc"),
                pair("ab", "c"),
                pair("b", "c"),
                pair("a", "b"),
            ]
        );
    }

    #[test]
    fn unsupported_or_incomplete_vocabularies_are_errors() {
        let mut v = sentencepiece_vocab(PIECES);
        v.model = "bert".into();
        assert!(
            matches!(GgufTokenizer::from_vocab(&v), Err(MlError::Config(m)) if m.contains("bert"))
        );
        let mut v = sentencepiece_vocab(PIECES);
        v.scores.pop();
        assert!(matches!(
            GgufTokenizer::from_vocab(&v),
            Err(MlError::Config(_))
        ));
        let mut v = byte_level_vocab("gpt-2");
        v.merges.push("nospace".into());
        assert!(matches!(
            GgufTokenizer::from_vocab(&v),
            Err(MlError::Config(_))
        ));
        let mut v = byte_level_vocab("gpt-2");
        v.bos = Some(1_000_000);
        assert!(matches!(
            GgufTokenizer::from_vocab(&v),
            Err(MlError::Config(_))
        ));
    }

    #[test]
    fn reads_a_gguf_header() {
        let v = sentencepiece_vocab(PIECES);
        let strings = |xs: &[String]| Value::Array(xs.iter().cloned().map(Value::String).collect());
        let mut metadata = HashMap::new();
        metadata.insert(
            "tokenizer.ggml.model".to_string(),
            Value::String("llama".into()),
        );
        metadata.insert(
            "tokenizer.ggml.pre".to_string(),
            Value::String("default".into()),
        );
        metadata.insert("tokenizer.ggml.tokens".to_string(), strings(&v.tokens));
        metadata.insert(
            "tokenizer.ggml.token_type".to_string(),
            Value::Array(v.token_types.iter().map(|&t| Value::I32(t)).collect()),
        );
        metadata.insert(
            "tokenizer.ggml.scores".to_string(),
            Value::Array(v.scores.iter().map(|&s| Value::F32(s)).collect()),
        );
        metadata.insert("tokenizer.ggml.bos_token_id".to_string(), Value::U32(1));
        metadata.insert("tokenizer.ggml.eos_token_id".to_string(), Value::U32(2));
        metadata.insert("tokenizer.ggml.unknown_token_id".to_string(), Value::U32(0));
        metadata.insert(
            "tokenizer.ggml.add_bos_token".to_string(),
            Value::Bool(true),
        );
        metadata.insert(
            "tokenizer.ggml.add_space_prefix".to_string(),
            Value::Bool(false),
        );
        metadata.insert(
            "tokenizer.chat_template".to_string(),
            Value::String("{{ bos_token }}".into()),
        );
        let content = Content {
            magic: VersionedMagic::GgufV3,
            metadata,
            tensor_infos: HashMap::new(),
            tensor_data_offset: 0,
        };
        let read = GgufVocab::from_metadata(&content.metadata).unwrap();
        assert_eq!(read.tokens, v.tokens);
        assert_eq!(read.token_types, v.token_types);
        assert_eq!(read.scores, v.scores);
        assert_eq!(
            (read.bos, read.eos, read.unknown),
            (Some(1), Some(2), Some(0))
        );
        assert_eq!(read.add_space_prefix, Some(false));
        let t = GgufTokenizer::from_gguf(&content).unwrap();
        assert_eq!(t.chat_template.as_deref(), Some("{{ bos_token }}"));
        assert_eq!(t.encode("ab", true).unwrap(), vec![1, id_of(&t, "ab")]);

        let mut bad = content;
        bad.metadata.insert(
            "tokenizer.ggml.bos_token_id".to_string(),
            Value::String("1".into()),
        );
        assert!(matches!(
            GgufTokenizer::from_gguf(&bad),
            Err(MlError::Config(_))
        ));
        bad.metadata.remove("tokenizer.ggml.model");
        assert!(matches!(
            GgufTokenizer::from_gguf(&bad),
            Err(MlError::Config(_))
        ));
    }
}
