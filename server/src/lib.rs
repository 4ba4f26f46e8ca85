//! The `concord` server: one axum router carrying the Leptos UI (server-rendered, hydrated),
//! the REST API under `/api/v1`, upload/download routes for the browser, and the site assets
//! embedded in the binary. [`router`] builds it from an [`AppState`]; [`serve`] runs it on a
//! listener the caller bound, so tests bind port 0 and drive the real thing.

pub mod agreement_cli;
pub mod assets;
pub mod config;
pub mod demo;
mod error;
mod openapi;
mod rest;
pub mod simulate_cli;
mod upload;
mod web;

use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use axum::Router;
use concord_app::ssr::ServerContext;
use concord_app::{shell, App};
use concord_engine::Engine;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::set_header::SetResponseHeaderLayer;

pub use error::ApiError;

/// Name of the wasm/js bundle under `/pkg/` as wasm-bindgen writes it; the site serves it
/// under a content-hashed name ([`assets::bundle_name`]).
pub const OUTPUT_NAME: &str = "concord";

/// Shared by every route.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub ctx: ServerContext,
    pub max_upload_bytes: u64,
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
                setup_token: Arc::new(Mutex::new(None)),
                secure_cookies,
            },
            max_upload_bytes,
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.ctx.engine
    }

    /// Creates the one-time setup secret if no account exists yet; returns it.
    pub fn arm_setup(&self) -> anyhow::Result<Option<String>> {
        if !self.engine().needs_setup()? {
            return Ok(None);
        }
        let mut bytes = [0u8; 24];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut bytes);
        let token = hex::encode(bytes);
        if let Ok(mut slot) = self.ctx.setup_token.lock() {
            *slot = Some(token.clone());
        }
        Ok(Some(token))
    }
}

/// The whole application as one router.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(App);
    let ctx = state.ctx.clone();
    let options = state.leptos_options.clone();
    let stylesheet = assets::stylesheet_href();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .nest("/api/v1", rest::router())
        .route(
            "/projects/{id}/import",
            post(web::import).layer(DefaultBodyLimit::disable()),
        )
        .route("/projects/{id}/export", get(web::export))
        .route("/projects/{id}/agreement/{table}", get(web::agreement_csv))
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(ctx.clone()),
            move || shell(options.clone(), stylesheet.clone()),
        )
        .fallback(assets::serve)
        .layer(DefaultBodyLimit::max(2 * 1024 * 1024))
        .layer(SetResponseHeaderLayer::if_not_present(
            http::header::X_CONTENT_TYPE_OPTIONS,
            http::HeaderValue::from_static("nosniff"),
        ))
        // Pages name the content-hashed assets of this build: a browser must ask again for a
        // page rather than keep one that names assets a newer binary no longer has. (Assets
        // set their own caching.)
        .layer(SetResponseHeaderLayer::if_not_present(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-cache"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            http::header::X_FRAME_OPTIONS,
            http::HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            http::header::REFERRER_POLICY,
            http::HeaderValue::from_static("same-origin"),
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then finishes in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
