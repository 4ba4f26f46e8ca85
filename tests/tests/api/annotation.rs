//! The annotation loop over HTTP: next item, answers (idempotent, validated), the export.

use concord_tests::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn the_annotation_loop_over_http() {
    let s = TestServer::start().await;
    let p = s.create_mail_project("Mail").await;
    let r = s.import(&s.admin_token, p, "{\"id\":\"m1\",\"text\":\"WIN A PRIZE\",\"sender\":\"x@y\"}\n{\"text\":\"lunch at noon?\",\"gold\":\"ham\"}\n").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["imported"], 2);
    let ann = s.annotator("ann", p).await;

    let (_, next) = s.next_item(&ann, p).await;
    assert_eq!(next["id"], "m1");
    assert_eq!(next["meta"]["sender"], "x@y");
    assert_eq!(
        s.annotate(&ann, p, "m1", &["spam"], 900).await,
        (StatusCode::OK, json!({"outcome": "created"}))
    );
    assert_eq!(
        s.annotate(&ann, p, "m1", &["spam"], 900).await,
        (StatusCode::OK, json!({"outcome": "unchanged"}))
    );
    let (status, body) = s.annotate(&ann, p, "m1", &["eggs"], 900).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"].as_str().unwrap().contains("\"eggs\""),
        "{body}"
    );
    let (_, next) = s.next_item(&ann, p).await;
    assert_eq!(next["id"], "2");
    s.annotate(&ann, p, "2", &["ham"], 900).await;
    let (status, _) = s.next_item(&ann, p).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let export = s.export(&s.admin_token, p, Some("jsonl")).await;
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
    let csv = s
        .export(&s.admin_token, p, Some("csv"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with(
            "id,text,gold,gold_source,gold_question,meta,ann:ann,aggregate,aggregate_status,suggestion,suggestion_confidence,suggestion_version\n"
        ),
        "{csv}"
    );

    let (_, projects) = s.api(Method::GET, &ann, "/projects", None).await;
    assert_eq!(projects[0]["done"], 2);
    assert_eq!(projects[0]["mine"], 2);
    s.stop().await;
}

/// "🙂 Zoë met 東京 friends": 20 code points (21 UTF-16 units); 東京 is 10..12.
const EMOJI_TEXT: &str = "🙂 Zoë met 東京 friends";

#[tokio::test]
async fn span_answers_over_http_count_code_points_and_follow_the_overlap_policy() {
    let s = TestServer::start().await;
    let flat = s
        .create_span_project_with("ner", &["per", "loc"], 1, false)
        .await;
    let body = format!(
        "{}\n{}\n",
        json!({"id": "e1", "text": EMOJI_TEXT}),
        json!({"id": "e2", "text": "nobody here"})
    );
    assert_eq!(
        s.import(&s.admin_token, flat, &body).await.status(),
        StatusCode::OK
    );
    let ann = s.annotator("ann", flat).await;

    let (status, next) = s.next_item(&ann, flat).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(next["id"], "e1");
    let tokens: Vec<(u64, u64)> = next["tokens"]
        .as_array()
        .expect("span items carry their tokens")
        .iter()
        .map(|t| (t["start"].as_u64().unwrap(), t["end"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        tokens,
        [(0, 1), (2, 5), (6, 9), (10, 11), (11, 12), (13, 20)]
    );
    assert_eq!(next["others"], Value::Null);
    assert_eq!(next["suggestion"], Value::Null);

    assert_eq!(
        s.annotate_spans(&ann, flat, "e1", &[(10, 12, "loc"), (2, 5, "per")])
            .await,
        (StatusCode::OK, json!({"outcome": "created"}))
    );
    // Out of the text by code points (it would fit in UTF-16 units): refused, naming why.
    let (status, body) = s.annotate_spans(&ann, flat, "e1", &[(13, 21, "per")]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = body["error"].as_str().unwrap();
    assert!(message.contains("13..21"), "{message}");
    assert!(message.contains("20 characters"), "{message}");
    assert!(message.contains("code points"), "{message}");
    // Nested spans in a flat project: refused.
    let (status, body) = s
        .annotate_spans(&ann, flat, "e1", &[(2, 12, "per"), (10, 12, "loc")])
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"].as_str().unwrap().contains("overlap"),
        "{body}"
    );
    // Labels are not a span answer.
    let (status, _) = s.annotate(&ann, flat, "e2", &["per"], 900).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // "No entities".
    assert_eq!(
        s.annotate_spans(&ann, flat, "e2", &[]).await,
        (StatusCode::OK, json!({"outcome": "created"}))
    );

    // The first answer stands, in canonical order; the refused ones changed nothing.
    let who = s.engine.principal_by_name("ann").unwrap();
    let stored = |item: &str| {
        s.engine
            .item_for_annotation(&who, concord_domain::ProjectId(flat), item)
            .unwrap()
            .mine
            .unwrap()
            .spans
    };
    assert_eq!(
        stored("e1"),
        [
            concord_domain::Span::new(2, 5, "per"),
            concord_domain::Span::new(10, 12, "loc")
        ]
    );
    assert!(stored("e2").is_empty());

    // A project that allows overlapping spans takes the nested answer.
    let nested = s
        .create_span_project_with("nested", &["per", "loc"], 1, true)
        .await;
    assert_eq!(
        s.import(
            &s.admin_token,
            nested,
            &format!("{}\n", json!({"id": "e1", "text": EMOJI_TEXT}))
        )
        .await
        .status(),
        StatusCode::OK
    );
    s.add_member(nested, "ann", "annotator").await;
    assert_eq!(
        s.annotate_spans(&ann, nested, "e1", &[(2, 12, "per"), (10, 12, "loc")])
            .await,
        (StatusCode::OK, json!({"outcome": "created"}))
    );
}
