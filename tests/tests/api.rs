//! The REST API and browser routes against the real router on port 0.

use concord_tests::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn create_project(s: &TestServer, token: &str, name: &str) -> u64 {
    let r = client()
        .post(s.url("/api/v1/projects"))
        .bearer_auth(token)
        .json(&json!({
            "name": name,
            "task": "classification",
            "labels": [{"name": "spam", "description": "unwanted", "hotkey": "s"}, {"name": "ham"}],
            "guidelines": "Mark *unsolicited* mail as spam."
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["labels"][0]["hotkey"], "s");
    body["id"].as_u64().unwrap()
}

async fn import(s: &TestServer, token: &str, project: u64, body: &str) -> reqwest::Response {
    client()
        .post(s.url(&format!("/api/v1/projects/{project}/items")))
        .bearer_auth(token)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// A GET as the browser sends it, with a session cookie.
async fn browser_get(s: &TestServer, cookie: &str, path: &str) -> reqwest::Response {
    client()
        .get(s.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

async fn annotator(s: &TestServer, name: &str, project: u64) -> String {
    let r = client()
        .post(s.url("/api/v1/users"))
        .bearer_auth(&s.admin_token)
        .json(&json!({"name": name, "password": "annotator-pw"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = client()
        .post(s.url(&format!("/api/v1/projects/{project}/members")))
        .bearer_auth(&s.admin_token)
        .json(&json!({"user": name, "role": "annotator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let who = s.engine.principal_by_name(name).unwrap();
    s.engine.create_api_token_locally(who.id, "t").unwrap()
}

#[tokio::test]
async fn health_and_authentication() {
    let s = TestServer::start().await;
    let r = client().get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client()
        .get(s.url("/api/v1/projects"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("bearer token"));
    let r = client()
        .get(s.url("/api/v1/projects"))
        .bearer_auth("cct_forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client()
        .get(s.url("/api/v1/nope"))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "no such endpoint"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_annotation_loop_over_http() {
    let s = TestServer::start().await;
    let p = create_project(&s, &s.admin_token, "Mail").await;
    let r = import(&s, &s.admin_token, p, "{\"id\":\"m1\",\"text\":\"WIN A PRIZE\",\"sender\":\"x@y\"}\n{\"text\":\"lunch at noon?\",\"gold\":\"ham\"}\n").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["imported"], 2);
    let ann = annotator(&s, "ann", p).await;

    let next: Value = client()
        .get(s.url(&format!("/api/v1/projects/{p}/next")))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(next["id"], "m1");
    assert_eq!(next["meta"]["sender"], "x@y");
    let submit = |item: &'static str, label: &'static str| {
        let (url, ann) = (
            s.url(&format!("/api/v1/projects/{p}/annotations")),
            ann.clone(),
        );
        async move {
            let r = client()
                .post(url)
                .bearer_auth(ann)
                .json(&json!({"item_id": item, "labels": [label], "time_spent_ms": 900}))
                .send()
                .await
                .unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(
        submit("m1", "spam").await,
        (StatusCode::OK, json!({"outcome": "created"}))
    );
    assert_eq!(
        submit("m1", "spam").await,
        (StatusCode::OK, json!({"outcome": "unchanged"}))
    );
    let (status, body) = submit("m1", "eggs").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"].as_str().unwrap().contains("\"eggs\""),
        "{body}"
    );
    let next: Value = client()
        .get(s.url(&format!("/api/v1/projects/{p}/next")))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(next["id"], "2");
    submit("2", "ham").await;
    let r = client()
        .get(s.url(&format!("/api/v1/projects/{p}/next")))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    let export = client()
        .get(s.url(&format!("/api/v1/projects/{p}/export?format=jsonl")))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::OK);
    assert_eq!(export.headers()["content-type"], "application/x-ndjson");
    let text = export.text().await.unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["annotations"][0]["annotator"], "ann");
    assert_eq!(lines[0]["annotations"][0]["labels"], json!(["spam"]));
    assert_eq!(
        lines[0]["aggregate"],
        json!({"status": "agreed", "labels": ["spam"]})
    );
    assert_eq!(lines[1]["gold"], "ham");
    let csv = client()
        .get(s.url(&format!("/api/v1/projects/{p}/export?format=csv")))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with(
            "id,text,gold,gold_source,gold_question,meta,ann:ann,aggregate,aggregate_status,suggestion,suggestion_confidence,suggestion_version\n"
        ),
        "{csv}"
    );

    let projects: Value = client()
        .get(s.url("/api/v1/projects"))
        .bearer_auth(&ann)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(projects[0]["done"], 2);
    assert_eq!(projects[0]["mine"], 2);
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_get_json_errors_and_store_nothing() {
    let s = TestServer::start().await;
    let p = create_project(&s, &s.admin_token, "Mail").await;
    let r = import(&s, &s.admin_token, p, "{\"text\":\"ok\"}\n{\"text\": 5}\n").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "line 2: field \"text\" is not a string"
    );
    let r = import(
        &s,
        &s.admin_token,
        p,
        "{\"text\":\"ok\",\"gold\":\"eggs\"}\n",
    )
    .await;
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .starts_with("line 1: gold label"));
    let project: Value = client()
        .get(s.url(&format!("/api/v1/projects/{p}")))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(project["total"], 0);
    let r = client()
        .post(s.url("/api/v1/projects"))
        .bearer_auth(&s.admin_token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid request body"));
    let r = client()
        .post(s.url("/api/v1/projects"))
        .bearer_auth(&s.admin_token)
        .json(&json!({"name": "Mail", "task": "classification", "labels": [{"name": "a"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = client()
        .post(s.url("/api/v1/projects"))
        .bearer_auth(&s.admin_token)
        .json(&json!({"name": "X", "task": "classification", "labels": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "a project needs at least one label"
    );
    s.stop().await;
}

#[tokio::test]
async fn annotators_are_refused_outside_their_projects() {
    let s = TestServer::start().await;
    let mine = create_project(&s, &s.admin_token, "Mine").await;
    let other = create_project(&s, &s.admin_token, "Other").await;
    import(&s, &s.admin_token, other, "{\"text\":\"secret\"}\n").await;
    let ann = annotator(&s, "ann", mine).await;
    for (method, path) in [
        ("GET", format!("/api/v1/projects/{other}")),
        ("GET", format!("/api/v1/projects/{other}/next")),
        ("GET", format!("/api/v1/projects/{other}/export")),
        ("GET", format!("/api/v1/projects/{mine}/export")),
        ("GET", format!("/api/v1/projects/{mine}/members")),
        ("POST", format!("/api/v1/projects/{mine}/items")),
        ("GET", format!("/api/v1/projects/{mine}/review/next")),
        ("GET", format!("/api/v1/projects/{mine}/review/summary")),
        ("PUT", format!("/api/v1/projects/{mine}/items/1/gold")),
        (
            "PUT",
            format!("/api/v1/projects/{mine}/items/1/gold_question"),
        ),
        ("PATCH", format!("/api/v1/projects/{mine}/settings")),
        ("GET", format!("/api/v1/projects/{other}/review/next")),
        ("POST", "/api/v1/projects".to_string()),
        ("GET", "/api/v1/users".to_string()),
    ] {
        let r = client()
            .request(method.parse().unwrap(), s.url(&path))
            .bearer_auth(&ann)
            .body("{\"text\":\"x\"}\n")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
        assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    }
    let r = client()
        .post(s.url(&format!("/api/v1/projects/{other}/annotations")))
        .bearer_auth(&ann)
        .json(&json!({"item_id": "1", "labels": ["spam"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    s.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint() {
    let s = TestServer::start().await;
    let doc: Value = client()
        .get(s.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/projects", "post"),
        ("/projects", "get"),
        ("/projects/{id}/items", "post"),
        ("/projects/{id}/next", "get"),
        ("/projects/{id}/annotations", "post"),
        ("/projects/{id}/export", "get"),
        ("/projects/{id}/agreement", "get"),
        ("/projects/{id}/settings", "patch"),
        ("/projects/{id}/review/next", "get"),
        ("/projects/{id}/review/summary", "get"),
        ("/projects/{id}/items/{item}/gold", "put"),
        ("/projects/{id}/items/{item}/gold_question", "put"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    // And every documented operation is served (not the API's 404 fallback).
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let url = s.url(&format!("/api/v1{}", path.replace("{id}", "999")));
            let r = client()
                .request(method.to_uppercase().parse().unwrap(), url)
                .bearer_auth(&s.admin_token)
                .send()
                .await
                .unwrap();
            let body = r.text().await.unwrap();
            assert!(
                !body.contains("no such endpoint"),
                "{method} {path} is documented but not routed"
            );
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn pages_render_on_the_server_and_demand_a_session() {
    let s = TestServer::start().await;
    let r = client()
        .get(s.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FOUND,
        "the project list needs a session"
    );
    assert_eq!(r.headers()["location"], "/login");
    let html = client()
        .get(s.url("/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Sign in to Concord"));
    assert!(html.contains("/pkg/concord.js"), "hydration script missing");
    let r = client()
        .get(s.url("/projects/1/export"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    s.stop().await;
}

#[tokio::test]
async fn the_browser_import_form_and_export_download_use_the_session() {
    let s = TestServer::start().await;
    let p = create_project(&s, &s.admin_token, "Mail").await;
    let (_, secret) = s.engine.login("admin", "admin-password").unwrap();
    let cookie = format!("concord_session={secret}");
    let form = |body: &'static str, name: &'static str| {
        reqwest::multipart::Form::new()
            .part(
                "file",
                reqwest::multipart::Part::bytes(body.as_bytes()).file_name(name),
            )
            .text("format", "auto")
            .text("text_field", "text")
    };
    let r = client()
        .post(s.url(&format!("/projects/{p}/import")))
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
    let r = client()
        .post(s.url(&format!("/projects/{p}/import")))
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
    let r = browser_get(&s, &cookie, &format!("/projects/{p}/export?format=csv")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let csv = r.text().await.unwrap();
    assert!(csv.contains("hello <b>there</b>"));
    assert!(csv.contains("\"quoted, text\""));
    assert_eq!(csv.lines().count(), 3);
    // Without a session the form does nothing.
    let r = client()
        .post(s.url(&format!("/projects/{p}/import")))
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
    let p = create_project(&s, &s.admin_token, "Mail").await;
    import(&s, &s.admin_token, p, "{\"text\":\"one\"}\n").await;
    let r = client()
        .post(s.url(&format!("/api/v1/projects/{p}/annotations")))
        .bearer_auth(&s.admin_token)
        .json(&json!({"item_id": "1", "labels": ["ham"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await;
    let s = TestServer::start_in(dir.path()).await;
    let text = client()
        .get(s.url(&format!("/api/v1/projects/{p}/export")))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("\"labels\":[\"ham\"]"), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn agreement_over_http_matches_the_statistics_crate_and_is_for_reviewers() {
    use concord_agreement::{agreement_report, Ratings, ReportOptions};
    let s = TestServer::start().await;
    let r = client()
        .post(s.url("/api/v1/projects"))
        .bearer_auth(&s.admin_token)
        .json(
            &json!({"name": "agree", "task": "classification", "overlap": 3,
            "labels": [{"name": "pos"}, {"name": "neg"}, {"name": "neu"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let project = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    let items: String = (1..=6)
        .map(|i| format!("{{\"text\":\"tweet {i}\"}}\n"))
        .collect();
    assert_eq!(
        import(&s, &s.admin_token, project, &items).await.status(),
        StatusCode::OK
    );
    // Planted answers: rows are items, columns annotators a, b, c.
    let planted = [
        ["pos", "pos", "pos"],
        ["neg", "neg", "neg"],
        ["pos", "neg", "pos"],
        ["neu", "neu", "neg"],
        ["neg", "neg", "neg"],
        ["pos", "neu", "neu"],
    ];
    let mut tokens = Vec::new();
    for name in ["a", "b", "c"] {
        tokens.push(annotator(&s, name, project).await);
    }
    for (col, token) in tokens.iter().enumerate() {
        for _ in 0..planted.len() {
            let next: Value = client()
                .get(s.url(&format!("/api/v1/projects/{project}/next")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = next["id"].as_str().unwrap().to_string();
            let row: usize = id.parse::<usize>().unwrap() - 1;
            let r = client()
                .post(s.url(&format!("/api/v1/projects/{project}/annotations")))
                .bearer_auth(token)
                .json(&json!({"item_id": id, "labels": [planted[row][col]], "time_spent_ms": 2000}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
    }
    let r = client()
        .get(s.url(&format!("/api/v1/projects/{project}/agreement")))
        .bearer_auth(&tokens[0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "annotators must not see agreement"
    );
    let got: Value = client()
        .get(s.url(&format!("/api/v1/projects/{project}/agreement")))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows: Vec<Vec<Option<&str>>> = planted
        .iter()
        .map(|r| r.iter().map(|l| Some(*l)).collect())
        .collect();
    let ratings = Ratings::from_labels_with_categories(&rows, &["pos", "neg", "neu"]).unwrap();
    let expected = agreement_report(&ratings.view(), &ReportOptions::default());
    let value = |v: &Value| v["value"].as_f64().unwrap();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    let report = &got["report"];
    assert!(close(
        value(&report["alpha_nominal"]["coefficient"]),
        expected.alpha_nominal.coefficient.value().unwrap()
    ));
    assert!(close(
        value(&report["fleiss_kappa"]["coefficient"]),
        expected.fleiss_kappa.coefficient.value().unwrap()
    ));
    assert!(close(
        value(&report["gwet_ac1"]["coefficient"]),
        expected.gwet_ac1.coefficient.value().unwrap()
    ));
    assert_eq!(got["annotators"], json!(["a", "b", "c"]));
    assert_eq!(got["categories"], json!(["pos", "neg", "neu"]));
    assert_eq!(got["annotator_stats"][0]["items"], 6);
    assert_eq!(got["annotator_stats"][0]["mean_time_ms"], 2000.0);
    assert_eq!(got["intervals"].as_array().unwrap().len(), 4);
    assert_eq!(got["over_time"][0]["items"], 6);
    let confusion: Value = client()
        .get(s.url(&format!(
            "/api/v1/projects/{project}/agreement/confusion?a=a&b=b"
        )))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // a said pos where b said neg once (item 3) and neu once (item 6).
    assert_eq!(
        confusion["counts"],
        json!([[1, 1, 1], [0, 2, 0], [0, 0, 1]])
    );

    // The dashboard page, rendered on the server, shows the same α; its CSVs carry it too.
    let (_, secret) = s.engine.login("admin", "admin-password").unwrap();
    let admin_cookie = format!("concord_session={secret}");
    let alpha = expected.alpha_nominal.coefficient.value().unwrap();
    let html = browser_get(&s, &admin_cookie, &format!("/projects/{project}/agreement"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!("data-value=\"{alpha}\"")),
        "α {alpha} not on the dashboard"
    );
    assert!(html.contains("<svg"), "charts are rendered on the server");
    let csv = browser_get(
        &s,
        &admin_cookie,
        &format!("/projects/{project}/agreement/coefficients.csv"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        csv.lines()
            .any(|l| l.starts_with(&format!("Krippendorff's α (nominal),{alpha},"))),
        "{csv}"
    );
    let csv = browser_get(
        &s,
        &admin_cookie,
        &format!("/projects/{project}/agreement/confusion.csv?a=a&b=b"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(csv, "a \\ b,pos,neg,neu\npos,1,1,1\nneg,0,2,0\nneu,0,0,1\n");
    // An annotator gets a refusal on the page and on the downloads.
    let (_, secret) = s.engine.login("a", "annotator-pw").unwrap();
    let annotator_cookie = format!("concord_session={secret}");
    let r = browser_get(
        &s,
        &annotator_cookie,
        &format!("/projects/{project}/agreement/pairs.csv"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let html = browser_get(
        &s,
        &annotator_cookie,
        &format!("/projects/{project}/agreement"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        !html.contains("data-value="),
        "an annotator saw agreement figures"
    );
    assert!(html.contains("role=\"alert\""), "no refusal shown");
    s.stop().await;
}

/// A JSON request with a bearer token; the status and the body (`Null` when empty).
async fn call(
    s: &TestServer,
    method: &str,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = client()
        .request(method.parse().unwrap(), s.url(&format!("/api/v1{path}")))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn reviewers_resolve_disagreements_and_the_export_carries_gold() {
    let s = TestServer::start().await;
    let (status, created) = call(
        &s,
        "POST",
        &s.admin_token,
        "/projects",
        Some(
            json!({"name": "review", "task": "classification", "overlap": 3,
            "labels": [{"name": "pos"}, {"name": "neg"}, {"name": "neu"}]}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["settings"]["blind"], true);
    let project = created["id"].as_u64().unwrap();
    let items: String = (1..=5)
        .map(|i| format!("{{\"text\":\"tweet {i}\"}}\n"))
        .collect();
    assert_eq!(
        import(&s, &s.admin_token, project, &items).await.status(),
        StatusCode::OK
    );
    let planted = [
        ["pos", "pos", "pos"],
        ["pos", "neg", "pos"],
        ["neu", "neu", "neu"],
        ["pos", "neg", "neu"],
    ];
    let mut tokens = Vec::new();
    for name in ["a", "b", "c"] {
        tokens.push(annotator(&s, name, project).await);
    }
    for (col, token) in tokens.iter().enumerate() {
        for (row, answers) in planted.iter().enumerate() {
            let (status, _) = call(
                &s,
                "POST",
                token,
                &format!("/projects/{project}/annotations"),
                Some(json!({"item_id": (row + 1).to_string(), "labels": [answers[col]]})),
            )
            .await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    // Annotators cannot review.
    let (status, _) = call(
        &s,
        "GET",
        &tokens[0],
        &format!("/projects/{project}/review/next"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &s,
        "PUT",
        &tokens[0],
        &format!("/projects/{project}/items/2/gold"),
        Some(json!({"labels": ["pos"]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A reviewer works through the queue: exactly the two disagreements, in order.
    let rev = annotator(&s, "rev", project).await;
    call(
        &s,
        "POST",
        &s.admin_token,
        &format!("/projects/{project}/members"),
        Some(json!({"user": "rev", "role": "reviewer"})),
    )
    .await;
    let (_, summary) = call(
        &s,
        "GET",
        &rev,
        &format!("/projects/{project}/review/summary"),
        None,
    )
    .await;
    assert_eq!(
        (
            &summary["needs_review"],
            &summary["accepted"],
            &summary["unannotated"]
        ),
        (&json!(2), &json!(2), &json!(1))
    );
    let mut reviewed = Vec::new();
    loop {
        let (status, item) = call(
            &s,
            "GET",
            &rev,
            &format!("/projects/{project}/review/next"),
            None,
        )
        .await;
        if status == StatusCode::NO_CONTENT {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        let id = item["id"].as_str().unwrap().to_string();
        assert!(
            !reviewed.contains(&id),
            "item {id} came back after it was resolved"
        );
        let answers: Vec<&str> = item["answers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["labels"][0].as_str().unwrap())
            .collect();
        let row: usize = id.parse::<usize>().unwrap() - 1;
        assert_eq!(answers, planted[row]);
        // The reviewer picks the last annotator's answer.
        let (status, resolved) = call(
            &s,
            "PUT",
            &rev,
            &format!("/projects/{project}/items/{id}/gold"),
            Some(json!({"labels": [answers[2]]})),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(resolved["state"], "resolved");
        reviewed.push(id);
    }
    assert_eq!(reviewed, ["2", "4"]);
    let (status, bad) = call(
        &s,
        "PUT",
        &rev,
        &format!("/projects/{project}/items/2/gold"),
        Some(json!({"labels": ["maybe"]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad["error"].as_str().unwrap().contains("maybe"), "{bad}");

    // The export: reviewed gold, unanimous gold, nothing for the unlabelled item.
    let export = client()
        .get(s.url(&format!("/api/v1/projects/{project}/export")))
        .bearer_auth(&rev)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gold: Vec<(Value, Value)> = export
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["gold"].clone(), v["gold_source"].clone()))
        .collect();
    assert_eq!(
        gold,
        [
            (json!("pos"), json!("unanimous")),
            (json!("pos"), json!("review")),
            (json!("neu"), json!("unanimous")),
            (json!("neu"), json!("review")),
            (Value::Null, Value::Null),
        ]
    );

    // Settings: only the project admin changes them; outside blind mode others' answers show.
    let (status, _) = call(
        &s,
        "PATCH",
        &rev,
        &format!("/projects/{project}/settings"),
        Some(json!({"blind": false})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, p) = call(
        &s,
        "PATCH",
        &s.admin_token,
        &format!("/projects/{project}/settings"),
        Some(json!({"blind": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&p["settings"]["blind"], &p["overlap"]),
        (&json!(false), &json!(3))
    );
    let (status, err) = call(
        &s,
        "PATCH",
        &s.admin_token,
        &format!("/projects/{project}/settings"),
        Some(json!({"overlap": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");

    // The review page: the reviewer sees the queue state, an annotator a refusal.
    let (_, secret) = s.engine.login("rev", "annotator-pw").unwrap();
    let html = browser_get(
        &s,
        &format!("concord_session={secret}"),
        &format!("/projects/{project}/review"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(html.contains("data-waiting=\"0\""), "{html}");
    let (_, secret) = s.engine.login("a", "annotator-pw").unwrap();
    let html = browser_get(
        &s,
        &format!("concord_session={secret}"),
        &format!("/projects/{project}/review"),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(
        !html.contains("data-waiting"),
        "an annotator saw the review queue"
    );
    assert!(html.contains("role=\"alert\""), "no refusal shown");
    s.stop().await;
}
