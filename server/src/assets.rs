//! The site's static files (wasm, js, css, public/), embedded into the binary from
//! `target/site` as `cargo xtask site` lays it out: the bundle and the stylesheet under `pkg/`
//! with a hash of their contents in their names, each with brotli (`.br`) and gzip (`.gz`)
//! copies made at build time, and `site.json` naming them. Nothing is compressed per request.

use std::sync::OnceLock;

use axum::response::{IntoResponse, Response};
use http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, VARY};
use http::{HeaderMap, HeaderValue};
use rust_embed::RustEmbed;
use serde::Deserialize;

/// `target/site`, written by `cargo xtask site` (and `build`).
#[derive(RustEmbed)]
#[folder = "../target/site"]
#[allow_missing = true]
pub struct SiteAssets;

/// The file in the site that names the hashed bundle and stylesheet.
const SITE_MANIFEST: &str = "site.json";

/// Files under `pkg/` carry a hash of their contents in their names: a changed file gets a new
/// name, so a copy can be kept for good without asking again.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Other static files (the favicon) keep their names across versions.
const SHORT_LIVED: &str = "public, max-age=3600";

/// What `site.json` says.
#[derive(Debug, Clone, Deserialize)]
pub struct SiteManifest {
    /// The js glue's and the wasm's name under `pkg/` without extension (Leptos's output name:
    /// `pkg/{bundle}.js`, `pkg/{bundle}_bg.wasm`).
    pub bundle: String,
    /// The stylesheet's path in the site, e.g. `pkg/style-0123456789abcdef.css`.
    pub stylesheet: String,
}

/// The embedded site's manifest; `None` when the binary was built without the site (or with a
/// site from before hashed names), whose pages then never hydrate.
pub fn manifest() -> Option<&'static SiteManifest> {
    static MANIFEST: OnceLock<Option<SiteManifest>> = OnceLock::new();
    MANIFEST
        .get_or_init(|| {
            let file = SiteAssets::get(SITE_MANIFEST)?;
            match serde_json::from_slice(&file.data) {
                Ok(manifest) => Some(manifest),
                Err(e) => {
                    tracing::error!("the embedded {SITE_MANIFEST} is unreadable: {e}");
                    None
                }
            }
        })
        .as_ref()
}

/// The output name the page shell links the bundle under (`/pkg/{name}.js`).
pub fn bundle_name() -> String {
    manifest().map_or_else(|| crate::OUTPUT_NAME.to_string(), |m| m.bundle.clone())
}

/// The stylesheet's URL for the page shell.
pub fn stylesheet_href() -> String {
    manifest().map_or_else(
        || "/pkg/style.css".to_string(),
        |m| format!("/{}", m.stylesheet),
    )
}

/// A response body's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

