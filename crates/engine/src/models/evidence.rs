//! Whether a version's suggestions have earned pre-selection, and the figures that say so.
//!
//! A suggestion that is pre-selected is one key press from becoming an answer, so it anchors
//! annotators; one worse than guessing would pull them toward wrong labels. A version's
//! suggestions are therefore pre-selected only when confirmed labels it was not trained on
//! show it beats the obvious baseline:
//!
//! - **Label projects**: [`LabelEvidence`] — its held-out predictions pooled with the live
//!   record (answers given while its suggestions were shown), a 95% Wilson interval of that
//!   accuracy, validated when the lower end is above the rate of always answering the most
//!   common label on the same items. A zero-shot or imported version has no held-out split:
//!   the live record alone is its evidence, and without answers it is not validated.
//! - **Span projects, a trained version with held-out items**: a seeded bootstrap 95%
//!   interval of its strict micro-F1 over its held-out items, validated when the lower end is
//!   above the patterns' strict micro-F1 on the same items (the model must beat the rules it
//!   would replace).
//! - **Span projects, every other version** (a patterns version — it cannot beat itself —,
//!   an imported one, a trained one without held-out items): validated only by the live
//!   record, when the lower end of the 95% Wilson interval of the share of answers that took
//!   its suggestion unchanged is above one half, i.e. annotators kept it as it was on most
//!   items. Without answers it is not validated.
//! - **Relations projects, the relations** (beside the spans' evidence above): a version's
//!   suggested relations are pre-accepted only when the lower end of the 95% Wilson interval
//!   of its relation classifier's pair accuracy on held-out candidate pairs is above the rate
//!   of always answering "no relation" on the same pairs ([`relation_evidence`]).
//!
//! The evidence is cached per version, keyed by the live record it was computed from: a
//! version's held-out figures never change once stored (versions are immutable and never
//! removed), so only a new answer to its suggestions can change its evidence.

use std::collections::HashMap;
use std::sync::Mutex;

use concord_domain::{
    wilson_interval, HeldOutPrediction, HeldOutSpanCounts, Interval, LabelEvidence, ProjectId,
    SuggestionOutcomes,
};
use concord_ml::{span_f1_interval, span_triples_interval, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED};
use concord_store::ModelVersionRecord;
use serde::{Deserialize, Serialize};

use super::process_train_relations::RelationVersion;
use super::span_model::PATTERNS_TRAINER;
use crate::{Engine, EngineError};

/// The share of answers a span version's suggestion must be taken unchanged on (lower end of
/// its interval) when the live record is its only evidence.
const SPAN_LIVE_BASELINE: f64 = 0.5;

/// What a version's evidence measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceMetric {
    /// Label projects: share of held-out items predicted right, pooled with the share of live
    /// answers that took the suggestion.
    Accuracy,
    /// Span projects: strict micro entity F1 on held-out items.
    SpanF1,
    /// Span projects without held-out figures: share of answers that took the suggestion
    /// unchanged.
    Acceptance,
}

/// The evidence on a version's suggestions, with a sentence annotators read beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub metric: EvidenceMetric,
    /// Held-out confirmed items the figure rests on.
    pub held_out_items: u64,
    /// Answers that took the version's suggestion unchanged.
    pub live_accepted: u64,
    /// Answers that changed it.
    pub live_corrected: u64,
    /// The figure (accuracy, F1 or acceptance rate), when there is evidence.
    pub score: Option<f64>,
    /// Its 95% interval.
    pub interval: Option<Interval>,
    /// What the lower end must exceed: the majority-label rate, the patterns' F1, or one half.
    pub baseline: f64,
    /// The baseline in words (`always answering "neutral"`, `the patterns`, ...).
    pub baseline_name: String,
    /// Whether the interval's lower end is above the baseline: the suggestions are
    /// pre-selected.
    pub validated: bool,
    /// One sentence saying whether the suggestions are pre-selected and why.
    pub sentence: String,
}

impl Evidence {
    /// Items (held-out and answered) the evidence rests on.
    pub fn items(&self) -> u64 {
        match self.metric {
            EvidenceMetric::Accuracy => {
                self.held_out_items + self.live_accepted + self.live_corrected
            }
            EvidenceMetric::SpanF1 => self.held_out_items,
            EvidenceMetric::Acceptance => self.live_accepted + self.live_corrected,
        }
    }
}

