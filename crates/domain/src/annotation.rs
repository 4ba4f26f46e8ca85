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

/// A labelled, directed link between two spans of the same annotation (by index).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Relation {
    pub from: u32,
    pub to: u32,
    pub label: String,
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

    /// Checks the value against the project's schema and the item's `text`, and puts it in a
    /// canonical order (multi-label answers in schema order, spans by start, end and label), so
    /// equal answers compare equal.
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
            TaskKind::Spans => unreachable!("span answers are checked by validate_spans"),
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
        if !self.relations.is_empty() {
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
        Ok(self)
    }
}

/// The most spans one annotation may have.
pub const MAX_SPANS: usize = 10_000;

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
    use crate::{Label, ProjectSettings};

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
        }
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
