//! Relation agreement between two annotators: F1 over typed, directed relations between
//! spans, per relation type, micro- and macro-averaged. A relation of one annotator matches
//! one of the other's when both ends are the same span (same start, end and entity type) and
//! the relation type is the same, in the same direction: a reversed relation, or one on a
//! span with other bounds or another entity type, does not match. This is the strict relation
//! measure of relation-extraction evaluation (both entities and the relation must be right),
//! read symmetrically as an agreement measure, as span F1 is.
//!
//! The counts are sums over documents, so an application can add them item by item
//! ([`RelationCounts::add`]) and get exactly the corpus figure of [`relation_f1`] without
//! holding the corpus.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::coefficient::{Coefficient, UndefinedReason};
use crate::spans::{macro_average, multiset_intersection, precision_recall_f1};

/// One end of a relation: a span `[start, end)` with its entity type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RelationEnd {
    /// First position.
    pub start: u64,
    /// One past the last position.
    pub end: u64,
    /// The span's entity type.
    pub label: String,
}

impl RelationEnd {
    /// The span `[start, end)` of type `label`.
    pub fn new(start: u64, end: u64, label: impl Into<String>) -> RelationEnd {
        RelationEnd {
            start,
            end,
            label: label.into(),
        }
    }
}

/// A typed, directed relation from `head` to `tail` in a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LabelledRelation {
    /// Document identifier.
    pub doc: String,
    /// The relation's head (where it starts).
    pub head: RelationEnd,
    /// The relation's tail (where it points).
    pub tail: RelationEnd,
    /// The relation type.
    pub label: String,
}

impl LabelledRelation {
    /// A relation of type `label` from `head` to `tail` in document `doc`.
    pub fn new(
        doc: impl Into<String>,
        head: RelationEnd,
        tail: RelationEnd,
        label: impl Into<String>,
    ) -> LabelledRelation {
        LabelledRelation {
            doc: doc.into(),
            head,
            tail,
            label: label.into(),
        }
    }
}

/// F1 for one relation type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationTypeF1 {
    /// The relation type.
    pub label: String,
    /// Relations of annotator A with this type.
    pub relations_a: usize,
    /// Relations of annotator B with this type.
    pub relations_b: usize,
    /// Relations the two share (counted as a multiset: a relation given twice by A and once
    /// by B matches once).
    pub matched: usize,
    /// `matched / relations_a` (A read as the "prediction").
    pub precision: Coefficient,
    /// `matched / relations_b`.
    pub recall: Coefficient,
    /// Harmonic mean of precision and recall, `2·matched / (relations_a + relations_b)`;
    /// 0 when one annotator has no relation of the type, undefined when neither has.
    pub f1: Coefficient,
}

/// Relation agreement of two annotators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationAgreement {
    /// One entry per relation type either annotator used, in type order.
    pub per_type: Vec<RelationTypeF1>,
    /// Relations of A, over all types.
    pub relations_a: usize,
    /// Relations of B, over all types.
    pub relations_b: usize,
    /// Relations the two share, over all types.
    pub matched: usize,
    /// Micro precision (`matched / relations_a`): the counts pooled over types.
    pub micro_precision: Coefficient,
    /// Micro recall (`matched / relations_b`).
    pub micro_recall: Coefficient,
    /// Micro F1, from the counts pooled over types.
    pub micro_f1: Coefficient,
    /// Mean of the defined per-type F1.
    pub macro_f1: Coefficient,
}

/// A relation's identity within one document: what two annotators must share.
type Key<'r> = (&'r RelationEnd, &'r RelationEnd);

/// Per-type counts of comparing two annotators, added up over documents: relations of A,
/// relations of B, relations matched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationCounts {
    /// Per relation type: `[relations_a, relations_b, matched]`.
    pub per_type: BTreeMap<String, [usize; 3]>,
}

