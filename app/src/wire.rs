//! Types that cross the wire between the browser and the server functions.

use concord_domain::{ErrorKind, Label, Role, TaskKind};
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// The error every server function returns: the kind the UI matches on (send the visitor to
/// sign in, show a message) and a message a person may read. An internal error's message is
/// only a reference to the server log, never its details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub kind: ErrorKind,
    pub message: String,
}

impl AppError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> AppError {
        AppError {
            kind,
            message: message.into(),
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    /// Failures of the server function machinery itself (the request never reached the server,
    /// arguments that do not decode, a response that does not parse) get a kind too, so the UI
    /// handles them like any other error.
    fn from_server_fn_error(value: ServerFnErrorErr) -> AppError {
        let kind = match &value {
            ServerFnErrorErr::Request(_) => ErrorKind::Unavailable,
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) => ErrorKind::InvalidInput,
            ServerFnErrorErr::Registration(_)
            | ServerFnErrorErr::UnsupportedRequestMethod(_)
            | ServerFnErrorErr::ServerError(_)
            | ServerFnErrorErr::MiddlewareError(_)
            | ServerFnErrorErr::Deserialization(_)
            | ServerFnErrorErr::Serialization(_)
            | ServerFnErrorErr::Response(_) => ErrorKind::Internal,
        };
        AppError::new(kind, value.to_string())
    }
}

/// The signed-in user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: u64,
    pub name: String,
    pub is_admin: bool,
}

/// A project with the caller's view of its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectView {
    pub id: u64,
    pub name: String,
    pub task: TaskKind,
    pub labels: Vec<Label>,
    /// Relations projects: the relation types (their allowed head and tail entity types and
    /// hotkeys); empty in other projects.
    #[serde(default)]
    pub relation_labels: Vec<concord_domain::RelationLabel>,
    /// The guidelines rendered from Markdown on the server, raw HTML removed.
    pub guidelines_html: String,
    pub has_guidelines: bool,
    pub role: Role,
    pub overlap: u32,
    pub blind: bool,
    pub auto_accept_unanimous: bool,
    pub gold_every: u32,
    pub queue_order: concord_domain::QueueOrder,
    pub diversity: bool,
    /// The project's encoder (a model folder name).
    pub model: String,
    /// When the model retrains on its own.
    pub auto_train: concord_domain::AutoTrainSettings,
    pub total: u64,
    pub done: u64,
    pub mine: u64,
}

impl ProjectView {
    /// Share of items done, 0–100.
    pub fn percent_done(&self) -> u64 {
        (self.done * 100).checked_div(self.total).unwrap_or(0)
    }
}

/// An item on the annotation page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemView {
    pub id: String,
    pub text: String,
    /// The caller's earlier answer, when revisiting.
    pub mine: Option<Vec<String>>,
    /// Span projects: the item's word tokens (code point offsets), which spans snap to.
    #[serde(default)]
    pub tokens: Vec<concord_domain::Token>,
    /// Span projects: the caller's earlier spans, when revisiting.
    #[serde(default)]
    pub mine_spans: Option<Vec<concord_domain::Span>>,
    /// Relations projects: the caller's earlier relations (by index into `mine_spans`).
    #[serde(default)]
    pub mine_relations: Option<Vec<concord_domain::Relation>>,
    /// Outside blind mode: how many other annotators chose each label.
    pub others: Option<Vec<(String, u32)>>,
    /// Outside blind mode: the active model's suggestion.
    pub suggestion: Option<SuggestionView>,
    /// Why active learning showed this item early.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestionView {
    pub labels: Vec<String>,
    pub confidence: f32,
    pub version: u64,
    /// Span projects: the suggested spans, each with its confidence.
    #[serde(default)]
    pub spans: Vec<concord_domain::SuggestedSpan>,
    /// Relations projects: the suggested relations (by index into `spans`).
    #[serde(default)]
    pub relations: Vec<concord_domain::SuggestedRelation>,
    /// Relations projects: whether the page pre-accepts the suggested relations (validated
    /// relation classifier); otherwise they are hints taken by hand.
    #[serde(default)]
    pub relations_preselect: bool,
    /// Relations projects: how the relation classifier was validated, with the figures.
    #[serde(default)]
    pub relations_validation: String,
    /// How the version was validated (what its confidences rest on).
    #[serde(default)]
    pub validation: String,
    /// Whether the page pre-selects it: only once its version is validated; otherwise it is
    /// shown as a hint the annotator takes by hand.
    #[serde(default)]
    pub preselect: bool,
    /// Why it is pre-selected or not, in one sentence with the figures.
    #[serde(default)]
    pub evidence: String,
}

