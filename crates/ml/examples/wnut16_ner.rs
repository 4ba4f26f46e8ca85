//! Named entities with the real all-MiniLM-L6-v2 on WNUT-16 (`../shared/data/wnut16_dev.conll`:
//! 1,900 tweets, 10 entity types): Concord's two token-classification trainers, a head on
//! frozen word features and full fine-tuning, against the all-O baseline.
//!
//! The split is fixed by a hash of each tweet's text (SHA-256 of its tokens joined by spaces:
//! 60% train, 20% validation, 20% test), so it does not depend on file order and duplicates
//! fall on one side. Every choice (feature pooling, shape features, `O` weight, head size,
//! fine-tuning epochs) is made on the validation part; the test part is predicted once per
//! trainer, with the chosen settings, and only then scored. Scores are strict entity-level
//! precision, recall and F1 (exact span and type, seqeval's convention), micro and macro.
//!
//! Fine-tuning starts from the chosen frozen head (linear probing, then fine-tuning) and runs
//! `--max-epochs` epochs (default 3: about 7 minutes of training on 2 shared cores in a release
//! build); the epoch with the best validation score is kept and tested.
//!
//! `cargo run --release -p concord-ml --example wnut16_ner [-- --max-epochs N]` (needs the
//! model from `scripts/setup.sh`). `--validation-only` (stop before the test part) and
//! `--fixed-head` (skip the head search, use its earlier choice) are for development runs.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::Tensor;
use concord_agreement::spans::{span_f1, Span, SpanAgreement, SpanMatch};
use concord_domain::bio::{TagSet, TokenSpan};
use concord_domain::conll::parse_conll;
use concord_ml::{
    word_features, Device, Encoder, FeatureSettings, Pooling, TokenClassifier, TokenFineTuneParams,
    TokenFineTuning, TokenHeadParams, TokenPrediction,
};
use sha2::{Digest, Sha256};

const TYPES: [&str; 10] = [
    "person",
    "geo-loc",
    "company",
    "facility",
    "product",
    "musicartist",
    "sportsteam",
    "movie",
    "tvshow",
    "other",
];
const BATCH: usize = 64;

struct Tweet {
    words: Vec<String>,
    spans: Vec<TokenSpan>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Train,
    Validation,
    Test,
}

/// The fixed split: the first 8 bytes of the SHA-256 of the text, modulo 100.
fn part_of(words: &[String]) -> Part {
    let digest = Sha256::digest(words.join(" ").as_bytes());
    let bucket = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) % 100;
    match bucket {
        0..60 => Part::Train,
        60..80 => Part::Validation,
        _ => Part::Test,
    }
}

fn peak_memory_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Strict (exact span and type) scores of predicted against gold spans over items.
fn score(pred: &[Vec<TokenSpan>], gold: &[&Tweet], labels: &[String]) -> SpanAgreement {
    let spans = |lists: Vec<&Vec<TokenSpan>>| -> Vec<Span> {
        lists
            .into_iter()
            .enumerate()
            .flat_map(|(i, list)| {
                list.iter().map(move |s| {
                    Span::new(
                        i.to_string(),
                        s.start as u64,
                        s.end as u64,
                        labels[s.label].clone(),
                    )
                })
            })
            .collect()
    };
    let p = spans(pred.iter().collect());
    let g = spans(gold.iter().map(|t| &t.spans).collect());
    span_f1(&p, &g, SpanMatch::Exact).expect("spans are well formed")
}

fn micro(a: &SpanAgreement) -> (f64, f64, f64) {
    // seqeval's convention: undefined (no predictions) counts as 0.
    let (p, r, f1) = a.micro();
    let value = |c: concord_agreement::Coefficient| c.value().unwrap_or(0.0);
    (value(p), value(r), value(f1))
}

fn spans_of(predictions: &[TokenPrediction]) -> Vec<Vec<TokenSpan>> {
    predictions
        .iter()
        .map(|p| p.spans.iter().map(|s| s.span).collect())
        .collect()
}

