use concord_domain::{
    AnnotationSource, AnnotationValue, AutoTrigger, GoldSource, HeldOutPrediction,
    HeldOutSpanCounts, JobSpec, JobSpecError, JobState, ProjectSpec, SuggestedRelation,
    SuggestedSpan, Token, UserId, VersionComparison,
};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// An account. `password_hash` is a PHC string (argon2id); the store never sees passwords.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_ms: u64,
    #[serde(default)]
    pub disabled: bool,
}

/// A signed-in browser session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user: UserId,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// When the session was last used, refreshed at most once a minute (so reading pages
    /// does not write on every request). 0 in sessions stored before idle timeouts existed:
    /// `created_ms` stands in.
    #[serde(default)]
    pub last_seen_ms: u64,
}

/// A bearer token for the REST API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub user: UserId,
    pub name: String,
    pub created_ms: u64,
    /// After this instant the token no longer works (and is purged); `None` never expires,
    /// as every token stored before expiry existed.
    #[serde(default)]
    pub expires_ms: Option<u64>,
    /// When the token last authenticated a request, refreshed at most once a minute.
    #[serde(default)]
    pub last_used_ms: Option<u64>,
}

/// A project and its committed size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub spec: ProjectSpec,
    pub created_ms: u64,
    pub created_by: UserId,
    /// Items `0..next_seq` are visible; higher seqs are staged by an unfinished import.
    pub next_seq: u64,
    /// Items with at least `overlap` annotations.
    #[serde(default)]
    pub done: u64,
    /// Annotation rows in the project (one per annotator and item).
    #[serde(default)]
    pub annotations: u64,
    /// The model version whose suggestions annotators see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_model: Option<u64>,
}

/// One item: the text to annotate, its metadata as imported, its optional gold label(s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    pub id: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub meta: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold: Option<AnnotationValue>,
    /// Who set `gold`; absent for imported gold (the common case, kept out of every row).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gold_source: Option<GoldSource>,
    /// Span projects: the item's word tokens, fixed at import (given by the file, or
    /// `concord_domain::tokens::tokenize`). Stored as flat `[start, end, start, end, …]` code
    /// point offsets; empty for other projects.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "token_pairs")]
    pub tokens: Vec<Token>,
}

impl ItemRecord {
    /// The item's tokens: as stored, or tokenized now for an item stored without them.
    pub fn tokens(&self) -> std::borrow::Cow<'_, [Token]> {
        if self.tokens.is_empty() && !self.text.is_empty() {
            std::borrow::Cow::Owned(concord_domain::tokens::tokenize(&self.text))
        } else {
            std::borrow::Cow::Borrowed(&self.tokens)
        }
    }

    /// Where the gold label came from, when there is one.
    pub fn gold_source(&self) -> Option<GoldSource> {
        self.gold
            .as_ref()
            .map(|_| self.gold_source.clone().unwrap_or(GoldSource::Import))
    }
}

/// Tokens as a flat list of offsets: a 5,000-word item's tokens take ~60 KB rather than the
/// ~150 KB of `{"start":…,"end":…}` objects.
mod token_pairs {
    use concord_domain::Token;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(tokens: &[Token], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(tokens.iter().flat_map(|t| [t.start, t.end]))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Token>, D::Error> {
        let flat = Vec::<u32>::deserialize(d)?;
        if flat.len() % 2 != 0 {
            return Err(D::Error::custom("token offsets come in pairs"));
        }
        Ok(flat
            .chunks_exact(2)
            .map(|pair| Token {
                start: pair[0],
                end: pair[1],
            })
            .collect())
    }
}

/// The id and text of a stored item, borrowed from the row: index scans skip the rest.
#[derive(Deserialize)]
pub(crate) struct ItemKey<'a> {
    #[serde(borrow)]
    pub id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub text: std::borrow::Cow<'a, str>,
}

/// The seq an id names positionally: `"1"` is the first item (seq 0). Only canonical decimals
/// count (no sign, no leading zero). Such an id on the item at that seq has no `ITEM_IDS` row.
pub(crate) fn positional_seq(id: &str) -> Option<u64> {
    let first = *id.as_bytes().first()?;
    if !(b'1'..=b'9').contains(&first) || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse::<u64>().ok().map(|n| n - 1)
}

