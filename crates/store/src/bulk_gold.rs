//! Gold set or removed on many items at once, each as one transaction: a reviewer's bulk
//! acceptance of a model's suggestions lands entirely or not at all, and so does its undo.

use concord_domain::{AnnotationValue, GoldSource, ProjectId};
use redb::ReadableTable;

use crate::records::{decode, encode};
use crate::schema::*;
use crate::{ItemRecord, Store, StoreError};

impl Store {
    /// Sets `source` gold on each listed item that still has no gold and no answer, in one
    /// transaction, provided `version` is still the project's active model (else
    /// [`StoreError::NotActive`]); items that gained gold or an answer since the caller chose
    /// them stay with people. Returns the seqs set.
    pub fn set_gold_many(
        &self,
        project: ProjectId,
        version: u64,
        gold: &[(u64, AnnotationValue)],
        source: &GoldSource,
    ) -> Result<Vec<u64>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut set = Vec::new();
        {
            let record = Self::write_project(&txn, project)?;
            if record.active_model != Some(version) {
                return Err(StoreError::NotActive(version));
            }
            let mut items = txn.open_table(ITEMS)?;
            let annotations = txn.open_table(ANNOTATIONS)?;
            for (seq, value) in gold {
                if annotations
                    .range((project.0, *seq, 0)..=(project.0, *seq, u64::MAX))?
                    .next()
                    .is_some()
                {
                    continue;
                }
                let mut item: ItemRecord = match items.get((project.0, *seq))? {
                    Some(v) if *seq < record.next_seq => decode("items", v.value())?,
                    _ => return Err(StoreError::NotFound("item")),
                };
                if item.gold.is_some() {
                    continue;
                }
                item.gold = Some(value.clone());
                item.gold_source = Some(source.clone());
                items.insert((project.0, *seq), encode(&item).as_slice())?;
                set.push(*seq);
            }
        }
        txn.commit()?;
        self.generations.bump(project.0);
        Ok(set)
    }

    /// Removes the gold of every item of the project whose gold source is `is_batch`'s, in one
    /// transaction (and their gold-question marks, as [`Store::set_gold`] does). Gold a
    /// reviewer has replaced since is someone else's decision and stays. Returns the seqs
    /// cleared.
    pub fn remove_gold_where(
        &self,
        project: ProjectId,
        is_batch: &dyn Fn(&GoldSource) -> bool,
    ) -> Result<Vec<u64>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut cleared = Vec::new();
        {
            let record = Self::write_project(&txn, project)?;
            let mut items = txn.open_table(ITEMS)?;
            let mut questions = txn.open_table(GOLD_QUESTIONS)?;
            let mut doomed: Vec<(u64, ItemRecord)> = Vec::new();
            for row in items.range((project.0, 0)..(project.0, record.next_seq))? {
                let (k, v) = row?;
                let item: ItemRecord = decode("items", v.value())?;
                if item.gold.is_some() && item.gold_source.as_ref().is_some_and(is_batch) {
                    doomed.push((k.value().1, item));
                }
            }
            for (seq, mut item) in doomed {
                item.gold = None;
                item.gold_source = None;
                items.insert((project.0, seq), encode(&item).as_slice())?;
                questions.remove((project.0, seq))?;
                cleared.push(seq);
            }
        }
        txn.commit()?;
        self.generations.bump(project.0);
        Ok(cleared)
    }
}
