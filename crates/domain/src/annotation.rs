use serde::{Deserialize, Serialize};

use crate::{DomainError, ProjectSpec, TaskKind};

/// A range `[start, end)` of an item's text carrying a label (NER), in Unicode code points.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    pub start: u32,
    pub end: u32,
    pub label: String,
}

/// A span a model suggests, with how sure it is (0–1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestedSpan {
    pub start: u32,
    pub end: u32,
    pub label: String,
    pub confidence: f32,
}

/// A labelled, directed link between two spans of the same annotation: `from` (the head) and
/// `to` (the tail) index the answer's spans, counted from 0 in the answer's canonical order
/// (spans by start, end, label) once it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Relation {
    pub from: u32,
    pub to: u32,
    pub label: String,
}

impl Relation {
    pub fn new(from: u32, to: u32, label: impl Into<String>) -> Relation {
        Relation {
            from,
            to,
            label: label.into(),
        }
    }
}

/// A relation a model suggests between two of its suggested spans (by index into the
/// suggestion's spans), with how sure it is (0–1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestedRelation {
    pub from: u32,
    pub to: u32,
    pub label: String,
    pub confidence: f32,
}

/// A relation named by its ends instead of indices: what two answers must share for their
/// relations to count as the same (both spans and the type match). Ordered, so sets of triples
/// compare and sort without the spans' positions in either answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelationTriple {
    /// The head span's start, end and entity type.
    pub head: (u32, u32, String),
    /// The tail span's start, end and entity type.
    pub tail: (u32, u32, String),
    pub label: String,
}

impl RelationTriple {
    /// The triple of `relation` in an answer whose spans are `spans`; `None` if an end is
    /// missing (never for a validated answer).
    pub fn of(spans: &[Span], relation: &Relation) -> Option<RelationTriple> {
        let end = |i: u32| {
            spans
                .get(i as usize)
                .map(|s| (s.start, s.end, s.label.clone()))
        };
        Some(RelationTriple {
            head: end(relation.from)?,
            tail: end(relation.to)?,
            label: relation.label.clone(),
        })
    }
}

/// What one annotator said about one item. One shape for every task kind: classification
/// uses `labels`, span tasks `spans`, relation tasks `relations` as well; absent parts are
/// omitted from the encoding, so values stored today decode unchanged when span tasks arrive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnotationValue {
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<Span>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relations: Vec<Relation>,
}

