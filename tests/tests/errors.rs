//! Errors at the edge, through the real router: a fault on the server's side reaches the client
//! as a status and a reference only, while the server log holds the whole error chain under
//! that reference.

use std::sync::{Arc, Mutex, OnceLock};

use concord_tests::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Everything this test binary logs, as text (one global subscriber per process).
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .init();
        log
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut log) = self.0.lock() {
            log.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_internal_error_answers_500_with_a_reference_and_logs_its_chain() {
    let log = captured_log();
    let s = TestServer::start().await;
    let client = reqwest::Client::new();
    let r = client
        .post(s.url("/api/v1/projects"))
        .bearer_auth(&s.admin_token)
        .json(&json!({"name": "faults", "task": "classification", "labels": [{"name": "a"}, {"name": "b"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let project = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();

    // Uploads are spooled into the data directory; without it the server cannot take one,
    // a fault that is neither the caller's nor the engine's (the open database keeps working).
    let data_dir = s.engine.data_dir().to_path_buf();
    std::fs::remove_dir_all(&data_dir).unwrap();

    let r = client
        .post(s.url(&format!("/api/v1/projects/{project}/items")))
        .bearer_auth(&s.admin_token)
        .body("{\"text\": \"hello\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = r.text().await.unwrap();
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["kind"], "internal", "{body}");
    let message = answer["error"].as_str().unwrap();
    let reference = message
        .strip_prefix("internal error (ref ")
        .and_then(|rest| rest.split_once(')'))
        .map(|(reference, _)| reference.to_string())
        .unwrap_or_else(|| panic!("no reference in {message:?}"));
    assert_eq!(reference.len(), 8, "{message}");
    // No detail reaches the client: not the cause, not where the server keeps its data.
    assert!(!body.contains("No such file"), "{body}");
    assert!(
        !body.contains(&*data_dir.to_string_lossy()),
        "{body} names the data directory"
    );

    let log = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    let line = log
        .lines()
        .find(|line| line.contains(&reference))
        .unwrap_or_else(|| panic!("no log line with reference {reference}:\n{log}"));
    assert!(line.contains("ERROR"), "{line}");
    // The whole chain: what failed, where, and the operating system's reason.
    assert!(line.contains("the upload could not be spooled"), "{line}");
    assert!(line.contains(&*data_dir.to_string_lossy()), "{line}");
    assert!(line.contains("No such file or directory"), "{line}");
    s.stop().await;
}
