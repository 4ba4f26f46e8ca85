//! The annotation queue: which item an annotator sees next, and the single writer thread that
//! stores answers. Submits from every request are collected into one redb transaction (group
//! commit), so a burst of annotators costs one durable commit, and each submit is acknowledged
//! only after the commit that holds it.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use concord_domain::{
    AnnotationSource, AnnotationValue, ProjectId, Role, SuggestedRelation, SuggestedSpan, Token,
};
use concord_store::{AnnotationWrite, Store, StoreError, WriteOutcome};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::assignment::ProjectAssignment;
use crate::models::Evidence;
use crate::{now_ms, Engine, EngineError, Principal};
/// Most answers one group commit takes.
const MAX_GROUP: usize = 1024;
/// Longest time an annotator may report for one item (guards the totals against bad clients).
const MAX_TIME_SPENT_MS: u64 = 24 * 3600 * 1000;

/// An item as the annotation page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueItem {
    pub id: String,
    pub text: String,
    pub meta: Map<String, Value>,
    /// Span projects: the item's word tokens (code point offsets, fixed at import), which
    /// spans snap to; empty for other projects.
    #[serde(default)]
    pub tokens: Vec<Token>,
    /// The caller's earlier answer, when they go back to an item.
    pub mine: Option<AnnotationValue>,
    /// How many other annotators chose each label so far, in schema order; only in projects
    /// that are not blind, never on gold questions, and never in span projects (whose answers
    /// are spans, not item labels).
    pub others: Option<Vec<LabelCount>>,
    /// The active model's suggestion; never in blind projects or on gold questions.
    pub suggestion: Option<Suggestion>,
    /// Why active learning put this item early in the queue, when it did.
    pub reason: Option<String>,
}

/// A model's suggestion as an annotator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// Classification: the suggested label(s); empty in span projects.
    pub labels: Vec<String>,
    /// Classification: the confidence of the suggestion; span projects: the item-level
    /// certainty (each span carries its own confidence).
    pub confidence: f32,
    pub model_version: u64,
    /// Span projects: the suggested spans (code point offsets), each with its confidence.
    #[serde(default)]
    pub spans: Vec<SuggestedSpan>,
    /// Relations projects: the suggested relations between those spans (by index into
    /// `spans`), each with its confidence.
    #[serde(default)]
    pub relations: Vec<SuggestedRelation>,
    /// Relations projects: whether the page pre-accepts the suggested relations (only once the
    /// version's relation classifier is validated on held-out items, above always answering
    /// "no relation"); otherwise they are hints.
    #[serde(default)]
    pub relations_preselect: bool,
    /// Relations projects: how the relation classifier was validated, in one sentence with the
    /// figures (empty when the version has none).
    #[serde(default)]
    pub relations_validation: String,
    /// What the confidences rest on: how the version was validated (held-out figures, rule
    /// precision, or that it was not), shown beside the suggestion.
    #[serde(default)]
    pub validation: String,
    /// Whether the page pre-selects the suggestion (labels selected, spans at or above the
    /// accept threshold accepted): only once its version is validated on confirmed labels it
    /// was not trained on. Otherwise it is a hint the annotator must take by hand.
    #[serde(default)]
    pub preselect: bool,
    /// The figures `preselect` rests on, with a sentence saying why (none when the version
    /// no longer exists).
    #[serde(default)]
    pub evidence: Option<Evidence>,
}

impl From<concord_store::SuggestionRecord> for Suggestion {
    fn from(s: concord_store::SuggestionRecord) -> Self {
        Suggestion {
            labels: s.labels,
            confidence: s.confidence,
            model_version: s.version,
            spans: s.spans,
            relations: s.relations,
            relations_preselect: false,
            relations_validation: String::new(),
            validation: String::new(),
            preselect: false,
            evidence: None,
        }
    }
}

