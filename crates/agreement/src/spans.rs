//! Span agreement between two annotators (NER-style): exact-match and overlap F1 per label,
//! micro- and macro-averaged. Both are symmetric in the two annotators, so F1 is an agreement
//! measure (Hripcsak & Rothschild 2005) rather than a directional evaluation score.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::coefficient::{Coefficient, UndefinedReason};
use crate::error::InputError;

/// A labelled span `[start, end)` (half-open, in tokens or characters) in a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    /// Document identifier.
    pub doc: String,
    /// First position.
    pub start: u64,
    /// One past the last position.
    pub end: u64,
    /// Label.
    pub label: String,
}

impl Span {
    /// A span `[start, end)`.
    pub fn new(doc: impl Into<String>, start: u64, end: u64, label: impl Into<String>) -> Span {
        Span {
            doc: doc.into(),
            start,
            end,
            label: label.into(),
        }
    }
}

/// When two spans count as matching (they must always share document and label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanMatch {
    /// Same start and end. `F1 = 2 |A ∩ B| / (|A| + |B|)`, counting duplicates as a multiset;
    /// equals nervaluate's "strict" F1 in either direction.
    Exact,
    /// Any overlap (lenient match): precision is the share of A's spans that overlap a B span
    /// of the same label, recall the share of B's spans that overlap an A span, and F1 their
    /// harmonic mean.
    Overlap,
}

/// F1 for one label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelF1 {
    /// The label.
    pub label: String,
    /// Spans of annotator A with this label.
    pub spans_a: usize,
    /// Spans of annotator B with this label.
    pub spans_b: usize,
    /// A's spans that match one of B's.
    pub matched_a: usize,
    /// B's spans that match one of A's.
    pub matched_b: usize,
    /// `matched_a / spans_a` (A read as the "prediction").
    pub precision: Coefficient,
    /// `matched_b / spans_b`.
    pub recall: Coefficient,
    /// Harmonic mean of precision and recall; 0 when one annotator has no span of the label.
    pub f1: Coefficient,
}

/// Span agreement of two annotators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanAgreement {
    /// The matching rule.
    pub matching: SpanMatch,
    /// One entry per label used by either annotator, in label order.
    pub per_label: Vec<LabelF1>,
    /// F1 from the pooled counts over labels.
    pub micro_f1: Coefficient,
    /// Mean of the per-label F1.
    pub macro_f1: Coefficient,
}

/// Precision (`matched_a / spans_a`), recall (`matched_b / spans_b`) and their harmonic mean,
/// from match counts — per label or pooled over labels (micro). Undefined without spans; F1 is
/// 0 when one side has spans and nothing matches.
pub fn precision_recall_f1(
    matched_a: usize,
    spans_a: usize,
    matched_b: usize,
    spans_b: usize,
) -> (Coefficient, Coefficient, Coefficient) {
    let frac = |m: usize, n: usize| {
        if n == 0 {
            Coefficient::Undefined(UndefinedReason::NoSpans)
        } else {
            Coefficient::Value(m as f64 / n as f64)
        }
    };
    let p = frac(matched_a, spans_a);
    let r = frac(matched_b, spans_b);
    let f1 = if spans_a + spans_b == 0 {
        Coefficient::Undefined(UndefinedReason::NoSpans)
    } else {
        match (p.value(), r.value()) {
            (Some(p), Some(r)) if p + r > 0.0 => Coefficient::Value(2.0 * p * r / (p + r)),
            _ => Coefficient::Value(0.0),
        }
    };
    (p, r, f1)
}

impl SpanAgreement {
    /// Micro precision, recall and F1: the counts pooled over labels.
    pub fn micro(&self) -> (Coefficient, Coefficient, Coefficient) {
        let sum = |f: fn(&LabelF1) -> usize| self.per_label.iter().map(f).sum::<usize>();
        precision_recall_f1(
            sum(|l| l.matched_a),
            sum(|l| l.spans_a),
            sum(|l| l.matched_b),
            sum(|l| l.spans_b),
        )
    }
}