/// The encoding to send, from an `Accept-Encoding` header and the precompressed copies there
/// are: the one with the highest q-value, brotli before gzip on a tie (it is smaller);
/// identity when neither is acceptable (`q=0` refuses a coding, `*` stands for the unnamed).
pub fn choose_encoding(accept: &str, has_brotli: bool, has_gzip: bool) -> Encoding {
    let (mut brotli, mut gzip, mut any) = (None, None, None);
    for part in accept.split(',') {
        let mut fields = part.split(';');
        let coding = fields
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        // A malformed q-value counts as refusal rather than as a preference.
        let q = fields
            .find_map(|f| {
                let (key, value) = f.split_once('=')?;
                (key.trim().eq_ignore_ascii_case("q")).then(|| value.trim().parse::<f32>().ok())
            })
            .map_or(Some(1.0), |q| q)
            .unwrap_or(0.0);
        match coding.as_str() {
            "br" => brotli = Some(q),
            "gzip" | "x-gzip" => gzip = Some(q),
            "*" => any = Some(q),
            _ => {}
        }
    }
    let brotli = if has_brotli {
        brotli.or(any).unwrap_or(0.0)
    } else {
        0.0
    };
    let gzip = if has_gzip {
        gzip.or(any).unwrap_or(0.0)
    } else {
        0.0
    };
    if brotli > 0.0 && brotli >= gzip {
        Encoding::Brotli
    } else if gzip > 0.0 {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

/// Serves an embedded file in the best encoding the client accepts, or 404.
pub async fn serve(uri: http::Uri, headers: HeaderMap) -> Response {
    let path = uri.path().trim_start_matches('/');
    let Some(file) = SiteAssets::get(path).filter(|_| path != SITE_MANIFEST) else {
        return (http::StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let cache = if path.starts_with("pkg/") {
        IMMUTABLE
    } else {
        SHORT_LIVED
    };
    let brotli = SiteAssets::get(&format!("{path}.br"));
    let gzip = SiteAssets::get(&format!("{path}.gz"));
    let has_variants = brotli.is_some() || gzip.is_some();
    let accept = headers
        .get(ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let compressed = match choose_encoding(accept, brotli.is_some(), gzip.is_some()) {
        Encoding::Brotli => brotli.map(|f| (f.data, "br")),
        Encoding::Gzip => gzip.map(|f| (f.data, "gzip")),
        Encoding::Identity => None,
    };
    let (body, content_encoding) = match compressed {
        Some((data, name)) => (data, Some(name)),
        None => (file.data, None),
    };
    let mut response = body.into_response();
    let out = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(mime.as_ref()) {
        out.insert(CONTENT_TYPE, mime);
    }
    out.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Some(name) = content_encoding {
        out.insert(CONTENT_ENCODING, HeaderValue::from_static(name));
    }
    if has_variants {
        // Caches must key the response by the header that chose it.
        out.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// Whether the frontend bundle is present (a server built before the frontend serves pages
/// that never hydrate; `concord serve` warns about it).
pub fn frontend_present() -> bool {
    manifest().is_some_and(|m| {
        SiteAssets::get(&format!("pkg/{}.js", m.bundle)).is_some()
            && SiteAssets::get(&format!("pkg/{}_bg.wasm", m.bundle)).is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::{choose_encoding, Encoding};

    #[test]
    fn the_encoding_follows_accept_encoding_and_the_copies_there_are() {
        let browser = "gzip, deflate, br, zstd";
        assert_eq!(choose_encoding(browser, true, true), Encoding::Brotli);
        assert_eq!(choose_encoding(browser, false, true), Encoding::Gzip);
        assert_eq!(choose_encoding(browser, false, false), Encoding::Identity);
        assert_eq!(choose_encoding("", true, true), Encoding::Identity);
        assert_eq!(choose_encoding("identity", true, true), Encoding::Identity);
        assert_eq!(choose_encoding("gzip", true, true), Encoding::Gzip);
        assert_eq!(choose_encoding("BR", true, true), Encoding::Brotli);
        // q-values: a refused coding is never sent; the higher preference wins.
        assert_eq!(choose_encoding("br;q=0, gzip", true, true), Encoding::Gzip);
        assert_eq!(
            choose_encoding("br;q=0.2, gzip;q=0.8", true, true),
            Encoding::Gzip
        );
        assert_eq!(
            choose_encoding("br;q=0.8, gzip;q=0.8", true, true),
            Encoding::Brotli
        );
        assert_eq!(
            choose_encoding("gzip;q=0, br;q=0", true, true),
            Encoding::Identity
        );
        assert_eq!(
            choose_encoding("br;q=nonsense", true, false),
            Encoding::Identity
        );
        // `*` covers the codings not named.
        assert_eq!(choose_encoding("*", true, true), Encoding::Brotli);
        assert_eq!(choose_encoding("br;q=0, *", true, true), Encoding::Gzip);
        assert_eq!(choose_encoding("*;q=0", true, true), Encoding::Identity);
    }
}
