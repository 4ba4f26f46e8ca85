//! The browser-facing guard every request passes: it records the client's address (for sign-in
//! throttling), refuses state-changing requests a browser sent from another origin (CSRF), and
//! adds the security headers (a Content-Security-Policy with a per-response script nonce on
//! pages, HSTS when served over TLS).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use concord_app::ssr::throttle::ClientAddress;
use concord_domain::ErrorKind;
use http::header::{HeaderName, AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN};
use http::{HeaderMap, HeaderValue, Method};
use leptos::prelude::{provide_context, use_context};

use crate::error::ApiError;
use crate::AppState;

/// The nonce this response's inline scripts carry and its CSP names; fresh per request.
#[derive(Debug, Clone)]
pub struct CspNonce(pub String);

/// One year: browsers remember to use HTTPS only for this long after the last visit.
const HSTS: &str = "max-age=31536000";

/// The policy for pages: scripts only from this origin or with this response's nonce (the
/// hydration script and Leptos' resource scripts are inline), WebAssembly compilation for the
/// bundle (`'wasm-unsafe-eval'`), inline styles because components set colours with `style`
/// attributes, no plugins, no framing, forms posting only here.
fn page_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// The client's address: the socket peer, or with `trust_forwarded_for` (Concord behind a
/// reverse proxy) the last address in `X-Forwarded-For`, the one the proxy itself saw (earlier
/// entries are whatever the client claimed).
pub fn client_address(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trust_forwarded_for: bool,
) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
            .next_back();
        if forwarded.is_some() {
            return forwarded;
        }
    }
    peer.map(|p| p.ip())
}

/// Why a request was refused as cross-origin, or `None` when it may go on.
///
/// Safe methods change nothing and pass. A request with `Authorization: Bearer` is an API
/// client's: a page on another origin cannot add that header without a CORS preflight this
/// server never grants, and the REST API ignores cookies. Otherwise, as browsers send them:
/// `Sec-Fetch-Site` decides when present (only `same-origin`, or `none` for what the user
/// typed, pass); else `Origin` must name this host; a request with neither is not from a
/// browser that could carry a victim's cookie (every current browser sends one of them on a
/// cross-origin POST) and passes.
pub fn cross_origin_refusal(method: &Method, headers: &HeaderMap) -> Option<&'static str> {
    if matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return None;
    }
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("Bearer "));
    if bearer {
        return None;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => None,
            _ => Some("this request came from another site"),
        };
    }
    // Neither header: not a browser request (passes, see above).
    let origin = headers.get(ORIGIN)?;
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority);
    match (origin_host, host) {
        (Some(from), Some(host)) if from.eq_ignore_ascii_case(host) => None,
        _ => Some("this request came from another origin"),
    }
}

fn set_if_absent(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if headers.contains_key(&name) {
        return;
    }
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"))
}

/// The middleware (see the module's description).
pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    if let Some(address) = client_address(peer, request.headers(), state.trust_forwarded_for) {
        request.extensions_mut().insert(ClientAddress(address));
    }
    if let Some(why) = cross_origin_refusal(request.method(), request.headers()) {
        tracing::warn!(
            method = %request.method(),
            path = %request.uri().path(),
            "refused a cross-origin request"
        );
        return ApiError::new(ErrorKind::Forbidden, why).into_response();
    }
    let nonce = hex::encode(rand::random::<[u8; 16]>());
    request.extensions_mut().insert(CspNonce(nonce.clone()));
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    if is_html(headers) {
        set_if_absent(
            headers,
            http::header::CONTENT_SECURITY_POLICY,
            &page_policy(&nonce),
        );
    }
    if state.ctx.secure_cookies {
        set_if_absent(headers, http::header::STRICT_TRANSPORT_SECURITY, HSTS);
    }
    response
}

/// Inside a page render: gives Leptos the nonce [`guard`] put in the page's CSP, so the inline
/// scripts it writes carry it.
pub fn provide_page_nonce() {
    let nonce = use_context::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<CspNonce>().cloned());
    if let Some(CspNonce(nonce)) = nonce {
        provide_context(leptos::nonce::Nonce::from_value(nonce));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_state_changing_browser_requests_from_elsewhere_are_refused() {
        let host = ("host", "concord.example:3000");
        let refused = |method: Method, pairs: &[(&'static str, &'static str)]| {
            cross_origin_refusal(&method, &headers(pairs)).is_some()
        };
        // Reads pass whatever their origin.
        assert!(!refused(
            Method::GET,
            &[host, ("origin", "https://evil.example")]
        ));
        // Same origin, by Origin or by Fetch Metadata.
        assert!(!refused(
            Method::POST,
            &[host, ("origin", "http://concord.example:3000")]
        ));
        assert!(!refused(
            Method::POST,
            &[host, ("sec-fetch-site", "same-origin")]
        ));
        // Another port or scheme is another origin; a sibling is same-site, not same-origin.
        assert!(refused(
            Method::POST,
            &[host, ("origin", "http://concord.example:8888")]
        ));
        assert!(refused(Method::DELETE, &[host, ("origin", "null")]));
        assert!(refused(
            Method::POST,
            &[
                host,
                ("sec-fetch-site", "same-site"),
                ("origin", "http://concord.example:3000")
            ]
        ));
        assert!(refused(
            Method::PATCH,
            &[host, ("sec-fetch-site", "cross-site")]
        ));
        // API clients with a token, and clients that are not browsers, pass.
        assert!(!refused(
            Method::POST,
            &[
                host,
                ("authorization", "Bearer abc"),
                ("sec-fetch-site", "cross-site")
            ]
        ));
        assert!(!refused(Method::POST, &[host]));
    }

    #[test]
    fn forwarded_addresses_count_only_when_trusted() {
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7")]);
        assert_eq!(
            client_address(Some(peer), &h, false),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            client_address(Some(peer), &h, true),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(
            client_address(Some(peer), &HeaderMap::new(), true),
            Some("10.0.0.1".parse().unwrap())
        );
    }
}
