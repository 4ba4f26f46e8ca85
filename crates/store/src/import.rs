use std::collections::HashMap;

use concord_domain::{ProjectId, UserId};
use redb::{ReadableDatabase, ReadableTable};

use crate::records::{decode, encode, positional_seq, ItemKey};
use crate::schema::*;
use crate::{
    AnnotationRecord, ItemRecord, ModelVersionRecord, ProjectRecord, Store, StoreError,
    SuggestionRecord,
};

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
    /// Text hash → seq of the first item with that text, over stored and staged items.
    texts: HashMap<u64, u64>,
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
        // The duplicate-text map, from a snapshot: the engine runs one import per project at a
        // time, and nothing else adds items.
        let mut texts = HashMap::new();
        {
            let txn = self.db.begin_read()?;
            let items = txn.open_table(ITEMS)?;
            for row in items.range((project.0, 0)..=(project.0, u64::MAX))? {
                let (k, v) = row?;
                let key: ItemKey = decode("items", v.value())?;
                texts.entry(text_hash(&key.text)).or_insert(k.value().1);
            }
        }
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
        texts.retain(|_, seq| *seq < start);
        Ok(StagedImport {
            project,
            start,
            next: start,
            texts,
        })
    }

    /// Stages one batch in one transaction. An item whose `id` is already taken (by a stored
    /// item, one staged earlier in this import, or an earlier item of the batch) fails the batch
    /// with `Err((index, StoreError::Exists))` naming the first such item; an item whose text is
    /// already present is reported in [`StageOutcome::duplicate_texts`] and skipped when
    /// `skip_duplicate_texts`. Items with an empty `id` get their 1-based position as id.
    ///
    /// Index lookups and inserts run in key order rather than item order: the text-hash keys
    /// are random, and visiting them sorted keeps the B-tree walk local.
    pub fn stage_items(
        &self,
        import: &mut StagedImport,
        batch: &mut [StagedItem],
        skip_duplicate_texts: bool,
    ) -> Result<StageOutcome, (Option<usize>, StoreError)> {
        self.stage_items_with_suggestions(import, batch, &[], skip_duplicate_texts)
    }

    /// [`Store::stage_items`], with `suggestions[i]` (when there is one) stored as the
    /// suggestion of `batch[i]`: an import of another tool's predictions. Their `version` is
    /// set when the import commits ([`Store::commit_import_with_version`]), which creates the
    /// version they belong to; until then they are as invisible as the staged items.
    pub fn stage_items_with_suggestions(
        &self,
        import: &mut StagedImport,
        batch: &mut [StagedItem],
        suggestions: &[Option<SuggestionRecord>],
        skip_duplicate_texts: bool,
    ) -> Result<StageOutcome, (Option<usize>, StoreError)> {
        let plain = |e: StoreError| (None, e);
        let storage = |e: redb::StorageError| (None, StoreError::from(e));
        let mut txn = self.db.begin_write().map_err(|e| plain(e.into()))?;
        // Staged rows are invisible and rolled back after a crash, so a batch need not reach
        // the disk on its own: the import's final commit is durable and carries them with it.
        txn.set_durability(redb::Durability::None)
            .map_err(|e| plain(StoreError::Storage(redb::Error::from(e))))?;
        let mut outcome = StageOutcome::default();
        let p = import.project.0;
        let mut new_texts: Vec<(u64, u64)> = Vec::new();
        {
            let mut items = txn.open_table(ITEMS).map_err(|e| plain(e.into()))?;
            let mut ids = txn.open_table(ITEM_IDS).map_err(|e| plain(e.into()))?;
            let mut annotations = txn.open_table(ANNOTATIONS).map_err(|e| plain(e.into()))?;
            let mut suggestion_rows = txn.open_table(SUGGESTIONS).map_err(|e| plain(e.into()))?;

            // 1. Duplicate texts, by hash in key order.
            enum Same {
                Stored(String),
                Earlier(usize),
            }
            let mut same: Vec<Option<Same>> = (0..batch.len()).map(|_| None).collect();
            let mut by_hash: Vec<(u64, usize)> = batch
                .iter()
                .enumerate()
                .map(|(i, s)| (text_hash(&s.item.text), i))
                .collect();
            by_hash.sort_unstable();
            let mut new_hashes: Vec<(u64, usize)> = Vec::new();
            for group in by_hash.chunk_by(|a, b| a.0 == b.0) {
                let hash = group[0].0;
                let stored_seq = import.texts.get(&hash).copied();
                let stored: Option<ItemRecord> = match stored_seq {
                    Some(seq) => match items.get((p, seq)).map_err(storage)? {
                        Some(v) => Some(decode("items", v.value()).map_err(plain)?),
                        None => None,
                    },
                    None => None,
                };
                let mut firsts: Vec<usize> = Vec::new();
                for &(_, index) in group {
                    let text = &batch[index].item.text;
                    if let Some(o) = stored.as_ref().filter(|o| &o.text == text) {
                        same[index] = Some(Same::Stored(o.id.clone()));
                    } else if let Some(&first) =
                        firsts.iter().find(|&&f| &batch[f].item.text == text)
                    {
                        same[index] = Some(Same::Earlier(first));
                    } else {
                        firsts.push(index);
                    }
                }
                if stored_seq.is_none() {
                    if let Some(&first) = firsts.first() {
                        new_hashes.push((hash, first));
                    }
                }
            }

            // 2. Positions and ids, in item order.
            let mut seq_of: Vec<Option<u64>> = vec![None; batch.len()];
            let mut generated = vec![false; batch.len()];
            let mut next = import.next;
            for (index, slot) in seq_of.iter_mut().enumerate() {
                if skip_duplicate_texts && same[index].is_some() {
                    continue;
                }
                *slot = Some(next);
                if batch[index].item.id.is_empty() {
                    batch[index].item.id = (next + 1).to_string();
                    generated[index] = true;
                }
                next += 1;
            }
            // Ids must be new: check them in key order, then resolve the rare clash of a
            // generated id with an explicit one by a suffix.
            let mut by_id: Vec<usize> = (0..batch.len()).filter(|i| seq_of[*i].is_some()).collect();
            by_id.sort_unstable_by(|a, b| batch[*a].item.id.cmp(&batch[*b].item.id));
            let mut clash: Option<usize> = None;
            let mut renamed: Vec<usize> = Vec::new();
            for (k, &index) in by_id.iter().enumerate() {
                let id = batch[index].item.id.as_str();
                let in_batch = k > 0 && batch[by_id[k - 1]].item.id == id;
                let stored = ids.get((p, id)).map_err(storage)?.is_some()
                    || match positional_seq(id) {
                        Some(s) if s < import.next => {
                            Self::item_has_id(&items, p, s, id).map_err(plain)?
                        }
                        _ => false,
                    };
                if in_batch || stored {
                    if generated[index] {
                        renamed.push(index);
                    } else {
                        clash = Some(clash.map_or(index, |c: usize| c.min(index)));
                    }
                }
            }
            if let Some(index) = clash {
                let id = batch[index].item.id.clone();
                return Err((Some(index), StoreError::Exists(format!("item id {id:?}"))));
            }
            for index in renamed {
                let base = batch[index].item.id.clone();
                let mut n = 1;
                loop {
                    n += 1;
                    let candidate = format!("{base}-{n}");
                    let taken_here = batch.iter().any(|s| s.item.id == candidate);
                    // A suffixed id is never positional, so the id table alone knows it.
                    if !taken_here && ids.get((p, candidate.as_str())).map_err(storage)?.is_none() {
                        batch[index].item.id = candidate;
                        break;
                    }
                }
            }

            // 3. Writes: items in seq order (appends), indexes in key order.
            for (index, staged_item) in batch.iter().enumerate() {
                let Some(seq) = seq_of[index] else { continue };
                let at = |e: redb::StorageError| (Some(index), StoreError::from(e));
                items
                    .insert((p, seq), encode(&staged_item.item).as_slice())
                    .map_err(at)?;
                for (user, record) in &staged_item.annotations {
                    annotations
                        .insert((p, seq, user.0), encode(record).as_slice())
                        .map_err(at)?;
                }
                if let Some(Some(suggestion)) = suggestions.get(index) {
                    suggestion_rows
                        .insert((p, seq), encode(suggestion).as_slice())
                        .map_err(at)?;
                }
                outcome.inserted += 1;
            }
            by_id.sort_unstable_by(|a, b| batch[*a].item.id.cmp(&batch[*b].item.id));
            for index in by_id {
                if let Some(seq) = seq_of[index] {
                    let id = batch[index].item.id.as_str();
                    if positional_seq(id) != Some(seq) {
                        ids.insert((p, id), seq).map_err(storage)?;
                    }
                }
            }
            for (hash, first) in new_hashes {
                // The first item with this text may itself be skipped (a stored duplicate).
                if let Some(seq) = seq_of[first] {
                    new_texts.push((hash, seq));
                }
            }
            for (index, s) in same.into_iter().enumerate() {
                match s {
                    Some(Same::Stored(id)) => outcome.duplicate_texts.push((index, id)),
                    Some(Same::Earlier(first)) => outcome
                        .duplicate_texts
                        .push((index, batch[first].item.id.clone())),
                    None => {}
                }
            }
            let mut staged = txn
                .open_table(STAGED_IMPORTS)
                .map_err(|e| plain(e.into()))?;
            staged
                .insert(p, (import.start, next))
                .map_err(|e| plain(e.into()))?;
            import.next = next;
        }
        txn.commit().map_err(|e| plain(e.into()))?;
        import.texts.extend(new_texts);
        Ok(outcome)
    }

    /// Makes every staged item visible, in one transaction, and counts their annotations into
    /// the project's and annotators' progress. Returns the number of items added.
    pub fn commit_import(&self, import: StagedImport) -> Result<u64, StoreError> {
        self.commit_import_with_version(import, None)
            .map(|(added, _)| added)
    }

    /// [`Store::commit_import`], and, given `version`, in the same transaction: stores it as the
    /// project's next model version (active when the project has none), and makes the staged
    /// suggestions that version's. Returns the items added and the new version's number.
    pub fn commit_import_with_version(
        &self,
        import: StagedImport,
        version: Option<&ModelVersionRecord>,
    ) -> Result<(u64, Option<u64>), StoreError> {
        let txn = self.db.begin_write()?;
        let mut created = None;
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
            if let Some(version_record) = version {
                let mut versions = txn.open_table(MODEL_VERSIONS)?;
                let last = versions
                    .range((p, 0)..=(p, u64::MAX))?
                    .next_back()
                    .transpose()?
                    .map_or(0, |(k, _)| k.value().1);
                let number = last + 1;
                versions.insert((p, number), encode(version_record).as_slice())?;
                if record.active_model.is_none() {
                    record.active_model = Some(number);
                }
                let mut suggestions = txn.open_table(SUGGESTIONS)?;
                let staged: Vec<(u64, SuggestionRecord)> = suggestions
                    .range((p, import.start)..(p, import.next))?
                    .map(|row| {
                        let (k, v) = row?;
                        Ok((k.value().1, decode("suggestions", v.value())?))
                    })
                    .collect::<Result<_, StoreError>>()?;
                for (seq, mut suggestion) in staged {
                    suggestion.version = number;
                    suggestions.insert((p, seq), encode(&suggestion).as_slice())?;
                }
                created = Some(number);
            }
            record.next_seq = import.next;
            projects.insert(import.project.0, encode(&record).as_slice())?;
            txn.open_table(STAGED_IMPORTS)?.remove(import.project.0)?;
        }
        txn.commit()?;
        self.generations.bump(import.project.0);
        Ok((import.staged(), created))
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
                let mut annotations = txn.open_table(ANNOTATIONS)?;
                let mut suggestions = txn.open_table(SUGGESTIONS)?;
                for seq in from..to {
                    suggestions.remove((project, seq))?;
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
                    let item: ItemKey = decode("items", item.value())?;
                    ids.remove((project, item.id.as_ref()))?;
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

    /// Item rows stored for `project`, visible or staged. Once an import is committed or
    /// rolled back this equals the visible item count: rows left past the visible end are
    /// debris of an import that was neither.
    pub fn item_rows(&self, project: ProjectId) -> Result<u64, StoreError> {
        let txn = self.db.begin_read()?;
        let items = txn.open_table(ITEMS)?;
        let mut rows = 0;
        for row in items.range((project.0, 0)..=(project.0, u64::MAX))? {
            row?;
            rows += 1;
        }
        Ok(rows)
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
