//! What a model version's suggestions have been measured on, and the rule that decides whether
//! they have earned pre-selection. A suggestion worse than guessing, pre-selected, pulls
//! annotators toward wrong labels; so a version's suggestions are pre-selected only when the
//! lower end of a 95% interval of its accuracy — on confirmed labels it was not trained on —
//! lies above the rate of always answering the most common label.

use serde::{Deserialize, Serialize};

/// One held-out confirmed item as a label version predicted it (class indices in the
/// version's label order). Kept with the version so that its figures can be recomputed on any
/// slice (a confidence threshold) and resampled (bootstrap intervals).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HeldOutPrediction {
    pub gold: u32,
    pub predicted: u32,
    /// The version's probability of `predicted`.
    pub confidence: f32,
}

/// One held-out confirmed item of a span project: strict matches of the version's spans
/// (true positives, false positives, false negatives), and the same for the project's patterns
/// on that item (the baseline a span model must beat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldOutSpanCounts {
    pub model: [u32; 3],
    pub patterns: [u32; 3],
}

/// How annotators answered a version's suggestions while they were shown (the live record):
/// counted when an answer is stored, per version.
///
/// `accepted`, `corrected` and `answered` are evidence for pre-selection and count only
/// answers free of anchoring (an item's first answer, without gold, given against a hint);
/// `shown` counts every answer given against the suggestion, pre-selected or not, which is
/// what the project page reports as the live acceptance rate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuggestionOutcomes {
    /// Answers equal to the suggestion.
    pub accepted: u64,
    /// Answers that differ from it.
    pub corrected: u64,
    /// Label projects: how many of these answers gave each label (first label of the
    /// answer), for the majority-label baseline of the live record.
    #[serde(default)]
    pub answered: std::collections::BTreeMap<String, u64>,
    /// Every stored answer given against the suggestion (anchored ones included): display
    /// only, never evidence. Databases from before this field start it at zero.
    #[serde(default)]
    pub shown: ShownOutcomes,
}

/// Every stored answer given against a version's suggestion, however it was shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShownOutcomes {
    pub accepted: u64,
    pub corrected: u64,
}

impl ShownOutcomes {
    /// The share of these answers that took the suggestion unchanged, when there are any.
    pub fn acceptance_rate(&self) -> Option<f64> {
        let answers = self.accepted + self.corrected;
        (answers > 0).then(|| self.accepted as f64 / answers as f64)
    }
}

impl SuggestionOutcomes {
    /// Answers counted.
    pub fn answers(&self) -> u64 {
        self.accepted + self.corrected
    }

    /// The share of answers that took the suggestion unchanged, when there are any.
    pub fn acceptance_rate(&self) -> Option<f64> {
        (self.answers() > 0).then(|| self.accepted as f64 / self.answers() as f64)
    }
}

/// A two-sided 95% interval of a proportion.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The Wilson score interval (95%) of `successes` out of `trials`; `None` without trials.
/// Unlike the normal approximation it stays inside [0, 1] and is honest for small counts.
pub fn wilson_interval(successes: u64, trials: u64) -> Option<Interval> {
    if trials == 0 {
        return None;
    }
    const Z: f64 = 1.959_963_984_540_054;
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    Some(Interval {
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    })
}

/// The evidence on a label version's suggestions: its held-out split (confirmed labels it
/// was not trained on) pooled with the live record of answers given while they were shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelEvidence {
    pub held_out_items: u64,
    pub held_out_correct: u64,
    pub live_accepted: u64,
    pub live_corrected: u64,
    /// Always answering the most common label, on the same pooled items.
    pub majority_rate: f64,
    /// That label (the first in label order on a tie; none without items).
    pub majority_label: Option<String>,
    /// The 95% interval of the pooled accuracy (none without evidence).
    pub interval: Option<Interval>,
    /// Whether the interval's lower end is above `majority_rate`.
    pub validated: bool,
}

impl LabelEvidence {
    /// Pools `held_out` (the version's held-out predictions) with `live`, with the majority
    /// rate over the same items: held-out gold classes and live answers together.
    pub fn new(
        labels: &[String],
        held_out: &[HeldOutPrediction],
        live: &SuggestionOutcomes,
    ) -> LabelEvidence {
        let mut per_label = vec![0u64; labels.len()];
        for p in held_out {
            if let Some(n) = per_label.get_mut(p.gold as usize) {
                *n += 1;
            }
        }
        let mut other_answers = 0u64;
        for (label, n) in &live.answered {
            match labels.iter().position(|l| l == label) {
                Some(i) => per_label[i] += n,
                None => other_answers += n,
            }
        }
        let held_out_correct = held_out.iter().filter(|p| p.gold == p.predicted).count() as u64;
        let correct = held_out_correct + live.accepted;
        let items = held_out.len() as u64 + live.answers();
        let majority = per_label.iter().copied().max().unwrap_or(0);
        let majority_label = per_label
            .iter()
            .position(|&n| n == majority && n > 0)
            .and_then(|i| labels.get(i).cloned());
        let counted = per_label.iter().sum::<u64>() + other_answers;
        let majority_rate = if counted == 0 {
            0.0
        } else {
            majority as f64 / counted as f64
        };
        let interval = wilson_interval(correct, items);
        LabelEvidence {
            held_out_items: held_out.len() as u64,
            held_out_correct,
            live_accepted: live.accepted,
            live_corrected: live.corrected,
            majority_rate,
            majority_label,
            interval,
            validated: interval.is_some_and(|i| i.low > majority_rate),
        }
    }

