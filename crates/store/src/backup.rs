//! Backups and checks of the database file. A backup copies every table inside one read
//! transaction, so it is a consistent snapshot even while writers commit beside it; it is
//! written to a temporary file next to the target, synced and renamed into place, so a target
//! is either the whole snapshot or absent. A check runs redb's own integrity check, reads the
//! schema version and decodes every row of every table.

use std::path::{Path, PathBuf};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    WriteTransaction,
};

use crate::records::decode;
use crate::schema::*;
use crate::store::open_error;
use crate::{
    AnnotationRecord, ItemRecord, JobRecord, ModelVersionRecord, ProjectRecord, QueueOrderRecord,
    SessionRecord, Store, StoreError, SuggestionRecord, TokenRecord, UserRecord,
};

/// Rows per table of a backup or a checked file, in table order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TableCounts {
    pub tables: Vec<(String, u64)>,
}

impl TableCounts {
    pub fn rows(&self, table: &str) -> Option<u64> {
        self.tables
            .iter()
            .find(|(name, _)| name == table)
            .map(|(_, n)| *n)
    }
}

/// What [`check_file`] found in a database file that passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub schema_version: u64,
    pub counts: TableCounts,
}

/// Calls `$each!(DEFINITION, decode_as)` for every table of the schema. A table added to
/// `schema.rs` must be added here too: [`Store::backup_to`] refuses a database holding a table
/// this list does not name, so a forgotten one fails loudly instead of being left out.
macro_rules! every_table {
    ($each:ident) => {
        $each!(META, ());
        $each!(USERS, UserRecord);
        $each!(USER_NAMES, ());
        $each!(SESSIONS, SessionRecord);
        $each!(API_TOKENS, TokenRecord);
        $each!(PROJECTS, ProjectRecord);
        $each!(MEMBERS, ());
        $each!(ITEMS, ItemRecord);
        $each!(ITEM_IDS, ());
        $each!(ANNOTATIONS, AnnotationRecord);
        $each!(USER_PROGRESS, ());
        $each!(SKIPS, ());
        $each!(STAGED_IMPORTS, ());
        $each!(GOLD_QUESTIONS, ());
        $each!(MODEL_VERSIONS, ModelVersionRecord);
        $each!(EMBEDDINGS, ());
        $each!(SUGGESTIONS, SuggestionRecord);
        $each!(JOBS, JobRecord);
        $each!(QUEUE_ORDERS, QueueOrderRecord);
        $each!(SUGGESTION_OUTCOMES, concord_domain::SuggestionOutcomes);
    };
}

/// Tables that older files may still hold and that a snapshot leaves out: nothing reads them.
const OBSOLETE_TABLES: &[&str] = &["item_text_hashes", "embeddings"];

fn known_tables() -> Vec<&'static str> {
    let mut names = Vec::new();
    macro_rules! name {
        ($def:expr, $record:ty) => {
            let definition: &'static _ = &$def;
            names.push(definition.name());
        };
    }
    every_table!(name);
    names
}

/// Copies every row of `def` from `from` into `to`; returns the row count.
fn copy_table<K, V>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, StoreError>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
{
    let source = from.open_table(def)?;
    let mut target = to.open_table(def)?;
    let mut rows = 0;
    for row in source.iter()? {
        let (k, v) = row?;
        target.insert(k.value(), v.value())?;
        rows += 1;
    }
    Ok(rows)
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> StoreError {
    StoreError::Io {
        what: format!("{what} {}", path.display()),
        source: e,
    }
}

impl Store {
    /// Writes a consistent snapshot of the whole database to `target` (a new redb file), from
    /// one read transaction: writes committed meanwhile are not in it, and none is half in it.
    /// The file appears at `target` only once complete and synced.
    pub fn backup_to(&self, target: &Path) -> Result<TableCounts, StoreError> {
        let snapshot = self.db.begin_read()?;
        let known = known_tables();
        for table in snapshot.list_tables()? {
            let name = table.name();
            if !known.contains(&name) && !OBSOLETE_TABLES.contains(&name) {
                return Err(StoreError::Corrupt {
                    table: "(backup)",
                    detail: format!("table {name:?} is not known to the backup"),
                });
            }
        }
        let (dir, partial) = partial_file_beside(target, ".backup-")?;
        let counts = {
            let copy =
                Database::builder()
                    .create(partial.path())
                    .map_err(|e| StoreError::Open {
                        path: partial.path().to_path_buf(),
                        source: e,
                    })?;
            let txn = copy.begin_write()?;
            let mut counts = TableCounts::default();
            macro_rules! copy {
                ($def:expr, $record:ty) => {
                    let rows = copy_table(&snapshot, &txn, $def)?;
                    counts.tables.push(($def.name().to_string(), rows));
                };
            }
            every_table!(copy);
            txn.commit()?;
            counts
        };
        // redb syncs its commit; this sync covers the file's length and metadata too.
        persist_synced(partial, target, &dir)?;
        Ok(counts)
    }
}

/// A temporary file named `prefix`… in the folder of `target` (so that a rename can put it
/// there atomically), and that folder.
pub fn partial_file_beside(
    target: &Path,
    prefix: &str,
) -> Result<(PathBuf, tempfile::NamedTempFile), StoreError> {
    let dir: PathBuf = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let partial = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".redb.tmp")
        .tempfile_in(&dir)
        .map_err(|e| io_error(&dir, "creating a temporary file in", e))?;
    Ok((dir, partial))
}