/// The evidence of a label project's version.
pub(crate) fn label_evidence(
    labels: &[String],
    trainer: &str,
    held_out: &[HeldOutPrediction],
    live: &SuggestionOutcomes,
) -> Evidence {
    let e = LabelEvidence::new(labels, held_out, live);
    let baseline_name = match &e.majority_label {
        Some(label) => format!("always answering {label:?}"),
        None => "always answering the most common label".to_string(),
    };
    let source = match (e.held_out_items > 0, e.live_accepted + e.live_corrected > 0) {
        (true, true) => "held-out and live accuracy",
        (true, false) => "held-out accuracy",
        (false, true) => "accuracy on answers to its suggestions",
        (false, false) => "",
    };
    let sentence = match (e.accuracy(), e.interval) {
        (Some(accuracy), Some(interval)) => figure_sentence(
            e.validated,
            source,
            accuracy,
            interval,
            e.items(),
            "items",
            &baseline_name,
            e.majority_rate,
        ),
        _ => format!(
            "not pre-selected: {}; its suggestions are hints until confirmed labels it was \
             not trained on show it beats {baseline_name}",
            no_evidence_reason(trainer)
        ),
    };
    Evidence {
        metric: EvidenceMetric::Accuracy,
        held_out_items: e.held_out_items,
        live_accepted: e.live_accepted,
        live_corrected: e.live_corrected,
        score: e.accuracy(),
        interval: e.interval,
        baseline: e.majority_rate,
        baseline_name,
        validated: e.validated,
        sentence,
    }
}

/// Why a version has no evidence yet, by how it was made.
fn no_evidence_reason(trainer: &str) -> &'static str {
    match trainer {
        super::ZERO_SHOT_TRAINER => {
            "a zero-shot version (label descriptions only) is measured only by answers to its \
             suggestions, and none are in yet"
        }
        crate::EXTERNAL_TRAINER => {
            "imported suggestions are measured only by answers to them, and none are in yet"
        }
        PATTERNS_TRAINER => {
            "patterns are measured only by answers to their suggestions, and none are in yet"
        }
        _ => "no confirmed items it was not trained on measure it yet",
    }
}

#[allow(clippy::too_many_arguments)]
fn figure_sentence(
    validated: bool,
    what: &str,
    score: f64,
    interval: Interval,
    items: u64,
    unit: &str,
    baseline_name: &str,
    baseline: f64,
) -> String {
    let (verdict, relation) = if validated {
        ("pre-selected", "is above")
    } else {
        ("not pre-selected", "is not above")
    };
    format!(
        "{verdict}: {what} {score:.2} [{:.2}, {:.2}] over {items} {unit} {relation} \
         {baseline_name} ({baseline:.2})",
        interval.low, interval.high
    )
}

/// The evidence of a span project's version: held-out F1 against the patterns when it has
/// held-out counts (and is not the patterns version), else its live acceptance.
pub(crate) fn span_evidence(
    trainer: &str,
    held_out: &[HeldOutSpanCounts],
    live: &SuggestionOutcomes,
) -> Evidence {
    if trainer != PATTERNS_TRAINER && !held_out.is_empty() {
        return span_held_out_evidence(held_out, live);
    }
    let answers = live.answers();
    let interval = wilson_interval(live.accepted, answers);
    let score = live.acceptance_rate();
    let validated = interval.is_some_and(|i| i.low > SPAN_LIVE_BASELINE);
    let baseline_name = "half of the answers".to_string();
    let sentence = match (score, interval) {
        (Some(score), Some(interval)) => figure_sentence(
            validated,
            "taken unchanged on a share of",
            score,
            interval,
            answers,
            "answers",
            &baseline_name,
            SPAN_LIVE_BASELINE,
        ),
        _ => format!(
            "not pre-selected: {}; its spans are hints until most answers keep them unchanged",
            no_evidence_reason(trainer)
        ),
    };
    Evidence {
        metric: EvidenceMetric::Acceptance,
        held_out_items: 0,
        live_accepted: live.accepted,
        live_corrected: live.corrected,
        score,
        interval,
        baseline: SPAN_LIVE_BASELINE,
        baseline_name,
        validated,
        sentence,
    }
}

