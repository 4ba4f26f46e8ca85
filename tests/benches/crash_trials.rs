//! Crash trials: `kill -9` of the real `concord serve` at a random (seeded) moment while
//! simulated annotators submit over HTTP, an import runs and a training job is requested; then,
//! with the process gone, `concord check` on the database file as the crash left it; then a
//! restart over the same data dir (the next trial's), whose export API must hold every
//! acknowledged answer (HTTP 2xx received) and every acknowledged import batch. The jobs column
//! shows what that restart made of the interrupted jobs (a job found running at two consecutive
//! starts is failed on purpose: that is not a loss).
//!
//! `cargo build -p concord --bin concord && cargo bench -p concord-tests --bench crash_trials --
//!  --trials 20 [--annotators 100] [--seed 1] [--think-ms 50] [--bin PATH] [--models DIR]`
//! Exits non-zero when any trial lost an answer or failed the check.

// Each bench uses only part of the shared driver.
#[allow(dead_code)]
#[path = "spawned/mod.rs"]
mod spawned;

use std::time::{Duration, Instant};

use concord_agreement::rng::SplitMix64;
use spawned::Server;

/// A finished trial, verified at the next restart.
struct Crashed {
    trial: usize,
    killed_at: Duration,
    acked_now: usize,
    items_now: usize,
    train: String,
    check: (bool, String),
}

/// What a restart found: the row of the trial that crashed before it; whether it survived.
/// What the server acknowledged so far: every answer per annotator, and every imported text.
/// Later restarts must still hold all of it.
struct Ledger {
    answers: Vec<Vec<String>>,
    texts: Vec<String>,
}

async fn verify(
    client: &reqwest::Client,
    server: &Server,
    admin: &str,
    project: u64,
    crashed: &Crashed,
    ledger: &Ledger,
) -> anyhow::Result<bool> {
    let (acknowledged, acknowledged_texts) = (&ledger.answers, &ledger.texts);
    let jobs = spawned::job_statuses(client, &server.base, admin, project).await?;
    let stored = spawned::stored(client, &server.base, admin, project).await?;
    let (total, found) = stored.found_all(acknowledged);
    let items_lost = acknowledged_texts
        .iter()
        .filter(|t| !stored.texts.contains(*t))
        .count();
    let lost = total - found;
    println!(
        "| {} | {} | {total} (+{}) | {found} | {lost} | {} (+{}) | {items_lost} | {} | {} | {} |",
        crashed.trial,
        crashed.killed_at.as_millis(),
        crashed.acked_now,
        acknowledged_texts.len(),
        crashed.items_now,
        crashed.train,
        if jobs.is_empty() { "none" } else { &jobs },
        crashed.check.1,
    );
    Ok(lost == 0 && items_lost == 0 && crashed.check.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let bench = spawned::Bench::from_env()?;
    let (args, bin, models, data, client) = (
        &bench.args,
        &bench.bin,
        &bench.models,
        &bench.data,
        &bench.client,
    );
    let trials = spawned::number(args, "--trials", 20)? as usize;
    let annotators = spawned::number(args, "--annotators", 100)? as usize;
    let seed = spawned::number(args, "--seed", 1)?;
    let think = Duration::from_millis(spawned::number(args, "--think-ms", 50)?);

    let (admin, server, project, tokens) = bench.start(annotators).await?.into_parts();
    let (seeded, _) = spawned::import_batches(
        client.clone(),
        server.base.clone(),
        admin.clone(),
        project,
        "seed".into(),
        4,
        500,
    )
    .await;
    anyhow::ensure!(seeded.len() == 2000, "the seed import was refused");
    server.terminate(Duration::from_secs(30))?;

    println!(
        "binary: {} (profile {}), {annotators} annotators, think {} ms, seed {seed}",
        bin.display(),
        spawned::profile(bin),
        think.as_millis()
    );
    println!("Each row is checked after the crash (`concord check`, server down) and at the next restart (export API; jobs as that restart left them).");
    println!("| trial | kill at ms | answers acked | answers found | lost | items acked | items lost | train request | jobs at restart | check |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut rng = SplitMix64::new(seed);
    // Every acknowledged answer so far, per annotator: later restarts must still hold them.
    let mut ledger = Ledger {
        answers: vec![Vec::new(); annotators],
        texts: seeded,
    };
    let mut survived = 0;
    let mut previous: Option<Crashed> = None;
    for trial in 1..=trials {
        let kill_at = Duration::from_millis(500 + rng.next_u64() % 4500);
        let server = Server::start(bin, data, models)?;
        if let Some(crashed) = previous.take() {
            let ok = verify(client, &server, &admin, project, &crashed, &ledger).await?;
            survived += usize::from(ok);
        }
        let started = Instant::now();
        let mut runs = Vec::new();
        for (a, token) in tokens.iter().enumerate() {
            runs.push(tokio::spawn(spawned::annotate(
                client.clone(),
                server.base.clone(),
                project,
                token.clone(),
                a,
                think,
                usize::MAX,
            )));
        }
        let importer = tokio::spawn(spawned::import_batches(
            client.clone(),
            server.base.clone(),
            admin.clone(),
            project,
            format!("trial {trial}"),
            200,
            100,
        ));
        tokio::time::sleep(Duration::from_millis(200).min(kill_at)).await;
        let train = match spawned::request_training(client, &server.base, &admin, project).await {
            Ok((status, _)) => status.as_u16().to_string(),
            Err(_) => "no answer".to_string(),
        };
        tokio::time::sleep(kill_at.saturating_sub(started.elapsed())).await;
        let killed_at = started.elapsed();
        server.kill9()?;

        let mut acked_now = 0;
        for (a, run) in runs.into_iter().enumerate() {
            let run = run.await?;
            acked_now += run.acknowledged.len();
            ledger.answers[a].extend(run.acknowledged);
        }
        let (texts, _) = importer.await?;
        let items_now = texts.len();
        ledger.texts.extend(texts);
        // Check the file exactly as the crash left it, before anything reopens it.
        let check = spawned::check(bin, data)?;
        previous = Some(Crashed {
            trial,
            killed_at,
            acked_now,
            items_now,
            train,
            check,
        });
    }
    // One more restart verifies the last crash and settles the jobs it interrupted.
    let server = Server::start(bin, data, models)?;
    if let Some(crashed) = previous.take() {
        let ok = verify(client, &server, &admin, project, &crashed, &ledger).await?;
        survived += usize::from(ok);
    }
    let errors = spawned::job_errors(client, &server.base, &admin, project).await?;
    server.terminate(Duration::from_secs(60))?;
    let (clean, said) = spawned::check(bin, data)?;
    println!("after the last restart: SIGTERM stop; check {said}");
    for error in &errors {
        println!("job error: {error}");
    }
    println!("survived: {survived} of {trials}");
    anyhow::ensure!(
        survived == trials && clean,
        "{} trial(s) lost data or failed the check",
        trials - survived
    );
    Ok(())
}
