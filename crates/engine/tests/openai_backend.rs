//! The OpenAI-compatible label scorer against a stand-in for a remote OpenAI-compatible
//! server, speaking the chat-completions protocol, inside the test suite: a small axum server
//! on 127.0.0.1, port 0, on its own tokio runtime thread. It is not a model: it answers from a
//! keyword in the last user message, and each mode plays one kind of server — one that gives
//! log-probabilities, one that refuses them (400) or leaves them out (null), one that is
//! overloaded twice (503, 429 with `Retry-After: 0`), one that wants an API key, one too slow
//! for the timeout, one that counts how many requests it holds at once. What the tests show:
//! the prompt and parameters sent, how answers become label probabilities, the switch to
//! JSON-schema answers, retries, errors that name no key, the concurrency limit and
//! cancellation.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use concord_engine::{
    ApiKey, EngineError, GeneratorRun, OpenAiClassifier, OpenAiConfig, OpenAiError, ScoringMethod,
};
use concord_ml::generative::{Demonstration, ItemInput, LabelSpec, PromptSpec};
use serde_json::{json, Value};

/// Which server the stand-in plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Log-probabilities of the first token, by keyword.
    LogProbs,
    /// 400 "logprobs not supported" when the request asks for them; JSON answers otherwise.
    RejectsLogProbs,
    /// Answers a request for log-probabilities without them (`"logprobs": null`).
    IgnoresLogProbs,
    /// 503, then 429, both with `Retry-After: 0`; then log-probabilities.
    Overloaded,
    /// Log-probabilities for `Authorization: Bearer test-key`, 401 (echoing the header)
    /// otherwise.
    NeedsKey,
    /// Answers after 3 s.
    Slow,
    /// Log-probabilities after 100 ms, counting the requests held at once.
    Busy,
}

/// What the stand-in saw.
struct Stub {
    mode: Mode,
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    bodies: Mutex<Vec<Value>>,
    authorizations: Mutex<Vec<Option<String>>>,
}

/// Counts a request as held until the handler returns (or is dropped).
struct Held(Arc<Stub>);

