//! Token classification (named entities): BIO tags over an item's words, from the encoder's
//! hidden states aligned to words plus word-shape features of the cased text.
//!
//! Words are the item's word tokens as the annotator sees them. Each is split into the
//! encoder's sub-word pieces on its own ([`Encoder::word_pieces`]); items longer than the
//! encoder's input are read in overlapping windows and stitched back, one feature row per word
//! (see `windows.rs`). A word's row is its hidden state (the first piece's, or the mean of its
//! pieces: [`Pooling`]) followed by shape features of the word and of its neighbours (the
//! tokenizer lowercases, so capitals reach the model only this way). Two trainers: a head on
//! frozen features ([`TokenClassifier::train`], seconds) and full fine-tuning of the encoder
//! with the head ([`fine_tune_tokens`]). Prediction decodes with constrained Viterbi
//! (`decode.rs`).

mod decode;
mod finetune;
mod head;
mod shape;
mod windows;

use candle_core::{Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use concord_agreement::rng::SplitMix64;
use concord_domain::bio::{TagSet, TokenSpan};
use serde::{Deserialize, Serialize};

use crate::bert::Mode;
use crate::encoder::length_batches;
use crate::head::weighted_cross_entropy;
use crate::{Encoder, MlError};

pub use decode::{ScoredSpan, TokenPrediction, UNCERTAIN_WORDS};
pub use finetune::{fine_tune_tokens, TokenFineTuneParams, TokenFineTuning};
pub use head::TokenHead;
pub use shape::SHAPE_FEATURES;

/// How a word's pieces become one hidden vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The hidden state of the word's first piece (BERT's usual choice for tagging).
    First,
    /// The mean of the hidden states of all its pieces.
    Mean,
}

/// What a word's feature row holds; stored with the model, since prediction must compute the
/// same rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSettings {
    pub pooling: Pooling,
    /// Whether shape features follow the hidden state.
    pub word_shape: bool,
    /// With `word_shape`, the shapes of this many words on each side are added too.
    pub shape_window: usize,
}

/// The defaults are what the validation part of WNUT-16 chose (`examples/wnut16_ner.rs`):
/// mean of the pieces, with the shapes of the word and of two words on each side.
impl Default for FeatureSettings {
    fn default() -> Self {
        FeatureSettings {
            pooling: Pooling::Mean,
            word_shape: true,
            shape_window: 2,
        }
    }
}

impl FeatureSettings {
    /// Number of shape values per word.
    pub fn shape_dimension(&self) -> usize {
        if self.word_shape {
            SHAPE_FEATURES * (1 + 2 * self.shape_window)
        } else {
            0
        }
    }

    /// Length of a word's feature row over an encoder of `hidden` dimensions.
    pub fn dimension(&self, hidden: usize) -> usize {
        hidden + self.shape_dimension()
    }

    /// The shape part of each word's row (empty rows when shapes are off).
    fn shapes<S: AsRef<str>>(&self, words: &[S]) -> Vec<Vec<f32>> {
        if self.word_shape {
            shape::item_shapes(words, self.shape_window)
        } else {
            vec![Vec::new(); words.len()]
        }
    }
}

/// An item's encoder inputs: its windows, and the shape features of its words.
pub(crate) struct PreparedItem {
    pub windows: Vec<windows::Window>,
    pub shapes: Vec<Vec<f32>>,
}

pub(crate) fn prepare<S: AsRef<str>>(
    encoder: &Encoder,
    words: &[S],
    settings: &FeatureSettings,
    special: &(Vec<u32>, Vec<u32>),
) -> Result<PreparedItem, MlError> {
    let pieces = encoder.word_pieces(words)?;
    Ok(PreparedItem {
        windows: windows::windows(&pieces, &special.0, &special.1, encoder.max_tokens()),
        shapes: settings.shapes(words),
    })
}

