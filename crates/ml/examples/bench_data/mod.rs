//! What the benchmark examples (`head_vs_sklearn`, `few_shot`, `zero_shot_heldout`) share:
//! reading the JSONL sets, the fixed development/report split, and the embedding cache, whose
//! files they read from each other's folders under `target/tmp/`.
//!
//! A folder without `main.rs`, so Cargo does not take it for an example of its own; each
//! example includes it with `mod bench_data;`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use concord_ml::{argmax, Encoder, LinearHead};
use sha2::{Digest, Sha256};

pub struct Item {
    pub id: String,
    pub text: String,
    pub label: String,
}

/// Every non-empty line of `path` as an item; `label_field` names the gold label's field.
pub fn read_jsonl(path: &Path, label_field: &str) -> Vec<Item> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (see this example's header)", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let field = |k: &str| -> String {
                match &v[k] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => panic!("{}: a line without {k}", path.display()),
                    other => other.to_string(),
                }
            };
            Item {
                id: field("id"),
                text: field("text"),
                label: field(label_field),
            }
        })
        .collect()
}

/// Each item's label as an index into `labels`; an unknown label stops the run.
pub fn label_indices(set: &str, items: &[Item], labels: &[&str]) -> Vec<usize> {
    items
        .iter()
        .map(|i| {
            labels
                .iter()
                .position(|l| *l == i.label)
                .unwrap_or_else(|| panic!("{set}: unknown label {}", i.label))
        })
        .collect()
}

/// The fixed split of the development files: the first byte of SHA-256(id) is even.
pub fn is_development(id: &str) -> bool {
    Sha256::digest(id.as_bytes())[0].is_multiple_of(2)
}

/// The parts a set is reported as, each with the half it keeps (`None`: the whole set): a
/// development file as `{name}-dev` and `{name}-report`, a held-out file whole.
pub fn parts(name: &str, split: bool) -> Vec<(String, Option<bool>)> {
    if split {
        vec![
            (format!("{name}-dev"), Some(true)),
            (format!("{name}-report"), Some(false)),
        ]
    } else {
        vec![(name.to_string(), None)]
    }
}

/// Indices of the items in the half `development` (every item for `None`).
pub fn in_half(items: &[Item], development: Option<bool>) -> Vec<usize> {
    (0..items.len())
        .filter(|&i| development.is_none_or(|d| is_development(&items[i].id) == d))
        .collect()
}

/// Share of `y` the head predicts right.
#[allow(dead_code)] // zero_shot_heldout measures its own way
pub fn accuracy(head: &LinearHead, x: &[Vec<f32>], y: &[usize]) -> f64 {
    let p = head.predict(x);
    p.iter().zip(y).filter(|(p, &c)| argmax(p) == c).count() as f64 / y.len().max(1) as f64
}

/// The most common label's share of `y`.
#[allow(dead_code)] // zero_shot_heldout measures its own way
pub fn majority(y: &[usize], classes: usize) -> f64 {
    let mut counts = vec![0usize; classes];
    for &c in y {
        counts[c] += 1;
    }
    counts.into_iter().max().unwrap_or(0) as f64 / y.len().max(1) as f64
}

/// Rows of `dim` little-endian f32 values, if the file holds exactly `rows` of them.
fn read_f32_rows(path: &Path, rows: usize, dim: usize) -> Option<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).ok()?;
    (bytes.len() == rows * dim * 4).then(|| {
        bytes
            .chunks_exact(dim * 4)
            .map(|row| {
                row.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect()
            })
            .collect()
    })
}

/// `rows` as raw little-endian f32 values, row after row (what `read_f32_rows` reads).
pub fn f32_bytes(rows: &[Vec<f32>]) -> Vec<u8> {
    rows.iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// Writes `bytes` to `path` through a temporary file, so that a stopped run leaves no torn file.
pub fn write_atomic(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("writing a cache file");
    std::fs::rename(&tmp, path).expect("moving a cache file into place");
}

/// Embeddings of `texts`, read from the first of `caches` that holds them (the file is named
/// `{name}-{key}.f32`, the key a hash of the encoder's fingerprint and the texts), else
/// computed and written to `caches[0]`.
pub fn embed_cached(
    encoder: &Encoder,
    name: &str,
    texts: &[&str],
    caches: &[PathBuf],
) -> Vec<Vec<f32>> {
    let mut hasher = Sha256::new();
    hasher.update(encoder.fingerprint().as_bytes());
    for t in texts {
        hasher.update(t.as_bytes());
        hasher.update([0u8]);
    }
    let file = format!("{name}-{}.f32", hex::encode(&hasher.finalize()[..8]));
    let dim = encoder.dimension();
    for cache in caches {
        if let Some(rows) = read_f32_rows(&cache.join(&file), texts.len(), dim) {
            return rows;
        }
    }
    let start = Instant::now();
    let out = encoder
        .embed(texts, 32, &mut |done| {
            if done % 1024 < 32 {
                eprint!("\r{name}: {done}/{}", texts.len());
            }
        })
        .expect("embedding");
    eprintln!(
        "\r{name}: {} texts embedded in {:.0} s",
        texts.len(),
        start.elapsed().as_secs_f64()
    );
    write_atomic(&caches[0].join(&file), &f32_bytes(&out));
    out
}
