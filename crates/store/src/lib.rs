//! Concord's storage: one redb file holding users, sessions, projects, items and annotations.
//! This crate alone knows the table layout and the byte encodings; everything above it speaks
//! in domain types. Every write method is one redb transaction, so it happens entirely or not at
//! all; the one operation that spans several transactions, a large import, is staged out of
//! sight and becomes visible in a single final commit (see [`Store::begin_import`]).

mod backup;
mod bulk_gold;
mod error;
mod generation;
mod import;
mod models;
mod records;
mod schema;
mod store;

pub use backup::{
    check_file, partial_file_beside, persist_synced, restore_file, CheckReport, TableCounts,
};
pub use error::StoreError;
pub use import::{StageOutcome, StagedImport, StagedItem};
pub use records::{
    AnnotationRecord, ItemRecord, JobProgress, JobRecord, ModelVersionRecord, ProjectRecord,
    QueueOrderRecord, SessionRecord, SuggestionRecord, TokenRecord, UserRecord, VersionParams,
};
pub use schema::SCHEMA_VERSION;
pub use store::{AnnotationWrite, Store, WriteOutcome};
