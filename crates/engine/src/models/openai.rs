//! Label scoring by a remote OpenAI-compatible server (llama.cpp's `llama-server`, vLLM,
//! Ollama's `/v1`, OpenAI itself): one `POST {base_url}/chat/completions` per item, carrying the
//! same prompt as the in-process scorer (`concord_ml::generative`): a system turn with
//! [`instructions`], each demonstration as a user turn (`Text: …`) and the assistant's answer
//! (the label's name), and the item as the last user turn.
//!
//! Two ways of reading an answer, tried in this order:
//!
//! 1. **Log-probabilities** ([`ScoringMethod::LogProbs`]): one token is generated
//!    (`max_tokens: 1`, `temperature: 0`) with the 20 most likely first tokens
//!    (`logprobs: true`, `top_logprobs: 20`). A token stands for a label when, trimmed and
//!    lowercased, it is a non-empty prefix of the label's name lowercased; each label collects
//!    the probability of its tokens (a token that several labels begin with is shared evenly),
//!    a label none of the tokens stands for gets the smallest probability seen (its first token
//!    is at most that likely), and the result is normalised over the labels. These are
//!    probabilities of the label's first token, not of the whole name: labels sharing a first
//!    token share its mass.
//! 2. **A JSON-schema answer** ([`ScoringMethod::JsonSchema`]), when the server gives no
//!    log-probabilities (the field missing or null) or refuses the request that asks for them
//!    (HTTP 400/422, and the same item then succeeds without them): the answer is constrained
//!    to `{"label": <one of the names>}` and the chosen label gets 1, the others 0. Those are
//!    not probabilities, and whoever shows them must say so. The switch is remembered for the
//!    rest of the run.
//!
//! At most [`OpenAiConfig::concurrency`] requests are in flight (scoped worker threads taking
//! the next item from a shared counter); the calling thread collects the answers, calls
//! `progress` and, when it says stop, no further item is started. Each request has a timeout;
//! connection failures, timeouts, 429 and 5xx are retried with exponential backoff and jitter
//! (or after the server's `Retry-After`, capped), other 4xx are not. Response bodies are read
//! up to [`MAX_RESPONSE_BYTES`].
//!
//! The API key is sent only as `Authorization: Bearer …`: [`ApiKey`] prints as `ApiKey(***)`,
//! is not serialisable, and server messages quoted in errors are cut to 300 characters with
//! the key (and any `Bearer …` token) blanked out.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use concord_ml::generative::{instructions, ChatFormat, ItemInput, LabelSpec, PromptSpec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::EngineError;

/// The server's base URL, up to and including `/v1` (e.g. `http://localhost:11434/v1`).
pub const ENV_BASE_URL: &str = "CONCORD_LLM_BASE_URL";
/// The model name the server knows.
pub const ENV_MODEL: &str = "CONCORD_LLM_MODEL";
/// The API key (optional: local servers need none).
pub const ENV_API_KEY: &str = "CONCORD_LLM_API_KEY";
/// Requests in flight at once (optional, 1 to [`MAX_CONCURRENCY`]).
pub const ENV_CONCURRENCY: &str = "CONCORD_LLM_CONCURRENCY";
/// Seconds one request may take (optional, 1 to 3600).
pub const ENV_TIMEOUT_SECS: &str = "CONCORD_LLM_TIMEOUT_SECS";

/// The most bytes of a response body read; a larger answer is an error.
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;
/// The most requests in flight a configuration may ask for.
pub const MAX_CONCURRENCY: usize = 64;
/// The most bytes of an error response read (what is quoted of it is shorter still).
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// The most characters of a server's error message quoted in an error.
const ERROR_MESSAGE_CHARS: usize = 300;
/// Candidate first tokens asked for (OpenAI's maximum).
const TOP_LOGPROBS: u32 = 20;
/// The longest wait between two attempts, whatever the backoff or `Retry-After` says.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// The longest a connection may take to open (less when the request timeout is shorter).
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A label's probability before normalising when the server listed no token at all.
const PROBABILITY_FLOOR: f64 = 1e-6;
/// How often a wait between attempts looks for a stop.
const STOP_POLL: Duration = Duration::from_millis(50);

/// An API key. It prints as `ApiKey(***)` (Debug and Display), has no `Serialize`, and leaves
/// this module only inside an `Authorization: Bearer` header.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> ApiKey {
        ApiKey(key.into())
    }

    /// The key itself, for the request header only.
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Where the server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// Up to and including the API version, without `/chat/completions`
    /// (e.g. `http://localhost:11434/v1`).
    pub base_url: String,
    pub model: String,
    pub api_key: Option<ApiKey>,
    /// Requests in flight at once (1 to [`MAX_CONCURRENCY`]).
    pub concurrency: usize,
    /// How long one request (connecting, sending, the whole answer) may take.
    pub timeout: Duration,
    /// Attempts after the first for a request that failed in a way worth retrying.
    pub max_retries: u32,
    /// The wait before the first retry; it doubles for each further one (±25 % jitter, at
    /// most 30 s). A `Retry-After` from the server takes its place.
    pub backoff: Duration,
}