/// A model of a project: how it was made, how well it did, and what it needs to predict.
/// `classifier` is opaque to the store (the engine's serialised head or zero-shot state).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersionRecord {
    /// `zero_shot`, `head` or `fine_tune`.
    pub trainer: String,
    pub created_ms: u64,
    pub parent: Option<u64>,
    pub params: VersionParams,
    pub train_size: u64,
    /// SHA-256 (hex) over the training items and labels: equal data, equal hash.
    pub train_hash: String,
    /// The label names, in the classifier's class order.
    pub labels: Vec<String>,
    /// Fingerprint of the encoder the classifier expects.
    pub encoder: String,
    /// Held-out metrics (absent for zero-shot versions, which see no labels).
    pub metrics: Option<serde_json::Value>,
    pub classifier: serde_json::Value,
    /// A name given where the version was made: an imported version's ("suggestions of an
    /// external model"), shown beside its number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Label projects: each held-out confirmed item as the version predicted it (empty for
    /// versions that saw no labels, and for versions stored before this was kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_out: Vec<HeldOutPrediction>,
    /// Span projects: strict match counts on each held-out item, the version's and the
    /// patterns'.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_out_spans: Vec<HeldOutSpanCounts>,
    /// Confirmed labels (items) when the version was trained: its training and held-out items
    /// together; absent for versions that saw none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<u64>,
    /// Set when the job worker trained the version on its own, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoTrigger>,
    /// An automatically trained version against the version active at the time: whether it
    /// replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<VersionComparison>,
}

/// How a version was made. The fields the engine reads back are typed; the trainer's other
/// settings are kept as recorded, for people to read. Every field may be absent, because
/// versions from older releases lack them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionParams {
    /// The base model's folder name; absent in versions made before each project chose its
    /// model, which used the default one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The fine-tuned weights (a file in the encoders folder) that replace the base model's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder_file: Option<String>,
    /// Items whose embeddings calibrated a zero-shot version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration_items: Option<u64>,
    /// The trainer's own settings (head and fine-tuning hyperparameters, epoch losses,
    /// zero-shot prompts and calibration), shown as they were recorded and never read back.
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// A model's suggestion for an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestionRecord {
    pub labels: Vec<String>,
    /// Probability of the suggested label (single-label) or the least sure chosen label.
    pub confidence: f32,
    /// Per label, in the version's label order (empty for span suggestions).
    pub probabilities: Vec<f32>,
    pub version: u64,
    pub created_ms: u64,
    /// Span projects: the suggested spans, each with its own confidence. `labels` is empty and
    /// `confidence` is the item-level certainty (1 − the uncertainty active learning ranks by).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spans: Vec<SuggestedSpan>,
    /// Relations projects: the suggested relations between `spans` (by index), each with its
    /// own confidence.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relations: Vec<SuggestedRelation>,
}

/// The items a project's annotators should see first, and why each was picked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueOrderRecord {
    pub seqs: Vec<u64>,
    pub reasons: Vec<String>,
    /// The model version whose predictions chose them.
    pub version: u64,
    pub strategy: String,
}

/// A background job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub project: concord_domain::ProjectId,
    /// The job's kind as stored (`predict`, `train`). Kept as text with `params` so that a job
    /// this binary cannot read (a newer file, a damaged row) still lists and can fail with a
    /// message; [`JobRecord::spec`] reads the two.
    pub kind: String,
    pub params: serde_json::Value,
    pub state: JobState,
    pub done: u64,
    pub total: u64,
    pub requested_by: UserId,
    pub created_ms: u64,
    pub started_ms: Option<u64>,
    pub finished_ms: Option<u64>,
    pub error: Option<String>,
    /// How far a resumable job got (the next item seq to do).
    pub cursor: u64,
    pub cancel_requested: bool,
    pub result: Option<serde_json::Value>,
    /// How many engine starts in a row found this job running: it was interrupted by a crash
    /// (a clean stop puts it back in the queue). The engine fails a job found running twice in
    /// a row instead of running it again, since it probably brings the process down. Absent
    /// (0) in rows from older releases and in jobs never interrupted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interrupted_starts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl JobRecord {
    /// A job of `spec`, queued at `created_ms`, with no progress.
    pub fn queued(
        project: concord_domain::ProjectId,
        spec: &JobSpec,
        requested_by: UserId,
        created_ms: u64,
    ) -> JobRecord {
        JobRecord {
            project,
            kind: spec.kind().as_str().to_string(),
            params: spec.params(),
            state: JobState::Queued,
            done: 0,
            total: 0,
            requested_by,
            created_ms,
            started_ms: None,
            finished_ms: None,
            error: None,
            cursor: 0,
            cancel_requested: false,
            result: None,
            interrupted_starts: 0,
        }
    }

    /// The job's kind and parameters, or why they cannot be read.
    pub fn spec(&self) -> Result<JobSpec, JobSpecError> {
        JobSpec::from_stored(&self.kind, &self.params)
    }
}

