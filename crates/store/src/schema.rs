//! Every table of the database, in one place. Keys are tuples led by the project id so that
//! one project's rows are contiguous and a project-wide scan is a range read.

use redb::TableDefinition;

/// Bump when an existing table changes its key or value layout; opening a file whose version is
/// higher than this fails with [`crate::StoreError::NewerSchema`].
pub const SCHEMA_VERSION: u64 = 1;

/// `"schema_version"`, `"next_user"`, `"next_project"` → counter.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// user id → JSON [`crate::UserRecord`].
pub const USERS: TableDefinition<u64, &[u8]> = TableDefinition::new("users");
/// user name → user id.
pub const USER_NAMES: TableDefinition<&str, u64> = TableDefinition::new("user_names");
/// SHA-256 of a session cookie → JSON [`crate::SessionRecord`]. The cookie itself is never stored.
pub const SESSIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("sessions");
/// SHA-256 of an API token → JSON [`crate::TokenRecord`].
pub const API_TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("api_tokens");
/// project id → JSON [`crate::ProjectRecord`].
pub const PROJECTS: TableDefinition<u64, &[u8]> = TableDefinition::new("projects");
/// (project, user) → role (0 annotator, 1 reviewer, 2 admin).
pub const MEMBERS: TableDefinition<(u64, u64), u8> = TableDefinition::new("members");
/// (project, item seq) → JSON [`crate::ItemRecord`]. Rows at or past the project's `next_seq`
/// belong to an import still being staged and are invisible to readers.
pub const ITEMS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("items");
/// (project, external item id) → item seq, for every item whose id is not positional (the
/// decimal of seq + 1, which Concord generates when a file gives no id): a positional id is
/// found by reading the item at that seq. Duplicate texts are found with an in-memory hash
/// map built when an import starts (files written before that change also hold an unused
/// `item_text_hashes` table).
pub const ITEM_IDS: TableDefinition<(u64, &str), u64> = TableDefinition::new("item_ids");
/// (project, item seq, user) → JSON [`crate::AnnotationRecord`]. One row per annotator and item:
/// re-annotating overwrites.
pub const ANNOTATIONS: TableDefinition<(u64, u64, u64), &[u8]> =
    TableDefinition::new("annotations");
/// (project, user) → number of items the user has annotated in the project.
pub const USER_PROGRESS: TableDefinition<(u64, u64), u64> = TableDefinition::new("user_progress");
/// (project, user, item seq) → () for items the user chose to skip.
pub const SKIPS: TableDefinition<(u64, u64, u64), ()> = TableDefinition::new("skips");
/// project → (first staged seq, next staged seq) of an import in progress; rolled back at open.
pub const STAGED_IMPORTS: TableDefinition<u64, (u64, u64)> = TableDefinition::new("staged_imports");
/// (project, item seq) → () for the items reviewers marked as gold questions: mixed into
/// annotators' queues to measure each annotator's accuracy. Such an item always has gold.
pub const GOLD_QUESTIONS: TableDefinition<(u64, u64), ()> = TableDefinition::new("gold_questions");
/// (project, version) → JSON [`crate::ModelVersionRecord`]: every model a project has had.
pub const MODEL_VERSIONS: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("model_versions");
/// (project, encoder fingerprint, item seq) → the item's embedding under that encoder, f32s
/// (LE). Each encoder (the base model, every fine-tuned copy) keeps its own rows, so switching
/// between model versions never re-embeds.
pub const EMBEDDINGS: TableDefinition<(u64, u64, u64), &[u8]> =
    TableDefinition::new("encoder_embeddings");
/// The earlier layout, (project, seq) → fingerprint + f32s: dropped when a store is opened.
pub const LEGACY_EMBEDDINGS: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("embeddings");
/// (project, item seq) → JSON [`crate::SuggestionRecord`]: the latest model suggestion.
pub const SUGGESTIONS: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("suggestions");
/// job id → JSON [`crate::JobRecord`]: background work (training, batch prediction).
pub const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
/// (project, model version) → JSON [`concord_domain::SuggestionOutcomes`]: how annotators
/// answered the version's suggestions while they were shown (the live record), kept up to date
/// in the transaction that stores each answer.
pub const SUGGESTION_OUTCOMES: TableDefinition<(u64, u64), &[u8]> =
    TableDefinition::new("suggestion_outcomes");
/// project → JSON [`crate::QueueOrderRecord`]: the items active learning puts first.
pub const QUEUE_ORDERS: TableDefinition<u64, &[u8]> = TableDefinition::new("queue_orders");
