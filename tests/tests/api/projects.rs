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

#[tokio::test]
async fn a_span_project_is_created_with_its_span_settings_and_patterns() {
    let s = TestServer::start().await;
    let patterns = json!([
        {"label": "geo-loc", "kind": "term", "pattern": "new york", "case_insensitive": true},
        {"label": "company", "kind": "regex", "pattern": "[A-Z][a-z]+ (Inc|Ltd)"},
    ]);
    let (status, body) = s
        .create_project(
            &s.admin_token,
            json!({
                "name": "Tweets",
                "task": "spans",
                "labels": [
                    {"name": "person", "description": "a named person"},
                    {"name": "geo-loc", "hotkey": "g", "colour": "#123abc"},
                    {"name": "company"},
                ],
                "overlapping_spans": true,
                "accept_threshold": 65,
                "patterns": patterns,
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_u64().unwrap();
    let (_, project) = s
        .api(
            Method::GET,
            &s.admin_token,
            &format!("/projects/{id}"),
            None,
        )
        .await;
    assert_eq!(project["task"], "spans");
    let labels = project["labels"].as_array().unwrap();
    let hotkeys: Vec<_> = labels
        .iter()
        .map(|l| l["hotkey"].as_str().unwrap())
        .collect();
    assert_eq!(hotkeys, ["1", "g", "2"]);
    assert_eq!(labels[0]["description"], "a named person");
    assert_eq!(labels[1]["colour"], "#123abc");
    assert!(labels[2]["colour"].as_str().unwrap().starts_with('#'));
    let settings = &project["settings"];
    assert_eq!(settings["overlapping_spans"], true);
    assert_eq!(settings["accept_threshold"], 65);
    assert_eq!(settings["patterns"][0], patterns[0]);
    assert_eq!(settings["patterns"][1]["pattern"], "[A-Z][a-z]+ (Inc|Ltd)");
    assert_eq!(settings["patterns"][1]["case_insensitive"], false);

    // A span project created without span settings is flat, with the default threshold.
    let (status, body) = s
        .create_project(
            &s.admin_token,
            json!({"name": "Flat", "task": "spans", "labels": [{"name": "person"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["settings"]["overlapping_spans"], false);
    assert_eq!(body["settings"]["accept_threshold"], 80);
    assert_eq!(body["settings"]["patterns"], json!([]));

    // PATCH replaces the pattern list and keeps what it does not name.
    let (status, body) = s
        .api(
            Method::PATCH,
            &s.admin_token,
            &format!("/projects/{id}/settings"),
            Some(json!({"patterns": [{"label": "person", "kind": "term", "pattern": "Bieber"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["settings"]["patterns"].as_array().unwrap().len(), 1);
    assert_eq!(body["settings"]["patterns"][0]["label"], "person");
    assert_eq!(body["settings"]["accept_threshold"], 65);
    assert_eq!(body["settings"]["overlapping_spans"], true);

    // A pattern of a label the project lacks, and a threshold over 100, are refused and
    // change nothing.
    for (field, value, error) in [
        (
            "patterns",
            json!([{"label": "animal", "kind": "term", "pattern": "cat"}]),
            "label \"animal\" is not in this project's labels",
        ),
        ("accept_threshold", json!(101), ""),
    ] {
        let (status, body) = s
            .api(
                Method::PATCH,
                &s.admin_token,
                &format!("/projects/{id}/settings"),
                Some(json!({ field: value })),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {body}");
        if !error.is_empty() {
            assert_eq!(body["error"], error);
        }
    }
    let (_, project) = s
        .api(
            Method::GET,
            &s.admin_token,
            &format!("/projects/{id}"),
            None,
        )
        .await;
    assert_eq!(project["settings"]["patterns"][0]["pattern"], "Bieber");
    assert_eq!(project["settings"]["accept_threshold"], 65);
    s.stop().await;
}

#[tokio::test]
async fn the_loop_that_trains_itself_is_on_by_default_and_set_by_create_and_patch() {
    let s = TestServer::start().await;
    let labels = json!([{"name": "a"}, {"name": "b"}]);
    let (status, body) = s
        .create_project(
            &s.admin_token,
            json!({"name": "Default", "task": "classification", "labels": labels}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["settings"]["auto_train"],
        json!({"enabled": true, "every": 20, "fine_tune_at": [100, 300, 1000], "few_shot_at": [50]})
    );
    let (status, body) = s
        .create_project(
            &s.admin_token,
            json!({"name": "Manual", "task": "classification", "labels": labels,
                   "auto_train": {"enabled": false}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_u64().unwrap();
    assert_eq!(body["settings"]["auto_train"]["enabled"], false);
    assert_eq!(body["settings"]["auto_train"]["every"], 20);

    let patch = |value: serde_json::Value| {
        let s = &s;
        async move {
            s.api(
                Method::PATCH,
                &s.admin_token,
                &format!("/projects/{id}/settings"),
                Some(json!({ "auto_train": value })),
            )
            .await
        }
    };
    let (status, body) = patch(
        json!({"enabled": true, "every": 50, "fine_tune_at": [200], "few_shot_at": [30, 60]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["settings"]["auto_train"],
        json!({"enabled": true, "every": 50, "fine_tune_at": [200], "few_shot_at": [30, 60]})
    );
    // Retraining after every label, and milestones out of order, are refused and change
    // nothing.
    for bad in [
        json!({"every": 1}),
        json!({"fine_tune_at": [300, 100]}),
        json!({"few_shot_at": [0]}),
    ] {
        let (status, body) = patch(bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let (_, project) = s
        .api(
            Method::GET,
            &s.admin_token,
            &format!("/projects/{id}"),
            None,
        )
        .await;
    assert_eq!(project["settings"]["auto_train"]["every"], 50);
    assert_eq!(
        project["settings"]["auto_train"]["few_shot_at"],
        json!([30, 60])
    );
    s.stop().await;
}

#[tokio::test]
async fn a_span_project_refuses_a_label_hotkey_the_span_editor_uses() {
    let s = TestServer::start().await;
    for (key, _) in concord_domain::SPAN_EDITOR_KEYS {
        let (status, body) = s
            .create_project(
                &s.admin_token,
                json!({
                    "name": format!("Entities {key}"),
                    "task": "spans",
                    "labels": [{"name": "person", "hotkey": "p"}, {"name": "product", "hotkey": key}],
                }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{key}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!("hotkey {key:?} of label \"product\" is reserved")),
            "{key}: {error}"
        );
    }
    let (_, list) = s.api(Method::GET, &s.admin_token, "/projects", None).await;
    assert_eq!(list, json!([]), "a refused project is not stored");
    // The span editor's keys are free in a classification project.
    let (status, body) = s
        .create_project(
            &s.admin_token,
            json!({"name": "Brackets", "task": "classification", "labels": [{"name": "a", "hotkey": "["}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["labels"][0]["hotkey"], "[");
    s.stop().await;
}

/// The project page's span settings form: its server function reads one row per label (terms
/// and regular expressions one per line, a case flag), saves them with the overlap setting and
/// the threshold, keeps the workflow settings, and refuses an invalid regular expression by
/// naming it, changing nothing.
#[tokio::test]
async fn the_span_settings_form_saves_patterns_per_label_and_names_a_bad_regex() {
    use concord_app::api::UpdateSpanSettings;
    use leptos::server_fn::ServerFn;
    let s = TestServer::start().await;
    let (status, body) = s
        .create_project(
            &s.admin_token,
            json!({
                "name": "Tweets",
                "task": "spans",
                "overlap": 2,
                "labels": [{"name": "person"}, {"name": "geo-loc"}],
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_u64().unwrap().to_string();
    let cookie = s.session_cookie(concord_tests::ADMIN, concord_tests::ADMIN_PASSWORD);
    let save = |fields: Vec<(&'static str, &'static str)>| {
        let mut form = vec![("project", id.clone())];
        form.extend(fields.into_iter().map(|(k, v)| (k, v.to_string())));
        s.request(Method::POST, UpdateSpanSettings::PATH)
            .header("cookie", &cookie)
            .header("accept", "application/json")
            .form(&form)
            .send()
    };
    // What a browser sends: textareas with CRLF line ends, blank and padded lines, and the
    // checkboxes only when ticked.
    let r = save(vec![
        ("overlapping_spans", "on"),
        ("accept_threshold", "55"),
        ("patterns[0][label]", "person"),
        (
            "patterns[0][terms]",
            "Justin Bieber\r\n\r\n  Selena Gomez \r\n",
        ),
        ("patterns[0][regexes]", ""),
        ("patterns[1][label]", "geo-loc"),
        ("patterns[1][terms]", ""),
        ("patterns[1][regexes]", "[A-Z][a-z]+ville"),
        ("patterns[1][case_insensitive]", "on"),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let (_, project) = s
        .api(
            Method::GET,
            &s.admin_token,
            &format!("/projects/{id}"),
            None,
        )
        .await;
    let settings = &project["settings"];
    assert_eq!(settings["overlapping_spans"], true);
    assert_eq!(settings["accept_threshold"], 55);
    assert_eq!(settings["overlap"], 2, "the workflow settings stay");
    assert_eq!(
        settings["patterns"],
        json!([
            {"label": "person", "kind": "term", "pattern": "Justin Bieber", "case_insensitive": false},
            {"label": "person", "kind": "term", "pattern": "Selena Gomez", "case_insensitive": false},
            {"label": "geo-loc", "kind": "regex", "pattern": "[A-Z][a-z]+ville", "case_insensitive": true},
        ])
    );

    // An invalid regular expression: refused, named, nothing changed (the unticked overlap
    // box and the new threshold included).
    let r = save(vec![
        ("accept_threshold", "90"),
        ("patterns[0][label]", "person"),
        ("patterns[0][regexes]", "(unclosed"),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let error: Value = r.json().await.unwrap();
    assert_eq!(error["kind"], "invalid_input");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("\"(unclosed\""), "{message}");
    let (_, after) = s
        .api(
            Method::GET,
            &s.admin_token,
            &format!("/projects/{id}"),
            None,
        )
        .await;
    assert_eq!(after["settings"], project["settings"]);

    // Saving no patterns at all clears them.
    let r = save(vec![
        ("accept_threshold", "80"),
        ("patterns[0][label]", "person"),
        ("patterns[1][label]", "geo-loc"),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let (_, cleared) = s
        .api(
            Method::GET,
            &s.admin_token,
            &format!("/projects/{id}"),
            None,
        )
        .await;
    assert_eq!(cleared["settings"]["patterns"], json!([]));
    assert_eq!(cleared["settings"]["overlapping_spans"], false);
    s.stop().await;
}

/// Generators over HTTP without any: `GET /models` lists none, and a prediction naming one
/// is refused for what it is (an unknown generator, a misspelt field), before any job.
#[tokio::test]
async fn a_prediction_names_a_generator_the_server_lists() {
    let s = TestServer::start().await;
    let (status, models) = s.api(Method::GET, &s.admin_token, "/models", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(models["generators"], json!([]), "{models}");
    let project = s.create_mail_project("generated").await;
    let predict = format!("/projects/{project}/predict");
    let (status, err) = s
        .api(
            Method::POST,
            &s.admin_token,
            &predict,
            Some(json!({"generator": "SmolLM2-135M-Instruct.Q4_1"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("SmolLM2-135M-Instruct.Q4_1"),
        "{err}"
    );
    let (status, err) = s
        .api(
            Method::POST,
            &s.admin_token,
            &predict,
            Some(json!({"generatr": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let (_, jobs) = s
        .api(
            Method::GET,
            &s.admin_token,
            &format!("/projects/{project}/jobs"),
            None,
        )
        .await;
    assert_eq!(jobs, json!([]));
    s.stop().await;
}
