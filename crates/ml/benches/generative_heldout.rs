//! Label-word scoring with in-process GGUF generators, measured on held-out data against the
//! baselines: three-way sentiment (positive / negative / neutral), each method scored on the same
//! seeded sample of items.
//!
//! Development (the only data any choice is made on): `../shared/data/vader_tweets.jsonl`,
//! labelled from `mean` as `scripts/fetch_heldout_sentiment.sh` does (positive ≥ 0.5, negative
//! ≤ −0.5, else neutral). One choice is made there, per model: raw or contextually calibrated
//! probabilities (Zhao et al. 2021), whichever has the higher zero-shot accuracy on `N_DEV`
//! sampled tweets (a tie keeps raw). Nothing else is chosen: the label descriptions are the
//! plain ones written for `examples/zero_shot_heldout.rs` before any number was seen, there are
//! no guidelines, and the scorer's options are its defaults (no length normalisation, the three
//! content-free inputs "N/A", "", "[MASK]").
//!
//! Report: `N_TEST` sampled items of each of `{amazon,movie,nyt}.jsonl` in `CONCORD_HELDOUT_DIR`
//! (made by `scripts/fetch_heldout_sentiment.sh`), only ever printed. Methods: the majority
//! label of the sample (an oracle baseline: it knows the sample's label counts), the encoder
//! zero-shot the engine ships (`concord_ml::COLD_START` over all-MiniLM-L6-v2 embeddings of
//! "name: description"), and per generator: zero-shot raw, zero-shot calibrated, and 8-shot
//! with the dev-chosen calibration, whose 8 demonstrations per item are the development tweets
//! nearest to it by MiniLM cosine (labels from the development file, never from the held-out
//! one), the nearest last, next to the item. A demonstration prompt that would not leave the
//! item whole within the model's context (Gemma 3 270M reads 512 tokens) loses its farthest
//! demonstrations first; the table says how many items got fewer than 8.
//!
//! Caveat on 8-shot calibration: the scorer estimates the content-free prior with the shared
//! demonstrations only, and these demonstrations are per item, so a calibrated 8-shot run
//! divides by the zero-shot prompt's prior.
//!
//! Generators run on the CPU in increasing file size, because the peak resident memory read
//! after each one (`VmHWM` in `/proc/self/status`) is the process-wide high-water mark: a
//! model's figure includes everything before it. `items/s` is the wall clock of one
//! `score_items` call (the content-free inputs and the shared prefix included; choosing and
//! fitting the demonstrations not).
//!
//! ```text
//! CONCORD_HELDOUT_DIR=/work/heldout cargo bench -p concord-ml --bench generative_heldout
//! ```
//!
//! Environment: `CONCORD_HELDOUT_DIR` (default `target/heldout`), `CONCORD_GGUF_DIR` (default
//! `models/gguf`; relative paths are taken from the repository root, since cargo runs benches
//! in the crate's folder), `CONCORD_TEST_MODEL` (the MiniLM folder, default
//! `models/all-MiniLM-L6-v2`), `N_DEV` (default 150), `N_TEST` (default 150 per held-out set).
//! A GGUF file that is missing is skipped with a line saying so. Progress goes to stderr.

#[allow(dead_code)] // only the model folder is used here
mod common;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use concord_ml::generative::{
    instructions, score_items, ChatFormat, Demonstration, GenerativeModel, ItemInput, LabelSpec,
    PromptSpec, Scores, ScoringOptions,
};
use concord_ml::{apply_priors, cosine, evaluate, Device, Encoder, SplitMix64, COLD_START};

/// Label names and descriptions, verbatim from `examples/zero_shot_heldout.rs` (written before
/// any number was seen, never tuned); the order is the label index.
const LABELS: [(&str, &str); 3] = [
    ("positive", "a positive opinion"),
    ("negative", "a negative opinion"),
    ("neutral", "neutral, factual or mixed"),
];
/// The seed of every sample (fixed; the development and each held-out file are shuffled by it).
const SEED: u64 = 20_261_213;
/// Demonstrations per item in the few-shot runs.
const SHOTS: usize = 8;
/// Tokens kept free after a few-shot prompt for the label's own tokens.
const ANSWER_MARGIN: usize = 8;
/// The generators, by file name.
const MODELS: [&str; 2] = [
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma-3-270m-q4_k_m.gguf",
];
const SETS: [&str; 3] = ["amazon", "movie", "nyt"];
const Z95: f64 = 1.959_963_984_540_054;

