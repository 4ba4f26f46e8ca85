//! The real `concord` binary as a separate process, driven over HTTP by simulated annotators,
//! importers and a training request: shared by the crash trials and the mixed-load bench, which
//! need a process they can `kill -9` (or SIGTERM) rather than the in-process test server.
//! Included with `#[path]`; Cargo does not build this folder as a bench of its own.

use std::collections::{HashMap, HashSet};

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

#[path = "../../../server/tests/common/process.rs"]
mod process;
use concord_agreement::rng::SplitMix64;
use serde_json::{json, Value};

/// The binary to drive: `--bin PATH`, else `CONCORD_BIN`, else the dev-profile build
/// (`cargo build -p concord --bin concord`), which avoids a release build on a small machine.
/// What every bench run starts from: its command line, the binary and models it runs, a
/// fresh data directory (removed when dropped) and an HTTP client.
pub struct Bench {
    pub args: Vec<String>,
    pub bin: PathBuf,
    pub models: PathBuf,
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub client: reqwest::Client,
}

impl Bench {
    pub fn from_env() -> anyhow::Result<Bench> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let dir = tempfile::tempdir()?;
        Ok(Bench {
            bin: binary(&args)?,
            models: models(&args),
            data: dir.path().join("data"),
            dir,
            client: reqwest::Client::new(),
            args,
        })
    }
}

/// A started bench: the admin's token, the server, a project and its annotators' tokens.
pub struct Started {
    pub admin: String,
    pub server: Server,
    pub project: u64,
    pub tokens: Vec<String>,
}

impl Started {
    /// The admin's token, the server, the project, the annotators' tokens.
    pub fn into_parts(self) -> (String, Server, u64, Vec<String>) {
        (self.admin, self.server, self.project, self.tokens)
    }
}

impl Bench {
    /// Makes the admin, starts the server over the data dir, creates a project with
    /// `annotators` annotator accounts.
    pub async fn start(&self, annotators: usize) -> anyhow::Result<Started> {
        let admin = setup_admin(&self.bin, &self.data)?;
        let server = Server::start(&self.bin, &self.data, &self.models)?;
        let project = create_project(&self.client, &server.base, &admin).await?;
        let tokens =
            create_annotators(&self.client, &server.base, &admin, project, annotators).await?;
        Ok(Started {
            admin,
            server,
            project,
            tokens,
        })
    }
}

