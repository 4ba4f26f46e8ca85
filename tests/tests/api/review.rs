//! Review over HTTP: the queue of disagreements, gold labels in the export, the settings that
//! only a project admin changes, and the review page.

use concord_tests::{TestServer, MEMBER_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn reviewers_resolve_disagreements_and_the_export_carries_gold() {
    let s = TestServer::start().await;
    let (status, created) = s
        .create_project(
            &s.admin_token,
            json!({"name": "review", "task": "classification", "overlap": 3,
            "labels": [{"name": "pos"}, {"name": "neg"}, {"name": "neu"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["settings"]["blind"], true);
    let project = created["id"].as_u64().unwrap();
    s.import_numbered_texts(project, "tweet", 5).await;
    let planted = [
        ["pos", "pos", "pos"],
        ["pos", "neg", "pos"],
        ["neu", "neu", "neu"],
        ["pos", "neg", "neu"],
    ];
    let mut tokens = Vec::new();
    for name in ["a", "b", "c"] {
        tokens.push(s.annotator(name, project).await);
    }
    for (col, token) in tokens.iter().enumerate() {
        for (row, answers) in planted.iter().enumerate() {
            let (status, _) = s
                .annotate(token, project, &(row + 1).to_string(), &[answers[col]], 0)
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    // Annotators cannot review.
    let review_next = format!("/projects/{project}/review/next");
    let (status, _) = s.api(Method::GET, &tokens[0], &review_next, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s
        .api(
            Method::PUT,
            &tokens[0],
            &format!("/projects/{project}/items/2/gold"),
            Some(json!({"labels": ["pos"]})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A reviewer works through the queue: exactly the two disagreements, in order.
    let rev = s.annotator("rev", project).await;
    s.add_member(project, "rev", "reviewer").await;
    let (_, summary) = s
        .api(
            Method::GET,
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
        let (status, item) = s.api(Method::GET, &rev, &review_next, None).await;
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
        let (status, resolved) = s
            .api(
                Method::PUT,
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
    let (status, bad) = s
        .api(
            Method::PUT,
            &rev,
            &format!("/projects/{project}/items/2/gold"),
            Some(json!({"labels": ["maybe"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad["error"].as_str().unwrap().contains("maybe"), "{bad}");

    // The export: reviewed gold, unanimous gold, nothing for the unlabelled item.
    let gold: Vec<(Value, Value)> = s
        .export_jsonl(&rev, project)
        .await
        .into_iter()
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
    let settings = format!("/projects/{project}/settings");
    let (status, _) = s
        .api(
            Method::PATCH,
            &rev,
            &settings,
            Some(json!({"blind": false})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, p) = s
        .api(
            Method::PATCH,
            &s.admin_token,
            &settings,
            Some(json!({"blind": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&p["settings"]["blind"], &p["overlap"]),
        (&json!(false), &json!(3))
    );
    let (status, err) = s
        .api(
            Method::PATCH,
            &s.admin_token,
            &settings,
            Some(json!({"overlap": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");

    // The review page: the reviewer sees the queue state, an annotator a refusal.
    let html = s
        .browser_get(
            &s.session_cookie("rev", MEMBER_PASSWORD),
            &format!("/projects/{project}/review"),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("data-waiting=\"0\""), "{html}");
    let html = s
        .browser_get(
            &s.session_cookie("a", MEMBER_PASSWORD),
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

#[tokio::test]
async fn span_disagreements_are_reviewed_and_resolved_with_spans_over_http() {
    let s = TestServer::start().await;
    let project = s
        .create_span_project_with("ner review", &["per", "loc"], 2, false)
        .await;
    let body = format!(
        "{}\n{}\n",
        json!({"id": "s1", "text": "Alice met Bob in Paris"}),
        json!({"id": "s2", "text": "🙂 Zoë in Köln"})
    );
    assert_eq!(
        s.import(&s.admin_token, project, &body).await.status(),
        StatusCode::OK
    );
    let a = s.annotator("a", project).await;
    let b = s.annotator("b", project).await;
    s.create_user("rev").await;
    s.add_member(project, "rev", "reviewer").await;
    let rev = s.token_for("rev");

    // s2: the same spans → accepted as gold without review.
    for token in [&a, &b] {
        let (status, _) = s
            .annotate_spans(token, project, "s2", &[(2, 5, "per"), (9, 13, "loc")])
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    // s1: they differ on Bob.
    s.annotate_spans(
        &a,
        project,
        "s1",
        &[(0, 5, "per"), (10, 13, "per"), (17, 22, "loc")],
    )
    .await;
    s.annotate_spans(&b, project, "s1", &[(0, 5, "per"), (17, 22, "loc")])
        .await;

    let (status, summary) = s
        .api(
            Method::GET,
            &rev,
            &format!("/projects/{project}/review/summary"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            summary["accepted"].as_u64(),
            summary["disagreements"].as_u64()
        ),
        (Some(1), Some(1))
    );

    let (status, item) = s
        .api(
            Method::GET,
            &rev,
            &format!("/projects/{project}/review/next"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{item}");
    assert_eq!(item["id"], "s1");
    assert_eq!(item["state"], "disagreement");
    let span = |s: u64, e: u64, l: &str| json!({"start": s, "end": e, "label": l});
    assert_eq!(item["answers"][0]["annotator"], "a");
    assert_eq!(
        item["answers"][0]["spans"],
        json!([span(0, 5, "per"), span(10, 13, "per"), span(17, 22, "loc")])
    );
    assert_eq!(
        item["answers"][1]["spans"],
        json!([span(0, 5, "per"), span(17, 22, "loc")])
    );
    // Both marked Alice and Paris: that is the majority.
    assert_eq!(
        item["proposal_spans"],
        json!([span(0, 5, "per"), span(17, 22, "loc")])
    );
    assert_eq!(item["gold_spans"], Value::Null);
    assert!(!item["tokens"].as_array().unwrap().is_empty());

    // The reviewer edits the proposal: Bob is a person, Paris stays.
    let gold_path = format!("/projects/{project}/items/s1/gold");
    let (status, body) = s
        .api(
            Method::PUT,
            &rev,
            &gold_path,
            Some(json!({"spans": [span(17, 23, "loc")]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"].as_str().unwrap().contains("22 characters"),
        "{body}"
    );
    let (status, _) = s
        .api(Method::PUT, &a, &gold_path, Some(json!({"spans": []})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let edited = json!([span(0, 5, "per"), span(10, 13, "per"), span(17, 22, "loc")]);
    let (status, resolved) = s
        .api(
            Method::PUT,
            &rev,
            &gold_path,
            Some(json!({"spans": edited})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["gold_spans"], edited);
    assert_eq!(resolved["gold_source"]["kind"], "review");
    let (status, _) = s
        .api(
            Method::GET,
            &rev,
            &format!("/projects/{project}/review/next"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
