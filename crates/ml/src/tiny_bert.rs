//! The tiny BERT that unit tests of fine-tuning run on: a word-level tokenizer over a given
//! vocabulary and a two-layer encoder of width 16 with weights from a fixed seed. It exercises
//! the plumbing only; nothing here says anything about a real model's quality.

use std::str::FromStr;

use candle_core::Device;
use candle_nn::VarMap;
use tokenizers::Tokenizer;

use crate::bert::{reinitialize, BertConfig};
use crate::Encoder;

/// A word-level tokenizer over `words` (a word's id is its index; `[CLS]` and `[SEP]` must be
/// words 1 and 2) that lowercases, splits on white space and wraps a text in `[CLS]` … `[SEP]`.
pub(crate) fn word_level_tokenizer(words: &[&str]) -> Tokenizer {
    let vocab: serde_json::Map<String, serde_json::Value> = words
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::Value::from(i)))
        .collect();
    let special =
        |name: &str, id: usize| serde_json::json!({ "id": name, "ids": [id], "tokens": [name] });
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": { "type": "Lowercase" },
        "pre_tokenizer": { "type": "Whitespace" },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                { "SpecialToken": { "id": "[CLS]", "type_id": 0 } },
                { "Sequence": { "id": "A", "type_id": 0 } },
                { "SpecialToken": { "id": "[SEP]", "type_id": 0 } }
            ],
            "pair": [
                { "Sequence": { "id": "A", "type_id": 0 } },
                { "Sequence": { "id": "B", "type_id": 1 } }
            ],
            "special_tokens": { "[CLS]": special("[CLS]", 1), "[SEP]": special("[SEP]", 2) }
        },
        "decoder": null,
        "model": { "type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]" }
    });
    Tokenizer::from_str(&json.to_string()).expect("tiny tokenizer")
}

/// A two-layer BERT of width 16 over the vocabulary `words` ([`word_level_tokenizer`]),
/// reading inputs of at most `max_tokens` tokens, with weights from a fixed seed.
pub(crate) fn tiny_encoder(words: &[&str], max_tokens: usize) -> Encoder {
    let config: BertConfig = serde_json::from_value(serde_json::json!({
        "vocab_size": words.len(),
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "hidden_act": "gelu",
        "max_position_embeddings": 32,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12
    }))
    .unwrap();
    let encoder = Encoder::from_parts(
        &config,
        VarMap::new(),
        word_level_tokenizer(words),
        &Device::Cpu,
        max_tokens,
        "tiny".into(),
    )
    .unwrap();
    reinitialize(encoder.varmap(), 42).unwrap();
    encoder
}
