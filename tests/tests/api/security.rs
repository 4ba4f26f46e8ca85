//! The browser-facing defences through the real router: cross-origin writes refused, sign-in
//! throttled per client address and per account (429 with `Retry-After`), the security headers
//! (CSP with the nonce the page's inline scripts carry, `no-store`, HSTS and the `__Host-`
//! cookie only over TLS).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use concord_app::api::{CreateAccount, Login, SetupAdmin};
use concord_app::ssr::throttle::{Allowance, LoginLimits, LoginThrottle};
use concord_tests::{AwaitingSetup, TestServer, ADMIN, ADMIN_PASSWORD};
use leptos::server_fn::ServerFn;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};

/// Where the port-8888 page of the report posted from.
const OTHER_ORIGIN: &str = "http://127.0.0.1:8888";

/// A server function call as a form post (how the browser sends them), answered in JSON.
fn server_fn<F: ServerFn>(s: &TestServer, form: &[(&str, &str)]) -> RequestBuilder {
    s.request(Method::POST, F::PATH)
        .header("accept", "application/json")
        .form(form)
}

fn create_account_form(name: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("name", name),
        ("password", "a-long-password"),
        ("admin", "on"),
    ]
}

fn account_exists(s: &TestServer, name: &str) -> bool {
    s.engine.principal_by_name(name).is_ok()
}

