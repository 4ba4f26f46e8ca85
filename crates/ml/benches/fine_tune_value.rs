//! What full fine-tuning buys over a head on frozen embeddings, on the VADER tweets (label3):
//! the same random labelled subsets, the same held-out test set, accuracy and macro-F1 of
//! (a) a softmax head on MiniLM's frozen embeddings and (b) MiniLM fine-tuned with a head
//! (Concord's two trainers, default parameters), plus the time each took.
//!
//! `cargo bench -p concord-ml --bench fine_tune_value [-- SIZES…]` (default 100 300; needs the
//! model from `scripts/setup.sh` and `../shared/data`).

use std::path::PathBuf;
use std::time::Instant;

use concord_ml::{
    evaluate, fine_tune, Device, Encoder, FineTuneParams, HeadParams, LinearHead, SplitMix64,
};

const LABELS: [&str; 3] = ["negative", "neutral", "positive"];
const TEST: usize = 1000;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100, 300]
    } else {
        sizes
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("../../models/all-MiniLM-L6-v2");
    let data = root.join("../../../shared/data/vader_tweets.jsonl");
    let body = std::fs::read_to_string(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    let mut rows: Vec<(String, usize)> = body
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let text = v.get("text")?.as_str()?.to_string();
            let name = v.get("label3")?.as_str()?;
            let label = LABELS.iter().position(|l| *l == name)?;
            Some((text, label))
        })
        .collect();
    let mut rng = SplitMix64::new(7);
    rng.shuffle(&mut rows);
    let (test, pool) = rows.split_at(TEST.min(rows.len() / 2));
    let test_texts: Vec<&str> = test.iter().map(|(t, _)| t.as_str()).collect();
    let test_y: Vec<usize> = test.iter().map(|(_, y)| *y).collect();
    let base = Encoder::load(&model, &Device::Cpu).expect("model (run scripts/setup.sh)");
    let test_frozen = base.embed(&test_texts, 32, &mut |_| {}).expect("embed");
    println!(
        "VADER tweets, {} test items, {} in the labelled pool\n",
        test.len(),
        pool.len()
    );
    println!("| labels | trainer | accuracy | macro-F1 | seconds |");
    println!("|---|---|---|---|---|");
    for &n in &sizes {
        let train = &pool[..n.min(pool.len())];
        let texts: Vec<&str> = train.iter().map(|(t, _)| t.as_str()).collect();
        let y: Vec<usize> = train.iter().map(|(_, l)| *l).collect();

        let start = Instant::now();
        let x = base.embed(&texts, 32, &mut |_| {}).expect("embed");
        let head = LinearHead::train(&x, &y, LABELS.len(), &HeadParams::default(), &Device::Cpu)
            .expect("head");
        let seconds = start.elapsed().as_secs_f64();
        let e = evaluate(&head.predict(&test_frozen), &test_y, LABELS.len());
        println!(
            "| {n} | head on frozen embeddings | {:.3} | {:.3} | {seconds:.1} |",
            e.accuracy, e.macro_f1
        );

        let start = Instant::now();
        let tuned = Encoder::load(&model, &Device::Cpu).expect("model");
        let tokens = tuned.tokenize(&texts).expect("tokenize");
        let (head, _) = fine_tune(
            &tuned,
            &tokens,
            &y,
            LABELS.len(),
            &FineTuneParams::default(),
            &mut |_, _| std::ops::ControlFlow::Continue(()),
        )
        .expect("fine-tune");
        let trained = start.elapsed().as_secs_f64();
        let test_tuned = tuned.embed(&test_texts, 32, &mut |_| {}).expect("embed");
        let e = evaluate(&head.predict(&test_tuned), &test_y, LABELS.len());
        println!(
            "| {n} | fine-tuned (3 epochs) | {:.3} | {:.3} | {trained:.1} (+{:.1} re-embedding the test set) |",
            e.accuracy,
            e.macro_f1,
            start.elapsed().as_secs_f64() - trained
        );
    }
}
