//! Model versions, cached embeddings, suggestions and background jobs.

use concord_domain::{ProjectId, SuggestionOutcomes};
use redb::{ReadableDatabase, ReadableTable};

use crate::records::{decode, encode};
use crate::schema::*;
use crate::{
    JobProgress, JobRecord, ModelVersionRecord, QueueOrderRecord, Store, StoreError,
    SuggestionRecord,
};

fn embedding_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn embedding_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn fingerprint_key(fingerprint: &[u8; 8]) -> u64 {
    u64::from_be_bytes(*fingerprint)
}

impl Store {
    /// Stores a new model version (numbered after the project's last) and, with `activate`,
    /// makes it the one whose suggestions annotators see — in one transaction.
    pub fn create_model_version(
        &self,
        project: ProjectId,
        record: &ModelVersionRecord,
        activate: bool,
    ) -> Result<u64, StoreError> {
        self.store_model_version(project, record.clone(), |_| activate)
            .map(|(version, _)| version)
    }

    /// Stores a new version that replaces the active one only if that is still `incumbent`,
    /// the version it was compared with; if someone activated another version in the
    /// meantime, the new one is stored inactive and its comparison says so. One transaction.
    /// Returns the version and whether it became the active one.
    pub fn create_model_version_replacing(
        &self,
        project: ProjectId,
        record: &ModelVersionRecord,
        incumbent: Option<u64>,
    ) -> Result<(u64, bool), StoreError> {
        self.store_model_version(project, record.clone(), |active| active == incumbent)
    }

    fn store_model_version(
        &self,
        project: ProjectId,
        mut record: ModelVersionRecord,
        activate_when: impl FnOnce(Option<u64>) -> bool,
    ) -> Result<(u64, bool), StoreError> {
        let txn = self.db.begin_write()?;
        let (version, activate) = {
            let mut project_record = Self::write_project(&txn, project)?;
            let activate = activate_when(project_record.active_model);
            if !activate {
                if let Some(comparison) = record.comparison.as_mut() {
                    comparison.activated = false;
                }
            }
            let record = &record;
            let mut versions = txn.open_table(MODEL_VERSIONS)?;
            let last = versions
                .range((project.0, 0)..=(project.0, u64::MAX))?
                .next_back()
                .transpose()?
                .map_or(0, |(k, _)| k.value().1);
            let version = last + 1;
            versions.insert((project.0, version), encode(record).as_slice())?;
            if activate {
                project_record.active_model = Some(version);
                txn.open_table(PROJECTS)?
                    .insert(project.0, encode(&project_record).as_slice())?;
            }
            (version, activate)
        };
        txn.commit()?;
        self.generations.bump(project.0);
        Ok((version, activate))
    }

