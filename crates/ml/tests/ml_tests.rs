//! The model crate's integration tests (real weights where they claim model behaviour).
//! One test binary per crate: each binary links the crate's whole dependency tree again
//! (disk and link time in CI); the files are its modules.

mod from_memory;
mod gguf_files;
mod gguf_scoring;
mod gguf_spans;
mod gguf_tokenizer;
mod minilm;
mod tiny;
mod token_classifier;
