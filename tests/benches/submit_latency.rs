//! Benchmark: submit latency through the HTTP API with many concurrent annotators, against the
//! real server on port 0. Each annotator asks for its next item and submits a label, in a loop.
//! Each annotator pauses about THINK_MS between items (a person reads the text), drawn
//! uniformly from 0.5–1.5 × THINK_MS with a random first start, so annotators are not in lock
//! step (0 = closed loop, which measures saturation rather than latency). Prints p50/p90/p99/max
//! of the submit round trip, p50/p99 of fetching the next item, and the throughput.
//! `cargo bench -p concord-tests --bench submit_latency [-- ANNOTATORS ITEMS_EACH THINK_MS]`

use std::time::{Duration, Instant};

use concord_agreement::rng::SplitMix64;
use concord_domain::{Label, ProjectSettings, ProjectSpec, Role, TaskKind};
use concord_engine::{ImportFormat, ImportOptions, Principal};
use concord_tests::TestServer;

/// A think time of 0.5–1.5 × `think`.
fn jittered(think: Duration, rng: &mut SplitMix64) -> Duration {
    let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    think.mul_f64(0.5 + unit)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let annotators = args.first().copied().unwrap_or(100);
    let each = args.get(1).copied().unwrap_or(50);
    let think = Duration::from_millis(args.get(2).copied().unwrap_or(100) as u64);
    let server = TestServer::start().await;
    let engine = server.engine.clone();
    let local = Principal::local();
    let spec = ProjectSpec {
        name: "latency".into(),
        task: TaskKind::Classification,
        labels: ["pos", "neg"].iter().map(|n| Label::named(*n)).collect(),
        guidelines: String::new(),
        settings: ProjectSettings::default(),
        relation_labels: Vec::new(),
    };
    let project = engine.create_project(&local, spec)?;
    let text: String = (0..annotators * each)
        .map(|i| format!("item {i}\n"))
        .collect();
    engine.import(
        &local,
        project,
        text.as_bytes(),
        &ImportOptions {
            format: ImportFormat::Text,
            ..Default::default()
        },
        &mut |_| {},
    )?;
    let mut tokens = Vec::new();
    for a in 0..annotators {
        let name = format!("annotator{a}");
        let who = engine.create_user_locally(&name, "bench-password", false)?;
        engine.set_member(&local, project, &name, Some(Role::Annotator))?;
        tokens.push(engine.create_api_token_locally(who.id, "bench")?);
    }
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (a, token) in tokens.into_iter().enumerate() {
        let (client, base) = (client.clone(), server.base.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = SplitMix64::new(a as u64);
            let mut latencies = Vec::with_capacity(each);
            let mut fetches = Vec::with_capacity(each);
            tokio::time::sleep(think.mul_f64((rng.next_u64() % 1000) as f64 / 1000.0)).await;
            for _ in 0..each {
                tokio::time::sleep(jittered(think, &mut rng)).await;
                let t = Instant::now();
                let next: serde_json::Value = client
                    .get(format!("{base}/api/v1/projects/{}/next", project.0))
                    .bearer_auth(&token)
                    .send()
                    .await?
                    .json()
                    .await?;
                fetches.push(t.elapsed());
                let id = next["id"].as_str().unwrap_or_default().to_string();
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/api/v1/projects/{}/annotations", project.0))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"item_id": id, "labels": ["pos"], "time_spent_ms": 1000}))
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "submit failed: {}", r.status());
                latencies.push(t.elapsed());
            }
            anyhow::Ok((latencies, fetches))
        }));
    }
    let (mut all, mut next) = (Vec::new(), Vec::new());
    for t in tasks {
        let (submits, fetches) = t.await??;
        all.extend(submits);
        next.extend(fetches);
    }
    let wall = started.elapsed();
    all.sort();
    next.sort();
    let summary = engine.project_summary(&local, project)?;
    anyhow::ensure!(
        summary.done as usize == annotators * each,
        "expected every item stored once"
    );
    println!("| annotators | think ms | submits | p50 ms | p90 ms | p99 ms | max ms | next p50 ms | next p99 ms | submits/s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {annotators} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
        think.as_millis(),
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.9),
        percentile(&all, 0.99),
        all.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
        percentile(&next, 0.5),
        percentile(&next, 0.99),
        all.len() as f64 / wall.as_secs_f64()
    );
    server.stop().await;
    Ok(())
}
