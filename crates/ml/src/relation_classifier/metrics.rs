//! Relation metrics: precision, recall and F1 per relation type and micro-averaged, where a
//! predicted relation counts only when both its ends and its type match a gold one; and pair
//! accuracy beside the rate of always answering "no relation" on the same candidate pairs.

use std::collections::HashSet;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// One relation type's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationTypeScores {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Gold relations of this type.
    pub support: u64,
    /// Relations of this type predicted.
    pub predicted: u64,
    pub correct: u64,
}

/// Relation precision, recall and F1 per type and micro-averaged over all types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationMetrics {
    pub per_type: Vec<RelationTypeScores>,
    pub micro_precision: f64,
    pub micro_recall: f64,
    pub micro_f1: f64,
    pub support: u64,
    pub predicted: u64,
    pub correct: u64,
}

/// Precision, recall and F1 from counts; 0 where a denominator is 0.
fn prf(correct: u64, predicted: u64, support: u64) -> (f64, f64, f64) {
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let p = ratio(correct, predicted);
    let r = ratio(correct, support);
    let f = ratio(2 * correct, predicted + support);
    (p, r, f)
}

/// Metrics of `predicted` against `gold`, item by item. A relation is `(ends, type)`: `ends`
/// names both spans (bounds and entity types, e.g. a [`concord_domain::RelationTriple`]'s
/// head and tail), `type` indexes `labels`. Repeated relations in an item count once.
pub fn relation_metrics<K: Eq + Hash + Clone>(
    labels: &[String],
    predicted: &[Vec<(K, usize)>],
    gold: &[Vec<(K, usize)>],
) -> RelationMetrics {
    let mut counts = vec![[0u64; 3]; labels.len()]; // correct, predicted, support
    for (p, g) in predicted.iter().zip(gold) {
        let p: HashSet<&(K, usize)> = p.iter().collect();
        let g: HashSet<&(K, usize)> = g.iter().collect();
        for r in &p {
            if let Some(c) = counts.get_mut(r.1) {
                c[1] += 1;
                if g.contains(r) {
                    c[0] += 1;
                }
            }
        }
        for r in &g {
            if let Some(c) = counts.get_mut(r.1) {
                c[2] += 1;
            }
        }
    }
    let per_type = labels
        .iter()
        .zip(&counts)
        .map(|(label, &[correct, predicted, support])| {
            let (precision, recall, f1) = prf(correct, predicted, support);
            RelationTypeScores {
                label: label.clone(),
                precision,
                recall,
                f1,
                support,
                predicted,
                correct,
            }
        })
        .collect();
    let [correct, predicted, support] = counts
        .iter()
        .fold([0u64; 3], |a, c| [a[0] + c[0], a[1] + c[1], a[2] + c[2]]);
    let (micro_precision, micro_recall, micro_f1) = prf(correct, predicted, support);
    RelationMetrics {
        per_type,
        micro_precision,
        micro_recall,
        micro_f1,
        support,
        predicted,
        correct,
    }
}

/// How often the classifier named a candidate pair's class right (a relation type or "no
/// relation"), beside how often always answering "no relation" would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PairAccuracy {
    pub pairs: u64,
    pub correct: u64,
    /// Pairs whose gold class is "no relation".
    pub no_relation: u64,
}

impl PairAccuracy {
    /// Adds one pair: its gold class and the predicted one (0: no relation).
    pub fn add(&mut self, gold: usize, predicted: usize) {
        self.pairs += 1;
        self.correct += u64::from(gold == predicted);
        self.no_relation += u64::from(gold == 0);
    }

    pub fn accuracy(&self) -> Option<f64> {
        (self.pairs > 0).then(|| self.correct as f64 / self.pairs as f64)
    }

    /// The accuracy of always answering "no relation" on the same pairs.
    pub fn no_relation_rate(&self) -> Option<f64> {
        (self.pairs > 0).then(|| self.no_relation as f64 / self.pairs as f64)
    }
}

/// A relation classifier's held-out figures, as a version keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationEvaluation {
    /// Held-out items measured.
    pub items: u64,
    /// Relations found from the spans the version's span model predicted: what annotators
    /// are shown.
    pub end_to_end: RelationMetrics,
    /// Relations found from the items' confirmed spans: the relation classifier alone.
    pub given_spans: RelationMetrics,
    /// Pair accuracy on the candidate pairs of the confirmed spans, beside "no relation".
    pub pairs: PairAccuracy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relation_counts_only_with_both_ends_and_the_type() {
        let labels = vec!["works_for".to_string(), "located_in".to_string()];
        let gold = vec![vec![((0, 1), 0), ((1, 2), 1)], vec![((0, 1), 0)]];
        let predicted = vec![
            // Right; wrong type on the right ends; a pair that is no relation.
            vec![((0, 1), 0), ((1, 2), 0), ((2, 0), 1)],
            vec![],
        ];
        let m = relation_metrics(&labels, &predicted, &gold);
        assert_eq!((m.correct, m.predicted, m.support), (1, 3, 3));
        assert!((m.micro_f1 - 1.0 / 3.0).abs() < 1e-12);
        let works = &m.per_type[0];
        assert_eq!((works.correct, works.predicted, works.support), (1, 2, 2));
        assert!((works.precision - 0.5).abs() < 1e-12 && (works.recall - 0.5).abs() < 1e-12);
        let located = &m.per_type[1];
        assert_eq!(
            (located.correct, located.predicted, located.support),
            (0, 1, 1)
        );
        assert_eq!(located.f1, 0.0);
    }

    #[test]
    fn pair_accuracy_sits_beside_the_no_relation_rate() {
        let mut a = PairAccuracy::default();
        for (g, p) in [(0, 0), (0, 1), (2, 2), (0, 0)] {
            a.add(g, p);
        }
        assert_eq!(a.accuracy(), Some(0.75));
        assert_eq!(a.no_relation_rate(), Some(0.75));
        assert_eq!(PairAccuracy::default().accuracy(), None);
    }
}