/// The columns of frozen features (hidden ++ own shape ++ neighbours' shapes) a setting uses.
fn slice_features(x: &[Vec<Vec<f32>>], width: usize) -> Vec<Vec<Vec<f32>>> {
    x.iter()
        .map(|item| item.iter().map(|row| row[..width].to_vec()).collect())
        .collect()
}

struct Row {
    trainer: &'static str,
    scores: SpanAgreement,
    train_seconds: f64,
    train_words_per_s: f64,
    predict_words_per_s: f64,
    peak_mib: f64,
}

fn describe(s: &FeatureSettings) -> String {
    format!(
        "{} piece{}, {}",
        match s.pooling {
            Pooling::First => "first",
            Pooling::Mean => "mean of",
        },
        if s.pooling == Pooling::Mean { "s" } else { "" },
        if !s.word_shape {
            "no shape".to_string()
        } else if s.shape_window == 0 {
            "word shape".to_string()
        } else {
            format!("word shape ±{}", s.shape_window)
        }
    )
}

/// The validation search for the head on frozen features: head size and `O` weight first
/// (on the widest features), then pooling and shape features with that head. Returns the
/// best validation micro-F1 with its settings.
fn frozen_search(
    base: &Encoder,
    labels: &[String],
    train_words: &[Vec<String>],
    train_gold: &[Vec<TokenSpan>],
    val_words: &[Vec<String>],
    validation: &[&Tweet],
) -> (f64, FeatureSettings, TokenHeadParams) {
    let device = Device::Cpu;
    let hidden = base.dimension();
    // Features are computed once per pooling with the widest shape window; narrower settings
    // are a prefix of each row.
    let widest = |pooling| FeatureSettings {
        pooling,
        word_shape: true,
        shape_window: 2,
    };
    let stage_one = FeatureSettings {
        shape_window: 1,
        ..widest(Pooling::First)
    };
    println!("| features | head | O weight | validation micro-F1 | fit s |");
    println!("|---|---|---|---|---|");
    let mut frozen = Vec::new();
    for pooling in [Pooling::First, Pooling::Mean] {
        let tr = word_features(base, train_words, &widest(pooling), BATCH, &mut |_, _| {})
            .expect("features");
        let va = word_features(base, val_words, &widest(pooling), BATCH, &mut |_, _| {})
            .expect("features");
        frozen.push((pooling, tr, va));
    }
    let val_f1 = |settings: FeatureSettings, params: &TokenHeadParams| -> (f64, f64) {
        let (_, tr, va) = frozen
            .iter()
            .find(|(p, _, _)| *p == settings.pooling)
            .expect("pooling computed");
        let width = settings.dimension(hidden);
        let start = Instant::now();
        let clf = TokenClassifier::train(
            labels,
            settings,
            &slice_features(tr, width),
            train_gold,
            params,
            &device,
        )
        .expect("train");
        let seconds = start.elapsed().as_secs_f64();
        let preds: Vec<TokenPrediction> = slice_features(va, width)
            .iter()
            .map(|x| clf.predict_features(x).expect("predict"))
            .collect();
        (
            micro(&score(&spans_of(&preds), validation, labels)).2,
            seconds,
        )
    };
    // Stage 1: head size and O weight, first-piece pooling and shapes of ±1 word.
    let mut best: (f64, FeatureSettings, TokenHeadParams) =
        (-1.0, stage_one, TokenHeadParams::default());
    for hidden_units in [0usize, 256] {
        for o_weight in [1.0f32, 0.5, 0.25] {
            let params = TokenHeadParams {
                hidden: hidden_units,
                o_weight,
                ..TokenHeadParams::default()
            };
            let settings = stage_one;
            let (f1, seconds) = val_f1(settings, &params);
            println!(
                "| {} | {} | {o_weight} | {f1:.4} | {seconds:.1} |",
                describe(&settings),
                if hidden_units == 0 {
                    "linear".to_string()
                } else {
                    format!("MLP {hidden_units}")
                }
            );
            if f1 > best.0 {
                best = (f1, settings, params);
            }
        }
    }
    // Stage 2: pooling and shape features, with the stage-1 head.
    for pooling in [Pooling::First, Pooling::Mean] {
        for (word_shape, shape_window) in [(false, 0), (true, 0), (true, 1), (true, 2)] {
            let settings = FeatureSettings {
                pooling,
                word_shape,
                shape_window,
            };
            if settings == stage_one {
                continue; // scored in stage 1
            }
            let (f1, seconds) = val_f1(settings, &best.2);
            println!(
                "| {} | {} | {} | {f1:.4} | {seconds:.1} |",
                describe(&settings),
                if best.2.hidden == 0 {
                    "linear".to_string()
                } else {
                    format!("MLP {}", best.2.hidden)
                },
                best.2.o_weight
            );
            if f1 > best.0 {
                best = (f1, settings, best.2.clone());
            }
        }
    }
    best
}

