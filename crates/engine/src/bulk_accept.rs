//! Bulk acceptance: a reviewer takes a validated version's suggestions at or above a
//! confidence as gold for every item no one has answered or settled, after seeing how often
//! the version is wrong on that slice (estimated on its held-out predictions at the same
//! confidence). The gold records the batch (`GoldSource::BulkAccept`: version, threshold,
//! reviewer, time), so export says where it came from, training and evaluation never count it
//! as a confirmed label, and the batch can be undone exactly.
//!
//! The slice is the items without any answer and without gold: items people are answering or
//! that wait for review stay with people.

use std::collections::BTreeMap;

use concord_domain::{
    wilson_interval, AnnotationValue, GoldSource, Interval, ProjectId, Role, UserId,
};
use serde::{Deserialize, Serialize};

use crate::models::Evidence;
use crate::{now_ms, Engine, EngineError, Principal};

/// What accepting a version's suggestions at a threshold would do, and how often that slice is
/// likely wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkAcceptPreview {
    pub version: u64,
    /// The lowest confidence taken, in percent.
    pub min_confidence: u8,
    /// Items the acceptance would set gold on.
    pub items: u64,
    /// Held-out predictions of the version at or above the threshold.
    pub held_out_items: u64,
    /// How many of those were wrong.
    pub held_out_errors: u64,
    /// `held_out_errors / held_out_items`, when there are any.
    pub error_rate: Option<f64>,
    /// Its 95% Wilson interval.
    pub error_interval: Option<Interval>,
    /// The version's evidence (it must be validated).
    pub evidence: Evidence,
}

/// One bulk acceptance as stored in its items' gold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkAcceptBatch {
    pub version: u64,
    pub min_confidence: u8,
    /// The reviewer's account id (what undo names the batch by, with `at_ms`).
    pub reviewer: u64,
    /// Their account name.
    pub reviewer_name: String,
    pub at_ms: u64,
    /// Items whose gold is still from this batch.
    pub items: u64,
}

/// The slice a bulk acceptance takes: each item's seq and the suggested labels.
struct Slice {
    gold: Vec<(u64, Vec<String>)>,
    preview: BulkAcceptPreview,
}

/// The fewest held-out items at or above the threshold that a bulk acceptance needs, so
/// that the error rate it is decided on is a measurement.
const MIN_HELD_OUT_ITEMS: u64 = 10;

