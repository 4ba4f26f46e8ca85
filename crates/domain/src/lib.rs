//! Concord's domain: the vocabulary every other crate speaks — projects and their label schema,
//! items, annotation values, roles — and the rules that say what a valid one is. Pure: no I/O,
//! no async; it builds for wasm32 so the browser validates with the very same code.

mod aggregate;
mod annotation;
pub mod bio;
mod calendar;
pub mod conll;
mod error_kind;
mod evidence;
mod job;
mod project;
mod review;
mod span_quality;
pub mod tokens;

pub use aggregate::{
    aggregate_labels, aggregate_relations, aggregate_spans, majority_span_set, Aggregate,
};
pub use annotation::{
    AnnotationSource, AnnotationValue, Relation, RelationTriple, Span, SuggestedRelation,
    SuggestedSpan, MAX_RELATIONS, MAX_SPANS,
};
pub use calendar::civil_from_days;
pub use error_kind::ErrorKind;
pub use evidence::{
    wilson_interval, ComparisonMetric, HeldOutPrediction, HeldOutSpanCounts, Interval,
    LabelEvidence, ShownOutcomes, SuggestionOutcomes, VersionComparison,
};
pub use job::{
    AutoTrigger, GenerateParams, JobKind, JobSpec, JobSpecError, JobState, TrainParams, Trainer,
};
pub use project::RelationLabel;
pub use project::{
    AutoTrainSettings, Label, PatternKind, ProjectSettings, ProjectSpec, QueueOrder, Role,
    SpanPattern, TaskKind, AUTO_TRAIN_EVERY, MAX_FINE_TUNE_MILESTONES, MAX_PATTERNS,
    MAX_PATTERN_BYTES, MAX_PATTERN_LEN, MAX_REGEX_PATTERNS, RELATION_EDITOR_KEYS, RESERVED_KEYS,
    SPAN_EDITOR_KEYS,
};
pub use review::{review_state, GoldSource, ReviewState};
pub use span_quality::{
    span_quality, ModelSpans, ScoredTokenSpan, SpanFinding, SpanQuality, SpanQualityInput,
};
pub use tokens::Token;

use serde::{Deserialize, Serialize};

/// Identifies a project; assigned by the store, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProjectId(pub u64);

/// Identifies a user account; assigned by the store, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(pub u64);

/// An item's position inside its project (import order). Internal; users see [`Item::id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemSeq(pub u64);

