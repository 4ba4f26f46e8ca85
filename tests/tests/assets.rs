//! The site's assets as the real router serves them: content-hashed names, precompressed
//! brotli and gzip chosen by `Accept-Encoding`, immutable caching, and a page that is never
//! kept. Needs the site built (`cargo xtask site`, which scripts/test.sh runs first).
//! `cargo test -p concord-tests --test assets -- --nocapture` also prints each asset's size.

use std::io::Read;

use concord::assets::SiteAssets;
use concord_tests::site_assets::{download, first_visit, linked_assets, Download};
use concord_tests::TestServer;
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The embedded file behind a site URL, as built.
fn built(url: &str) -> Vec<u8> {
    let path = url.trim_start_matches('/');
    SiteAssets::get(path)
        .unwrap_or_else(|| panic!("{path} is not in the embedded site"))
        .data
        .to_vec()
}

fn hash16(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hex::encode(hasher.finalize())[..16].to_string()
}

fn decode(d: &Download) -> Vec<u8> {
    let mut out = Vec::new();
    match d.header("content-encoding") {
        "br" => {
            brotli::Decompressor::new(&d.body[..], 4096)
                .read_to_end(&mut out)
                .expect("valid brotli");
        }
        "gzip" => {
            flate2::read::GzDecoder::new(&d.body[..])
                .read_to_end(&mut out)
                .expect("valid gzip");
        }
        "" => out.clone_from(&d.body),
        other => panic!("unexpected content-encoding {other}"),
    }
    out
}

/// The page's `/pkg/` links: the js glue, the wasm and the stylesheet, in that order of kind.
async fn page_assets(s: &TestServer) -> (String, String, String) {
    assert!(
        concord::assets::frontend_present(),
        "the site is not built: run `cargo xtask site` first"
    );
    let html = download(s, "/login", None).await;
    let text = String::from_utf8(html.body).expect("UTF-8 page");
    let links = linked_assets(&text);
    let pick = |ext: &str| {
        let matching: Vec<&String> = links.iter().filter(|u| u.ends_with(ext)).collect();
        assert_eq!(matching.len(), 1, "one {ext} link in {links:?}");
        matching[0].clone()
    };
    let found = (pick(".js"), pick(".wasm"), pick(".css"));
    assert_eq!(links.len(), 3, "unexpected links {links:?}");
    found
}

#[tokio::test]
async fn asset_names_carry_a_hash_of_their_contents() {
    let s = TestServer::start().await;
    let (js, wasm, css) = page_assets(&s).await;
    // The glue and the wasm share one name (Leptos derives both from its output name), so
    // their one hash covers both files.
    let pair = hash16(&[&built(&js), &built(&wasm)]);
    assert_eq!(js, format!("/pkg/concord-{pair}.js"));
    assert_eq!(wasm, format!("/pkg/concord-{pair}_bg.wasm"));
    assert_eq!(css, format!("/pkg/style-{}.css", hash16(&[&built(&css)])));
    // The hydration script loads the same files the page preloads.
    let html = String::from_utf8(download(&s, "/login", None).await.body).expect("UTF-8");
    assert!(
        html.contains(&format!("\"concord-{pair}\", \"concord-{pair}_bg\"")),
        "the hydration script names another bundle"
    );
    s.stop().await;
}

#[tokio::test]
async fn assets_are_sent_precompressed_as_accepted_and_cached_for_good() {
    let s = TestServer::start().await;
    let (js, wasm, css) = page_assets(&s).await;
    for (url, mime) in [
        (&js, "text/javascript"),
        (&wasm, "application/wasm"),
        (&css, "text/css"),
    ] {
        let raw = built(url);
        for (accept, encoding) in [
            (None, ""),
            (Some("identity"), ""),
            (Some("gzip"), "gzip"),
            (Some("br"), "br"),
            (Some("gzip, deflate, br, zstd"), "br"),
            (Some("br;q=0, gzip"), "gzip"),
        ] {
            let d = download(&s, url, accept).await;
            let what = format!("{url} with accept-encoding {accept:?}");
            assert_eq!(d.status, StatusCode::OK, "{what}");
            assert_eq!(d.header("content-encoding"), encoding, "{what}");
            assert_eq!(d.header("vary"), "accept-encoding", "{what}");
            assert_eq!(d.header("cache-control"), IMMUTABLE, "{what}");
            assert!(d.header("content-type").starts_with(mime), "{what}");
            let decoded = decode(&d);
            assert!(
                decoded == raw,
                "{what}: the decoded body is not the built file"
            );
            if !encoding.is_empty() {
                assert!(d.body.len() < raw.len(), "{what} is not smaller than raw");
            }
        }
    }
    s.stop().await;
}

#[tokio::test]
async fn pages_are_revalidated_and_unhashed_files_cached_briefly() {
    let s = TestServer::start().await;
    let page = download(&s, "/login", Some("br, gzip")).await;
    // Pages carry project data: never stored (which also means always asked for again).
    assert_eq!(page.header("cache-control"), "no-store");
    let icon = download(&s, "/favicon.svg", Some("br, gzip")).await;
    assert_eq!(icon.status, StatusCode::OK);
    assert_eq!(icon.header("cache-control"), "public, max-age=3600");
    // The manifest is the server's own business.
    assert_eq!(
        download(&s, "/site.json", None).await.status,
        StatusCode::NOT_FOUND
    );
    s.stop().await;
}

#[tokio::test]
async fn first_visit_sizes() {
    let s = TestServer::start().await;
    let visit = first_visit(&s).await;
    eprintln!("{}", visit.table());
    assert_eq!(visit.assets.len(), 3, "js, wasm and css");
    for a in &visit.assets {
        assert!(
            a.brotli < a.gzip && a.gzip < a.raw,
            "{}: brotli {} gzip {} raw {}",
            a.url,
            a.brotli,
            a.gzip,
            a.raw
        );
    }
    s.stop().await;
}
