//! Held-out metrics of a span version: entity-level strict precision, recall and F1 per
//! entity type, micro- and macro-averaged, in the seqeval convention (an entity counts only
//! with the same start, end and type; the types are those in the gold or the predictions; an
//! undefined precision or recall — no predicted or no gold entity of the type — counts as 0;
//! macro averages are plain means over the types).

use concord_agreement::spans::{span_f1, Span as RatedSpan, SpanMatch};
use concord_domain::Span;
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// Precision, recall and F1 of one entity type on the held-out items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanTypeMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Gold entities of the type.
    pub support: u64,
    /// Predicted entities of the type.
    pub predicted: u64,
}

/// A span version's metrics on its held-out items (or, for a patterns version, on every
/// confirmed item: a rule is not fitted to them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanMetrics {
    /// Items evaluated.
    pub items: u64,
    pub micro_precision: f64,
    pub micro_recall: f64,
    pub micro_f1: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    /// Gold entities over all types.
    pub support: u64,
    /// One row per type found in the gold or the predictions, in label order.
    pub per_type: Vec<SpanTypeMetrics>,
}

/// Metrics of `predicted` against `gold`, both per item (same order); `labels` orders the
/// rows.
pub fn span_metrics(
    labels: &[String],
    predicted: &[Vec<Span>],
    gold: &[Vec<Span>],
) -> Result<SpanMetrics, EngineError> {
    let rated = |items: &[Vec<Span>]| -> Vec<RatedSpan> {
        items
            .iter()
            .enumerate()
            .flat_map(|(item, spans)| {
                spans.iter().map(move |s| {
                    RatedSpan::new(item.to_string(), s.start.into(), s.end.into(), &s.label)
                })
            })
            .collect()
    };
    let agreement = span_f1(&rated(predicted), &rated(gold), SpanMatch::Exact)
        .map_err(|e| EngineError::internal("scoring held-out spans", e))?;
    let mut per_type: Vec<SpanTypeMetrics> = agreement
        .per_label
        .iter()
        .map(|l| SpanTypeMetrics {
            label: l.label.clone(),
            precision: l.precision.value().unwrap_or(0.0),
            recall: l.recall.value().unwrap_or(0.0),
            f1: l.f1.value().unwrap_or(0.0),
            support: l.spans_b as u64,
            predicted: l.spans_a as u64,
        })
        .collect();
    let order = |label: &str| {
        labels
            .iter()
            .position(|l| l == label)
            .unwrap_or(labels.len())
    };
    per_type.sort_by(|a, b| {
        order(&a.label)
            .cmp(&order(&b.label))
            .then(a.label.cmp(&b.label))
    });
    // seqeval's convention: an undefined figure (no predictions, no gold) counts as 0.
    let (p, r, f1) = agreement.micro();
    let (micro_precision, micro_recall, micro_f1) = (
        p.value().unwrap_or(0.0),
        r.value().unwrap_or(0.0),
        f1.value().unwrap_or(0.0),
    );
    let mean = |f: fn(&SpanTypeMetrics) -> f64| {
        if per_type.is_empty() {
            0.0
        } else {
            per_type.iter().map(f).sum::<f64>() / per_type.len() as f64
        }
    };
    Ok(SpanMetrics {
        items: gold.len() as u64,
        micro_precision,
        micro_recall,
        micro_f1,
        macro_precision: mean(|t| t.precision),
        macro_recall: mean(|t| t.recall),
        macro_f1: mean(|t| t.f1),
        support: agreement.per_label.iter().map(|l| l.spans_b as u64).sum(),
        per_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_matching_per_type_micro_and_macro() {
        let labels = vec!["person".to_string(), "place".to_string()];
        let s = |start, end, label: &str| Span::new(start, end, label);
        let gold = vec![
            vec![s(0, 5, "person"), s(10, 15, "place")],
            vec![s(0, 4, "person")],
        ];
        // One exact person, one person with a wrong end, one spurious place, the gold place
        // missed.
        let predicted = vec![
            vec![s(0, 5, "person"), s(20, 25, "place")],
            vec![s(0, 3, "person")],
        ];
        let m = span_metrics(&labels, &predicted, &gold).unwrap();
        assert_eq!(m.items, 2);
        assert_eq!(m.support, 3);
        let person = &m.per_type[0];
        assert_eq!(
            (person.label.as_str(), person.support, person.predicted),
            ("person", 2, 2)
        );
        assert!((person.precision - 0.5).abs() < 1e-9 && (person.recall - 0.5).abs() < 1e-9);
        let place = &m.per_type[1];
        assert_eq!((place.precision, place.recall, place.f1), (0.0, 0.0, 0.0));
        // Micro: 1 of 3 predicted, 1 of 3 gold; macro: the mean of 0.5 and 0.
        assert!((m.micro_precision - 1.0 / 3.0).abs() < 1e-9);
        assert!((m.micro_recall - 1.0 / 3.0).abs() < 1e-9);
        assert!((m.micro_f1 - 1.0 / 3.0).abs() < 1e-9);
        assert!((m.macro_precision - 0.25).abs() < 1e-9);
        assert!((m.macro_f1 - 0.25).abs() < 1e-9);
    }
}
