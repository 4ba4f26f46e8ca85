//! Properties of relation F1: symmetric in the two annotators, 1 for identical relation sets,
//! within [0, 1] and never NaN, unchanged by the order relations are listed in, and the same
//! whether counted per document and added up or over the whole corpus at once.

use concord_agreement::{relation_f1, LabelledRelation, RelationCounts, RelationEnd};
use proptest::prelude::*;

/// A relation over a small vocabulary, so that two random sets share some relations.
fn relation() -> impl Strategy<Value = LabelledRelation> {
    let end = (0u64..4, 1u64..3, 0usize..2)
        .prop_map(|(start, len, kind)| RelationEnd::new(start, start + len, ["per", "org"][kind]));
    (0usize..3, end.clone(), end, 0usize..3).prop_map(|(doc, head, tail, label)| {
        LabelledRelation::new(
            format!("d{doc}"),
            head,
            tail,
            ["works_for", "founded_by", "located_in"][label],
        )
    })
}

fn relations() -> impl Strategy<Value = Vec<LabelledRelation>> {
    proptest::collection::vec(relation(), 0..12)
}

proptest! {
    #[test]
    fn relation_f1_is_symmetric_bounded_and_order_free(a in relations(), b in relations()) {
        let ab = relation_f1(&a, &b);
        let ba = relation_f1(&b, &a);
        prop_assert_eq!(ab.micro_f1, ba.micro_f1);
        prop_assert_eq!(ab.macro_f1, ba.macro_f1);
        prop_assert_eq!(ab.micro_precision, ba.micro_recall);
        for f1 in [ab.micro_f1, ab.macro_f1] {
            if let Some(v) = f1.value() {
                prop_assert!((0.0..=1.0).contains(&v), "{}", v);
            }
        }
        prop_assert_eq!(ab.micro_f1.is_defined(), !(a.is_empty() && b.is_empty()));
        let mut reversed = a.clone();
        reversed.reverse();
        prop_assert_eq!(relation_f1(&reversed, &b), ab);
    }

    #[test]
    fn identical_relation_sets_agree_fully(a in relations()) {
        let same = relation_f1(&a, &a);
        if a.is_empty() {
            prop_assert!(!same.micro_f1.is_defined());
        } else {
            prop_assert_eq!(same.micro_f1.value(), Some(1.0));
            prop_assert_eq!(same.macro_f1.value(), Some(1.0));
            prop_assert_eq!(same.matched, a.len());
        }
    }

    #[test]
    fn per_document_counts_add_up_to_the_corpus_figure(a in relations(), b in relations()) {
        let mut counts = RelationCounts::default();
        for doc in ["d0", "d1", "d2"] {
            let of = |side: &[LabelledRelation]| -> Vec<LabelledRelation> {
                side.iter().filter(|r| r.doc == doc).cloned().collect()
            };
            counts.add(&of(&a), &of(&b));
        }
        prop_assert_eq!(counts.agreement(), relation_f1(&a, &b));
    }
}