#[tokio::test]
async fn cross_origin_writes_with_a_session_are_refused() {
    let s = TestServer::start().await;
    let cookie = s.session_cookie(ADMIN, ADMIN_PASSWORD);

    // The report: the admin's cookie, a page on another port of the same host.
    let r = server_fn::<CreateAccount>(&s, &create_account_form("mallory"))
        .header("cookie", &cookie)
        .header("origin", OTHER_ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!account_exists(&s, "mallory"), "the cross-origin call ran");
    // A sibling site (same-site, not same-origin) by Fetch Metadata.
    let r = server_fn::<CreateAccount>(&s, &create_account_form("mallory"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-site")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!account_exists(&s, "mallory"));

    // The same call from the site itself goes through, by Origin ...
    let r = server_fn::<CreateAccount>(&s, &create_account_form("ada"))
        .header("cookie", &cookie)
        .header("origin", &s.base)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert!(account_exists(&s, "ada"));
    // ... or, without Origin, by Fetch Metadata alone.
    let r = server_fn::<CreateAccount>(&s, &create_account_form("grace"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert!(account_exists(&s, "grace"));

    // The browser upload route is guarded the same way.
    let project = s.create_mail_project("Mail").await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::text("{\"text\":\"hello\"}\n").file_name("items.jsonl"),
    );
    let r = s
        .request(Method::POST, &format!("/projects/{project}/import"))
        .header("cookie", &cookie)
        .header("origin", OTHER_ORIGIN)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(s.export_jsonl(&s.admin_token, project).await.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn api_calls_with_a_bearer_token_are_exempt() {
    let s = TestServer::start().await;
    let r = s
        .request(Method::POST, "/api/v1/users")
        .bearer_auth(&s.admin_token)
        .header("origin", OTHER_ORIGIN)
        .header("sec-fetch-site", "cross-site")
        .json(&json!({"name": "scripted", "password": "a-long-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(account_exists(&s, "scripted"));
    s.stop().await;
}

/// The `Retry-After` seconds of a 429, and its body's kind.
async fn throttled(r: Response) -> (u64, Value) {
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .expect("a 429 says when to retry");
    let body: Value = r.json().await.unwrap();
    (retry_after, body)
}

async fn login(s: &TestServer, name: &str, password: &str) -> Response {
    server_fn::<Login>(s, &[("name", name), ("password", password)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_account_under_a_password_guessing_run_is_throttled() {
    let s = TestServer::start().await;
    let per_account = LoginLimits::default().per_account.burst.get();
    for attempt in 0..per_account {
        let r = login(&s, ADMIN, "a-wrong-guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let (retry_after, body) = throttled(login(&s, ADMIN, "another-guess").await).await;
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(body["kind"], "too_many_requests");
    // Refused before the password is checked: the right one is refused too, and no session.
    let r = login(&s, ADMIN, ADMIN_PASSWORD).await;
    assert!(r.headers().get("set-cookie").is_none());
    throttled(r).await;
    // Other accounts are not locked out by it.
    let r = login(&s, "someone-else", "a-wrong-guess").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn a_client_address_spraying_accounts_is_throttled() {
    let s = TestServer::start_with(|state| {
        state.ctx.login_throttle = Arc::new(LoginThrottle::new(LoginLimits {
            per_address: Allowance {
                burst: NonZeroU32::new(3).unwrap(),
                refill: Duration::from_secs(600),
            },
            per_account: LoginLimits::default().per_account,
        }));
    })
    .await;
    for name in ["u1", "u2", "u3"] {
        assert_eq!(
            login(&s, name, "a-wrong-guess").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let (retry_after, _) = throttled(login(&s, "u4", "a-wrong-guess").await).await;
    assert!(retry_after > 60, "{retry_after}");
    s.stop().await;
}

#[tokio::test]
async fn setup_attempts_are_throttled_per_address() {
    let s = AwaitingSetup::start().await;
    let burst = LoginLimits::default().per_address.burst.get();
    let post = |token: &str| {
        s.request(Method::POST, SetupAdmin::PATH)
            .header("accept", "application/json")
            .form(&[
                ("token", token),
                ("name", "mallory"),
                ("password", "mallory-password"),
            ])
            .send()
    };
    for _ in 0..burst {
        assert_eq!(post("0").await.unwrap().status(), StatusCode::FORBIDDEN);
    }
    throttled(post("0").await.unwrap()).await;
    // Even the right secret waits now.
    throttled(post(&s.setup_token).await.unwrap()).await;
    assert!(s.engine.needs_setup().unwrap());
    s.stop().await;
}

/// The nonce a page's CSP allows scripts with.
fn csp_nonce(csp: &str) -> String {
    let start = csp.find("'nonce-").expect("the CSP names a nonce") + "'nonce-".len();
    let end = csp[start..].find('\'').expect("the nonce is quoted") + start;
    csp[start..end].to_string()
}

#[tokio::test]
async fn pages_carry_a_csp_whose_nonce_their_inline_scripts_have() {
    let s = TestServer::start().await;
    let r = s.request(Method::GET, "/login").send().await.unwrap();
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self' 'nonce-"), "{csp}");
    assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let script_src = csp
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .unwrap();
    assert!(!script_src.contains("'unsafe-inline'"), "{csp}");
    assert!(!script_src.contains("'unsafe-eval'"), "{csp}");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(
        r.headers().get("strict-transport-security").is_none(),
        "HSTS over plain HTTP"
    );
    let nonce = csp_nonce(&csp);
    let html = r.text().await.unwrap();
    let mut inline_scripts = 0;
    for tag in html.split("<script").skip(1) {
        let open = &tag[..tag.find('>').expect("a script tag closes")];
        if !open.contains("src=") {
            inline_scripts += 1;
            assert!(
                open.contains(&format!("nonce=\"{nonce}\"")),
                "an inline script without the CSP's nonce: <script{open}>"
            );
        }
    }
    assert!(inline_scripts > 0, "the hydration script is inline");
    // A fresh nonce for every answer.
    let again = s.request(Method::GET, "/login").send().await.unwrap();
    assert_ne!(
        csp_nonce(again.headers()["content-security-policy"].to_str().unwrap()),
        nonce
    );
    // API answers with project data are not stored either.
    let r = s
        .request(Method::GET, "/api/v1/projects")
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    s.stop().await;
}

#[tokio::test]
async fn over_tls_the_session_cookie_is_host_only_and_hsts_is_sent() {
    let s = TestServer::start_with(|state| state.ctx.secure_cookies = true).await;
    let r = login(&s, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("strict-transport-security").is_some());
    let set_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-concord_session="))
        .expect("the session cookie has the __Host- prefix")
        .to_string();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    assert!(set_cookie.contains("; Path=/"), "{set_cookie}");
    assert!(!set_cookie.to_ascii_lowercase().contains("domain="));
    let pair = set_cookie.split(';').next().unwrap().to_string();
    let page = |cookie: String| {
        s.request(Method::GET, "/")
            .header("accept", "text/html")
            .header("cookie", cookie)
            .send()
    };
    let r = page(pair.clone()).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the __Host- session is not valid"
    );
    // The plain name, which a sibling subdomain or plain-HTTP page could set, is not read.
    let secret = pair.split_once('=').unwrap().1;
    let r = page(format!("concord_session={secret}")).await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(r.headers()["location"], "/login");
    s.stop().await;
}

#[tokio::test]
async fn guessing_the_current_password_of_a_password_change_is_throttled_like_a_sign_in() {
    let s = TestServer::start().await;
    let per_account = LoginLimits::default().per_account.burst.get();
    let change = |current: &'static str| {
        s.request(Method::PUT, "/api/v1/users/admin/password")
            .bearer_auth(&s.admin_token)
            .json(&json!({"current_password": current, "new_password": "a-new-long-password"}))
            .send()
    };
    for attempt in 0..per_account {
        let r = change("a-wrong-guess").await.unwrap();
        assert!(
            r.status().is_client_error(),
            "attempt {attempt}: {}",
            r.status()
        );
        assert_ne!(
            r.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "attempt {attempt}"
        );
    }
    let (retry_after, body) = throttled(change(ADMIN_PASSWORD).await.unwrap()).await;
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(body["kind"], "too_many_requests");
    // Refused before the password was checked: the old one still signs in once the
    // allowance is back, so nothing changed (checked through the engine, not the throttle).
    assert!(s.engine.login(ADMIN, ADMIN_PASSWORD).is_ok());
    s.stop().await;
}
