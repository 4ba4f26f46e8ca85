//! Getting items in and results out: the browser's import form and export download, and
//! answers surviving a restart.

use concord_tests::{TestServer, ADMIN, ADMIN_PASSWORD};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn the_browser_import_form_and_export_download_use_the_session() {
    let s = TestServer::start().await;
    let p = s.create_mail_project("Mail").await;
    let cookie = s.session_cookie(ADMIN, ADMIN_PASSWORD);
    let form = |body: &'static str, name: &'static str| {
        reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(body.as_bytes()).file_name(name),
            )
            .text("format", "auto")
            .text("text_field", "text")
    };
    let upload = format!("/projects/{p}/import");
    let r = s
        .request(Method::POST, &upload)
        .header("cookie", &cookie)
        .multipart(form(
            "text\nhello <b>there</b>\n\"quoted, text\"\n",
            "items.csv",
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        format!("/projects/{p}?imported=2&duplicates=0&skipped=0")
    );
    let r = s
        .request(Method::POST, &upload)
        .header("cookie", &cookie)
        .multipart(form("{\"text\":\"a\"}\n{\"nope\":1}\n", "items.jsonl"))
        .send()
        .await
        .unwrap();
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.contains("import_error=line%202%3A%20no%20%22text%22%20field"),
        "{location}"
    );
    let r = s
        .browser_get(&cookie, &format!("/projects/{p}/export?format=csv"))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let csv = r.text().await.unwrap();
    assert!(csv.contains("hello <b>there</b>"));
    assert!(csv.contains("\"quoted, text\""));
    assert_eq!(csv.lines().count(), 3);
    // Without a session the form does nothing.
    let r = s
        .request(Method::POST, &upload)
        .multipart(form("x\n", "a.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login");
    s.stop().await;
}

#[tokio::test]
async fn annotations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path()).await;
    let p = s.create_mail_project("Mail").await;
    s.import(&s.admin_token, p, "{\"text\":\"one\"}\n").await;
    let (status, _) = s.annotate(&s.admin_token, p, "1", &["ham"], 0).await;
    assert_eq!(status, StatusCode::OK);
    s.stop().await;
    let s = TestServer::start_in(dir.path()).await;
    let text = s
        .export(&s.admin_token, p, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"labels\":[\"ham\"]"), "{text}");
    s.stop().await;
}

/// A project's JSONL export without the derived fields: what a round trip must keep.
async fn contents(s: &TestServer, project: u64) -> Vec<serde_json::Value> {
    s.export_jsonl(&s.admin_token, project)
        .await
        .into_iter()
        .map(|mut line| {
            let obj = line.as_object_mut().expect("an object");
            for derived in ["gold_source", "aggregate", "suggestion"] {
                obj.remove(derived);
            }
            line
        })
        .collect()
}

const CONLL: &str = "-DOCSTART-\tO\n\n👨\u{200D}👩\u{200D}👧\tO\nJose\u{301}\tB-PER\nvisited\tO\n東京\tB-LOC\n\nAcme\tB-ORG\nCorp\tI-ORG\n!\tO\n\n";