struct Item {
    text: String,
    label: usize,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A folder from `var`, relative ones taken from the repository root; `default` without it.
fn env_dir(var: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default));
    let path = if path.is_absolute() {
        path
    } else {
        repo_root().join(path)
    };
    path.canonicalize().unwrap_or(path)
}

fn env_usize(var: &str, default: usize) -> usize {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v} is not a number")),
        Err(_) => default,
    }
}

fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    let body = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the held-out sets come from scripts/fetch_heldout_sentiment.sh)",
            path.display()
        )
    });
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

/// The development tweets, labelled from their mean rating.
fn read_development(path: &Path) -> Vec<Item> {
    read_lines(path)
        .iter()
        .map(|v| {
            let text = v["text"].as_str().expect("a text").to_string();
            let mean = v["mean"].as_f64().expect("a mean rating");
            let label = if mean >= 0.5 {
                0
            } else if mean <= -0.5 {
                1
            } else {
                2
            };
            Item { text, label }
        })
        .collect()
}

/// A held-out set, labelled by its `label` field.
fn read_heldout(path: &Path) -> Vec<Item> {
    read_lines(path)
        .iter()
        .map(|v| {
            let text = v["text"].as_str().expect("a text").to_string();
            let name = v["label"].as_str().expect("a label");
            let label = LABELS
                .iter()
                .position(|(l, _)| *l == name)
                .unwrap_or_else(|| panic!("{}: unknown label {name}", path.display()));
            Item { text, label }
        })
        .collect()
}

/// `n` indices of `len` items, drawn by a seeded shuffle.
fn sample(len: usize, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    SplitMix64::new(SEED).shuffle(&mut order);
    order.truncate(n.min(len));
    order
}

/// A `kB` line of `/proc/self/status` (`VmHWM`, `VmRSS`), in MB.
fn status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Wilson score interval of a proportion (95%).
fn wilson(correct: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p, z2) = (n as f64, correct as f64 / n as f64, Z95 * Z95);
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

struct Metrics {
    items: usize,
    accuracy: f64,
    low: f64,
    high: f64,
    macro_f1: f64,
}

fn metrics(probs: &[Vec<f32>], gold: &[usize]) -> Metrics {
    let e = evaluate(probs, gold, LABELS.len());
    let correct: usize = (0..LABELS.len()).map(|c| e.confusion[c][c] as usize).sum();
    let (low, high) = wilson(correct, gold.len());
    Metrics {
        items: gold.len(),
        accuracy: e.accuracy,
        low,
        high,
        macro_f1: e.macro_f1,
    }
}

/// The most common label of `gold` (the first on ties) and predictions of it for every item.
fn majority(gold: &[usize]) -> (usize, Vec<Vec<f32>>) {
    let mut counts = [0usize; LABELS.len()];
    for &g in gold {
        counts[g] += 1;
    }
    let best = (0..LABELS.len())
        .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
        .unwrap_or(0);
    let mut row = vec![0.0; LABELS.len()];
    row[best] = 1.0;
    (best, vec![row; gold.len()])
}

