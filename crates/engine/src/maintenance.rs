//! Work on a data directory's database file without running an engine (no job worker, no
//! writer thread): backing it up, checking it, restoring it. Each fails with
//! [`StoreError::AlreadyOpen`] when a process (a running server) holds the file; a running
//! server is backed up through [`crate::Engine::backup_to`] instead.

use std::path::Path;

use concord_store::{CheckReport, Store, StoreError, TableCounts};

use crate::DATABASE_FILE;

/// Writes a consistent snapshot of `data_dir`'s database to `target`.
pub fn backup_database(data_dir: &Path, target: &Path) -> Result<TableCounts, StoreError> {
    let database = data_dir.join(DATABASE_FILE);
    if !database.exists() {
        return Err(StoreError::NotFound("database file"));
    }
    Store::open(&database)?.backup_to(target)
}

/// Verifies a database file: redb's integrity check, the schema version, every row decoded.
pub fn check_database(file: &Path) -> Result<CheckReport, StoreError> {
    concord_store::check_file(file)
}

/// Checks the backup `file` and makes it `data_dir`'s database, atomically. Refuses while a
/// server holds the database.
pub fn restore_database(file: &Path, data_dir: &Path) -> Result<CheckReport, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Io {
        what: format!("creating {}", data_dir.display()),
        source: e,
    })?;
    concord_store::restore_file(file, &data_dir.join(DATABASE_FILE))
}