    pub fn model_versions(
        &self,
        project: ProjectId,
    ) -> Result<Vec<(u64, ModelVersionRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MODEL_VERSIONS)?;
        let mut out = Vec::new();
        for row in table.range((project.0, 0)..=(project.0, u64::MAX))? {
            let (k, v) = row?;
            out.push((k.value().1, decode("model_versions", v.value())?));
        }
        Ok(out)
    }

    pub fn model_version(
        &self,
        project: ProjectId,
        version: u64,
    ) -> Result<Option<ModelVersionRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MODEL_VERSIONS)?;
        match table.get((project.0, version))? {
            Some(v) => Ok(Some(decode("model_versions", v.value())?)),
            None => Ok(None),
        }
    }

    /// The live record of every version of a project whose suggestions have been answered:
    /// how many answers took each version's suggestion unchanged and how many corrected it.
    pub fn suggestion_outcomes(
        &self,
        project: ProjectId,
    ) -> Result<std::collections::BTreeMap<u64, SuggestionOutcomes>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SUGGESTION_OUTCOMES)?;
        let mut out = std::collections::BTreeMap::new();
        for row in table.range((project.0, 0)..=(project.0, u64::MAX))? {
            let (k, v) = row?;
            out.insert(k.value().1, decode("suggestion_outcomes", v.value())?);
        }
        Ok(out)
    }

    /// Makes `version` the project's active model (it must exist), or none.
    pub fn set_active_model(
        &self,
        project: ProjectId,
        version: Option<u64>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut record = Self::write_project(&txn, project)?;
            if let Some(v) = version {
                if txn
                    .open_table(MODEL_VERSIONS)?
                    .get((project.0, v))?
                    .is_none()
                {
                    return Err(StoreError::NotFound("model version"));
                }
            }
            record.active_model = version;
            txn.open_table(PROJECTS)?
                .insert(project.0, encode(&record).as_slice())?;
        }
        txn.commit()?;
        self.generations.bump(project.0);
        Ok(())
    }

    /// Up to `limit` cached embeddings of a project's items under `fingerprint`, by seq from
    /// `from_seq`; items without one from that encoder are absent.
    pub fn embeddings(
        &self,
        project: ProjectId,
        fingerprint: &[u8; 8],
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<f32>)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(EMBEDDINGS)?;
        let fp = fingerprint_key(fingerprint);
        let mut out = Vec::new();
        for row in table.range((project.0, fp, from_seq)..=(project.0, fp, u64::MAX))? {
            if out.len() >= limit {
                break;
            }
            let (k, v) = row?;
            out.push((k.value().2, embedding_values(v.value())));
        }
        Ok(out)
    }

    /// The cached embeddings under `fingerprint` of the items `seqs`, in that order (`None`
    /// where an item has none from that encoder): point reads, for a training or test set.
    pub fn embeddings_at(
        &self,
        project: ProjectId,
        fingerprint: &[u8; 8],
        seqs: &[u64],
    ) -> Result<Vec<Option<Vec<f32>>>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(EMBEDDINGS)?;
        let fp = fingerprint_key(fingerprint);
        seqs.iter()
            .map(|seq| {
                Ok(table
                    .get((project.0, fp, *seq))?
                    .map(|v| embedding_values(v.value())))
            })
            .collect()
    }

    /// Stores a batch of item embeddings and suggestions, and the job's progress, in one
    /// transaction: a job resumed after a crash continues exactly after the last batch stored.
    pub fn put_predictions(
        &self,
        project: ProjectId,
        fingerprint: &[u8; 8],
        embeddings: &[(u64, Vec<f32>)],
        suggestions: &[(u64, SuggestionRecord)],
        job: Option<JobProgress>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(EMBEDDINGS)?;
            for (seq, values) in embeddings {
                table.insert(
                    (project.0, fingerprint_key(fingerprint), *seq),
                    embedding_bytes(values).as_slice(),
                )?;
            }
            let mut table = txn.open_table(SUGGESTIONS)?;
            for (seq, s) in suggestions {
                table.insert((project.0, *seq), encode(s).as_slice())?;
            }
            if let Some(progress) = job {
                let mut jobs = txn.open_table(JOBS)?;
                let mut record: JobRecord = match jobs.get(progress.job)? {
                    Some(v) => decode("jobs", v.value())?,
                    None => return Err(StoreError::NotFound("job")),
                };
                record.cursor = progress.cursor;
                record.done = progress.done;
                jobs.insert(progress.job, encode(&record).as_slice())?;
            }
        }
        txn.commit()?;
        self.generations.bump(project.0);
        Ok(())
    }

    pub fn suggestion(
        &self,
        project: ProjectId,
        seq: u64,
    ) -> Result<Option<SuggestionRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SUGGESTIONS)?;
        match table.get((project.0, seq))? {
            Some(v) => Ok(Some(decode("suggestions", v.value())?)),
            None => Ok(None),
        }
    }

    /// Which items of a project have an embedding under `fingerprint`.
    pub fn embedded_seqs(
        &self,
        project: ProjectId,
        fingerprint: &[u8; 8],
    ) -> Result<Vec<u64>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(EMBEDDINGS)?;
        let fp = fingerprint_key(fingerprint);
        let mut out = Vec::new();
        for row in table.range((project.0, fp, 0)..=(project.0, fp, u64::MAX))? {
            out.push(row?.0.value().2);
        }
        Ok(out)
    }

    /// Every suggestion of a project, by seq (the export and the queue order read them).
    pub fn suggestions(
        &self,
        project: ProjectId,
    ) -> Result<Vec<(u64, SuggestionRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(SUGGESTIONS)?;
        let mut out = Vec::new();
        for row in table.range((project.0, 0)..=(project.0, u64::MAX))? {
            let (k, v) = row?;
            out.push((k.value().1, decode("suggestions", v.value())?));
        }
        Ok(out)
    }

    /// Up to `limit` visible items' texts from `from_seq` on.
    pub fn texts_from(
        &self,
        project: ProjectId,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(record) = Self::read_project(&txn, project)? else {
            return Err(StoreError::NotFound("project"));
        };
        let items = txn.open_table(ITEMS)?;
        let mut out = Vec::new();
        for row in items
            .range((project.0, from_seq)..(project.0, record.next_seq))?
            .take(limit)
        {
            let (k, v) = row?;
            let key: crate::records::ItemKey = decode("items", v.value())?;
            out.push((k.value().1, key.text.into_owned()));
        }
        Ok(out)
    }

    pub fn put_queue_order(
        &self,
        project: ProjectId,
        order: &QueueOrderRecord,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write()?;
        txn.open_table(QUEUE_ORDERS)?
            .insert(project.0, encode(order).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    pub fn queue_order(&self, project: ProjectId) -> Result<Option<QueueOrderRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(QUEUE_ORDERS)?;
        match table.get(project.0)? {
            Some(v) => Ok(Some(decode("queue_orders", v.value())?)),
            None => Ok(None),
        }
    }

    // ---- jobs ------------------------------------------------------------------------------

    pub fn create_job(&self, record: &JobRecord) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let id = {
            let id = Self::next_id(&mut txn.open_table(META)?, "next_job")?;
            txn.open_table(JOBS)?
                .insert(id, encode(record).as_slice())?;
            id
        };
        txn.commit()?;
        Ok(id)
    }

    /// Stores `record` unless a job of its project and kind is already queued, checked in the
    /// same transaction so that two concurrent requests cannot both queue one. `Ok(Ok(id))` is
    /// the new job, `Ok(Err(id))` the queued one found.
    pub fn create_job_unless_queued(
        &self,
        record: &JobRecord,
    ) -> Result<Result<u64, u64>, StoreError> {
        let txn = self.db.begin_write()?;
        let outcome = {
            let mut jobs = txn.open_table(JOBS)?;
            let mut queued = None;
            for row in jobs.iter()? {
                let (k, v) = row?;
                let job: JobRecord = decode("jobs", v.value())?;
                if job.state == concord_domain::JobState::Queued
                    && job.project == record.project
                    && job.kind == record.kind
                {
                    queued = Some(k.value());
                    break;
                }
            }
            match queued {
                Some(id) => Err(id),
                None => {
                    let id = Self::next_id(&mut txn.open_table(META)?, "next_job")?;
                    jobs.insert(id, encode(record).as_slice())?;
                    Ok(id)
                }
            }
        };
        if outcome.is_ok() {
            txn.commit()?;
        }
        // Otherwise the transaction is dropped: nothing was written.
        Ok(outcome)
    }

    pub fn job(&self, id: u64) -> Result<Option<JobRecord>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(JOBS)?;
        match table.get(id)? {
            Some(v) => Ok(Some(decode("jobs", v.value())?)),
            None => Ok(None),
        }
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Result<Vec<(u64, JobRecord)>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(JOBS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((k.value(), decode("jobs", v.value())?));
        }
        Ok(out)
    }

    /// Changes a job in one read-modify-write transaction; returns it as stored.
    pub fn update_job(
        &self,
        id: u64,
        change: impl FnOnce(&mut JobRecord),
    ) -> Result<JobRecord, StoreError> {
        let txn = self.db.begin_write()?;
        let record = {
            let mut jobs = txn.open_table(JOBS)?;
            let mut record: JobRecord = match jobs.get(id)? {
                Some(v) => decode("jobs", v.value())?,
                None => return Err(StoreError::NotFound("job")),
            };
            change(&mut record);
            jobs.insert(id, encode(&record).as_slice())?;
            record
        };
        txn.commit()?;
        Ok(record)
    }
}
