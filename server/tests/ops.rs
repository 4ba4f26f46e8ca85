//! The real `concord` binary under a service manager's hands: SIGTERM stops it cleanly with
//! every acknowledged answer stored, and backup, restore and check work beside a running server.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::concord;
use serde_json::{json, Value};

/// `concord serve` on a free port over `data` (no models); returns the process and its base URL.
fn serve(data: &Path) -> (Child, String) {
    common::process::serve(
        Path::new(env!("CARGO_BIN_EXE_concord")),
        data,
        &data.join("no-models"),
        Duration::from_secs(30),
    )
    .expect("start concord serve")
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Waits up to `limit` for the process to exit.
fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the server did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An admin with a token, a project with `items` items and an annotator's token.
fn setup(data: &Path) -> String {
    let dir = data.to_str().unwrap();
    let (ok, _, err) = concord(
        &["user", "add", "--admin", "root", "--data-dir", dir],
        "root-password\n",
    );
    assert!(ok, "{err}");
    let (ok, token, err) = concord(&["token", "add", "root", "--data-dir", dir], "");
    assert!(ok, "{err}");
    token.trim().to_string()
}

async fn create_project(base: &str, token: &str, items: usize) -> u64 {
    let client = reqwest::Client::new();
    let created = json_answer(
        client
            .post(format!("{base}/api/v1/projects"))
            .bearer_auth(token)
            .json(
                &json!({"name": "ops", "task": "classification", "overlap": 1,
                        "labels": [{"name": "pos"}, {"name": "neg"}]}),
            ),
    )
    .await;
    let project = created["id"].as_u64().expect("project id");
    let body: String = (1..=items)
        .map(|i| format!("{{\"text\":\"text {i}\"}}\n"))
        .collect();
    let imported = client
        .post(format!("{base}/api/v1/projects/{project}/items"))
        .bearer_auth(token)
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(imported.status().is_success());
    project
}

/// The JSON answer to `request`.
async fn json_answer(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Answers the next item; returns its id.
async fn answer_next(base: &str, token: &str, project: u64) -> String {
    let client = reqwest::Client::new();
    let item = json_answer(
        client
            .get(format!("{base}/api/v1/projects/{project}/next"))
            .bearer_auth(token),
    )
    .await;
    let id = item["id"].as_str().unwrap().to_string();
    let answered = client
        .post(format!("{base}/api/v1/projects/{project}/annotations"))
        .bearer_auth(token)
        .json(&json!({"item_id": id, "labels": ["neg"], "time_spent_ms": 10}))
        .send()
        .await
        .unwrap();
    assert!(answered.status().is_success());
    id
}

/// Sets up the data dir `dir/data` from the command line, serves it with `concord serve` and
/// creates a project of `items` items: the data dir, the admin's API token, the server process,
/// its base URL and the project.
async fn serve_a_project(dir: &Path, items: usize) -> (PathBuf, String, Child, String, u64) {
    let data = dir.join("data");
    let token = setup(&data);
    let (server, base) = serve(&data);
    let project = create_project(&base, &token, items).await;
    (data, token, server, base, project)
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_with_every_answer_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (data, token, mut server, base, project) = serve_a_project(dir.path(), 5).await;
    let id = answer_next(&base, &token, project).await;

    signal(&server, "TERM");
    let status = wait_exit(&mut server, Duration::from_secs(15));
    assert!(status.success(), "{status:?}");

    // The database was closed: the command line opens it, finds the answer, and it checks.
    let dir_arg = data.to_str().unwrap();
    let (ok, out, err) = concord(&["check", "--data-dir", dir_arg], "");
    assert!(ok && out.contains(": ok"), "{out}{err}");
    let (ok, out, err) = concord(&["export", "1", "--data-dir", dir_arg], "");
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.contains(&format!("\"id\":\"{id}\"")))
        .unwrap_or_else(|| panic!("item {id} in {out}"));
    assert!(line.contains("neg"), "{line}");
}

#[tokio::test]
async fn backup_restore_and_check_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let (data, token, mut server, base, project) = serve_a_project(dir.path(), 8).await;
    for _ in 0..3 {
        answer_next(&base, &token, project).await;
    }
    let data_arg = data.to_str().unwrap();
    let file = dir.path().join("snapshot.redb");
    let file_arg = file.to_str().unwrap();

    // The server holds the database: the local backup says how to go through it.
    let (ok, _, err) = concord(&["backup", file_arg, "--data-dir", data_arg], "");
    assert!(!ok && err.contains("--url"), "{err}");
    let (ok, _, err) = concord(&["backup", file_arg, "--url", &base, "--token", &token], "");
    assert!(ok, "{err}");
    // Nor may a restore replace the database under it.
    let (ok, _, err) = concord(
        &["restore", file_arg, "--force", "--data-dir", data_arg],
        "",
    );
    assert!(!ok && err.contains("in use"), "{err}");

    let restored = dir.path().join("restored");
    let restored_arg = restored.to_str().unwrap();
    let (ok, _, err) = concord(&["restore", file_arg, "--data-dir", restored_arg], "");
    assert!(ok, "{err}");
    let (ok, _, err) = concord(&["restore", file_arg, "--data-dir", restored_arg], "");
    assert!(!ok && err.contains("--force"), "{err}");
    let (ok, out, err) = concord(&["check", "--data-dir", restored_arg], "");
    assert!(ok, "{err}");
    let annotations = out
        .lines()
        .find(|l| l.trim_start().starts_with("annotations "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(annotations.contains(" 3 rows"), "{annotations}");

    signal(&server, "INT");
    assert!(wait_exit(&mut server, Duration::from_secs(15)).success());
    // Stopped, the data dir backs up locally too.
    let local = dir.path().join("local.redb");
    let (ok, _, err) = concord(
        &["backup", local.to_str().unwrap(), "--data-dir", data_arg],
        "",
    );
    assert!(ok, "{err}");
    let (ok, out, err) = concord(&["check", local.to_str().unwrap()], "");
    assert!(ok && out.contains(": ok"), "{out}{err}");

    // A damaged file does not check.
    let bad = dir.path().join("bad.redb");
    let mut bytes = std::fs::read(&local).unwrap();
    for b in bytes.iter_mut().skip(4096) {
        *b ^= 0x5a;
    }
    std::fs::write(&bad, bytes).unwrap();
    let (ok, _, err) = concord(&["check", bad.to_str().unwrap()], "");
    assert!(!ok, "{err}");
}