impl Held {
    fn enter(stub: &Arc<Stub>) -> Held {
        let now = stub.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stub.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Held(stub.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The stand-in, running; stopped (its runtime dropped, with any handler still waiting) on
/// drop.
struct StandIn {
    base_url: String,
    stub: Arc<Stub>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StandIn {
    fn start(mode: Mode) -> StandIn {
        let stub = Arc::new(Stub {
            mode,
            requests: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            bodies: Mutex::new(Vec::new()),
            authorizations: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(stub.clone());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("openai-stand-in".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("the stand-in's runtime");
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind 127.0.0.1:0");
                    addr_tx
                        .send(listener.local_addr().expect("bound address"))
                        .expect("the test waits for the address");
                    tokio::spawn(async move {
                        axum::serve(listener, app).await.expect("serve");
                    });
                    let _ = stopped.await;
                });
                // Dropping the runtime drops the server task and every connection's task.
            })
            .expect("the stand-in's thread");
        let addr = addr_rx.recv().expect("the stand-in's address");
        StandIn {
            base_url: format!("http://{addr}/v1"),
            stub,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn config(&self) -> OpenAiConfig {
        let mut config = OpenAiConfig::new(self.base_url.clone(), "stand-in-model");
        config.backoff = Duration::from_millis(5);
        config
    }

    fn requests(&self) -> usize {
        self.stub.requests.load(Ordering::SeqCst)
    }

    fn bodies(&self) -> Vec<Value> {
        self.stub.bodies.lock().unwrap().clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The last user message's text.
fn last_user_text(body: &Value) -> String {
    body["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The label a text's keyword calls for ("maybe", no label, for anything else).
fn keyword_label(text: &str) -> &'static str {
    if text.contains("great") {
        "positive"
    } else if text.contains("awful") {
        "negative"
    } else if text.contains("so-so") {
        "neutral"
    } else {
        "maybe"
    }
}

fn completion(content: &str, logprobs: Value) -> Value {
    json!({
        "id": "chatcmpl-stand-in",
        "object": "chat.completion",
        "created": 0,
        "model": "stand-in-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "logprobs": logprobs,
            "finish_reason": "length"
        }],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}
    })
}

/// First-token log-probabilities as a tokenizer would split the answer: a capitalised piece
/// of the label first, the others far behind.
fn logprobs_answer(text: &str) -> Value {
    let (first, second, third) = match keyword_label(text) {
        "positive" => ("Pos", "Neg", "Neut"),
        "negative" => ("Neg", "Pos", "Neut"),
        "neutral" => ("Neut", "Pos", "Neg"),
        _ => ("The", "I", "It"),
    };
    let top = json!([
        {"token": first, "logprob": (0.85f64).ln(), "bytes": null},
        {"token": second, "logprob": (0.1f64).ln(), "bytes": null},
        {"token": third, "logprob": (0.03f64).ln(), "bytes": null},
        {"token": "\"", "logprob": (0.01f64).ln(), "bytes": null}
    ]);
    completion(
        first,
        json!({"content": [{"token": first, "logprob": (0.85f64).ln(), "top_logprobs": top}]}),
    )
}

fn json_answer(text: &str) -> Value {
    completion(
        &json!({"label": keyword_label(text)}).to_string(),
        Value::Null,
    )
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": "invalid_request_error"}})),
    )
        .into_response()
}

async fn chat(
    State(stub): State<Arc<Stub>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let n = stub.requests.fetch_add(1, Ordering::SeqCst);
    let _held = Held::enter(&stub);
    stub.bodies.lock().unwrap().push(body.clone());
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    stub.authorizations
        .lock()
        .unwrap()
        .push(authorization.clone());
    let text = last_user_text(&body);
    let wants_logprobs = body.get("logprobs").is_some();
    match stub.mode {
        Mode::LogProbs => Json(logprobs_answer(&text)).into_response(),
        Mode::Busy => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Json(logprobs_answer(&text)).into_response()
        }
        Mode::RejectsLogProbs if wants_logprobs => {
            error(StatusCode::BAD_REQUEST, "logprobs not supported")
        }
        Mode::IgnoresLogProbs if wants_logprobs => {
            Json(completion(keyword_label(&text), Value::Null)).into_response()
        }
        Mode::RejectsLogProbs | Mode::IgnoresLogProbs => Json(json_answer(&text)).into_response(),
        Mode::Overloaded => match n {
            0 => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "0")],
                Json(json!({"error": {"message": "loading model"}})),
            )
                .into_response(),
            1 => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "0")],
                Json(json!({"error": {"message": "rate limited"}})),
            )
                .into_response(),
            _ => Json(logprobs_answer(&text)).into_response(),
        },
        Mode::NeedsKey => {
            if authorization.as_deref() == Some("Bearer test-key") {
                Json(logprobs_answer(&text)).into_response()
            } else {
                // Some servers echo what they were sent; the client must not repeat it.
                let echoed = authorization.unwrap_or_default();
                error(
                    StatusCode::UNAUTHORIZED,
                    &format!("invalid credentials in header `Authorization: {echoed}`"),
                )
            }
        }
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Json(logprobs_answer(&text)).into_response()
        }
    }
}

fn spec() -> PromptSpec {
    PromptSpec {
        guidelines: Some("Judge the reviewer's overall opinion.".into()),
        labels: vec![
            LabelSpec {
                name: "positive".into(),
                description: Some("the reviewer liked it".into()),
            },
            LabelSpec {
                name: "negative".into(),
                description: Some("the reviewer disliked it".into()),
            },
            LabelSpec::new("neutral"),
        ],
        demonstrations: vec![Demonstration {
            text: "a great day out".into(),
            label: 0,
        }],
    }
}

fn items<'a>(texts: &[&'a str]) -> Vec<ItemInput<'a>> {
    texts.iter().map(|t| ItemInput::new(t)).collect()
}

fn go_on() -> impl FnMut(usize, usize) -> ControlFlow<()> {
    |_, _| ControlFlow::Continue(())
}

fn argmax(p: &[f32]) -> usize {
    (0..p.len())
        .max_by(|&a, &b| p[a].total_cmp(&p[b]))
        .expect("labels")
}

fn classify(config: OpenAiConfig, texts: &[&str]) -> Result<GeneratorRun, OpenAiError> {
    OpenAiClassifier::new(config)
        .expect("a valid configuration")
        .classify(&spec(), &items(texts), &mut go_on())
}

