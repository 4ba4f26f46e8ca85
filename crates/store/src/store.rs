use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::ops::ControlFlow;

use concord_domain::{
    AnnotationSource, AnnotationValue, GoldSource, ProjectId, Role, SuggestionOutcomes, UserId,
};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::records::{decode, encode, positional_seq, ItemKey};
use crate::schema::*;
use crate::{
    AnnotationRecord, ItemRecord, ProjectRecord, SessionRecord, StoreError, TokenRecord, UserRecord,
};

/// The database. Cheap to share behind an `Arc`; redb serializes writers and lets readers run
/// beside them on snapshots.
pub struct Store {
    pub(crate) db: Database,
    path: PathBuf,
    pub(crate) generations: crate::generation::Generations,
}

/// One annotator's answer to store, as part of a group commit.
#[derive(Debug, Clone)]
pub struct AnnotationWrite {
    pub project: ProjectId,
    pub seq: u64,
    pub user: UserId,
    pub value: AnnotationValue,
    pub source: AnnotationSource,
    pub time_spent_ms: u64,
    pub now_ms: u64,
    /// The suggestion was shown as a hint, not pre-selected: the answer may count in its
    /// version's live record (see `put_annotations`).
    pub as_live_evidence: bool,
}

/// What storing one [`AnnotationWrite`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    Created,
    Updated,
    /// The same value was already stored (a repeated submit): nothing changed.
    Unchanged,
}

/// The error for a database file that could not be opened: [`StoreError::AlreadyOpen`] when
/// another process holds it, so that callers can say so plainly.
pub(crate) fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::AlreadyOpen {
            path: path.to_path_buf(),
        },
        e => StoreError::Open {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

fn role_code(role: Role) -> u8 {
    match role {
        Role::Annotator => 0,
        Role::Reviewer => 1,
        Role::Admin => 2,
    }
}

fn role_from_code(code: u8) -> Role {
    match code {
        2 => Role::Admin,
        1 => Role::Reviewer,
        _ => Role::Annotator,
    }
}

/// Opens a table that may not exist yet in a read transaction; `None` means "empty".
macro_rules! read_table {
    ($txn:expr, $def:expr) => {
        match $txn.open_table($def) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        }
    };
}

