//! Background jobs as the engine runs them and the browser shows them: what kind of work a
//! job does, with which parameters, and where it stands. The names are the snake_case strings
//! stored in database files and sent over the wire ("predict", "train", "queued", ...), so a
//! rename here is a format change.

use serde::{Deserialize, Serialize};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Embeds every item and writes the active model's suggestions (a zero-shot model is made
    /// first when the project has none).
    Predict,
    /// Trains a new model version on the confirmed labels.
    Train,
    /// Runs a generative model (a GGUF file in process, or an OpenAI-compatible server) over
    /// every item: a new version with trainer `llm`.
    Generate,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [JobKind::Predict, JobKind::Train, JobKind::Generate];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Predict => "predict",
            JobKind::Train => "train",
            JobKind::Generate => "generate",
        }
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobKind {
    type Err = JobSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| JobSpecError::UnknownKind(s.to_string()))
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job has stopped for good (done, failed or cancelled).
    pub fn is_finished(self) -> bool {
        match self {
            JobState::Queued | JobState::Running => false,
            JobState::Done | JobState::Failed | JobState::Cancelled => true,
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What trains a new version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trainer {
    /// A softmax head on the frozen encoder's cached embeddings (seconds).
    #[default]
    Head,
    /// The encoder and a head trained together (minutes); the tuned encoder's weights are
    /// saved as a safetensors file named by its SHA-256, and every item is re-embedded.
    FineTune,
    /// Few labels: the encoder tuned contrastively on pairs of the labelled texts (SetFit-style,
    /// tens of seconds at 50–100 labels), then the cross-validated head on its embeddings;
    /// saved and re-embedded as for `FineTune`. Single-label classification only.
    #[serde(rename = "setfit")]
    SetFit,
}

impl Trainer {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trainer::Head => "head",
            Trainer::FineTune => "fine_tune",
            Trainer::SetFit => "setfit",
        }
    }
}

impl std::fmt::Display for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A training job's parameters, as requested (`{"trainer":"fine_tune","epochs":3}`; an empty
/// object asks for a head) and as stored with the job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainParams {
    #[serde(default)]
    pub trainer: Trainer,
    /// Fine-tuning epochs (the engine bounds them; absent means its default).
    #[serde(default)]
    pub epochs: Option<usize>,
    /// Set when the job worker queued the training on its own (the loop that trains itself):
    /// the new version then replaces the active one only if it is not worse on the held-out
    /// split. Requests from people never carry it (the engine refuses one that does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoTrigger>,
}

/// Why the job worker queued a training on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AutoTrigger {
    /// `labels` confirmed labels, at least the project's `every` more than the active version
    /// was trained on: the head is retrained.
    Every { labels: u64 },
    /// The confirmed labels reached the milestone `milestone` (a fine-tuning or a few-shot
    /// one: the job's trainer says which).
    Milestone { milestone: u64, labels: u64 },
}

/// A generator run's parameters, as requested (`{"generator": "SmolLM2-135M-Instruct.Q4_1"}`)
/// and as stored with the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateParams {
    /// A name `GET /api/v1/models` lists under `generators`.
    pub generator: String,
    /// Demonstrations per item, chosen among the confirmed labels of the training split
    /// nearest to the item by embedding; absent means [`GenerateParams::DEFAULT_SHOTS`], 0
    /// zero-shot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shots: Option<u8>,
}

impl GenerateParams {
    pub const DEFAULT_SHOTS: u8 = 8;
    /// More demonstrations than this make prompts longer than small models' windows.
    pub const MAX_SHOTS: u8 = 32;

    pub fn shots(&self) -> usize {
        usize::from(self.shots.unwrap_or(Self::DEFAULT_SHOTS))
    }
}

/// A job's kind with its parameters: what the worker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobSpec {
    Predict,
    Train(TrainParams),
    Generate(GenerateParams),
}

impl JobSpec {
    pub fn kind(&self) -> JobKind {
        match self {
            JobSpec::Predict => JobKind::Predict,
            JobSpec::Train(_) => JobKind::Train,
            JobSpec::Generate(_) => JobKind::Generate,
        }
    }

