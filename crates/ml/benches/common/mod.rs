//! What the model benches share: the model folder, their one numeric argument and real texts.

use std::path::PathBuf;

/// The first command-line argument that parses as a number, else `default`.
pub fn number_arg(default: usize) -> usize {
    std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(default)
}

/// The all-MiniLM-L6-v2 folder: `CONCORD_TEST_MODEL`, else the one `scripts/setup.sh` fills.
pub fn model_dir() -> PathBuf {
    std::env::var_os("CONCORD_TEST_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2")
        })
}

/// The `text` of the first `n` JSON lines of `file` in `../shared/data`.
pub fn texts(file: &str, n: usize) -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(file);
    let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    body.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("text").and_then(|t| t.as_str()).map(String::from))
        .take(n)
        .collect()
}