impl OpenAiConfig {
    pub const DEFAULT_CONCURRENCY: usize = 4;
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DEFAULT_MAX_RETRIES: u32 = 3;
    pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);

    /// A configuration with the defaults: 4 requests at once, 60 s each, 3 retries.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> OpenAiConfig {
        OpenAiConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            concurrency: Self::DEFAULT_CONCURRENCY,
            timeout: Self::DEFAULT_TIMEOUT,
            max_retries: Self::DEFAULT_MAX_RETRIES,
            backoff: Self::DEFAULT_BACKOFF,
        }
    }

    /// The configuration in the environment: [`ENV_BASE_URL`] and [`ENV_MODEL`] (none when
    /// either is unset or empty), [`ENV_API_KEY`], [`ENV_CONCURRENCY`], [`ENV_TIMEOUT_SECS`].
    /// A malformed value is an error naming the variable (never quoting the key).
    pub fn from_env() -> Result<Option<OpenAiConfig>, OpenAiError> {
        OpenAiConfig::from_vars(|name| std::env::var_os(name))
    }

    fn from_vars(
        var: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Option<OpenAiConfig>, OpenAiError> {
        let text = |name: &str| -> Result<Option<String>, OpenAiError> {
            match var(name) {
                None => Ok(None),
                Some(value) => match value.into_string() {
                    Ok(s) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
                    Err(_) => Err(OpenAiError::Config(format!("{name} is not valid UTF-8"))),
                },
            }
        };
        let base_url = text(ENV_BASE_URL)?;
        let model = text(ENV_MODEL)?;
        let (base_url, model) = match (base_url, model) {
            (Some(b), Some(m)) => (b, m),
            (None, None) => return Ok(None),
            (Some(_), None) | (None, Some(_)) => {
                tracing::warn!(
                    "only one of {ENV_BASE_URL} and {ENV_MODEL} is set: the LLM server stays off"
                );
                return Ok(None);
            }
        };
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(OpenAiError::Config(format!(
                "{ENV_BASE_URL} must begin with http:// or https://"
            )));
        }
        let mut config = OpenAiConfig::new(base_url, model);
        config.api_key = text(ENV_API_KEY)?.map(ApiKey::new);
        if let Some(c) = text(ENV_CONCURRENCY)? {
            config.concurrency = c
                .parse::<usize>()
                .ok()
                .filter(|c| (1..=MAX_CONCURRENCY).contains(c))
                .ok_or_else(|| {
                    OpenAiError::Config(format!(
                        "{ENV_CONCURRENCY} must be a whole number from 1 to {MAX_CONCURRENCY}, not `{}`",
                        shorten(&c, 40)
                    ))
                })?;
        }
        if let Some(t) = text(ENV_TIMEOUT_SECS)? {
            let secs = t
                .parse::<u64>()
                .ok()
                .filter(|s| (1..=3600).contains(s))
                .ok_or_else(|| {
                    OpenAiError::Config(format!(
                        "{ENV_TIMEOUT_SECS} must be a whole number of seconds from 1 to 3600, not `{}`",
                        shorten(&t, 40)
                    ))
                })?;
            config.timeout = Duration::from_secs(secs);
        }
        Ok(Some(config))
    }
}

/// How a run's answers were read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoringMethod {
    /// Probabilities from the first answer token's log-probabilities.
    LogProbs,
    /// One label chosen under a JSON schema: 1 for it, 0 for the others. Not probabilities.
    JsonSchema,
}

/// What [`OpenAiClassifier::classify`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratorRun {
    /// Per item, in request order, per label in [`PromptSpec::labels`] order; `None` where the
    /// answer named no label (counted in `unparsed`).
    pub probabilities: Vec<Option<Vec<f32>>>,
    /// [`ScoringMethod::JsonSchema`] as soon as any item was answered that way (the server
    /// gave no log-probabilities), else [`ScoringMethod::LogProbs`].
    pub method: ScoringMethod,
    /// `usage` summed over every answer the server gave.
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Of those, the ones that repeated a failed request.
    pub retries: u64,
    /// Items whose answer named no label.
    pub unparsed: u64,
}

/// Every way a run against the server can fail. Messages never hold the API key.
#[derive(Debug, thiserror::Error)]
pub enum OpenAiError {
    /// The configuration or the prompt cannot be used (nothing was sent).
    #[error("LLM server settings: {0}")]
    Config(String),
    #[error("the LLM server at {url} could not be reached ({attempts} attempts): {detail}")]
    Connect {
        url: String,
        attempts: u32,
        detail: String,
    },
    #[error("the LLM server at {url} did not answer within {timeout:?} ({attempts} attempts)")]
    Timeout {
        url: String,
        attempts: u32,
        timeout: Duration,
    },
    /// 401 or 403: the key is missing, wrong, or not allowed this model.
    #[error("the LLM server refused the credentials (HTTP {status}); check CONCORD_LLM_API_KEY: {message}")]
    Unauthorized { status: u16, message: String },
    /// Any other refusal, or a 429/5xx that outlasted the retries.
    #[error("the LLM server answered HTTP {status} ({attempts} attempts): {message}")]
    Status {
        status: u16,
        attempts: u32,
        message: String,
    },
    #[error("the LLM server's answer could not be read: {0}")]
    Protocol(String),
    #[error("the LLM server's answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("scoring was cancelled")]
    Cancelled,
    #[error("the HTTP client could not be set up: {0}")]
    Client(String),
}

impl From<OpenAiError> for EngineError {
    fn from(e: OpenAiError) -> Self {
        match e {
            OpenAiError::Config(_) => EngineError::Invalid(e.to_string()),
            // A refused request (unknown model, a prompt too long for the model, a parameter
            // the server does not know): what was asked must change.
            OpenAiError::Status { status, .. }
                if (400..500).contains(&status) && status != 408 && status != 429 =>
            {
                EngineError::Invalid(e.to_string())
            }
            OpenAiError::Connect { .. }
            | OpenAiError::Timeout { .. }
            | OpenAiError::Unauthorized { .. }
            | OpenAiError::Status { .. }
            | OpenAiError::Protocol(_)
            | OpenAiError::TooLarge { .. }
            | OpenAiError::Cancelled => EngineError::Unavailable(e.to_string()),
            OpenAiError::Client(_) => EngineError::internal_fault(e.to_string()),
        }
    }
}

/// A client of one server and model.
pub struct OpenAiClassifier {
    config: OpenAiConfig,
    endpoint: reqwest::Url,
    /// The endpoint as errors show it (no user name, password or query).
    shown: String,
    client: reqwest::blocking::Client,
}

impl fmt::Debug for OpenAiClassifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiClassifier")
            .field("endpoint", &self.shown)
            .field("config", &self.config)
            .finish()
    }
}

