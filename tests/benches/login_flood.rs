//! Benchmark: a flood of wrong-password sign-ins against the real server on port 0, through
//! the login server function as a browser posts it. Two runs:
//! - one client address against one account (a password-guessing run): the throttle answers
//!   most with 429 before any password is hashed;
//! - every request from its own address for its own account (the throttle cannot help; the
//!   server trusts `X-Forwarded-For` for this run so each request has an address of its own):
//!   every attempt is hashed, and the hashing bound (one argon2id of 19 MiB per core at a time)
//!   is what keeps memory flat.
//!
//! Prints how many got 401 and 429, the wall time, and this process's peak resident memory
//! (`VmHWM`: the server runs in it) before and after each run.
//! `cargo bench -p concord-tests --bench login_flood [-- REQUESTS]` (default 200), or in the dev
//! profile: `cargo test -p concord-tests --bench login_flood -- 200`.

use std::time::Instant;

use concord_app::api::Login;
use concord_tests::{peak_rss_bytes, TestServer, ADMIN};
use leptos::server_fn::ServerFn;
use reqwest::StatusCode;

struct Outcome {
    unauthorized: usize,
    throttled: usize,
    other: usize,
    seconds: f64,
    rss_before: u64,
    rss_after: u64,
}

/// Sends `requests` wrong-password sign-ins at once; `distinct` gives each its own forwarded
/// address and account name.
async fn flood(server: &TestServer, requests: usize, distinct: bool) -> anyhow::Result<Outcome> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(requests)
        .build()?;
    let url = server.url(Login::PATH);
    let rss_before = peak_rss_bytes().unwrap_or(0);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(requests);
    for i in 0..requests {
        let (client, url) = (client.clone(), url.clone());
        let name = if distinct {
            format!("user{i}")
        } else {
            ADMIN.to_string()
        };
        let forwarded = format!("10.{}.{}.1", (i >> 8) & 0xff, i & 0xff);
        tasks.push(tokio::spawn(async move {
            let mut request = client
                .post(url)
                .header("accept", "application/json")
                .form(&[("name", name.as_str()), ("password", "a-wrong-guess")]);
            if distinct {
                request = request.header("x-forwarded-for", forwarded);
            }
            request.send().await.map(|r| r.status())
        }));
    }
    let mut outcome = Outcome {
        unauthorized: 0,
        throttled: 0,
        other: 0,
        seconds: 0.0,
        rss_before,
        rss_after: 0,
    };
    for task in tasks {
        match task.await? {
            Ok(StatusCode::UNAUTHORIZED) => outcome.unauthorized += 1,
            Ok(StatusCode::TOO_MANY_REQUESTS) => outcome.throttled += 1,
            Ok(_) | Err(_) => outcome.other += 1,
        }
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome.rss_after = peak_rss_bytes().unwrap_or(0);
    Ok(outcome)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let requests = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(200);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("{requests} parallel wrong-password sign-ins, {cores} cores (argon2id, 19 MiB each)");
    println!(
        "{:<44} {:>5} {:>5} {:>5} {:>8} {:>14} {:>14}",
        "run", "401", "429", "other", "wall s", "VmHWM before", "VmHWM after"
    );
    for (label, distinct) in [
        ("one address, one account", false),
        ("own address and account each (no throttle)", true),
    ] {
        let server = TestServer::start_with(|state| state.trust_forwarded_for = distinct).await;
        let o = flood(&server, requests, distinct).await?;
        println!(
            "{:<44} {:>5} {:>5} {:>5} {:>8.2} {:>10.1} MiB {:>10.1} MiB",
            label,
            o.unauthorized,
            o.throttled,
            o.other,
            o.seconds,
            mib(o.rss_before),
            mib(o.rss_after)
        );
        server.stop().await;
    }
    Ok(())
}