impl Engine {
    /// The stored suggestion for an item, with how its version was validated and whether it
    /// has earned pre-selection.
    pub(crate) fn suggestion_for(
        &self,
        project: ProjectId,
        seq: u64,
    ) -> Result<Option<Suggestion>, EngineError> {
        let Some(record) = self.store().suggestion(project, seq)? else {
            return Ok(None);
        };
        let spans = self.project_record(project)?.spec.task.is_spans();
        let Some(cached) = self.suggestion_evidence(project, record.version, spans)? else {
            return Ok(Some(Suggestion {
                validation: "its model version no longer exists".to_string(),
                ..Suggestion::from(record)
            }));
        };
        let (relations_preselect, relations_validation) = match cached.relations {
            Some(r) => (r.preselect, r.sentence),
            None => (false, String::new()),
        };
        Ok(Some(Suggestion {
            validation: cached.validation,
            relations_preselect,
            relations_validation,
            preselect: cached.evidence.validated,
            evidence: Some(cached.evidence),
            ..Suggestion::from(record)
        }))
    }
}

/// A label and how many answers chose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCount {
    pub label: String,
    pub count: u32,
}

/// An annotator's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub item_id: String,
    /// Classification answers.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Span answers (code point offsets); an empty list says "no entities".
    #[serde(default)]
    pub spans: Vec<concord_domain::Span>,
    /// Relations answers: relations between `spans`, by index into them as sent.
    #[serde(default)]
    pub relations: Vec<concord_domain::Relation>,
    #[serde(default)]
    pub time_spent_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubmitOutcome {
    Created,
    Updated,
    Unchanged,
}

struct Pending {
    write: AnnotationWrite,
    reply: SyncSender<Result<WriteOutcome, StoreError>>,
}

/// One project's assignment state, loaded on first use.
type AssignmentSlot = Arc<Mutex<Option<ProjectAssignment>>>;

pub(crate) struct Queue {
    sender: Mutex<Option<Sender<Pending>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    assignments: Mutex<HashMap<ProjectId, AssignmentSlot>>,
}

impl Queue {
    pub(crate) fn start(store: Arc<Store>) -> Queue {
        let (sender, receiver) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("concord-writer".into())
            .spawn(move || write_loop(store, receiver))
            .ok();
        Queue {
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(writer),
            assignments: Mutex::default(),
        }
    }

    fn submit(&self, write: AnnotationWrite) -> Result<WriteOutcome, EngineError> {
        let (reply, answer) = mpsc::sync_channel(1);
        {
            let sender = self
                .sender
                .lock()
                .map_err(|_| EngineError::internal_fault("writer lock poisoned"))?;
            let sender = sender
                .as_ref()
                .ok_or_else(|| EngineError::Unavailable("shutting down".into()))?;
            sender
                .send(Pending { write, reply })
                .map_err(|_| EngineError::internal_fault("writer thread stopped"))?;
        }
        let result = answer
            .recv()
            .map_err(|_| EngineError::internal_fault("writer thread stopped"))?;
        Ok(result?)
    }
}

impl Queue {
    /// Whether the writer thread is running and still takes answers.
    pub(crate) fn writer_alive(&self) -> bool {
        let open = self.sender.lock().map(|s| s.is_some()).unwrap_or(false);
        let running = self
            .writer
            .lock()
            .map(|w| w.as_ref().is_some_and(|h| !h.is_finished()))
            .unwrap_or(false);
        open && running
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it has stored what it already received.
        if let Ok(mut s) = self.sender.lock() {
            s.take();
        }
        if let Some(handle) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
        }
    }
}

fn write_loop(store: Arc<Store>, receiver: Receiver<Pending>) {
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(p) => group.push(p),
                Err(_) => break,
            }
        }
        let writes: Vec<AnnotationWrite> = group.iter().map(|p| p.write.clone()).collect();
        match store.put_annotations(&writes) {
            Ok(outcomes) => {
                for (p, o) in group.into_iter().zip(outcomes) {
                    let _ = p.reply.send(Ok(o));
                }
            }
            Err(_) if group.len() > 1 => {
                // One bad answer must not fail its neighbours: store them one by one.
                for p in group {
                    let r = store
                        .put_annotations(std::slice::from_ref(&p.write))
                        .map(|o| o[0]);
                    let _ = p.reply.send(r);
                }
            }
            Err(e) => {
                if let Some(p) = group.pop() {
                    let _ = p.reply.send(Err(e));
                }
            }
        }
    }
}