/// The model card of a project page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelOverviewView {
    pub available: bool,
    pub model: String,
    pub reason: Option<String>,
    pub versions: Vec<VersionRow>,
    /// Newest first, at most ten.
    pub jobs: Vec<JobRow>,
    /// Generators this server runs that can pre-annotate the project (single-label projects
    /// only), by the name a generate job takes.
    #[serde(default)]
    pub generators: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRow {
    pub version: u64,
    pub trainer: String,
    pub train_size: u64,
    pub accuracy: Option<f64>,
    pub macro_f1: Option<f64>,
    pub calibration_error: Option<f64>,
    pub held_out: u64,
    pub created_ms: u64,
    pub active: bool,
    /// Held-out F1 per label, in the version's label order (empty without metrics).
    pub label_f1: Vec<(String, f64)>,
    /// Span projects: held-out entity-level metrics (a patterns version's: on every
    /// confirmed item).
    #[serde(default)]
    pub span_metrics: Option<SpanMetricsView>,
    /// Relations projects: the held-out metrics of the version's relation classifier.
    #[serde(default)]
    pub relation_metrics: Option<RelationMetricsView>,
    /// The live record as shown: answers that took its suggestion unchanged, and all answers
    /// given against it (pre-selected ones included; pre-selection rests on `evidence`).
    #[serde(default)]
    pub live_accepted: u64,
    #[serde(default)]
    pub live_answers: u64,
    /// Whether its suggestions are pre-selected, and the sentence with the interval and the
    /// baseline that says why.
    #[serde(default)]
    pub validated: bool,
    #[serde(default)]
    pub evidence: String,
    /// An automatically trained version against the one active then: "v3 0.81 vs v2 0.78 on
    /// 40 held-out items: activated".
    #[serde(default)]
    pub comparison: Option<String>,
    /// Why the loop trained it on its own (none: a person asked).
    #[serde(default)]
    pub auto: Option<String>,
}

/// A span version's entity-level strict metrics (seqeval's convention).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanMetricsView {
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
    pub per_type: Vec<SpanTypeMetricsRow>,
}

/// A relations version's relation classifier on its held-out items: relation precision,
/// recall and F1 (a relation counts when both spans and the type match) end to end from the
/// version's predicted spans and from the confirmed spans, and pair accuracy beside always
/// answering "no relation" on the same candidate pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationMetricsView {
    /// `head` or `fine_tune`.
    pub trainer: String,
    /// Whether its relation suggestions are pre-accepted, in one sentence with the figures.
    pub validation: String,
    /// Held-out items measured.
    pub items: u64,
    /// Candidate pairs of the confirmed spans, those it named right, and those that hold no
    /// relation.
    pub pairs: u64,
    pub pairs_correct: u64,
    pub no_relation: u64,
    pub end_to_end: RelationScoresView,
    pub given_spans: RelationScoresView,
}

/// Relation precision, recall and F1 per type and micro-averaged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationScoresView {
    pub micro_precision: f64,
    pub micro_recall: f64,
    pub micro_f1: f64,
    /// Gold relations.
    pub support: u64,
    /// Relations predicted.
    pub predicted: u64,
    pub per_type: Vec<RelationScoreRow>,
}

/// One relation type's row of [`RelationScoresView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationScoreRow {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
    pub predicted: u64,
}

