//! Plumbing of the token classifier on a tiny BERT with fixed-seed random weights and a tiny
//! WordPiece tokenizer (as in `tiny.rs`): alignment of pieces to words, windows over long
//! items, the head and fine-tuning learning a pattern only capitalisation reveals, constrained
//! decoding, serialisation and cancellation. Nothing here claims anything about a real model's
//! quality; `examples/wnut16_ner.rs` measures that on WNUT-16 with all-MiniLM-L6-v2.

use std::ops::ControlFlow;
use std::str::FromStr;

use candle_core::Device;
use candle_nn::VarMap;
use concord_domain::bio::{TagSet, TokenSpan};
use concord_ml::{
    fine_tune_tokens, reinitialize, word_features, Encoder, FeatureSettings, MlError, Pooling,
    TokenClassifier, TokenFineTuneParams, TokenHead, TokenHeadParams, SHAPE_FEATURES,
};
use tokenizers::Tokenizer;

const VOCAB: &[&str] = &[
    "[PAD]", "[CLS]", "[SEP]", "[UNK]", "play", "##ing", "##s", "the", "a", "met", "saw", "in",
    "to", "went", "and", "today", "with", "game", ".", "alice", "bob", "carol", "dave", "erin",
    "paris", "rome", "oslo", "lima", "new", "york", "hotel", "river", "park", "city", "band",
];

const PEOPLE: &[&str] = &["alice", "bob", "carol", "dave", "erin"];
const PLACES: &[&str] = &["paris", "rome", "oslo", "lima"];

fn tokenizer() -> Tokenizer {
    let vocab: serde_json::Map<String, serde_json::Value> = VOCAB
        .iter()
        .enumerate()
        .map(|(i, w)| (w.to_string(), serde_json::Value::from(i)))
        .collect();
    let special =
        |name: &str, id: usize| serde_json::json!({ "id": name, "ids": [id], "tokens": [name] });
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [],
        "normalizer": {
            "type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
            "strip_accents": null, "lowercase": true
        },
        "pre_tokenizer": { "type": "BertPreTokenizer" },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [
                { "SpecialToken": { "id": "[CLS]", "type_id": 0 } },
                { "Sequence": { "id": "A", "type_id": 0 } },
                { "SpecialToken": { "id": "[SEP]", "type_id": 0 } }
            ],
            "pair": [
                { "SpecialToken": { "id": "[CLS]", "type_id": 0 } },
                { "Sequence": { "id": "A", "type_id": 0 } },
                { "SpecialToken": { "id": "[SEP]", "type_id": 0 } },
                { "Sequence": { "id": "B", "type_id": 1 } },
                { "SpecialToken": { "id": "[SEP]", "type_id": 1 } }
            ],
            "special_tokens": { "[CLS]": special("[CLS]", 1), "[SEP]": special("[SEP]", 2) }
        },
        "decoder": null,
        "model": {
            "type": "WordPiece", "vocab": vocab, "unk_token": "[UNK]",
            "continuing_subword_prefix": "##", "max_input_chars_per_word": 100
        }
    });
    Tokenizer::from_str(&json.to_string()).expect("tiny tokenizer")
}

/// A tiny encoder (16 dimensions, 2 layers, inputs of at most 16 tokens) with weights drawn
/// from a fixed seed.
fn tiny() -> Encoder {
    let config = serde_json::from_value(serde_json::json!({
        "vocab_size": VOCAB.len(), "hidden_size": 16, "num_hidden_layers": 2,
        "num_attention_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
        "max_position_embeddings": 32, "type_vocab_size": 2, "layer_norm_eps": 1e-12
    }))
    .unwrap();
    let enc = Encoder::from_parts(
        &config,
        VarMap::new(),
        tokenizer(),
        &Device::Cpu,
        16,
        "tiny".into(),
    )
    .unwrap();
    reinitialize(enc.varmap(), 42).unwrap();
    enc
}

fn labels() -> Vec<String> {
    vec!["person".to_string(), "place".to_string()]
}