pub fn binary(args: &[String]) -> anyhow::Result<PathBuf> {
    let path = flag(args, "--bin")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("CONCORD_BIN").map(PathBuf::from))
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/concord"));
    if !path.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p concord --bin concord` or pass --bin",
            path.display()
        );
    }
    Ok(path)
}

/// The build profile a binary path names (`debug`, `release`, …), for the printed figures.
pub fn profile(bin: &Path) -> String {
    bin.parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// The model folder: `--models DIR`, else the repository's `models/`.
pub fn models(args: &[String]) -> PathBuf {
    flag(args, "--models")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

/// The value after `name` on the command line (cargo adds its own `--bench`, so unknown
/// arguments are skipped rather than refused).
pub fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// A numeric flag with a default; a value that does not parse is an error, not the default.
pub fn number(args: &[String], name: &str, default: u64) -> anyhow::Result<u64> {
    match flag(args, name) {
        Some(v) => v
            .parse()
            .with_context(|| format!("{name} {v}: not a number")),
        None => Ok(default),
    }
}

/// Runs a `concord` subcommand to completion: success, stdout, stderr.
pub fn cli(bin: &Path, args: &[&str], stdin: &str) -> anyhow::Result<(bool, String, String)> {
    process::run(bin, args, stdin).context("run concord")
}

/// An administrator `root` made with the command line; returns their API token.
pub fn setup_admin(bin: &Path, data: &Path) -> anyhow::Result<String> {
    let dir = data.to_str().context("data dir path is not UTF-8")?;
    let (ok, _, err) = cli(
        bin,
        &["user", "add", "--admin", "root", "--data-dir", dir],
        "root-password\n",
    )?;
    anyhow::ensure!(ok, "user add: {err}");
    let (ok, token, err) = cli(bin, &["token", "add", "root", "--data-dir", dir], "")?;
    anyhow::ensure!(ok, "token add: {err}");
    Ok(token.trim().to_string())
}

/// A running `concord serve`.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// Starts `concord serve` on a free port over `data` and waits until it listens.
    pub fn start(bin: &Path, data: &Path, models: &Path) -> anyhow::Result<Server> {
        let (child, base) = process::serve(bin, data, models, Duration::from_secs(120))
            .context("start concord serve")?;
        Ok(Server { child, base })
    }

    /// `kill -9`: no chance to flush or close anything.
    pub fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill().context("SIGKILL")?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self, limit: Duration) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "the server exited with {status}");
                return Ok(());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                bail!("the server did not stop within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Sends `request` and returns the status and JSON body (`Null` when empty or not JSON).
async fn send(request: reqwest::RequestBuilder) -> reqwest::Result<(reqwest::StatusCode, Value)> {
    let response = request.send().await?;
    let status = response.status();
    let text = response.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// A project with overlap 1 (every answer is the item's label, so training has data early).
pub async fn create_project(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<u64> {
    let (status, body) = send(
        client
            .post(format!("{base}/api/v1/projects"))
            .bearer_auth(token)
            .json(
                &json!({"name": "trials", "task": "classification", "overlap": 1,
                "labels": [{"name": "pos"}, {"name": "neg"}]}),
            ),
    )
    .await?;
    anyhow::ensure!(status.is_success(), "create project: {status} {body}");
    body["id"].as_u64().context("project id")
}

/// `count` annotator accounts (`annotator0`, …) in `project`; returns each one's API token.
pub async fn create_annotators(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    project: u64,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut tokens = Vec::with_capacity(count);
    for a in 0..count {
        let name = annotator_name(a);
        // POSTs `body` to `path` as the admin; the answer's body, or why it failed.
        let post = |path: String, body: Value| async move {
            let (status, answer) = send(
                client
                    .post(format!("{base}/api/v1{path}"))
                    .bearer_auth(admin)
                    .json(&body),
            )
            .await?;
            anyhow::ensure!(status.is_success(), "POST {path}: {status} {answer}");
            Ok::<Value, anyhow::Error>(answer)
        };
        post(
            "/users".into(),
            json!({"name": name, "password": "annotator-password"}),
        )
        .await?;
        post(
            format!("/projects/{project}/members"),
            json!({"user": name, "role": "annotator"}),
        )
        .await?;
        let token = post("/tokens".into(), json!({"user": name, "name": "bench"})).await?;
        tokens.push(token["token"].as_str().context("token")?.to_string());
    }
    Ok(tokens)
}

pub fn annotator_name(a: usize) -> String {
    format!("annotator{a}")
}

/// The label annotator `a` always gives, so a repeated answer cannot change what is stored.
pub fn annotator_label(a: usize) -> &'static str {
    if a.is_multiple_of(2) {
        "pos"
    } else {
        "neg"
    }
}

/// What one simulated annotator saw.
#[derive(Default)]
pub struct AnnotatorRun {
    /// Items whose answer the server acknowledged (2xx).
    pub acknowledged: Vec<String>,
    pub submit_latency: Vec<Duration>,
    pub next_latency: Vec<Duration>,
    /// Answers or fetches answered with a status other than 2xx/204.
    pub refused: usize,
}

/// One annotator: fetch the next item, answer it, pause 0.5–1.5 × `think`; until `limit`
/// answers are acknowledged or the connection fails (the server was killed).
pub async fn annotate(
    client: reqwest::Client,
    base: String,
    project: u64,
    token: String,
    a: usize,
    think: Duration,
    limit: usize,
) -> AnnotatorRun {
    let mut rng = SplitMix64::new(0x5eed ^ a as u64);
    let mut run = AnnotatorRun::default();
    let pause = |rng: &mut SplitMix64| {
        let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        think.mul_f64(0.5 + unit)
    };
    tokio::time::sleep(pause(&mut rng)).await;
    // An empty queue waits for the importer; give up after a minute of nothing to do.
    let mut empty = 0;
    while run.acknowledged.len() < limit && empty < 600 {
        let t = Instant::now();
        let Ok((status, next)) = send(
            client
                .get(format!("{base}/api/v1/projects/{project}/next"))
                .bearer_auth(&token),
        )
        .await
        else {
            break;
        };
        if status == reqwest::StatusCode::NO_CONTENT || next.is_null() {
            empty += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        if !status.is_success() {
            run.refused += 1;
            tokio::time::sleep(pause(&mut rng)).await;
            continue;
        }
        run.next_latency.push(t.elapsed());
        empty = 0;
        let Some(id) = next["id"].as_str().map(str::to_string) else {
            run.refused += 1;
            continue;
        };
        let t = Instant::now();
        let Ok(response) = client
            .post(format!("{base}/api/v1/projects/{project}/annotations"))
            .bearer_auth(&token)
            .json(&json!({"item_id": id, "labels": [annotator_label(a)], "time_spent_ms": 500}))
            .send()
            .await
        else {
            break;
        };
        // The status line is the acknowledgement: the server sends it after the write commits.
        if response.status().is_success() {
            run.submit_latency.push(t.elapsed());
            run.acknowledged.push(id);
        } else {
            run.refused += 1;
        }
        tokio::time::sleep(pause(&mut rng)).await;
    }
    run
}

/// Posts `batches` JSONL batches of `size` items whose texts start with `prefix`; returns the
/// texts of the batches the server acknowledged. Stops at the first connection failure.
pub async fn import_batches(
    client: reqwest::Client,
    base: String,
    token: String,
    project: u64,
    prefix: String,
    batches: usize,
    size: usize,
) -> (Vec<String>, usize) {
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for b in 0..batches {
        let texts: Vec<String> = (0..size).map(|i| format!("{prefix} {b}-{i}")).collect();
        let body: String = texts
            .iter()
            .map(|t| format!("{}\n", json!({ "text": t })))
            .collect();
        let Ok(response) = client
            .post(format!("{base}/api/v1/projects/{project}/items"))
            .bearer_auth(&token)
            .body(body)
            .send()
            .await
        else {
            break;
        };
        if response.status().is_success() {
            acknowledged.extend(texts);
        } else {
            refused += 1;
        }
    }
    (acknowledged, refused)
}

/// Asks for a training job with the default settings: the status (202 when queued; a refusal,
/// say because one is already queued, is a figure to report, not a failure) and the body.
pub async fn request_training(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    project: u64,
) -> reqwest::Result<(reqwest::StatusCode, Value)> {
    send(
        client
            .post(format!("{base}/api/v1/projects/{project}/train"))
            .bearer_auth(token),
    )
    .await
}

/// The project's jobs, newest first, as the API lists them.
async fn jobs(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    project: u64,
) -> anyhow::Result<Vec<Value>> {
    let (status, body) = send(
        client
            .get(format!("{base}/api/v1/projects/{project}/jobs"))
            .bearer_auth(token),
    )
    .await?;
    anyhow::ensure!(status.is_success(), "jobs: {status} {body}");
    Ok(body
        .as_array()
        .or_else(|| body["jobs"].as_array())
        .cloned()
        .unwrap_or_default())
}

/// The project's jobs, counted by status ("succeeded 2, failed 1").
pub async fn job_statuses(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    project: u64,
) -> anyhow::Result<String> {
    let jobs = jobs(client, base, token, project).await?;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for job in &jobs {
        let state = job["status"]
            .as_str()
            .or_else(|| job["state"].as_str())
            .unwrap_or("?");
        *counts.entry(state.to_string()).or_default() += 1;
    }
    Ok(counts
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect::<Vec<_>>()
        .join(", "))
}

/// The distinct error messages of the project's failed jobs, each with how often it occurs.
pub async fn job_errors(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    project: u64,
) -> anyhow::Result<Vec<String>> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for job in jobs(client, base, token, project).await? {
        if let Some(error) = job["error"].as_str() {
            *counts.entry(error.to_string()).or_default() += 1;
        }
    }
    Ok(counts.iter().map(|(e, n)| format!("{n} × {e}")).collect())
}

/// What the server holds, read through its JSONL export (`GET …/export?format=jsonl`): each
/// item's text, and its answers as (annotator, labels). Not `concord export`: any command that
/// opens the data dir starts a job worker without models, which would fail the interrupted
/// training job and skew the job outcomes the trials report.
pub struct Stored {
    pub texts: HashSet<String>,
    pub answers: HashMap<String, Vec<(String, Vec<String>)>>,
}

pub async fn stored(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    project: u64,
) -> anyhow::Result<Stored> {
    let response = client
        .get(format!(
            "{base}/api/v1/projects/{project}/export?format=jsonl"
        ))
        .bearer_auth(token)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "export: {}",
        response.status()
    );
    let out = response.text().await?;
    let mut texts = HashSet::new();
    let mut answers = HashMap::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let item: Value = serde_json::from_str(line).context("an export line is JSON")?;
        let id = item["id"].as_str().context("item id")?.to_string();
        texts.insert(item["text"].as_str().unwrap_or_default().to_string());
        let given = item["annotations"]
            .as_array()
            .map(|all| {
                all.iter()
                    .map(|a| {
                        let labels = a["labels"]
                            .as_array()
                            .map(|l| {
                                l.iter()
                                    .filter_map(|v| v.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default();
                        (
                            a["annotator"].as_str().unwrap_or_default().to_string(),
                            labels,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        answers.insert(id, given);
    }
    Ok(Stored { texts, answers })
}

impl Stored {
    /// Of every annotator's acknowledged answers (indexed by annotator): how many there are,
    /// and how many are stored with their label.
    pub fn found_all(&self, acknowledged: &[Vec<String>]) -> (usize, usize) {
        let total = acknowledged.iter().map(Vec::len).sum();
        let found = acknowledged
            .iter()
            .enumerate()
            .map(|(a, items)| self.found(a, items))
            .sum();
        (total, found)
    }

    /// How many of annotator `a`'s acknowledged answers are stored with their label.
    fn found(&self, a: usize, items: &[String]) -> usize {
        let (name, label) = (annotator_name(a), annotator_label(a));
        items
            .iter()
            .filter(|id| {
                self.answers.get(*id).is_some_and(|given| {
                    given
                        .iter()
                        .any(|(who, labels)| *who == name && labels.iter().any(|l| l == label))
                })
            })
            .count()
    }
}

/// `concord check` on the data dir: "ok", or the first line of what it reported.
pub fn check(bin: &Path, data: &Path) -> anyhow::Result<(bool, String)> {
    let dir = data.to_str().context("data dir path is not UTF-8")?;
    let (ok, out, err) = cli(bin, &["check", "--data-dir", dir], "")?;
    let said = if ok {
        "ok".to_string()
    } else {
        format!("{}{}", out, err)
            .lines()
            .last()
            .unwrap_or("failed")
            .to_string()
    };
    Ok((ok, said))
}

/// The `p` quantile (0–1) of sorted durations, in ms.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}
