//! The classification head beside scikit-learn, on frozen all-MiniLM-L6-v2 embeddings.
//!
//! For 50, 100 and 300 random training labels (several seeds) on each set, this trains
//! (a) the old head (`LinearHead::train`, AdamW with its default settings), (b) `train_head_cv`
//! (logistic regression, C chosen by cross-validation on the training labels) and variants of
//! it, (c) `train_logistic` at C = 1 (scikit-learn's default, to check that both solvers reach
//! the same optimum); it tests each on every item of the set not used for training and writes
//! the splits, the embeddings and its accuracies under `target/tmp/head_vs_sklearn/`, where
//! `scripts/bench/head_vs_sklearn.py` adds scikit-learn's `LogisticRegression()` and
//! `LogisticRegressionCV()` on the same splits and prints one table.
//!
//! Development: the half of `../shared/data/vader_tweets.jsonl` (`label3`) and of
//! `../shared/data/spam_dev.jsonl` whose SHA-256(id) starts with an even byte; the variants of
//! (b) are compared there only (`--dev-only` stops after them). Report: the other halves and
//! `target/heldout/{amazon,movie,nyt}.jsonl`, only printed.
//!
//! `cargo run --release -p concord-ml --example head_vs_sklearn [-- --dev-only] [--seeds N]`,
//! then `python3 scripts/bench/head_vs_sklearn.py`. Embeddings are cached as raw little-endian
//! f32 rows (the same files as the `zero_shot_heldout` example, which are reused when present).

mod bench_data;

use std::path::PathBuf;
use std::time::Instant;

use bench_data::{
    accuracy, embed_cached, f32_bytes, in_half, label_indices, majority, parts, read_jsonl,
    write_atomic,
};
use concord_ml::{
    train_head_cv, train_logistic, CvHeadParams, CvScoring, Device, Encoder, HeadParams,
    LinearHead, SplitMix64,
};
use serde::Serialize;

const SENTIMENT: [&str; 3] = ["positive", "negative", "neutral"];
const SPAM: [&str; 2] = ["spam", "ham"];
const LABEL_COUNTS: [usize; 3] = [50, 100, 300];

struct Set {
    name: String,
    development: bool,
    classes: usize,
    x: Vec<Vec<f32>>,
    y: Vec<usize>,
}

#[derive(Serialize)]
struct SetFile {
    name: String,
    development: bool,
    classes: usize,
    rows: usize,
    dimension: usize,
    embeddings: String,
    labels: Vec<usize>,
}

#[derive(Serialize)]
struct Split {
    set: String,
    labels: usize,
    seed: u64,
    train: Vec<usize>,
    /// Accuracy of each Rust method on the test part (every item of the set not in `train`).
    rust: Vec<(String, f64)>,
    /// Most common label's share of the test part.
    majority: f64,
}