/// One entity type's row of [`SpanMetricsView`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanTypeMetricsRow {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Gold entities of the type.
    pub support: u64,
    /// Predicted entities of the type.
    pub predicted: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRow {
    pub id: u64,
    pub kind: String,
    pub state: String,
    pub done: u64,
    pub total: u64,
    pub rate: Option<f64>,
    pub eta_seconds: Option<f64>,
    pub error: Option<String>,
}

/// One annotator's answer on the review page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewAnswerView {
    pub annotator: String,
    pub labels: Vec<String>,
    /// Span projects: the annotator's spans.
    #[serde(default)]
    pub spans: Vec<concord_domain::Span>,
    /// Relations projects: the annotator's relations, `from`/`to` indexing this answer's
    /// `spans`.
    #[serde(default)]
    pub relations: Vec<concord_domain::Relation>,
    /// `human`, `model_accepted`, `model_corrected` or `import`.
    pub source: String,
    pub seconds: f64,
}

/// An item on the review page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItemView {
    pub id: String,
    pub text: String,
    /// `disagreement`, `unanimous`, `accepted`, `resolved`, …
    pub state: String,
    pub answers: Vec<ReviewAnswerView>,
    /// The majority answer (empty on a tie): the starting selection.
    pub proposal: Vec<String>,
    pub gold: Option<Vec<String>>,
    /// Span projects: the item's word tokens, which the gold spans snap to.
    #[serde(default)]
    pub tokens: Vec<concord_domain::Token>,
    /// Span projects: the spans more than half of the answers contain.
    #[serde(default)]
    pub proposal_spans: Vec<concord_domain::Span>,
    /// Relations projects: the relations more than half of the answers contain whose two ends
    /// are among `proposal_spans` (indexes into `proposal_spans`): the reviewer's starting
    /// point together with them.
    #[serde(default)]
    pub proposal_relations: Vec<concord_domain::Relation>,
    /// Span projects: the gold spans in force (`Some(vec![])`: settled as "no entities").
    #[serde(default)]
    pub gold_spans: Option<Vec<concord_domain::Span>>,
    /// Relations projects: the gold relations in force (indexes into `gold_spans`); `None`
    /// when there is no gold and in other projects.
    #[serde(default)]
    pub gold_relations: Option<Vec<concord_domain::Relation>>,
    /// `import`, `review` or `unanimous`.
    pub gold_source: Option<String>,
    pub gold_question: bool,
    pub suggestion: Option<SuggestionView>,
}

/// Where a project's items stand in the review workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewSummaryView {
    pub items: u64,
    pub unannotated: u64,
    pub in_progress: u64,
    pub needs_review: u64,
    pub disagreements: u64,
    pub accepted: u64,
    pub answered: u64,
    pub gold_by_review: u64,
    pub gold_imported: u64,
    pub gold_questions: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub name: String,
    pub role: Role,
    pub done: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub name: String,
    pub is_admin: bool,
    #[serde(default)]
    pub disabled: bool,
}

/// An API token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// What revoking names.
    pub id: String,
    pub user: String,
    pub name: String,
    pub created_ms: u64,
    pub last_used_ms: Option<u64>,
    pub expires_ms: Option<u64>,
}

/// A Unix time in milliseconds as `YYYY-MM-DD HH:MM UTC`, the same on the server and in the
/// browser (no time zone database on either side).
pub fn format_utc_minute(ms: u64) -> String {
    let minutes = ms / 60_000;
    let (day, minute_of_day) = (minutes / 1440, minutes % 1440);
    let (y, m, d) = concord_domain::civil_from_days(day);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        minute_of_day / 60,
        minute_of_day % 60
    )
}

/// Result of a submit, with the caller's fresh progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitView {
    pub outcome: String,
    pub mine: u64,
    pub done: u64,
    pub total: u64,
}