/// A job's progress, stored with the batch of results it reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobProgress {
    pub job: u64,
    /// The next item seq to do when the job resumes.
    pub cursor: u64,
    /// Units of work done (items, or training steps).
    pub done: u64,
}

/// One annotator's answer for one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnotationRecord {
    pub value: AnnotationValue,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// Milliseconds the annotator spent on the item, summed over re-annotations.
    pub time_spent_ms: u64,
    pub source: AnnotationSource,
    /// Whether this answer counts in its suggestion's live record (so that changing it later
    /// takes it out again).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub live_counted: bool,
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs to a Vec cannot fail: no maps with non-string keys,
    // no custom Serialize impls that error.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Decodes a row; records may borrow from it (`ItemKey`) or own their data.
pub(crate) fn decode<'a, T: Deserialize<'a>>(
    table: &'static str,
    bytes: &'a [u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_tokens_stored_before_expiry_existed_still_read() {
        let session: SessionRecord =
            decode("sessions", br#"{"user":3,"created_ms":10,"expires_ms":20}"#).unwrap();
        assert_eq!(session.last_seen_ms, 0);
        let token: TokenRecord =
            decode("api_tokens", br#"{"user":3,"name":"ci","created_ms":10}"#).unwrap();
        assert_eq!((token.expires_ms, token.last_used_ms), (None, None));
    }

    #[test]
    fn version_params_from_older_releases_still_read() {
        // A head trained before projects chose their model: no "model" key.
        let old: VersionParams =
            serde_json::from_str(r#"{"learning_rate":0.1,"epochs":200}"#).unwrap();
        assert_eq!(old.model, None);
        assert_eq!(old.encoder_file, None);
        assert_eq!(old.settings["epochs"], 200);
        // A zero-shot version as written by the release before typed parameters.
        let zero_shot: VersionParams = serde_json::from_str(
            r#"{"model":"m","calibration":"standardize","label_priors":"em","prompts":["a"],"calibration_items":24}"#,
        )
        .unwrap();
        assert_eq!(zero_shot.model.as_deref(), Some("m"));
        assert_eq!(zero_shot.calibration_items, Some(24));
        assert_eq!(zero_shot.settings["prompts"], serde_json::json!(["a"]));
        assert!(!zero_shot.settings.contains_key("model"));
        // Written back, every key is still there.
        let back: serde_json::Value = serde_json::to_value(&zero_shot).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"model":"m","calibration":"standardize","label_priors":"em","prompts":["a"],"calibration_items":24})
        );
    }

    #[test]
    fn job_records_keep_their_stored_strings() {
        let stored = r#"{"project":1,"kind":"train","params":{"trainer":"fine_tune","epochs":3},"state":"running","done":2,"total":9,"requested_by":1,"created_ms":5,"started_ms":6,"finished_ms":null,"error":null,"cursor":2,"cancel_requested":false,"result":null}"#;
        let record: JobRecord = serde_json::from_str(stored).unwrap();
        assert_eq!(record.state, JobState::Running);
        assert_eq!(
            record.spec(),
            Ok(JobSpec::Train(concord_domain::TrainParams {
                trainer: concord_domain::Trainer::FineTune,
                epochs: Some(3),
                auto: None,
            }))
        );
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            serde_json::from_str::<serde_json::Value>(stored).unwrap()
        );
    }
}
