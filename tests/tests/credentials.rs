//! The credential lifecycle through the real router: API tokens listed (never their secrets),
//! created with an expiry and revoked; accounts disabled and enabled; passwords changed;
//! signing out everywhere; the setup link under concurrent use; and the Accounts page's server
//! functions authorizing on the server.

use concord_tests::{AwaitingSetup, TestServer, ADMIN, MEMBER_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn token_names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| {
            format!(
                "{}/{}",
                t["user"].as_str().unwrap_or(""),
                t["name"].as_str().unwrap_or("")
            )
        })
        .collect();
    names.sort();
    names
}

/// The status of `GET /me` with `token`: OK while the token still signs its owner in.
async fn me_status(s: &TestServer, token: &str) -> StatusCode {
    s.api(Method::GET, token, "/me", None).await.0
}

/// A server with the members ann and bob, and an API token of each.
async fn server_with_ann_and_bob() -> (TestServer, String, String) {
    let s = TestServer::start().await;
    s.create_user("ann").await;
    s.create_user("bob").await;
    let ann = s.token_for("ann");
    let bob = s.token_for("bob");
    (s, ann, bob)
}

#[tokio::test]
async fn tokens_are_listed_without_secrets_and_revoked_by_their_owner_or_an_admin() {
    let (s, ann, bob) = server_with_ann_and_bob().await;

    let (status, created) = s
        .api(
            Method::POST,
            &ann,
            "/tokens",
            Some(json!({"name": "ci", "expires_days": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let ci = created["token"]
        .as_str()
        .expect("the secret, once")
        .to_string();
    let ci_id = created["id"].as_str().expect("an id").to_string();
    assert_eq!(me_status(&s, &ci).await, StatusCode::OK);

    let (status, own) = s.api(Method::GET, &ann, "/tokens", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(token_names(&own), ["ann/ci", "ann/tests"]);
    for secret in [&ann, &ci] {
        assert!(
            !own.to_string().contains(secret.as_str()),
            "a listing shows a secret"
        );
    }
    let listed_ci = own
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == ci_id.as_str())
        .expect("the new token is listed under its id");
    let days = (listed_ci["expires_ms"].as_u64().unwrap()
        - listed_ci["created_ms"].as_u64().unwrap())
        / 86_400_000;
    assert_eq!(days, 30);
    assert!(
        listed_ci["last_used_ms"].is_u64(),
        "the use above was recorded"
    );

    // Scope: one's own; an admin sees everyone's, or one account's.
    let (status, _) = s.api(Method::GET, &ann, "/tokens?user=bob", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s.api(Method::GET, &ann, "/tokens?user=nobody", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "names cannot be probed");
    let (_, all) = s.api(Method::GET, &s.admin_token, "/tokens", None).await;
    assert_eq!(
        token_names(&all),
        ["admin/tests", "ann/ci", "ann/tests", "bob/tests"]
    );
    let (_, bobs) = s
        .api(Method::GET, &s.admin_token, "/tokens?user=bob", None)
        .await;
    assert_eq!(token_names(&bobs), ["bob/tests"]);
    let (status, _) = s
        .api(
            Method::POST,
            &ann,
            "/tokens",
            Some(json!({"name": "for bob", "user": "bob"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Revoking: not someone else's; one's own, at once; anyone's as an admin.
    let bob_id = bobs[0]["id"].as_str().unwrap().to_string();
    let (status, _) = s
        .api(Method::DELETE, &ann, &format!("/tokens/{bob_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(me_status(&s, &bob).await, StatusCode::OK);
    let (status, _) = s
        .api(Method::DELETE, &ann, &format!("/tokens/{ci_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me_status(&s, &ci).await, StatusCode::UNAUTHORIZED);
    let (status, _) = s
        .api(
            Method::DELETE,
            &s.admin_token,
            &format!("/tokens/{bob_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me_status(&s, &bob).await, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn token_expiry_is_validated_and_an_expired_token_is_refused() {
    let s = TestServer::start().await;
    for bad in [
        json!({"name": "x", "expires_days": 0}),
        json!({"name": "x", "expires_days": -1}),
        json!({"name": ""}),
    ] {
        let (status, body) = s
            .api(Method::POST, &s.admin_token, "/tokens", Some(bad.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let short = s
        .engine
        .create_expiring_api_token_locally(
            s.admin.id,
            "short",
            Some(std::time::Duration::from_millis(1000)),
        )
        .unwrap();
    assert_eq!(me_status(&s, &short).await, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(me_status(&s, &short).await, StatusCode::UNAUTHORIZED);
    s.stop().await;
}

#[tokio::test]
async fn a_disabled_account_is_shut_out_at_once_and_enabled_again() {
    let s = TestServer::start().await;
    s.create_user("ann").await;
    let ann = s.token_for("ann");
    let (_, session) = s.engine.login("ann", MEMBER_PASSWORD).unwrap();

    let (status, _) = s.api(Method::POST, &ann, "/users/ann/disable", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only admins disable");
    let (status, _) = s
        .api(
            Method::POST,
            &s.admin_token,
            &format!("/users/{ADMIN}/disable"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "not oneself");
    let (status, _) = s
        .api(Method::POST, &s.admin_token, "/users/nobody/disable", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = s
        .api(Method::POST, &s.admin_token, "/users/ann/disable", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me_status(&s, &ann).await, StatusCode::UNAUTHORIZED);
    assert_eq!(s.engine.session_principal(&session).unwrap(), None);
    assert!(s.engine.login("ann", MEMBER_PASSWORD).is_err());
    let (_, users) = s.api(Method::GET, &s.admin_token, "/users", None).await;
    let listed = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "ann")
        .unwrap()
        .clone();
    assert_eq!(listed["disabled"], true);

    let (status, _) = s
        .api(Method::POST, &s.admin_token, "/users/ann/enable", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me_status(&s, &ann).await, StatusCode::OK);
    assert!(s.engine.login("ann", MEMBER_PASSWORD).is_ok());
    s.stop().await;
}

#[tokio::test]
async fn passwords_change_with_the_current_one_or_by_an_admin() {
    let (s, ann, bob) = server_with_ann_and_bob().await;
    let (_, session) = s.engine.login("ann", MEMBER_PASSWORD).unwrap();
    // Every change here is to ann's password; `token` says who asks.
    let change = |token: &str, body: Value| {
        let (s, token) = (&s, token.to_string());
        async move {
            s.api(Method::PUT, &token, "/users/ann/password", Some(body))
                .await
                .0
        }
    };

    for (token, body, refused) in [
        (
            &ann,
            json!({"new_password": "ann-new-password"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &ann,
            json!({"current_password": "not it at all", "new_password": "ann-new-password"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            &bob,
            json!({"new_password": "bob-chose-this"}),
            StatusCode::FORBIDDEN,
        ),
    ] {
        assert_eq!(change(token, body.clone()).await, refused, "{body}");
    }
    assert!(
        s.engine.login("ann", MEMBER_PASSWORD).is_ok(),
        "nothing changed yet"
    );

    let own = json!({"current_password": MEMBER_PASSWORD, "new_password": "ann-new-password"});
    assert_eq!(change(&ann, own).await, StatusCode::NO_CONTENT);
    assert!(s.engine.login("ann", MEMBER_PASSWORD).is_err());
    assert_eq!(
        s.engine.session_principal(&session).unwrap(),
        None,
        "sessions end"
    );
    assert_eq!(
        me_status(&s, &ann).await,
        StatusCode::OK,
        "tokens are not sessions"
    );

    let by_admin = json!({"new_password": "admin-set-this"});
    assert_eq!(
        change(&s.admin_token, by_admin).await,
        StatusCode::NO_CONTENT
    );
    assert!(s.engine.login("ann", "admin-set-this").is_ok());
    s.stop().await;
}

#[tokio::test]
async fn signing_out_everywhere_ends_sessions_and_optionally_tokens() {
    let (s, ann, bob) = server_with_ann_and_bob().await;
    let (_, one) = s.engine.login("ann", MEMBER_PASSWORD).unwrap();
    let (_, two) = s.engine.login("ann", MEMBER_PASSWORD).unwrap();

    let (status, _) = s
        .api(Method::POST, &bob, "/users/ann/sign-out-everywhere", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, removed) = s
        .api(Method::POST, &ann, "/users/ann/sign-out-everywhere", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(removed, json!({"sessions": 2, "tokens": 0}));
    assert_eq!(s.engine.session_principal(&one).unwrap(), None);
    assert_eq!(s.engine.session_principal(&two).unwrap(), None);

    let (status, removed) = s
        .api(
            Method::POST,
            &s.admin_token,
            "/users/ann/sign-out-everywhere",
            Some(json!({"tokens": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(removed, json!({"sessions": 0, "tokens": 1}));
    assert_eq!(me_status(&s, &ann).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        me_status(&s, &bob).await,
        StatusCode::OK,
        "other accounts keep theirs"
    );
    s.stop().await;
}

/// The `action` of the first form on a page that has an input named `field`.
fn form_action_with(html: &str, field: &str) -> String {
    let at = html
        .find(&format!("name=\"{field}\""))
        .unwrap_or_else(|| panic!("a form with {field:?}"));
    let form = html[..at].rfind("<form").expect("inside a form");
    let start = html[form..]
        .find("action=\"")
        .expect("the form has an action")
        + form
        + 8;
    let end = html[start..].find('"').expect("quoted") + start;
    html[start..end].replace("&amp;", "&")
}

/// The HTML of the Accounts page as the session `cookie` sees it.
async fn users_page(s: &TestServer, cookie: &str) -> String {
    s.browser_get(cookie, "/users")
        .await
        .text()
        .await
        .expect("accounts page")
}

#[tokio::test]
async fn the_accounts_page_server_functions_authorize_on_the_server() {
    let s = TestServer::start().await;
    s.create_user("ann").await;
    s.create_user("bob").await;
    let admin_cookie = s.session_cookie(ADMIN, concord_tests::ADMIN_PASSWORD);
    let html = users_page(&s, &admin_cookie).await;
    let disable = form_action_with(&html, "disabled");
    let ann_cookie = s.session_cookie("ann", MEMBER_PASSWORD);
    let call = |cookie: String, action: String, form: Vec<(&'static str, &'static str)>| {
        let s = &s;
        async move {
            s.request(Method::POST, &action)
                .header("cookie", cookie)
                .header("accept", "application/json")
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };

    // An annotator's session cannot disable anyone, though the endpoint is known.
    let r = call(
        ann_cookie.clone(),
        disable.clone(),
        vec![("name", "bob"), ("disabled", "true")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(s.engine.login("bob", MEMBER_PASSWORD).is_ok());

    let r = call(
        admin_cookie.clone(),
        disable,
        vec![("name", "bob"), ("disabled", "true")],
    )
    .await;
    assert!(r.status().is_success(), "{}", r.status());
    assert!(s.engine.login("bob", MEMBER_PASSWORD).is_err());

    // Revoking through the page's form: not someone else's token.
    let bob_token = s.token_for("bob");
    let (_, listed) = s
        .api(Method::GET, &s.admin_token, "/tokens?user=bob", None)
        .await;
    let id = listed[0]["id"].as_str().unwrap().to_string();
    let html = users_page(&s, &admin_cookie).await;
    let revoke = form_action_with(&html, "id");
    let r = s
        .request(Method::POST, &revoke)
        .header("cookie", &ann_cookie)
        .header("accept", "application/json")
        .form(&[("id", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    s.api(Method::POST, &s.admin_token, "/users/bob/enable", None)
        .await;
    assert_eq!(
        me_status(&s, &bob_token).await,
        StatusCode::OK,
        "the token survived ann's attempt"
    );
    s.stop().await;
}

#[tokio::test]
async fn two_concurrent_setup_requests_create_one_admin() {
    let s = AwaitingSetup::start().await;
    let html = s.setup_page().await;
    let action = form_action_with(&html, "token");
    let post = |name: &'static str| {
        s.request(Method::POST, &action)
            .header("accept", "application/json")
            .form(&[
                ("token", s.setup_token.as_str()),
                ("name", name),
                ("password", "a good password"),
            ])
            .send()
    };
    let (a, b) = tokio::join!(post("ada"), post("eve"));
    let statuses = [a.unwrap().status(), b.unwrap().status()];
    assert_eq!(
        statuses.iter().filter(|s| s.is_success()).count(),
        1,
        "{statuses:?}"
    );
    let admins = ["ada", "eve"]
        .into_iter()
        .filter(|n| s.engine.principal_by_name(n).is_ok())
        .count();
    assert_eq!(admins, 1);
    s.stop().await;
}
