//! Claims about the real all-MiniLM-L6-v2 weights (fetched by `scripts/setup.sh` into
//! `models/all-MiniLM-L6-v2`, or wherever `CONCORD_TEST_MODEL` points). Without the model these
//! tests fail: they are what shows that the encoder computes what the published model does.

use std::path::PathBuf;

use concord_ml::{cosine, label_prompt, Calibration, Device, Encoder, Mode, ZeroShot};

fn model_dir() -> PathBuf {
    std::env::var_os("CONCORD_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")
        })
}

fn minilm() -> Encoder {
    let dir = model_dir();
    Encoder::load(&dir, &Device::Cpu).unwrap_or_else(|e| {
        panic!(
            "all-MiniLM-L6-v2 is needed at {} (run scripts/setup.sh --test): {e}",
            dir.display()
        )
    })
}

#[test]
fn matches_the_published_similarity() {
    let enc = minilm();
    assert_eq!(enc.dimension(), 384);
    assert_eq!(enc.max_tokens(), 256);
    let e = enc
        .embed(
            &["A man is eating food.", "A man is eating a piece of bread."],
            2,
            &mut |_| {},
        )
        .unwrap();
    let sim = cosine(&e[0], &e[1]);
    assert!(
        (sim - 0.7553).abs() <= 0.001,
        "cosine {sim}, published 0.7553"
    );
    // Long inputs are truncated to the model's limit instead of failing.
    let long = "word ".repeat(2000);
    let tokens = enc.tokenize(&[long.as_str()]).unwrap();
    assert_eq!(tokens[0].len(), 256);
    assert_eq!(
        enc.embed(&[long.as_str()], 1, &mut |_| {}).unwrap()[0].len(),
        384
    );
}

/// The inference path (fused CPU kernels, length-bucketed batches) computes the same
/// embeddings as the plain differentiable tensor ops, one padded batch of mixed lengths.
#[test]
fn fused_inference_equals_the_plain_tensor_ops() {
    let enc = minilm();
    let texts = [
        "ok",
        "A man is eating a piece of bread.",
        "The central bank raised interest rates and stocks fell sharply on Tuesday morning.",
        &"a long message about nothing in particular ".repeat(30),
    ];
    let fused = enc.embed(&texts, 128, &mut |_| {}).unwrap();
    let tokens = enc.tokenize(&texts).unwrap();
    let batch: Vec<&[u32]> = tokens.iter().map(Vec::as_slice).collect();
    let plain = enc
        .embed_batch(&batch, Mode::Train)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (i, (a, b)) in fused.iter().zip(&plain).enumerate() {
        let c = cosine(a, b);
        assert!(c >= 0.99999, "text {i}: cosine {c}");
    }
}

#[test]
fn zero_shot_gets_obvious_examples_right() {
    let enc = minilm();
    let labels = [
        ("sports", Some("games, teams, players and matches")),
        ("cooking", Some("recipes, food and kitchens")),
        ("finance", Some("money, markets, banks and investing")),
    ];
    let prompts: Vec<String> = labels.iter().map(|(n, d)| label_prompt(n, *d)).collect();
    let prompt_refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let label_emb = enc.embed(&prompt_refs, 8, &mut |_| {}).unwrap();
    let items = [
        ("The striker scored twice in the cup final.", 0),
        ("The goalkeeper saved a penalty in extra time.", 0),
        (
            "Simmer the onions in butter until golden, then add the garlic.",
            1,
        ),
        (
            "Knead the dough and let it rise for an hour before baking.",
            1,
        ),
        ("The central bank raised interest rates and stocks fell.", 2),
        ("She moved her savings into an index fund with low fees.", 2),
    ];
    let texts: Vec<&str> = items.iter().map(|(t, _)| *t).collect();
    let emb = enc.embed(&texts, 8, &mut |_| {}).unwrap();
    for calibration in [Calibration::None, Calibration::Standardize] {
        let probs = ZeroShot::new(label_emb.clone(), &emb, calibration).predict(&emb);
        for ((text, want), p) in items.iter().zip(&probs) {
            assert_eq!(
                concord_ml::argmax(p),
                *want,
                "{calibration:?}: {text:?} → {p:?}"
            );
            let sum: f32 = p.iter().sum();
            assert!((sum - 1.0).abs() < 1e-4);
        }
    }
}