/// Parses the label lines of the new-project form: `name`, or `name: description`.
pub fn parse_label_lines(text: &str) -> Vec<Label> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (name, description) = match line.split_once(':') {
                Some((n, d)) => (
                    n.trim(),
                    Some(d.trim().to_string()).filter(|d| !d.is_empty()),
                ),
                None => (line, None),
            };
            Label {
                name: name.to_string(),
                description,
                colour: String::new(),
                hotkey: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_minutes_are_formatted_as_calendar_dates() {
        assert_eq!(format_utc_minute(0), "1970-01-01 00:00 UTC");
        // 2000-02-29 23:59:59.999 UTC: a leap day, and seconds are cut, not rounded.
        assert_eq!(format_utc_minute(951_868_799_999), "2000-02-29 23:59 UTC");
        assert_eq!(format_utc_minute(1_798_761_600_000), "2027-01-01 00:00 UTC");
    }

    #[test]
    fn server_fn_errors_keep_their_kind_through_the_wire() {
        for kind in ErrorKind::ALL {
            let sent = AppError::new(kind, format!("{kind} happened"));
            let bytes = sent.ser();
            let received = AppError::de(bytes);
            assert_eq!(received, sent);
        }
        // What the browser would read if the body were not an `AppError` at all.
        let garbled = AppError::de(leptos::server_fn::Bytes::from_static(b"<html>"));
        assert_eq!(garbled.kind, ErrorKind::Internal);
    }

    #[test]
    fn an_unreachable_server_is_unavailable_and_bad_arguments_are_invalid_input() {
        let offline = AppError::from_server_fn_error(ServerFnErrorErr::Request("offline".into()));
        assert_eq!(offline.kind, ErrorKind::Unavailable);
        let missing = AppError::from_server_fn_error(ServerFnErrorErr::MissingArg("id".into()));
        assert_eq!(missing.kind, ErrorKind::InvalidInput);
    }

    #[test]
    fn label_lines_take_optional_descriptions() {
        let labels = parse_label_lines("spam: unwanted mail\n\n ham \n");
        assert_eq!(labels.len(), 2);
        assert_eq!(labels[0].name, "spam");
        assert_eq!(labels[0].description.as_deref(), Some("unwanted mail"));
        assert_eq!(labels[1].name, "ham");
        assert_eq!(labels[1].description, None);
    }
}

/// One coefficient on the agreement dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoefficientRow {
    pub name: String,
    pub value: Option<f64>,
    /// Why the value is undefined.
    pub note: Option<String>,
    /// 95% bootstrap interval, where computed.
    pub ci: Option<(f64, f64)>,
}

/// One-vs-rest agreement on one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelRow {
    pub name: String,
    pub ratings: u64,
    pub kappa: Option<f64>,
    pub alpha: Option<f64>,
    pub specific: Option<f64>,
}

/// One annotator's work and agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotatorRow {
    pub name: String,
    pub items: u64,
    pub seconds_per_item: Option<f64>,
    pub kappa: Option<f64>,
    pub percent: Option<f64>,
    pub gold_answered: u64,
    pub gold_correct: u64,
}

/// Agreement of the items completed on one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayRow {
    pub day: String,
    pub items: usize,
    pub alpha: Option<f64>,
    pub cumulative: Option<f64>,
    pub percent: Option<f64>,
}

/// Everything the agreement dashboard shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgreementView {
    pub annotators: Vec<String>,
    pub categories: Vec<String>,
    /// Multi-label projects compare exact label sets.
    pub exact_sets: bool,
    pub items_total: u64,
    pub items_answered: u64,
    pub items_pairable: usize,
    pub items_excluded: usize,
    pub coefficients: Vec<CoefficientRow>,
    pub labels: Vec<LabelRow>,
    /// Cohen's κ per annotator pair (`None` on the diagonal and where undefined).
    pub pair_kappa: Vec<Vec<Option<f64>>>,
    pub pair_shared: Vec<Vec<u64>>,
    pub annotator_rows: Vec<AnnotatorRow>,
    pub days: Vec<DayRow>,
    pub models: Vec<ModelRaterRow>,
    /// Span projects: span F1, α_U and model versions as span raters (the figures above
    /// compare item labels, which span answers do not have).
    #[serde(default)]
    pub spans: Option<SpanAgreementView>,
    /// Relations projects: relation F1 between annotators and of model versions.
    #[serde(default)]
    pub relations: Option<RelationAgreementView>,
}