impl Engine {
    /// The text of the item at `seq` (which must exist).
    pub(crate) fn item_text(&self, project: ProjectId, seq: u64) -> Result<String, EngineError> {
        let item = self.store().item(project, seq)?;
        item.map(|i| i.text).ok_or_else(|| {
            EngineError::internal_fault(format!("item {seq} of project {project} missing"))
        })
    }

    pub(crate) fn seq_of(&self, project: ProjectId, item_id: &str) -> Result<u64, EngineError> {
        self.store()
            .item_seq(project, item_id)?
            .ok_or_else(|| EngineError::NotFound(format!("item {item_id:?}")))
    }

    /// The next item for the caller, reserved for them. `exclude` lists items the client
    /// already shows or has prefetched. `None` when nothing is left for them.
    pub fn next_item(
        &self,
        actor: &Principal,
        project: ProjectId,
        exclude: &[String],
    ) -> Result<Option<QueueItem>, EngineError> {
        self.authorize(actor, project, Role::Annotator)?;
        let excluded: Vec<u64> = exclude
            .iter()
            .filter_map(|id| self.store().item_seq(project, id).ok().flatten())
            .collect();
        let next = self.with_assignment(project, |a| a.next_for(actor.id, &excluded, now_ms()))?;
        match next {
            Some(seq) => self.queue_item(actor, project, seq).map(Some),
            None => Ok(None),
        }
    }

    /// One item by id with the caller's earlier answer (to go back and change it).
    pub fn item_for_annotation(
        &self,
        actor: &Principal,
        project: ProjectId,
        item_id: &str,
    ) -> Result<QueueItem, EngineError> {
        self.authorize(actor, project, Role::Annotator)?;
        let seq = self.seq_of(project, item_id)?;
        self.queue_item(actor, project, seq)
    }

    fn queue_item(
        &self,
        actor: &Principal,
        project: ProjectId,
        seq: u64,
    ) -> Result<QueueItem, EngineError> {
        let item = self
            .store()
            .item(project, seq)?
            .ok_or_else(|| EngineError::NotFound("item".into()))?;
        let spec = self.project_record(project)?.spec;
        let answers = self.store().annotations_of_item(project, seq)?;
        let mine = answers
            .iter()
            .find(|(user, _)| *user == actor.id)
            .map(|(_, a)| a.value.clone());
        let hidden = spec.settings.blind || self.store().gold_questions(project)?.contains(&seq);
        let suggestion = if hidden {
            None
        } else {
            self.suggestion_for(project, seq)?
        };
        // A span answer has no item labels to count.
        let others = if hidden || spec.task.is_spans() {
            None
        } else {
            let counts = spec
                .labels
                .iter()
                .map(|l| LabelCount {
                    label: l.name.clone(),
                    count: answers
                        .iter()
                        .filter(|(user, a)| *user != actor.id && a.value.labels.contains(&l.name))
                        .count() as u32,
                })
                .collect();
            Some(counts)
        };
        let reason = self.store().queue_order(project)?.and_then(|o| {
            let at = o.seqs.iter().position(|s| *s == seq)?;
            o.reasons.get(at).cloned()
        });
        let tokens = if spec.task.is_spans() {
            item.tokens().into_owned()
        } else {
            Vec::new()
        };
        Ok(QueueItem {
            id: item.id,
            text: item.text,
            meta: item.meta,
            tokens,
            mine,
            others,
            suggestion,
            reason,
        })
    }

