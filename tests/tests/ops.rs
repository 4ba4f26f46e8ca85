//! Operating the server: liveness and readiness, no server paths in API answers, backups taken
//! over the API while answers are written (restored, checked, counted), the agreement cache and
//! the cap on agreement categories.

use concord::AppState;
use concord_engine::{Engine, MAX_AGREEMENT_CATEGORIES};
use concord_tests::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A classification project with `items` items, annotated by nobody yet.
async fn project_with_items(s: &TestServer, name: &str, items: usize, overlap: u32) -> u64 {
    let (status, created) = s
        .create_project(
            &s.admin_token,
            json!({"name": name, "task": "classification", "overlap": overlap,
                "labels": [{"name": "pos"}, {"name": "neg"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let project = created["id"].as_u64().unwrap();
    s.import_numbered_texts(project, "text number", items).await;
    project
}

/// `token`'s account answers its next item; false when none is left.
async fn answer_next(s: &TestServer, token: &str, project: u64, label: &str) -> bool {
    let (status, next) = s.next_item(token, project).await;
    if status == StatusCode::NO_CONTENT {
        return false;
    }
    let id = next["id"].as_str().unwrap().to_string();
    let (status, body) = s.annotate(token, project, &id, &[label], 100).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    true
}

#[tokio::test]
async fn healthz_and_readyz_answer() {
    let s = TestServer::start().await;
    let health = s.request(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.text().await.unwrap(), "ok");
    let ready = s.request(Method::GET, "/readyz").send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    assert_eq!(ready.text().await.unwrap(), "ready");
    s.engine.readiness().expect("an open engine is ready");
}

#[tokio::test]
async fn the_models_answer_names_no_server_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("models-folder-that-is-missing");
    let engine = Engine::open_with_models(dir.path(), Some(missing.clone())).unwrap();
    let admin = engine.bootstrap_admin("admin", "admin-password").unwrap();
    let token = engine.create_api_token_locally(admin.id, "t").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(engine.clone(), false, 1 << 20);
    let server = tokio::spawn(concord::serve(listener, state, std::future::pending()));
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/models"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["available"], false, "{body}");
    assert_eq!(body["model"], concord_engine::DEFAULT_MODEL, "{body}");
    assert!(body["reason"].is_string(), "{body}");
    // The engine's own reason names the folder; the API answer must not.
    let reason = engine.model_status().reason.unwrap_or_default();
    assert!(reason.contains("models-folder-that-is-missing"), "{reason}");
    for leak in [
        dir.path().to_string_lossy().to_string(),
        "models-folder-that-is-missing".to_string(),
    ] {
        assert!(!text.contains(&leak), "{leak} in {text}");
    }
    server.abort();
}

#[tokio::test]
async fn a_backup_taken_while_answers_are_written_restores_checks_and_counts_right() {
    let s = TestServer::start().await;
    let project = project_with_items(&s, "backed up", 400, 1).await;
    let annotator = s.annotator("writer", project).await;
    let reviewer = s.annotator("not-admin", project).await;

    // Only administrators may take a backup.
    let refused = s
        .request(Method::POST, "/api/v1/backup")
        .bearer_auth(&reviewer)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Answers keep coming while the snapshots are taken.
    let writer = {
        let s_base = s.base.clone();
        let token = annotator.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut written = 0u64;
            loop {
                let next = client
                    .get(format!("{s_base}/api/v1/projects/{project}/next"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                if next.status() == StatusCode::NO_CONTENT {
                    return written;
                }
                let item: Value = next.json().await.unwrap();
                let posted = client
                    .post(format!("{s_base}/api/v1/projects/{project}/annotations"))
                    .bearer_auth(&token)
                    .json(&json!({"item_id": item["id"], "labels": ["pos"], "time_spent_ms": 5}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(posted.status(), StatusCode::OK);
                written += 1;
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let mut snapshots = Vec::new();
    for n in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let response = s
            .request(Method::POST, "/api/v1/backup")
            .bearer_auth(&s.admin_token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let file = dir.path().join(format!("backup-{n}.redb"));
        std::fs::write(&file, response.bytes().await.unwrap()).unwrap();
        snapshots.push(file);
    }
    let written = writer.await.unwrap();
    assert_eq!(written, 400);
    // The snapshot files are gone from the data dir once downloaded.
    let leftovers: Vec<_> = std::fs::read_dir(s.engine.data_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".backup-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let mut answered = Vec::new();
    for (n, file) in snapshots.iter().enumerate() {
        let report = concord_engine::check_database(file).expect("the backup checks clean");
        let rows = report.counts.rows("annotations").unwrap();
        let restored = dir.path().join(format!("restored-{n}"));
        concord_engine::restore_database(file, &restored).unwrap();
        concord_engine::check_database(&restored.join(concord_engine::DATABASE_FILE)).unwrap();
        let engine = Engine::open(&restored).unwrap();
        let local = concord_engine::Principal::local();
        let summary = engine
            .project_summary(&local, concord_engine::domain::ProjectId(project))
            .unwrap();
        // Consistent: the project's counters (one table) match its answer rows (another),
        // which a copy made outside one read transaction would not guarantee under writes.
        assert_eq!(summary.done, rows, "snapshot {n}");
        assert_eq!(summary.total, 400);
        answered.push(rows);
    }
    assert!(
        answered.windows(2).all(|w| w[0] <= w[1]),
        "later snapshots hold more answers: {answered:?}"
    );
    assert!(
        answered.iter().any(|n| *n > 0 && *n < 400),
        "some snapshot was taken mid-writing: {answered:?}"
    );
}

#[tokio::test]
async fn agreement_is_served_from_cache_until_an_answer_changes_it() {
    let s = TestServer::start().await;
    let project = project_with_items(&s, "cached", 6, 2).await;
    let a = s.annotator("a", project).await;
    let b = s.annotator("b", project).await;
    for _ in 0..3 {
        assert!(answer_next(&s, &a, project, "pos").await);
        assert!(answer_next(&s, &b, project, "pos").await);
    }
    let before = s.engine.agreement_cache_stats();
    let (status, first) = s.agreement(&s.admin_token, project).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (_, second) = s.agreement(&s.admin_token, project).await;
    assert_eq!(first, second);
    let after = s.engine.agreement_cache_stats();
    assert_eq!(after.computed - before.computed, 1, "{after:?}");
    assert_eq!(after.hits - before.hits, 1, "{after:?}");

    // A new answer makes the next call compute again, and see it.
    assert!(answer_next(&s, &a, project, "neg").await);
    let (_, third) = s.agreement(&s.admin_token, project).await;
    let latest = s.engine.agreement_cache_stats();
    assert_eq!(latest.computed - before.computed, 2, "{latest:?}");
    assert_ne!(
        first["unannotated_items"], third["unannotated_items"],
        "{third}"
    );
}

#[tokio::test]
async fn too_many_distinct_label_sets_are_refused_with_a_clear_message() {
    let s = TestServer::start().await;
    let labels: Vec<Value> = (0..9).map(|i| json!({"name": format!("l{i}")})).collect();
    let sets = MAX_AGREEMENT_CATEGORIES + 1;
    let (status, created) = s
        .create_project(
            &s.admin_token,
            json!({"name": "many sets", "task": "multilabel", "overlap": 1, "labels": labels}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let project = created["id"].as_u64().unwrap();
    s.import_numbered_texts(project, "text", sets).await;
    let token = s.annotator("prolific", project).await;
    for n in 1..=sets {
        let (_, next) = s.next_item(&token, project).await;
        let id = next["id"].as_str().unwrap().to_string();
        // Each answer is a different non-empty subset of the nine labels.
        let chosen: Vec<String> = (0..9)
            .filter(|bit| n & (1 << bit) != 0)
            .map(|bit| format!("l{bit}"))
            .collect();
        let chosen: Vec<&str> = chosen.iter().map(String::as_str).collect();
        let (status, answer) = s.annotate(&token, project, &id, &chosen, 10).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (status, body) = s.agreement(&s.admin_token, project).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["kind"], "invalid_input", "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("at most {MAX_AGREEMENT_CATEGORIES}"))
            && message.contains(&format!("{sets} label sets")),
        "{message}"
    );
}

#[tokio::test]
async fn a_long_form_field_of_the_browser_import_is_refused() {
    let s = TestServer::start().await;
    let p = s.create_mail_project("Mail").await;
    let cookie = s.session_cookie(concord_tests::ADMIN, concord_tests::ADMIN_PASSWORD);
    let long = "x".repeat(concord::upload_limits::MAX_FORM_FIELD_BYTES + 1);
    let form = reqwest::multipart::Form::new()
        .text("text_field", long)
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"hello\n".to_vec()).file_name("a.txt"),
        );
    let r = s
        .request(Method::POST, &format!("/projects/{p}/import"))
        .header("cookie", &cookie)
        .header("origin", &s.base)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.contains("import_error=") && location.contains("longer%20than"),
        "{location}"
    );
    // Nothing was imported.
    assert!(s.export_jsonl(&s.admin_token, p).await.is_empty());
}

#[tokio::test]
async fn import_batches_end_at_a_byte_bound_as_well_as_an_item_count() {
    let s = TestServer::start().await;
    let p = s.create_mail_project("Long texts").await;
    let text = "word ".repeat(1 << 18); // 1.25 MiB per item
    let items = concord_engine::IMPORT_BATCH_BYTES / text.len() + 3;
    let body: String = (0..items)
        .map(|i| format!("{{\"text\":\"{i} {text}\"}}\n"))
        .collect();
    let mut batches = Vec::new();
    let report = s
        .engine
        .import(
            &s.admin,
            concord_engine::domain::ProjectId(p),
            body.as_bytes(),
            &concord_engine::ImportOptions::default(),
            &mut |progress| batches.push(progress.items),
        )
        .unwrap();
    assert_eq!(report.imported as usize, items);
    assert!(items < concord_engine::IMPORT_BATCH_ITEMS);
    // Progress is reported per batch: a batch ended before the last item although far fewer
    // items than the item bound were read.
    assert!(batches.iter().any(|n| (*n as usize) < items), "{batches:?}");
}