#[tokio::test]
async fn span_projects_round_trip_through_every_format_over_the_api() {
    let s = TestServer::start().await;
    let labels = ["PER", "LOC", "ORG"];
    let p = s.create_span_project("Entities", &labels).await;
    let (status, report) = s
        .import_with(&s.admin_token, p, "format=conll", CONLL)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["imported"], 2);
    let ann = s.annotator("ann", p).await;
    let (status, body) = s
        .api(
            Method::POST,
            &ann,
            &format!("/projects/{p}/annotations"),
            Some(serde_json::json!({"item_id": "2", "spans": [{"start": 0, "end": 4, "label": "ORG"}], "time_spent_ms": 700})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let original = contents(&s, p).await;
    // Code points: the ZWJ family emoji is 5, "José" with its combining accent 5.
    assert_eq!(
        original[0]["gold"],
        serde_json::json!([{"start": 6, "end": 11, "label": "PER"}, {"start": 20, "end": 22, "label": "LOC"}])
    );
    // The CoNLL export is the file imported, less its -DOCSTART- line.
    let conll = s.export(&s.admin_token, p, Some("conll")).await;
    assert_eq!(conll.status(), StatusCode::OK);
    assert_eq!(
        conll.text().await.unwrap(),
        CONLL.trim_start_matches("-DOCSTART-\tO\n\n")
    );
    for (export, import) in [
        ("jsonl", "jsonl"),
        ("prodigy", "jsonl"),
        ("label-studio", "label-studio"),
    ] {
        let file = s
            .export(&s.admin_token, p, Some(export))
            .await
            .text()
            .await
            .unwrap();
        let copy = s
            .create_span_project(&format!("Copy {export}"), &labels)
            .await;
        let (status, report) = s
            .import_with(&s.admin_token, copy, &format!("format={import}"), &file)
            .await;
        assert_eq!(status, StatusCode::OK, "{export}: {report}");
        assert_eq!(contents(&s, copy).await, original, "{export}");
    }
    // A span project has no CSV export; the refusal comes before any byte of a download.
    let csv = s.export(&s.admin_token, p, Some("csv")).await;
    assert_eq!(csv.status(), StatusCode::UNPROCESSABLE_ENTITY);
    s.stop().await;
}

#[tokio::test]
async fn a_broken_conll_file_is_refused_with_its_line_and_nothing_is_stored() {
    let s = TestServer::start().await;
    let p = s.create_span_project("Entities", &["PER", "LOC"]).await;
    let (status, body) = s
        .import_with(
            &s.admin_token,
            p,
            "format=conll",
            "Ada\tB-PER\nLovelace\n\n",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"].as_str().unwrap().starts_with("line 2: "),
        "{body}"
    );
    let (status, body) = s
        .import_with(
            &s.admin_token,
            p,
            "format=conll",
            "Ada\tO\n\nAcme\tB-ORG\n\n",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("line 3: ") && error.contains("\"ORG\""),
        "{body}"
    );
    assert!(s.export_jsonl(&s.admin_token, p).await.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn labels_import_as_an_annotator_or_an_external_model() {
    let s = TestServer::start().await;
    let p = s.create_span_project("Entities", &["PER", "LOC"]).await;
    let (status, body) = s
        .import_with(
            &s.admin_token,
            p,
            "format=conll&labels_as=annotator",
            "Ada\tB-PER\n\n",
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "labels_name is needed: {body}"
    );
    s.create_user("tagger").await;
    let (status, report) = s
        .import_with(
            &s.admin_token,
            p,
            "format=conll&labels_as=annotator&labels_name=tagger",
            "Ada\tB-PER\n\n",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let items = s.export_jsonl(&s.admin_token, p).await;
    assert_eq!(items[0]["annotations"][0]["annotator"], "tagger");
    assert_eq!(
        items[0]["annotations"][0]["spans"],
        serde_json::json!([{"start": 0, "end": 3, "label": "PER"}])
    );
    // Label Studio tasks (UTF-16 offsets: "🙂 Paris" has Paris at 3..8) as a model's
    // suggestions.
    let tasks = serde_json::json!([{"data": {"text": "🙂 Paris"}, "annotations": [{"result": [
        {"type": "labels", "score": 0.25, "value": {"start": 3, "end": 8, "text": "Paris", "labels": ["LOC"]}}]}]}]);
    let (status, report) = s
        .import_with(
            &s.admin_token,
            p,
            "format=label-studio&labels_as=model&labels_name=ls-model",
            &tasks.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["suggestions"], 1);
    assert_eq!(report["suggestions_without_score"], 0);
    let version = report["model_version"].as_u64().expect("a model version");
    let items = s.export_jsonl(&s.admin_token, p).await;
    assert_eq!(
        items[1]["suggestion"],
        serde_json::json!({"spans": [{"start": 2, "end": 7, "label": "LOC", "confidence": 0.25}], "confidence": 0.25, "model_version": version})
    );
    assert_eq!(items[1]["gold"], serde_json::Value::Null);
    s.stop().await;
}

#[tokio::test]
async fn the_browser_import_form_takes_the_format_and_what_labels_mean() {
    let s = TestServer::start().await;
    let p = s.create_span_project("Entities", &["PER", "LOC"]).await;
    let cookie = s.session_cookie(ADMIN, ADMIN_PASSWORD);
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes("Ada\tB-PER\n\nParis\tB-LOC\n\n".as_bytes())
                .file_name("tags.txt"),
        )
        .text("format", "conll")
        .text("labels_as", "model")
        .text("labels_name", "old-tagger");
    let r = s
        .request(Method::POST, &format!("/projects/{p}/import"))
        .header("cookie", &cookie)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        r.headers()["location"],
        format!("/projects/{p}?imported=2&duplicates=0&skipped=0&suggestions=2&unscored=2&model_version=1")
    );
    let r = s
        .browser_get(
            &cookie,
            &format!("/projects/{p}/export?format=label-studio"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let tasks: serde_json::Value = r.json().await.unwrap();
    assert_eq!(tasks[1]["predictions"][0]["model_version"], "old-tagger");
    assert_eq!(
        tasks[1]["predictions"][0]["result"][0]["value"]["text"],
        "Paris"
    );
    // With the format left to the file name, a `.json` array is read as Label Studio tasks.
    let copy = s.create_span_project("Copy", &["PER", "LOC"]).await;
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(tasks.to_string().into_bytes()).file_name("tasks.json"),
        )
        .text("format", "auto");
    let r = s
        .request(Method::POST, &format!("/projects/{copy}/import"))
        .header("cookie", &cookie)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["location"],
        format!("/projects/{copy}?imported=2&duplicates=0&skipped=0&suggestions=2&unscored=0&model_version=1")
    );
    s.stop().await;
}