impl Store {
    /// Opens (or creates) the database file, checks its schema version, and rolls back any
    /// import that a crash interrupted.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::builder()
            .create(path)
            .map_err(|e| open_error(path, e))?;
        let store = Store {
            db,
            path: path.to_path_buf(),
            generations: Default::default(),
        };
        store.init_schema()?;
        store.recover_staged_imports()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init_schema(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let found = meta.get("schema_version")?.map(|v| v.value());
            match found {
                Some(v) if v > SCHEMA_VERSION => {
                    return Err(StoreError::NewerSchema {
                        path: self.path.clone(),
                        found: v,
                        known: SCHEMA_VERSION,
                    })
                }
                Some(_) => {}
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)?;
                }
            }
            // Create every table up front so readers never meet a missing one.
            txn.open_table(USERS)?;
            txn.open_table(USER_NAMES)?;
            txn.open_table(SESSIONS)?;
            txn.open_table(API_TOKENS)?;
            txn.open_table(PROJECTS)?;
            txn.open_table(MEMBERS)?;
            txn.open_table(ITEMS)?;
            txn.open_table(ITEM_IDS)?;
            txn.open_table(ANNOTATIONS)?;
            txn.open_table(USER_PROGRESS)?;
            txn.open_table(SKIPS)?;
            txn.open_table(STAGED_IMPORTS)?;
            txn.open_table(GOLD_QUESTIONS)?;
            txn.open_table(MODEL_VERSIONS)?;
            txn.open_table(EMBEDDINGS)?;
            // A cache: recomputed under the new layout by the next prediction.
            txn.delete_table(LEGACY_EMBEDDINGS)?;
            txn.open_table(SUGGESTIONS)?;
            txn.open_table(JOBS)?;
            txn.open_table(QUEUE_ORDERS)?;
            txn.open_table(SUGGESTION_OUTCOMES)?;
        }
        txn.commit()?;
        Ok(())
    }

    pub(crate) fn next_id(meta: &mut redb::Table<&str, u64>, key: &str) -> Result<u64, StoreError> {
        let next = meta.get(key)?.map(|v| v.value()).unwrap_or(1);
        meta.insert(key, next + 1)?;
        Ok(next)
    }

    fn get_json<K, T>(
        &self,
        def: TableDefinition<K, &[u8]>,
        key: K::SelfType<'_>,
        name: &'static str,
    ) -> Result<Option<T>, StoreError>
    where
        K: redb::Key + 'static,
        T: for<'de> serde::Deserialize<'de>,
    {
        let txn = self.db.begin_read()?;
        let Some(table) = read_table!(txn, def) else {
            return Ok(None);
        };
        match table.get(key)? {
            Some(v) => Ok(Some(decode(name, v.value())?)),
            None => Ok(None),
        }
    }

    // ---- users -------------------------------------------------------------------------

    /// Creates a user; fails with [`StoreError::Exists`] if the name is taken.
    pub fn create_user(&self, record: &UserRecord) -> Result<UserId, StoreError> {
        let txn = self.db.begin_write()?;
        let id = {
            let mut names = txn.open_table(USER_NAMES)?;
            if names.get(record.name.as_str())?.is_some() {
                return Err(StoreError::Exists(format!("user {:?}", record.name)));
            }
            let id = Self::next_id(&mut txn.open_table(META)?, "next_user")?;
            names.insert(record.name.as_str(), id)?;
            txn.open_table(USERS)?
                .insert(id, encode(record).as_slice())?;
            id
        };
        txn.commit()?;
        Ok(UserId(id))
    }

    /// Creates the first administrator: in one write transaction (redb runs one at a time) it
    /// checks that no administrator exists and inserts the account, so two concurrent setups
    /// cannot both succeed. `None` when an administrator exists; fails with
    /// [`StoreError::Exists`] when the name is taken.
    pub fn create_first_admin(&self, record: &UserRecord) -> Result<Option<UserId>, StoreError> {
        let txn = self.db.begin_write()?;
        let id = {
            let mut users = txn.open_table(USERS)?;
            if any_admin(&users)? {
                return Ok(None);
            }
            let mut names = txn.open_table(USER_NAMES)?;
            if names.get(record.name.as_str())?.is_some() {
                return Err(StoreError::Exists(format!("user {:?}", record.name)));
            }
            let id = Self::next_id(&mut txn.open_table(META)?, "next_user")?;
            names.insert(record.name.as_str(), id)?;
            users.insert(id, encode(record).as_slice())?;
            id
        };
        txn.commit()?;
        Ok(Some(UserId(id)))
    }

    /// Whether an administrator account exists; stops at the first one.
    pub fn has_admin(&self) -> Result<bool, StoreError> {
        let txn = self.db.begin_read()?;
        any_admin(&txn.open_table(USERS)?)
    }

    /// Sets a user's `disabled` flag; disabling also deletes their sessions, in the same
    /// transaction.
    pub fn set_user_disabled(&self, id: UserId, disabled: bool) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut users = txn.open_table(USERS)?;
            let mut record: UserRecord = match users.get(id.0)? {
                Some(v) => decode("users", v.value())?,
                None => return Err(StoreError::NotFound("user")),
            };
            record.disabled = disabled;
            users.insert(id.0, encode(&record).as_slice())?;
            if disabled {
                let mut sessions = txn.open_table(SESSIONS)?;
                remove_rows(&mut sessions, "sessions", |_, s: &SessionRecord| {
                    s.user == id
                })?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Replaces a user's password hash and deletes their sessions except `keep`, in one
    /// transaction that changes no other field of the account (a concurrent disable stands).
    pub fn set_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        keep: Option<&[u8; 32]>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut users = txn.open_table(USERS)?;
            let mut record: UserRecord = match users.get(id.0)? {
                Some(v) => decode("users", v.value())?,
                None => return Err(StoreError::NotFound("user")),
            };
            record.password_hash = password_hash.to_string();
            users.insert(id.0, encode(&record).as_slice())?;
            let mut sessions = txn.open_table(SESSIONS)?;
            remove_rows(&mut sessions, "sessions", |key, s: &SessionRecord| {
                s.user == id && keep.is_none_or(|k| k.as_slice() != key)
            })?;
        }
        txn.commit()?;
        Ok(())
    }

    pub fn user(&self, id: UserId) -> Result<Option<UserRecord>, StoreError> {
        self.get_json(USERS, id.0, "users")
    }

    pub fn user_by_name(&self, name: &str) -> Result<Option<(UserId, UserRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let names = txn.open_table(USER_NAMES)?;
        let Some(id) = names.get(name)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let users = txn.open_table(USERS)?;
        match users.get(id)? {
            Some(v) => Ok(Some((UserId(id), decode("users", v.value())?))),
            None => Ok(None),
        }
    }

    pub fn users(&self) -> Result<Vec<(UserId, UserRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let users = txn.open_table(USERS)?;
        let mut out = Vec::new();
        for row in users.iter()? {
            let (k, v) = row?;
            out.push((UserId(k.value()), decode("users", v.value())?));
        }
        Ok(out)
    }

    pub fn user_count(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(USERS)?.len()?)
    }

    // ---- sessions and tokens -----------------------------------------------------------

    pub fn put_session(
        &self,
        token_hash: &[u8; 32],
        record: &SessionRecord,
    ) -> Result<(), StoreError> {
        self.put_json(SESSIONS, token_hash.as_slice(), record)
    }

    pub fn session(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        self.get_json(SESSIONS, token_hash.as_slice(), "sessions")
    }

    pub fn delete_session(&self, token_hash: &[u8; 32]) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(SESSIONS)?.remove(token_hash.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    pub fn put_token(&self, token_hash: &[u8; 32], record: &TokenRecord) -> Result<(), StoreError> {
        self.put_json(API_TOKENS, token_hash.as_slice(), record)
    }

    pub fn token(&self, token_hash: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        self.get_json(API_TOKENS, token_hash.as_slice(), "api_tokens")
    }

    /// Every API token with the SHA-256 of its secret (tokens are few: one scan).
    pub fn tokens(&self) -> Result<Vec<([u8; 32], TokenRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let tokens = txn.open_table(API_TOKENS)?;
        let mut out = Vec::new();
        for row in tokens.iter()? {
            let (k, v) = row?;
            let Ok(hash) = <[u8; 32]>::try_from(k.value()) else {
                return Err(StoreError::Corrupt {
                    table: "api_tokens",
                    detail: format!("key of {} bytes, not 32", k.value().len()),
                });
            };
            out.push((hash, decode("api_tokens", v.value())?));
        }
        Ok(out)
    }

    /// Removes an API token; false if there was none.
    pub fn delete_token(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = txn
            .open_table(API_TOKENS)?
            .remove(token_hash.as_slice())?
            .is_some();
        txn.commit()?;
        Ok(removed)
    }

    /// Records that a session was used at `now_ms`. A session deleted meanwhile (signed out,
    /// purged) stays deleted: the check and the write are one transaction.
    pub fn touch_session(&self, token_hash: &[u8; 32], now_ms: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut sessions = txn.open_table(SESSIONS)?;
            let found = match sessions.get(token_hash.as_slice())? {
                Some(v) => Some(decode::<SessionRecord>("sessions", v.value())?),
                None => None,
            };
            if let Some(mut session) = found {
                session.last_seen_ms = now_ms;
                sessions.insert(token_hash.as_slice(), encode(&session).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Records that an API token was used at `now_ms`; a revoked token stays revoked.
    pub fn touch_token(&self, token_hash: &[u8; 32], now_ms: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut tokens = txn.open_table(API_TOKENS)?;
            let found = match tokens.get(token_hash.as_slice())? {
                Some(v) => Some(decode::<TokenRecord>("api_tokens", v.value())?),
                None => None,
            };
            if let Some(mut token) = found {
                token.last_used_ms = Some(now_ms);
                tokens.insert(token_hash.as_slice(), encode(&token).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Deletes a user's sessions (all but `keep`, when given) and, with `tokens`, their API
    /// tokens, in one transaction. Returns how many sessions and tokens went.
    pub fn delete_user_credentials(
        &self,
        user: UserId,
        keep: Option<&[u8; 32]>,
        tokens: bool,
    ) -> Result<(u64, u64), StoreError> {
        let txn = self.db.begin_write()?;
        let counts = {
            let mut sessions = txn.open_table(SESSIONS)?;
            let sessions_gone =
                remove_rows(&mut sessions, "sessions", |key, s: &SessionRecord| {
                    s.user == user && keep.is_none_or(|k| k.as_slice() != key)
                })?;
            let tokens_gone = if tokens {
                let mut table = txn.open_table(API_TOKENS)?;
                remove_rows(&mut table, "api_tokens", |_, t: &TokenRecord| {
                    t.user == user
                })?
            } else {
                0
            };
            (sessions_gone, tokens_gone)
        };
        txn.commit()?;
        Ok(counts)
    }

    /// Deletes sessions past their end or unused for `idle_ms`, and expired API tokens, in one
    /// transaction. Returns how many sessions and tokens went.
    pub fn purge_credentials(&self, now_ms: u64, idle_ms: u64) -> Result<(u64, u64), StoreError> {
        let txn = self.db.begin_write()?;
        let counts = {
            let mut sessions = txn.open_table(SESSIONS)?;
            let sessions_gone = remove_rows(&mut sessions, "sessions", |_, s: &SessionRecord| {
                s.expires_ms <= now_ms
                    || now_ms.saturating_sub(s.last_seen_ms.max(s.created_ms)) >= idle_ms
            })?;
            let mut tokens = txn.open_table(API_TOKENS)?;
            let tokens_gone = remove_rows(&mut tokens, "api_tokens", |_, t: &TokenRecord| {
                t.expires_ms.is_some_and(|end| end <= now_ms)
            })?;
            (sessions_gone, tokens_gone)
        };
        txn.commit()?;
        Ok(counts)
    }

    fn put_json<T: serde::Serialize>(
        &self,
        def: TableDefinition<&[u8], &[u8]>,
        key: &[u8],
        value: &T,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(def)?.insert(key, encode(value).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    // ---- projects and members ----------------------------------------------------------

    /// Creates a project; its creator becomes its admin. Names are unique (case-sensitive).
    pub fn create_project(&self, record: &ProjectRecord) -> Result<ProjectId, StoreError> {
        let txn = self.db.begin_write()?;
        let id = {
            let mut projects = txn.open_table(PROJECTS)?;
            for row in projects.iter()? {
                let (_, v) = row?;
                let existing: ProjectRecord = decode("projects", v.value())?;
                if existing.spec.name == record.spec.name {
                    return Err(StoreError::Exists(format!(
                        "project {:?}",
                        record.spec.name
                    )));
                }
            }
            let id = Self::next_id(&mut txn.open_table(META)?, "next_project")?;
            projects.insert(id, encode(record).as_slice())?;
            txn.open_table(MEMBERS)?
                .insert((id, record.created_by.0), role_code(Role::Admin))?;
            id
        };
        txn.commit()?;
        Ok(ProjectId(id))
    }

    pub fn project(&self, id: ProjectId) -> Result<Option<ProjectRecord>, StoreError> {
        self.get_json(PROJECTS, id.0, "projects")
    }

    pub fn projects(&self) -> Result<Vec<(ProjectId, ProjectRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PROJECTS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((ProjectId(k.value()), decode("projects", v.value())?));
        }
        Ok(out)
    }

    /// Replaces a project's spec (labels, guidelines, settings), keeping its counters.
    pub fn update_project_spec(
        &self,
        id: ProjectId,
        spec: &concord_domain::ProjectSpec,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut projects = txn.open_table(PROJECTS)?;
            let mut record: ProjectRecord = match projects.get(id.0)? {
                Some(v) => decode("projects", v.value())?,
                None => return Err(StoreError::NotFound("project")),
            };
            record.spec = spec.clone();
            projects.insert(id.0, encode(&record).as_slice())?;
        }
        txn.commit()?;
        self.generations.bump(id.0);
        Ok(())
    }

    /// Sets (or with `None` removes) a user's role in a project.
    pub fn set_member(
        &self,
        project: ProjectId,
        user: UserId,
        role: Option<Role>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut members = txn.open_table(MEMBERS)?;
            match role {
                Some(r) => {
                    members.insert((project.0, user.0), role_code(r))?;
                }
                None => {
                    members.remove((project.0, user.0))?;
                }
            }
        }
        txn.commit()?;
        self.generations.bump(project.0);
        Ok(())
    }

    pub fn role(&self, project: ProjectId, user: UserId) -> Result<Option<Role>, StoreError> {
        let txn = self.db.begin_read()?;
        let members = txn.open_table(MEMBERS)?;
        Ok(members
            .get((project.0, user.0))?
            .map(|v| role_from_code(v.value())))
    }

    pub fn members(&self, project: ProjectId) -> Result<Vec<(UserId, Role)>, StoreError> {
        let txn = self.db.begin_read()?;
        let members = txn.open_table(MEMBERS)?;
        let mut out = Vec::new();
        for row in members.range((project.0, 0)..=(project.0, u64::MAX))? {
            let (k, v) = row?;
            out.push((UserId(k.value().1), role_from_code(v.value())));
        }
        Ok(out)
    }

    /// The projects a user is a member of, with the role.
    pub fn memberships(&self, user: UserId) -> Result<Vec<(ProjectId, Role)>, StoreError> {
        let txn = self.db.begin_read()?;
        let members = txn.open_table(MEMBERS)?;
        let mut out = Vec::new();
        for row in members.iter()? {
            let (k, v) = row?;
            let (p, u) = k.value();
            if u == user.0 {
                out.push((ProjectId(p), role_from_code(v.value())));
            }
        }
        Ok(out)
    }

    // ---- items ---------------------------------------------------------------------------

    /// A visible item by seq.
    pub fn item(&self, project: ProjectId, seq: u64) -> Result<Option<ItemRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(record) = Self::read_project(&txn, project)? else {
            return Ok(None);
        };
        if seq >= record.next_seq {
            return Ok(None);
        }
        let items = txn.open_table(ITEMS)?;
        match items.get((project.0, seq))? {
            Some(v) => Ok(Some(decode("items", v.value())?)),
            None => Ok(None),
        }
    }

    /// The seq of a visible item by its external id.
    pub fn item_seq(&self, project: ProjectId, id: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(record) = Self::read_project(&txn, project)? else {
            return Ok(None);
        };
        let ids = txn.open_table(ITEM_IDS)?;
        if let Some(seq) = ids.get((project.0, id))?.map(|v| v.value()) {
            return Ok(Some(seq).filter(|s| *s < record.next_seq));
        }
        match positional_seq(id) {
            Some(seq) if seq < record.next_seq => {
                let items = txn.open_table(ITEMS)?;
                Ok(Self::item_has_id(&items, project.0, seq, id)?.then_some(seq))
            }
            _ => Ok(None),
        }
    }

    /// Whether the item row at `seq` carries `id`.
    pub(crate) fn item_has_id(
        items: &impl ReadableTable<(u64, u64), &'static [u8]>,
        project: u64,
        seq: u64,
        id: &str,
    ) -> Result<bool, StoreError> {
        Ok(match items.get((project, seq))? {
            Some(v) => decode::<ItemKey>("items", v.value())?.id == id,
            None => false,
        })
    }

    pub(crate) fn read_project(
        txn: &redb::ReadTransaction,
        project: ProjectId,
    ) -> Result<Option<ProjectRecord>, StoreError> {
        let projects = txn.open_table(PROJECTS)?;
        match projects.get(project.0)? {
            Some(v) => Ok(Some(decode("projects", v.value())?)),
            None => Ok(None),
        }
    }

    /// Calls `f` for every visible item of a project in import order, with all its
    /// annotations, from one consistent snapshot. Streams: memory does not grow with the
    /// project. `f` returning an error stops the walk.
    pub fn for_each_item<E: From<StoreError>>(
        &self,
        project: ProjectId,
        mut f: impl FnMut(u64, ItemRecord, Vec<(UserId, AnnotationRecord)>) -> Result<(), E>,
    ) -> Result<(), E> {
        let txn = self.db.begin_read().map_err(StoreError::from)?;
        let Some(record) = Self::read_project(&txn, project)? else {
            return Err(StoreError::NotFound("project").into());
        };
        let items = txn.open_table(ITEMS).map_err(StoreError::from)?;
        let annotations = txn.open_table(ANNOTATIONS).map_err(StoreError::from)?;
        let mut ann_rows = annotations
            .range((project.0, 0, 0)..=(project.0, u64::MAX, u64::MAX))
            .map_err(StoreError::from)?
            .peekable();
        let range = items
            .range((project.0, 0)..(project.0, record.next_seq))
            .map_err(StoreError::from)?;
        for row in range {
            let (k, v) = row.map_err(StoreError::from)?;
            let seq = k.value().1;
            let item: ItemRecord = decode("items", v.value())?;
            let mut anns = Vec::new();
            while let Some(Ok((ak, _))) = ann_rows.peek() {
                let (_, aseq, user) = ak.value();
                if aseq > seq {
                    break;
                }
                let Some(Ok((_, av))) = ann_rows.next() else {
                    break;
                };
                if aseq == seq {
                    anns.push((UserId(user), decode("annotations", av.value())?));
                }
            }
            if let Some(Err(_)) = ann_rows.peek() {
                if let Some(Err(e)) = ann_rows.next() {
                    return Err(StoreError::from(e).into());
                }
            }
            f(seq, item, anns)?;
        }
        Ok(())
    }

    // ---- annotations ---------------------------------------------------------------------

    pub fn annotations_of_item(
        &self,
        project: ProjectId,
        seq: u64,
    ) -> Result<Vec<(UserId, AnnotationRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ANNOTATIONS)?;
        let mut out = Vec::new();
        for row in table.range((project.0, seq, 0)..=(project.0, seq, u64::MAX))? {
            let (k, v) = row?;
            out.push((UserId(k.value().2), decode("annotations", v.value())?));
        }
        Ok(out)
    }

    pub fn annotation(
        &self,
        project: ProjectId,
        seq: u64,
        user: UserId,
    ) -> Result<Option<AnnotationRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ANNOTATIONS)?;
        match table.get((project.0, seq, user.0))? {
            Some(v) => Ok(Some(decode("annotations", v.value())?)),
            None => Ok(None),
        }
    }

    /// How many items `user` has annotated in `project`.
    pub fn user_progress(&self, project: ProjectId, user: UserId) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(USER_PROGRESS)?;
        Ok(table
            .get((project.0, user.0))?
            .map(|v| v.value())
            .unwrap_or(0))
    }

    /// Stores a batch of answers in one durable transaction (group commit): either all of them
    /// are stored or none. Items must exist; re-annotating replaces the earlier answer.
    pub fn put_annotations(
        &self,
        writes: &[AnnotationWrite],
    ) -> Result<Vec<WriteOutcome>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut outcomes = Vec::with_capacity(writes.len());
        {
            let mut projects = txn.open_table(PROJECTS)?;
            let mut annotations = txn.open_table(ANNOTATIONS)?;
            let mut progress = txn.open_table(USER_PROGRESS)?;
            let mut skips = txn.open_table(SKIPS)?;
            let mut outcomes_table = txn.open_table(SUGGESTION_OUTCOMES)?;
            let items = txn.open_table(ITEMS)?;
            let mut touched: HashMap<u64, ProjectRecord> = HashMap::new();
            for w in writes {
                let project = match touched.entry(w.project.0) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let record: ProjectRecord = match projects.get(w.project.0)? {
                            Some(v) => decode("projects", v.value())?,
                            None => return Err(StoreError::NotFound("project")),
                        };
                        e.insert(record)
                    }
                };
                if w.seq >= project.next_seq {
                    return Err(StoreError::NotFound("item"));
                }
                let key = (w.project.0, w.seq, w.user.0);
                let existing: Option<AnnotationRecord> = match annotations.get(key)? {
                    Some(v) => Some(decode("annotations", v.value())?),
                    None => None,
                };
                let existing_for_outcomes = existing.clone();
                // The live record is evidence on confirmed labels a version was not trained
                // on, free of anchoring: only an item's first answer, on an item without gold,
                // given against a suggestion shown as a hint (not pre-selected), counts. A
                // version trains only on confirmed labels, which need an answer or gold.
                let live_counted = w.as_live_evidence
                    && existing.is_none()
                    && annotations
                        .range((w.project.0, w.seq, 0)..=(w.project.0, w.seq, u64::MAX))?
                        .next()
                        .is_none()
                    && match items.get((w.project.0, w.seq))? {
                        Some(v) => decode::<ItemRecord>("items", v.value())?.gold.is_none(),
                        None => return Err(StoreError::NotFound("item")),
                    };
                let (record, outcome) = match existing {
                    Some(old) if old.value == w.value && old.source == w.source => {
                        outcomes.push(WriteOutcome::Unchanged);
                        continue;
                    }
                    Some(old) => (
                        AnnotationRecord {
                            value: w.value.clone(),
                            created_ms: old.created_ms,
                            updated_ms: w.now_ms,
                            time_spent_ms: old.time_spent_ms.saturating_add(w.time_spent_ms),
                            source: w.source.clone(),
                            live_counted: false,
                        },
                        WriteOutcome::Updated,
                    ),
                    None => (
                        AnnotationRecord {
                            value: w.value.clone(),
                            created_ms: w.now_ms,
                            updated_ms: w.now_ms,
                            time_spent_ms: w.time_spent_ms,
                            source: w.source.clone(),
                            live_counted,
                        },
                        WriteOutcome::Created,
                    ),
                };
                annotations.insert(key, encode(&record).as_slice())?;
                if let Some(old) = existing_for_outcomes {
                    count_outcome(&mut outcomes_table, w.project, &old, -1)?;
                }
                count_outcome(&mut outcomes_table, w.project, &record, 1)?;
                if outcome == WriteOutcome::Created {
                    let done_before = progress
                        .get((w.project.0, w.user.0))?
                        .map(|v| v.value())
                        .unwrap_or(0);
                    progress.insert((w.project.0, w.user.0), done_before + 1)?;
                    skips.remove((w.project.0, w.user.0, w.seq))?;
                    project.annotations += 1;
                    let count = annotations
                        .range((w.project.0, w.seq, 0)..=(w.project.0, w.seq, u64::MAX))?
                        .count() as u64;
                    if count == u64::from(project.spec.settings.overlap) {
                        project.done += 1;
                    }
                }
                outcomes.push(outcome);
            }
            for (id, record) in touched {
                projects.insert(id, encode(&record).as_slice())?;
            }
        }
        txn.commit()?;
        for (w, outcome) in writes.iter().zip(&outcomes) {
            if *outcome != WriteOutcome::Unchanged {
                self.generations.bump(w.project.0);
            }
        }
        Ok(outcomes)
    }

    /// Marks an item as skipped by a user: the queue stops offering it to them.
    pub fn skip(&self, project: ProjectId, user: UserId, seq: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(SKIPS)?
            .insert((project.0, user.0, seq), ())?;
        txn.commit()?;
        Ok(())
    }

    /// Forgets a user's skips in a project, so skipped items come back into their queue.
    pub fn clear_skips(&self, project: ProjectId, user: UserId) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let removed = {
            let mut skips = txn.open_table(SKIPS)?;
            let keys: Vec<u64> = skips
                .range((project.0, user.0, 0)..=(project.0, user.0, u64::MAX))?
                .map(|r| r.map(|(k, _)| k.value().2))
                .collect::<Result<_, _>>()?;
            for seq in &keys {
                skips.remove((project.0, user.0, *seq))?;
            }
            keys.len() as u64
        };
        txn.commit()?;
        Ok(removed)
    }

    /// Reads, from one consistent snapshot, what the engine's assignment state is built from:
    /// the project record, every (item, annotator) pair that has an answer, and every
    /// (annotator, item) skip. `None` when the project does not exist.
    pub fn assignment_snapshot(
        &self,
        project: ProjectId,
        on_answer: &mut dyn FnMut(u64, UserId),
        on_skip: &mut dyn FnMut(UserId, u64),
    ) -> Result<Option<ProjectRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(record) = Self::read_project(&txn, project)? else {
            return Ok(None);
        };
        let annotations = txn.open_table(ANNOTATIONS)?;
        for row in annotations.range((project.0, 0, 0)..=(project.0, u64::MAX, u64::MAX))? {
            let (_, seq, user) = row?.0.value();
            on_answer(seq, UserId(user));
        }
        let skips = txn.open_table(SKIPS)?;
        for row in skips.range((project.0, 0, 0)..=(project.0, u64::MAX, u64::MAX))? {
            let (_, user, seq) = row?.0.value();
            on_skip(UserId(user), seq);
        }
        Ok(Some(record))
    }

    // ---- gold labels and gold questions --------------------------------------------------

    /// Sets (or with `None` removes) an item's gold label. Removing it also stops the item
    /// being a gold question. Returns the item as stored.
    pub fn set_gold(
        &self,
        project: ProjectId,
        seq: u64,
        gold: Option<(AnnotationValue, GoldSource)>,
    ) -> Result<ItemRecord, StoreError> {
        let txn = self.db.begin_write()?;
        let item = {
            let record = Self::write_project(&txn, project)?;
            let mut items = txn.open_table(ITEMS)?;
            let mut item: ItemRecord = match items.get((project.0, seq))? {
                Some(v) if seq < record.next_seq => decode("items", v.value())?,
                _ => return Err(StoreError::NotFound("item")),
            };
            match gold {
                Some((value, source)) => {
                    item.gold = Some(value);
                    item.gold_source = Some(source).filter(|s| *s != GoldSource::Import);
                }
                None => {
                    item.gold = None;
                    item.gold_source = None;
                    txn.open_table(GOLD_QUESTIONS)?.remove((project.0, seq))?;
                }
            }
            items.insert((project.0, seq), encode(&item).as_slice())?;
            item
        };
        txn.commit()?;
        self.generations.bump(project.0);
        Ok(item)
    }

    /// Marks or unmarks an item as a gold question. Only an item with a gold label can be one
    /// ([`StoreError::NoGold`] otherwise).
    pub fn set_gold_question(
        &self,
        project: ProjectId,
        seq: u64,
        on: bool,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let record = Self::write_project(&txn, project)?;
            let items = txn.open_table(ITEMS)?;
            let item: ItemRecord = match items.get((project.0, seq))? {
                Some(v) if seq < record.next_seq => decode("items", v.value())?,
                _ => return Err(StoreError::NotFound("item")),
            };
            let mut questions = txn.open_table(GOLD_QUESTIONS)?;
            if on {
                if item.gold.is_none() {
                    return Err(StoreError::NoGold);
                }
                questions.insert((project.0, seq), ())?;
            } else {
                questions.remove((project.0, seq))?;
            }
        }
        txn.commit()?;
        self.generations.bump(project.0);
        Ok(())
    }

    /// The seqs of a project's gold questions, ascending.
    pub fn gold_questions(&self, project: ProjectId) -> Result<Vec<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(GOLD_QUESTIONS)?;
        let mut out = Vec::new();
        for row in table.range((project.0, 0)..=(project.0, u64::MAX))? {
            out.push(row?.0.value().1);
        }
        Ok(out)
    }

    pub(crate) fn write_project(
        txn: &redb::WriteTransaction,
        project: ProjectId,
    ) -> Result<ProjectRecord, StoreError> {
        let projects = txn.open_table(PROJECTS)?;
        let record = match projects.get(project.0)? {
            Some(v) => decode("projects", v.value())?,
            None => return Err(StoreError::NotFound("project")),
        };
        Ok(record)
    }

    /// Calls `f` with the answers of each annotated item, in seq order from `from_seq`, from
    /// one snapshot; reads annotation rows only, so its cost follows the number of answers,
    /// not of items. `f` returns `Break` to stop.
    pub fn for_each_answered(
        &self,
        project: ProjectId,
        from_seq: u64,
        f: &mut dyn FnMut(u64, Vec<(UserId, AnnotationRecord)>) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(ANNOTATIONS)?;
        let mut current: Option<(u64, Vec<(UserId, AnnotationRecord)>)> = None;
        for row in table.range((project.0, from_seq, 0)..=(project.0, u64::MAX, u64::MAX))? {
            let (k, v) = row?;
            let (_, seq, user) = k.value();
            let record: AnnotationRecord = decode("annotations", v.value())?;
            match &mut current {
                Some((s, answers)) if *s == seq => answers.push((UserId(user), record)),
                _ => {
                    if let Some((s, answers)) = current.take() {
                        if f(s, answers).is_break() {
                            return Ok(());
                        }
                    }
                    current = Some((seq, vec![(UserId(user), record)]));
                }
            }
        }
        if let Some((s, answers)) = current {
            let _ = f(s, answers);
        }
        Ok(())
    }
}

