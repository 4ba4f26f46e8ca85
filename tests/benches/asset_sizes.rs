//! Benchmark: the bytes of a first visit over the wire, through the real router: the sign-in
//! page and each asset it links, raw, gzip and brotli, and the total a browser that accepts
//! brotli downloads (target: at most 600 KB with the release bundle, `cargo xtask build
//! --release`; CI's dev bundle is larger).
//! `cargo bench -p concord-tests --bench asset_sizes`

use concord_tests::site_assets::first_visit;
use concord_tests::TestServer;

/// The first-visit budget of issue 10, in bytes (KB = 1000 bytes).
const TARGET_BYTES: usize = 600_000;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    if !concord::assets::frontend_present() {
        anyhow::bail!("the site is not built: run `cargo xtask site [--release]` first");
    }
    let server = TestServer::start().await;
    let visit = first_visit(&server).await;
    server.stop().await;
    print!("{}", visit.table());
    let total = visit.total_brotli();
    println!(
        "first visit with brotli: {total} bytes ({:.0} KB; target {} KB: {})",
        total as f64 / 1000.0,
        TARGET_BYTES / 1000,
        if total <= TARGET_BYTES {
            "met"
        } else {
            "missed"
        }
    );
    Ok(())
}
