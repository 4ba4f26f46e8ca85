//! Crash trials: `kill -9` of the real `concord serve` at a random (seeded) moment while
//! simulated annotators submit over HTTP, an import runs and a training job is requested; then,
//! with the process gone, `concord check` on the database and `concord export` to confirm every
//! acknowledged answer (HTTP 2xx received) and every acknowledged import batch is stored.
//! The next trial restarts the server over the same data dir, so each restart recovers the
//! previous crash; the jobs column shows what that restart made of the interrupted jobs (a job
//! found running at two consecutive starts is failed on purpose: that is not a loss).
//!
//! `cargo build -p concord --bin concord && cargo bench -p concord-tests --bench crash_trials --
//!  --trials 20 [--annotators 100] [--seed 1] [--think-ms 50] [--bin PATH] [--models DIR]`
//! Exits non-zero when any trial lost an answer or failed the check.

#[path = "spawned/mod.rs"]
mod spawned;

use std::time::{Duration, Instant};

use concord_agreement::rng::SplitMix64;
use spawned::Server;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bin = spawned::binary(&args)?;
    let models = spawned::models(&args);
    let trials = spawned::number(&args, "--trials", 20)? as usize;
    let annotators = spawned::number(&args, "--annotators", 100)? as usize;
    let seed = spawned::number(&args, "--seed", 1)?;
    let think = Duration::from_millis(spawned::number(&args, "--think-ms", 50)?);
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let client = reqwest::Client::new();

    let admin = spawned::setup_admin(&bin, &data)?;
    let server = Server::start(&bin, &data, &models)?;
    let project = spawned::create_project(&client, &server.base, &admin).await?;
    let tokens =
        spawned::create_annotators(&client, &server.base, &admin, project, annotators).await?;
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
        spawned::profile(&bin),
        think.as_millis()
    );
    println!("| trial | kill at ms | answers acked | answers found | lost | items acked | items lost | train request | jobs at restart | check |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut rng = SplitMix64::new(seed);
    // Every acknowledged answer so far, per annotator: later trials must still hold them.
    let mut acknowledged: Vec<Vec<String>> = vec![Vec::new(); annotators];
    let mut acknowledged_texts: Vec<String> = seeded;
    let mut survived = 0;
    for trial in 1..=trials {
        let kill_at = Duration::from_millis(500 + rng.next_u64() % 4500);
        let server = Server::start(&bin, &data, &models)?;
        let jobs = spawned::job_statuses(&client, &server.base, &admin, project).await?;
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
            50,
            100,
        ));
        tokio::time::sleep(Duration::from_millis(200).min(kill_at)).await;
        let train = match spawned::request_training(&client, &server.base, &admin, project).await {
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
            acknowledged[a].extend(run.acknowledged);
        }
        let (texts, _) = importer.await?;
        let items_now = texts.len();
        acknowledged_texts.extend(texts);

        // Check the file exactly as the crash left it, before anything reopens it.
        let (clean, said) = spawned::check(&bin, &data)?;
        let stored = spawned::stored(&bin, &data, project)?;
        let total: usize = acknowledged.iter().map(Vec::len).sum();
        let found: usize = acknowledged
            .iter()
            .enumerate()
            .map(|(a, items)| stored.found(a, items))
            .sum();
        let items_lost = acknowledged_texts
            .iter()
            .filter(|t| !stored.texts.contains(*t))
            .count();
        let lost = total - found;
        if lost == 0 && items_lost == 0 && clean {
            survived += 1;
        }
        println!(
            "| {trial} | {} | {total} (+{acked_now}) | {found} | {lost} | {} (+{items_now}) | {items_lost} | {train} | {} | {said} |",
            killed_at.as_millis(),
            acknowledged_texts.len(),
            if jobs.is_empty() { "none" } else { &jobs },
        );
    }
    // One more restart: it recovers the last crash and settles the jobs it interrupted.
    let server = Server::start(&bin, &data, &models)?;
    let jobs = spawned::job_statuses(&client, &server.base, &admin, project).await?;
    server.terminate(Duration::from_secs(60))?;
    let (clean, said) = spawned::check(&bin, &data)?;
    println!("final restart: jobs {jobs}; SIGTERM stop; check {said}");
    println!("survived: {survived} of {trials}");
    anyhow::ensure!(
        survived == trials && clean,
        "{} trial(s) lost data or failed the check",
        trials - survived
    );
    Ok(())
}