#[test]
fn log_probabilities_become_label_probabilities() {
    let server = StandIn::start(Mode::LogProbs);
    let mut config = server.config();
    config.concurrency = 2;
    let classifier = OpenAiClassifier::new(config).unwrap();
    let own = [Demonstration {
        text: "an awful wait".into(),
        label: 1,
    }];
    let inputs = [
        ItemInput::new("a great film"),
        ItemInput::new("an awful film"),
        ItemInput {
            text: "a so-so film",
            demonstrations: &own,
        },
    ];
    let mut seen = Vec::new();
    let run = classify_with(&classifier, &inputs, &mut seen);

    assert_eq!(run.method, ScoringMethod::LogProbs);
    let probabilities: Vec<Vec<f32>> = run
        .probabilities
        .iter()
        .map(|p| p.clone().expect("every answer names a label"))
        .collect();
    for (p, expected) in probabilities.iter().zip([0, 1, 2]) {
        assert_eq!(argmax(p), expected, "{p:?}");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{p:?}");
        // 0.85 / (0.85 + 0.1 + 0.03): the quote token stands for no label.
        assert!((p[expected] - 0.85 / 0.98).abs() < 1e-4, "{p:?}");
    }
    assert_eq!((run.requests, run.retries, run.unparsed), (3, 0, 0));
    assert_eq!(
        (run.prompt_tokens, run.completion_tokens, run.total_tokens),
        (30, 3, 33)
    );
    assert_eq!(seen.first(), Some(&(0, 3)));
    assert_eq!(seen.last(), Some(&(3, 3)));

    // What was sent: one token, its top 20 alternatives, greedy, the in-process prompt.
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 3);
    for body in &bodies {
        assert_eq!(body["model"], "stand-in-model");
        assert_eq!(body["max_tokens"], 1);
        assert_eq!(body["temperature"], 0);
        assert_eq!(body["logprobs"], true);
        assert_eq!(body["top_logprobs"], 20);
        assert!(body.get("response_format").is_none());
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages[0]["role"], "system");
        let system = messages[0]["content"].as_str().unwrap();
        assert!(system.starts_with("Classify the text into exactly one of these categories:"));
        assert!(
            system.contains("- positive: the reviewer liked it\n"),
            "{system}"
        );
        assert!(system.contains("- neutral\n"), "{system}");
        assert!(system.contains("Judge the reviewer's overall opinion."));
        assert_eq!(
            messages[1],
            json!({"role": "user", "content": "Text: a great day out"})
        );
        assert_eq!(
            messages[2],
            json!({"role": "assistant", "content": "positive"})
        );
    }
    let so_so = bodies
        .iter()
        .find(|b| last_user_text(b) == "Text: a so-so film")
        .expect("the third item was sent");
    let messages = so_so["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 6, "system, shared pair, own pair, item");
    assert_eq!(
        messages[3],
        json!({"role": "user", "content": "Text: an awful wait"})
    );
    assert_eq!(
        messages[4],
        json!({"role": "assistant", "content": "negative"})
    );
    // No key configured: no Authorization header.
    assert!(server
        .stub
        .authorizations
        .lock()
        .unwrap()
        .iter()
        .all(Option::is_none));
}

fn classify_with(
    classifier: &OpenAiClassifier,
    inputs: &[ItemInput<'_>],
    seen: &mut Vec<(usize, usize)>,
) -> GeneratorRun {
    classifier
        .classify(&spec(), inputs, &mut |done, total| {
            seen.push((done, total));
            ControlFlow::Continue(())
        })
        .expect("the run succeeds")
}

#[test]
fn a_server_refusing_log_probabilities_gets_json_schema_requests() {
    let server = StandIn::start(Mode::RejectsLogProbs);
    let mut config = server.config();
    config.concurrency = 1;
    let run = classify(config, &["a great film", "an awful film", "gibberish"]).unwrap();

    assert_eq!(run.method, ScoringMethod::JsonSchema);
    assert_eq!(
        run.probabilities,
        vec![
            Some(vec![1.0, 0.0, 0.0]),
            Some(vec![0.0, 1.0, 0.0]),
            // "maybe" is no label.
            None,
        ]
    );
    assert_eq!(run.unparsed, 1);
    // One refused request for log-probabilities, then one JSON request per item.
    assert_eq!(run.requests, 4);
    assert_eq!(run.retries, 0);
    assert_eq!(run.prompt_tokens, 30, "a refusal carries no usage");
    let bodies = server.bodies();
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b.get("logprobs").is_some())
            .count(),
        1,
        "the refusal is remembered for the rest of the run"
    );
    let schema_request = &bodies[1];
    let format = &schema_request["response_format"];
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], "label");
    assert_eq!(format["json_schema"]["strict"], true);
    let schema = &format["json_schema"]["schema"];
    assert_eq!(
        schema["properties"]["label"]["enum"],
        json!(["positive", "negative", "neutral"])
    );
    assert_eq!(schema["required"], json!(["label"]));
    assert_eq!(schema["additionalProperties"], false);
    assert!(schema_request.get("max_tokens").is_none());
}

