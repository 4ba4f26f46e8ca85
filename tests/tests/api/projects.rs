//! Creating projects, refusing bad requests, and the API's own description.

use concord_tests::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn bad_requests_get_json_errors_and_store_nothing() {
    let s = TestServer::start().await;
    let p = s.create_mail_project("Mail").await;
    let r = s
        .import(&s.admin_token, p, "{\"text\":\"ok\"}\n{\"text\": 5}\n")
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"],
        "line 2: field \"text\" is not a string"
    );
    let r = s
        .import(&s.admin_token, p, "{\"text\":\"ok\",\"gold\":\"eggs\"}\n")
        .await;
    assert!(r.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .starts_with("line 1: gold label"));
    let (_, project) = s
        .api(Method::GET, &s.admin_token, &format!("/projects/{p}"), None)
        .await;
    assert_eq!(project["total"], 0);
    let r = s
        .request(Method::POST, "/api/v1/projects")
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
    let (status, _) = s
        .create_project(
            &s.admin_token,
            json!({"name": "Mail", "task": "classification", "labels": [{"name": "a"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, body) = s
        .create_project(
            &s.admin_token,
            json!({"name": "X", "task": "classification", "labels": []}),
        )
        .await;
    assert_eq!(body["error"], "a project needs at least one label");
    s.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_every_endpoint() {
    let s = TestServer::start().await;
    let doc: Value = s
        .request(Method::GET, "/api/v1/openapi.json")
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
            let r = s
                .request(
                    method.to_uppercase().parse().unwrap(),
                    &format!("/api/v1{}", path.replace("{id}", "999")),
                )
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