fn capitalise(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Synthetic sentences in which the same words appear as names (capitalised, tagged) and as
/// ordinary words (lower case, not tagged), in the same places: the uncased tokenizer gives
/// both the same pieces, so only the shape features can tell them apart. Each sentence has
/// two person words and two place slots, a coin deciding which of each pair is the named
/// one; a place may be "New York" (two words).
fn synthetic(n: usize, seed: u64) -> (Vec<Vec<String>>, Vec<Vec<TokenSpan>>) {
    let mut rng = concord_ml::SplitMix64::new(seed);
    let mut items = Vec::new();
    let mut gold = Vec::new();
    for i in 0..n {
        let mut pick = |list: &[&'static str]| -> &'static str {
            list[(rng.next_u64() % list.len() as u64) as usize]
        };
        let opener = pick(&["band", "game", "hotel"]);
        let people = [pick(PEOPLE), pick(PEOPLE)];
        let places: [Vec<&str>; 2] = if i % 3 == 0 {
            [vec!["new", "york"], vec![pick(PLACES)]]
        } else {
            [vec![pick(PLACES)], vec![pick(PLACES)]]
        };
        let named_person = (rng.next_u64() % 2) as usize;
        let named_place = (rng.next_u64() % 2) as usize;
        let mut words: Vec<String> = vec!["the".into(), opener.into(), "met".into()];
        let mut spans = Vec::new();
        for (k, person) in people.iter().enumerate() {
            if k == 1 {
                words.push("with".into());
            }
            if k == named_person {
                spans.push(TokenSpan {
                    start: words.len(),
                    end: words.len() + 1,
                    label: 0,
                });
                words.push(capitalise(person));
            } else {
                words.push(person.to_string());
            }
        }
        for (k, place) in places.iter().enumerate() {
            words.push(if k == 0 { "in" } else { "and" }.into());
            if k == named_place {
                spans.push(TokenSpan {
                    start: words.len(),
                    end: words.len() + place.len(),
                    label: 1,
                });
                words.extend(place.iter().map(|w| capitalise(w)));
            } else {
                words.extend(place.iter().map(|w| w.to_string()));
            }
        }
        words.push("today".into());
        items.push(words);
        gold.push(spans);
    }
    (items, gold)
}

/// Exact-match micro F1 of predicted against gold spans.
fn f1(pred: &[Vec<TokenSpan>], gold: &[Vec<TokenSpan>]) -> f64 {
    let (mut hit, mut np, mut ng) = (0, 0, 0);
    for (p, g) in pred.iter().zip(gold) {
        np += p.len();
        ng += g.len();
        hit += p.iter().filter(|s| g.contains(s)).count();
    }
    if np + ng == 0 {
        return 1.0;
    }
    2.0 * hit as f64 / (np + ng) as f64
}

fn spans(predictions: &[concord_ml::TokenPrediction]) -> Vec<Vec<TokenSpan>> {
    predictions
        .iter()
        .map(|p| p.spans.iter().map(|s| s.span).collect())
        .collect()
}

fn head_params() -> TokenHeadParams {
    TokenHeadParams {
        epochs: 60,
        batch_size: 64,
        learning_rate: 1e-2,
        weight_decay: 0.0,
        o_weight: 1.0,
        hidden: 32,
        seed: 5,
    }
}

#[test]
fn pieces_align_to_words_including_split_and_unknown_words() {
    let enc = tiny();
    let id = |t: &str| VOCAB.iter().position(|v| *v == t).unwrap() as u32;
    let words = ["Alice", "playing", "Zqxj", "PARIS", "\u{200b}", "games"];
    let pieces = enc.word_pieces(&words).unwrap();
    assert_eq!(
        pieces.words,
        vec![0..1, 1..3, 3..4, 4..5, 5..6, 6..8],
        "{pieces:?}"
    );
    assert_eq!(
        pieces.ids,
        vec![
            id("alice"),
            id("play"),
            id("##ing"),
            id("[UNK]"),
            id("paris"),
            // A zero-width space leaves no piece: it stands as the unknown token.
            id("[UNK]"),
            id("game"),
            id("##s"),
        ]
    );
    assert_eq!(
        enc.special_tokens().unwrap(),
        (vec![id("[CLS]")], vec![id("[SEP]")])
    );
    // First-piece and mean pooling agree on one-piece words and differ on split ones.
    let item = vec![words.to_vec()];
    let no_shape = |pooling| FeatureSettings {
        pooling,
        word_shape: false,
        shape_window: 0,
    };
    let first = word_features(&enc, &item, &no_shape(Pooling::First), 8, &mut |_, _| {}).unwrap();
    let mean = word_features(&enc, &item, &no_shape(Pooling::Mean), 8, &mut |_, _| {}).unwrap();
    assert_eq!(first[0].len(), words.len());
    assert_eq!(first[0][0], mean[0][0]);
    assert_ne!(first[0][1], mean[0][1]);
    // Shape features follow the hidden state and see the capitals the tokenizer drops.
    let shaped =
        word_features(&enc, &item, &FeatureSettings::default(), 8, &mut |_, _| {}).unwrap();
    assert_eq!(shaped[0][0].len(), 16 + 5 * SHAPE_FEATURES);
    assert_eq!(&shaped[0][0][..16], &first[0][0][..]);
    let lower = word_features(
        &enc,
        &[vec![
            "alice", "playing", "Zqxj", "PARIS", "\u{200b}", "games",
        ]],
        &FeatureSettings::default(),
        8,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(&lower[0][0][..16], &shaped[0][0][..16], "same pieces");
    assert_ne!(lower[0][0], shaped[0][0], "capitals must show in the shape");
}

#[test]
fn a_long_document_gets_one_prediction_per_word_from_windows() {
    let enc = tiny();
    // 5,000 words, about 6,700 pieces: hundreds of 16-token windows.
    let words: Vec<String> = (0..5000)
        .map(|i| match i % 3 {
            0 => "playing".to_string(),
            1 => capitalise(PEOPLE[i % PEOPLE.len()]),
            _ => "the".to_string(),
        })
        .collect();
    let items = vec![words.clone()];
    let mut calls = Vec::new();
    let x = word_features(
        &enc,
        &items,
        &FeatureSettings::default(),
        32,
        &mut |d, t| calls.push((d, t)),
    )
    .unwrap();
    assert_eq!(x[0].len(), 5000);
    let windows = calls.last().unwrap().1;
    assert!(windows > 400, "only {windows} windows");
    assert_eq!(calls.last().unwrap().0, windows);
    // Every word was filled from some window (an unread word keeps a zero hidden state).
    for (w, row) in x[0].iter().enumerate() {
        assert!(
            row[..16].iter().any(|&v| v != 0.0),
            "word {w} got no hidden state"
        );
    }
    // A word is read with context: the same word at two places differs, unlike a lost word.
    assert_ne!(x[0][3][..16], x[0][2998][..16]);
    let (train, gold) = synthetic(40, 1);
    let feats = word_features(
        &enc,
        &train,
        &FeatureSettings::default(),
        16,
        &mut |_, _| {},
    )
    .unwrap();
    let clf = TokenClassifier::train(
        &labels(),
        FeatureSettings::default(),
        &feats,
        &gold,
        &head_params(),
        &Device::Cpu,
    )
    .unwrap();
    let predictions = clf.predict(&enc, &items, 32).unwrap();
    assert_eq!(predictions[0].tags.len(), 5000);
    assert_eq!(predictions[0].probabilities.len(), 5000);
    // An item without words predicts nothing, without error.
    let empty: Vec<Vec<String>> = vec![Vec::new()];
    let p = clf.predict(&enc, &empty, 4).unwrap();
    assert!(p[0].tags.is_empty() && p[0].spans.is_empty());
}

#[test]
fn the_head_learns_names_that_only_capitals_reveal() {
    let enc = tiny();
    let (train, gold) = synthetic(120, 1);
    let (test, test_gold) = synthetic(60, 2);
    let score = |settings: FeatureSettings| {
        let x = word_features(&enc, &train, &settings, 16, &mut |_, _| {}).unwrap();
        let clf =
            TokenClassifier::train(&labels(), settings, &x, &gold, &head_params(), &Device::Cpu)
                .unwrap();
        let predictions = clf.predict(&enc, &test, 16).unwrap();
        (f1(&spans(&predictions), &test_gold), predictions)
    };
    let (with_shape, predictions) = score(FeatureSettings::default());
    assert!(with_shape >= 0.95, "F1 {with_shape} with word shapes");
    // The two-word place is one span.
    assert!(predictions
        .iter()
        .flat_map(|p| &p.spans)
        .any(|s| s.span.end - s.span.start == 2 && s.span.label == 1));
    for p in &predictions {
        for s in &p.spans {
            assert!((0.0..=1.0).contains(&s.confidence));
        }
        assert!((0.0..=1.0).contains(&p.uncertainty));
    }
    // Without shapes, "Paris" and "paris" are the same pieces: the pattern is out of reach.
    let (without, _) = score(FeatureSettings {
        word_shape: false,
        ..FeatureSettings::default()
    });
    assert!(
        without < with_shape - 0.2,
        "F1 {without} without shapes vs {with_shape} with"
    );
}

#[test]
fn decoding_never_emits_inside_after_outside() {
    let enc = tiny();
    let tag_set = TagSet::new(&labels());
    let settings = FeatureSettings::default();
    let inputs = settings.dimension(16);
    let tags = tag_set.len();
    // A head whose word-by-word favourite is I-person everywhere, and random heads.
    let mut rng = concord_ml::SplitMix64::new(9);
    let mut heads = vec![TokenHead {
        inputs,
        hidden: 0,
        tags,
        hidden_weight: Vec::new(),
        hidden_bias: Vec::new(),
        weight: vec![0.0; tags * inputs],
        bias: vec![0.0, 0.0, 3.0, 0.0, 0.0],
    }];
    for _ in 0..5 {
        heads.push(TokenHead {
            inputs,
            hidden: 0,
            tags,
            hidden_weight: Vec::new(),
            hidden_bias: Vec::new(),
            weight: (0..tags * inputs)
                .map(|_| ((rng.next_u64() % 2001) as f32 / 1000.0 - 1.0) * 3.0)
                .collect(),
            bias: vec![0.0; tags],
        });
    }
    let (items, _) = synthetic(20, 3);
    for head in heads {
        let clf = TokenClassifier {
            labels: labels(),
            features: settings,
            head,
        };
        for p in clf.predict(&enc, &items, 8).unwrap() {
            let mut previous = None;
            for &t in &p.tags {
                assert!(
                    tag_set.allowed(previous, t),
                    "{:?} after {:?} in {:?}",
                    tag_set.tag_name(t),
                    previous.map(|x| tag_set.tag_name(x)),
                    p.tags
                );
                previous = Some(t);
            }
            assert_eq!(
                p.spans.iter().map(|s| s.span).collect::<Vec<_>>(),
                tag_set.decode(&p.tags)
            );
        }
    }
    // The I-person-everywhere head decodes to B-person I-person …: one span over the item.
    let clf = TokenClassifier {
        labels: labels(),
        features: settings,
        head: TokenHead {
            inputs,
            hidden: 0,
            tags,
            hidden_weight: Vec::new(),
            hidden_bias: Vec::new(),
            weight: vec![0.0; tags * inputs],
            bias: vec![0.0, 0.0, 3.0, 0.0, 0.0],
        },
    };
    let p = clf.predict(&enc, &items[..1], 8).unwrap();
    assert_eq!(p[0].tags[0], 1, "{:?}", p[0].tags);
    assert_eq!(p[0].spans.len(), 1);
}

#[test]
fn a_stored_classifier_predicts_the_same() {
    let enc = tiny();
    let (train, gold) = synthetic(30, 4);
    let settings = FeatureSettings {
        pooling: Pooling::Mean,
        ..FeatureSettings::default()
    };
    let x = word_features(&enc, &train, &settings, 16, &mut |_, _| {}).unwrap();
    let clf = TokenClassifier::train(&labels(), settings, &x, &gold, &head_params(), &Device::Cpu)
        .unwrap();
    let json = serde_json::to_string(&clf).unwrap();
    let back: TokenClassifier = serde_json::from_str(&json).unwrap();
    assert_eq!(back, clf);
    assert_eq!(
        back.predict(&enc, &train, 16).unwrap(),
        clf.predict(&enc, &train, 16).unwrap()
    );
    // A stored head whose weights do not match its sizes is refused, not misread.
    let mut broken = back.clone();
    broken.head.bias.pop();
    assert!(matches!(
        broken.predict(&enc, &train, 16),
        Err(MlError::Config(_))
    ));
    // So is a classifier for another feature width (another encoder or settings).
    let mut other = back;
    other.features.shape_window = 0;
    assert!(matches!(
        other.predict(&enc, &train, 16),
        Err(MlError::Config(_))
    ));
}

#[test]
fn gold_spans_that_do_not_fit_are_refused() {
    let enc = tiny();
    let (train, mut gold) = synthetic(3, 5);
    gold[1].push(TokenSpan {
        start: 2,
        end: 40,
        label: 0,
    });
    let x = word_features(
        &enc,
        &train,
        &FeatureSettings::default(),
        16,
        &mut |_, _| {},
    )
    .unwrap();
    let err = TokenClassifier::train(
        &labels(),
        FeatureSettings::default(),
        &x,
        &gold,
        &head_params(),
        &Device::Cpu,
    )
    .unwrap_err();
    assert!(err.to_string().contains("item 1"), "{err}");
    gold[1].pop();
    gold[2].push(TokenSpan {
        start: 0,
        end: 1,
        label: 2,
    });
    let err = fine_tune_tokens(
        &enc,
        &labels(),
        FeatureSettings::default(),
        &train,
        &gold,
        &TokenFineTuneParams::default(),
        &mut |_, _| ControlFlow::Continue(()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("item 2"), "{err}");
}

#[test]
fn fine_tuning_learns_the_pattern_and_can_be_cancelled() {
    let (mut train, mut gold) = synthetic(60, 6);
    // One item longer than a window, so training reads several windows of one item.
    let long: Vec<String> = train[..3].iter().flatten().cloned().collect();
    let mut long_gold = Vec::new();
    let mut offset = 0;
    for (words, spans) in train[..3].iter().zip(&gold[..3]) {
        long_gold.extend(spans.iter().map(|s| TokenSpan {
            start: s.start + offset,
            end: s.end + offset,
            label: s.label,
        }));
        offset += words.len();
    }
    train.push(long);
    gold.push(long_gold);
    let (test, test_gold) = synthetic(30, 7);
    let params = TokenFineTuneParams {
        epochs: 8,
        batch_size: 8,
        encoder_learning_rate: 2e-3,
        head_learning_rate: 2e-2,
        o_weight: 1.0,
        hidden: 0,
        warmup: 0.1,
        probe_epochs: 0,
        seed: 3,
    };
    // A cancel stops it at the step where it is asked for.
    let mut seen = 0;
    let cancelled = fine_tune_tokens(
        &tiny(),
        &labels(),
        FeatureSettings::default(),
        &train,
        &gold,
        &params,
        &mut |step, _| {
            seen = step;
            if step == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        },
    );
    assert!(matches!(cancelled, Err(MlError::Cancelled)));
    assert_eq!(seen, 3);

    let enc = tiny();
    let before = word_features(
        &enc,
        &test[..1],
        &FeatureSettings::default(),
        4,
        &mut |_, _| {},
    )
    .unwrap();
    let mut last = (0, 0);
    let (clf, losses) = fine_tune_tokens(
        &enc,
        &labels(),
        FeatureSettings::default(),
        &train,
        &gold,
        &params,
        &mut |step, steps| {
            last = (step, steps);
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    // 61 items; the long one is at least two windows: ≥ 62 windows, in batches of 8.
    assert!(last.0 == last.1 && last.1 >= 8 * 8, "{last:?}");
    assert_eq!(losses.len(), 8);
    assert!(
        losses.last().unwrap() < &(losses[0] * 0.5),
        "loss did not fall: {losses:?}"
    );
    let after = word_features(
        &enc,
        &test[..1],
        &FeatureSettings::default(),
        4,
        &mut |_, _| {},
    )
    .unwrap();
    assert_ne!(before, after, "the encoder's weights did not change");
    let predictions = clf.predict(&enc, &test, 16).unwrap();
    let score = f1(&spans(&predictions), &test_gold);
    assert!(score >= 0.9, "F1 {score} after fine-tuning");
}

#[test]
fn fine_tuning_can_start_from_a_head_probed_on_frozen_features() {
    let enc = tiny();
    let (train, gold) = synthetic(30, 8);
    let params = TokenFineTuneParams {
        epochs: 1,
        batch_size: 8,
        // Nothing moves: what comes out is where fine-tuning started.
        encoder_learning_rate: 0.0,
        head_learning_rate: 0.0,
        o_weight: 0.5,
        hidden: 8,
        warmup: 0.1,
        probe_epochs: 20,
        seed: 4,
    };
    let mut calls = Vec::new();
    let (tuned, _) = fine_tune_tokens(
        &enc,
        &labels(),
        FeatureSettings::default(),
        &train,
        &gold,
        &params,
        &mut |step, steps| {
            calls.push((step, steps));
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(calls[0], (0, 4), "the probe reports before the first step");
    let x = word_features(&enc, &train, &FeatureSettings::default(), 8, &mut |_, _| {}).unwrap();
    let probed = TokenClassifier::train(
        &labels(),
        FeatureSettings::default(),
        &x,
        &gold,
        &TokenHeadParams {
            epochs: 20,
            o_weight: 0.5,
            hidden: 8,
            seed: 4,
            ..TokenHeadParams::default()
        },
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(tuned.head, probed.head);
    assert!(tuned.head.weight.iter().any(|&w| w != 0.0));
}
