//! Concord's models, in candle: a BERT-family sentence encoder (inference with fused kernels,
//! fine-tuning with differentiable ops), zero-shot scoring against label descriptions, a
//! softmax head trained on embeddings, evaluation metrics, active-learning strategies, and the
//! simulation that replays a labelled dataset through the loop. No database, no HTTP: callers
//! hand in texts and labels and get numbers back.

mod active;
mod bert;
mod embedded;
mod encoder;
mod finetune;
mod head;
mod kernels;
mod metrics;
mod simulate;
mod token_classifier;
mod vector;
mod zero_shot;

use std::path::PathBuf;

pub use active::{select, uncertainty, Pick, Pool, Strategy};
pub use bert::{mean_pool_normalized, reinitialize, var_builder, Bert, BertConfig, Mode};
pub use candle_core::Device;
/// The workspace's one SplitMix generator; seeded shuffles, samples and weight initialisation
/// here use it.
pub use concord_agreement::rng::SplitMix64;
pub use embedded::{embedded_model, embedded_models, EMBEDDED_MODEL};
pub use encoder::{file_fingerprint, file_sha256, Encoder, ModelFiles, ModelFolder, WordPieces};
pub use finetune::{fine_tune, FineTuneParams};
pub use head::{HeadParams, LinearHead};
pub use metrics::{evaluate, Evaluation, LabelMetrics};
pub use simulate::{simulate, RoundResult, SimulationInput, SimulationReport, StrategyRun};
pub use token_classifier::{
    fine_tune_tokens, word_features, FeatureSettings, Pooling, ScoredSpan, TokenClassifier,
    TokenFineTuneParams, TokenFineTuning, TokenHead, TokenHeadParams, TokenPrediction,
    SHAPE_FEATURES, UNCERTAIN_WORDS,
};
pub use vector::{argmax, cosine, dot, softmax};
pub use zero_shot::{adjust_priors, label_prompt, self_train, Calibration, ZeroShot, TEMPERATURE};

/// What can go wrong loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    #[error("model file {path} is missing (a model folder holds config.json, model.safetensors and tokenizer.json)")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad model configuration: {0}")]
    Config(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("training: {0}")]
    Training(String),
    #[error("cancelled")]
    Cancelled,
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// The device models run on: the first CUDA GPU when built with the `cuda` feature and one is
/// present, else the CPU.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    Device::Cpu
}