/// A relations project's relation agreement on the dashboard. A relation counts as shared
/// when both its spans (start, end, type) and its type match, direction included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationAgreementView {
    pub annotators: Vec<String>,
    /// Items with answers from at least two annotators, and the relations in those answers.
    pub items_compared: u64,
    pub relations_compared: u64,
    /// Means over annotator pairs of the pair's micro and macro relation F1.
    pub micro: Option<f64>,
    pub macro_f1: Option<f64>,
    /// Why the means are missing, when they are.
    pub note: Option<String>,
    pub types: Vec<RelationTypeRow>,
    pub pairs: Vec<RelationPairRow>,
    pub annotator_rows: Vec<RelationAnnotatorRow>,
    pub models: Vec<RelationModelRow>,
}

/// One annotator's relation work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationAnnotatorRow {
    pub name: String,
    pub items: u64,
    pub relations: u64,
    pub f1_with_others: Option<f64>,
    /// Items with independent gold (gold questions, imported gold) and relation F1 against it.
    pub gold_items: u64,
    pub gold_f1: Option<f64>,
}

/// Agreement on one relation type (mean over annotator pairs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationTypeRow {
    pub label: String,
    /// Relations of this type in the compared answers.
    pub relations: u64,
    pub f1: Option<f64>,
}

/// Two annotators' relations over the items both answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationPairRow {
    pub first: String,
    pub second: String,
    pub items: u64,
    pub relations_first: u64,
    pub relations_second: u64,
    /// Relations both gave.
    pub matched: u64,
    pub micro: Option<f64>,
    pub macro_f1: Option<f64>,
}

/// A model version's suggested relations scored as a rater.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationModelRow {
    pub version: u64,
    pub trainer: String,
    pub name: Option<String>,
    pub items: u64,
    pub mean_f1: Option<f64>,
    /// Micro relation F1 with each annotator, in the view's annotator order.
    pub f1_with: Vec<Option<f64>>,
    pub gold_items: u64,
    pub gold_precision: Option<f64>,
    pub gold_recall: Option<f64>,
    pub gold_f1: Option<f64>,
}

/// A span project's agreement on the dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanAgreementView {
    pub annotators: Vec<String>,
    /// Items with answers from at least two annotators, and their spans.
    pub items_compared: u64,
    pub spans_compared: u64,
    /// Means over annotator pairs.
    pub exact_micro: Option<f64>,
    pub exact_macro: Option<f64>,
    pub overlap_micro: Option<f64>,
    pub overlap_macro: Option<f64>,
    /// α_U over the items every annotator answered.
    pub alpha_u: Option<f64>,
    pub alpha_u_items: u64,
    /// Why α_U is missing, when it is.
    pub alpha_u_note: Option<String>,
    pub alpha_u_mean_pairwise: Option<f64>,
    pub types: Vec<SpanTypeRow>,
    pub pairs: Vec<SpanPairRow>,
    pub annotator_rows: Vec<SpanAnnotatorRow>,
    pub models: Vec<SpanModelRow>,
}

/// Agreement on one entity type (means over annotator pairs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanTypeRow {
    pub label: String,
    pub spans: u64,
    pub exact: Option<f64>,
    pub overlap: Option<f64>,
    pub alpha_u: Option<f64>,
}

/// Two annotators over the items both answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanPairRow {
    pub first: String,
    pub second: String,
    pub items: u64,
    pub spans_first: u64,
    pub spans_second: u64,
    pub exact: Option<f64>,
    pub exact_macro: Option<f64>,
    pub overlap: Option<f64>,
    pub alpha_u: Option<f64>,
}

/// One annotator's span work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanAnnotatorRow {
    pub name: String,
    pub items: u64,
    pub spans: u64,
    pub exact_with_others: Option<f64>,
    /// Items with independent gold (gold questions, imported gold) and exact F1 against it.
    pub gold_items: u64,
    pub gold_exact: Option<f64>,
}