/// The methods compared: a name and how it trains. The CV variants differ in scoring, class
/// balancing and folds; the default is the first.
fn cv_variants() -> Vec<(&'static str, CvHeadParams)> {
    let base = CvHeadParams::default();
    vec![
        ("cv-default", base.clone()),
        (
            "cv-accuracy",
            CvHeadParams {
                scoring: CvScoring::Accuracy,
                ..base.clone()
            },
        ),
        (
            "cv-balanced",
            CvHeadParams {
                balance_classes: true,
                ..base.clone()
            },
        ),
        (
            "cv-3-folds",
            CvHeadParams {
                folds: 3,
                ..base.clone()
            },
        ),
        ("cv-10-folds", CvHeadParams { folds: 10, ..base }),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dev_only = args.iter().any(|a| a == "--dev-only");
    let seeds: u64 = args
        .iter()
        .position(|a| a == "--seeds")
        .and_then(|i| args.get(i + 1))
        .map_or(5, |s| s.parse().expect("--seeds N"));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = root.join("../shared/data");
    let out = root.join("target/tmp/head_vs_sklearn");
    std::fs::create_dir_all(&out).expect("output folder");
    let caches = vec![out.clone(), root.join("target/tmp/zero_shot_heldout")];
    let encoder = Encoder::load(&root.join("models/all-MiniLM-L6-v2"), &Device::Cpu)
        .expect("model (run scripts/setup.sh)");

    let sources: [(&str, PathBuf, &str, &[&str], bool); 5] = [
        (
            "tweets",
            shared.join("vader_tweets.jsonl"),
            "label3",
            &SENTIMENT,
            true,
        ),
        ("spam", shared.join("spam_dev.jsonl"), "label", &SPAM, true),
        (
            "amazon",
            root.join("target/heldout/amazon.jsonl"),
            "label",
            &SENTIMENT,
            false,
        ),
        (
            "movie",
            root.join("target/heldout/movie.jsonl"),
            "label",
            &SENTIMENT,
            false,
        ),
        (
            "nyt",
            root.join("target/heldout/nyt.jsonl"),
            "label",
            &SENTIMENT,
            false,
        ),
    ];
    let mut sets = Vec::new();
    for (name, path, field, labels, split) in sources {
        if dev_only && !split {
            continue;
        }
        let items = read_jsonl(&path, field);
        let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
        let x = embed_cached(&encoder, name, &texts, &caches);
        let y = label_indices(name, &items, labels);
        for (part, dev) in parts(name, split) {
            if dev_only && dev == Some(false) {
                continue;
            }
            let keep = in_half(&items, dev);
            sets.push(Set {
                name: part,
                development: dev == Some(true),
                classes: labels.len(),
                x: keep.iter().map(|&i| x[i].clone()).collect(),
                y: keep.iter().map(|&i| y[i]).collect(),
            });
        }
    }

    let variants = cv_variants();
    let mut set_files = Vec::new();
    let mut splits = Vec::new();
    // (method, labels) → accuracies and seconds, per set.
    for set in &sets {
        let file = format!("{}.f32", set.name);
        write_atomic(&out.join(&file), &f32_bytes(&set.x));
        set_files.push(SetFile {
            name: set.name.clone(),
            development: set.development,
            classes: set.classes,
            rows: set.x.len(),
            dimension: encoder.dimension(),
            embeddings: file,
            labels: set.y.clone(),
        });
        let mut chosen_c: Vec<f64> = Vec::new();
        for &labels in &LABEL_COUNTS {
            let mut table: Vec<(String, Vec<f64>, f64)> = Vec::new();
            let record =
                |table: &mut Vec<(String, Vec<f64>, f64)>, m: &str, a: f64, s: f64| match table
                    .iter_mut()
                    .find(|(n, _, _)| n == m)
                {
                    Some((_, v, t)) => {
                        v.push(a);
                        *t += s;
                    }
                    None => table.push((m.to_string(), vec![a], s)),
                };
            let mut majorities = Vec::new();
            for seed in 0..seeds {
                let mut order: Vec<usize> = (0..set.y.len()).collect();
                SplitMix64::new(1000 + seed).shuffle(&mut order);
                let (train, test) = order.split_at(labels.min(set.y.len()));
                let tx: Vec<Vec<f32>> = train.iter().map(|&i| set.x[i].clone()).collect();
                let ty: Vec<usize> = train.iter().map(|&i| set.y[i]).collect();
                let ex: Vec<Vec<f32>> = test.iter().map(|&i| set.x[i].clone()).collect();
                let ey: Vec<usize> = test.iter().map(|&i| set.y[i]).collect();
                let mut rust = Vec::new();
                let started = Instant::now();
                let old =
                    LinearHead::train(&tx, &ty, set.classes, &HeadParams::default(), &Device::Cpu)
                        .expect("old head");
                let a = accuracy(&old, &ex, &ey);
                record(&mut table, "old-head", a, started.elapsed().as_secs_f64());
                rust.push(("old-head".to_string(), a));
                let started = Instant::now();
                let (c1, _, converged) =
                    train_logistic(&tx, &ty, set.classes, 1.0, &CvHeadParams::default())
                        .expect("logistic");
                assert!(converged, "C = 1 did not converge on {}", set.name);
                let a = accuracy(&c1, &ex, &ey);
                record(
                    &mut table,
                    "logistic-C1",
                    a,
                    started.elapsed().as_secs_f64(),
                );
                rust.push(("logistic-C1".to_string(), a));
                for (name, params) in &variants {
                    let started = Instant::now();
                    let (head, report) =
                        train_head_cv(&tx, &ty, set.classes, params).expect("cv head");
                    let a = accuracy(&head, &ex, &ey);
                    record(&mut table, name, a, started.elapsed().as_secs_f64());
                    rust.push((name.to_string(), a));
                    if *name == "cv-default" {
                        chosen_c.push(report.chosen_c);
                    }
                }
                let m = majority(&ey, set.classes);
                majorities.push(m);
                splits.push(Split {
                    set: set.name.clone(),
                    labels,
                    seed,
                    train: train.to_vec(),
                    rust,
                    majority: m,
                });
            }
            println!(
                "{:<14} {:>4} labels  majority {:.3}",
                set.name,
                labels,
                majorities.iter().sum::<f64>() / majorities.len() as f64
            );
            for (method, accs, seconds) in &table {
                let mean = accs.iter().sum::<f64>() / accs.len() as f64;
                let sd = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>()
                    / (accs.len().max(2) - 1) as f64)
                    .sqrt();
                println!(
                    "    {method:<14} {mean:.3} ± {sd:.3}   {:>7.1} ms/train",
                    1000.0 * seconds / accs.len() as f64
                );
            }
        }
        println!("    cv-default chose C = {chosen_c:?}");
    }
    let manifest = serde_json::json!({ "sets": set_files, "splits": splits });
    write_atomic(
        &out.join("splits.json"),
        serde_json::to_string(&manifest)
            .expect("manifest")
            .as_bytes(),
    );
    println!("wrote {}", out.join("splits.json").display());
}