fn span_held_out_evidence(held_out: &[HeldOutSpanCounts], live: &SuggestionOutcomes) -> Evidence {
    // The same bootstrap (items resampled whole: an item's entities are not independent of
    // each other; fixed seed) as the learning curve's, so a version shows one interval.
    let model = span_f1_interval(held_out, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED);
    let patterns: Vec<[u32; 3]> = held_out.iter().map(|c| c.patterns).collect();
    let baseline = span_triples_interval(&patterns, 0, BOOTSTRAP_SEED).map_or(0.0, |b| b.estimate);
    let (score, interval) = match model {
        Some(b) => (b.estimate, b.interval),
        None => (
            0.0,
            Interval {
                low: 0.0,
                high: 0.0,
            },
        ),
    };
    let n = held_out.len() as u64;
    let validated = interval.low > baseline;
    let baseline_name = "the patterns' F1 on the same items".to_string();
    let sentence = figure_sentence(
        validated,
        "held-out strict F1",
        score,
        interval,
        n,
        "items",
        &baseline_name,
        baseline,
    );
    Evidence {
        metric: EvidenceMetric::SpanF1,
        held_out_items: n,
        live_accepted: live.accepted,
        live_corrected: live.corrected,
        score: Some(score),
        interval: Some(interval),
        baseline,
        baseline_name,
        validated,
        sentence,
    }
}

/// A version's evidence as its project's kind measures it.
pub(crate) fn version_evidence(
    spans: bool,
    record: &ModelVersionRecord,
    live: &SuggestionOutcomes,
) -> Evidence {
    if spans {
        span_evidence(&record.trainer, &record.held_out_spans, live)
    } else {
        label_evidence(&record.labels, &record.trainer, &record.held_out, live)
    }
}

/// Whether a relations version's suggested relations are pre-accepted, and the sentence
/// saying why with the figures.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RelationEvidence {
    pub preselect: bool,
    pub sentence: String,
}

/// The evidence on a version's relation classifier: the 95% Wilson interval of its pair
/// accuracy on held-out candidate pairs (the confirmed spans' pairs), against always
/// answering "no relation" on the same pairs. `None` when the version has no relation
/// classifier.
pub(crate) fn relation_evidence(record: &ModelVersionRecord) -> Option<RelationEvidence> {
    let relations = RelationVersion::of(&record.classifier)?;
    let Some(pairs) = relations.evaluation.map(|e| e.pairs) else {
        return Some(RelationEvidence {
            preselect: false,
            sentence: "Relation suggestions are hints: no confirmed item was held out to test \
                       the relation classifier on."
                .to_string(),
        });
    };
    let (Some(interval), Some(accuracy), Some(baseline)) = (
        wilson_interval(pairs.correct, pairs.pairs),
        pairs.accuracy(),
        pairs.no_relation_rate(),
    ) else {
        return Some(RelationEvidence {
            preselect: false,
            sentence: "Relation suggestions are hints: the held-out items had no candidate \
                       pair of spans to test the relation classifier on."
                .to_string(),
        });
    };
    let preselect = interval.low > baseline;
    let figures = format!(
        "on {} held-out span pairs it named {:.0}% right (95% interval {:.0}–{:.0}%), \
         always answering \"no relation\" {:.0}%",
        pairs.pairs,
        100.0 * accuracy,
        100.0 * interval.low,
        100.0 * interval.high,
        100.0 * baseline
    );
    let sentence = if preselect {
        format!("Relation suggestions are pre-accepted: {figures}.")
    } else {
        format!(
            "Relation suggestions are hints: {figures}, and the interval's lower end is not above that."
        )
    };
    Some(RelationEvidence {
        preselect,
        sentence,
    })
}

/// What a version's suggestion carries to the annotation page: its evidence and the sentence
/// on how it was validated, and for a relations version the evidence on its relations.
#[derive(Debug, Clone)]
pub(crate) struct CachedEvidence {
    pub evidence: Evidence,
    pub validation: String,
    pub relations: Option<RelationEvidence>,
}

/// Evidence per (project, version), with the live record it was computed from.
#[derive(Default)]
pub(crate) struct EvidenceCache {
    entries: Mutex<HashMap<(ProjectId, u64), (SuggestionOutcomes, CachedEvidence)>>,
}