/// A model version's suggested spans scored as a rater.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanModelRow {
    pub version: u64,
    pub trainer: String,
    pub name: Option<String>,
    pub items: u64,
    pub mean_exact: Option<f64>,
    /// Exact F1 with each annotator, in the view's annotator order.
    pub exact_with: Vec<Option<f64>>,
    pub gold_items: u64,
    pub gold_exact: Option<f64>,
    pub gold_overlap: Option<f64>,
}

/// A model version scored as a rater against the annotators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRaterRow {
    pub version: u64,
    pub trainer: String,
    pub items: u64,
    pub mean_kappa: Option<f64>,
    pub majority: Option<f64>,
    /// κ with each annotator, in the view's annotator order.
    pub kappas: Vec<Option<f64>>,
}

/// The confusion matrix of two annotators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfusionView {
    pub first: String,
    pub second: String,
    pub categories: Vec<String>,
    pub counts: Vec<Vec<u64>>,
    pub excluded: usize,
}

/// A project's learning curve and the rounds of its loop (mirrors
/// `concord_engine::LearningCurve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearningCurveView {
    /// `accuracy` (label projects) or `span_f1` (strict micro entity F1).
    pub metric: String,
    /// Trained versions with held-out figures, oldest first.
    pub points: Vec<CurvePointView>,
    pub fit: Option<CurveFitView>,
    /// Confirmed labels now (span projects: those of the newest point).
    pub labels_now: u64,
    pub target: Option<f64>,
    /// The target is the default share of the fitted ceiling, not one asked for.
    pub target_is_default: bool,
    pub labels_needed: Option<u64>,
    pub more_labels: Option<u64>,
    /// Why there is no estimate.
    pub why_not: Option<String>,
    pub baseline: Option<BaselineView>,
    pub rounds: Vec<RoundView>,
    pub pending: Option<PendingRoundView>,
}

/// A held-out figure with its 95% bootstrap interval, when the version kept its predictions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoredView {
    pub value: f64,
    pub interval: Option<(f64, f64)>,
}

/// One trained version on the learning curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePointView {
    pub version: u64,
    pub trainer: String,
    /// The loop trained it on its own.
    pub auto: bool,
    pub labels: u64,
    pub held_out_items: u64,
    pub score: ScoredView,
    /// Label projects: held-out macro-F1.
    pub macro_f1: Option<ScoredView>,
}

/// The fitted inverse power law `score(n) = a − b·n^(−c)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurveFitView {
    pub a: f64,
    pub b: f64,
    pub c: f64,
    /// Weighted root-mean-square distance of the points from the curve.
    pub residual: f64,
}

impl CurveFitView {
    /// The curve's score at `labels`.
    pub fn score_at(&self, labels: f64) -> f64 {
        self.a - self.b * labels.max(1.0).powf(-self.c)
    }
}

/// The reference a score is compared with (`majority label` or `patterns`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineView {
    pub name: String,
    pub value: f64,
}

/// One round of the loop: from the previous trained version to `version`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundView {
    pub round: u32,
    pub version: u64,
    pub trainer: String,
    pub auto: bool,
    pub labels: u64,
    pub labels_added: i64,
    pub score: Option<f64>,
    pub change: Option<f64>,
    pub answers: u64,
    pub annotator_ms: u64,
    pub wall_ms: Option<u64>,
    /// An automatically trained version: whether it replaced the active one.
    pub activated: Option<bool>,
}

/// Work since the newest trained version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRoundView {
    /// Label projects only.
    pub labels_added: Option<i64>,
    pub answers: u64,
    pub annotator_ms: u64,
}

/// A span project's span settings as the settings form edits them: the pre-annotation
/// patterns grouped by label, one row per label in the project's label order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanSettingsView {
    pub overlapping_spans: bool,
    pub accept_threshold: u8,
    pub labels: Vec<LabelPatternsView>,
}