/// Feature rows of every word of every item (`items[i][w]` is word `w` of item `i`), read by
/// the encoder in inference mode. Windows of all items are sorted by length and batched
/// (at most `batch_size` per batch); `progress` gets (windows done, windows in all) after
/// each batch.
pub fn word_features<S: AsRef<str>>(
    encoder: &Encoder,
    items: &[Vec<S>],
    settings: &FeatureSettings,
    batch_size: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<Vec<f32>>>, MlError> {
    let special = encoder.special_tokens()?;
    let hidden = encoder.dimension();
    let mut out: Vec<Vec<Vec<f32>>> = Vec::with_capacity(items.len());
    let mut all_windows = Vec::new();
    for (i, words) in items.iter().enumerate() {
        let prepared = prepare(encoder, words, settings, &special)?;
        out.push(
            prepared
                .shapes
                .into_iter()
                .map(|shape| {
                    let mut row = vec![0f32; hidden];
                    row.extend(shape);
                    row
                })
                .collect(),
        );
        all_windows.extend(prepared.windows.into_iter().map(|w| (i, w)));
    }
    all_windows.sort_by_key(|(_, w)| w.ids.len());
    let lengths: Vec<usize> = all_windows.iter().map(|(_, w)| w.ids.len()).collect();
    let total = all_windows.len();
    let mut done = 0;
    for range in length_batches(&lengths, batch_size) {
        let chunk = &all_windows[range];
        let batch: Vec<&[u32]> = chunk.iter().map(|(_, w)| w.ids.as_slice()).collect();
        let states = encoder.hidden_states(&batch, Mode::Infer)?;
        let tokens = states.dim(1)?;
        let flat: Vec<f32> = states.flatten_all()?.to_vec1()?;
        for (b, (item, window)) in chunk.iter().enumerate() {
            for (word, positions) in &window.words {
                let row = &mut out[*item][*word][..hidden];
                let at = |pos: usize| &flat[(b * tokens + pos) * hidden..][..hidden];
                match settings.pooling {
                    Pooling::First => row.copy_from_slice(at(positions.start)),
                    Pooling::Mean => {
                        for pos in positions.clone() {
                            for (r, v) in row.iter_mut().zip(at(pos)) {
                                *r += v;
                            }
                        }
                        let n = positions.len() as f32;
                        row.iter_mut().for_each(|r| *r /= n);
                    }
                }
            }
        }
        done += chunk.len();
        progress(done, total);
    }
    Ok(out)
}

/// Training settings for [`TokenClassifier::train`] (the head on frozen features).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenHeadParams {
    /// Passes over all training words.
    pub epochs: usize,
    /// Words per optimiser step.
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Loss weight of words tagged `O` (every other tag weighs 1): below 1, the head is less
    /// shy of predicting entities, which are rare.
    pub o_weight: f32,
    /// Hidden ReLU units before the softmax; 0 for a linear head.
    pub hidden: usize,
    pub seed: u64,
}

/// Head size and `O` weight as the validation part of WNUT-16 chose them (an MLP of 256 beat
/// a linear head by about 0.04 micro-F1; `O` at 0.25 beat 0.5 and 1).
impl Default for TokenHeadParams {
    fn default() -> Self {
        TokenHeadParams {
            epochs: 30,
            batch_size: 256,
            learning_rate: 2e-3,
            weight_decay: 0.01,
            o_weight: 0.25,
            hidden: 256,
            seed: 17,
        }
    }
}

/// A trained token classifier: the project's labels (in the order span labels index), how
/// word features are made, and the tag head. Serialisable, to be stored with a model version;
/// a fine-tuned one needs the fine-tuned encoder weights beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenClassifier {
    pub labels: Vec<String>,
    pub features: FeatureSettings,
    pub head: TokenHead,
}

/// Checks one item's gold spans against its word count and the labels; returns its tags.
pub(crate) fn gold_tags(
    tag_set: &TagSet,
    item: usize,
    words: usize,
    spans: &[TokenSpan],
) -> Result<Vec<u16>, MlError> {
    if let Some(bad) = spans
        .iter()
        .find(|s| s.start >= s.end || s.end > words || s.label >= tag_set.labels().len())
    {
        return Err(MlError::Training(format!(
            "item {item}: span {}..{} with label {} does not fit its {words} words and {} labels",
            bad.start,
            bad.end,
            bad.label,
            tag_set.labels().len()
        )));
    }
    Ok(tag_set.encode(words, spans))
}

/// Per-tag loss weights: `o_weight` for `O`, 1 for the rest.
pub(crate) fn tag_weights(tags: usize, o_weight: f32) -> Vec<f32> {
    let mut w = vec![1.0; tags];
    w[0] = o_weight.max(0.0);
    w
}