/// Syncs the complete `partial` file, renames it to `target` in `dir`, and syncs `dir`: the
/// file appears at `target` whole or not at all, and stays there after a crash.
pub fn persist_synced(
    partial: tempfile::NamedTempFile,
    target: &Path,
    dir: &Path,
) -> Result<(), StoreError> {
    partial
        .as_file()
        .sync_all()
        .map_err(|e| io_error(partial.path(), "syncing", e))?;
    partial
        .persist(target)
        .map_err(|e| io_error(target, "writing", e.error))?;
    sync_dir(dir)
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, "syncing the folder", e))
}

/// Verifies a database file that no process holds open: redb's integrity check, the schema
/// version Concord knows, and every row of every table decoded as its record type.
pub fn check_file(path: &Path) -> Result<CheckReport, StoreError> {
    // Checked on open too: a damaged file is reported rather than trusted (a plain open of an
    // altered file may panic).
    let mut db = Database::builder()
        .set_check_integrity_on_open(true)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    let intact = db.check_integrity().map_err(|e| StoreError::Open {
        path: path.to_path_buf(),
        source: e,
    })?;
    if !intact {
        // redb repaired what it found (an unclean shutdown's allocator state): still a
        // usable file, so it is only reported.
        tracing::warn!(path = %path.display(), "the integrity check repaired the file");
    }
    let txn = db.begin_read()?;
    let schema_version = match txn.open_table(META) {
        Ok(meta) => meta.get("schema_version")?.map(|v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let schema_version = match schema_version {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: v,
                known: SCHEMA_VERSION,
            })
        }
        Some(v) => v,
        None => {
            return Err(StoreError::Corrupt {
                table: "meta",
                detail: format!("{} records no schema version", path.display()),
            })
        }
    };
    let mut counts = TableCounts::default();
    macro_rules! check {
        ($def:expr, $record:ty) => {
            let rows = check_table::<_, _, $record>(&txn, $def)?;
            counts.tables.push(($def.name().to_string(), rows));
        };
    }
    every_table!(check);
    Ok(CheckReport {
        schema_version,
        counts,
    })
}