/// One label's patterns: terms and regular expressions, one per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelPatternsView {
    pub label: String,
    pub colour: String,
    pub terms: String,
    pub regexes: String,
    /// Every pattern of the label ignores case (and there is at least one).
    pub case_insensitive: bool,
    /// Some patterns of the label ignore case and others do not (set through the API): the
    /// form has one flag per label, so saving it applies that flag to all of them.
    pub mixed_case: bool,
}

/// One label's row of the pattern editor as the form sends it. The checkbox arrives only when
/// ticked, so it is an `Option`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LabelPatternsForm {
    pub label: String,
    #[serde(default)]
    pub terms: String,
    #[serde(default)]
    pub regexes: String,
    #[serde(default)]
    pub case_insensitive: Option<String>,
}

/// Groups a project's patterns by label for the editor (labels without patterns get an empty
/// row).
pub fn patterns_by_label(
    labels: &[Label],
    patterns: &[concord_domain::SpanPattern],
) -> Vec<LabelPatternsView> {
    use concord_domain::PatternKind;
    labels
        .iter()
        .map(|label| {
            let own: Vec<_> = patterns.iter().filter(|p| p.label == label.name).collect();
            let lines = |kind: PatternKind| {
                own.iter()
                    .filter(|p| p.kind == kind)
                    .map(|p| p.pattern.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            let ignoring = own.iter().filter(|p| p.case_insensitive).count();
            LabelPatternsView {
                label: label.name.clone(),
                colour: label.colour.clone(),
                terms: lines(PatternKind::Term),
                regexes: lines(PatternKind::Regex),
                case_insensitive: ignoring > 0 && ignoring == own.len(),
                mixed_case: ignoring > 0 && ignoring < own.len(),
            }
        })
        .collect()
}

/// The patterns the editor's rows describe: one per non-blank line. Lines are trimmed, since a
/// match must start and end on a token, never on white space.
pub fn patterns_from_form(rows: &[LabelPatternsForm]) -> Vec<concord_domain::SpanPattern> {
    use concord_domain::{PatternKind, SpanPattern};
    rows.iter()
        .flat_map(|row| {
            let case_insensitive = row.case_insensitive.is_some();
            let lines = |text: &str, kind: PatternKind| {
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|pattern| SpanPattern {
                        label: row.label.clone(),
                        kind,
                        pattern: pattern.to_string(),
                        case_insensitive,
                    })
                    .collect::<Vec<_>>()
            };
            let mut patterns = lines(&row.terms, PatternKind::Term);
            patterns.extend(lines(&row.regexes, PatternKind::Regex));
            patterns
        })
        .collect()
}

#[cfg(test)]
mod span_pattern_tests {
    use super::*;
    use concord_domain::{PatternKind, SpanPattern};

    fn pattern(label: &str, kind: PatternKind, text: &str, ci: bool) -> SpanPattern {
        SpanPattern {
            label: label.into(),
            kind,
            pattern: text.into(),
            case_insensitive: ci,
        }
    }

    #[test]
    fn the_editor_rows_round_trip_a_projects_patterns() {
        let labels = [
            Label::named("person"),
            Label::named("geo-loc"),
            Label::named("company"),
        ];
        let stored = vec![
            pattern("person", PatternKind::Term, "Justin Bieber", false),
            pattern("geo-loc", PatternKind::Term, "new york", true),
            pattern("geo-loc", PatternKind::Regex, r"[A-Z][a-z]+ville", true),
        ];
        let rows = patterns_by_label(&labels, &stored);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].terms, "new york");
        assert_eq!(rows[1].regexes, "[A-Z][a-z]+ville");
        assert!(rows[1].case_insensitive && !rows[1].mixed_case);
        assert!(!rows[0].case_insensitive);
        assert_eq!((rows[2].terms.as_str(), rows[2].regexes.as_str()), ("", ""));
        // What the browser sends back: textareas use CRLF, blank and padded lines included.
        let form: Vec<LabelPatternsForm> = rows
            .iter()
            .map(|r| LabelPatternsForm {
                label: r.label.clone(),
                terms: format!("{}\r\n\r\n", r.terms.replace('\n', "\r\n")),
                regexes: format!("  {}  ", r.regexes),
                case_insensitive: r.case_insensitive.then(|| "on".to_string()),
            })
            .collect();
        assert_eq!(patterns_from_form(&form), stored);
    }

    #[test]
    fn a_label_whose_patterns_differ_in_case_is_marked_mixed() {
        let labels = [Label::named("product")];
        let stored = [
            pattern("product", PatternKind::Term, "iphone", true),
            pattern("product", PatternKind::Regex, "[A-Z]{3}", false),
        ];
        let rows = patterns_by_label(&labels, &stored);
        assert!(rows[0].mixed_case);
        assert!(!rows[0].case_insensitive);
    }
}

