//! Where an item stands between its first answer and its final (gold) label: the rule that
//! decides which items a reviewer must look at and which are settled without one.

use serde::{Deserialize, Serialize};

use crate::{AnnotationValue, ProjectSettings, UserId};

/// Who gave an item its gold label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GoldSource {
    /// It came with the imported item.
    Import,
    /// A reviewer chose it.
    Review { reviewer: UserId, at_ms: u64 },
    /// Every annotator gave it and the project accepts unanimous items. Derived from the
    /// answers each time, never stored: changing the setting changes the outcome at once.
    Unanimous,
    /// A reviewer accepted a validated version's suggestions at or above a confidence, in one
    /// batch (`reviewer`, `at_ms` name the batch: undoing it removes exactly these). Training,
    /// evaluation and label-error detection never count such gold as a confirmed label: a
    /// model would be graded on its own answers.
    BulkAccept {
        version: u64,
        /// The lowest confidence accepted, in percent.
        min_confidence: u8,
        reviewer: UserId,
        at_ms: u64,
    },
}

impl GoldSource {
    /// Whether this gold is a human judgement that can train and grade models (a model's own
    /// bulk-accepted suggestions are not).
    pub fn is_confirmed_by_people(&self) -> bool {
        !matches!(self, GoldSource::BulkAccept { .. })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            GoldSource::Import => "import",
            GoldSource::Review { .. } => "review",
            GoldSource::Unanimous => "unanimous",
            GoldSource::BulkAccept { .. } => "bulk_accept",
        }
    }
}

/// An item's place in the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    /// No answers yet.
    Unannotated,
    /// Fewer answers than the overlap asks for (a reviewer waits for the rest).
    InProgress,
    /// All answers are in and they differ.
    Disagreement,
    /// All answers are in and agree, but the project has every item reviewed.
    Unanimous,
    /// All answers are in and agree, and the project accepts that as gold (overlap ≥ 2).
    Accepted,
    /// Overlap 1 and answered: one answer has nothing to be compared with, so it stands.
    Answered,
    /// The item has an explicit gold label (imported or chosen by a reviewer).
    Resolved,
}

impl ReviewState {
    /// Whether the item belongs in the review queue.
    pub fn needs_review(self) -> bool {
        matches!(self, ReviewState::Disagreement | ReviewState::Unanimous)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReviewState::Unannotated => "unannotated",
            ReviewState::InProgress => "in_progress",
            ReviewState::Disagreement => "disagreement",
            ReviewState::Unanimous => "unanimous",
            ReviewState::Accepted => "accepted",
            ReviewState::Answered => "answered",
            ReviewState::Resolved => "resolved",
        }
    }
}

/// The state of an item with `answers` (one per annotator) under `settings`.
pub fn review_state(
    settings: &ProjectSettings,
    has_gold: bool,
    answers: &[&AnnotationValue],
) -> ReviewState {
    if has_gold {
        return ReviewState::Resolved;
    }
    let Some(first) = answers.first() else {
        return ReviewState::Unannotated;
    };
    if answers.len() < settings.overlap.max(1) as usize {
        return ReviewState::InProgress;
    }
    if answers.iter().any(|a| a != first) {
        return ReviewState::Disagreement;
    }
    match (settings.auto_accept_unanimous, settings.overlap >= 2) {
        (false, _) => ReviewState::Unanimous,
        (true, true) => ReviewState::Accepted,
        (true, false) => ReviewState::Answered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(overlap: u32, auto_accept: bool, has_gold: bool, answers: &[&str], want: ReviewState) {
        let settings = ProjectSettings {
            overlap,
            auto_accept_unanimous: auto_accept,
            ..ProjectSettings::default()
        };
        let values: Vec<AnnotationValue> = answers
            .iter()
            .map(|a| AnnotationValue::labels(a.split('+').filter(|s| !s.is_empty())))
            .collect();
        let refs: Vec<&AnnotationValue> = values.iter().collect();
        assert_eq!(
            review_state(&settings, has_gold, &refs),
            want,
            "overlap {overlap}, auto-accept {auto_accept}, gold {has_gold}, answers {answers:?}"
        );
    }

    #[test]
    fn states() {
        use ReviewState::*;
        check(3, true, false, &[], Unannotated);
        check(3, true, false, &["a", "b"], InProgress);
        check(3, true, false, &["a", "a", "b"], Disagreement);
        check(3, true, false, &["a", "a", "a"], Accepted);
        check(3, false, false, &["a", "a", "a"], Unanimous);
        check(2, true, false, &["a+b", "b+a"], Disagreement);
        check(2, true, false, &["a+b", "a+b"], Accepted);
        check(1, true, false, &["a"], Answered);
        check(1, false, false, &["a"], Unanimous);
        check(3, true, true, &["a", "b", "c"], Resolved);
        check(3, true, true, &[], Resolved);
        // More answers than the overlap (it was lowered, or gold questions): still compared.
        check(2, true, false, &["a", "a", "b"], Disagreement);
    }

    #[test]
    fn only_disagreements_and_unreviewed_unanimous_items_need_review() {
        use ReviewState::*;
        let all = [
            Unannotated,
            InProgress,
            Disagreement,
            Unanimous,
            Accepted,
            Answered,
            Resolved,
        ];
        let queued: Vec<_> = all.into_iter().filter(|s| s.needs_review()).collect();
        assert_eq!(queued, [Disagreement, Unanimous]);
    }
}