fn counts(gold: &[usize]) -> String {
    let mut counts = [0usize; LABELS.len()];
    for &g in gold {
        counts[g] += 1;
    }
    LABELS
        .iter()
        .zip(counts)
        .map(|((name, _), c)| format!("{name} {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One row of a results table.
struct Row {
    set: String,
    method: String,
    result: Result<Metrics, String>,
    speed: String,
    prefix: String,
    notes: String,
}

impl Row {
    fn print(&self) {
        match &self.result {
            Ok(m) => println!(
                "| {} | {} | {} | {:.3} | {:.3}–{:.3} | {:.3} | {} | {} | {} |",
                self.set,
                self.method,
                m.items,
                m.accuracy,
                m.low,
                m.high,
                m.macro_f1,
                self.speed,
                self.prefix,
                self.notes
            ),
            Err(e) => println!(
                "| {} | {} | – | – | – | – | {} | {} | failed: {} |",
                self.set,
                self.method,
                self.speed,
                self.prefix,
                e.replace('|', "/")
            ),
        }
    }
}

fn print_header() {
    println!(
        "| set | method | items | accuracy | 95% CI (Wilson) | macro-F1 | items/s | prefix tokens | notes |"
    );
    println!("|---|---|---:|---:|---|---:|---:|---:|---|");
}

/// A finished `score_items` call and its wall clock.
struct Run {
    scores: Scores,
    seconds: f64,
}

impl Run {
    fn rate(&self) -> String {
        format!(
            "{:.2}",
            self.scores.items.len() as f64 / self.seconds.max(1e-9)
        )
    }

    fn raw(&self) -> Vec<Vec<f32>> {
        self.scores
            .items
            .iter()
            .map(|i| i.probabilities.clone())
            .collect()
    }

    fn calibrated(&self) -> Vec<Vec<f32>> {
        self.scores
            .items
            .iter()
            .map(|i| i.calibrated.clone())
            .collect()
    }

    fn truncated(&self) -> usize {
        self.scores.items.iter().filter(|i| i.truncated).count()
    }
}

fn run(
    model: &GenerativeModel,
    spec: &PromptSpec,
    items: &[ItemInput<'_>],
    options: &ScoringOptions,
    tag: &str,
) -> Result<Run, String> {
    eprintln!("{tag}: scoring {} items", items.len());
    let start = Instant::now();
    let scores = score_items(model, spec, items, options, &mut |done, total| {
        if done > 0 && (done % 25 == 0 || done == total) {
            eprintln!(
                "{tag}: {done}/{total} ({:.0} s)",
                start.elapsed().as_secs_f64()
            );
        }
        ControlFlow::Continue(())
    })
    .map_err(|e| e.to_string())?;
    Ok(Run {
        scores,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The `SHOTS` development tweets nearest to an item (cosine of MiniLM embeddings; ties to the
/// earlier tweet), the nearest last; the farthest are dropped while the prompt with the whole
/// item would not fit the model.
fn demonstrations(
    model: &GenerativeModel,
    format: ChatFormat,
    system: &str,
    text: &str,
    embedding: &[f32],
    pool: &[Item],
    pool_x: &[Vec<f32>],
) -> Result<Vec<Demonstration>, String> {
    let mut ranked: Vec<(f32, usize)> = pool_x
        .iter()
        .enumerate()
        .map(|(i, x)| (cosine(embedding, x), i))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut demos: Vec<Demonstration> = ranked
        .iter()
        .take(SHOTS)
        .rev()
        .map(|&(_, i)| Demonstration {
            text: pool[i].text.clone(),
            label: pool[i].label,
        })
        .collect();
    // The prompt as the scorer renders it (its user message is "Text: …").
    let query = format!("Text: {}", format.clean(text));
    while !demos.is_empty() {
        let pairs: Vec<(String, String)> = demos
            .iter()
            .map(|d| {
                (
                    format!("Text: {}", format.clean(&d.text)),
                    LABELS[d.label].0.to_string(),
                )
            })
            .collect();
        let tokens = model
            .encode(&format.render(system, &pairs, &query))
            .map_err(|e| e.to_string())?
            .len();
        if tokens + ANSWER_MARGIN <= model.max_tokens() {
            break;
        }
        demos.remove(0);
    }
    Ok(demos)
}

/// One held-out set's sample.
struct Set {
    name: &'static str,
    items: Vec<Item>,
    x: Vec<Vec<f32>>,
}

impl Set {
    fn gold(&self) -> Vec<usize> {
        self.items.iter().map(|i| i.label).collect()
    }
}

fn main() {
    let root = repo_root();
    let heldout_dir = env_dir("CONCORD_HELDOUT_DIR", "target/heldout");
    let gguf_dir = env_dir("CONCORD_GGUF_DIR", "models/gguf");
    let minilm = common::model_dir();
    let minilm = minilm.canonicalize().unwrap_or(minilm);
    let n_dev = env_usize("N_DEV", 150);
    let n_test = env_usize("N_TEST", 150);
    // Few-shot prompts are several times longer: their rows may use the first `N_FEW` items of
    // each held-out sample only (with the majority rate of that subset beside them).
    let n_few = env_usize("N_FEW", n_test);
    let dev_path = root.join("../shared/data/vader_tweets.jsonl");

    println!("# Generative label-word scoring on held-out sentiment\n");
    println!("Reproduce:\n");
    println!(
        "    CONCORD_HELDOUT_DIR={} CONCORD_GGUF_DIR={} CONCORD_TEST_MODEL={} N_DEV={n_dev} N_TEST={n_test} N_FEW={n_few} cargo bench -p concord-ml --bench generative_heldout\n",
        heldout_dir.display(),
        gguf_dir.display(),
        minilm.display()
    );
    println!(
        "Seed {SEED}; labels and descriptions: {}; no guidelines; {SHOTS} nearest development tweets as demonstrations; CPU.\n",
        LABELS
            .iter()
            .map(|(n, d)| format!("`{n}` ({d})"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Data: the development file whole (the demonstration pool), its sample, the held-out samples.
    let pool = read_development(&dev_path);
    let dev_index = sample(pool.len(), n_dev);
    let dev_gold: Vec<usize> = dev_index.iter().map(|&i| pool[i].label).collect();
    let mut sets: Vec<Set> = SETS
        .iter()
        .map(|&name| {
            let all = read_heldout(&heldout_dir.join(format!("{name}.jsonl")));
            let total = all.len();
            let keep = sample(total, n_test);
            let mut slots: Vec<Option<Item>> = all.into_iter().map(Some).collect();
            let items: Vec<Item> = keep
                .iter()
                .map(|&i| slots[i].take().expect("sampled once"))
                .collect();
            eprintln!("{name}: {} of {total} items sampled", items.len());
            Set {
                name,
                items,
                x: Vec::new(),
            }
        })
        .collect();

    // MiniLM: every embedding this bench needs, then the encoder is dropped.
    let started = Instant::now();
    let (pool_x, label_x) = {
        let encoder = Encoder::load(&minilm, &Device::Cpu)
            .expect("MiniLM model (run scripts/setup.sh or set CONCORD_TEST_MODEL)");
        let texts: Vec<&str> = pool.iter().map(|i| i.text.as_str()).collect();
        let pool_x = encoder
            .embed(&texts, 32, &mut |done| {
                if done % 1024 < 32 {
                    eprintln!("MiniLM: {done}/{} development tweets", texts.len());
                }
            })
            .expect("embedding the development tweets");
        for set in &mut sets {
            let texts: Vec<&str> = set.items.iter().map(|i| i.text.as_str()).collect();
            set.x = encoder
                .embed(&texts, 32, &mut |_| {})
                .expect("embedding a held-out sample");
        }
        // COLD_START's prompts for each label ("name: description"), embedded per label.
        let label_x: Vec<Vec<Vec<f32>>> = LABELS
            .iter()
            .map(|&(name, description)| {
                let prompts = COLD_START.prompts(name, Some(description));
                let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
                encoder
                    .embed(&refs, 16, &mut |_| {})
                    .expect("embedding the label prompts")
            })
            .collect();
        (pool_x, label_x)
    };
    let dev_x: Vec<Vec<f32>> = dev_index.iter().map(|&i| pool_x[i].clone()).collect();
    eprintln!(
        "MiniLM embeddings: {:.0} s",
        started.elapsed().as_secs_f64()
    );
    // The shipped encoder zero-shot: fitted on the set's own items as the engine fits on the
    // project's (COLD_START's raw cosine and uniform priors make that reference irrelevant).
    let encoder_zero_shot = |x: &[Vec<f32>]| -> Vec<Vec<f32>> {
        let (zero_shot, priors) = COLD_START.fit(&label_x, x);
        apply_priors(&zero_shot.predict(x), &priors)
    };
    let baseline_rss = status_mb("VmRSS");
    let baseline_hwm = status_mb("VmHWM");

    // Development table rows and held-out rows, filled as the models run.
    let mut dev_rows = Vec::new();
    let (dev_majority, dev_majority_probs) = majority(&dev_gold);
    dev_rows.push(Row {
        set: "tweets (dev)".into(),
        method: "majority label".into(),
        result: Ok(metrics(&dev_majority_probs, &dev_gold)),
        speed: "–".into(),
        prefix: "–".into(),
        notes: format!(
            "always `{}` (the sample's majority: {})",
            LABELS[dev_majority].0,
            counts(&dev_gold)
        ),
    });
    dev_rows.push(Row {
        set: "tweets (dev)".into(),
        method: "encoder zero-shot (MiniLM, COLD_START)".into(),
        result: Ok(metrics(&encoder_zero_shot(&dev_x), &dev_gold)),
        speed: "–".into(),
        prefix: "–".into(),
        notes: String::new(),
    });
    let mut rows: Vec<Vec<Row>> = sets.iter().map(|_| Vec::new()).collect();
    for (s, set) in sets.iter().enumerate() {
        let gold = set.gold();
        let (label, probs) = majority(&gold);
        rows[s].push(Row {
            set: set.name.into(),
            method: "majority label".into(),
            result: Ok(metrics(&probs, &gold)),
            speed: "–".into(),
            prefix: "–".into(),
            notes: format!(
                "always `{}` (the sample's majority: {})",
                LABELS[label].0,
                counts(&gold)
            ),
        });
        rows[s].push(Row {
            set: set.name.into(),
            method: "encoder zero-shot (MiniLM, COLD_START)".into(),
            result: Ok(metrics(&encoder_zero_shot(&set.x), &gold)),
            speed: "–".into(),
            prefix: "–".into(),
            notes: String::new(),
        });
    }

    // The generators, smallest file first (VmHWM only grows).
    let mut present: Vec<(&str, PathBuf, u64)> = Vec::new();
    let mut skipped = Vec::new();
    for file in MODELS {
        let path = gguf_dir.join(file);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => present.push((file, path, m.len())),
            _ => {
                let line = format!("skipped {file}: no file at {}", path.display());
                println!("{line}\n");
                eprintln!("{line}");
                skipped.push(file);
            }
        }
    }
    present.sort_by_key(|(_, _, size)| *size);

    let labels: Vec<LabelSpec> = LABELS
        .iter()
        .map(|(name, description)| LabelSpec {
            name: name.to_string(),
            description: Some(description.to_string()),
        })
        .collect();
    let spec = PromptSpec {
        guidelines: None,
        labels: labels.clone(),
        demonstrations: Vec::new(),
    };
    let system = instructions(None, &labels);
    let mut choices = Vec::new();
    let mut memory = Vec::new();

    for (file, path, size) in &present {
        let short = file.trim_end_matches(".gguf");
        let started = Instant::now();
        let model = match GenerativeModel::load(path, &Device::Cpu) {
            Ok(m) => m,
            Err(e) => {
                let line = format!("skipped {file}: cannot load it: {e}");
                println!("{line}\n");
                eprintln!("{line}");
                continue;
            }
        };
        let load_seconds = started.elapsed().as_secs_f64();
        // Gemma's file has no chat template: its turns are used explicitly.
        let detected = ChatFormat::detect(model.chat_template());
        let explicit = (model.architecture() == "gemma3" && detected == ChatFormat::Plain)
            .then_some(ChatFormat::Gemma);
        let format = explicit.unwrap_or(detected);
        let format_note = match explicit {
            Some(f) => format!("{f:?} (explicit: the file has no chat template)"),
            None => format!("{format:?} (detected)"),
        };
        let options = ScoringOptions {
            format: explicit,
            ..ScoringOptions::default()
        };
        eprintln!(
            "{short}: {} ({} parameters), {format_note}, max {} tokens, loaded in {load_seconds:.1} s",
            model.architecture(),
            model.parameters(),
            model.max_tokens()
        );

        // The one choice, on the development sample: raw or calibrated.
        let dev_inputs: Vec<ItemInput<'_>> = dev_index
            .iter()
            .map(|&i| ItemInput::new(&pool[i].text))
            .collect();
        let dev_run = run(
            &model,
            &spec,
            &dev_inputs,
            &options,
            &format!("{short} dev zero-shot"),
        );
        let calibrated_chosen = match &dev_run {
            Ok(r) => {
                let raw = metrics(&r.raw(), &dev_gold);
                let calibrated = metrics(&r.calibrated(), &dev_gold);
                let chosen = calibrated.accuracy > raw.accuracy;
                let prior = r
                    .scores
                    .content_free
                    .iter()
                    .zip(LABELS)
                    .map(|(p, (n, _))| format!("{n} {p:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                choices.push(format!(
                    "{short}: dev accuracy raw {:.3}, calibrated {:.3} → **{}** (content-free prior: {prior})",
                    raw.accuracy,
                    calibrated.accuracy,
                    if chosen { "calibrated" } else { "raw" }
                ));
                for (name, m, picked) in [("raw", raw, !chosen), ("calibrated", calibrated, chosen)]
                {
                    dev_rows.push(Row {
                        set: "tweets (dev)".into(),
                        method: format!("{short} zero-shot {name}"),
                        result: Ok(m),
                        speed: r.rate(),
                        prefix: r.scores.prefix_tokens.to_string(),
                        notes: format!(
                            "{}{}",
                            if picked { "**chosen**; " } else { "" },
                            if name == "raw" {
                                format!("{} truncated", r.truncated())
                            } else {
                                "same run as raw".to_string()
                            }
                        ),
                    });
                }
                chosen
            }
            Err(e) => {
                choices.push(format!("{short}: the dev run failed ({e}); raw is used"));
                dev_rows.push(Row {
                    set: "tweets (dev)".into(),
                    method: format!("{short} zero-shot"),
                    result: Err(e.clone()),
                    speed: "–".into(),
                    prefix: "–".into(),
                    notes: String::new(),
                });
                false
            }
        };
        let chosen_name = if calibrated_chosen {
            "calibrated"
        } else {
            "raw"
        };
        let mut rates = vec![dev_run
            .as_ref()
            .map_or("–".to_string(), |r| format!("dev zero-shot {}", r.rate()))];

        for (s, set) in sets.iter().enumerate() {
            let gold = set.gold();
            // Zero-shot: one run gives both raw and calibrated probabilities.
            let inputs: Vec<ItemInput<'_>> =
                set.items.iter().map(|i| ItemInput::new(&i.text)).collect();
            match run(
                &model,
                &spec,
                &inputs,
                &options,
                &format!("{short} {} zero-shot", set.name),
            ) {
                Ok(r) => {
                    rates.push(format!("{} zero-shot {}", set.name, r.rate()));
                    rows[s].push(Row {
                        set: set.name.into(),
                        method: format!("{short} zero-shot raw"),
                        result: Ok(metrics(&r.raw(), &gold)),
                        speed: r.rate(),
                        prefix: r.scores.prefix_tokens.to_string(),
                        notes: format!("{}; {} truncated", format_note, r.truncated()),
                    });
                    rows[s].push(Row {
                        set: set.name.into(),
                        method: format!("{short} zero-shot calibrated"),
                        result: Ok(metrics(&r.calibrated(), &gold)),
                        speed: r.rate(),
                        prefix: r.scores.prefix_tokens.to_string(),
                        notes: "same run as raw".into(),
                    });
                }
                Err(e) => rows[s].push(Row {
                    set: set.name.into(),
                    method: format!("{short} zero-shot"),
                    result: Err(e),
                    speed: "–".into(),
                    prefix: "–".into(),
                    notes: String::new(),
                }),
            }

            // Few-shot: the nearest development tweets, the dev-chosen calibration.
            let method = format!("{short} {SHOTS}-shot nearest dev tweets, {chosen_name}");
            let few = n_few.min(set.items.len());
            let few_gold = &gold[..few];
            if few < set.items.len() {
                let (label, probs) = majority(few_gold);
                rows[s].push(Row {
                    set: set.name.into(),
                    method: format!("majority label, first {few} items"),
                    result: Ok(metrics(&probs, few_gold)),
                    speed: "–".into(),
                    prefix: "–".into(),
                    notes: format!(
                        "always `{}`: the subset the few-shot rows score",
                        LABELS[label].0
                    ),
                });
            }
            let demos: Result<Vec<Vec<Demonstration>>, String> = set.items[..few]
                .iter()
                .zip(&set.x[..few])
                .map(|(item, x)| {
                    demonstrations(&model, format, &system, &item.text, x, &pool, &pool_x)
                })
                .collect();
            let demos = match demos {
                Ok(d) => d,
                Err(e) => {
                    rows[s].push(Row {
                        set: set.name.into(),
                        method,
                        result: Err(e),
                        speed: "–".into(),
                        prefix: "–".into(),
                        notes: String::new(),
                    });
                    continue;
                }
            };
            let fewer = demos.iter().filter(|d| d.len() < SHOTS).count();
            let mean_shots =
                demos.iter().map(Vec::len).sum::<usize>() as f64 / demos.len().max(1) as f64;
            let inputs: Vec<ItemInput<'_>> = set.items[..few]
                .iter()
                .zip(&demos)
                .map(|(i, d)| ItemInput {
                    text: &i.text,
                    demonstrations: d,
                })
                .collect();
            match run(
                &model,
                &spec,
                &inputs,
                &options,
                &format!("{short} {} {SHOTS}-shot", set.name),
            ) {
                Ok(r) => {
                    rates.push(format!("{} {SHOTS}-shot {}", set.name, r.rate()));
                    let probs = if calibrated_chosen {
                        r.calibrated()
                    } else {
                        r.raw()
                    };
                    rows[s].push(Row {
                        set: set.name.into(),
                        method,
                        result: Ok(metrics(&probs, few_gold)),
                        speed: r.rate(),
                        prefix: r.scores.prefix_tokens.to_string(),
                        notes: format!(
                            "first {few} items; {mean_shots:.2} demonstrations per item, {fewer} items with fewer than {SHOTS}; {} truncated",
                            r.truncated()
                        ),
                    });
                }
                Err(e) => rows[s].push(Row {
                    set: set.name.into(),
                    method,
                    result: Err(e),
                    speed: "–".into(),
                    prefix: "–".into(),
                    notes: String::new(),
                }),
            }
        }
        // Still loaded: the resident set now, and the high-water mark so far.
        let rss = status_mb("VmRSS");
        let hwm = status_mb("VmHWM");
        eprintln!("{short}: VmRSS {rss:.0} MB, VmHWM {hwm:.0} MB");
        memory.push(format!(
            "| {short} | {} | {:.0} M | {:.0} | {format_note} | {} | {load_seconds:.1} | {} | {rss:.0} | {hwm:.0} |",
            model.architecture(),
            model.parameters() as f64 / 1e6,
            *size as f64 / 1e6,
            model.max_tokens(),
            rates.join("; ")
        ));
        drop(model);
    }

    // The tables.
    println!(
        "## Development (VADER tweets, {} sampled)\n",
        dev_gold.len()
    );
    print_header();
    for row in &dev_rows {
        row.print();
    }
    println!();
    if choices.is_empty() {
        println!("No generator ran: nothing was chosen.\n");
    }
    for c in &choices {
        println!("- {c}");
    }
    println!(
        "\nThe only choice made: raw or calibrated per model, the higher dev accuracy (a tie keeps raw).\n"
    );

    println!("## Held-out (reported only; nothing chosen on them)\n");
    print_header();
    for set_rows in &rows {
        for row in set_rows {
            row.print();
        }
    }
    println!(
        "\nThe majority label is an oracle baseline (it knows each sample's label counts). \
         Calibrated {SHOTS}-shot runs divide by the zero-shot prompt's content-free prior (the \
         scorer scores content-free inputs with shared demonstrations only)."
    );

    println!("\n## Speed and memory (CPU)\n");
    println!(
        "| model | architecture | parameters | file MB | format | max tokens | load s | items/s per run | VmRSS MB (loaded, after its runs) | VmHWM MB (process peak so far) |"
    );
    println!("|---|---|---:|---:|---|---:|---:|---|---:|---:|");
    println!(
        "| (before any generator: MiniLM embeddings of {} tweets and {} held-out items, encoder dropped) | – | – | – | – | – | – | – | {baseline_rss:.0} | {baseline_hwm:.0} |",
        pool.len(),
        sets.iter().map(|s| s.items.len()).sum::<usize>()
    );
    for line in &memory {
        println!("{line}");
    }
    for file in &skipped {
        println!("| {file} | skipped: file missing | | | | | | | | |");
    }
    println!(
        "\nVmHWM is the process-wide high-water mark: each model's figure includes everything \
         before it, so the models run in increasing file size and only a rise over the previous \
         row can be put down to the model. items/s is the wall clock of one score_items call \
         (content-free inputs and the shared prefix included; choosing the demonstrations not)."
    );
}
