use concord_domain::ProjectId;
use redb::{ReadableDatabase, ReadableTable};

use concord_domain::UserId;

use crate::records::{decode, encode};
use crate::schema::*;
use crate::{AnnotationRecord, ItemRecord, ProjectRecord, Store, StoreError};

/// An item to import together with the annotations it already carries (re-importing an
/// export restores them).
#[derive(Debug, Clone)]
pub struct StagedItem {
    pub item: ItemRecord,
    pub annotations: Vec<(UserId, AnnotationRecord)>,
}

/// An import in progress. Its items are written in batches, each batch one transaction, at seqs
/// past the project's visible end; [`Store::commit_import`] moves the end in one transaction,
/// [`Store::abort_import`] (or the next open after a crash) deletes them. Readers never see a
/// half-finished import.
#[derive(Debug)]
pub struct StagedImport {
    project: ProjectId,
    start: u64,
    next: u64,
}

impl StagedImport {
    pub fn project(&self) -> ProjectId {
        self.project
    }

    /// Items staged so far.
    pub fn staged(&self) -> u64 {
        self.next - self.start
    }
}

/// What one staged batch did, by index into the batch.
#[derive(Debug, Default)]
pub struct StageOutcome {
    pub inserted: u64,
    /// (index in batch, id of the existing item with the same text).
    pub duplicate_texts: Vec<(usize, String)>,
}