#[test]
fn an_answer_without_log_probabilities_switches_to_json_schema() {
    let server = StandIn::start(Mode::IgnoresLogProbs);
    let mut config = server.config();
    config.concurrency = 1;
    let run = classify(config, &["a great film", "an awful film"]).unwrap();

    assert_eq!(run.method, ScoringMethod::JsonSchema);
    assert_eq!(
        run.probabilities,
        vec![Some(vec![1.0, 0.0, 0.0]), Some(vec![0.0, 1.0, 0.0])]
    );
    // The first item asked twice (its answer without log-probabilities counts in the usage).
    assert_eq!(run.requests, 3);
    assert_eq!(run.prompt_tokens, 30);
    let with_logprobs = server
        .bodies()
        .iter()
        .filter(|b| b.get("logprobs").is_some())
        .count();
    assert_eq!(with_logprobs, 1);
}

#[test]
fn overloaded_answers_are_retried() {
    let server = StandIn::start(Mode::Overloaded);
    let mut config = server.config();
    config.concurrency = 1;
    // Retry-After: 0 is honoured: no backoff of seconds.
    config.backoff = Duration::from_secs(5);
    let started = Instant::now();
    let run = classify(config, &["a great film", "an awful film"]).unwrap();

    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((run.requests, run.retries), (4, 2));
    assert_eq!(server.requests(), 4);
    let p = run.probabilities[1].clone().unwrap();
    assert_eq!(argmax(&p), 1);
    assert_eq!(run.prompt_tokens, 20, "only the answers carry usage");
}

