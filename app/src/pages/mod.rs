//! One page per file.

pub mod agreement;
pub mod annotate;
pub mod annotate_spans;
mod item_queue;
pub mod label_errors;
pub mod learning_curve;
pub mod login;
pub mod project;
pub mod projects;
pub mod review;
pub mod review_spans;
pub mod setup;
pub mod span_metrics;
pub mod span_settings;
pub mod users;