impl std::fmt::Display for ProjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a project definition or an annotation is not acceptable. Messages are written for the
/// person who sent the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("project name must not be empty")]
    EmptyProjectName,
    #[error("project name is longer than {max} characters")]
    ProjectNameTooLong { max: usize },
    #[error("a project needs at least one label")]
    NoLabels,
    #[error("a project has at most {max} labels")]
    TooManyLabels { max: usize },
    #[error("label {index} has an empty name")]
    EmptyLabelName { index: usize },
    #[error("label name {name:?} is longer than {max} characters")]
    LabelNameTooLong { name: String, max: usize },
    #[error("label {name:?} contains '|', which separates labels in CSV files")]
    LabelNameChar { name: String },
    #[error("label {name:?} appears twice")]
    DuplicateLabel { name: String },
    #[error("hotkey {key:?} is used by two labels")]
    DuplicateHotkey { key: String },
    #[error("hotkey {key:?} of label {label:?} is reserved (Enter submits, Space skips, Backspace goes back, ? opens the guidelines)")]
    ReservedHotkey { key: String, label: String },
    #[error("hotkey {key:?} of label {label:?} is reserved in span projects: the span editor uses it to {action}")]
    SpanEditorHotkey {
        key: String,
        label: String,
        action: &'static str,
    },
    #[error("hotkey {key:?} of label {label:?} must be a single character")]
    BadHotkey { key: String, label: String },
    #[error("colour {colour:?} of label {label:?} is not a #rrggbb colour")]
    BadColour { colour: String, label: String },
    #[error("guidelines are longer than {max} bytes")]
    GuidelinesTooLong { max: usize },
    #[error("overlap must be between 1 and {max}")]
    BadOverlap { max: u32 },
    #[error("gold questions come once every N items, with N 0 (never) or between 2 and {max}")]
    BadGoldEvery { max: u32 },
    #[error("a model is named by its folder in the models folder: 1 to 100 characters, no slashes, not starting with a dot")]
    BadModelName,
    #[error("label {label:?} is not in this project's labels")]
    UnknownLabel { label: String },
    #[error("a single-label project takes exactly one label, got {count}")]
    NotExactlyOneLabel { count: usize },
    #[error("label {label:?} is given twice")]
    RepeatedLabel { label: String },
    #[error("automatic retraining comes after every N new labels, with N between {min} and {max}")]
    BadAutoTrainEvery { min: u32, max: u32 },
    #[error(
        "fine-tuning and few-shot milestones are label counts above 0 in ascending order, at most {max} of each"
    )]
    BadFineTuneMilestones { max: usize },
    #[error("the accept threshold is a percentage, 0 to 100")]
    BadAcceptThreshold,
    #[error("a project has at most {max} patterns")]
    TooManyPatterns { max: usize },
    #[error(
        "entity type {name:?} contains whitespace, which separates the columns of CoNLL files"
    )]
    EntityTypeWhitespace { name: String },
    #[error("a project has at most {max} regular-expression patterns")]
    TooManyRegexPatterns { max: usize },
    #[error("a project's patterns are at most {max} bytes together")]
    PatternsTooLong { max: usize },
    #[error("a pattern of label {label:?} is empty or longer than {max} bytes")]
    BadPattern { label: String, max: usize },
    #[error("span {start}..{end} ({label:?}) is not inside the text, which has {len} characters (offsets count Unicode code points)")]
    SpanOutOfText {
        start: u32,
        end: u32,
        label: String,
        len: u32,
    },
    #[error("span {start}..{end} ({label:?}) is empty: its end must be after its start")]
    EmptySpan { start: u32, end: u32, label: String },
    #[error("span {start}..{end} ({label:?}) is given twice")]
    RepeatedSpan { start: u32, end: u32, label: String },
    #[error("spans {first} and {second} overlap, and this project's spans are flat (its settings can allow overlapping spans)")]
    OverlappingSpans { first: String, second: String },
    #[error("an annotation has at most {max} spans")]
    TooManySpans { max: usize },
    #[error("relation types are for relations projects, not a {task} project")]
    RelationLabelsNeedRelationsTask { task: &'static str },
    #[error("a relations project needs at least one relation type")]
    NoRelationLabels,
    #[error("a project has at most {max} relation types")]
    TooManyRelationLabels { max: usize },
    #[error("relation type {index} has an empty name")]
    EmptyRelationLabelName { index: usize },
    #[error("relation type {name:?} appears twice")]
    DuplicateRelationLabel { name: String },
    #[error("relation type {relation:?} names entity type {entity:?}, which is not one of this project's labels")]
    UnknownRelationEndType { relation: String, entity: String },
    #[error("relation type {label:?} is not in this project's relation types")]
    UnknownRelationLabel { label: String },
    #[error("relation {index} ({label:?}) points at span {span}, but the answer has {spans} spans (relations name their spans by index, from 0)")]
    RelationEndMissing {
        index: usize,
        label: String,
        span: u32,
        spans: usize,
    },
    #[error("relation {index} ({label:?}) links span {span} to itself")]
    SelfRelation {
        index: usize,
        label: String,
        span: u32,
    },
    #[error("relation {index} ({label:?}) cannot start at {span}: its head must be {allowed}")]
    RelationHeadType {
        index: usize,
        label: String,
        span: String,
        allowed: String,
    },
    #[error("relation {index} ({label:?}) cannot end at {span}: its tail must be {allowed}")]
    RelationTailType {
        index: usize,
        label: String,
        span: String,
        allowed: String,
    },
    #[error("relation {label:?} from {from} to {to} is given twice")]
    RepeatedRelation {
        label: String,
        from: String,
        to: String,
    },
    #[error("an annotation has at most {max} relations")]
    TooManyRelations { max: usize },
    #[error("{kind} annotations are not supported by a {task} project")]
    WrongValueKind {
        kind: &'static str,
        task: &'static str,
    },
}
