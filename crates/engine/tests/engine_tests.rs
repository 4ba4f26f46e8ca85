//! The engine's integration tests: real redb files, real jobs, the shared fixture in `common`.
//! One test binary per crate: each binary links the crate's whole dependency tree again
//! (disk and link time in CI); the files are its modules.

mod auto_train;
mod common;
mod credentials;
mod engine;
mod generators;
mod import_properties;
mod jobs;
mod label_errors;
mod learning_curve;
mod models;
mod openai_backend;
mod portable;
mod preselect;
mod relation_formats;
mod relation_models;
mod relation_review;
mod review;
mod robustness;
mod span_formats;
mod span_models;
mod span_review;