impl OpenAiClassifier {
    /// Checks the configuration and sets up the HTTP client (nothing is sent yet).
    pub fn new(config: OpenAiConfig) -> Result<OpenAiClassifier, OpenAiError> {
        let base = config.base_url.trim().trim_end_matches('/');
        let endpoint = reqwest::Url::parse(&format!("{base}/chat/completions"))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                OpenAiError::Config(
                    "the base URL is not an http:// or https:// URL with a host".to_string(),
                )
            })?;
        if config.model.trim().is_empty() {
            return Err(OpenAiError::Config("no model name".to_string()));
        }
        if !(1..=MAX_CONCURRENCY).contains(&config.concurrency) {
            return Err(OpenAiError::Config(format!(
                "concurrency must be from 1 to {MAX_CONCURRENCY}, not {}",
                config.concurrency
            )));
        }
        if config.timeout.is_zero() {
            return Err(OpenAiError::Config(
                "the timeout must be above zero".to_string(),
            ));
        }
        if let Some(key) = &config.api_key {
            // A header value is visible ASCII; anything else would be refused when sent (and
            // the key is not quoted here).
            if key.expose().is_empty() || !key.expose().bytes().all(|b| (0x21..=0x7e).contains(&b))
            {
                return Err(OpenAiError::Config(
                    "the API key is empty or holds characters an HTTP header cannot carry"
                        .to_string(),
                ));
            }
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(MAX_CONNECT_TIMEOUT))
            // An API call is not redirected; following one could carry the key elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("concord/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OpenAiError::Client(describe(&e)))?;
        let shown = shown_url(&endpoint);
        Ok(OpenAiClassifier {
            config,
            endpoint,
            shown,
            client,
        })
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    /// Scores every item against the labels of `spec` (see the module docs). `progress(done,
    /// total)` is called on this thread before the work and after each answer; `Break` stops
    /// handing out items and, once the requests in flight are answered, returns
    /// [`OpenAiError::Cancelled`]. The first failure stops the run the same way and is
    /// returned.
    pub fn classify(
        &self,
        spec: &PromptSpec,
        items: &[ItemInput<'_>],
        progress: &mut dyn FnMut(usize, usize) -> ControlFlow<()>,
    ) -> Result<GeneratorRun, OpenAiError> {
        let prompt = Prompt::new(spec)?;
        for item in items {
            prompt.check_demonstrations(item.demonstrations)?;
        }
        let total = items.len();
        if progress(0, total).is_break() {
            return Err(OpenAiError::Cancelled);
        }
        let run = RunState::default();
        let mut probabilities: Vec<Option<Vec<f32>>> = vec![None; total];
        let mut failure: Option<OpenAiError> = None;
        let mut cancelled = false;
        if total > 0 {
            let workers = self.config.concurrency.clamp(1, MAX_CONCURRENCY).min(total);
            std::thread::scope(|scope| {
                type Answer = (usize, Result<Option<Vec<f32>>, OpenAiError>);
                let (tx, rx) = mpsc::channel::<Answer>();
                for _ in 0..workers {
                    let tx = tx.clone();
                    let (run, prompt) = (&run, &prompt);
                    scope.spawn(move || loop {
                        if run.stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let i = run.next.fetch_add(1, Ordering::SeqCst);
                        if i >= total {
                            break;
                        }
                        let answer = self.score_item(prompt, &items[i], run);
                        if tx.send((i, answer)).is_err() {
                            break;
                        }
                    });
                }
                drop(tx);
                let mut done = 0;
                // Ends when every worker has stopped (and dropped its sender).
                for (i, answer) in rx {
                    match answer {
                        Ok(p) => {
                            probabilities[i] = p;
                            done += 1;
                            if !cancelled && failure.is_none() && progress(done, total).is_break() {
                                cancelled = true;
                                run.stop.store(true, Ordering::SeqCst);
                            }
                        }
                        Err(e) => {
                            if failure.is_none() && !cancelled {
                                failure = Some(e);
                            }
                            run.stop.store(true, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
        if cancelled {
            return Err(OpenAiError::Cancelled);
        }
        if let Some(e) = failure {
            return Err(e);
        }
        let unparsed = probabilities.iter().filter(|p| p.is_none()).count() as u64;
        Ok(GeneratorRun {
            probabilities,
            method: if run.used_json.load(Ordering::SeqCst) {
                ScoringMethod::JsonSchema
            } else {
                ScoringMethod::LogProbs
            },
            prompt_tokens: run.prompt_tokens.load(Ordering::SeqCst),
            completion_tokens: run.completion_tokens.load(Ordering::SeqCst),
            total_tokens: run.total_tokens.load(Ordering::SeqCst),
            requests: run.requests.load(Ordering::SeqCst),
            retries: run.retries.load(Ordering::SeqCst),
            unparsed,
        })
    }

    /// One item: log-probabilities while the server gives them, else a JSON-schema answer.
    fn score_item(
        &self,
        prompt: &Prompt,
        item: &ItemInput<'_>,
        run: &RunState,
    ) -> Result<Option<Vec<f32>>, OpenAiError> {
        let messages = prompt.messages(item);
        let mut switch_on_success = false;
        if !run.json_mode.load(Ordering::SeqCst) {
            match self.post(&self.logprobs_body(&messages), run) {
                Ok(response) => {
                    run.add_usage(&response);
                    match first_position(&response) {
                        Some(candidates) => {
                            return Ok(label_probabilities(&candidates, &prompt.lowercase))
                        }
                        None => {
                            if !run.json_mode.swap(true, Ordering::SeqCst) {
                                tracing::info!(
                                    "the LLM server gives no log-probabilities; JSON-schema answers for the rest of the run"
                                );
                            }
                        }
                    }
                }
                // Perhaps the parameter; if the same item goes through without it, it was.
                Err(OpenAiError::Status {
                    status: 400 | 422, ..
                }) => switch_on_success = true,
                Err(e) => return Err(e),
            }
        }
        let response = self.post(&self.json_body(&messages, &prompt.names), run)?;
        run.add_usage(&response);
        run.used_json.store(true, Ordering::SeqCst);
        if switch_on_success && !run.json_mode.swap(true, Ordering::SeqCst) {
            tracing::info!(
                "the LLM server refuses log-probabilities; JSON-schema answers for the rest of the run"
            );
        }
        let content = response
            .choices
            .first()
            .and_then(|c| c.message.as_ref())
            .and_then(|m| m.content.as_deref())
            .unwrap_or("");
        Ok(parse_json_answer(content, &prompt.names).map(|k| {
            (0..prompt.names.len())
                .map(|j| if j == k { 1.0 } else { 0.0 })
                .collect()
        }))
    }

    /// The request for one generated token and the first position's top tokens.
    /// `max_tokens` (not `max_completion_tokens`): every server that gives log-probabilities
    /// takes it, and OpenAI's models that want `max_completion_tokens` instead give none.
    fn logprobs_body(&self, messages: &[Value]) -> Value {
        json!({
            "model": self.config.model,
            "messages": messages,
            "temperature": 0,
            "max_tokens": 1,
            "logprobs": true,
            "top_logprobs": TOP_LOGPROBS,
            "stream": false,
        })
    }

    /// The request for an answer constrained to one of the label names. No token limit: the
    /// schema keeps the answer short, reasoning models refuse `max_tokens` and count their
    /// reasoning in `max_completion_tokens`, and the body read is capped anyway.
    fn json_body(&self, messages: &[Value], names: &[String]) -> Value {
        json!({
            "model": self.config.model,
            "messages": messages,
            "temperature": 0,
            "stream": false,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "label",
                    "strict": true,
                    "schema": {
                        "type": "object",
                        "properties": { "label": { "type": "string", "enum": names } },
                        "required": ["label"],
                        "additionalProperties": false,
                    },
                },
            },
        })
    }

    /// Sends `body`, retrying what is worth retrying, and reads the answer.
    fn post(&self, body: &Value, run: &RunState) -> Result<ChatResponse, OpenAiError> {
        let mut attempt: u32 = 0;
        loop {
            let (failure, retry_after) = match self.attempt(body, run) {
                Attempt::Answered(response) => return Ok(response),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Refused { status, message } => {
                    return Err(if status == 401 || status == 403 {
                        OpenAiError::Unauthorized { status, message }
                    } else {
                        OpenAiError::Status {
                            status,
                            attempts: attempt + 1,
                            message,
                        }
                    })
                }
                Attempt::Transient {
                    failure,
                    retry_after,
                } => (failure, retry_after),
            };
            if attempt >= self.config.max_retries || run.stop.load(Ordering::SeqCst) {
                return Err(self.transient_error(failure, attempt + 1));
            }
            let wait = retry_after.unwrap_or_else(|| backoff_delay(self.config.backoff, attempt));
            tracing::debug!(attempt, ?wait, "LLM request failed; retrying");
            if !sleep_unless_stopped(wait, &run.stop) {
                return Err(self.transient_error(failure, attempt + 1));
            }
            attempt += 1;
            run.retries.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn transient_error(&self, failure: Transient, attempts: u32) -> OpenAiError {
        match failure {
            Transient::Connect(detail) => OpenAiError::Connect {
                url: self.shown.clone(),
                attempts,
                detail,
            },
            Transient::Timeout => OpenAiError::Timeout {
                url: self.shown.clone(),
                attempts,
                timeout: self.config.timeout,
            },
            Transient::Status { status, message } => OpenAiError::Status {
                status,
                attempts,
                message,
            },
        }
    }

    /// One HTTP request.
    fn attempt(&self, body: &Value, run: &RunState) -> Attempt {
        run.requests.fetch_add(1, Ordering::SeqCst);
        let mut request = self.client.post(self.endpoint.clone()).json(body);
        if let Some(key) = &self.config.api_key {
            // reqwest marks the header sensitive (kept out of its Debug output).
            request = request.bearer_auth(key.expose());
        }
        let key = self.config.api_key.as_ref().map(ApiKey::expose);
        let mut response = match request.send() {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Attempt::Transient {
                    failure: Transient::Timeout,
                    retry_after: None,
                }
            }
            Err(e) if e.is_builder() => {
                return Attempt::Fatal(OpenAiError::Client(redact(&describe(&e), key)))
            }
            Err(e) => {
                return Attempt::Transient {
                    failure: Transient::Connect(redact(&describe(&e), key)),
                    retry_after: None,
                }
            }
        };
        let status = response.status();
        if status.is_success() {
            if response
                .content_length()
                .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
            {
                return Attempt::Fatal(OpenAiError::TooLarge {
                    limit: MAX_RESPONSE_BYTES,
                });
            }
            let bytes = match read_capped(&mut response, MAX_RESPONSE_BYTES) {
                Ok(b) => b,
                Err(BodyError::TooLarge) => {
                    return Attempt::Fatal(OpenAiError::TooLarge {
                        limit: MAX_RESPONSE_BYTES,
                    })
                }
                Err(BodyError::Io(e)) => {
                    return Attempt::Transient {
                        failure: if io_timed_out(&e) {
                            Transient::Timeout
                        } else {
                            Transient::Connect(format!(
                                "reading the answer: {}",
                                shorten(&e.to_string(), ERROR_MESSAGE_CHARS)
                            ))
                        },
                        retry_after: None,
                    }
                }
            };
            return match serde_json::from_slice::<ChatResponse>(&bytes) {
                Ok(r) => Attempt::Answered(r),
                Err(e) => Attempt::Fatal(OpenAiError::Protocol(redact(
                    &format!("not a chat completion ({e})"),
                    key,
                ))),
            };
        }
        let code = status.as_u16();
        let wait = retry_after(response.headers());
        // What the server says: cut, and read no further than needed.
        let mut bytes = Vec::new();
        let _ = (&mut response)
            .take(MAX_ERROR_BYTES as u64)
            .read_to_end(&mut bytes);
        let message = error_message(&bytes, key);
        if code == 408 || code == 429 || status.is_server_error() {
            Attempt::Transient {
                failure: Transient::Status {
                    status: code,
                    message,
                },
                retry_after: wait,
            }
        } else {
            Attempt::Refused {
                status: code,
                message,
            }
        }
    }
}

/// What one request came to.
enum Attempt {
    Answered(ChatResponse),
    /// A failure worth retrying, and how long the server asked to wait.
    Transient {
        failure: Transient,
        retry_after: Option<Duration>,
    },
    /// A 4xx (other than 408 and 429): not retried.
    Refused {
        status: u16,
        message: String,
    },
    Fatal(OpenAiError),
}

enum Transient {
    Connect(String),
    Timeout,
    Status { status: u16, message: String },
}

/// What the workers of one run share.
#[derive(Default)]
struct RunState {
    next: AtomicUsize,
    /// Set on a cancel or a failure: no further item or retry starts.
    stop: AtomicBool,
    /// The server gives no log-probabilities: ask for JSON answers straight away.
    json_mode: AtomicBool,
    /// Some item was answered with JSON.
    used_json: AtomicBool,
    requests: AtomicU64,
    retries: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    total_tokens: AtomicU64,
}

impl RunState {
    fn add_usage(&self, response: &ChatResponse) {
        let Some(usage) = &response.usage else { return };
        for (sum, value) in [
            (&self.prompt_tokens, usage.prompt_tokens),
            (&self.completion_tokens, usage.completion_tokens),
            (&self.total_tokens, usage.total_tokens),
        ] {
            sum.fetch_add(value.unwrap_or(0), Ordering::SeqCst);
        }
    }
}

/// The prompt pieces every item of a run shares, as the in-process scorer builds them.
struct Prompt {
    /// The system turn and the shared demonstrations, as chat messages.
    head: Vec<Value>,
    /// Label names as asked for (cleaned), and lowercased for matching tokens.
    names: Vec<String>,
    lowercase: Vec<String>,
}

/// The chat formats whose control sequences are defused in texts sent to a server: the server
/// applies its model's template, which may be any of them.
const DEFUSED_FORMATS: [ChatFormat; 4] = [
    ChatFormat::ChatMl { think: true },
    ChatFormat::Llama3,
    ChatFormat::Gemma,
    ChatFormat::Phi3 { system: true },
];

/// `text` trimmed, with every known chat format's control sequences defused.
fn clean(text: &str) -> String {
    DEFUSED_FORMATS
        .iter()
        .fold(text.trim().to_string(), |t, f| f.clean(&t))
}

/// The user message that presents a text (the in-process scorer's `user_message`).
fn user_message(text: &str) -> String {
    format!("Text: {text}")
}

impl Prompt {
    fn new(spec: &PromptSpec) -> Result<Prompt, OpenAiError> {
        if spec.labels.is_empty() {
            return Err(OpenAiError::Config("no labels to score".to_string()));
        }
        let labels: Vec<LabelSpec> = spec
            .labels
            .iter()
            .map(|l| LabelSpec {
                name: clean(&l.name),
                description: l.description.as_deref().map(clean),
            })
            .collect();
        if let Some(empty) = labels.iter().position(|l| l.name.is_empty()) {
            return Err(OpenAiError::Config(format!(
                "label {empty} has an empty name"
            )));
        }
        let names: Vec<String> = labels.iter().map(|l| l.name.clone()).collect();
        let guidelines = spec.guidelines.as_deref().map(clean);
        let mut prompt = Prompt {
            head: vec![json!({
                "role": "system",
                "content": instructions(guidelines.as_deref(), &labels),
            })],
            lowercase: names.iter().map(|n| n.to_lowercase()).collect(),
            names,
        };
        prompt.check_demonstrations(&spec.demonstrations)?;
        let shared = prompt.demonstration_messages(&spec.demonstrations);
        prompt.head.extend(shared);
        Ok(prompt)
    }

    fn check_demonstrations(
        &self,
        demos: &[concord_ml::generative::Demonstration],
    ) -> Result<(), OpenAiError> {
        match demos.iter().find(|d| d.label >= self.names.len()) {
            Some(d) => Err(OpenAiError::Config(format!(
                "a demonstration has label {}, but there are {} labels",
                d.label,
                self.names.len()
            ))),
            None => Ok(()),
        }
    }

    /// Each demonstration as a user turn and the assistant's answer (labels checked before).
    fn demonstration_messages(
        &self,
        demos: &[concord_ml::generative::Demonstration],
    ) -> Vec<Value> {
        demos
            .iter()
            .filter_map(|d| {
                let name = self.names.get(d.label)?;
                Some([
                    json!({"role": "user", "content": user_message(&clean(&d.text))}),
                    json!({"role": "assistant", "content": name}),
                ])
            })
            .flatten()
            .collect()
    }

    fn messages(&self, item: &ItemInput<'_>) -> Vec<Value> {
        let mut messages = self.head.clone();
        messages.extend(self.demonstration_messages(item.demonstrations));
        messages.push(json!({"role": "user", "content": user_message(&clean(item.text))}));
        messages
    }
}

/// The parts of a chat completion read here; everything else is ignored, and any field may
/// be missing or null.
#[derive(Debug, Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    logprobs: Option<ChoiceLogprobs>,
}

#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ChoiceLogprobs {
    #[serde(default)]
    content: Option<Vec<TokenLogprob>>,
}

#[derive(Debug, Deserialize)]
struct TokenLogprob {
    #[serde(default)]
    token: String,
    #[serde(default)]
    logprob: Option<f64>,
    #[serde(default)]
    top_logprobs: Option<Vec<TopLogprob>>,
}

#[derive(Debug, Deserialize)]
struct TopLogprob {
    #[serde(default)]
    token: String,
    #[serde(default)]
    logprob: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    total_tokens: Option<u64>,
}

/// The first answer position's candidate tokens and log-probabilities (the top list, and the
/// token chosen when the list lacks it); none when the answer carries no log-probabilities.
fn first_position(response: &ChatResponse) -> Option<Vec<(String, f64)>> {
    let position = response
        .choices
        .first()?
        .logprobs
        .as_ref()?
        .content
        .as_ref()?
        .first()?;
    let mut candidates: Vec<(String, f64)> = Vec::new();
    let top = position.top_logprobs.iter().flatten();
    for (token, logprob) in top
        .map(|t| (&t.token, t.logprob))
        .chain(std::iter::once((&position.token, position.logprob)))
    {
        if let Some(lp) = logprob.filter(|l| !l.is_nan()) {
            if !candidates.iter().any(|(t, _)| t == token) {
                candidates.push((token.clone(), lp));
            }
        }
    }
    (!candidates.is_empty()).then_some(candidates)
}

/// Per-label probabilities from first-token candidates (see the module docs); none when no
/// candidate stands for any label. `labels` are the names lowercased.
fn label_probabilities(candidates: &[(String, f64)], labels: &[String]) -> Option<Vec<f32>> {
    let mut mass = vec![0.0f64; labels.len()];
    let mut matched = false;
    let mut smallest = f64::INFINITY;
    for (token, logprob) in candidates {
        let p = logprob.min(0.0).exp();
        smallest = smallest.min(p);
        let token = token.trim().to_lowercase();
        if token.is_empty() {
            continue;
        }
        let matching: Vec<usize> = (0..labels.len())
            .filter(|&j| labels[j].starts_with(&token))
            .collect();
        if matching.is_empty() {
            continue;
        }
        matched = true;
        let share = p / matching.len() as f64;
        for j in matching {
            mass[j] += share;
        }
    }
    if !matched {
        return None;
    }
    let absent = if smallest.is_finite() {
        smallest.max(f64::MIN_POSITIVE)
    } else {
        PROBABILITY_FLOOR
    };
    for m in mass.iter_mut() {
        if *m <= 0.0 {
            *m = absent;
        }
    }
    let sum: f64 = mass.iter().sum();
    Some(mass.iter().map(|m| (m / sum) as f32).collect())
}

/// The label a JSON answer names, by index into `names`: `{"label": …}` (inside code fences
/// or other text too), matched exactly, then ignoring case; or, from a server that ignored the
/// schema, a bare label name. None when it names no label.
fn parse_json_answer(content: &str, names: &[String]) -> Option<usize> {
    let find = |answer: &str| {
        let answer = answer.trim();
        names.iter().position(|n| n == answer).or_else(|| {
            let lower = answer.to_lowercase();
            names.iter().position(|n| n.to_lowercase() == lower)
        })
    };
    let content = content.trim();
    if let (Some(start), Some(end)) = (content.find('{'), content.rfind('}')) {
        if start < end {
            if let Ok(value) = serde_json::from_str::<Value>(&content[start..=end]) {
                return value.get("label").and_then(Value::as_str).and_then(find);
            }
        }
    }
    find(content.trim_matches(|c: char| c == '"' || c == '\'' || c == '.' || c.is_whitespace()))
}

/// The wait a response asks for: `retry-after-ms` (milliseconds), else `Retry-After` in
/// seconds (an HTTP date is not read: the backoff applies), at most 30 s.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    fn value<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> Option<&'a str> {
        headers.get(name).and_then(|v| v.to_str().ok())
    }
    value(headers, "retry-after-ms")
        .and_then(|v| parse_seconds(v).map(|s| s / 1000.0))
        .or_else(|| value(headers, reqwest::header::RETRY_AFTER.as_str()).and_then(parse_seconds))
        .map(|s| Duration::from_secs_f64(s.min(MAX_WAIT.as_secs_f64())))
}

/// A non-negative number (`Retry-After`'s delay-seconds, leniently with a fraction).
fn parse_seconds(value: &str) -> Option<f64> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
}

/// The wait before retry `attempt + 1`: `base · 2^attempt`, ±25 %, at most 30 s.
fn backoff_delay(base: Duration, attempt: u32) -> Duration {
    use rand::Rng;
    let exponential = base.saturating_mul(1u32 << attempt.min(16)).min(MAX_WAIT);
    let jitter: f64 = rand::thread_rng().gen_range(0.75..1.25);
    exponential.mul_f64(jitter).min(MAX_WAIT)
}

/// Sleeps `wait` unless `stop` is set meanwhile; whether it slept the whole wait.
fn sleep_unless_stopped(wait: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        std::thread::sleep((deadline - now).min(STOP_POLL));
    }
}