    /// Stores the caller's answer; durable when this returns. Repeating the same submit is
    /// harmless ([`SubmitOutcome::Unchanged`]).
    pub fn submit(
        &self,
        actor: &Principal,
        project: ProjectId,
        submission: Submission,
    ) -> Result<SubmitOutcome, EngineError> {
        self.authorize(actor, project, Role::Annotator)?;
        let spec = self.project_record(project)?.spec;
        let seq = self.seq_of(project, &submission.item_id)?;
        let text = self.item_text(project, seq)?;
        let value = AnnotationValue {
            labels: submission.labels,
            spans: submission.spans,
            relations: submission.relations,
        }
        .validate(&spec, &text)?;
        let source = if spec.task.is_spans() {
            self.span_answer_source(project, seq, spec.settings.blind, &value)
        } else {
            self.answer_source(project, seq, spec.settings.blind, &value.labels)
        };
        // An answer given against a pre-selected suggestion is anchored by it: it does not
        // count as evidence for that suggestion's version (the store adds its other rules).
        let as_live_evidence = match &source {
            AnnotationSource::ModelAccepted { model_version }
            | AnnotationSource::ModelCorrected { model_version } => self
                .suggestion_evidence(project, *model_version, spec.task.is_spans())?
                .is_some_and(|cached| !cached.evidence.validated),
            AnnotationSource::Human | AnnotationSource::Import => false,
        };
        let outcome = self.inner.queue.submit(AnnotationWrite {
            project,
            seq,
            user: actor.id,
            value,
            source,
            time_spent_ms: submission.time_spent_ms.min(MAX_TIME_SPENT_MS),
            now_ms: now_ms(),
            as_live_evidence,
        })?;
        self.update_assignment(project, |a| a.answered(actor.id, seq));
        Ok(match outcome {
            WriteOutcome::Created => SubmitOutcome::Created,
            WriteOutcome::Updated => SubmitOutcome::Updated,
            WriteOutcome::Unchanged => SubmitOutcome::Unchanged,
        })
    }

    /// How a span answer relates to the suggestion its annotator was shown: accepted when the
    /// answer is exactly the suggested spans, and in relations projects exactly the suggested
    /// relations too (the labels-only comparison would call every span answer accepted, both
    /// having no item labels).
    fn span_answer_source(
        &self,
        project: ProjectId,
        seq: u64,
        blind: bool,
        value: &AnnotationValue,
    ) -> AnnotationSource {
        let spans = &value.spans;
        if blind {
            return AnnotationSource::Human;
        }
        match self.store().suggestion(project, seq) {
            Ok(Some(s)) => {
                let mut suggested: Vec<(u32, u32, &str)> = s
                    .spans
                    .iter()
                    .map(|x| (x.start, x.end, x.label.as_str()))
                    .collect();
                suggested.sort_unstable();
                suggested.dedup();
                // `spans` is canonical (sorted by start, end, label; no repeats).
                let same = suggested.len() == spans.len()
                    && suggested
                        .iter()
                        .zip(spans)
                        .all(|(a, b)| *a == (b.start, b.end, b.label.as_str()))
                    && same_relations(&s, value);
                if same {
                    AnnotationSource::ModelAccepted {
                        model_version: s.version,
                    }
                } else {
                    AnnotationSource::ModelCorrected {
                        model_version: s.version,
                    }
                }
            }
            _ => AnnotationSource::Human,
        }
    }

    /// The caller passes on an item: it leaves their queue (until [`Engine::reset_skips`]).
    pub fn skip(
        &self,
        actor: &Principal,
        project: ProjectId,
        item_id: &str,
    ) -> Result<(), EngineError> {
        self.authorize(actor, project, Role::Annotator)?;
        let seq = self.seq_of(project, item_id)?;
        self.store().skip(project, actor.id, seq)?;
        self.update_assignment(project, |a| a.skipped(actor.id, seq));
        Ok(())
    }

    /// Brings the caller's skipped items back into their queue; returns how many.
    pub fn reset_skips(&self, actor: &Principal, project: ProjectId) -> Result<u64, EngineError> {
        self.authorize(actor, project, Role::Annotator)?;
        let cleared = self.store().clear_skips(project, actor.id)?;
        self.update_assignment(project, |a| a.clear_skips(actor.id));
        Ok(cleared)
    }