    /// The parameters as stored beside the kind: `null` for a prediction, the
    /// [`TrainParams`] object for training.
    pub fn params(&self) -> serde_json::Value {
        match self {
            JobSpec::Predict => serde_json::Value::Null,
            JobSpec::Train(params) => serde_json::json!(params),
            JobSpec::Generate(params) => serde_json::json!(params),
        }
    }

    /// Reads a stored kind and its parameters. Nothing is guessed: a kind this version does
    /// not know, or parameters that do not fit the kind, are an error.
    pub fn from_stored(kind: &str, params: &serde_json::Value) -> Result<JobSpec, JobSpecError> {
        let kind: JobKind = kind.parse()?;
        let bad = |detail: String| JobSpecError::BadParams { kind, detail };
        match kind {
            JobKind::Predict => match params {
                serde_json::Value::Null => Ok(JobSpec::Predict),
                serde_json::Value::Object(map) if map.is_empty() => Ok(JobSpec::Predict),
                other => Err(bad(format!("a prediction takes none, found {other}"))),
            },
            JobKind::Train => TrainParams::deserialize(params)
                .map(JobSpec::Train)
                .map_err(|e| bad(e.to_string())),
            JobKind::Generate => GenerateParams::deserialize(params)
                .map(JobSpec::Generate)
                .map_err(|e| bad(e.to_string())),
        }
    }
}

/// Why a stored job cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobSpecError {
    #[error("unknown job kind {0:?} (known kinds: predict, train, generate)")]
    UnknownKind(String),
    #[error("unreadable {kind} parameters: {detail}")]
    BadParams { kind: JobKind, detail: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_stored_strings() {
        for kind in JobKind::ALL {
            assert_eq!(serde_json::json!(kind), kind.as_str());
            assert_eq!(kind.as_str().parse::<JobKind>(), Ok(kind));
        }
        for state in [
            JobState::Queued,
            JobState::Running,
            JobState::Done,
            JobState::Failed,
            JobState::Cancelled,
        ] {
            assert_eq!(serde_json::json!(state), state.as_str());
            let back: JobState = serde_json::from_value(serde_json::json!(state.as_str())).unwrap();
            assert_eq!(back, state);
        }
        assert_eq!(serde_json::json!(Trainer::FineTune), "fine_tune");
    }

    #[test]
    fn train_params_keep_their_wire_shape() {
        let spec = JobSpec::Train(TrainParams {
            trainer: Trainer::FineTune,
            epochs: Some(3),
            auto: None,
        });
        assert_eq!(
            spec.params().to_string(),
            r#"{"trainer":"fine_tune","epochs":3}"#
        );
        assert_eq!(
            serde_json::to_value(TrainParams::default()).unwrap(),
            JobSpec::Train(TrainParams::default()).params()
        );
        assert_eq!(JobSpec::from_stored("train", &spec.params()), Ok(spec));
        assert_eq!(
            JobSpec::from_stored("train", &serde_json::json!({})),
            Ok(JobSpec::Train(TrainParams::default()))
        );
        assert_eq!(
            JobSpec::from_stored("predict", &serde_json::Value::Null),
            Ok(JobSpec::Predict)
        );
    }

    #[test]
    fn unreadable_jobs_are_errors_not_defaults() {
        assert_eq!(
            JobSpec::from_stored("span", &serde_json::Value::Null),
            Err(JobSpecError::UnknownKind("span".into()))
        );
        let err =
            JobSpec::from_stored("train", &serde_json::json!({ "trainer": "gpt" })).unwrap_err();
        assert!(
            matches!(&err, JobSpecError::BadParams { kind: JobKind::Train, detail } if detail.contains("gpt")),
            "{err:?}"
        );
        assert!(JobSpec::from_stored("train", &serde_json::Value::Null).is_err());
        assert!(JobSpec::from_stored("predict", &serde_json::json!({ "epochs": 3 })).is_err());
    }
}
