//! The site's static files (wasm, js, css, public/), embedded into release builds. Debug builds
//! read the same folder from disk, so a rebuilt frontend needs no server rebuild.

use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

/// `target/site`, written by `cargo xtask build`.
#[derive(RustEmbed)]
#[folder = "../target/site"]
#[allow_missing = true]
pub struct SiteAssets;

/// Serves an embedded file, or 404.
pub async fn serve(uri: http::Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    match SiteAssets::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            let cache = if path.starts_with("pkg/") {
                "no-cache"
            } else {
                "public, max-age=3600"
            };
            (
                [
                    (http::header::CONTENT_TYPE, mime.as_ref().to_string()),
                    (http::header::CACHE_CONTROL, cache.to_string()),
                ],
                file.data,
            )
                .into_response()
        }
        None => (http::StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// Whether the frontend bundle is present (a server built before the frontend serves pages
/// that never hydrate; `concord serve` warns about it).
pub fn frontend_present() -> bool {
    SiteAssets::get(&format!("pkg/{}.js", crate::OUTPUT_NAME)).is_some()
}
