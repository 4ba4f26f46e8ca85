//! Claims about the tokenizer rebuilt from a GGUF file's own metadata: token for token, it
//! makes of ~30 texts (spaces, newlines, tabs, emoji with joiners and flags, CJK, Arabic, code,
//! numbers, URLs, chat tokens) what llama.cpp makes of them with the same file, and decoding
//! gives the text back. The ids are in `tests/fixtures/gguf_tokens_*.json`, written by
//! `scripts/gguf_tokenizer_reference.py`. The GGUF files are looked for in
//! `CONCORD_GGUF_DIR`, else `models/gguf/` at the repository root; without them these tests
//! fail. Only the metadata is read, no tensor.

use std::fs::File;
use std::io::Read;
use std::path::PathBuf;

use candle_core::quantized::gguf_file;
use concord_ml::generative::GgufTokenizer;
use serde::Deserialize;
use sha2::{Digest, Sha256};

#[derive(Deserialize)]
struct Fixture {
    reference: String,
    model: String,
    model_sha256: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

fn gguf_path(file: &str) -> PathBuf {
    let whole = std::env::var_os("CONCORD_GGUF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/gguf"))
        .join(file);
    if whole.exists() {
        return whole;
    }
    // `scripts/setup.sh --test` fetches of a large model only the first part of its split
    // file, which begins with the whole header: all this test reads.
    let header = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models/gguf-headers")
        .join(format!("{file}.part00"));
    if header.exists() {
        header
    } else {
        whole
    }
}

fn fixture(name: &str) -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn tokenizer(file: &str) -> GgufTokenizer {
    let path = gguf_path(file);
    let mut f = File::open(&path).unwrap_or_else(|e| {
        panic!(
            "{file} is needed at {} (or set CONCORD_GGUF_DIR to its folder): {e}",
            path.display()
        )
    });
    let content = gguf_file::Content::read(&mut f)
        .unwrap_or_else(|e| panic!("{}: not a GGUF file: {e}", path.display()));
    GgufTokenizer::from_gguf(&content)
        .unwrap_or_else(|e| panic!("{}: no tokenizer: {e}", path.display()))
}

fn sha256(file: &str) -> String {
    let mut f = File::open(gguf_path(file)).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

/// Each id with the token it stands for, to show where two lists part.
fn pieces(t: &GgufTokenizer, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&id| {
            let token = t
                .tokenizer
                .id_to_token(id)
                .unwrap_or_else(|| "?".to_string());
            format!("{id}:{token:?}")
        })
        .collect()
}

/// Checks every case of the fixture; returns the tokenizer for further claims.
fn matches_the_reference(fixture_name: &str) -> GgufTokenizer {
    let fx = fixture(fixture_name);
    let t = tokenizer(&fx.model);
    assert!(fx.cases.len() >= 25, "{fixture_name}: too few cases");
    let mut differing = Vec::new();
    for (i, case) in fx.cases.iter().enumerate() {
        let ids = t.encode(&case.text, false).unwrap();
        if ids != case.ids {
            differing.push(i);
        }
    }
    if let Some(&first) = differing.first() {
        let case = &fx.cases[first];
        let ours = t.encode(&case.text, false).unwrap();
        // A header-only part cannot be compared with the whole file's hash.
        let path = gguf_path(&fx.model);
        let same_file =
            path.extension().is_some_and(|e| e != "gguf") || sha256(&fx.model) == fx.model_sha256;
        panic!(
            "{fixture_name}: {} of {} cases differ from {}{}\nfirst, case {first}: {:?}\n  \
             ours:      {:?}\n  reference: {:?}",
            differing.len(),
            fx.cases.len(),
            fx.reference,
            if same_file {
                ""
            } else {
                " (and the GGUF file is not the one the fixture was made from)"
            },
            case.text,
            pieces(&t, &ours),
            pieces(&t, &case.ids),
        );
    }
    for case in &fx.cases {
        let ids = t.encode(&case.text, false).unwrap();
        assert_eq!(
            t.decode(&ids).unwrap(),
            case.text,
            "{fixture_name}: decode(encode(text)) is not the text: {:?}",
            pieces(&t, &ids)
        );
        // BOS exactly when the file asks for it.
        let with_bos = t.encode(&case.text, true).unwrap();
        if t.add_bos {
            assert_eq!(with_bos[0], t.bos.unwrap());
            assert_eq!(&with_bos[1..], &ids[..]);
        } else {
            assert_eq!(with_bos, ids);
        }
    }
    t
}

#[test]
fn smollm2_tokens_match_llama_cpp() {
    let t = matches_the_reference("gguf_tokens_smollm2.json");
    assert!(!t.add_bos);
    assert_eq!(t.token_id("<|im_start|>"), Some(1));
    assert_eq!(t.token_id("<|im_end|>"), Some(2));
    assert!(t
        .chat_template
        .as_deref()
        .unwrap_or("")
        .contains("<|im_start|>"));
}

#[test]
fn gemma3_tokens_match_llama_cpp() {
    let t = matches_the_reference("gguf_tokens_gemma3.json");
    assert!(t.add_bos);
    assert_eq!(t.bos, Some(2));
    assert_eq!(t.eos, Some(1));
    let ids = t
        .encode("<start_of_turn>user\nHi<end_of_turn>", true)
        .unwrap();
    assert_eq!(ids[..2], [2, 105], "BOS, then <start_of_turn> as one id");
    assert_eq!(ids.last(), Some(&106), "<end_of_turn> is one id");
    assert_eq!(
        t.decode_skipping_special(&ids).unwrap(),
        "user\nHi",
        "control tokens dropped, the user-defined newline kept"
    );
}
