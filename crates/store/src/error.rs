use std::path::PathBuf;

/// What can go wrong below the engine. `Storage` wraps redb's own errors; the others are
/// conditions the store detects and names.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database {path} is in use by another Concord process (a running `concord serve`?); stop it first or use the HTTP API")]
    AlreadyOpen { path: PathBuf },
    #[error("the database {path} was written by a newer Concord (schema version {found}, this binary knows up to {known}); upgrade Concord")]
    NewerSchema {
        path: PathBuf,
        found: u64,
        known: u64,
    },
    #[error("the database {path} could not be opened: {source}")]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("stored record in table {table} could not be decoded: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the item has no gold label")]
    NoGold,
    #[error("model version {0} is no longer the active one")]
    NotActive(u64),
    #[error("{0} already exists")]
    Exists(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("storage error: {0}")]
    Storage(#[from] redb::Error),
}

macro_rules! via_redb_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Storage(redb::Error::from(e))
            }
        }
    )*};
}

via_redb_error!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
