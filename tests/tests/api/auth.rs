//! Signing in, tokens, the one-time setup link, and who may reach what.

use concord_tests::{AwaitingSetup, TestServer, ADMIN_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn health_and_authentication() {
    let s = TestServer::start().await;
    let r = s.request(Method::GET, "/healthz").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = s
        .request(Method::GET, "/api/v1/projects")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("bearer token"));
    let (status, _) = s.api(Method::GET, "cct_forged", "/projects", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = s.api(Method::GET, &s.admin_token, "/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "no such endpoint");
    s.stop().await;
}

#[tokio::test]
async fn annotators_are_refused_outside_their_projects() {
    let s = TestServer::start().await;
    let mine = s.create_mail_project("Mine").await;
    let other = s.create_mail_project("Other").await;
    s.import(&s.admin_token, other, "{\"text\":\"secret\"}\n")
        .await;
    let ann = s.annotator("ann", mine).await;
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
        let r = s
            .request(method.parse().unwrap(), &path)
            .bearer_auth(&ann)
            .body("{\"text\":\"x\"}\n")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{method} {path}");
        assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    }
    let (status, _) = s.annotate(&ann, other, "1", &["spam"], 0).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    s.stop().await;
}

#[tokio::test]
async fn pages_render_on_the_server_and_demand_a_session() {
    let s = TestServer::start().await;
    let r = s
        .request(Method::GET, "/")
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
    let html = s
        .request(Method::GET, "/login")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Sign in to Concord"));
    let bundle = format!("/pkg/{}.js", concord::assets::bundle_name());
    assert!(html.contains(&bundle), "hydration script missing");
    let r = s
        .request(Method::GET, "/projects/1/export")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], "/login");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    s.stop().await;
}

/// The `action` of the setup page's form: where the browser posts it (the server function's
/// URL, as the page renders it).
fn setup_form_action(html: &str) -> String {
    let form = html
        .find("<form")
        .map(|at| &html[at..])
        .expect("the setup page has a form");
    let start = form.find("action=\"").expect("the form has an action") + "action=\"".len();
    let end = form[start..].find('"').expect("the action is quoted") + start;
    form[start..end].replace("&amp;", "&")
}

/// The setup link creates the first administrator once, with the password they choose; there
/// is no account (so no default password) before it, and its secret cannot be used twice.
#[tokio::test]
async fn the_one_time_setup_link_creates_the_first_admin_once() {
    let s = AwaitingSetup::start().await;
    assert!(s.engine.needs_setup().unwrap());
    // No account exists, so no guessed password signs anyone in.
    for (name, password) in [
        ("admin", "admin"),
        ("admin", "password"),
        ("admin", ADMIN_PASSWORD),
        ("root", "root"),
    ] {
        assert!(
            s.engine.login(name, password).is_err(),
            "{name}/{password} signed in before setup"
        );
    }
    let html = s.setup_page().await;
    let action = setup_form_action(&html);
    let post = |token: String, name: &'static str, password: &'static str| {
        s.request(Method::POST, &action)
            .header("accept", "application/json")
            .form(&[
                ("token", token.as_str()),
                ("name", name),
                ("password", password),
            ])
            .send()
    };

    // A wrong or empty secret creates nothing.
    for wrong in [String::new(), "0".repeat(48), format!("{}x", s.setup_token)] {
        let r = post(wrong.clone(), "mallory", "mallory-password")
            .await
            .unwrap();
        assert!(
            !r.status().is_success(),
            "setup with {wrong:?} answered {}",
            r.status()
        );
        assert!(
            s.engine.needs_setup().unwrap(),
            "{wrong:?} created an account"
        );
    }

    // The right secret creates the admin with the chosen password and signs them in.
    let r = post(s.setup_token.clone(), "ada", "ada-chose-this")
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("concord_session=") && !v.starts_with("concord_session=;"))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
        .expect("setup signs the new admin in");
    assert!(!s.engine.needs_setup().unwrap());
    let (ada, _) = s.engine.login("ada", "ada-chose-this").unwrap();
    assert!(ada.is_admin);
    assert!(s.engine.login("ada", ADMIN_PASSWORD).is_err());
    let r = s
        .request(Method::GET, "/")
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the setup session is not valid");

    // The same link a second time is refused and adds no account.
    let r = post(s.setup_token.clone(), "eve", "eve-password-1")
        .await
        .unwrap();
    assert!(!r.status().is_success(), "setup ran twice: {}", r.status());
    assert!(s.engine.login("eve", "eve-password-1").is_err());
    assert!(s.engine.principal_by_name("eve").is_err());
    s.stop().await;
}