#[test]
fn overload_that_outlasts_the_retries_is_unavailable() {
    // The 503 and the 429 come first; with one retry the run stops at the 429.
    let server = StandIn::start(Mode::Overloaded);
    let mut config = server.config();
    config.concurrency = 1;
    config.max_retries = 1;
    let err = classify(config, &["a great film"]).unwrap_err();
    assert!(
        matches!(
            err,
            OpenAiError::Status {
                status: 429,
                attempts: 2,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("rate limited"), "{err}");
    assert!(matches!(
        EngineError::from(err),
        EngineError::Unavailable(_)
    ));
}

#[test]
fn a_wrong_key_is_a_clear_error_that_does_not_repeat_it() {
    let server = StandIn::start(Mode::NeedsKey);
    let mut config = server.config();
    config.api_key = Some(ApiKey::new("wrong-key-123"));
    let err = classify(config, &["a great film"]).unwrap_err();
    assert!(
        matches!(err, OpenAiError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("401") && message.contains("CONCORD_LLM_API_KEY"),
        "{message}"
    );
    assert!(!message.contains("wrong-key-123"), "{message}");
    assert!(!format!("{err:?}").contains("wrong-key-123"));
    let engine = EngineError::from(err);
    assert!(matches!(engine, EngineError::Unavailable(_)));
    assert!(!engine.public_message().contains("wrong-key-123"));
    assert_eq!(server.requests(), 1, "a 401 is not retried");

    let mut config = server.config();
    config.api_key = Some(ApiKey::new("test-key"));
    assert!(!format!("{config:?}").contains("test-key"));
    let run = classify(config, &["a great film"]).unwrap();
    assert_eq!(argmax(run.probabilities[0].as_ref().unwrap()), 0);
    let authorizations = server.stub.authorizations.lock().unwrap().clone();
    assert_eq!(
        authorizations,
        vec![
            Some("Bearer wrong-key-123".to_string()),
            Some("Bearer test-key".to_string())
        ]
    );
}

#[test]
fn a_server_slower_than_the_timeout_fails_after_the_retries() {
    let server = StandIn::start(Mode::Slow);
    let mut config = server.config();
    config.timeout = Duration::from_millis(300);
    config.max_retries = 1;
    let started = Instant::now();
    let err = classify(config, &["a great film"]).unwrap_err();
    let elapsed = started.elapsed();

    assert!(
        matches!(err, OpenAiError::Timeout { attempts: 2, .. }),
        "{err}"
    );
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    assert_eq!(server.requests(), 2);
    assert!(matches!(
        EngineError::from(err),
        EngineError::Unavailable(_)
    ));
}

#[test]
fn no_more_requests_are_in_flight_than_configured() {
    let server = StandIn::start(Mode::Busy);
    let mut config = server.config();
    config.concurrency = 3;
    let texts = ["a great film"; 12];
    let classifier = OpenAiClassifier::new(config).unwrap();
    let mut seen = Vec::new();
    let run = classify_with(&classifier, &items(&texts), &mut seen);

    assert_eq!(run.requests, 12);
    assert!(run.probabilities.iter().all(|p| p.is_some()));
    let most = server.stub.max_in_flight.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} requests at once");
    assert!(most >= 2, "the requests ran one at a time");
    // Progress is called on the calling thread, counting up to the total.
    let done: Vec<usize> = seen.iter().map(|(d, _)| *d).collect();
    assert_eq!(done, (0..=12).collect::<Vec<_>>());
    assert!(seen.iter().all(|(_, t)| *t == 12));
}

#[test]
fn cancelling_stops_handing_out_items() {
    let server = StandIn::start(Mode::Busy);
    let mut config = server.config();
    config.concurrency = 1;
    let texts = ["a great film"; 10];
    let classifier = OpenAiClassifier::new(config).unwrap();
    let err = classifier
        .classify(&spec(), &items(&texts), &mut |done, _| {
            if done >= 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap_err();
    assert!(matches!(err, OpenAiError::Cancelled), "{err}");
    // The item in flight when the cancel came may finish; none after it starts.
    assert!(server.requests() <= 3, "{} requests", server.requests());
}

#[test]
fn a_server_that_is_not_there_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut config = OpenAiConfig::new(format!("http://127.0.0.1:{port}/v1"), "m");
    config.max_retries = 1;
    config.backoff = Duration::from_millis(5);
    let err = classify(config, &["a great film"]).unwrap_err();
    assert!(
        matches!(err, OpenAiError::Connect { attempts: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    assert!(matches!(
        EngineError::from(err),
        EngineError::Unavailable(_)
    ));
}

#[test]
fn bad_prompts_are_refused_before_anything_is_sent() {
    let server = StandIn::start(Mode::LogProbs);
    let classifier = OpenAiClassifier::new(server.config()).unwrap();
    let own = [Demonstration {
        text: "x".into(),
        label: 7,
    }];
    let err = classifier
        .classify(
            &spec(),
            &[ItemInput {
                text: "a great film",
                demonstrations: &own,
            }],
            &mut go_on(),
        )
        .unwrap_err();
    assert!(matches!(err, OpenAiError::Config(_)), "{err}");
    assert!(matches!(EngineError::from(err), EngineError::Invalid(_)));
    let err = classifier
        .classify(&PromptSpec::default(), &items(&["a"]), &mut go_on())
        .unwrap_err();
    assert!(matches!(err, OpenAiError::Config(_)), "{err}");
    assert_eq!(server.requests(), 0);
    // No items: nothing to send, an empty run.
    let run = classifier.classify(&spec(), &[], &mut go_on()).unwrap();
    assert!(run.probabilities.is_empty());
    assert_eq!(run.requests, 0);
}

/// A whole generator run through the engine on the stand-in: listed as `server:MODEL` once
/// the server is set, a `generate` job over a classification project without any encoder, its
/// suggestions the stand-in's labels, its version trainer `llm` measured on the held-out gold
/// items, and the job's result carrying the tokens the server counted.
#[test]
fn a_server_generator_run_is_a_measured_version_with_its_token_usage() {
    use crate::common::{export_jsonl, wait_for, TestEngine};
    use concord_domain::{GenerateParams, JobState, Label, ProjectSettings, ProjectSpec, TaskKind};

    let server = StandIn::start(Mode::LogProbs);
    let env = TestEngine::new();
    assert!(env.engine.generators().is_empty());
    env.engine.set_generator_server(Some(server.config()));
    let listed = env.engine.generators();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].kind),
        ("server:stand-in-model", "openai")
    );
    let project = env.create_project(ProjectSpec {
        name: "reviews".into(),
        task: TaskKind::Classification,
        labels: ["positive", "negative", "neutral"]
            .iter()
            .map(|n| Label::named(*n))
            .collect(),
        guidelines: "How does the writer feel?".into(),
        settings: ProjectSettings::default(),
        relation_labels: Vec::new(),
    });
    let words = [
        ("great", "positive"),
        ("awful", "negative"),
        ("so-so", "neutral"),
    ];
    let body: String = (1..=30)
        .map(|i| {
            let (word, label) = words[i % 3];
            format!(
                "{}\n",
                json!({"id": i.to_string(), "text": format!("review {i}: it was {word}"), "gold": label})
            )
        })
        .collect();
    env.import(
        project,
        concord_engine::ImportFormat::Jsonl,
        body.as_bytes(),
    )
    .expect("import");
    let job = env
        .engine
        .enqueue_generate(
            &env.admin,
            project,
            GenerateParams {
                generator: "server:stand-in-model".into(),
                // No encoder in this engine: zero-shot.
                shots: Some(0),
            },
        )
        .expect("queue the run");
    let info = wait_for(&env.engine, &env.admin, job);
    assert_eq!(info.state, JobState::Done, "{:?}", info.error);
    let result = info.result.expect("a result");
    assert_eq!(result["suggestions"], 30);
    assert_eq!(result["usage"]["requests"], 30, "{result}");
    assert_eq!(result["usage"]["prompt_tokens"], 300, "{result}");
    assert_eq!(result["usage"]["total_tokens"], 330, "{result}");
    assert_eq!(server.requests(), 30);
    let versions = env
        .engine
        .model_versions(&env.admin, project)
        .expect("versions");
    let version = versions.last().expect("the run's version");
    assert_eq!(version.trainer, "llm");
    assert_eq!(version.params["backend"], "openai");
    assert_eq!(version.params["method"], "log_probs");
    // The stand-in answers by keyword, so every held-out item is right.
    let metrics = version.metrics.as_ref().expect("held-out metrics");
    assert!(metrics.items > 0);
    assert_eq!(metrics.accuracy, 1.0);
    for line in export_jsonl(&env.engine, &env.admin, project) {
        assert_eq!(line["suggestion"]["labels"][0], line["gold"], "{line}");
    }
    // The key never reaches what the version records.
    assert!(!version.params.to_string().contains("Bearer"));
}

/// A generator run on a slow server stops when its job is cancelled: no version is made.
#[test]
fn a_cancelled_generator_run_makes_no_version() {
    use crate::common::{wait_for, TestEngine};
    use concord_domain::{GenerateParams, JobState, Label, ProjectSettings, ProjectSpec, TaskKind};

    let server = StandIn::start(Mode::Busy);
    let env = TestEngine::new();
    let mut config = server.config();
    config.concurrency = 1;
    env.engine.set_generator_server(Some(config));
    let project = env.create_project(ProjectSpec {
        name: "slow".into(),
        task: TaskKind::Classification,
        labels: ["positive", "negative"]
            .iter()
            .map(|n| Label::named(*n))
            .collect(),
        guidelines: String::new(),
        settings: ProjectSettings::default(),
        relation_labels: Vec::new(),
    });
    let body: String = (1..=300)
        .map(|i| format!("{}\n", json!({"text": format!("item {i} was great")})))
        .collect();
    env.import(
        project,
        concord_engine::ImportFormat::Jsonl,
        body.as_bytes(),
    )
    .expect("import");
    let job = env
        .engine
        .enqueue_generate(
            &env.admin,
            project,
            GenerateParams {
                generator: "server:stand-in-model".into(),
                shots: Some(0),
            },
        )
        .expect("queue the run");
    let started = Instant::now();
    while server.requests() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the run never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    env.engine.cancel_job(&env.admin, job).expect("cancel");
    let info = wait_for(&env.engine, &env.admin, job);
    assert_eq!(info.state, JobState::Cancelled, "{info:?}");
    assert!(server.requests() < 300, "every item was still sent");
    assert!(env
        .engine
        .model_versions(&env.admin, project)
        .expect("versions")
        .is_empty());
}
