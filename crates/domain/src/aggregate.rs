use serde::{Deserialize, Serialize};

use crate::{AnnotationValue, RelationTriple, Span, TaskKind};

/// The label(s) a set of annotations agrees on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Aggregate {
    /// No annotations yet.
    None,
    /// A strict majority (single-label: plurality without tie; multi-label: each label chosen
    /// by more than half of the annotators).
    Agreed { labels: Vec<String> },
    /// Single-label only: the top count is shared by these labels.
    Tie { labels: Vec<String> },
}

/// Aggregates several annotators' label lists. `schema_order` orders tied and multi-label
/// results so the outcome does not depend on annotator order.
pub fn aggregate_labels(
    task: TaskKind,
    answers: &[&[String]],
    schema_order: &[String],
) -> Aggregate {
    if answers.is_empty() {
        return Aggregate::None;
    }
    let position = |l: &String| {
        schema_order
            .iter()
            .position(|s| s == l)
            .unwrap_or(usize::MAX)
    };
    let mut counts: Vec<(&String, usize)> = Vec::new();
    for answer in answers {
        for label in answer.iter() {
            match counts.iter_mut().find(|(l, _)| *l == label) {
                Some((_, n)) => *n += 1,
                None => counts.push((label, 1)),
            }
        }
    }
    counts.sort_by_key(|(l, _)| position(l));
    match task {
        TaskKind::Classification => {
            let Some(top) = counts.iter().map(|(_, n)| *n).max() else {
                return Aggregate::None;
            };
            let best: Vec<String> = counts
                .iter()
                .filter(|(_, n)| *n == top)
                .map(|(l, _)| (*l).clone())
                .collect();
            if best.len() == 1 {
                Aggregate::Agreed { labels: best }
            } else {
                Aggregate::Tie { labels: best }
            }
        }
        // A span answer has no item labels: its spans are aggregated by `aggregate_spans`.
        TaskKind::Multilabel | TaskKind::Spans | TaskKind::Relations => Aggregate::Agreed {
            labels: counts
                .iter()
                .filter(|(_, n)| 2 * n > answers.len())
                .map(|(l, _)| (*l).clone())
                .collect(),
        },
    }
}

/// The span set more than half of `answers` gave exactly (answers hold canonical, sorted
/// spans), if any: the whole answer a majority agreed on, as training confirms items.
pub fn majority_span_set<'a>(answers: &[&'a [Span]]) -> Option<&'a [Span]> {
    answers
        .iter()
        .copied()
        .find(|candidate| 2 * answers.iter().filter(|a| *a == candidate).count() > answers.len())
}

/// The spans more than half of `answers` contain (same start, end and label), in order: span
/// by span, so the result may be a set no annotator gave (the reviewer's starting point).
pub fn aggregate_spans(answers: &[&[Span]]) -> Vec<Span> {
    let mut counts: std::collections::BTreeMap<(u32, u32, &str), usize> = Default::default();
    for answer in answers {
        let mut seen = std::collections::HashSet::new();
        for span in answer.iter() {
            if seen.insert(span) {
                *counts
                    .entry((span.start, span.end, span.label.as_str()))
                    .or_default() += 1;
            }
        }
    }
    counts
        .into_iter()
        .filter(|(_, n)| 2 * n > answers.len())
        .map(|((start, end, label), _)| Span::new(start, end, label))
        .collect()
}

