//! The review queue and gold labels. An item needs review when all its answers are in and
//! they differ (or, with auto-accept off, whenever its answers are all in); a reviewer sees
//! every annotator's answer side by side and sets the gold label, which export and training
//! use. Reviewers can also turn an item with a gold label into a gold question, which the
//! assignment then mixes into annotators' queues to measure their accuracy.
//!
//! Span projects work the same way: span answers are canonical once validated (sorted, no
//! repeats), so equal span sets settle an item as equal labels do, and the reviewer starts
//! from the spans most annotators marked. Relations projects add each annotator's relations:
//! validated answers are canonical with their relations too (re-indexed to the sorted spans),
//! so only identical spans and relations are unanimous, and the reviewer starts from
//! `aggregate_relations` (majority spans, and the majority relations whose two ends survive).
//!
//! Finding the next item to review walks annotation rows only (from a cursor), reading an
//! item row just for the candidates, so its cost follows the answers, not the items.

use std::collections::HashMap;
use std::ops::ControlFlow;

use concord_domain::{
    aggregate_labels, aggregate_relations, aggregate_spans, review_state, Aggregate,
    AnnotationSource, AnnotationValue, GoldSource, ProjectId, ProjectSpec, Relation, ReviewState,
    Role, Span, Token, UserId,
};
use concord_store::AnnotationRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{now_ms, Engine, EngineError, Principal};

/// One annotator's answer as the reviewer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewAnswer {
    pub annotator: String,
    pub labels: Vec<String>,
    /// Span projects: the annotator's spans (code point offsets, by start, end and label);
    /// empty for "no entities" and in other projects.
    #[serde(default)]
    pub spans: Vec<Span>,
    /// Relations projects: the annotator's relations, `from`/`to` indexing this answer's
    /// `spans`; empty in other projects.
    #[serde(default)]
    pub relations: Vec<Relation>,
    pub source: AnnotationSource,
    pub time_spent_ms: u64,
    pub updated_ms: u64,
}

/// An item on the review page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub id: String,
    pub text: String,
    pub meta: Map<String, Value>,
    /// Span projects: the item's word tokens, which the reviewer's spans snap to; empty for
    /// other projects.
    #[serde(default)]
    pub tokens: Vec<Token>,
    pub state: ReviewState,
    /// Sorted by annotator name.
    pub answers: Vec<ReviewAnswer>,
    /// The majority answer, offered as the reviewer's starting point (empty on a tie).
    pub proposal: Vec<String>,
    /// Span projects: the spans more than half of the answers contain, the reviewer's
    /// starting point; empty in other projects.
    #[serde(default)]
    pub proposal_spans: Vec<Span>,
    /// Relations projects: the relations more than half of the answers contain whose two ends
    /// are in `proposal_spans` (indexes into them); empty in other projects.
    #[serde(default)]
    pub proposal_relations: Vec<Relation>,
    /// The gold label in force (explicit, or the unanimous answer when accepted).
    pub gold: Option<Vec<String>>,
    /// Span projects: the gold spans in force (explicit, or the unanimous answer when
    /// accepted); `Some(vec![])` is a settled "no entities". `None` in other projects.
    #[serde(default)]
    pub gold_spans: Option<Vec<Span>>,
    /// Relations projects: the gold relations in force (indexes into `gold_spans`); `None`
    /// without gold and in other projects.
    #[serde(default)]
    pub gold_relations: Option<Vec<Relation>>,
    pub gold_source: Option<GoldSource>,
    pub gold_question: bool,
    /// The active model's suggestion, shown beside the annotators' answers.
    pub suggestion: Option<crate::Suggestion>,
}

/// Where a project's items stand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewSummary {
    pub items: u64,
    pub unannotated: u64,
    pub in_progress: u64,
    /// Waiting for a reviewer: disagreements plus unreviewed unanimous items.
    pub needs_review: u64,
    pub disagreements: u64,
    /// Unanimous items accepted as gold without review.
    pub accepted: u64,
    /// Answered by one annotator with overlap 1 (the answer stands).
    pub answered: u64,
    pub gold_by_review: u64,
    pub gold_imported: u64,
    pub gold_questions: u64,
}

/// An item's seq and every answer it has.
type ItemAnswers = (u64, Vec<(UserId, AnnotationRecord)>);

/// The gold label in force for an item and where it came from: explicit gold wins, else the
/// unanimous answer of an accepted item.
pub(crate) fn effective_gold(
    spec: &ProjectSpec,
    gold: Option<&AnnotationValue>,
    source: Option<GoldSource>,
    answers: &[(UserId, AnnotationRecord)],
) -> Option<(AnnotationValue, GoldSource)> {
    if let (Some(g), Some(s)) = (gold, source) {
        return Some((g.clone(), s));
    }
    let values: Vec<&AnnotationValue> = answers.iter().map(|(_, a)| &a.value).collect();
    match review_state(&spec.settings, false, &values) {
        ReviewState::Accepted => values
            .first()
            .map(|v| ((*v).clone(), GoldSource::Unanimous)),
        _ => None,
    }
}

