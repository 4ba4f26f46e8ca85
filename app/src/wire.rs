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