/// Removes the rows of a JSON table keyed by secret hashes for which `doomed` holds; returns
/// how many went.
/// Whether `users` holds an administrator account; stops at the first one.
/// Adds (`delta` 1) or removes (-1) an answer to the live record of the suggestion it was
/// given against, if any: to the display counts always, to the evidence only when the answer
/// was counted as evidence when stored (`live_counted`).
fn count_outcome(
    table: &mut redb::Table<(u64, u64), &'static [u8]>,
    project: ProjectId,
    answer: &AnnotationRecord,
    delta: i8,
) -> Result<(), StoreError> {
    let (version, accepted) = match answer.source {
        AnnotationSource::ModelAccepted { model_version } => (model_version, true),
        AnnotationSource::ModelCorrected { model_version } => (model_version, false),
        AnnotationSource::Human | AnnotationSource::Import => return Ok(()),
    };
    let mut outcomes: SuggestionOutcomes = match table.get((project.0, version))? {
        Some(v) => decode("suggestion_outcomes", v.value())?,
        None => SuggestionOutcomes::default(),
    };
    let step = |n: &mut u64| {
        *n = if delta > 0 {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        }
    };
    step(if accepted {
        &mut outcomes.shown.accepted
    } else {
        &mut outcomes.shown.corrected
    });
    if answer.live_counted {
        step(if accepted {
            &mut outcomes.accepted
        } else {
            &mut outcomes.corrected
        });
        if let Some(label) = answer.value.labels.first() {
            let n = outcomes.answered.entry(label.clone()).or_insert(0);
            step(n);
            if *n == 0 {
                outcomes.answered.remove(label);
            }
        }
    }
    table.insert((project.0, version), encode(&outcomes).as_slice())?;
    Ok(())
}

fn any_admin(users: &impl ReadableTable<u64, &'static [u8]>) -> Result<bool, StoreError> {
    for row in users.iter()? {
        let (_, v) = row?;
        if decode::<UserRecord>("users", v.value())?.is_admin {
            return Ok(true);
        }
    }
    Ok(false)
}

fn remove_rows<T: for<'de> serde::Deserialize<'de>>(
    table: &mut redb::Table<&[u8], &[u8]>,
    name: &'static str,
    doomed: impl Fn(&[u8], &T) -> bool,
) -> Result<u64, StoreError> {
    let mut keys = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        if doomed(k.value(), &decode::<T>(name, v.value())?) {
            keys.push(k.value().to_vec());
        }
    }
    for key in &keys {
        table.remove(key.as_slice())?;
    }
    Ok(keys.len() as u64)
}