impl Engine {
    /// The next item waiting for review after `after` (an item id; wraps around to the
    /// start), or `None` when the queue is empty. Reviewers and admins.
    pub fn review_next(
        &self,
        actor: &Principal,
        project: ProjectId,
        after: Option<&str>,
    ) -> Result<Option<ReviewItem>, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        let spec = self.project_record(project)?.spec;
        let start = match after {
            Some(id) => self.store().item_seq(project, id)?.map_or(0, |s| s + 1),
            None => 0,
        };
        let mut found = self.find_review(project, &spec, start)?;
        if found.is_none() && start > 0 {
            found = self.find_review(project, &spec, 0)?;
        }
        match found {
            Some((seq, answers)) => self.review_view(project, &spec, seq, answers).map(Some),
            None => Ok(None),
        }
    }

    fn find_review(
        &self,
        project: ProjectId,
        spec: &ProjectSpec,
        from: u64,
    ) -> Result<Option<ItemAnswers>, EngineError> {
        let mut found = None;
        let mut failed = None;
        self.store()
            .for_each_answered(project, from, &mut |seq, answers| {
                let values: Vec<&AnnotationValue> = answers.iter().map(|(_, a)| &a.value).collect();
                if !review_state(&spec.settings, false, &values).needs_review() {
                    return ControlFlow::Continue(());
                }
                // Only now is the item row worth reading: does it already have gold?
                match self.store().item(project, seq) {
                    Ok(Some(item)) if item.gold.is_some() => ControlFlow::Continue(()),
                    Ok(Some(_)) => {
                        found = Some((seq, answers));
                        ControlFlow::Break(())
                    }
                    Ok(None) => ControlFlow::Continue(()),
                    Err(e) => {
                        failed = Some(e);
                        ControlFlow::Break(())
                    }
                }
            })?;
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(found),
        }
    }

    /// One item as the review page shows it, whatever its state (to revisit or re-resolve).
    pub fn review_item(
        &self,
        actor: &Principal,
        project: ProjectId,
        item_id: &str,
    ) -> Result<ReviewItem, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        let spec = self.project_record(project)?.spec;
        let seq = self.seq_of(project, item_id)?;
        let answers = self.store().annotations_of_item(project, seq)?;
        self.review_view(project, &spec, seq, answers)
    }

    fn review_view(
        &self,
        project: ProjectId,
        spec: &ProjectSpec,
        seq: u64,
        answers: Vec<(UserId, AnnotationRecord)>,
    ) -> Result<ReviewItem, EngineError> {
        let item = self
            .store()
            .item(project, seq)?
            .ok_or_else(|| EngineError::NotFound("item".into()))?;
        let values: Vec<&AnnotationValue> = answers.iter().map(|(_, a)| &a.value).collect();
        let state = review_state(&spec.settings, item.gold.is_some(), &values);
        let label_lists: Vec<&[String]> = values.iter().map(|v| v.labels.as_slice()).collect();
        let order: Vec<String> = spec.labels.iter().map(|l| l.name.clone()).collect();
        let proposal = match aggregate_labels(spec.task, &label_lists, &order) {
            Aggregate::Agreed { labels } => labels,
            Aggregate::Tie { .. } | Aggregate::None => Vec::new(),
        };
        let is_spans = spec.task.is_spans();
        let has_relations = spec.task.has_relations();
        let (proposal_spans, proposal_relations) = if has_relations {
            let proposal = aggregate_relations(&values);
            (proposal.spans, proposal.relations)
        } else if is_spans {
            let span_lists: Vec<&[Span]> = values.iter().map(|v| v.spans.as_slice()).collect();
            (aggregate_spans(&span_lists), Vec::new())
        } else {
            (Vec::new(), Vec::new())
        };
        let tokens = if is_spans {
            item.tokens().into_owned()
        } else {
            Vec::new()
        };
        let gold = effective_gold(spec, item.gold.as_ref(), item.gold_source(), &answers);
        let names = self.user_names()?;
        let mut shown: Vec<ReviewAnswer> = answers
            .into_iter()
            .map(|(user, a)| ReviewAnswer {
                annotator: names
                    .get(&user)
                    .cloned()
                    .unwrap_or_else(|| format!("user {}", user.0)),
                labels: a.value.labels,
                spans: a.value.spans,
                relations: a.value.relations,
                source: a.source,
                time_spent_ms: a.time_spent_ms,
                updated_ms: a.updated_ms,
            })
            .collect();
        shown.sort_by(|a, b| a.annotator.cmp(&b.annotator));
        let gold_question = self.store().gold_questions(project)?.contains(&seq);
        let suggestion = self.suggestion_for(project, seq)?;
        let gold_source = gold.as_ref().map(|(_, s)| s.clone());
        let (gold, gold_spans, gold_relations) = match gold {
            Some((g, _)) if has_relations => (Some(g.labels), Some(g.spans), Some(g.relations)),
            Some((g, _)) if is_spans => (Some(g.labels), Some(g.spans), None),
            Some((g, _)) => (Some(g.labels), None, None),
            None => (None, None, None),
        };
        Ok(ReviewItem {
            id: item.id,
            text: item.text,
            meta: item.meta,
            tokens,
            state,
            answers: shown,
            proposal,
            proposal_spans,
            proposal_relations,
            gold_source,
            gold,
            gold_spans,
            gold_relations,
            gold_question,
            suggestion,
        })
    }

    pub(crate) fn user_names(&self) -> Result<HashMap<UserId, String>, EngineError> {
        Ok(self
            .store()
            .users()?
            .into_iter()
            .map(|(id, u)| (id, u.name))
            .collect())
    }

    /// Sets an item's gold answer as the caller's review decision — `labels` in classification
    /// projects, `spans` (code point offsets; empty for "no entities") in span projects, the
    /// other left empty — and optionally makes it a gold question (or stops it being one).
    /// Checked like an annotator's answer, against the item's text. Reviewers and admins.
    /// Relations projects set spans and relations together with [`Engine::resolve_value`].
    pub fn resolve(
        &self,
        actor: &Principal,
        project: ProjectId,
        item_id: &str,
        labels: Vec<String>,
        spans: Vec<Span>,
        gold_question: Option<bool>,
    ) -> Result<(), EngineError> {
        let value = AnnotationValue {
            labels,
            spans,
            relations: Vec::new(),
        };
        self.resolve_value(actor, project, item_id, value, gold_question)
    }

    /// Sets an item's gold answer — any answer shape, relations included (`from`/`to` index
    /// the spans as sent) — as the caller's review decision, and optionally makes it a gold
    /// question (or stops it being one). Checked exactly like an annotator's answer against
    /// the project's schema and the item's text, so a relation whose ends are missing, whose
    /// type is unknown or whose head or tail type is not allowed is refused and nothing is
    /// written; the stored gold is canonical. Reviewers and admins.
    pub fn resolve_value(
        &self,
        actor: &Principal,
        project: ProjectId,
        item_id: &str,
        value: AnnotationValue,
        gold_question: Option<bool>,
    ) -> Result<(), EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        let spec = self.project_record(project)?.spec;
        let seq = self.seq_of(project, item_id)?;
        let text = self.item_text(project, seq)?;
        let value = value.validate(&spec, &text)?;
        let source = GoldSource::Review {
            reviewer: actor.id,
            at_ms: now_ms(),
        };
        self.store().set_gold(project, seq, Some((value, source)))?;
        tracing::info!(project = %project, item = item_id, reviewer = %actor.name, "gold label set");
        if let Some(on) = gold_question {
            self.mark_gold_question(project, seq, on)?;
        }
        Ok(())
    }

    /// Makes an item with a gold label a gold question, or a regular item again.
    pub fn set_gold_question(
        &self,
        actor: &Principal,
        project: ProjectId,
        item_id: &str,
        on: bool,
    ) -> Result<(), EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        let seq = self.seq_of(project, item_id)?;
        self.mark_gold_question(project, seq, on)
    }

    fn mark_gold_question(
        &self,
        project: ProjectId,
        seq: u64,
        on: bool,
    ) -> Result<(), EngineError> {
        self.store().set_gold_question(project, seq, on)?;
        self.update_assignment(project, |a| a.set_gold_question(seq, on));
        Ok(())
    }

    /// Counts of items per workflow state (one pass over the project).
    pub fn review_summary(
        &self,
        actor: &Principal,
        project: ProjectId,
    ) -> Result<ReviewSummary, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        let spec = self.project_record(project)?.spec;
        let mut s = ReviewSummary {
            gold_questions: self.store().gold_questions(project)?.len() as u64,
            ..ReviewSummary::default()
        };
        self.store()
            .for_each_item::<EngineError>(project, |_, item, answers| {
                s.items += 1;
                match item.gold_source() {
                    Some(GoldSource::Review { .. }) => s.gold_by_review += 1,
                    Some(_) => s.gold_imported += 1,
                    None => {}
                }
                let values: Vec<&AnnotationValue> = answers.iter().map(|(_, a)| &a.value).collect();
                match review_state(&spec.settings, item.gold.is_some(), &values) {
                    ReviewState::Unannotated => s.unannotated += 1,
                    ReviewState::InProgress => s.in_progress += 1,
                    ReviewState::Disagreement => {
                        s.needs_review += 1;
                        s.disagreements += 1;
                    }
                    ReviewState::Unanimous => s.needs_review += 1,
                    ReviewState::Accepted => s.accepted += 1,
                    ReviewState::Answered => s.answered += 1,
                    ReviewState::Resolved => {}
                }
                Ok(())
            })?;
        Ok(s)
    }
}
