//! Plumbing on a tiny BERT with fixed-seed random weights and a word-level tokenizer: nothing
//! here claims anything about a real model's quality (see `minilm.rs` for that).

use std::str::FromStr;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use std::ops::ControlFlow;

use concord_ml::{fine_tune, reinitialize, var_builder, BertConfig, Encoder, FineTuneParams, Mode};
use tokenizers::Tokenizer;

const WORDS: &[&str] = &[
    "[PAD]", "[CLS]", "[SEP]", "[UNK]", "good", "great", "fine", "bad", "awful", "poor", "the",
    "film", "was", "food", "really", "not", "very", "a", "day", "service",
];

fn tokenizer() -> Tokenizer {
    let vocab: serde_json::Map<String, serde_json::Value> = WORDS
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::Value::from(i)))
        .collect();
    let special =
        |name: &str, id: usize| serde_json::json!({ "id": name, "ids": [id], "tokens": [name] });
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": { "type": "Lowercase" },
        "pre_tokenizer": { "type": "Whitespace" },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                { "SpecialToken": { "id": "[CLS]", "type_id": 0 } },
                { "Sequence": { "id": "A", "type_id": 0 } },
                { "SpecialToken": { "id": "[SEP]", "type_id": 0 } }
            ],
            "pair": [
                { "SpecialToken": { "id": "[CLS]", "type_id": 0 } },
                { "Sequence": { "id": "A", "type_id": 0 } },
                { "SpecialToken": { "id": "[SEP]", "type_id": 0 } },
                { "Sequence": { "id": "B", "type_id": 1 } },
                { "SpecialToken": { "id": "[SEP]", "type_id": 1 } }
            ],
            "special_tokens": { "[CLS]": special("[CLS]", 1), "[SEP]": special("[SEP]", 2) }
        },
        "decoder": null,
        "model": { "type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]" }
    });
    Tokenizer::from_str(&json.to_string()).expect("tiny tokenizer")
}

fn config() -> BertConfig {
    serde_json::from_value(serde_json::json!({
        "vocab_size": WORDS.len(),
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "hidden_act": "gelu",
        "max_position_embeddings": 32,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12
    }))
    .unwrap()
}

/// A tiny encoder with weights drawn from a fixed seed.
fn tiny() -> Encoder {
    let varmap = VarMap::new();
    let enc = Encoder::from_parts(
        &config(),
        varmap,
        tokenizer(),
        &Device::Cpu,
        16,
        "tiny".into(),
    )
    .unwrap();
    reinitialize(enc.varmap(), 42).unwrap();
    enc
}

fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
}

#[test]
fn embeddings_are_normalised_and_do_not_depend_on_padding_or_batch() {
    let enc = tiny();
    let texts = [
        "good film",
        "the food was really not very good at all",
        "bad",
    ];
    let together = enc.embed(&texts, 8, &mut |_| {}).unwrap();
    assert_eq!(together.len(), 3);
    for e in &together {
        assert_eq!(e.len(), 16);
        let norm: f32 = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    // Alone (no padding) and in a padded batch: the same vector.
    for (i, t) in texts.iter().enumerate() {
        let alone = enc.embed(&[*t], 1, &mut |_| {}).unwrap();
        assert!(
            close(&alone[0], &together[i], 1e-5),
            "{t}: padding leaked into the embedding"
        );
    }
    assert!(
        !close(&together[0], &together[2], 1e-3),
        "different texts, same embedding"
    );
}

#[test]
fn the_differentiable_path_computes_what_the_fused_one_does() {
    let enc = tiny();
    let tokens = enc.tokenize(&["good film", "the food was bad"]).unwrap();
    let batch: Vec<&[u32]> = tokens.iter().map(Vec::as_slice).collect();
    let fused = enc
        .embed_batch(&batch, Mode::Infer)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let plain = enc
        .embed_batch(&batch, Mode::Train)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (a, b) in fused.iter().zip(&plain) {
        assert!(close(a, b, 1e-5), "{a:?} vs {b:?}");
    }
}

#[test]
fn gradients_reach_every_trainable_tensor() {
    let enc = tiny();
    let tokens = enc
        .tokenize(&["good film", "the food was bad", "a great day"])
        .unwrap();
    let batch: Vec<&[u32]> = tokens.iter().map(Vec::as_slice).collect();
    let pooled = enc.embed_batch(&batch, Mode::Train).unwrap();
    // Any scalar that depends on every output dimension.
    let direction = Tensor::arange(0f32, 16f32, &Device::Cpu)
        .unwrap()
        .sin()
        .unwrap();
    let loss = pooled.broadcast_mul(&direction).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let vars = enc.varmap().data().lock().unwrap();
    assert!(vars.len() >= 2 * 16 + 5, "only {} tensors", vars.len());
    for (name, var) in vars.iter() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{name} received no gradient"));
        let size: f32 = g.abs().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(size > 0.0, "{name} received a zero gradient");
    }
}

#[test]
fn fine_tuning_lowers_the_loss() {
    let enc = tiny();
    let texts = [
        "good film",
        "great food",
        "really good service",
        "a great day",
        "fine film",
        "bad film",
        "awful food",
        "really poor service",
        "a bad day",
        "awful film",
    ];
    let y = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1];
    let tokens = enc.tokenize(&texts).unwrap();
    let params = FineTuneParams {
        epochs: 12,
        batch_size: 5,
        encoder_learning_rate: 1e-2,
        head_learning_rate: 5e-2,
        seed: 3,
    };
    // A cancel stops it at the step where it is asked for.
    let mut steps_seen = 0;
    let cancelled = fine_tune(&tiny(), &tokens, &y, 2, &params, &mut |step, _| {
        steps_seen = step;
        if step == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert!(matches!(cancelled, Err(concord_ml::MlError::Cancelled)));
    assert_eq!(steps_seen, 3);
    let mut last = (0, 0);
    let (head, losses) = fine_tune(&enc, &tokens, &y, 2, &params, &mut |step, steps| {
        last = (step, steps);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(last, (24, 24), "12 epochs of 2 batches");
    assert!(
        losses.last().unwrap() < &(losses[0] * 0.5),
        "loss did not fall: {losses:?}"
    );
    let probs = head.predict(&enc.embed(&texts, 4, &mut |_| {}).unwrap());
    let correct = probs
        .iter()
        .zip(y)
        .filter(|(p, g)| concord_ml::argmax(p) == *g)
        .count();
    assert_eq!(
        correct,
        texts.len(),
        "the training set is not learnt: {probs:?}"
    );
}

#[test]
fn saved_weights_load_back_to_identical_outputs() {
    let enc = tiny();
    let dir = tempfile::tempdir().unwrap();
    enc.save_weights(&dir.path().join("model.safetensors"))
        .unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_string(&serde_json::json!({
            "vocab_size": WORDS.len(), "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
            "max_position_embeddings": 32, "type_vocab_size": 2, "layer_norm_eps": 1e-12
        }))
        .unwrap(),
    )
    .unwrap();
    tokenizer()
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();
    let loaded = Encoder::load(dir.path(), &Device::Cpu).unwrap();
    let texts = ["good film", "the food was bad"];
    assert_eq!(
        enc.embed(&texts, 2, &mut |_| {}).unwrap(),
        loaded.embed(&texts, 2, &mut |_| {}).unwrap()
    );
    // A folder without weights is refused with the missing file's name.
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = Encoder::load(dir.path(), &Device::Cpu).err().unwrap();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    let _ = var_builder;
}
