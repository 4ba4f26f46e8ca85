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