impl AnnotationValue {
    pub fn labels<I: IntoIterator<Item = S>, S: Into<String>>(labels: I) -> Self {
        AnnotationValue {
            labels: labels.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// Spans only (a span task's answer).
    pub fn spans(spans: Vec<Span>) -> Self {
        AnnotationValue {
            spans,
            ..Default::default()
        }
    }

    /// The answer's relations as triples (sorted, without duplicates).
    pub fn relation_triples(&self) -> Vec<RelationTriple> {
        let mut triples: Vec<RelationTriple> = self
            .relations
            .iter()
            .filter_map(|r| RelationTriple::of(&self.spans, r))
            .collect();
        triples.sort();
        triples.dedup();
        triples
    }

    /// Builds an answer from spans and relation triples (relations whose ends are not among
    /// `spans` are dropped); the result is in canonical order when `spans` are sorted.
    pub fn from_triples(spans: Vec<Span>, triples: &[RelationTriple]) -> AnnotationValue {
        let index = |end: &(u32, u32, String)| {
            spans
                .iter()
                .position(|s| s.start == end.0 && s.end == end.1 && s.label == end.2)
                .map(|i| i as u32)
        };
        let mut relations: Vec<Relation> = triples
            .iter()
            .filter_map(|t| Some(Relation::new(index(&t.head)?, index(&t.tail)?, &t.label)))
            .collect();
        relations.sort_by(|a, b| (a.from, a.to, &a.label).cmp(&(b.from, b.to, &b.label)));
        relations.dedup();
        AnnotationValue {
            labels: Vec::new(),
            spans,
            relations,
        }
    }

    /// Checks the value against the project's schema and the item's `text`, and puts it in a
    /// canonical order (multi-label answers in schema order, spans by start, end and label,
    /// relations re-indexed to the sorted spans and sorted by from, to and label), so equal
    /// answers compare equal.
    pub fn validate(mut self, spec: &ProjectSpec, text: &str) -> Result<Self, DomainError> {
        if spec.task.is_spans() {
            return self.validate_spans(spec, text);
        }
        if !self.spans.is_empty() {
            return Err(DomainError::WrongValueKind {
                kind: "span",
                task: spec.task.as_str(),
            });
        }
        if !self.relations.is_empty() {
            return Err(DomainError::WrongValueKind {
                kind: "relation",
                task: spec.task.as_str(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for label in &self.labels {
            if spec.label(label).is_none() {
                return Err(DomainError::UnknownLabel {
                    label: label.clone(),
                });
            }
            if !seen.insert(label.as_str()) {
                return Err(DomainError::RepeatedLabel {
                    label: label.clone(),
                });
            }
        }
        match spec.task {
            TaskKind::Classification if self.labels.len() != 1 => {
                return Err(DomainError::NotExactlyOneLabel {
                    count: self.labels.len(),
                })
            }
            TaskKind::Classification => {}
            TaskKind::Multilabel => {
                let order = |name: &String| spec.labels.iter().position(|l| &l.name == name);
                self.labels.sort_by_key(order);
            }
            TaskKind::Spans | TaskKind::Relations => {
                unreachable!("span answers are checked by validate_spans")
            }
        }
        Ok(self)
    }

    fn validate_spans(mut self, spec: &ProjectSpec, text: &str) -> Result<Self, DomainError> {
        if !self.labels.is_empty() {
            return Err(DomainError::WrongValueKind {
                kind: "item label",
                task: spec.task.as_str(),
            });
        }
        if !spec.task.has_relations() && !self.relations.is_empty() {
            return Err(DomainError::WrongValueKind {
                kind: "relation",
                task: spec.task.as_str(),
            });
        }
        if self.spans.len() > MAX_SPANS {
            return Err(DomainError::TooManySpans { max: MAX_SPANS });
        }
        let len = crate::tokens::char_len(text);
        for span in &self.spans {
            if spec.label(&span.label).is_none() {
                return Err(DomainError::UnknownLabel {
                    label: span.label.clone(),
                });
            }
            if span.start >= span.end {
                return Err(DomainError::EmptySpan {
                    start: span.start,
                    end: span.end,
                    label: span.label.clone(),
                });
            }
            if span.end > len {
                return Err(DomainError::SpanOutOfText {
                    start: span.start,
                    end: span.end,
                    label: span.label.clone(),
                    len,
                });
            }
        }
        // Relations name spans by their index as sent: check them against those spans, then
        // re-index them to the sorted order.
        let triples = self.checked_relation_triples(spec)?;
        self.spans
            .sort_by(|a, b| (a.start, a.end, &a.label).cmp(&(b.start, b.end, &b.label)));
        for pair in self.spans.windows(2) {
            if pair[0] == pair[1] {
                return Err(DomainError::RepeatedSpan {
                    start: pair[0].start,
                    end: pair[0].end,
                    label: pair[0].label.clone(),
                });
            }
        }
        if !spec.settings.overlapping_spans {
            // Sorted by start: in a flat set each span ends before the next one starts.
            for pair in self.spans.windows(2) {
                if pair[1].start < pair[0].end {
                    return Err(DomainError::OverlappingSpans {
                        first: pair[0].describe(),
                        second: pair[1].describe(),
                    });
                }
            }
        }
        if !triples.is_empty() {
            // Spans are unique (checked above), so every triple finds its two ends again.
            self = AnnotationValue::from_triples(self.spans, &triples);
        }
        Ok(self)
    }

    /// Checks each relation (its ends exist and differ, its type is known and allows the ends'
    /// entity types, none repeated) against the spans as sent, and returns them as triples.
    fn checked_relation_triples(
        &self,
        spec: &ProjectSpec,
    ) -> Result<Vec<RelationTriple>, DomainError> {
        if self.relations.len() > MAX_RELATIONS {
            return Err(DomainError::TooManyRelations { max: MAX_RELATIONS });
        }
        let mut triples = Vec::with_capacity(self.relations.len());
        let mut seen = std::collections::HashSet::new();
        for (index, relation) in self.relations.iter().enumerate() {
            let Some(kind) = spec.relation_label(&relation.label) else {
                return Err(DomainError::UnknownRelationLabel {
                    label: relation.label.clone(),
                });
            };
            let end = |span: u32| {
                self.spans
                    .get(span as usize)
                    .ok_or_else(|| DomainError::RelationEndMissing {
                        index,
                        label: relation.label.clone(),
                        span,
                        spans: self.spans.len(),
                    })
            };
            let (head, tail) = (end(relation.from)?, end(relation.to)?);
            if relation.from == relation.to {
                return Err(DomainError::SelfRelation {
                    index,
                    label: relation.label.clone(),
                    span: relation.from,
                });
            }
            let allowed = |types: &[String]| {
                let quoted: Vec<String> = types.iter().map(|t| format!("{t:?}")).collect();
                quoted.join(" or ")
            };
            if !kind.allows_head(&head.label) {
                return Err(DomainError::RelationHeadType {
                    index,
                    label: relation.label.clone(),
                    span: head.describe(),
                    allowed: allowed(&kind.head),
                });
            }
            if !kind.allows_tail(&tail.label) {
                return Err(DomainError::RelationTailType {
                    index,
                    label: relation.label.clone(),
                    span: tail.describe(),
                    allowed: allowed(&kind.tail),
                });
            }
            if !seen.insert((relation.from, relation.to, relation.label.as_str())) {
                return Err(DomainError::RepeatedRelation {
                    label: relation.label.clone(),
                    from: head.describe(),
                    to: tail.describe(),
                });
            }
            // Bounds were checked above: the triple exists.
            triples.extend(RelationTriple::of(&self.spans, relation));
        }
        Ok(triples)
    }
}

/// The most spans one annotation may have.
pub const MAX_SPANS: usize = 10_000;
/// The most relations one annotation may have.
pub const MAX_RELATIONS: usize = 10_000;

impl Span {
    pub fn new(start: u32, end: u32, label: impl Into<String>) -> Span {
        Span {
            start,
            end,
            label: label.into(),
        }
    }

    /// `start..end (label)`, for messages.
    pub fn describe(&self) -> String {
        format!("{}..{} ({})", self.start, self.end, self.label)
    }

    pub fn overlaps(&self, other: &Span) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Where an annotation came from: typed by a human, or a model suggestion the human
/// accepted unchanged or corrected. Model versions are named by their id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnnotationSource {
    Human,
    ModelAccepted {
        model_version: u64,
    },
    ModelCorrected {
        model_version: u64,
    },
    /// Imported as the item's gold label.
    Import,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Label, ProjectSettings, RelationLabel};

    fn project(task: TaskKind) -> ProjectSpec {
        ProjectSpec {
            name: "p".into(),
            task,
            labels: ["pos", "neg", "neu"]
                .iter()
                .map(|n| Label::named(*n))
                .collect(),
            guidelines: String::new(),
            settings: ProjectSettings::default(),
            relation_labels: Vec::new(),
        }
    }

    /// "Ann works for Acme in Paris": PER, ORG, LOC; works_for PER→ORG, located_in ORG→LOC.
    fn relations_project() -> ProjectSpec {
        let restricted = |name: &str, head: &str, tail: &str| RelationLabel {
            head: vec![head.into()],
            tail: vec![tail.into()],
            ..RelationLabel::named(name)
        };
        ProjectSpec {
            name: "r".into(),
            task: TaskKind::Relations,
            labels: ["PER", "ORG", "LOC"]
                .iter()
                .map(|n| Label::named(*n))
                .collect(),
            guidelines: String::new(),
            settings: ProjectSettings::default(),
            relation_labels: vec![
                restricted("works_for", "PER", "ORG"),
                restricted("located_in", "ORG", "LOC"),
                RelationLabel::named("related"),
            ],
        }
        .normalize()
        .unwrap()
    }

    #[test]
    fn relations_are_checked_and_reindexed_to_the_sorted_spans() {
        let p = relations_project();
        let text = "Ann works for Acme in Paris";
        let (ann, acme, paris) = (
            Span::new(0, 3, "PER"),
            Span::new(14, 18, "ORG"),
            Span::new(22, 27, "LOC"),
        );
        let check = |spans: &[&Span], relations: &[(u32, u32, &str)]| {
            AnnotationValue {
                labels: Vec::new(),
                spans: spans.iter().map(|s| (*s).clone()).collect(),
                relations: relations
                    .iter()
                    .map(|&(f, t, l)| Relation::new(f, t, l))
                    .collect(),
            }
            .validate(&p, text)
        };
        // Sent out of order: Paris, Ann, Acme.
        let ok = check(
            &[&paris, &ann, &acme],
            &[(2, 0, "located_in"), (1, 2, "works_for")],
        )
        .unwrap();
        assert_eq!(ok.spans, [ann.clone(), acme.clone(), paris.clone()]);
        assert_eq!(
            ok.relations,
            [
                Relation::new(0, 1, "works_for"),
                Relation::new(1, 2, "located_in")
            ]
        );
        assert_eq!(ok.relation_triples().len(), 2);
        let err =
            |spans: &[&Span], relations: &[(u32, u32, &str)]| check(spans, relations).unwrap_err();
        assert!(matches!(
            err(&[&ann, &acme], &[(0, 2, "works_for")]),
            DomainError::RelationEndMissing {
                index: 0,
                span: 2,
                spans: 2,
                ..
            }
        ));
        assert!(matches!(
            err(&[&ann, &acme], &[(0, 0, "related")]),
            DomainError::SelfRelation { .. }
        ));
        assert!(matches!(
            err(&[&ann, &acme], &[(0, 1, "owns")]),
            DomainError::UnknownRelationLabel { .. }
        ));
        // Reversed ends break the allowed types.
        let reversed = err(&[&ann, &acme], &[(1, 0, "works_for")]);
        assert_eq!(
            reversed.to_string(),
            "relation 0 (\"works_for\") cannot start at 14..18 (ORG): its head must be \"PER\""
        );
        assert!(matches!(
            err(&[&ann, &paris], &[(0, 1, "works_for")]),
            DomainError::RelationTailType { .. }
        ));
        assert!(matches!(
            err(&[&ann, &acme], &[(0, 1, "related"), (0, 1, "related")]),
            DomainError::RepeatedRelation { .. }
        ));
        // Unrestricted types link anything, either way.
        assert!(check(&[&ann, &acme], &[(1, 0, "related"), (0, 1, "related")]).is_ok());
        // A span project takes no relations.
        let spans_only = AnnotationValue {
            relations: vec![Relation::new(0, 1, "related")],
            ..AnnotationValue::spans(vec![ann.clone(), acme.clone()])
        };
        assert!(matches!(
            spans_only
                .validate(&project(TaskKind::Spans), text)
                .unwrap_err(),
            DomainError::WrongValueKind { .. }
        ));
    }

    #[test]
    fn relation_types_are_checked_when_a_project_is_defined() {
        let base = relations_project();
        let with = |f: &dyn Fn(&mut ProjectSpec)| {
            let mut spec = base.clone();
            f(&mut spec);
            spec.normalize()
        };
        assert!(with(&|_| {}).is_ok());
        assert_eq!(
            with(&|s| s.relation_labels.clear()).unwrap_err(),
            DomainError::NoRelationLabels
        );
        assert!(matches!(
            with(&|s| s.relation_labels[0].tail = vec!["GPE".into()]).unwrap_err(),
            DomainError::UnknownRelationEndType { .. }
        ));
        assert!(matches!(
            with(&|s| s.relation_labels[1].name = "works_for".into()).unwrap_err(),
            DomainError::DuplicateRelationLabel { .. }
        ));
        assert!(matches!(
            with(&|s| s.relation_labels[0].hotkey = Some(">".into())).unwrap_err(),
            DomainError::SpanEditorHotkey { .. }
        ));
        assert!(matches!(
            with(&|s| s.labels[0].hotkey = Some("~".into())).unwrap_err(),
            DomainError::SpanEditorHotkey { .. }
        ));
        assert!(matches!(
            with(&|s| s.task = TaskKind::Spans).unwrap_err(),
            DomainError::RelationLabelsNeedRelationsTask { .. }
        ));
        let filled = with(&|_| {}).unwrap();
        assert!(filled
            .relation_labels
            .iter()
            .all(|l| l.hotkey.is_some() && l.colour.starts_with('#')));
    }

    #[test]
    fn classification_takes_exactly_one_known_label() {
        let p = project(TaskKind::Classification);
        assert!(AnnotationValue::labels(["pos"]).validate(&p, "").is_ok());
        assert_eq!(
            AnnotationValue::labels(["pos", "neg"])
                .validate(&p, "")
                .unwrap_err(),
            DomainError::NotExactlyOneLabel { count: 2 }
        );
        assert_eq!(
            AnnotationValue::labels(["spam"])
                .validate(&p, "")
                .unwrap_err(),
            DomainError::UnknownLabel {
                label: "spam".into()
            }
        );
    }

    #[test]
    fn multilabel_is_sorted_into_schema_order() {
        let p = project(TaskKind::Multilabel);
        let v = AnnotationValue::labels(["neu", "pos"])
            .validate(&p, "")
            .unwrap();
        assert_eq!(v.labels, ["pos", "neu"]);
        assert!(AnnotationValue::labels(Vec::<String>::new())
            .validate(&p, "")
            .is_ok());
        assert!(AnnotationValue::labels(["pos", "pos"])
            .validate(&p, "")
            .is_err());
    }

    #[test]
    fn spans_are_checked_against_the_text_and_the_overlap_policy() {
        let mut p = project(TaskKind::Spans);
        // 9 code points: the emoji is one.
        let text = "🙂 Paris x";
        let check = |p: &ProjectSpec, spans: &[(u32, u32, &str)]| {
            let spans = spans.iter().map(|&(s, e, l)| Span::new(s, e, l)).collect();
            AnnotationValue::spans(spans).validate(p, text)
        };
        let ok = check(&p, &[(8, 9, "neg"), (2, 7, "pos")]).unwrap();
        assert_eq!(ok.spans[0], Span::new(2, 7, "pos"), "sorted by start");
        assert!(check(&p, &[]).is_ok(), "no entities is an answer");
        assert_eq!(
            check(&p, &[(2, 10, "pos")]).unwrap_err(),
            DomainError::SpanOutOfText {
                start: 2,
                end: 10,
                label: "pos".into(),
                len: 9
            }
        );
        assert!(matches!(
            check(&p, &[(3, 3, "pos")]).unwrap_err(),
            DomainError::EmptySpan { .. }
        ));
        assert!(matches!(
            check(&p, &[(2, 7, "org")]).unwrap_err(),
            DomainError::UnknownLabel { .. }
        ));
        assert!(matches!(
            check(&p, &[(2, 7, "pos"), (2, 7, "pos")]).unwrap_err(),
            DomainError::RepeatedSpan { .. }
        ));
        let nested = [(2, 7, "pos"), (2, 4, "neg")];
        assert!(matches!(
            check(&p, &nested).unwrap_err(),
            DomainError::OverlappingSpans { .. }
        ));
        p.settings.overlapping_spans = true;
        assert_eq!(check(&p, &nested).unwrap().spans.len(), 2);
        let labels = AnnotationValue::labels(["pos"]).validate(&p, text);
        assert!(matches!(
            labels.unwrap_err(),
            DomainError::WrongValueKind { .. }
        ));
    }

    #[test]
    fn encoding_omits_absent_parts() {
        let v = AnnotationValue::labels(["pos"]);
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"labels":["pos"]}"#);
        let back: AnnotationValue = serde_json::from_str(r#"{"labels":["pos"]}"#).unwrap();
        assert_eq!(back, v);
    }
}
