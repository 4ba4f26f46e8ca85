//! Where the generative models' tests find their GGUF files: `CONCORD_GGUF_DIR`, else
//! `models/gguf/` at the repository root (`scripts/setup.sh --test` puts them there). A missing
//! file fails the test that needs it, naming where it was looked for.

use std::path::PathBuf;

use concord_ml::generative::GenerativeModel;
use concord_ml::Device;

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

pub fn gguf_path(file: &str) -> PathBuf {
    std::env::var_os("CONCORD_GGUF_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/gguf"))
        .join(file)
}

/// SmolLM2-135M-Instruct, loaded on the CPU.
pub fn smollm2() -> GenerativeModel {
    let path = gguf_path(SMOLLM2);
    GenerativeModel::load(&path, &Device::Cpu).unwrap_or_else(|e| {
        panic!(
            "{SMOLLM2} is needed at {} (or set CONCORD_GGUF_DIR to its folder): {e}",
            path.display()
        )
    })
}