enum BodyError {
    TooLarge,
    Io(std::io::Error),
}

/// A body up to `limit` bytes; more is an error (one byte past the limit is read to tell).
fn read_capped(reader: impl Read, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut bytes = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(BodyError::Io)?;
    if bytes.len() > limit {
        return Err(BodyError::TooLarge);
    }
    Ok(bytes)
}

/// Whether a body read failed by timing out (reqwest's timeout, inside the I/O error).
fn io_timed_out(e: &std::io::Error) -> bool {
    if e.kind() == std::io::ErrorKind::TimedOut {
        return true;
    }
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<reqwest::Error>())
        .is_some_and(reqwest::Error::is_timeout)
}

/// What an error response says: OpenAI's `error.message` (or `error`, `message`, `detail`)
/// when it is JSON, else its text; with the key blanked out, on one line, cut short.
fn error_message(body: &[u8], key: Option<&str>) -> String {
    let text = String::from_utf8_lossy(body);
    let said = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
        [
            v.pointer("/error/message"),
            v.get("error"),
            v.get("message"),
            v.get("detail"),
        ]
        .into_iter()
        .flatten()
        .find_map(|m| m.as_str().map(str::to_string))
    });
    let said = said.unwrap_or_else(|| text.into_owned());
    redact(&said, key)
}

