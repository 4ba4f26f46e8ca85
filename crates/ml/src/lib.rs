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
pub mod generative;
mod head;
mod kernels;
mod label_errors;
mod learning_curve;
mod logistic;
mod metrics;
pub mod relation_classifier;
mod setfit;
mod simulate;
#[cfg(test)]
mod tiny_bert;
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
pub use label_errors::{
    calibrate_joint, class_thresholds, confident_joint, crowdlab_consensus, find_label_issues,
    label_quality, precision_at_k, quality_of, rank_label_issues, ConfidentJoint, Consensus,
    DetectionMethod, LabelErrorInputError, PrecisionAtK, Pruning, QualityScore, Vote,
};
pub use learning_curve::{
    label_score_intervals, span_f1_interval, span_triples_interval, BootstrapEstimate,
    CurveFitError, CurvePoint, LabelScoreIntervals, PowerLawFit, BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED, MIN_CURVE_SIZES,
};
pub use logistic::{
    out_of_fold_probabilities, train_head_cv, train_logistic, CvHeadParams, CvReport, CvScoring,
    ABSENT_CLASS_MARGIN,
};
pub use metrics::{evaluate, Evaluation, LabelMetrics};
pub use setfit::{setfit, SetFitOutcome, SetFitParams};
pub use simulate::{
    simulate, simulate_auto_loop, AutoLoopPoint, AutoLoopReport, AutoLoopSettings, RoundResult,
    SimulationInput, SimulationReport, StrategyRun,
};
pub use token_classifier::{
    fine_tune_tokens, word_features, FeatureSettings, Pooling, ScoredSpan, TokenClassifier,
    TokenFineTuneParams, TokenFineTuning, TokenHead, TokenHeadParams, TokenPrediction,
    SHAPE_FEATURES, UNCERTAIN_WORDS,
};
pub use vector::{argmax, cosine, dot, softmax};
pub use zero_shot::{
    adjust_priors, apply_priors, estimate_priors, label_prompt, label_prompts, pseudo_labels,
    self_train, self_train_cv, Calibration, PriorEstimate, PromptPooling, PromptSet, ZeroShot,
    ZeroShotMethod, COLD_START, TEMPERATURE,
};

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