impl Engine {
    /// The evidence on one version's suggestions (none when the version does not exist),
    /// computed again only after an answer to its suggestions changed its live record.
    pub(crate) fn suggestion_evidence(
        &self,
        project: ProjectId,
        version: u64,
        spans: bool,
    ) -> Result<Option<CachedEvidence>, EngineError> {
        let live = self
            .store()
            .suggestion_outcomes(project)?
            .remove(&version)
            .unwrap_or_default();
        let cache = &self.inner.evidence_cache;
        if let Ok(entries) = cache.entries.lock() {
            if let Some((seen, cached)) = entries.get(&(project, version)) {
                if *seen == live {
                    return Ok(Some(cached.clone()));
                }
            }
        }
        let Some(record) = self.store().model_version(project, version)? else {
            return Ok(None);
        };
        let cached = CachedEvidence {
            evidence: version_evidence(spans, &record, &live),
            validation: super::describe_validation(&record),
            relations: relation_evidence(&record),
        };
        if let Ok(mut entries) = cache.entries.lock() {
            entries.insert((project, version), (live, cached.clone()));
        }
        Ok(Some(cached))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["negative".into(), "neutral".into(), "positive".into()]
    }

    #[test]
    fn a_zero_shot_version_without_answers_is_a_hint() {
        let e = label_evidence(&labels(), "zero_shot", &[], &SuggestionOutcomes::default());
        assert!(!e.validated);
        assert!(
            e.sentence.starts_with("not pre-selected: a zero-shot"),
            "{}",
            e.sentence
        );
    }

    #[test]
    fn the_sentence_names_the_majority_label_and_the_figures() {
        // 48 of 100 held-out items are "neutral"; the version is right on 52.
        let mut held_out = Vec::new();
        for i in 0..100u32 {
            let gold = if i < 48 {
                1
            } else if i < 76 {
                0
            } else {
                2
            };
            let predicted = if i < 52 { gold } else { (gold + 1) % 3 };
            held_out.push(HeldOutPrediction {
                gold,
                predicted,
                confidence: 0.7,
            });
        }
        let e = label_evidence(&labels(), "head", &held_out, &SuggestionOutcomes::default());
        assert!(!e.validated);
        assert!(
            e.sentence.starts_with(
                "not pre-selected: held-out accuracy 0.52 [0.42, 0.62] over 100 items is not \
                 above always answering \"neutral\" (0.48)"
            ),
            "{}",
            e.sentence
        );
    }

    fn counts(model: [u32; 3], patterns: [u32; 3], n: usize) -> Vec<HeldOutSpanCounts> {
        vec![HeldOutSpanCounts { model, patterns }; n]
    }

    #[test]
    fn a_span_model_must_beat_the_patterns_on_its_held_out_items() {
        // The model finds 2 of 3 entities with 1 false positive (F1 0.67); the patterns 1 of
        // 3 (F1 0.4).
        let mut better = counts([2, 1, 1], [1, 1, 2], 30);
        let e = span_evidence("head", &better, &SuggestionOutcomes::default());
        assert!(e.validated, "{e:?}");
        assert!((e.score.unwrap_or(0.0) - 2.0 / 3.0).abs() < 1e-9);
        // Mixed with items where it does worse than the patterns, the interval reaches below.
        better.extend(counts([0, 2, 3], [3, 0, 0], 30));
        let e = span_evidence("head", &better, &SuggestionOutcomes::default());
        assert!(!e.validated, "{e:?}");
        assert!(e.sentence.contains("the patterns"), "{}", e.sentence);
    }

    #[test]
    fn patterns_are_validated_only_by_answers_kept_unchanged() {
        let held_out = counts([3, 0, 0], [3, 0, 0], 50);
        let none = SuggestionOutcomes::default();
        assert!(!span_evidence(PATTERNS_TRAINER, &held_out, &none).validated);
        let mostly_kept = SuggestionOutcomes {
            accepted: 40,
            corrected: 10,
            ..Default::default()
        };
        assert!(span_evidence(PATTERNS_TRAINER, &[], &mostly_kept).validated);
        let mostly_changed = SuggestionOutcomes {
            accepted: 20,
            corrected: 30,
            ..Default::default()
        };
        assert!(!span_evidence(PATTERNS_TRAINER, &[], &mostly_changed).validated);
    }
}
