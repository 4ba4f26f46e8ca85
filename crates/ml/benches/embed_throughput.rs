//! Embedding throughput of the candle encoder on real text, for batch sizes 1, 8, 32 and 128,
//! plus the time to train a classification head on 10,000 embeddings and the peak memory.
//!
//! `cargo bench -p concord-ml --bench embed_throughput [-- ITEMS]` (needs the model from
//! `scripts/setup.sh` and `../shared/data`). Short texts are VADER tweets, long ones
//! SpamAssassin emails; each batch size embeds the same ITEMS texts (default 256), sorted by
//! length as the encoder does. GFLOP/s is the arithmetic the model needs per second, to hold
//! against the machine's peak (two 2.5 GHz cores with AVX2 FMA: about 80 GFLOP/s here).

mod common;

use std::time::Instant;

use concord_ml::{Device, Encoder, HeadParams, LinearHead};

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let items = common::number_arg(256);
    let model = common::model_dir();
    let encoder = Encoder::load(&model, &Device::Cpu).expect("model (run scripts/setup.sh)");
    let config = encoder.bert().config().clone();
    // Multiply-adds × 2 per item: the six projections per token, plus attention's two
    // token × token products; what the CPU's fused multiply-add units must get through.
    let flops = |tokens: &[Vec<u32>]| -> f64 {
        let (h, i, l) = (
            config.hidden_size as f64,
            config.intermediate_size as f64,
            config.num_hidden_layers as f64,
        );
        tokens
            .iter()
            .map(|t| {
                let t = t.len() as f64;
                2.0 * l * (t * (4.0 * h * h + 2.0 * h * i) + 2.0 * t * t * h)
            })
            .sum()
    };
    println!("| texts | mean tokens | batch | items/s | GFLOP/s |");
    println!("|---|---|---|---|---|");
    let mut tweet_embeddings = Vec::new();
    // CONCORD_BENCH_EMBEDDINGS=FILE writes the embeddings (batch 8) as JSON, for
    // scripts/bench-reference.sh to compare with sentence-transformers'.
    let mut dump = serde_json::Map::new();
    for (name, file) in [
        ("tweets", "vader_tweets.jsonl"),
        ("emails", "spam_dev.jsonl"),
    ] {
        let t = common::texts(file, items);
        let refs: Vec<&str> = t.iter().map(String::as_str).collect();
        let tokens = encoder.tokenize(&refs).expect("tokenize");
        let mean = tokens.iter().map(Vec::len).sum::<usize>() as f64 / tokens.len() as f64;
        // Warm-up: first-touch allocations and thread pools.
        encoder
            .embed_tokens(&tokens[..8.min(tokens.len())], 8, &mut |_| {})
            .expect("embed");
        for batch in [1, 8, 32, 128] {
            let start = Instant::now();
            let out = encoder
                .embed_tokens(&tokens, batch, &mut |_| {})
                .expect("embed");
            let seconds = start.elapsed().as_secs_f64();
            let rate = out.len() as f64 / seconds;
            let gflops = flops(&tokens) / seconds / 1e9;
            println!("| {name} | {mean:.0} | {batch} | {rate:.1} | {gflops:.1} |");
            if batch == 8 {
                dump.insert(name.into(), serde_json::json!(out));
            }
            if name == "tweets" {
                tweet_embeddings = out;
            }
        }
    }
    if let Some(path) = std::env::var_os("CONCORD_BENCH_EMBEDDINGS") {
        std::fs::write(&path, serde_json::Value::Object(dump).to_string())
            .expect("write embeddings");
    }
    // Head training on 10,000 items: the tweet embeddings repeated, three classes.
    let x: Vec<Vec<f32>> = tweet_embeddings
        .iter()
        .cycle()
        .take(10_000)
        .cloned()
        .collect();
    let y: Vec<usize> = (0..x.len()).map(|i| (i * 7 + i / 3) % 3).collect();
    let start = Instant::now();
    let head = LinearHead::train(&x, &y, 3, &HeadParams::default(), &Device::Cpu).expect("train");
    println!(
        "\nhead training: 10,000 items × {} dimensions, {} epochs: {:.2} s",
        head.dimension,
        HeadParams::default().epochs,
        start.elapsed().as_secs_f64()
    );
    println!("peak RSS: {:.0} MB", peak_rss_mb());
}