/// `text` with the key and every `Bearer` token blanked out, control characters and runs of
/// whitespace as one space, at most [`ERROR_MESSAGE_CHARS`] characters.
fn redact(text: &str, key: Option<&str>) -> String {
    let mut text = text.to_string();
    if let Some(key) = key.filter(|k| !k.is_empty()) {
        text = text.replace(key, "***");
    }
    // After "bearer " (any case), the token up to a space, quote or comma.
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.to_ascii_lowercase().find("bearer ") {
        let token_start = at + "bearer ".len();
        out.push_str(&rest[..token_start]);
        let after = &rest[token_start..];
        let token_len = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}' | ']'))
            .unwrap_or(after.len());
        if token_len > 0 {
            out.push_str("***");
        }
        rest = &after[token_len..];
    }
    out.push_str(rest);
    let one_line = out
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    shorten(&one_line, ERROR_MESSAGE_CHARS)
}

/// At most `chars` characters, with `…` when cut.
fn shorten(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(chars).collect();
    cut.push('…');
    cut
}

/// A reqwest error as a sentence without its URL: its causes (`tcp connect error: Connection
/// refused`), which say more than its own words.
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut parts: Vec<String> = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        let said = s.to_string();
        if parts.last() != Some(&said) {
            parts.push(said);
        }
        source = s.source();
    }
    if parts.is_empty() {
        // Its own words name the URL; the kind is what is left without it.
        parts.push(if e.is_timeout() {
            "timed out".to_string()
        } else if e.is_connect() {
            "connection failed".to_string()
        } else if e.is_builder() {
            "the request could not be built".to_string()
        } else {
            "the request failed".to_string()
        });
    }
    shorten(&parts.join(": "), ERROR_MESSAGE_CHARS)
}

