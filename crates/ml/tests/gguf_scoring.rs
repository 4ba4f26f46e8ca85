//! Claims about a real generative model, SmolLM2-135M-Instruct quantized to Q4_1 (one GGUF
//! file, looked for in `CONCORD_GGUF_DIR`, else `models/gguf/` at the repository root). Without
//! the file these tests fail: they are what shows that the in-process scorer reads the file,
//! ranks obvious sentences sensibly and gets the same numbers with and without the cached
//! prompt prefix.

use std::ops::ControlFlow;

use concord_ml::generative::{
    score_items, ChatFormat, Demonstration, GenerativeModel, ItemInput, LabelSpec, PromptSpec,
    Scores, ScoringOptions,
};
use concord_ml::{Device, MlError};

use crate::gguf_files::smollm2;

fn sentiment(labels: &[&str]) -> PromptSpec {
    PromptSpec {
        guidelines: Some("Judge the feeling the writer expresses.".to_string()),
        labels: labels.iter().map(|l| LabelSpec::new(*l)).collect(),
        demonstrations: Vec::new(),
    }
}

fn score(
    model: &GenerativeModel,
    spec: &PromptSpec,
    items: &[ItemInput<'_>],
    options: &ScoringOptions,
) -> Scores {
    score_items(model, spec, items, options, &mut |_, _| {
        ControlFlow::Continue(())
    })
    .unwrap()
}

#[test]
fn reads_the_gguf_metadata() {
    let model = smollm2();
    assert_eq!(model.architecture(), "llama");
    assert_eq!(model.context_length(), Some(8192));
    // candle's quantized llama has RoPE tables for 4096 positions.
    assert_eq!(model.max_tokens(), 4096);
    assert!(
        (130_000_000..140_000_000).contains(&model.parameters()),
        "{} parameters",
        model.parameters()
    );
    assert!(model.reuses_prefix());
    assert_eq!(
        ChatFormat::detect(model.chat_template()),
        ChatFormat::ChatMl { think: false }
    );
}

#[test]
fn obvious_sentiment_is_ranked_the_right_way() {
    let model = smollm2();
    let spec = sentiment(&["positive", "negative"]);
    let items = [
        ItemInput::new("I love this, it is wonderful"),
        ItemInput::new("This is terrible, I hate it"),
    ];
    let scores = score(&model, &spec, &items, &ScoringOptions::default());
    assert_eq!(scores.format, ChatFormat::ChatMl { think: false });
    assert!(
        scores.prefix_tokens > 10,
        "{} prefix tokens",
        scores.prefix_tokens
    );
    assert_eq!(scores.items.len(), 2);
    for item in &scores.items {
        assert_eq!(item.log_probs.len(), 2);
        assert!(item.log_probs.iter().all(|l| l.is_finite() && *l <= 0.0));
        for p in [&item.probabilities, &item.calibrated] {
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{p:?}");
            assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        assert!(!item.truncated);
    }
    assert!((scores.content_free.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    // Relative, which a 135M model can be trusted with: the happy sentence is more positive
    // than the angry one, before and after calibration.
    let (happy, angry) = (&scores.items[0], &scores.items[1]);
    assert!(
        happy.probabilities[0] > angry.probabilities[0],
        "p(positive): {} for the happy sentence, {} for the angry one",
        happy.probabilities[0],
        angry.probabilities[0]
    );
    assert!(happy.calibrated[0] > angry.calibrated[0]);
}

/// The KV cache of the shared prefix, continued per item on clones, gives what running each
/// whole prompt from the start gives: chat and plain layouts, shared and per-item
/// demonstrations, labels of several tokens sharing their first ones.
///
/// Exact only in exact arithmetic: candle's quantized matmuls quantize the activations per block
/// and their kernels take different paths for different row counts, so the same prompt fed in
/// two steps or one differs by up to ~0.2 nats with Q4_1 weights (llama.cpp's own log-probs of
/// the same tokens differ from candle's by as much). The weights are dequantized to f32 here
/// (`CANDLE_DEQUANTIZE_ALL`, read when a model loads), which leaves only float rounding, so a
/// real caching error (a wrong position, mask or cache) cannot hide in the tolerance. Other
/// tests of this binary that load a model meanwhile may load it dequantized too; none of them
/// depends on the quantized arithmetic.
#[test]
fn the_cached_prefix_gives_the_from_scratch_log_probs() {
    std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1");
    let model = smollm2();
    let mut spec = sentiment(&["very good", "very bad", "mixed feelings"]);
    spec.demonstrations = vec![Demonstration {
        text: "The soup was cold and the waiter rude.".to_string(),
        label: 1,
    }];
    let own = [Demonstration {
        text: "Lovely staff, great view.".to_string(),
        label: 0,
    }];
    let items = [
        ItemInput::new("I love this, it is wonderful"),
        ItemInput {
            text: "This is terrible, I hate it",
            demonstrations: &own,
        },
    ];
    for format in [ChatFormat::ChatMl { think: false }, ChatFormat::Plain] {
        let cached = ScoringOptions {
            format: Some(format),
            ..ScoringOptions::default()
        };
        let scratch = ScoringOptions {
            reuse_prefix: false,
            ..cached.clone()
        };
        let a = score(&model, &spec, &items, &cached);
        let b = score(&model, &spec, &items, &scratch);
        assert!(a.prefix_tokens > 0, "{format:?}");
        assert_eq!(b.prefix_tokens, 0);
        for (x, y) in a.items.iter().zip(&b.items) {
            for (l, m) in x.log_probs.iter().zip(&y.log_probs) {
                assert!(
                    (l - m).abs() < 1e-3,
                    "{format:?}: {l} cached, {m} from scratch"
                );
            }
        }
        for (p, q) in a.content_free.iter().zip(&b.content_free) {
            assert!(
                (p - q).abs() < 1e-3,
                "{format:?}: {p} cached, {q} from scratch"
            );
        }
    }
}

#[test]
fn cancelling_stops_with_cancelled() {
    let model = smollm2();
    let spec = sentiment(&["positive", "negative"]);
    let items = [ItemInput::new("fine"), ItemInput::new("bad")];
    let mut calls = Vec::new();
    let result = score_items(
        &model,
        &spec,
        &items,
        &ScoringOptions {
            content_free: Vec::new(),
            ..ScoringOptions::default()
        },
        &mut |done, total| {
            calls.push((done, total));
            if done >= 1 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    assert!(matches!(result, Err(MlError::Cancelled)));
    assert_eq!(calls, vec![(0, 2), (1, 2)]);
}

#[test]
fn unknown_architectures_are_named() {
    // A GGUF header with only `general.architecture = "mamba"`: refused by name, listing
    // what is supported.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mamba.gguf");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(b"GGUF");
    bytes.extend_from_slice(&3u32.to_le_bytes()); // version
    bytes.extend_from_slice(&0u64.to_le_bytes()); // tensors
    bytes.extend_from_slice(&1u64.to_le_bytes()); // metadata entries
    let key = b"general.architecture";
    bytes.extend_from_slice(&(key.len() as u64).to_le_bytes());
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(&8u32.to_le_bytes()); // string
    let value = b"mamba";
    bytes.extend_from_slice(&(value.len() as u64).to_le_bytes());
    bytes.extend_from_slice(value);
    std::fs::write(&path, bytes).unwrap();
    match GenerativeModel::load(&path, &Device::Cpu) {
        Err(MlError::Config(message)) => {
            assert!(message.contains("mamba"), "{message}");
            assert!(
                message.contains("llama, qwen2, qwen3, phi3, gemma3"),
                "{message}"
            );
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}