/// Decodes one row's value as the record the table holds; `()` for tables of plain values,
/// which redb's typed read has already decoded.
trait RowValue {
    fn check(table: &'static str, bytes: &[u8]) -> Result<(), StoreError>;
}

impl RowValue for () {
    fn check(_: &'static str, _: &[u8]) -> Result<(), StoreError> {
        Ok(())
    }
}

macro_rules! json_rows {
    ($($t:ty),*) => {$(
        impl RowValue for $t {
            fn check(table: &'static str, bytes: &[u8]) -> Result<(), StoreError> {
                decode::<$t>(table, bytes).map(|_| ())
            }
        }
    )*};
}

json_rows!(
    concord_domain::SuggestionOutcomes,
    UserRecord,
    SessionRecord,
    TokenRecord,
    ProjectRecord,
    ItemRecord,
    AnnotationRecord,
    ModelVersionRecord,
    SuggestionRecord,
    JobRecord,
    QueueOrderRecord
);

/// Reads every row of `def` (keys and values through redb's typed decoding, JSON values as
/// `R`); a table the file lacks counts as empty. Returns the row count.
fn check_table<K, V, R>(
    txn: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, StoreError>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
    R: RowValue,
{
    let table = match txn.open_table(def) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let name: &'static str = table_name(def.name());
    let mut rows = 0;
    for row in table.iter()? {
        let (_, v) = row?;
        R::check(name, V::as_bytes(&v.value()).as_ref())?;
        rows += 1;
    }
    Ok(rows)
}

/// The static name of a known table (for [`StoreError::Corrupt`]).
fn table_name(name: &str) -> &'static str {
    known_tables()
        .into_iter()
        .find(|known| *known == name)
        .unwrap_or("(unknown)")
}

/// Checks the backup `source` ([`check_file`]) and puts a copy of it at `target`, atomically.
/// Fails with [`StoreError::AlreadyOpen`] when a process (a running server) holds `target`.
pub fn restore_file(source: &Path, target: &Path) -> Result<CheckReport, StoreError> {
    let report = check_file(source)?;
    // Holding the target's lock (when it exists) keeps a server from opening it meanwhile, and
    // fails when one already has. The file lock itself, the one redb takes, rather than a redb
    // open: the target is often the damaged file being replaced, which redb may refuse to open.
    let _held = if target.exists() {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(target)
            .map_err(|e| io_error(target, "opening", e))?;
        match file.try_lock() {
            Ok(()) => Some(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::AlreadyOpen {
                    path: target.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_error(target, "locking", e)),
        }
    } else {
        None
    };
    let (dir, mut partial) = partial_file_beside(target, ".restore-")?;
    let mut input = std::fs::File::open(source).map_err(|e| io_error(source, "opening", e))?;
    std::io::copy(&mut input, partial.as_file_mut()).map_err(|e| io_error(source, "copying", e))?;
    persist_synced(partial, target, &dir)?;
    Ok(report)
}

impl Store {
    /// Whether the database answers a real read: a read transaction that reads the schema
    /// version. For readiness probes.
    pub fn check_readable(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        match meta.get("schema_version")? {
            Some(_) => Ok(()),
            None => Err(StoreError::Corrupt {
                table: "meta",
                detail: "no schema version".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserRecord {
        UserRecord {
            name: name.into(),
            password_hash: "hash".into(),
            is_admin: false,
            created_ms: 1,
            disabled: false,
        }
    }

    #[test]
    fn a_backup_holds_every_row_and_checks_clean() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("live.redb")).unwrap();
        store.create_user(&user("ann")).unwrap();
        store.create_user(&user("bob")).unwrap();
        let target = dir.path().join("copy.redb");
        let counts = store.backup_to(&target).unwrap();
        assert_eq!(counts.rows("users"), Some(2));
        assert_eq!(counts.rows("user_names"), Some(2));
        // The live database stays open and usable beside the copy.
        store.create_user(&user("cid")).unwrap();
        let report = check_file(&target).unwrap();
        assert_eq!(report.schema_version, SCHEMA_VERSION);
        assert_eq!(report.counts, counts);
        let copy = Store::open(&target).unwrap();
        assert_eq!(copy.users().unwrap().len(), 2);
        // No temporary file is left beside the target.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_table_the_backup_does_not_know_fails_it_instead_of_being_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("live.redb")).unwrap();
        let txn = store.db.begin_write().unwrap();
        txn.open_table(TableDefinition::<u64, u64>::new("surprise"))
            .unwrap()
            .insert(1, 2)
            .unwrap();
        txn.commit().unwrap();
        let target = dir.path().join("copy.redb");
        let err = store.backup_to(&target).unwrap_err();
        assert!(err.to_string().contains("surprise"), "{err}");
        assert!(!target.exists());
    }

    #[test]
    fn a_row_that_does_not_decode_fails_the_check_and_names_its_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live.redb");
        let store = Store::open(&path).unwrap();
        let txn = store.db.begin_write().unwrap();
        txn.open_table(USERS)
            .unwrap()
            .insert(7, b"{not json".as_slice())
            .unwrap();
        txn.commit().unwrap();
        drop(store);
        let err = check_file(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { table: "users", .. }),
            "{err}"
        );
    }

    #[test]
    fn a_restore_refuses_a_database_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let backup = dir.path().join("backup.redb");
        let live = dir.path().join("live.redb");
        let store = Store::open(&live).unwrap();
        store.create_user(&user("ann")).unwrap();
        store.backup_to(&backup).unwrap();
        let err = restore_file(&backup, &live).unwrap_err();
        assert!(matches!(err, StoreError::AlreadyOpen { .. }), "{err}");
        drop(store);
        let restored = dir.path().join("restored.redb");
        let report = restore_file(&backup, &restored).unwrap();
        assert_eq!(report.counts.rows("users"), Some(1));
        assert_eq!(Store::open(&restored).unwrap().users().unwrap().len(), 1);
    }

    #[test]
    fn a_restore_replaces_a_database_too_damaged_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let backup = dir.path().join("backup.redb");
        let live = dir.path().join("live.redb");
        let store = Store::open(&live).unwrap();
        store.create_user(&user("ann")).unwrap();
        store.backup_to(&backup).unwrap();
        drop(store);
        std::fs::write(&live, b"not a redb file at all").unwrap();
        assert!(Store::open(&live).is_err());
        let report = restore_file(&backup, &live).unwrap();
        assert_eq!(report.counts.rows("users"), Some(1));
        assert_eq!(Store::open(&live).unwrap().users().unwrap().len(), 1);
    }
}