/// A stable 64-bit hash of an item's text (FNV-1a), for duplicate detection across imports
/// and versions of Concord (std's hasher is not stable across releases).
pub(crate) fn text_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Store {
    /// Starts an import into `project`. Only one import per project may be staged at a time
    /// (the engine serializes them); a second one fails with [`StoreError::Exists`].
    pub fn begin_import(&self, project: ProjectId) -> Result<StagedImport, StoreError> {
        let txn = self.db.begin_write()?;
        let start = {
            let projects = txn.open_table(PROJECTS)?;
            let record: ProjectRecord = match projects.get(project.0)? {
                Some(v) => decode("projects", v.value())?,
                None => return Err(StoreError::NotFound("project")),
            };
            let mut staged = txn.open_table(STAGED_IMPORTS)?;
            if staged.get(project.0)?.is_some() {
                return Err(StoreError::Exists("an import into this project".into()));
            }
            staged.insert(project.0, (record.next_seq, record.next_seq))?;
            record.next_seq
        };
        txn.commit()?;
        Ok(StagedImport {
            project,
            start,
            next: start,
        })
    }

    /// Stages one batch in one transaction. An item whose `id` is already taken (by a stored
    /// item or one staged earlier in this import) fails the batch with
    /// `Err((index, StoreError::Exists))`; an item whose text is already present is reported in
    /// [`StageOutcome::duplicate_texts`] and skipped when `skip_duplicate_texts`. Items with an
    /// empty `id` get their 1-based position as id.
    pub fn stage_items(
        &self,
        import: &mut StagedImport,
        batch: &mut [StagedItem],
        skip_duplicate_texts: bool,
    ) -> Result<StageOutcome, (Option<usize>, StoreError)> {
        let plain = |e: StoreError| (None, e);
        let txn = self.db.begin_write().map_err(|e| plain(e.into()))?;
        let mut outcome = StageOutcome::default();
        let p = import.project.0;
        let mut next = import.next;
        {
            let mut items = txn.open_table(ITEMS).map_err(|e| plain(e.into()))?;
            let mut ids = txn.open_table(ITEM_IDS).map_err(|e| plain(e.into()))?;
            let mut hashes = txn
                .open_table(ITEM_TEXT_HASHES)
                .map_err(|e| plain(e.into()))?;
            let mut annotations = txn.open_table(ANNOTATIONS).map_err(|e| plain(e.into()))?;
            for (index, staged_item) in batch.iter_mut().enumerate() {
                let item = &mut staged_item.item;
                let at = |e: redb::StorageError| (Some(index), StoreError::from(e));
                let hash = text_hash(&item.text);
                let existing_seq = hashes.get((p, hash)).map_err(at)?.map(|v| v.value());
                if let Some(seq) = existing_seq {
                    let other: Option<ItemRecord> = match items.get((p, seq)).map_err(at)? {
                        Some(v) => Some(decode("items", v.value()).map_err(|e| (Some(index), e))?),
                        None => None,
                    };
                    if let Some(other) = other.filter(|o| o.text == item.text) {
                        outcome.duplicate_texts.push((index, other.id));
                        if skip_duplicate_texts {
                            continue;
                        }
                    }
                }
                if item.id.is_empty() {
                    item.id = (next + 1).to_string();
                    let mut n = 1;
                    while ids.get((p, item.id.as_str())).map_err(at)?.is_some() {
                        n += 1;
                        item.id = format!("{}-{n}", next + 1);
                    }
                } else if ids.get((p, item.id.as_str())).map_err(at)?.is_some() {
                    return Err((
                        Some(index),
                        StoreError::Exists(format!("item id {:?}", item.id)),
                    ));
                }
                ids.insert((p, item.id.as_str()), next).map_err(at)?;
                if existing_seq.is_none() {
                    hashes.insert((p, hash), next).map_err(at)?;
                }
                items
                    .insert((p, next), encode(item).as_slice())
                    .map_err(at)?;
                for (user, record) in &staged_item.annotations {
                    annotations
                        .insert((p, next, user.0), encode(record).as_slice())
                        .map_err(at)?;
                }
                next += 1;
                outcome.inserted += 1;
            }
            let mut staged = txn
                .open_table(STAGED_IMPORTS)
                .map_err(|e| plain(e.into()))?;
            staged
                .insert(p, (import.start, next))
                .map_err(|e| plain(e.into()))?;
        }
        txn.commit().map_err(|e| plain(e.into()))?;
        import.next = next;
        Ok(outcome)
    }

    /// Makes every staged item visible, in one transaction, and counts their annotations into
    /// the project's and annotators' progress. Returns the number of items added.
    pub fn commit_import(&self, import: StagedImport) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut projects = txn.open_table(PROJECTS)?;
            let mut record: ProjectRecord = match projects.get(import.project.0)? {
                Some(v) => decode("projects", v.value())?,
                None => return Err(StoreError::NotFound("project")),
            };
            let p = import.project.0;
            let overlap = u64::from(record.spec.settings.overlap);
            let annotations = txn.open_table(ANNOTATIONS)?;
            let mut progress = txn.open_table(USER_PROGRESS)?;
            let mut per_user: std::collections::BTreeMap<u64, u64> = Default::default();
            let mut current: Option<(u64, u64)> = None;
            let finish = |current: Option<(u64, u64)>, record: &mut ProjectRecord| {
                if let Some((_, n)) = current {
                    if n >= overlap {
                        record.done += 1;
                    }
                }
            };
            for row in annotations.range((p, import.start, 0)..(p, import.next, 0))? {
                let (k, _) = row?;
                let (_, seq, user) = k.value();
                *per_user.entry(user).or_default() += 1;
                record.annotations += 1;
                current = match current {
                    Some((s, n)) if s == seq => Some((s, n + 1)),
                    other => {
                        finish(other, &mut record);
                        Some((seq, 1))
                    }
                };
            }
            finish(current, &mut record);
            for (user, n) in per_user {
                let before = progress.get((p, user))?.map(|v| v.value()).unwrap_or(0);
                progress.insert((p, user), before + n)?;
            }
            record.next_seq = import.next;
            projects.insert(import.project.0, encode(&record).as_slice())?;
            txn.open_table(STAGED_IMPORTS)?.remove(import.project.0)?;
        }
        txn.commit()?;
        Ok(import.staged())
    }

    /// Deletes every staged item and its index entries.
    pub fn abort_import(&self, import: StagedImport) -> Result<(), StoreError> {
        self.rollback_staged(import.project.0, import.start, import.next)
    }

    fn rollback_staged(&self, project: u64, start: u64, end: u64) -> Result<(), StoreError> {
        const CHUNK: u64 = 50_000;
        let mut from = start;
        loop {
            let to = (from + CHUNK).min(end);
            let txn = self.db.begin_write()?;
            {
                let mut items = txn.open_table(ITEMS)?;
                let mut ids = txn.open_table(ITEM_IDS)?;
                let mut hashes = txn.open_table(ITEM_TEXT_HASHES)?;
                let mut annotations = txn.open_table(ANNOTATIONS)?;
                for seq in from..to {
                    let users: Vec<u64> = annotations
                        .range((project, seq, 0)..=(project, seq, u64::MAX))?
                        .map(|r| r.map(|(k, _)| k.value().2))
                        .collect::<Result<_, _>>()?;
                    for user in users {
                        annotations.remove((project, seq, user))?;
                    }
                    let Some(item) = items.remove((project, seq))? else {
                        continue;
                    };
                    let item: ItemRecord = decode("items", item.value())?;
                    ids.remove((project, item.id.as_str()))?;
                    let hash = text_hash(&item.text);
                    if hashes.get((project, hash))?.map(|v| v.value()) == Some(seq) {
                        hashes.remove((project, hash))?;
                    }
                }
                let mut staged = txn.open_table(STAGED_IMPORTS)?;
                if to >= end {
                    staged.remove(project)?;
                } else {
                    staged.insert(project, (to, end))?;
                }
            }
            txn.commit()?;
            if to >= end {
                return Ok(());
            }
            from = to;
        }
    }

    /// Rolls back imports that were being staged when the process stopped.
    pub(crate) fn recover_staged_imports(&self) -> Result<(), StoreError> {
        let pending: Vec<(u64, (u64, u64))> = {
            let txn = self.db.begin_read()?;
            let staged = txn.open_table(STAGED_IMPORTS)?;
            staged
                .iter()?
                .map(|r| r.map(|(k, v)| (k.value(), v.value())))
                .collect::<Result<_, _>>()?
        };
        for (project, (start, end)) in pending {
            tracing::warn!(
                project,
                staged = end - start,
                "rolling back an interrupted import"
            );
            self.rollback_staged(project, start, end)?;
        }
        Ok(())
    }
}
