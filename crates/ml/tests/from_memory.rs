//! An encoder loaded from files in memory (how the binary's embedded model is loaded) is the
//! encoder the same files give from a folder: same fingerprint, same embeddings. Uses the real
//! all-MiniLM-L6-v2 (`scripts/setup.sh` puts it in `models/`, or set `CONCORD_TEST_MODEL`).

use std::path::{Path, PathBuf};

use concord_ml::{Device, Encoder, ModelFiles};

fn model_dir() -> PathBuf {
    std::env::var_os("CONCORD_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")
        })
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| {
        panic!(
            "{name} of all-MiniLM-L6-v2 is needed in {} (run scripts/setup.sh --test): {e}",
            dir.display()
        )
    })
}

const TEXTS: [&str; 5] = [
    "ok",
    "A man is eating food.",
    "The new phone's battery dies before lunch, which is a shame because the screen is lovely.",
    "Free entry in a weekly competition to win tickets! Text WIN to 80086 now.",
    "Ça marche très bien, merci 🙂",
];

#[test]
fn an_encoder_from_memory_equals_the_one_from_its_folder() {
    let dir = model_dir();
    let folder = Encoder::load(&dir, &Device::Cpu).expect("load the folder");
    let (config, weights, tokenizer, sentence) = (
        read(&dir, "config.json"),
        read(&dir, "model.safetensors"),
        read(&dir, "tokenizer.json"),
        read(&dir, "sentence_bert_config.json"),
    );
    let files = ModelFiles {
        config: &config,
        weights: &weights,
        tokenizer: &tokenizer,
        sentence_config: Some(&sentence),
    };
    let memory = Encoder::load_from_memory(&files, None, &Device::Cpu).expect("load from memory");
    assert_eq!(memory.fingerprint(), folder.fingerprint());
    assert_eq!(memory.max_tokens(), folder.max_tokens());
    assert_eq!(memory.dimension(), folder.dimension());
    let a = folder.embed(&TEXTS, 4, &mut |_| {}).expect("embed");
    let b = memory.embed(&TEXTS, 4, &mut |_| {}).expect("embed");
    assert_eq!(a, b, "the same weights give bit-identical embeddings");

    // Without sentence_bert_config.json the default limit applies, as for a folder without it.
    let bare = ModelFiles {
        sentence_config: None,
        ..files
    };
    let bare = Encoder::load_from_memory(&bare, None, &Device::Cpu).expect("load");
    assert_eq!(bare.max_tokens(), 256);

    // Fine-tuned weights on disk replace the embedded ones: the fingerprint follows the file.
    let tuned = tempfile::tempdir().expect("temp dir");
    let path = tuned.path().join("tuned.safetensors");
    folder.save_weights(&path).expect("save");
    let with_file = Encoder::load_from_memory(&files, Some(&path), &Device::Cpu).expect("load");
    assert_eq!(
        with_file.fingerprint(),
        concord_ml::file_fingerprint(&path).expect("hash")
    );
    assert_eq!(with_file.embed(&TEXTS, 4, &mut |_| {}).expect("embed"), a);
    let missing = tuned.path().join("absent.safetensors");
    assert!(matches!(
        Encoder::load_from_memory(&files, Some(&missing), &Device::Cpu),
        Err(concord_ml::MlError::Missing { .. })
    ));
    // Truncated weights are refused, not half loaded.
    let cut = ModelFiles {
        weights: &weights[..weights.len() / 2],
        ..files
    };
    assert!(matches!(
        Encoder::load_from_memory(&cut, None, &Device::Cpu),
        Err(concord_ml::MlError::Config(_))
    ));
}
