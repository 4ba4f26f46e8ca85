//! Mixed load against the real `concord serve`: ANNOTATORS simulated annotators submitting over
//! HTTP (each pausing 0.5–1.5 × THINK between items) while a bulk import of BULK items and a
//! training job run at the same time. Prints submit p50/p90/p99/max, next-item p50/p99, the
//! submit throughput, how long the import took and how the job ended; then stops the server
//! with SIGTERM and confirms that every acknowledged answer is stored (read back through the
//! export API before the stop) and that `concord check` finds the database clean.
//!
//! `cargo build -p concord --bin concord && cargo bench -p concord-tests --bench mixed_load --
//!  [--annotators 200] [--each 20] [--think-ms 100] [--bulk 20000] [--no-train] [--bin PATH] [--models DIR]`
//! `--bulk 0 --no-train` is the baseline: annotators alone.

// Each bench uses only part of the shared driver.
#[allow(dead_code)]
#[path = "spawned/mod.rs"]
mod spawned;

use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let bench = spawned::Bench::from_env()?;
    let (args, bin, data, client) = (&bench.args, &bench.bin, &bench.data, &bench.client);
    let annotators = spawned::number(args, "--annotators", 200)? as usize;
    let each = spawned::number(args, "--each", 20)? as usize;
    let think = Duration::from_millis(spawned::number(args, "--think-ms", 100)?);
    let bulk = spawned::number(args, "--bulk", 20_000)? as usize;
    let train = !args.iter().any(|a| a == "--no-train");
    let warmup = 2;

    let (admin, server, project, tokens) = bench.start(annotators).await?.into_parts();
    let base = server.base.clone();
    let (first, _) = spawned::import_batches(
        client.clone(),
        base.clone(),
        admin.clone(),
        project,
        "first".into(),
        1,
        annotators * (each + warmup),
    )
    .await;
    anyhow::ensure!(!first.is_empty(), "the first import was refused");

    // Warm-up: a few labels each, so the training job has data to train on.
    let mut acknowledged: Vec<Vec<String>> = vec![Vec::new(); annotators];
    let mut warm = Vec::new();
    for (a, token) in tokens.iter().enumerate() {
        warm.push(tokio::spawn(spawned::annotate(
            client.clone(),
            base.clone(),
            project,
            token.clone(),
            a,
            Duration::ZERO,
            warmup,
        )));
    }
    for (a, run) in warm.into_iter().enumerate() {
        acknowledged[a].extend(run.await?.acknowledged);
    }

    // The measured phase: annotators, the bulk import and the training job at once.
    let started = Instant::now();
    let mut runs = Vec::new();
    for (a, token) in tokens.iter().enumerate() {
        runs.push(tokio::spawn(spawned::annotate(
            client.clone(),
            base.clone(),
            project,
            token.clone(),
            a,
            think,
            each,
        )));
    }
    let importer = {
        let (client, base, admin) = (client.clone(), base.clone(), admin.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            let batches = usize::from(bulk > 0);
            let (texts, refused) =
                spawned::import_batches(client, base, admin, project, "bulk".into(), batches, bulk)
                    .await;
            (texts.len(), refused, t.elapsed())
        })
    };
    let training = if train {
        let (status, body) = spawned::request_training(client, &base, &admin, project).await?;
        format!("{status} {body}")
    } else {
        "none (--no-train)".to_string()
    };
    let (mut submits, mut nexts, mut refused) = (Vec::new(), Vec::new(), 0);
    for (a, run) in runs.into_iter().enumerate() {
        let run = run.await?;
        submits.extend(run.submit_latency);
        nexts.extend(run.next_latency);
        refused += run.refused;
        acknowledged[a].extend(run.acknowledged);
    }
    let wall = started.elapsed();
    let (imported, import_refused, import_time) = importer.await?;
    let jobs = spawned::job_statuses(client, &base, &admin, project).await?;
    let errors = spawned::job_errors(client, &base, &admin, project).await?;
    submits.sort();
    nexts.sort();

    let stored = spawned::stored(client, &base, &admin, project).await?;
    server.terminate(Duration::from_secs(120))?;
    let (clean, said) = spawned::check(bin, data)?;
    let (total, found) = stored.found_all(&acknowledged);

    println!(
        "binary: {} (profile {}), training request: {training}",
        bin.display(),
        spawned::profile(bin)
    );
    println!("| annotators | think ms | submits | p50 ms | p90 ms | p99 ms | max ms | next p50 ms | next p99 ms | submits/s | refused | bulk items | import s | jobs at end | acked | stored | check |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {annotators} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} | {refused} | {imported} (refused {import_refused}) | {:.1} | {} | {total} | {found} | {said} |",
        think.as_millis(),
        submits.len(),
        spawned::percentile_ms(&submits, 0.5),
        spawned::percentile_ms(&submits, 0.9),
        spawned::percentile_ms(&submits, 0.99),
        spawned::percentile_ms(&submits, 1.0),
        spawned::percentile_ms(&nexts, 0.5),
        spawned::percentile_ms(&nexts, 0.99),
        submits.len() as f64 / wall.as_secs_f64(),
        import_time.as_secs_f64(),
        if jobs.is_empty() { "none" } else { &jobs },
    );
    for error in &errors {
        println!("job error: {error}");
    }
    anyhow::ensure!(
        found == total,
        "{} acknowledged answers are not stored",
        total - found
    );
    anyhow::ensure!(clean, "the database does not check: {said}");
    Ok(())
}
