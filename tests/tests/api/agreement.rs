//! The agreement figures over HTTP, on the dashboard page and in its CSV downloads.

use concord_agreement::{agreement_report, Ratings, ReportOptions};
use concord_tests::{TestServer, ADMIN, ADMIN_PASSWORD, MEMBER_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Planted answers: rows are items 1–6, columns annotators a, b, c.
const PLANTED: [[&str; 3]; 6] = [
    ["pos", "pos", "pos"],
    ["neg", "neg", "neg"],
    ["pos", "neg", "pos"],
    ["neu", "neu", "neg"],
    ["neg", "neg", "neg"],
    ["pos", "neu", "neu"],
];

#[tokio::test]
async fn agreement_over_http_matches_the_statistics_crate_and_is_for_reviewers() {
    let s = TestServer::start().await;
    let (status, created) = s
        .create_project(
            &s.admin_token,
            json!({"name": "agree", "task": "classification", "overlap": 3,
            "labels": [{"name": "pos"}, {"name": "neg"}, {"name": "neu"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let project = created["id"].as_u64().unwrap();
    s.import_numbered_texts(project, "tweet", 6).await;
    let mut tokens = Vec::new();
    for name in ["a", "b", "c"] {
        tokens.push(s.annotator(name, project).await);
    }
    for (col, token) in tokens.iter().enumerate() {
        for _ in 0..PLANTED.len() {
            let (_, next) = s.next_item(token, project).await;
            let id = next["id"].as_str().unwrap().to_string();
            let row: usize = id.parse::<usize>().unwrap() - 1;
            let (status, _) = s
                .annotate(token, project, &id, &[PLANTED[row][col]], 2000)
                .await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    let (status, _) = s.agreement(&tokens[0], project).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "annotators must not see agreement"
    );
    let (_, got) = s.agreement(&s.admin_token, project).await;
    let rows: Vec<Vec<Option<&str>>> = PLANTED
        .iter()
        .map(|r| r.iter().map(|l| Some(*l)).collect())
        .collect();
    let ratings = Ratings::from_labels_with_categories(&rows, &["pos", "neg", "neu"]).unwrap();
    let expected = agreement_report(&ratings.view(), &ReportOptions::default());
    let value = |v: &Value| v["value"].as_f64().unwrap();
    let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
    let report = &got["report"];
    let alpha = expected.alpha_nominal.coefficient.value().unwrap();
    assert!(close(value(&report["alpha_nominal"]["coefficient"]), alpha));
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
    // Over time: every item counted on the (UTC) day it was finished. A run that straddles
    // midnight finishes items on two days, so the test counts over the days, whichever they
    // are: they add up to the six items, and the last day's cumulative α is the whole α.
    let days = got["over_time"].as_array().unwrap();
    assert!(
        (1..=2).contains(&days.len()),
        "one run spans one or two days: {days:?}"
    );
    let finished: u64 = days.iter().map(|d| d["items"].as_u64().unwrap()).sum();
    assert_eq!(finished, 6, "{days:?}");
    let day = |d: &Value| d["day"].as_str().unwrap().to_string();
    assert!(days.windows(2).all(|w| day(&w[0]) < day(&w[1])), "{days:?}");
    let last = days.last().unwrap();
    assert!(close(value(&last["alpha_cumulative"]), alpha), "{last}");
    let (_, confusion) = s
        .api(
            Method::GET,
            &s.admin_token,
            &format!("/projects/{project}/agreement/confusion?a=a&b=b"),
            None,
        )
        .await;
    // a said pos where b said neg once (item 3) and neu once (item 6).
    assert_eq!(
        confusion["counts"],
        json!([[1, 1, 1], [0, 2, 0], [0, 0, 1]])
    );

    // The dashboard page, rendered on the server, shows the same α; its CSVs carry it too.
    let admin_cookie = s.session_cookie(ADMIN, ADMIN_PASSWORD);
    let html = s
        .browser_get(&admin_cookie, &format!("/projects/{project}/agreement"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!("data-value=\"{alpha}\"")),
        "α {alpha} not on the dashboard"
    );
    assert!(html.contains("<svg"), "charts are rendered on the server");
    let csv = s
        .browser_get(
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
    let csv = s
        .browser_get(
            &admin_cookie,
            &format!("/projects/{project}/agreement/confusion.csv?a=a&b=b"),
        )
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(csv, "a \\ b,pos,neg,neu\npos,1,1,1\nneg,0,2,0\nneu,0,0,1\n");
    // An annotator gets a refusal on the page and on the downloads.
    let annotator_cookie = s.session_cookie("a", MEMBER_PASSWORD);
    let r = s
        .browser_get(
            &annotator_cookie,
            &format!("/projects/{project}/agreement/pairs.csv"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let html = s
        .browser_get(&annotator_cookie, &format!("/projects/{project}/agreement"))
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

#[tokio::test]
async fn span_agreement_over_http_on_the_dashboard_and_in_csv() {
    let s = TestServer::start().await;
    let project = s
        .create_span_project_with("ner agree", &["per", "loc"], 2, false)
        .await;
    let body = format!(
        "{}\n{}\n",
        json!({"id": "t1", "text": "Alice met Bob in Paris"}),
        json!({"id": "t2", "text": "Visit New York now"})
    );
    assert_eq!(
        s.import(&s.admin_token, project, &body).await.status(),
        StatusCode::OK
    );
    let a = s.annotator("a", project).await;
    let b = s.annotator("b", project).await;
    s.annotate_spans(
        &a,
        project,
        "t1",
        &[(0, 5, "per"), (10, 13, "per"), (17, 22, "loc")],
    )
    .await;
    s.annotate_spans(
        &b,
        project,
        "t1",
        &[(0, 9, "per"), (10, 13, "loc"), (17, 22, "loc")],
    )
    .await;
    s.annotate_spans(&a, project, "t2", &[(6, 14, "loc")]).await;
    s.annotate_spans(&b, project, "t2", &[(10, 14, "loc")])
        .await;

    let (status, figures) = s.agreement(&s.admin_token, project).await;
    assert_eq!(status, StatusCode::OK, "{figures}");
    let spans = &figures["spans"];
    let value = |v: &Value| {
        v["value"]
            .as_f64()
            .unwrap_or_else(|| panic!("undefined: {v}"))
    };
    // Worked by hand in crates/engine/tests/span_review.rs: exact micro 1/4, macro 1/5;
    // overlap micro 3/4; loc exact 2/5, overlap 4/5.
    assert_eq!(value(&spans["exact"]["micro_f1"]), 0.25);
    assert!((value(&spans["exact"]["macro_f1"]) - 0.2).abs() < 1e-12);
    assert_eq!(value(&spans["overlap"]["micro_f1"]), 0.75);
    let loc = spans["per_type"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["label"] == "loc")
        .unwrap();
    assert!((value(&loc["exact_f1"]) - 0.4).abs() < 1e-12);
    assert!((value(&loc["overlap_f1"]) - 0.8).abs() < 1e-12);
    assert_eq!(spans["pairs"][0]["items"], 2);
    let alpha = value(&spans["unitizing"]["alpha"]["coefficient"]);
    assert!(alpha < 1.0, "{alpha}");
    assert_eq!(spans["unitizing"]["length"], 40);
    // Classification projects have no spans section.
    let other = s.create_mail_project("mail").await;
    let (_, figures) = s.agreement(&s.admin_token, other).await;
    assert!(figures.get("spans").is_none(), "{figures}");

    let admin_cookie = s.session_cookie(ADMIN, ADMIN_PASSWORD);
    let html = s
        .browser_get(&admin_cookie, &format!("/projects/{project}/agreement"))
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("data-testid=\"span-pairs\""), "no pair table");
    assert!(html.contains("data-testid=\"span-types\""), "no type table");
    assert!(
        html.contains("data-value=\"0.25\""),
        "exact F1 not on the dashboard"
    );
    let csv = s
        .browser_get(
            &admin_cookie,
            &format!("/projects/{project}/agreement/span-types.csv"),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("type,spans,exact_f1,overlap_f1,alpha_u\n"),
        "{csv}"
    );
    assert!(csv.contains("\nloc,5,0.4,0.8,"), "{csv}");
    let csv = s
        .browser_get(
            &admin_cookie,
            &format!("/projects/{project}/agreement/span-pairs.csv"),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(csv.contains("\na,b,2,0.25,"), "{csv}");
    let annotator_cookie = s.session_cookie("a", MEMBER_PASSWORD);
    let r = s
        .browser_get(
            &annotator_cookie,
            &format!("/projects/{project}/agreement/span-pairs.csv"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