impl TokenClassifier {
    /// Trains a head on frozen word features `x` (from [`word_features`] with `features`)
    /// against the gold `spans` of each item (word indices; labels index `labels`).
    /// Mini-batch AdamW over shuffled words, seeded.
    pub fn train(
        labels: &[String],
        features: FeatureSettings,
        x: &[Vec<Vec<f32>>],
        spans: &[Vec<TokenSpan>],
        params: &TokenHeadParams,
        device: &Device,
    ) -> Result<TokenClassifier, MlError> {
        if x.len() != spans.len() {
            return Err(MlError::Training(format!(
                "{} items of features but {} of spans",
                x.len(),
                spans.len()
            )));
        }
        let tag_set = TagSet::new(labels);
        let mut rows: Vec<&Vec<f32>> = Vec::new();
        let mut targets: Vec<u32> = Vec::new();
        for (i, (item, gold)) in x.iter().zip(spans).enumerate() {
            let tags = gold_tags(&tag_set, i, item.len(), gold)?;
            rows.extend(item.iter());
            targets.extend(tags.iter().map(|&t| t as u32));
        }
        let inputs = match rows.first() {
            Some(r) => r.len(),
            None => return Err(MlError::Training("no words to train on".into())),
        };
        if rows.iter().any(|r| r.len() != inputs) {
            return Err(MlError::Training(
                "word feature rows differ in length".into(),
            ));
        }
        let tags = tag_set.len();
        let vars = head::HeadVars::new(inputs, params.hidden, tags, params.seed, device)?;
        let weights = Tensor::from_vec(tag_weights(tags, params.o_weight), tags, device)?;
        let mut optimizer = AdamW::new(
            vars.varmap.all_vars(),
            ParamsAdamW {
                lr: params.learning_rate,
                weight_decay: params.weight_decay,
                ..ParamsAdamW::default()
            },
        )?;
        let mut rng = SplitMix64::new(params.seed);
        let mut order: Vec<usize> = (0..rows.len()).collect();
        let batch_size = params.batch_size.max(1);
        for _ in 0..params.epochs {
            rng.shuffle(&mut order);
            for chunk in order.chunks(batch_size) {
                let flat: Vec<f32> = chunk
                    .iter()
                    .flat_map(|&r| rows[r].iter().copied())
                    .collect();
                let xs = Tensor::from_vec(flat, (chunk.len(), inputs), device)?;
                let ys = Tensor::from_vec(
                    chunk.iter().map(|&r| targets[r]).collect::<Vec<_>>(),
                    chunk.len(),
                    device,
                )?;
                let loss = weighted_cross_entropy(&vars.forward(&xs)?, &ys, Some(&weights))?;
                optimizer.backward_step(&loss)?;
            }
        }
        Ok(TokenClassifier {
            labels: labels.to_vec(),
            features,
            head: vars.to_head()?,
        })
    }

    /// The tag set of the classifier's labels.
    pub fn tag_set(&self) -> TagSet {
        TagSet::new(&self.labels)
    }

    /// Prediction for one item from its word features (rows from [`word_features`] with this
    /// classifier's settings).
    pub fn predict_features(&self, x: &[Vec<f32>]) -> Result<TokenPrediction, MlError> {
        let probabilities = self.head.probabilities(x)?;
        Ok(decode::decode(&self.tag_set(), probabilities))
    }

    /// Predictions for items of words, reading them with `encoder` (the one the classifier
    /// was trained on: the base encoder for a head, the fine-tuned one after fine-tuning).
    pub fn predict<S: AsRef<str>>(
        &self,
        encoder: &Encoder,
        items: &[Vec<S>],
        batch_size: usize,
    ) -> Result<Vec<TokenPrediction>, MlError> {
        if self.features.dimension(encoder.dimension()) != self.head.inputs {
            return Err(MlError::Config(format!(
                "the classifier takes {} features per word, this encoder gives {}",
                self.head.inputs,
                self.features.dimension(encoder.dimension())
            )));
        }
        let x = word_features(encoder, items, &self.features, batch_size, &mut |_, _| {})?;
        x.iter().map(|item| self.predict_features(item)).collect()
    }
}
