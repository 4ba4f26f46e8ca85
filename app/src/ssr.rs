//! Server-side glue for the server functions: the shared state, who is calling (from the
//! session cookie), and (in [`errors`]) running engine calls off the async runtime and turning
//! engine errors into responses with a fitting status and no internal detail.

pub mod errors;
pub mod throttle;

use std::sync::Arc;

use concord_engine::{Engine, EngineError, Principal};
use leptos::prelude::*;

use crate::wire::AppError;
pub use errors::{blocking, fail};

/// Name of the session cookie (HttpOnly, SameSite=Strict) over plain HTTP.
pub const SESSION_COOKIE: &str = "concord_session";
/// Its name with secure cookies (HTTPS): browsers accept a `__Host-` cookie only with `Secure`,
/// `Path=/` and no `Domain`, so a sibling subdomain or a plain-HTTP page cannot plant or
/// overwrite it.
pub const SECURE_SESSION_COOKIE: &str = "__Host-concord_session";

/// The session cookie's name for this server.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// What every server function and route can reach.
#[derive(Clone)]
pub struct ServerContext {
    pub engine: Engine,
    /// Add `Secure` to cookies (set when Concord is served over HTTPS).
    pub secure_cookies: bool,
    /// Sign-in attempts allowed per client address and per account.
    pub login_throttle: Arc<throttle::LoginThrottle>,
}

/// The router did not provide the [`ServerContext`]: a wiring fault, not the caller's.
#[derive(Debug, thiserror::Error)]
#[error("the server context was not provided to this request")]
struct ContextMissing;

pub fn context() -> Result<ServerContext, AppError> {
    use_context::<ServerContext>().ok_or_else(|| fail(errors::internal_error(&ContextMissing)))
}

/// A cookie's value from request headers.
pub fn cookie_value(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The `Set-Cookie` value for a session (or, with `None`, one that deletes it).
pub fn session_cookie(secret: Option<&str>, secure: bool) -> String {
    let name = session_cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    match secret {
        Some(s) => format!(
            "{name}={s}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
            concord_engine::SESSION_TTL_MS / 1000
        ),
        None => format!("{name}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
    }
}

pub async fn session_secret() -> Option<String> {
    let secure = context().ok()?.secure_cookies;
    let parts: http::request::Parts = leptos_axum::extract().await.ok()?;
    cookie_value(&parts.headers, session_cookie_name(secure))
}

/// The signed-in caller, if any.
pub async fn maybe_principal() -> Result<Option<Principal>, AppError> {
    let ctx = context()?;
    let Some(secret) = session_secret().await else {
        return Ok(None);
    };
    blocking(move || ctx.engine.session_principal(&secret)).await
}

/// The signed-in caller, or a "not signed in" error.
pub async fn principal() -> Result<Principal, AppError> {
    maybe_principal()
        .await?
        .ok_or_else(|| fail(EngineError::Unauthenticated))
}

/// Renders guidelines Markdown to HTML with raw HTML and scripts removed.
pub fn render_markdown(markdown: &str) -> String {
    let parser = pulldown_cmark::Parser::new_ext(
        markdown,
        pulldown_cmark::Options::ENABLE_TABLES | pulldown_cmark::Options::ENABLE_STRIKETHROUGH,
    );
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    ammonia::clean(&html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guidelines_lose_scripts_and_keep_formatting() {
        let html = render_markdown(
            "# Rules\n\n**bold** <script>alert(1)</script> <img src=x onerror=alert(1)>",
        );
        assert!(html.contains("<h1>Rules</h1>"));
        assert!(html.contains("<strong>bold</strong>"));
        assert!(!html.contains("script"), "{html}");
        assert!(!html.contains("onerror"), "{html}");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            "a=1; concord_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(
            cookie_value(&headers, SESSION_COOKIE).as_deref(),
            Some("abc")
        );
        assert_eq!(cookie_value(&headers, "c"), None);
    }
}
