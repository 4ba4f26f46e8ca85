use serde::{Deserialize, Serialize};

use crate::{DomainError, ProjectSpec, TaskKind};

/// A character range `[start, end)` of an item's text carrying a label (NER).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Span {
    pub start: u32,
    pub end: u32,
    pub label: String,
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

    /// Checks the value against the project's schema and puts multi-label answers in schema
    /// order, so equal answers compare equal.
    pub fn validate(mut self, spec: &ProjectSpec) -> Result<Self, DomainError> {
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
        }
        Ok(self)
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
        assert!(AnnotationValue::labels(["pos"]).validate(&p).is_ok());
        assert_eq!(
            AnnotationValue::labels(["pos", "neg"])
                .validate(&p)
                .unwrap_err(),
            DomainError::NotExactlyOneLabel { count: 2 }
        );
        assert_eq!(
            AnnotationValue::labels(["spam"]).validate(&p).unwrap_err(),
            DomainError::UnknownLabel {
                label: "spam".into()
            }
        );
    }

    #[test]
    fn multilabel_is_sorted_into_schema_order() {
        let p = project(TaskKind::Multilabel);
        let v = AnnotationValue::labels(["neu", "pos"])
            .validate(&p)
            .unwrap();
        assert_eq!(v.labels, ["pos", "neu"]);
        assert!(AnnotationValue::labels(Vec::<String>::new())
            .validate(&p)
            .is_ok());
        assert!(AnnotationValue::labels(["pos", "pos"])
            .validate(&p)
            .is_err());
    }

    #[test]
    fn encoding_omits_absent_parts() {
        let v = AnnotationValue::labels(["pos"]);
        assert_eq!(serde_json::to_string(&v).unwrap(), r#"{"labels":["pos"]}"#);
        let back: AnnotationValue = serde_json::from_str(r#"{"labels":["pos"]}"#).unwrap();
        assert_eq!(back, v);
    }
}