    /// Items the evidence rests on.
    pub fn items(&self) -> u64 {
        self.held_out_items + self.live_accepted + self.live_corrected
    }

    /// Pooled accuracy, when there is evidence.
    pub fn accuracy(&self) -> Option<f64> {
        let items = self.items();
        (items > 0).then(|| (self.held_out_correct + self.live_accepted) as f64 / items as f64)
    }
}

/// What an automatically trained version was compared on before it could replace the active
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComparisonMetric {
    /// Label projects: accuracy on the held-out split.
    Accuracy,
    /// Span projects: strict micro entity F1 on the held-out split.
    SpanF1,
}

/// A candidate version against the version that was active when it was trained, on the same
/// held-out items (neither was trained on them). Stored with the candidate and shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionComparison {
    pub metric: ComparisonMetric,
    /// The version active when the candidate was trained (none: there was none).
    pub incumbent: Option<u64>,
    pub items: u64,
    pub candidate: f64,
    /// The incumbent's figure on the same items (none without an incumbent that can predict).
    pub incumbent_score: Option<f64>,
    /// Whether the candidate became the active version (it was not worse).
    pub activated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(successes: u64, trials: u64, low: f64, high: f64) {
        let i = wilson_interval(successes, trials).expect("trials");
        assert!((i.low - low).abs() < 5e-4, "{successes}/{trials}: {i:?}");
        assert!((i.high - high).abs() < 5e-4, "{successes}/{trials}: {i:?}");
    }

    #[test]
    fn wilson_matches_published_values() {
        // statsmodels proportion_confint(k, n, method="wilson").
        check(5, 10, 0.2366, 0.7634);
        check(0, 10, 0.0, 0.2775);
        check(10, 10, 0.7225, 1.0);
        check(81, 100, 0.7222, 0.8749);
        assert_eq!(wilson_interval(0, 0), None);
    }

    fn predictions(pairs: &[(u32, u32)]) -> Vec<HeldOutPrediction> {
        pairs
            .iter()
            .map(|&(gold, predicted)| HeldOutPrediction {
                gold,
                predicted,
                confidence: 0.9,
            })
            .collect()
    }

    #[test]
    fn a_version_below_the_majority_rate_is_not_validated() {
        let labels = vec!["a".to_string(), "b".to_string()];
        // 60 of 100 held-out items are "a"; the version is right on 62: not clearly better
        // than always answering "a".
        let mut pairs = vec![(0, 0); 50];
        pairs.extend(vec![(0, 1); 10]);
        pairs.extend(vec![(1, 1); 12]);
        pairs.extend(vec![(1, 0); 28]);
        let e = LabelEvidence::new(
            &labels,
            &predictions(&pairs),
            &SuggestionOutcomes::default(),
        );
        assert!((e.majority_rate - 0.6).abs() < 1e-9);
        assert_eq!(e.held_out_correct, 62);
        assert!(!e.validated, "{e:?}");
        // Right on 90 of 100: validated.
        let mut pairs = vec![(0, 0); 58];
        pairs.extend(vec![(0, 1); 2]);
        pairs.extend(vec![(1, 1); 32]);
        pairs.extend(vec![(1, 0); 8]);
        let e = LabelEvidence::new(
            &labels,
            &predictions(&pairs),
            &SuggestionOutcomes::default(),
        );
        assert!(e.validated, "{e:?}");
    }

    #[test]
    fn the_live_record_pools_with_the_held_out_split() {
        let labels = vec!["a".to_string(), "b".to_string()];
        // No held-out split (a zero-shot version): only answers count, and their labels set
        // the baseline.
        let live = SuggestionOutcomes {
            accepted: 45,
            corrected: 5,
            answered: [("a".to_string(), 25), ("b".to_string(), 25)]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let e = LabelEvidence::new(&labels, &[], &live);
        assert_eq!(e.items(), 50);
        assert!((e.majority_rate - 0.5).abs() < 1e-9);
        assert!(e.validated, "{e:?}");
        let worse = SuggestionOutcomes {
            accepted: 20,
            corrected: 30,
            ..live
        };
        assert!(!LabelEvidence::new(&labels, &[], &worse).validated);
        assert!(!LabelEvidence::new(&labels, &[], &SuggestionOutcomes::default()).validated);
    }
}
