//! Generative language models as pre-annotators, in process: a GGUF file's decoder
//! (candle-transformers' quantized llama, qwen2, qwen3, phi3 and gemma3) with the tokenizer
//! rebuilt from the file's own metadata, classifying by the log-probability of each label's
//! words after a prompt (guidelines, label descriptions, optional demonstrations), with
//! contextual calibration and the shared prompt prefix computed once; and named-entity spans,
//! which the model lists as JSON under a grammar that keeps each mention a substring of the
//! item (greedy decoding), placed back at character offsets.

mod model;
mod scorer;
mod spans;
mod tokenizer;

pub use model::{gguf_architecture, GenerativeModel, Prefix, SUPPORTED_ARCHITECTURES};
pub use scorer::{
    calibrate, content_free_prior, instructions, score_items, split_continuations, ChatFormat,
    Demonstration, ItemInput, ItemScores, LabelSpec, PromptSpec, Scores, ScoringOptions,
    CONTENT_FREE,
};
pub use spans::{
    extract_spans, extract_spans_batch, place_mentions, span_instructions, ExtractedSpans,
    MappedSpan, SpanDemonstration, SpanOptions, SpanPromptSpec,
};
pub use tokenizer::{GgufTokenizer, GgufVocab};