/// What bulk-accepting a version's suggestions at a threshold would set, and that slice's
/// error rate on held-out labels (mirrors `concord_engine::BulkAcceptPreview`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkAcceptPreviewView {
    pub version: u64,
    pub min_confidence: u8,
    pub items: u64,
    pub held_out_items: u64,
    pub held_out_errors: u64,
    pub error_rate: Option<f64>,
    pub error_interval: Option<(f64, f64)>,
    /// The version's evidence sentence.
    pub evidence: String,
}

/// One bulk acceptance whose gold is still in force (mirrors `concord_engine::BulkAcceptBatch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkAcceptBatchView {
    pub version: u64,
    pub min_confidence: u8,
    pub reviewer: u64,
    pub reviewer_name: String,
    pub at_ms: u64,
    pub items: u64,
}

/// The bulk-accept section of the review page: the active version, if it is validated, and
/// the batches that can be undone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkAcceptStateView {
    /// The active version and whether it is validated (with its evidence sentence).
    pub active: Option<(u64, bool, String)>,
    pub batches: Vec<BulkAcceptBatchView>,
}

/// The fine-tuning milestones as the settings form shows them: `100, 300, 1000`.
pub fn format_milestones(milestones: &[u32]) -> String {
    milestones
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The fine-tuning or few-shot milestones typed in the settings form: whole numbers separated by commas
/// or spaces (none: never fine-tune on its own). Their order and range are the engine's to
/// check.
pub fn parse_milestones(text: &str) -> Result<Vec<u32>, String> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<u32>()
                .map_err(|_| format!("milestones are label counts; {part:?} is not one"))
        })
        .collect()
}

#[cfg(test)]
mod milestone_tests {
    use super::*;

    #[test]
    fn milestones_round_trip_through_the_form_and_refuse_other_text() {
        assert_eq!(parse_milestones("100, 300,1000 "), Ok(vec![100, 300, 1000]));
        assert_eq!(parse_milestones("  "), Ok(Vec::new()));
        assert_eq!(format_milestones(&[100, 300, 1000]), "100, 300, 1000");
        assert_eq!(
            parse_milestones(&format_milestones(&[5, 50])),
            Ok(vec![5, 50])
        );
        assert!(parse_milestones("100, lots").is_err());
        assert!(parse_milestones("-3").is_err());
    }
}

/// A likely label error on the "Likely label errors" page (see `concord_engine::LabelErrorRow`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelErrorView {
    pub item_id: String,
    /// The item's text, cut to its first 500 characters.
    pub text: String,
    /// How likely the given label is wrong, in [0, 1].
    pub score: f32,
    pub given: String,
    pub suggested: String,
    /// Why it is listed, in words.
    pub reason: String,
    /// (annotator, label), by annotator name.
    pub annotators: Vec<(String, String)>,
}

/// An annotator's answers against the consensus of the model and the other annotators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotatorQualityView {
    pub annotator: String,
    pub answers: u64,
    pub agreement: Option<f32>,
    pub quality: f32,
}

/// A project's likely label errors, most likely first, and its annotators' quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelErrorsView {
    pub rows: Vec<LabelErrorView>,
    pub flagged: u64,
    pub checked: u64,
    pub not_embedded: u64,
    pub annotators: Vec<AnnotatorQualityView>,
}