    fn assignment_slot(&self, project: ProjectId) -> Result<AssignmentSlot, EngineError> {
        let mut map = self
            .inner
            .queue
            .assignments
            .lock()
            .map_err(|_| EngineError::internal_fault("assignments lock poisoned"))?;
        Ok(map.entry(project).or_default().clone())
    }

    /// The project's slot if some call has created it (nothing to update otherwise).
    fn existing_assignment_slot(
        &self,
        project: ProjectId,
    ) -> Result<Option<AssignmentSlot>, EngineError> {
        let map = self
            .inner
            .queue
            .assignments
            .lock()
            .map_err(|_| EngineError::internal_fault("assignments lock poisoned"))?;
        Ok(map.get(&project).cloned())
    }

    /// Runs `f` on the project's assignment state, loading it from the store on first use.
    fn with_assignment<R>(
        &self,
        project: ProjectId,
        f: impl FnOnce(&mut ProjectAssignment) -> R,
    ) -> Result<R, EngineError> {
        let slot = self.assignment_slot(project)?;
        let mut guard = slot
            .lock()
            .map_err(|_| EngineError::internal_fault("assignment lock poisoned"))?;
        let state = match guard.take() {
            Some(state) => state,
            None => self.load_assignment(project)?,
        };
        let state = guard.insert(state);
        Ok(f(state))
    }

    /// Applies a change the store already holds to the in-memory state, if it is loaded (an
    /// unloaded state reads the change from the store when it loads).
    pub(crate) fn update_assignment(
        &self,
        project: ProjectId,
        f: impl FnOnce(&mut ProjectAssignment),
    ) {
        if let Ok(Some(slot)) = self.existing_assignment_slot(project) {
            if let Ok(mut guard) = slot.lock() {
                if let Some(state) = guard.as_mut() {
                    f(state);
                }
            }
        }
    }

    /// Rebuilds a project's loaded assignment state from the store, keeping live leases; for
    /// writes that bypass submit and skip (imports, settings).
    pub(crate) fn reload_assignment(&self, project: ProjectId) -> Result<(), EngineError> {
        let Some(slot) = self.existing_assignment_slot(project)? else {
            return Ok(());
        };
        let mut guard = slot
            .lock()
            .map_err(|_| EngineError::internal_fault("assignment lock poisoned"))?;
        if let Some(older) = guard.take() {
            let mut fresh = self.load_assignment(project)?;
            fresh.adopt_leases(older);
            *guard = Some(fresh);
        }
        Ok(())
    }

    fn load_assignment(&self, project: ProjectId) -> Result<ProjectAssignment, EngineError> {
        let mut state = ProjectAssignment::new(0, 1);
        let mut skips = Vec::new();
        let record = self
            .store()
            .assignment_snapshot(
                project,
                &mut |seq, user| state.load_answer(user, seq),
                &mut |user, seq| skips.push((user, seq)),
            )?
            .ok_or_else(|| EngineError::NotFound("project".into()))?;
        for (user, seq) in skips {
            state.load_skip(user, seq);
        }
        state.set_items(record.next_seq);
        state.set_overlap(record.spec.settings.overlap);
        state.set_gold_every(record.spec.settings.gold_every);
        for seq in self.store().gold_questions(project)? {
            state.set_gold_question(seq, true);
        }
        if let Some(order) = self.store().queue_order(project)? {
            state.set_priority(order.seqs);
        }
        Ok(state)
    }
}

/// Whether `answer` has exactly the relations `suggestion` suggested (as triples: both ends and
/// the type).
fn same_relations(suggestion: &concord_store::SuggestionRecord, answer: &AnnotationValue) -> bool {
    let spans: Vec<concord_domain::Span> = suggestion
        .spans
        .iter()
        .map(|s| concord_domain::Span::new(s.start, s.end, &s.label))
        .collect();
    let suggested = AnnotationValue {
        labels: Vec::new(),
        spans,
        relations: suggestion
            .relations
            .iter()
            .map(|r| concord_domain::Relation::new(r.from, r.to, &r.label))
            .collect(),
    };
    suggested.relation_triples() == answer.relation_triples()
}
