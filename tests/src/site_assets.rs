//! What a first visit downloads, measured through the real router: the sign-in page's HTML
//! and every `/pkg/` asset it links (js glue, wasm, stylesheet), each as sent raw, with gzip
//! and with brotli. Used by `tests/tests/assets.rs` and `benches/asset_sizes.rs`.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};

use crate::TestServer;

/// A response as it came over the wire: the body is never decoded.
pub struct Download {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Download {
    /// A response header as text ("" when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// GETs `path`, sending `accept_encoding` (no such header when `None`). The test client has
/// no decompression built in, so the body is the bytes the server sent.
pub async fn download(server: &TestServer, path: &str, accept_encoding: Option<&str>) -> Download {
    let mut request = server.request(Method::GET, path);
    if let Some(accept) = accept_encoding {
        request = request.header("accept-encoding", accept);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    Download {
        status,
        headers,
        body,
    }
}

/// The `/pkg/` URLs a page links (stylesheet, module preload of the js, preload of the wasm),
/// in page order, each once.
pub fn linked_assets(html: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for (at, _) in html.match_indices("href=\"/pkg/") {
        let start = at + "href=\"".len();
        let Some(len) = html[start..].find('"') else {
            continue;
        };
        let url = html[start..start + len].to_string();
        if !found.contains(&url) {
            found.push(url);
        }
    }
    found
}

/// One asset's size on the wire in each encoding.
pub struct AssetSize {
    pub url: String,
    pub raw: usize,
    pub gzip: usize,
    pub brotli: usize,
}

/// The first visit of a browser that accepts brotli: the page and the assets it links.
pub struct FirstVisit {
    pub page: String,
    pub html: usize,
    pub assets: Vec<AssetSize>,
}

impl FirstVisit {
    /// Bytes a browser that accepts brotli downloads (response bodies, HTML included).
    pub fn total_brotli(&self) -> usize {
        self.html + self.assets.iter().map(|a| a.brotli).sum::<usize>()
    }

    /// The sizes as a table, one row per file and the first-visit total.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<44} {:>10} {:>10} {:>10}\n",
            "file", "raw", "gzip", "brotli"
        );
        out += &format!(
            "{:<44} {:>10} {:>10} {:>10}\n",
            format!("{} (HTML, sent as is)", self.page),
            self.html,
            self.html,
            self.html
        );
        for a in &self.assets {
            out += &format!(
                "{:<44} {:>10} {:>10} {:>10}\n",
                a.url, a.raw, a.gzip, a.brotli
            );
        }
        let sum = |f: fn(&AssetSize) -> usize| self.html + self.assets.iter().map(f).sum::<usize>();
        out += &format!(
            "{:<44} {:>10} {:>10} {:>10}\n",
            "first visit",
            sum(|a| a.raw),
            sum(|a| a.gzip),
            self.total_brotli()
        );
        out
    }
}

/// Downloads the sign-in page (where a first visit lands) and each asset it links three ways.
pub async fn first_visit(server: &TestServer) -> FirstVisit {
    let page = "/login";
    let html = download(server, page, Some("br, gzip")).await;
    assert_eq!(html.status, StatusCode::OK, "{page}");
    let text = String::from_utf8(html.body.clone()).expect("the page is UTF-8");
    let mut assets = Vec::new();
    for url in linked_assets(&text) {
        let raw = download(server, &url, None).await;
        let gzip = download(server, &url, Some("gzip")).await;
        let brotli = download(server, &url, Some("br")).await;
        for d in [&raw, &gzip, &brotli] {
            assert_eq!(d.status, StatusCode::OK, "{url}");
        }
        assets.push(AssetSize {
            url,
            raw: raw.body.len(),
            gzip: gzip.body.len(),
            brotli: brotli.body.len(),
        });
    }
    FirstVisit {
        page: page.to_string(),
        html: html.body.len(),
        assets,
    }
}