/// Exact-match or overlap F1 between annotators `a` and `b`, per label and micro/macro.
pub fn span_f1(a: &[Span], b: &[Span], matching: SpanMatch) -> Result<SpanAgreement, InputError> {
    type Groups<'s> = BTreeMap<&'s str, BTreeMap<&'s str, (Vec<(u64, u64)>, Vec<(u64, u64)>)>>;
    let mut groups: Groups<'_> = BTreeMap::new();
    for (side, spans) in [(0, a), (1, b)] {
        for s in spans {
            if s.end <= s.start {
                return Err(InputError::EmptyUnit { start: s.start });
            }
            let entry = groups
                .entry(s.label.as_str())
                .or_default()
                .entry(s.doc.as_str())
                .or_default();
            if side == 0 {
                entry.0.push((s.start, s.end));
            } else {
                entry.1.push((s.start, s.end));
            }
        }
    }
    let mut per_label = Vec::with_capacity(groups.len());
    let (mut ta, mut tb, mut tma, mut tmb) = (0usize, 0usize, 0usize, 0usize);
    for (label, docs) in groups {
        let (mut na, mut nb, mut ma, mut mb) = (0usize, 0usize, 0usize, 0usize);
        for (_, (mut xa, mut xb)) in docs {
            xa.sort_unstable();
            xb.sort_unstable();
            na += xa.len();
            nb += xb.len();
            match matching {
                SpanMatch::Exact => {
                    let m = multiset_intersection(&xa, &xb);
                    ma += m;
                    mb += m;
                }
                SpanMatch::Overlap => {
                    ma += overlapped(&xa, &xb);
                    mb += overlapped(&xb, &xa);
                }
            }
        }
        let (precision, recall, f1) = precision_recall_f1(ma, na, mb, nb);
        ta += na;
        tb += nb;
        tma += ma;
        tmb += mb;
        per_label.push(LabelF1 {
            label: label.to_string(),
            spans_a: na,
            spans_b: nb,
            matched_a: ma,
            matched_b: mb,
            precision,
            recall,
            f1,
        });
    }
    let (_, _, micro_f1) = precision_recall_f1(tma, ta, tmb, tb);
    let macro_f1 = macro_average(per_label.iter().map(|l| l.f1), UndefinedReason::NoSpans);
    Ok(SpanAgreement {
        matching,
        per_label,
        micro_f1,
        macro_f1,
    })
}

/// Macro F1: the mean of the defined per-label (or per-type) F1 values, or undefined for
/// `none` when no label has one. Span and relation F1 average the same way; only what is
/// missing differs.
pub(crate) fn macro_average(
    f1: impl IntoIterator<Item = Coefficient>,
    none: UndefinedReason,
) -> Coefficient {
    let defined: Vec<f64> = f1.into_iter().filter_map(|c| c.value()).collect();
    if defined.is_empty() {
        Coefficient::Undefined(none)
    } else {
        Coefficient::Value(defined.iter().sum::<f64>() / defined.len() as f64)
    }
}

/// Size of the multiset intersection of two sorted lists (span bounds here, relation keys in
/// `relations`).
pub(crate) fn multiset_intersection<T: Ord>(a: &[T], b: &[T]) -> usize {
    let (mut i, mut j, mut m) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                m += 1;
                i += 1;
                j += 1;
            }
        }
    }
    m
}

/// How many spans of `a` overlap at least one span of `b` (`b` sorted by start).
fn overlapped(a: &[(u64, u64)], b: &[(u64, u64)]) -> usize {
    let mut prefix_max_end = Vec::with_capacity(b.len());
    let mut mx = 0u64;
    for &(_, e) in b {
        mx = mx.max(e);
        prefix_max_end.push(mx);
    }
    a.iter()
        .filter(|&&(s, e)| {
            let k = b.partition_point(|&(bs, _)| bs < e);
            k > 0 && prefix_max_end[k - 1] > s
        })
        .count()
}

/// Span F1 for every pair of annotators `(i, j)`, `i < j`.
pub fn pairwise_span_f1(
    annotators: &[Vec<Span>],
    matching: SpanMatch,
) -> Result<Vec<(usize, usize, SpanAgreement)>, InputError> {
    let mut out = Vec::new();
    for i in 0..annotators.len() {
        for j in i + 1..annotators.len() {
            out.push((i, j, span_f1(&annotators[i], &annotators[j], matching)?));
        }
    }
    Ok(out)
}