impl Engine {
    /// What accepting `version`'s suggestions at `min_confidence_pct` or more would set, and
    /// that slice's error rate on held-out labels. Refused unless the version is the active
    /// one and validated. Reviewers and admins; label projects.
    pub fn bulk_accept_preview(
        &self,
        actor: &Principal,
        project: ProjectId,
        version: u64,
        min_confidence_pct: u8,
    ) -> Result<BulkAcceptPreview, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        Ok(self
            .bulk_slice(project, version, min_confidence_pct)?
            .preview)
    }

    /// Sets the suggestions of the preview's slice as gold in one transaction, recorded as
    /// this caller's batch. Returns the batch.
    pub fn bulk_accept(
        &self,
        actor: &Principal,
        project: ProjectId,
        version: u64,
        min_confidence_pct: u8,
    ) -> Result<BulkAcceptBatch, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        let spec = self.project_record(project)?.spec;
        let slice = self.bulk_slice(project, version, min_confidence_pct)?;
        // The reviewer decides on the slice's error rate measured on held-out labels: without
        // enough of them (a version validated only by answers) there is nothing to decide on.
        if slice.preview.held_out_items < MIN_HELD_OUT_ITEMS {
            return Err(EngineError::Conflict(format!(
                "the error rate at {min_confidence_pct}% confidence rests on {} held-out items; at least {MIN_HELD_OUT_ITEMS} are needed to accept suggestions as gold",
                slice.preview.held_out_items
            )));
        }
        let mut gold = Vec::with_capacity(slice.gold.len());
        for (seq, labels) in slice.gold {
            let text = self.item_text(project, seq)?;
            let value = AnnotationValue {
                labels,
                spans: Vec::new(),
                relations: Vec::new(),
            }
            .validate(&spec, &text)?;
            gold.push((seq, value));
        }
        // A batch is named by its reviewer and time: two batches of one reviewer never share
        // a millisecond, so an undo removes exactly one.
        let last = self
            .bulk_accept_batches(actor, project)?
            .iter()
            .filter(|b| b.reviewer == actor.id.0)
            .map(|b| b.at_ms)
            .max();
        let at_ms = now_ms().max(last.map_or(0, |t| t + 1));
        let source = GoldSource::BulkAccept {
            version,
            min_confidence: min_confidence_pct,
            reviewer: actor.id,
            at_ms,
        };
        let set = self
            .store()
            .set_gold_many(project, version, &gold, &source)?;
        tracing::info!(project = %project, version, min_confidence = min_confidence_pct, items = set.len(), reviewer = %actor.name, "suggestions bulk-accepted as gold");
        Ok(BulkAcceptBatch {
            version,
            min_confidence: min_confidence_pct,
            reviewer: actor.id.0,
            reviewer_name: actor.name.clone(),
            at_ms,
            items: set.len() as u64,
        })
    }

    /// Removes the gold of one bulk acceptance (named by its reviewer and time) from every item
    /// where it is still in force, in one transaction. Returns how many items it cleared.
    /// Reviewers and admins.
    pub fn undo_bulk_accept(
        &self,
        actor: &Principal,
        project: ProjectId,
        reviewer: UserId,
        at_ms: u64,
    ) -> Result<u64, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        let is_batch = |source: &GoldSource| {
            matches!(source, GoldSource::BulkAccept { reviewer: r, at_ms: t, .. }
                if *r == reviewer && *t == at_ms)
        };
        let cleared = self.store().remove_gold_where(project, &is_batch)?;
        if cleared.is_empty() {
            return Err(EngineError::NotFound("bulk acceptance".into()));
        }
        for &seq in &cleared {
            self.update_assignment(project, |a| a.set_gold_question(seq, false));
        }
        tracing::info!(project = %project, items = cleared.len(), reviewer = %actor.name, "bulk acceptance undone");
        Ok(cleared.len() as u64)
    }

    /// The project's bulk acceptances whose gold is still in force somewhere, newest first.
    /// Reviewers and admins.
    pub fn bulk_accept_batches(
        &self,
        actor: &Principal,
        project: ProjectId,
    ) -> Result<Vec<BulkAcceptBatch>, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        let mut batches: BTreeMap<(u64, u64), BulkAcceptBatch> = BTreeMap::new();
        self.store()
            .for_each_item::<EngineError>(project, |_, item, _| {
                if let Some(GoldSource::BulkAccept {
                    version,
                    min_confidence,
                    reviewer,
                    at_ms,
                }) = item.gold_source
                {
                    batches
                        .entry((at_ms, reviewer.0))
                        .or_insert(BulkAcceptBatch {
                            version,
                            min_confidence,
                            reviewer: reviewer.0,
                            reviewer_name: String::new(),
                            at_ms,
                            items: 0,
                        })
                        .items += 1;
                }
                Ok(())
            })?;
        let names = self.user_names()?;
        Ok(batches
            .into_values()
            .rev()
            .map(|mut b| {
                b.reviewer_name = names
                    .get(&UserId(b.reviewer))
                    .cloned()
                    .unwrap_or_else(|| format!("account {}", b.reviewer));
                b
            })
            .collect())
    }

    /// The items a bulk acceptance would take and its preview; refuses versions that are not
    /// active and validated, span projects, and thresholds above 100.
    fn bulk_slice(
        &self,
        project: ProjectId,
        version: u64,
        min_confidence_pct: u8,
    ) -> Result<Slice, EngineError> {
        if min_confidence_pct > 100 {
            return Err(EngineError::Invalid(
                "the confidence threshold is a percentage, 0 to 100".into(),
            ));
        }
        let project_record = self.project_record(project)?;
        let spec = project_record.spec;
        if spec.task.is_spans() {
            return Err(EngineError::Invalid(
                "bulk acceptance takes item labels; span projects review spans item by item".into(),
            ));
        }
        if project_record.active_model != Some(version) {
            return Err(EngineError::Conflict(format!(
                "version {version} is not the active version: only the suggestions annotators \
                 see now can be accepted"
            )));
        }
        let record = self
            .store()
            .model_version(project, version)?
            .ok_or_else(|| EngineError::NotFound("model version".into()))?;
        let evidence = self
            .suggestion_evidence(project, version, false)?
            .ok_or_else(|| EngineError::NotFound("model version".into()))?
            .evidence;
        if !evidence.validated {
            return Err(EngineError::Conflict(format!(
                "version {version} is not validated, so its suggestions cannot become gold: {}",
                evidence.sentence
            )));
        }
        let threshold = f32::from(min_confidence_pct) / 100.0;
        let mut candidates: BTreeMap<u64, Vec<String>> = self
            .store()
            .suggestions(project)?
            .into_iter()
            .filter(|(_, s)| s.version == version && s.confidence >= threshold)
            .map(|(seq, s)| (seq, s.labels))
            .collect();
        // Items anyone answered or that have gold (of any source) stay with people.
        self.store()
            .for_each_item::<EngineError>(project, |seq, item, answers| {
                if item.gold.is_some() || !answers.is_empty() {
                    candidates.remove(&seq);
                }
                Ok(())
            })?;
        let gold: Vec<(u64, Vec<String>)> = candidates
            .into_iter()
            .filter(|(_, labels)| !labels.is_empty())
            .collect();
        let sure: Vec<_> = record
            .held_out
            .iter()
            .filter(|p| p.confidence >= threshold)
            .collect();
        let held_out_items = sure.len() as u64;
        let held_out_errors = sure.iter().filter(|p| p.gold != p.predicted).count() as u64;
        Ok(Slice {
            preview: BulkAcceptPreview {
                version,
                min_confidence: min_confidence_pct,
                items: gold.len() as u64,
                held_out_items,
                held_out_errors,
                error_rate: (held_out_items > 0)
                    .then(|| held_out_errors as f64 / held_out_items as f64),
                error_interval: wilson_interval(held_out_errors, held_out_items),
                evidence,
            },
            gold,
        })
    }
}