/// The fine-tuning epoch with the best validation score so far, with what it takes to use it.
struct BestEpoch {
    validation_f1: f64,
    epoch: usize,
    classifier: TokenClassifier,
    weights: Vec<(String, Tensor)>,
    /// Training time up to the end of this epoch (validation passes excluded).
    training_seconds: f64,
}

/// A copy of every encoder weight (to keep the best epoch's).
fn snapshot(encoder: &Encoder) -> Vec<(String, Tensor)> {
    let vars = encoder.varmap().data().lock().expect("weights");
    vars.iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().copy().expect("copy")))
        .collect()
}

fn restore(encoder: &Encoder, saved: &[(String, Tensor)]) {
    let vars = encoder.varmap().data().lock().expect("weights");
    for (name, tensor) in saved {
        vars[name].set(tensor).expect("restore");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let max_epochs: usize = args
        .iter()
        .position(|a| a == "--max-epochs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // Development runs only: stop before the test part, and take the head settings the
    // validation search chose instead of searching again.
    let validation_only = args.iter().any(|a| a == "--validation-only");
    let fixed_head = args.iter().any(|a| a == "--fixed-head");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let model = root.join("../../models/all-MiniLM-L6-v2");
    let data = root.join("../../../shared/data/wnut16_dev.conll");
    let body = std::fs::read_to_string(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    let labels: Vec<String> = TYPES.iter().map(|t| t.to_string()).collect();
    let tag_set = TagSet::new(&labels);
    let tweets: Vec<Tweet> = parse_conll(&body)
        .expect("CoNLL")
        .into_iter()
        .map(|s| {
            let tags: Vec<u16> = s
                .tags
                .iter()
                .map(|t| {
                    tag_set
                        .parse(t)
                        .unwrap_or_else(|e| panic!("line {}: {e}", s.first_line))
                })
                .collect();
            Tweet {
                spans: tag_set.decode(&tags),
                words: s.tokens,
            }
        })
        .collect();
    let part =
        |p: Part| -> Vec<&Tweet> { tweets.iter().filter(|t| part_of(&t.words) == p).collect() };
    let (train, validation, test) = (part(Part::Train), part(Part::Validation), part(Part::Test));
    let words =
        |ts: &[&Tweet]| -> Vec<Vec<String>> { ts.iter().map(|t| t.words.clone()).collect() };
    let gold =
        |ts: &[&Tweet]| -> Vec<Vec<TokenSpan>> { ts.iter().map(|t| t.spans.clone()).collect() };
    let count_words = |ts: &[&Tweet]| -> usize { ts.iter().map(|t| t.words.len()).sum() };
    let count_spans = |ts: &[&Tweet]| -> usize { ts.iter().map(|t| t.spans.len()).sum() };
    println!(
        "WNUT-16 ({}): {} tweets; train {} ({} words, {} entities), validation {} ({} words, {} entities), test {} ({} words, {} entities)",
        data.display(),
        tweets.len(),
        train.len(),
        count_words(&train),
        count_spans(&train),
        validation.len(),
        count_words(&validation),
        count_spans(&validation),
        test.len(),
        count_words(&test),
        count_spans(&test),
    );
    let (train_words, val_words, test_words) = (words(&train), words(&validation), words(&test));
    let train_gold = gold(&train);
    let device = Device::Cpu;
    let base = Encoder::load(&model, &device).expect("model (run scripts/setup.sh)");

    // ---- Head on frozen features: choices on validation. ----
    println!("\n## Validation: head on frozen features\n");
    let (frozen_val_f1, settings, head_params) = if fixed_head {
        // The library's defaults are what this search chose.
        (
            f64::NAN,
            FeatureSettings::default(),
            TokenHeadParams::default(),
        )
    } else {
        frozen_search(
            &base,
            &labels,
            &train_words,
            &train_gold,
            &val_words,
            &validation,
        )
    };
    println!(
        "\nChosen: {}, {}, O weight {} (validation micro-F1 {frozen_val_f1:.4})",
        describe(&settings),
        if head_params.hidden == 0 {
            "linear head".to_string()
        } else {
            format!("MLP head of {}", head_params.hidden)
        },
        head_params.o_weight
    );

    // ---- Head on frozen features: trained on the train part, the test predicted once. ----
    let mut rows = Vec::new();
    let start = Instant::now();
    let x = word_features(&base, &train_words, &settings, BATCH, &mut |_, _| {}).expect("features");
    let clf = TokenClassifier::train(&labels, settings, &x, &train_gold, &head_params, &device)
        .expect("train");
    let frozen_seconds = start.elapsed().as_secs_f64();
    drop(x);
    if !validation_only {
        let start = Instant::now();
        let preds = clf.predict(&base, &test_words, BATCH).expect("predict");
        let predict_seconds = start.elapsed().as_secs_f64();
        rows.push(Row {
            trainer: "head on frozen features",
            scores: score(&spans_of(&preds), &test, &labels),
            train_seconds: frozen_seconds,
            train_words_per_s: count_words(&train) as f64 / frozen_seconds,
            predict_words_per_s: count_words(&test) as f64 / predict_seconds,
            peak_mib: peak_memory_mib(),
        });
    }

    // ---- Fine-tuning, starting from the frozen head (linear probing, then fine-tuning);
    // the number of epochs is chosen on validation (the best epoch's weights are kept). ----
    println!("\n## Validation: fine-tuning from the frozen head (same features and O weight)\n");
    let tuned = Encoder::load(&model, &device).expect("model");
    let ft_params = TokenFineTuneParams {
        epochs: max_epochs,
        o_weight: head_params.o_weight,
        hidden: head_params.hidden,
        ..TokenFineTuneParams::default()
    };
    println!(
        "encoder lr {}, head lr {}, batch {}, warm-up {}, schedule over {} epochs\n",
        ft_params.encoder_learning_rate,
        ft_params.head_learning_rate,
        ft_params.batch_size,
        ft_params.warmup,
        max_epochs
    );
    println!("| epoch | mean loss | validation micro-F1 | cumulative training s |");
    println!("|---|---|---|---|");
    let start = Instant::now();
    let mut run = TokenFineTuning::new(
        &tuned,
        &labels,
        settings,
        &train_words,
        &train_gold,
        &ft_params,
        Some(&clf.head),
    )
    .expect("fine-tuning");
    // Fine-tuning's training time includes the frozen head it starts from.
    let mut training = frozen_seconds;
    let mut best_epoch: Option<BestEpoch> = None;
    for epoch in 1..=max_epochs {
        let epoch_start = Instant::now();
        let loss = run
            .run_epoch(&mut |step, steps| {
                if step % 25 == 0 {
                    eprintln!(
                        "  step {step}/{steps}, {:.0} s",
                        start.elapsed().as_secs_f64()
                    );
                }
                ControlFlow::Continue(())
            })
            .expect("epoch");
        training += epoch_start.elapsed().as_secs_f64();
        let clf = run.classifier().expect("head");
        let preds = clf.predict(&tuned, &val_words, BATCH).expect("predict");
        let f1 = micro(&score(&spans_of(&preds), &validation, &labels)).2;
        println!("| {epoch} | {loss:.4} | {f1:.4} | {training:.0} |");
        if best_epoch.as_ref().is_none_or(|b| f1 > b.validation_f1) {
            best_epoch = Some(BestEpoch {
                validation_f1: f1,
                epoch,
                classifier: clf,
                weights: snapshot(&tuned),
                training_seconds: training,
            });
        }
    }
    drop(run);
    let BestEpoch {
        validation_f1: ft_val_f1,
        epoch,
        classifier: clf,
        weights,
        training_seconds: ft_seconds,
    } = best_epoch.expect("at least one epoch");
    restore(&tuned, &weights);
    drop(weights);
    println!("\nChosen: epoch {epoch} (validation micro-F1 {ft_val_f1:.4})");
    if validation_only {
        return;
    }
    let start = Instant::now();
    let preds = clf.predict(&tuned, &test_words, BATCH).expect("predict");
    let predict_seconds = start.elapsed().as_secs_f64();
    rows.push(Row {
        trainer: "fine-tuned encoder + head",
        scores: score(&spans_of(&preds), &test, &labels),
        train_seconds: ft_seconds,
        train_words_per_s: (count_words(&train) * epoch) as f64 / ft_seconds,
        predict_words_per_s: count_words(&test) as f64 / predict_seconds,
        peak_mib: peak_memory_mib(),
    });

    // ---- The test table. ----
    let baseline = score(&vec![Vec::new(); test.len()], &test, &labels);
    println!(
        "\n## Test ({} tweets, {} entities; scored once per trainer)\n",
        test.len(),
        count_spans(&test)
    );
    println!("| trainer | micro P | micro R | micro F1 | macro F1 | training s | train words/s | predict words/s | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let (p, r, f) = micro(&baseline);
    println!(
        "| all O (baseline) | {p:.4} | {r:.4} | {f:.4} | {:.4} | – | – | – | – |",
        baseline.macro_f1.value().unwrap_or(0.0)
    );
    for row in &rows {
        let (p, r, f) = micro(&row.scores);
        println!(
            "| {} | {p:.4} | {r:.4} | {f:.4} | {:.4} | {:.1} | {:.0} | {:.0} | {:.0} |",
            row.trainer,
            row.scores.macro_f1.value().unwrap_or(0.0),
            row.train_seconds,
            row.train_words_per_s,
            row.predict_words_per_s,
            row.peak_mib
        );
    }
    println!(
        "\n| type | test entities | all O | {} |",
        rows.iter()
            .map(|r| r.trainer)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|---|{}", "---|".repeat(rows.len()));
    for label in &labels {
        let gold_count = test
            .iter()
            .flat_map(|t| &t.spans)
            .filter(|s| labels[s.label] == *label)
            .count();
        let f1 = |a: &SpanAgreement| {
            a.per_label
                .iter()
                .find(|l| l.label == *label)
                .and_then(|l| l.f1.value())
                .map_or("–".to_string(), |v| format!("{v:.3}"))
        };
        println!(
            "| {label} | {gold_count} | {} | {} |",
            f1(&baseline),
            rows.iter()
                .map(|r| f1(&r.scores))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    println!(
        "\nPeak memory is the process's VmHWM after each trainer (the fine-tuning row includes everything before it). \
         Training words/s: train-split words × epochs / training seconds (the frozen head's seconds include computing the train features)."
    );
}
