//! The item embeddings cache, keyed by encoder fingerprint: filled as a resumable job step
//! (one transaction per batch, with the job's progress) and read back for training and tests.

use std::collections::HashSet;

use concord_domain::ProjectId;
use concord_ml::Encoder;
use concord_store::JobProgress;

use super::encoders::fingerprint_bytes;
use super::jobs::Stop;
use crate::{Engine, EngineError};

/// Items embedded per batch (and per progress update).
const BATCH: usize = 64;
/// Items per forward pass of the encoder. An exported model predicts with the same size
/// (`portable.rs`), so the same texts in the same order give the very same numbers there.
pub(super) const ENCODER_BATCH: usize = 32;

impl Engine {
    /// Embeds every item that has no embedding from `encoder`, from `cursor` on, storing each
    /// batch with the job's progress.
    pub(super) fn embed_items(
        &self,
        id: u64,
        project: ProjectId,
        cursor: u64,
        encoder: &Encoder,
    ) -> Result<(), Stop> {
        let fp = fingerprint_bytes(encoder);
        let total = self.project_record(project)?.next_seq;
        let have: HashSet<u64> = self
            .store()
            .embedded_seqs(project, &fp)?
            .into_iter()
            .collect();
        self.store().update_job(id, |j| {
            j.total = total;
            j.done = j.done.max(cursor);
        })?;
        let mut next = cursor;
        loop {
            self.check_cancel(id)?;
            let batch = self.store().texts_from(project, next, BATCH)?;
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            let todo: Vec<&(u64, String)> =
                batch.iter().filter(|(s, _)| !have.contains(s)).collect();
            let texts: Vec<&str> = todo.iter().map(|(_, t)| t.as_str()).collect();
            let vectors = if texts.is_empty() {
                Vec::new()
            } else {
                encoder.embed(&texts, ENCODER_BATCH, &mut |_| {})?
            };
            let rows: Vec<(u64, Vec<f32>)> = todo.iter().map(|(s, _)| *s).zip(vectors).collect();
            next = last + 1;
            let progress = JobProgress {
                job: id,
                cursor: next,
                done: next,
            };
            self.store()
                .put_predictions(project, &fp, &rows, &[], Some(progress))?;
        }
        Ok(())
    }

    /// The cached embeddings under `encoder` of `rows`' items, in order.
    pub(super) fn embeddings_of(
        &self,
        project: ProjectId,
        encoder: &Encoder,
        rows: &[(u64, usize)],
    ) -> Result<Vec<Vec<f32>>, Stop> {
        let seqs: Vec<u64> = rows.iter().map(|(seq, _)| *seq).collect();
        let found = self
            .store()
            .embeddings_at(project, &fingerprint_bytes(encoder), &seqs)?;
        seqs.iter()
            .zip(found)
            .map(|(seq, e)| {
                e.ok_or_else(|| {
                    Stop::Failed(EngineError::internal_fault(format!(
                        "item {seq} has no embedding"
                    )))
                })
            })
            .collect()
    }
}