impl RelationCounts {
    /// Adds the comparison of one document's relations, `a` with `b` (the `doc` fields are
    /// not read: both lists are taken as the same document).
    pub fn add(&mut self, a: &[LabelledRelation], b: &[LabelledRelation]) {
        let mut groups: BTreeMap<&str, (Vec<Key<'_>>, Vec<Key<'_>>)> = BTreeMap::new();
        for r in a {
            groups
                .entry(r.label.as_str())
                .or_default()
                .0
                .push((&r.head, &r.tail));
        }
        for r in b {
            groups
                .entry(r.label.as_str())
                .or_default()
                .1
                .push((&r.head, &r.tail));
        }
        for (label, (mut xa, mut xb)) in groups {
            xa.sort_unstable();
            xb.sort_unstable();
            let c = self.per_type.entry(label.to_string()).or_default();
            c[0] += xa.len();
            c[1] += xb.len();
            c[2] += multiset_intersection(&xa, &xb);
        }
    }

    /// Adds counts gathered elsewhere (another document, or another part of a corpus).
    pub fn merge(&mut self, other: &RelationCounts) {
        for (label, c) in &other.per_type {
            let t = self.per_type.entry(label.clone()).or_default();
            for k in 0..3 {
                t[k] += c[k];
            }
        }
    }

    /// The agreement these counts give.
    pub fn agreement(&self) -> RelationAgreement {
        let mut total = [0usize; 3];
        let per_type: Vec<RelationTypeF1> = self
            .per_type
            .iter()
            .map(|(label, c)| {
                for k in 0..3 {
                    total[k] += c[k];
                }
                let [na, nb, m] = *c;
                let (precision, recall, f1) = precision_recall_f1(m, na, m, nb);
                RelationTypeF1 {
                    label: label.clone(),
                    relations_a: na,
                    relations_b: nb,
                    matched: m,
                    precision: no_relations_if_no_spans(precision),
                    recall: no_relations_if_no_spans(recall),
                    f1: no_relations_if_no_spans(f1),
                }
            })
            .collect();
        let [na, nb, m] = total;
        let (micro_precision, micro_recall, micro_f1) = precision_recall_f1(m, na, m, nb);
        let macro_f1 = macro_average(per_type.iter().map(|t| t.f1), UndefinedReason::NoRelations);
        RelationAgreement {
            per_type,
            relations_a: na,
            relations_b: nb,
            matched: m,
            micro_precision: no_relations_if_no_spans(micro_precision),
            micro_recall: no_relations_if_no_spans(micro_recall),
            micro_f1: no_relations_if_no_spans(micro_f1),
            macro_f1,
        }
    }
}

/// `precision_recall_f1` names the span case; here the thing missing is relations.
fn no_relations_if_no_spans(c: Coefficient) -> Coefficient {
    match c {
        Coefficient::Undefined(UndefinedReason::NoSpans) => {
            Coefficient::Undefined(UndefinedReason::NoRelations)
        }
        other => other,
    }
}

/// Relation F1 between annotators `a` and `b` over a corpus (relations grouped by their
/// `doc`), per type and micro/macro.
pub fn relation_f1(a: &[LabelledRelation], b: &[LabelledRelation]) -> RelationAgreement {
    type Docs<'r> = BTreeMap<&'r str, (Vec<LabelledRelation>, Vec<LabelledRelation>)>;
    let mut docs: Docs<'_> = BTreeMap::new();
    for r in a {
        docs.entry(r.doc.as_str()).or_default().0.push(r.clone());
    }
    for r in b {
        docs.entry(r.doc.as_str()).or_default().1.push(r.clone());
    }
    let mut counts = RelationCounts::default();
    for (xa, xb) in docs.values() {
        counts.add(xa, xb);
    }
    counts.agreement()
}

