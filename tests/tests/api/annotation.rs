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
