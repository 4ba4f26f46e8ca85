//! Whether all-MiniLM-L6-v2 can ship with f16 weights: embeds real texts with the f32 weights
//! and with the same weights rounded to f16 (computing in f32 either way, as an embedded f16
//! copy would be loaded) and reports the smallest cosine between the two embeddings of a text.
//! The binary embeds f16 only if every text keeps a cosine of at least 0.9999 (issue 10).
//!
//! `cargo bench -p concord-ml --bench f16_weights [-- TEXTS_PER_FILE]` (needs the model from
//! `scripts/setup.sh` and `../shared/data`; 200 VADER tweets and 200 SpamAssassin emails by
//! default).

mod common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use concord_ml::{cosine, Encoder, ModelFiles};

/// The fidelity issue 10 asks of f16 weights, for every embedding.
const REQUIRED_COSINE: f32 = 0.9999;

fn read(dir: &std::path::Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e} (run scripts/setup.sh)"))
}

fn main() {
    let per_file = common::number_arg(200);
    let dir = common::model_dir();
    let (config, weights, tokenizer, sentence) = (
        read(&dir, "config.json"),
        read(&dir, "model.safetensors"),
        read(&dir, "tokenizer.json"),
        read(&dir, "sentence_bert_config.json"),
    );
    // The f16 copy, written as safetensors the way an embedded file would be.
    let tensors = candle_core::safetensors::load_buffer(&weights, &Device::Cpu).expect("weights");
    let half: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(name, t)| {
            let t = if t.dtype() == DType::F32 {
                t.to_dtype(DType::F16).expect("to f16")
            } else {
                t
            };
            (name, t)
        })
        .collect();
    let tmp = tempfile::tempdir().expect("temp dir");
    let half_path = tmp.path().join("model-f16.safetensors");
    candle_core::safetensors::save(&half, &half_path).expect("write f16");
    let half_weights = std::fs::read(&half_path).expect("read f16");

    let files = ModelFiles {
        config: &config,
        weights: &weights,
        tokenizer: &tokenizer,
        sentence_config: Some(&sentence),
    };
    let full = Encoder::load_from_memory(&files, None, &Device::Cpu).expect("f32");
    let rounded = Encoder::load_from_memory(
        &ModelFiles {
            weights: &half_weights,
            ..files
        },
        None,
        &Device::Cpu,
    )
    .expect("f16");

    println!(
        "weights: f32 {} bytes, f16 {} bytes",
        weights.len(),
        half_weights.len()
    );
    let mut worst_overall = f32::INFINITY;
    for file in ["vader_tweets.jsonl", "spam_dev.jsonl"] {
        let texts = common::texts(file, per_file);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let a = full.embed(&refs, 32, &mut |_| {}).expect("embed f32");
        let b = rounded.embed(&refs, 32, &mut |_| {}).expect("embed f16");
        let mut sims: Vec<f32> = a.iter().zip(&b).map(|(x, y)| cosine(x, y)).collect();
        sims.sort_by(f32::total_cmp);
        let worst = sims[0];
        let mean = sims.iter().sum::<f32>() / sims.len() as f32;
        worst_overall = worst_overall.min(worst);
        let below = sims.iter().filter(|&&s| s < REQUIRED_COSINE).count();
        println!(
            "{file}: {} texts, cosine f16 vs f32: min {worst:.7}, mean {mean:.7}, {below} below {REQUIRED_COSINE}",
            sims.len()
        );
    }
    println!(
        "smallest cosine {worst_overall:.7}: f16 weights {}",
        if worst_overall >= REQUIRED_COSINE {
            "keep every embedding within the bound"
        } else {
            "do not: the binary embeds f32"
        }
    );
}