/// Relation F1 for every pair of annotators `(i, j)`, `i < j`.
pub fn pairwise_relation_f1(
    annotators: &[Vec<LabelledRelation>],
) -> Vec<(usize, usize, RelationAgreement)> {
    let mut out = Vec::new();
    for i in 0..annotators.len() {
        for j in i + 1..annotators.len() {
            out.push((i, j, relation_f1(&annotators[i], &annotators[j])));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `doc:head_start-head_end:head_type>tail_start-tail_end:tail_type:relation`.
    fn rel(spec: &str) -> LabelledRelation {
        let parts: Vec<&str> = spec.split(':').collect();
        let (doc, head_range, rest) = (parts[0], parts[1], parts[2]);
        let (head_type, tail_range) = rest.split_once('>').unwrap();
        let (tail_type, label) = (parts[3], parts[4]);
        let range = |r: &str| {
            let (s, e) = r.split_once('-').unwrap();
            (s.parse().unwrap(), e.parse().unwrap())
        };
        let (hs, he) = range(head_range);
        let (ts, te) = range(tail_range);
        LabelledRelation::new(
            doc,
            RelationEnd::new(hs, he, head_type),
            RelationEnd::new(ts, te, tail_type),
            label,
        )
    }

    /// Checks relation F1 of `a` against `b`: each `(type, relations_a, relations_b,
    /// matched, f1)`, then micro and macro F1 (`None`: undefined).
    fn check(
        a: &[&str],
        b: &[&str],
        want_types: &[(&str, usize, usize, usize, Option<f64>)],
        want_micro: Option<f64>,
        want_macro: Option<f64>,
    ) {
        let a: Vec<LabelledRelation> = a.iter().map(|s| rel(s)).collect();
        let b: Vec<LabelledRelation> = b.iter().map(|s| rel(s)).collect();
        let got = relation_f1(&a, &b);
        let types: Vec<(&str, usize, usize, usize, Option<f64>)> = got
            .per_type
            .iter()
            .map(|t| {
                (
                    t.label.as_str(),
                    t.relations_a,
                    t.relations_b,
                    t.matched,
                    t.f1.value(),
                )
            })
            .collect();
        assert_eq!(types.len(), want_types.len(), "{a:?} vs {b:?}: {types:?}");
        for (g, w) in types.iter().zip(want_types) {
            assert_eq!((g.0, g.1, g.2, g.3), (w.0, w.1, w.2, w.3), "{types:?}");
            close(g.4, w.4);
        }
        close(got.micro_f1.value(), want_micro);
        close(got.macro_f1.value(), want_macro);
        // F1 is symmetric in the two annotators.
        let swapped = relation_f1(&b, &a);
        close(swapped.micro_f1.value(), want_micro);
        close(swapped.macro_f1.value(), want_macro);
    }

    fn close(got: Option<f64>, want: Option<f64>) {
        match (got, want) {
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-12, "{g} != {w}"),
            (g, w) => assert_eq!(g, w),
        }
    }

    #[test]
    fn relation_f1_cases() {
        // Identical.
        check(
            &["d:0-4:per>10-14:org:works_for"],
            &["d:0-4:per>10-14:org:works_for"],
            &[("works_for", 1, 1, 1, Some(1.0))],
            Some(1.0),
            Some(1.0),
        );
        // Reversed: same spans and type, other direction: no match.
        check(
            &["d:0-4:per>10-14:org:works_for"],
            &["d:10-14:org>0-4:per:works_for"],
            &[("works_for", 1, 1, 0, Some(0.0))],
            Some(0.0),
            Some(0.0),
        );
        // A tail with other bounds does not match; nor does another entity type.
        check(
            &[
                "d:0-4:per>10-14:org:works_for",
                "d:0-4:per>20-25:loc:lives_in",
            ],
            &[
                "d:0-4:per>10-15:org:works_for",
                "d:0-4:per>20-25:gpe:lives_in",
            ],
            &[
                ("lives_in", 1, 1, 0, Some(0.0)),
                ("works_for", 1, 1, 0, Some(0.0)),
            ],
            Some(0.0),
            Some(0.0),
        );
        // Same ends, other type: two types, each unmatched.
        check(
            &["d:0-4:per>10-14:org:works_for"],
            &["d:0-4:per>10-14:org:founded"],
            &[
                ("founded", 0, 1, 0, Some(0.0)),
                ("works_for", 1, 0, 0, Some(0.0)),
            ],
            Some(0.0),
            Some(0.0),
        );
        // Micro pools counts, macro averages types: works_for 2/2 shared of 2+3, located_in
        // none shared of 1+0. micro = 2·2/(3+3) = 2/3; per type 2·2/5 = 0.8 and 0.
        check(
            &[
                "d:0-4:per>10-14:org:works_for",
                "d:5-8:per>10-14:org:works_for",
                "d:10-14:org>20-25:loc:located_in",
            ],
            &[
                "d:0-4:per>10-14:org:works_for",
                "d:5-8:per>10-14:org:works_for",
                "d:30-33:per>10-14:org:works_for",
            ],
            &[
                ("located_in", 1, 0, 0, Some(0.0)),
                ("works_for", 2, 3, 2, Some(0.8)),
            ],
            Some(2.0 / 3.0),
            Some(0.4),
        );
        // The same relation in another document does not match.
        check(
            &["d1:0-4:per>10-14:org:works_for"],
            &["d2:0-4:per>10-14:org:works_for"],
            &[("works_for", 1, 1, 0, Some(0.0))],
            Some(0.0),
            Some(0.0),
        );
        // Neither annotator has relations: undefined, not 0 and not NaN.
        check(&[], &[], &[], None, None);
        // One annotator has none: 0.
        check(
            &["d:0-4:per>10-14:org:works_for"],
            &[],
            &[("works_for", 1, 0, 0, Some(0.0))],
            Some(0.0),
            Some(0.0),
        );
    }

    #[test]
    fn undefined_figures_say_there_are_no_relations() {
        let empty = relation_f1(&[], &[]);
        assert_eq!(
            empty.micro_f1,
            Coefficient::Undefined(UndefinedReason::NoRelations)
        );
        assert_eq!(
            empty.macro_f1,
            Coefficient::Undefined(UndefinedReason::NoRelations)
        );
    }

    #[test]
    fn counts_added_per_document_equal_the_corpus_figure() {
        let a: Vec<LabelledRelation> = [
            "d1:0-4:per>10-14:org:works_for",
            "d2:0-4:per>10-14:org:works_for",
            "d2:10-14:org>20-25:loc:located_in",
        ]
        .iter()
        .map(|s| rel(s))
        .collect();
        let b: Vec<LabelledRelation> = [
            "d1:0-4:per>10-14:org:works_for",
            "d2:10-14:org>20-25:loc:located_in",
            "d3:1-2:per>3-4:org:works_for",
        ]
        .iter()
        .map(|s| rel(s))
        .collect();
        let mut counts = RelationCounts::default();
        for doc in ["d1", "d2", "d3"] {
            let of = |side: &[LabelledRelation]| -> Vec<LabelledRelation> {
                side.iter().filter(|r| r.doc == doc).cloned().collect()
            };
            let mut one = RelationCounts::default();
            one.add(&of(&a), &of(&b));
            counts.merge(&one);
        }
        assert_eq!(counts.agreement(), relation_f1(&a, &b));
        assert_eq!(relation_f1(&a, &b).matched, 2);
    }

    #[test]
    fn pairwise_covers_every_pair_once() {
        let one = vec![rel("d:0-1:a>2-3:b:r")];
        let pairs = pairwise_relation_f1(&[one.clone(), one.clone(), Vec::new()]);
        let got: Vec<(usize, usize, Option<f64>)> = pairs
            .iter()
            .map(|(i, j, a)| (*i, *j, a.micro_f1.value()))
            .collect();
        assert_eq!(
            got,
            vec![(0, 1, Some(1.0)), (0, 2, Some(0.0)), (1, 2, Some(0.0))]
        );
    }
}
