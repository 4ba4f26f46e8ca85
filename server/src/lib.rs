//! The `concord` server: one axum router carrying the Leptos UI (server-rendered, hydrated),
//! the REST API under `/api/v1`, upload/download routes for the browser, and the site assets
//! embedded in the binary. [`router`] builds it from an [`AppState`]; [`serve`] runs it on a
//! listener the caller bound, so tests bind port 0 and drive the real thing.

pub mod agreement_cli;
pub mod assets;
pub mod config;
pub mod demo;
mod error;
pub mod label_errors_cli;
mod openapi;
mod ops;
pub mod portable_cli;
mod rest;
pub mod security;
pub mod simulate_cli;
mod upload;
mod web;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use axum::Router;
use concord_app::ssr::throttle::LoginThrottle;
use concord_app::ssr::ServerContext;
use concord_app::{shell, App};
use concord_engine::Engine;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::ApiError;

/// The bounds on what the browser's import form reads into memory.
pub mod upload_limits {
    pub use crate::upload::MAX_FORM_FIELD_BYTES;
}

/// Name of the wasm/js bundle under `/pkg/` as wasm-bindgen writes it; the site serves it
/// under a content-hashed name ([`assets::bundle_name`]).
pub const OUTPUT_NAME: &str = "concord";

/// Shared by every route.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub ctx: ServerContext,
    pub max_upload_bytes: u64,
    /// Take the client's address from `X-Forwarded-For` (set when a reverse proxy that writes
    /// it is the only way in); otherwise the socket peer's address counts.
    pub trust_forwarded_for: bool,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl AppState {
    pub fn new(engine: Engine, secure_cookies: bool, max_upload_bytes: u64) -> AppState {
        let leptos_options = LeptosOptions::builder()
            .output_name(assets::bundle_name())
            .site_pkg_dir("pkg")
            .build();
        AppState {
            leptos_options,
            ctx: ServerContext {
                engine,
                secure_cookies,
                login_throttle: Arc::new(LoginThrottle::default()),
            },
            max_upload_bytes,
            trust_forwarded_for: false,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.ctx.engine
    }

    /// Arms the one-time setup secret if no administrator exists yet; returns it. It expires
    /// after an hour (see [`concord_engine::CredentialPolicy`]); a restart arms a new one.
    pub fn arm_setup(&self) -> anyhow::Result<Option<String>> {
        Ok(self.engine().arm_setup()?)
    }
}

/// The application's page routes, generated once per process. Generating them runs the app
/// with leptos_server's process-wide "suppress resource loads" flag set, and a resource whose
/// future is first polled meanwhile, in a page render of another router of this process, waits
/// forever (leptos-rs/leptos#4773): two test servers starting beside each other's renders hung
/// a test run that way. Generated once, before any router of this process exists, no render
/// can overlap it.
fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// The whole application as one router.
pub fn router(state: AppState) -> Router {
    let routes = route_list();
    let ctx = state.ctx.clone();
    let guard = axum::middleware::from_fn_with_state(state.clone(), security::guard);
    let options = state.leptos_options.clone();
    let stylesheet = assets::stylesheet_href();
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .nest("/api/v1", rest::router())
        .route(
            "/projects/{id}/import",
            post(web::import).layer(DefaultBodyLimit::disable()),
        )
        .route("/projects/{id}/export", get(web::export))
        .route("/projects/{id}/agreement/{table}", get(web::agreement_csv))
        // Only the routes above: Leptos renders and server functions set up their own owner.
        .layer(axum::middleware::from_fn(outside_leptos))
        .leptos_routes_with_context(
            &state,
            routes,
            move || {
                provide_context(ctx.clone());
                security::provide_page_nonce();
            },
            move || shell(options.clone(), stylesheet.clone()),
        )
        .fallback(assets::serve)
        .layer(DefaultBodyLimit::max(2 * 1024 * 1024))
        .layer(SetResponseHeaderLayer::if_not_present(
            http::header::X_CONTENT_TYPE_OPTIONS,
            http::HeaderValue::from_static("nosniff"),
        ))
        // Pages and API answers carry project data, which must not stay in a shared or
        // browser cache (a signed-out computer, a proxy); pages also name the content-hashed
        // assets of this build, which a newer binary may no longer have. (Assets set their own
        // caching.)
        .layer(SetResponseHeaderLayer::if_not_present(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            http::header::X_FRAME_OPTIONS,
            http::HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            http::header::REFERRER_POLICY,
            http::HeaderValue::from_static("same-origin"),
        ))
        // Outermost: refuses cross-origin writes before any handler runs, and adds its
        // headers to every answer, the refusals and the body-limit errors too.
        .layer(guard)
        .with_state(state)
}

/// Runs a request that is neither a page nor a server function under an empty reactive owner.
/// Leptos leaves each render's owner set as the current one on the runtime thread that made it
/// (`Owner::new_root` sets it and nothing restores it); a REST or download handler polled on
/// that thread would find that render's `ResponseOptions` through `use_context`, and an
/// error's `fail` would set its status on the page of another request (seen as pages answering
/// 403 for a concurrent REST call's refusal).
async fn outside_leptos(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use leptos::reactive::computed::ScopedFuture;
    use leptos::reactive::owner::Owner;
    // `new_root` also makes the empty owner current on this thread, which is harmless.
    let owner = Owner::new_root(None);
    ScopedFuture {
        owner,
        observer: None,
        fut: next.run(request),
    }
    .await
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer's address reaches handlers (sign-in throttling per client address).
    let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