/// The reviewer's starting point in a relations project: the spans more than half of `answers`
/// contain ([`aggregate_spans`]) and the relations more than half contain (same head span,
/// tail span and type) whose two ends are among those spans.
pub fn aggregate_relations(answers: &[&AnnotationValue]) -> AnnotationValue {
    let span_sets: Vec<&[Span]> = answers.iter().map(|a| a.spans.as_slice()).collect();
    let spans = aggregate_spans(&span_sets);
    let mut counts: std::collections::BTreeMap<RelationTriple, usize> = Default::default();
    for answer in answers {
        // `relation_triples` is deduplicated: each answer votes once per triple.
        for triple in answer.relation_triples() {
            *counts.entry(triple).or_default() += 1;
        }
    }
    let majority: Vec<RelationTriple> = counts
        .into_iter()
        .filter(|(_, n)| 2 * n > answers.len())
        .map(|(t, _)| t)
        .collect();
    AnnotationValue::from_triples(spans, &majority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(task: TaskKind, answers: &[&[&str]], want: Aggregate) {
        let owned: Vec<Vec<String>> = answers
            .iter()
            .map(|a| a.iter().map(|s| s.to_string()).collect())
            .collect();
        let refs: Vec<&[String]> = owned.iter().map(Vec::as_slice).collect();
        let schema: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            aggregate_labels(task, &refs, &schema),
            want,
            "answers {answers:?}"
        );
    }

    fn labels(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn majority_ties_and_multilabel() {
        use TaskKind::*;
        check(Classification, &[], Aggregate::None);
        check(
            Classification,
            &[&["b"]],
            Aggregate::Agreed {
                labels: labels(&["b"]),
            },
        );
        check(
            Classification,
            &[&["b"], &["a"], &["b"]],
            Aggregate::Agreed {
                labels: labels(&["b"]),
            },
        );
        check(
            Classification,
            &[&["c"], &["a"]],
            Aggregate::Tie {
                labels: labels(&["a", "c"]),
            },
        );
        check(
            Multilabel,
            &[&["a", "b"], &["b"], &["c", "b"]],
            Aggregate::Agreed {
                labels: labels(&["b"]),
            },
        );
        check(
            Multilabel,
            &[&["a"], &[]],
            Aggregate::Agreed { labels: vec![] },
        );
    }

    #[test]
    fn span_majority_keeps_spans_most_annotators_marked() {
        let a = [Span::new(0, 5, "person"), Span::new(7, 9, "geo")];
        let b = [Span::new(0, 5, "person")];
        let c = [Span::new(0, 4, "person"), Span::new(7, 9, "geo")];
        assert_eq!(
            aggregate_spans(&[&a, &b, &c]),
            [Span::new(0, 5, "person"), Span::new(7, 9, "geo")]
        );
        assert_eq!(aggregate_spans(&[&a, &c]), [Span::new(7, 9, "geo")]);
        assert!(aggregate_spans(&[]).is_empty());
    }

    #[test]
    fn a_strict_majority_of_identical_span_sets_is_found() {
        let a = vec![Span::new(0, 3, "x")];
        let b = vec![Span::new(0, 4, "x")];
        assert_eq!(majority_span_set(&[&a]), Some(a.as_slice()));
        assert_eq!(majority_span_set(&[&a, &b]), None);
        assert_eq!(majority_span_set(&[&a, &b, &a]), Some(a.as_slice()));
        let none: Vec<Span> = Vec::new();
        assert_eq!(majority_span_set(&[&none]), Some(none.as_slice()));
        assert_eq!(majority_span_set(&[]), None);
    }

    #[test]
    fn relation_majority_needs_both_ends_and_the_type() {
        let person = Span::new(0, 3, "PER");
        let org = Span::new(14, 18, "ORG");
        let other = Span::new(14, 17, "ORG");
        let answer = |spans: Vec<Span>, relations: &[(u32, u32, &str)]| AnnotationValue {
            labels: Vec::new(),
            spans,
            relations: relations
                .iter()
                .map(|&(f, t, l)| crate::Relation::new(f, t, l))
                .collect(),
        };
        let a = answer(vec![person.clone(), org.clone()], &[(0, 1, "works_for")]);
        let b = answer(vec![person.clone(), org.clone()], &[(0, 1, "works_for")]);
        // Same type, but the tail span differs: not the same relation.
        let c = answer(vec![person.clone(), other.clone()], &[(0, 1, "works_for")]);
        let agreed = aggregate_relations(&[&a, &b, &c]);
        assert_eq!(agreed.spans, [person.clone(), org.clone()]);
        assert_eq!(agreed.relations, [crate::Relation::new(0, 1, "works_for")]);
        // Reversed direction is another relation.
        let d = answer(vec![person.clone(), org.clone()], &[(1, 0, "works_for")]);
        let split = aggregate_relations(&[&a, &d]);
        assert_eq!(split.spans.len(), 2);
        assert!(split.relations.is_empty());
        assert_eq!(aggregate_relations(&[]), AnnotationValue::default());
    }
}
