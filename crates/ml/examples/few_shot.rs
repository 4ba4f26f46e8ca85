//! Few labels: SetFit-style contrastive tuning of all-MiniLM-L6-v2 (`concord_ml::setfit`)
//! against the cross-validated logistic head on frozen embeddings (`train_head_cv`), both
//! trained on the same 50 or 100 random labels and tested on the same items.
//!
//! Sets: the development half of `../shared/data/vader_tweets.jsonl` (SHA-256(id) starts with
//! an even byte; the only set settings may be looked at for), its other half and
//! `target/heldout/{amazon,movie,nyt}.jsonl`, reported only. The spam emails are left out:
//! tuning on texts of up to 256 tokens is too slow for two shared CPU cores. To keep a run
//! small, each set is cut to a seeded sample of `--test` items (default 1,000) for testing, and
//! the training labels are drawn from the rest.
//!
//! `cargo run --release -p concord-ml --example few_shot [-- --seeds 2 --labels 50,100
//! --test 1000 --sets tweets-dev,amazon --epochs 2]`. Frozen embeddings are read from the
//! `head_vs_sklearn` / `zero_shot_heldout` caches under `target/tmp/` when present.

use std::collections::HashMap;
use std::ops::ControlFlow;
mod bench_data;

use std::path::PathBuf;
use std::time::Instant;

use bench_data::{accuracy, embed_cached, in_half, label_indices, majority, parts, read_jsonl};
use concord_ml::{setfit, train_head_cv, CvHeadParams, Device, Encoder, SetFitParams, SplitMix64};

const SENTIMENT: [&str; 3] = ["positive", "negative", "neutral"];

/// One training run's test accuracies and the test part's majority-label rate.
struct Run {
    frozen: f64,
    setfit: f64,
    majority: f64,
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seeds: u64 = arg(&args, "--seeds").map_or(2, |s| s.parse().expect("--seeds N"));
    let test_size: usize = arg(&args, "--test").map_or(1000, |s| s.parse().expect("--test N"));
    let labels: Vec<usize> = arg(&args, "--labels")
        .unwrap_or("50,100")
        .split(',')
        .map(|s| s.parse().expect("--labels 50,100"))
        .collect();
    let wanted: Option<Vec<&str>> = arg(&args, "--sets").map(|s| s.split(',').collect());
    let mut params = SetFitParams::default();
    if let Some(e) = arg(&args, "--epochs") {
        params.epochs = e.parse().expect("--epochs N");
    }
    if let Some(b) = arg(&args, "--batch") {
        params.batch_size = b.parse().expect("--batch N");
    }
    if let Some(lr) = arg(&args, "--lr") {
        params.learning_rate = lr.parse().expect("--lr X");
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model = root.join("models/all-MiniLM-L6-v2");
    let caches = vec![
        root.join("target/tmp/head_vs_sklearn"),
        root.join("target/tmp/zero_shot_heldout"),
    ];
    std::fs::create_dir_all(&caches[0]).expect("cache folder");
    let frozen = Encoder::load(&model, &Device::Cpu).expect("model (run scripts/setup.sh)");
    let shared = root.join("../shared/data");
    let sources: [(&str, PathBuf, &str, bool); 4] = [
        ("tweets", shared.join("vader_tweets.jsonl"), "label3", true),
        (
            "amazon",
            root.join("target/heldout/amazon.jsonl"),
            "label",
            false,
        ),
        (
            "movie",
            root.join("target/heldout/movie.jsonl"),
            "label",
            false,
        ),
        ("nyt", root.join("target/heldout/nyt.jsonl"), "label", false),
    ];
    println!(
        "setfit: {} epochs, batch {}, learning rate {}; test {} items per set",
        params.epochs, params.batch_size, params.learning_rate, test_size
    );
    let mut summary: HashMap<(String, usize), Vec<Run>> = HashMap::new();
    let mut order_of_keys = Vec::new();
    for (name, path, field, split) in sources {
        let items = read_jsonl(&path, field);
        let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
        let x = embed_cached(&frozen, name, &texts, &caches);
        let y = label_indices(name, &items, &SENTIMENT);
        for (part, dev) in parts(name, split) {
            if wanted.as_ref().is_some_and(|w| !w.contains(&part.as_str())) {
                continue;
            }
            let mut pool = in_half(&items, dev);
            SplitMix64::new(7).shuffle(&mut pool);
            let (test, rest) = pool.split_at(test_size.min(pool.len() / 2));
            let test_y: Vec<usize> = test.iter().map(|&i| y[i]).collect();
            let test_x: Vec<Vec<f32>> = test.iter().map(|&i| x[i].clone()).collect();
            let test_texts: Vec<&str> = test.iter().map(|&i| texts[i]).collect();
            let majority = majority(&test_y, SENTIMENT.len());
            for &n in &labels {
                for seed in 0..seeds {
                    let mut rest = rest.to_vec();
                    SplitMix64::new(100 + seed).shuffle(&mut rest);
                    let train = &rest[..n.min(rest.len())];
                    let train_y: Vec<usize> = train.iter().map(|&i| y[i]).collect();
                    let train_x: Vec<Vec<f32>> = train.iter().map(|&i| x[i].clone()).collect();
                    let train_texts: Vec<&str> = train.iter().map(|&i| texts[i]).collect();
                    let (head, frozen_report) =
                        train_head_cv(&train_x, &train_y, 3, &CvHeadParams::default())
                            .expect("frozen head");
                    let frozen_acc = accuracy(&head, &test_x, &test_y);
                    let started = Instant::now();
                    // A fresh copy for each run: tuning changes the encoder's weights.
                    let tuned = Encoder::load(&model, &Device::Cpu).expect("model");
                    let run = SetFitParams {
                        seed: 17 + seed,
                        ..params.clone()
                    };
                    let outcome = setfit(&tuned, &train_texts, &train_y, 3, &run, &mut |_, _| {
                        ControlFlow::Continue(())
                    })
                    .expect("setfit");
                    let tuning_s = started.elapsed().as_secs_f64();
                    let tuned_x = tuned
                        .embed(&test_texts, 32, &mut |_| {})
                        .expect("embedding with the tuned encoder");
                    let setfit_acc = accuracy(&outcome.head, &tuned_x, &test_y);
                    println!(
                        "{part:<13} {n:>4} labels seed {seed}: frozen+cv {frozen_acc:.3}  setfit {setfit_acc:.3}  (majority {majority:.3}; tuning {tuning_s:.0} s, losses {:?}, C frozen {} setfit {})",
                        outcome.epoch_losses, frozen_report.chosen_c, outcome.report.chosen_c
                    );
                    let key = (part.clone(), n);
                    if !summary.contains_key(&key) {
                        order_of_keys.push(key.clone());
                    }
                    summary.entry(key).or_default().push(Run {
                        frozen: frozen_acc,
                        setfit: setfit_acc,
                        majority,
                    });
                }
            }
        }
    }
    println!(
        "\n{:<13} {:>6} {:>10} {:>10} {:>10}",
        "set", "labels", "majority", "frozen+cv", "setfit"
    );
    for key in order_of_keys {
        let runs = &summary[&key];
        let mean = |f: fn(&Run) -> f64| runs.iter().map(f).sum::<f64>() / runs.len() as f64;
        println!(
            "{:<13} {:>6} {:>10.3} {:>10.3} {:>10.3}",
            key.0,
            key.1,
            mean(|r| r.majority),
            mean(|r| r.frozen),
            mean(|r| r.setfit)
        );
    }
}
