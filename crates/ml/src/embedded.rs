//! The default encoder compiled into the binary, so that a `concord` binary copied alone
//! anywhere can pre-annotate. Only with the `embedded-model` feature (release builds turn it on
//! through the server's feature of that name): the weights are tens of megabytes that test
//! builds do without. The files are `models/all-MiniLM-L6-v2` as `scripts/setup.sh` puts it,
//! with the weights rounded to f16 by `cargo xtask build --release` (half the size; every
//! embedding of the texts `benches/f16_weights.rs` tries stays within cosine 0.99999 of f32's).

use crate::encoder::ModelFiles;

/// The model compiled in with the `embedded-model` feature.
pub const EMBEDDED_MODEL: &str = "all-MiniLM-L6-v2";

/// The files of `name` when it is compiled into this binary.
pub fn embedded_model(name: &str) -> Option<ModelFiles<'static>> {
    #[cfg(feature = "embedded-model")]
    if name == EMBEDDED_MODEL {
        return Some(ModelFiles {
            config: include_bytes!("../../../models/all-MiniLM-L6-v2/config.json"),
            weights: include_bytes!(
                "../../../target/embedded-model/all-MiniLM-L6-v2/model-f16.safetensors"
            ),
            tokenizer: include_bytes!("../../../models/all-MiniLM-L6-v2/tokenizer.json"),
            sentence_config: Some(include_bytes!(
                "../../../models/all-MiniLM-L6-v2/sentence_bert_config.json"
            )),
        });
    }
    let _ = name;
    None
}

/// The names of the models compiled into this binary.
pub fn embedded_models() -> Vec<&'static str> {
    if cfg!(feature = "embedded-model") {
        vec![EMBEDDED_MODEL]
    } else {
        Vec::new()
    }
}