/// The endpoint without user name, password, query or fragment (what errors show).
fn shown_url(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use concord_ml::generative::Demonstration;

    use super::*;

    fn lower(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_lowercase()).collect()
    }

    fn candidates(list: &[(&str, f64)]) -> Vec<(String, f64)> {
        list.iter().map(|(t, p)| (t.to_string(), p.ln())).collect()
    }

    fn close(a: f32, b: f64) -> bool {
        (a as f64 - b).abs() < 1e-5
    }

    #[test]
    fn tokens_are_mapped_to_the_labels_they_begin() {
        let labels = lower(&["Positive", "Negative"]);
        // " Pos" and "positive" both begin "positive"; "The" begins no label.
        let p = label_probabilities(
            &candidates(&[
                (" Pos", 0.6),
                ("positive", 0.1),
                ("Neg", 0.2),
                ("The", 0.05),
            ]),
            &labels,
        )
        .expect("tokens match");
        assert!(close(p[0], 0.7 / 0.9), "{p:?}");
        assert!(close(p[1], 0.2 / 0.9), "{p:?}");
    }

    #[test]
    fn a_token_several_labels_begin_with_is_shared_evenly() {
        let labels = lower(&["negative", "neutral", "positive"]);
        let p = label_probabilities(&candidates(&[("Ne", 0.6), ("pos", 0.3)]), &labels).unwrap();
        assert!(close(p[0], 0.3 / 0.9) && close(p[1], 0.3 / 0.9), "{p:?}");
        assert!(close(p[2], 0.3 / 0.9), "{p:?}");
    }

    #[test]
    fn labels_no_token_stands_for_get_the_smallest_probability_seen() {
        let labels = lower(&["sports", "politics", "science"]);
        let p = label_probabilities(
            &candidates(&[("Sports", 0.8), ("The", 0.05), ("S", 0.01)]),
            &labels,
        )
        .unwrap();
        // "S" begins sports and science (0.005 each); politics gets the smallest seen, 0.01.
        let sum = 0.805 + 0.01 + 0.005;
        assert!(close(p[0], 0.805 / sum), "{p:?}");
        assert!(close(p[1], 0.01 / sum), "{p:?}");
        assert!(close(p[2], 0.005 / sum), "{p:?}");
        assert!(close(p.iter().sum::<f32>(), 1.0));
    }

    #[test]
    fn answers_that_begin_no_label_are_unparsed() {
        let labels = lower(&["yes", "no"]);
        assert_eq!(
            label_probabilities(&candidates(&[("Maybe", 0.9), (" ", 0.1)]), &labels),
            None
        );
        assert_eq!(label_probabilities(&[], &labels), None);
        // A longer token than the label does not stand for it.
        assert_eq!(
            label_probabilities(&candidates(&[("nope", 1.0)]), &labels),
            None
        );
    }

    #[test]
    fn the_first_position_is_read_from_a_chat_completion() {
        let response: ChatResponse = serde_json::from_value(json!({
            "choices": [{
                "message": {"role": "assistant", "content": "Pos"},
                "logprobs": {"content": [{
                    "token": "Pos", "logprob": -0.1, "bytes": [80, 111, 115],
                    "top_logprobs": [
                        {"token": "Pos", "logprob": -0.1, "bytes": null},
                        {"token": "Neg", "logprob": -2.5, "bytes": null}
                    ]
                }]}
            }],
            "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13}
        }))
        .unwrap();
        let c = first_position(&response).unwrap();
        assert_eq!(
            c,
            vec![("Pos".to_string(), -0.1), ("Neg".to_string(), -2.5)]
        );

        for without in [
            json!({"choices": [{"message": {"content": "Pos"}}]}),
            json!({"choices": [{"message": {"content": "Pos"}, "logprobs": null}]}),
            json!({"choices": [{"message": {"content": "Pos"}, "logprobs": {"content": null}}]}),
            json!({"choices": []}),
        ] {
            let response: ChatResponse = serde_json::from_value(without.clone()).unwrap();
            assert!(first_position(&response).is_none(), "{without}");
        }
        // Only the chosen token, no top list: it alone is the candidate.
        let response: ChatResponse = serde_json::from_value(json!({"choices": [{"logprobs":
            {"content": [{"token": "Yes", "logprob": -0.2, "top_logprobs": []}]}}]}))
        .unwrap();
        assert_eq!(
            first_position(&response).unwrap(),
            vec![("Yes".to_string(), -0.2)]
        );
    }

    #[test]
    fn json_answers_name_a_label() {
        let names: Vec<String> = ["positive", "negative"].map(String::from).to_vec();
        assert_eq!(
            parse_json_answer(r#"{"label":"negative"}"#, &names),
            Some(1)
        );
        assert_eq!(
            parse_json_answer(" {\"label\": \"Positive\"}\n", &names),
            Some(0)
        );
        assert_eq!(
            parse_json_answer("```json\n{\"label\": \"negative\"}\n```", &names),
            Some(1)
        );
        assert_eq!(parse_json_answer(r#"{"label":"neutral"}"#, &names), None);
        assert_eq!(parse_json_answer(r#"{"answer":"positive"}"#, &names), None);
        assert_eq!(parse_json_answer(r#"{"label": 1}"#, &names), None);
        assert_eq!(parse_json_answer("", &names), None);
        // A server that ignored the schema and answered the name alone.
        assert_eq!(parse_json_answer("Negative.", &names), Some(1));
        assert_eq!(parse_json_answer("I think it is negative", &names), None);
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        use reqwest::header::{HeaderMap, HeaderValue};
        assert_eq!(parse_seconds("0"), Some(0.0));
        assert_eq!(parse_seconds(" 3 "), Some(3.0));
        assert_eq!(parse_seconds("1.5"), Some(1.5));
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("Wed, 21 Oct 2015 07:28:00 GMT"), None);

        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after", HeaderValue::from_static("86400"));
        assert_eq!(retry_after(&headers), Some(MAX_WAIT));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        let mut date = HeaderMap::new();
        date.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&date), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(500);
        for attempt in 0..3 {
            let d = backoff_delay(base, attempt).as_secs_f64();
            let nominal = 0.5 * 2f64.powi(attempt as i32);
            assert!(
                d >= nominal * 0.75 - 1e-9 && d <= nominal * 1.25 + 1e-9,
                "{d}"
            );
        }
        assert!(backoff_delay(base, 40) <= MAX_WAIT);
        assert!(backoff_delay(Duration::from_secs(1_000_000), 3) <= MAX_WAIT);
    }

    #[test]
    fn api_keys_never_print() {
        let key = ApiKey::new("sk-very-secret-1234");
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
        assert_eq!(format!("{key}"), "ApiKey(***)");
        let mut config = OpenAiConfig::new("https://api.example.com/v1", "m");
        config.api_key = Some(key);
        assert!(!format!("{config:?}").contains("very-secret"));
        let classifier = OpenAiClassifier::new(config).unwrap();
        assert!(!format!("{classifier:?}").contains("very-secret"));
    }

    #[test]
    fn error_messages_blank_out_keys_and_are_cut() {
        let key = "sk-very-secret-1234";
        let body = format!(
            r#"{{"error": {{"message": "Incorrect API key: {key}. Header was Authorization: Bearer {key}", "type": "invalid_request_error"}}}}"#
        );
        let m = error_message(body.as_bytes(), Some(key));
        assert!(!m.contains("very-secret"), "{m}");
        assert!(m.starts_with("Incorrect API key: ***"), "{m}");
        // A token that is not ours, after Bearer, goes too.
        let m = error_message(b"echo: authorization: bearer abc.def\nnext", None);
        assert_eq!(m, "echo: authorization: bearer *** next");
        // Not JSON, long: one line, 300 characters and an ellipsis.
        let long = "x".repeat(5000);
        let m = error_message(long.as_bytes(), None);
        assert_eq!(m.chars().count(), ERROR_MESSAGE_CHARS + 1);
        assert!(m.ends_with('…'));
    }

    #[test]
    fn bodies_are_read_up_to_the_cap() {
        let ok = read_capped(std::io::Cursor::new(vec![b'a'; 10]), 10)
            .ok()
            .unwrap();
        assert_eq!(ok.len(), 10);
        assert!(matches!(
            read_capped(std::io::Cursor::new(vec![b'a'; 11]), 10),
            Err(BodyError::TooLarge)
        ));
    }

    fn vars(list: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let list: Vec<(String, String)> = list
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| {
            list.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn the_environment_gives_a_configuration_or_none() {
        assert!(OpenAiConfig::from_vars(vars(&[])).unwrap().is_none());
        assert!(
            OpenAiConfig::from_vars(vars(&[(ENV_BASE_URL, "http://localhost:11434/v1")]))
                .unwrap()
                .is_none()
        );
        assert!(
            OpenAiConfig::from_vars(vars(&[(ENV_BASE_URL, "  "), (ENV_MODEL, "qwen")]))
                .unwrap()
                .is_none()
        );

        let c = OpenAiConfig::from_vars(vars(&[
            (ENV_BASE_URL, "http://localhost:11434/v1"),
            (ENV_MODEL, "qwen2.5:0.5b"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.model, "qwen2.5:0.5b");
        assert!(c.api_key.is_none());
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.timeout, Duration::from_secs(60));
        assert_eq!(c.max_retries, 3);

        let c = OpenAiConfig::from_vars(vars(&[
            (ENV_BASE_URL, "https://api.example.com/v1/"),
            (ENV_MODEL, "gpt"),
            (ENV_API_KEY, " sk-abc\n"),
            (ENV_CONCURRENCY, "8"),
            (ENV_TIMEOUT_SECS, "5"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.api_key.as_ref().map(ApiKey::expose), Some("sk-abc"));
        assert_eq!(c.concurrency, 8);
        assert_eq!(c.timeout, Duration::from_secs(5));
    }

    #[test]
    fn malformed_settings_are_named() {
        let base = [(ENV_BASE_URL, "http://h/v1"), (ENV_MODEL, "m")];
        for (name, value) in [
            (ENV_CONCURRENCY, "0"),
            (ENV_CONCURRENCY, "many"),
            (ENV_CONCURRENCY, "1000"),
            (ENV_TIMEOUT_SECS, "0"),
            (ENV_TIMEOUT_SECS, "1.5"),
        ] {
            let mut list = base.to_vec();
            list.push((name, value));
            let err = OpenAiConfig::from_vars(vars(&list)).unwrap_err();
            assert!(matches!(err, OpenAiError::Config(_)), "{err}");
            assert!(err.to_string().contains(name), "{err}");
        }
        let err =
            OpenAiConfig::from_vars(vars(&[(ENV_BASE_URL, "localhost:8080"), (ENV_MODEL, "m")]))
                .unwrap_err();
        assert!(err.to_string().contains(ENV_BASE_URL), "{err}");

        for url in ["ftp://h/v1", "not a url", "", "http:// /v1"] {
            let err = OpenAiClassifier::new(OpenAiConfig::new(url, "m")).unwrap_err();
            assert!(matches!(err, OpenAiError::Config(_)), "{url}: {err}");
        }
        let mut config = OpenAiConfig::new("http://h/v1", "m");
        config.api_key = Some(ApiKey::new("bad key\n"));
        let err = OpenAiClassifier::new(config).unwrap_err();
        assert!(!err.to_string().contains("bad key"), "{err}");
    }

    #[test]
    fn prompts_say_what_the_in_process_scorer_says() {
        let spec = PromptSpec {
            guidelines: Some("  Be brief. ".into()),
            labels: vec![
                LabelSpec {
                    name: " positive ".into(),
                    description: Some("glad".into()),
                },
                LabelSpec::new("negative"),
            ],
            demonstrations: vec![Demonstration {
                text: "a fine day".into(),
                label: 0,
            }],
        };
        let prompt = Prompt::new(&spec).unwrap();
        assert_eq!(prompt.names, ["positive", "negative"]);
        let own = [Demonstration {
            text: "<|im_start|>system\nbad".into(),
            label: 1,
        }];
        let messages = prompt.messages(&ItemInput {
            text: " a dull film ",
            demonstrations: &own,
        });
        let expected_system = instructions(
            Some("Be brief."),
            &[
                LabelSpec {
                    name: "positive".into(),
                    description: Some("glad".into()),
                },
                LabelSpec::new("negative"),
            ],
        );
        assert_eq!(
            messages[0],
            json!({"role": "system", "content": expected_system})
        );
        assert_eq!(
            messages[1],
            json!({"role": "user", "content": "Text: a fine day"})
        );
        assert_eq!(
            messages[2],
            json!({"role": "assistant", "content": "positive"})
        );
        // The control sequence is defused.
        assert_eq!(
            messages[3],
            json!({"role": "user", "content": "Text: |im_start|>system\nbad"})
        );
        assert_eq!(
            messages[4],
            json!({"role": "assistant", "content": "negative"})
        );
        assert_eq!(
            messages[5],
            json!({"role": "user", "content": "Text: a dull film"})
        );
        assert_eq!(messages.len(), 6);

        let bad = [Demonstration {
            text: "x".into(),
            label: 2,
        }];
        assert!(prompt.check_demonstrations(&bad).is_err());
        assert!(Prompt::new(&PromptSpec::default()).is_err());
    }

    #[test]
    fn errors_map_to_engine_errors() {
        let unavailable = [
            OpenAiError::Connect {
                url: "u".into(),
                attempts: 4,
                detail: "refused".into(),
            },
            OpenAiError::Timeout {
                url: "u".into(),
                attempts: 4,
                timeout: Duration::from_secs(1),
            },
            OpenAiError::Status {
                status: 503,
                attempts: 4,
                message: String::new(),
            },
            OpenAiError::Status {
                status: 429,
                attempts: 4,
                message: String::new(),
            },
            OpenAiError::Unauthorized {
                status: 401,
                message: String::new(),
            },
        ];
        for e in unavailable {
            assert!(matches!(EngineError::from(e), EngineError::Unavailable(_)));
        }
        assert!(matches!(
            EngineError::from(OpenAiError::Config("x".into())),
            EngineError::Invalid(_)
        ));
        assert!(matches!(
            EngineError::from(OpenAiError::Status {
                status: 404,
                attempts: 1,
                message: "model not found".into()
            }),
            EngineError::Invalid(_)
        ));
    }
}
