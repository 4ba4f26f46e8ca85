//! Replays a labelled dataset as if annotators answered every picked item with its gold label:
//! zero-shot accuracy first, then accuracy and macro-F1 after each round of labels picked by
//! each strategy, against the same held-out split (stratified, fixed seed); and the loop that
//! trains itself, replayed with the engine's head, queue order and not-worse rule
//! ([`simulate_auto_loop`]).

use serde::{Deserialize, Serialize};

use concord_agreement::rng::SplitMix64;

use crate::active::{select, Pool, Strategy};
use crate::head::{HeadParams, LinearHead};
use crate::logistic::{train_head_cv, CvHeadParams};
use crate::metrics::{evaluate, Evaluation};
use crate::zero_shot::{Calibration, ZeroShot};
use crate::{Device, MlError};

pub struct SimulationInput<'a> {
    pub embeddings: &'a [Vec<f32>],
    /// Gold class index per item.
    pub gold: &'a [usize],
    pub labels: &'a [String],
    /// One embedding per label (its name and description).
    pub label_embeddings: &'a [Vec<f32>],
    pub round_size: usize,
    pub rounds: usize,
    pub test_fraction: f64,
    pub seed: u64,
}

/// One strategy to replay: how items are picked, and whether the diversity step applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategyRun {
    pub strategy: Strategy,
    pub diversity: bool,
}

impl StrategyRun {
    pub fn name(&self) -> String {
        if self.diversity {
            format!("{}+diversity", self.strategy.as_str())
        } else {
            self.strategy.as_str().to_string()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundResult {
    pub strategy: String,
    pub round: usize,
    pub labels: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimulationReport {
    pub pool: usize,
    pub test: usize,
    /// Always answering the pool's most frequent label.
    pub majority_accuracy: f64,
    /// (calibration, evaluation) for each zero-shot variant.
    pub zero_shot: Vec<(Calibration, Evaluation)>,
    /// Standardised zero-shot with label priors re-estimated on the pool (EM).
    pub zero_shot_priors: Evaluation,
    /// A head self-trained on the most confident prior-adjusted zero-shot pseudo-labels.
    pub zero_shot_self_trained: Evaluation,
    /// The recipe the engine uses before any label ([`crate::COLD_START`]), from the one
    /// prompt per label in `label_embeddings`.
    pub zero_shot_shipped: Evaluation,
    /// A head trained on every pool label: the ceiling the rounds approach.
    pub all_labels: Evaluation,
    pub rounds: Vec<RoundResult>,
}

/// Stratified split: `(pool, test)` item indices.
fn split(
    gold: &[usize],
    classes: usize,
    test_fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let mut rng = SplitMix64::new(seed);
    let (mut pool, mut test) = (Vec::new(), Vec::new());
    for c in 0..classes {
        let mut members: Vec<usize> = (0..gold.len()).filter(|&i| gold[i] == c).collect();
        rng.shuffle(&mut members);
        let n_test = (members.len() as f64 * test_fraction).round() as usize;
        test.extend_from_slice(&members[..n_test]);
        pool.extend_from_slice(&members[n_test..]);
    }
    pool.sort_unstable();
    test.sort_unstable();
    (pool, test)
}

fn rows(x: &[Vec<f32>], idx: &[usize]) -> Vec<Vec<f32>> {
    idx.iter().map(|&i| x[i].clone()).collect()
}

/// The stratified pool/test split of `input` with the rows each side needs, and the accuracy
/// on the test split of always answering the pool's most common label.
struct PoolAndTest {
    pool: Vec<usize>,
    test: Vec<usize>,
    pool_x: Vec<Vec<f32>>,
    test_x: Vec<Vec<f32>>,
    test_y: Vec<usize>,
    majority_accuracy: f64,
}

fn pool_and_test(input: &SimulationInput) -> PoolAndTest {
    let classes = input.labels.len();
    let (pool, test) = split(input.gold, classes, input.test_fraction, input.seed);
    let test_y: Vec<usize> = test.iter().map(|&i| input.gold[i]).collect();
    let mut counts = vec![0usize; classes];
    for &i in &pool {
        counts[input.gold[i]] += 1;
    }
    let majority = crate::vector::argmax(&counts.iter().map(|&n| n as f32).collect::<Vec<_>>());
    let majority_accuracy =
        test_y.iter().filter(|&&c| c == majority).count() as f64 / test_y.len().max(1) as f64;
    PoolAndTest {
        pool_x: rows(input.embeddings, &pool),
        test_x: rows(input.embeddings, &test),
        pool,
        test,
        test_y,
        majority_accuracy,
    }
}

/// The engine's zero-shot version: standardised similarity calibrated on the pool, and the
/// label priors EM estimates from its predictions on the pool.
fn zero_shot_with_priors(input: &SimulationInput, pool_x: &[Vec<f32>]) -> (ZeroShot, Vec<f32>) {
    let zs = ZeroShot::new(
        input.label_embeddings.to_vec(),
        pool_x,
        Calibration::Standardize,
    );
    let (priors, _) = crate::zero_shot::adjust_priors(&zs.predict(pool_x), 50);
    (zs, priors)
}

/// Zero-shot probabilities re-weighed by the label `priors` (the engine's EM estimate): each
/// row times prior / uniform (1 / `classes`), normalised again.
fn reweigh(probs: Vec<Vec<f32>>, priors: &[f32], classes: usize) -> Vec<Vec<f32>> {
    let uniform = 1.0 / classes as f32;
    probs
        .into_iter()
        .map(|p| {
            let w: Vec<f32> = p.iter().zip(priors).map(|(a, b)| a * b / uniform).collect();
            // A row the priors zero out entirely stays zero instead of dividing by nothing.
            let t: f32 = w.iter().sum::<f32>().max(f32::MIN_POSITIVE);
            w.into_iter().map(|v| v / t).collect()
        })
        .collect()
}

pub fn simulate(
    input: &SimulationInput,
    runs: &[StrategyRun],
    params: &HeadParams,
    device: &Device,
    progress: &mut dyn FnMut(&str),
) -> Result<SimulationReport, MlError> {
    let classes = input.labels.len();
    let PoolAndTest {
        pool,
        test,
        pool_x,
        test_x,
        test_y,
        majority_accuracy,
    } = pool_and_test(input);
    let pool_y: Vec<usize> = pool.iter().map(|&i| input.gold[i]).collect();

    let zero_shot: Vec<(Calibration, Evaluation)> = [
        Calibration::None,
        Calibration::Centre,
        Calibration::Standardize,
    ]
    .into_iter()
    .map(|cal| {
        let zs = ZeroShot::new(input.label_embeddings.to_vec(), &pool_x, cal);
        (cal, evaluate(&zs.predict(&test_x), &test_y, classes))
    })
    .collect();
    let (zs, priors) = zero_shot_with_priors(input, &pool_x);
    let reweigh = |probs: Vec<Vec<f32>>| reweigh(probs, &priors, classes);
    let zero_shot_priors = evaluate(&reweigh(zs.predict(&test_x)), &test_y, classes);
    let pool_adjusted = reweigh(zs.predict(&pool_x));
    let pseudo = crate::zero_shot::self_train(&pool_x, &pool_adjusted, 0.3, params, device)?;
    let zero_shot_self_trained = evaluate(&pseudo.predict(&test_x), &test_y, classes);
    let shipped_prompts: Vec<Vec<Vec<f32>>> = input
        .label_embeddings
        .iter()
        .map(|e| vec![e.clone()])
        .collect();
    let (shipped, shipped_priors) = crate::zero_shot::COLD_START.fit(&shipped_prompts, &pool_x);
    let zero_shot_shipped = evaluate(
        &crate::zero_shot::apply_priors(&shipped.predict(&test_x), &shipped_priors),
        &test_y,
        classes,
    );
    progress("zero-shot done");
    let full = LinearHead::train(&pool_x, &pool_y, classes, params, device)?;
    let all_labels = evaluate(&full.predict(&test_x), &test_y, classes);
    progress("all-labels head done");

    // Round 0's model is the calibrated zero-shot one: it exists before any label does.
    let zs = ZeroShot::new(
        input.label_embeddings.to_vec(),
        &pool_x,
        Calibration::Standardize,
    );
    let zero_probs = zs.predict(input.embeddings);
    let mut results = Vec::new();
    for run in runs {
        let mut labelled: Vec<usize> = Vec::new();
        let mut probs = zero_probs.clone();
        for round in 1..=input.rounds {
            let taken: std::collections::HashSet<usize> = labelled.iter().copied().collect();
            let candidates: Vec<usize> = pool
                .iter()
                .copied()
                .filter(|i| !taken.contains(i))
                .collect();
            if candidates.is_empty() {
                break;
            }
            let picks = select(
                &Pool {
                    embeddings: input.embeddings,
                    probs: Some(&probs),
                    candidates: &candidates,
                },
                run.strategy,
                input.round_size,
                run.diversity,
                input.seed ^ round as u64,
            );
            labelled.extend(picks.iter().map(|p| p.index));
            let x = rows(input.embeddings, &labelled);
            let y: Vec<usize> = labelled.iter().map(|&i| input.gold[i]).collect();
            let head = LinearHead::train(&x, &y, classes, params, device)?;
            let e = evaluate(&head.predict(&test_x), &test_y, classes);
            results.push(RoundResult {
                strategy: run.name(),
                round,
                labels: labelled.len(),
                accuracy: e.accuracy,
                macro_f1: e.macro_f1,
            });
            probs = head.predict(input.embeddings);
        }
        progress(&format!("{} done", run.name()));
    }
    Ok(SimulationReport {
        pool: pool.len(),
        test: test.len(),
        majority_accuracy,
        zero_shot,
        zero_shot_priors,
        zero_shot_self_trained,
        zero_shot_shipped,
        all_labels,
        rounds: results,
    })
}

/// How [`simulate_auto_loop`] replays the loop that trains itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoLoopSettings {
    /// Retrain after this many new labels (the project setting; 20 by default).
    pub every: usize,
    /// Label counts at which the active version is measured on the test split.
    pub checkpoints: Vec<usize>,
    /// Labels a training needs at least (the engine's minimum).
    pub minimum: usize,
    /// The head every training fits (the engine's).
    pub head: CvHeadParams,
    /// Label counts at which the loop tunes few-shot instead (the project's `few_shot_at`),
    /// replayed when [`simulate_auto_loop`] is given a tuner.
    #[serde(default)]
    pub few_shot_at: Vec<usize>,
}

/// Trains a few-shot version on the given labelled items (indices into the input) and returns
/// every item's probabilities under it (`concord simulate` tunes a fresh copy of the encoder,
/// SetFit-style, and re-embeds every item, as the engine's `setfit` trainer does).
pub type FewShotTuner<'t> = dyn FnMut(&[usize]) -> Result<Vec<Vec<f32>>, MlError> + 't;

/// The active version at one label count of the replayed loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoLoopPoint {
    pub labels: usize,
    /// What annotators were shown then, on the test split.
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Trainings so far, and how many of them lost to the active version and were not
    /// activated.
    pub trainings: usize,
    pub not_activated: usize,
    /// Labels the active version was trained at (none: still zero-shot).
    pub active_trained_at: Option<usize>,
    /// Whether the active version is a few-shot tuned one.
    #[serde(default)]
    pub active_few_shot: bool,
    /// One head (the same trainer) on the same number of labels drawn at random from the
    /// pool, all of them trained on: the anchor without the loop's queue order and held-out
    /// fifth.
    pub random_labels: Evaluation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoLoopReport {
    pub pool: usize,
    pub test: usize,
    pub every: usize,
    /// Always answering the pool's most frequent label, on the test split.
    pub majority_accuracy: f64,
    /// The zero-shot version the loop starts from: the engine's [`crate::COLD_START`] recipe
    /// (raw cosine to "name: description", uniform label priors).
    pub zero_shot: Evaluation,
    pub points: Vec<AutoLoopPoint>,
}

/// Whether a labelled pool item is held out of training, as the engine holds out a fifth of
/// the confirmed items by a hash of their id: by a hash of its index here.
fn held_out_index(index: usize, seed: u64) -> bool {
    SplitMix64::new(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .next_u64()
        .is_multiple_of(5)
}

/// Replays the loop that trains itself on a labelled dataset, as the engine runs it with its
/// default settings: annotators answer the pool in the queue order of the active version
/// (random with diversity while it is zero-shot, margin with diversity once a head is active),
/// each answer giving the gold label; after every `every` labels a head is trained on the
/// labels outside the held-out fifth and replaces the active version only when it is not
/// worse on the held-out labels; with a `few_shot` tuner, at each of `few_shot_at` the
/// candidate is a few-shot tuned version instead (first at equal counts, as in the engine).
/// At each checkpoint the active version is measured on the test split, which no step of the
/// loop reads. Fine-tuning milestones are not replayed.
pub fn simulate_auto_loop(
    input: &SimulationInput,
    settings: &AutoLoopSettings,
    mut few_shot: Option<&mut FewShotTuner<'_>>,
    progress: &mut dyn FnMut(&str),
) -> Result<AutoLoopReport, MlError> {
    if settings.every == 0 {
        return Err(MlError::Training(
            "the auto loop needs to retrain every one label or more".into(),
        ));
    }
    let classes = input.labels.len();
    let PoolAndTest {
        pool,
        test,
        pool_x,
        test_x,
        test_y,
        majority_accuracy,
    } = pool_and_test(input);

    // The loop starts where the engine does: its zero-shot recipe, before any label.
    let prompts: Vec<Vec<Vec<f32>>> = input
        .label_embeddings
        .iter()
        .map(|e| vec![e.clone()])
        .collect();
    let (zs, priors) = crate::zero_shot::COLD_START.fit(&prompts, &pool_x);
    // Every item's probabilities under the active version.
    let mut active = crate::zero_shot::apply_priors(&zs.predict(input.embeddings), &priors);
    let test_eval = |probs: &[Vec<f32>]| {
        let p: Vec<Vec<f32>> = test.iter().map(|&i| probs[i].clone()).collect();
        evaluate(&p, &test_y, classes)
    };
    let zero_shot = test_eval(&active);

    // The random-labels anchor draws from one shuffle of the pool.
    let mut shuffled = pool.clone();
    SplitMix64::new(input.seed ^ 0xA5A5).shuffle(&mut shuffled);

    let mut checkpoints = settings.checkpoints.clone();
    checkpoints.sort_unstable();
    checkpoints.dedup();
    let last = checkpoints.last().copied().unwrap_or(0).min(pool.len());
    let mut labelled: Vec<usize> = Vec::new();
    let (mut trainings, mut not_activated) = (0, 0);
    let mut trained_at: Option<usize> = None;
    let mut active_few_shot = false;
    // Few-shot milestones not served yet (none without a tuner).
    let mut few_shot_pending: Vec<usize> = if few_shot.is_some() {
        let mut m = settings.few_shot_at.clone();
        m.sort_unstable();
        m.dedup();
        m
    } else {
        Vec::new()
    };
    let mut last_training = 0;
    let mut points = Vec::new();
    let mut next_checkpoint = checkpoints.iter().copied().peekable();
    let mut round = 0u64;
    while labelled.len() < last {
        // Annotators answer up to the next retraining or checkpoint in the current order.
        let next_training = last_training + settings.every;
        let next_milestone = few_shot_pending
            .iter()
            .copied()
            .find(|&m| m > labelled.len())
            .unwrap_or(usize::MAX);
        let stop = next_checkpoint
            .peek()
            .copied()
            .unwrap_or(usize::MAX)
            .min(next_training.max(settings.minimum))
            .min(next_milestone.max(settings.minimum))
            .min(last);
        let taken: std::collections::HashSet<usize> = labelled.iter().copied().collect();
        let candidates: Vec<usize> = pool
            .iter()
            .copied()
            .filter(|i| !taken.contains(i))
            .collect();
        if candidates.is_empty() {
            break;
        }
        let strategy = if trained_at.is_some() {
            Strategy::Margin
        } else {
            Strategy::Random
        };
        round += 1;
        let picks = select(
            &Pool {
                embeddings: input.embeddings,
                probs: Some(&active),
                candidates: &candidates,
            },
            strategy,
            stop.saturating_sub(labelled.len()).max(1),
            true,
            input.seed ^ round,
        );
        labelled.extend(picks.iter().map(|p| p.index));

        let milestone_due = labelled.len() >= settings.minimum
            && few_shot_pending.iter().any(|&m| m <= labelled.len());
        if milestone_due || (labelled.len() >= next_training && labelled.len() >= settings.minimum)
        {
            last_training = labelled.len();
            let count = labelled.len();
            few_shot_pending.retain(|&m| m > count);
            let (held, train): (Vec<usize>, Vec<usize>) = labelled
                .iter()
                .partition(|&&i| held_out_index(i, input.seed));
            let seen: std::collections::HashSet<usize> =
                labelled.iter().map(|&i| input.gold[i]).collect();
            if !train.is_empty() && seen.len() >= 2 {
                trainings += 1;
                let tuner = if milestone_due {
                    few_shot.as_deref_mut()
                } else {
                    None
                };
                let candidate = match tuner {
                    Some(tune) => tune(&train)?,
                    None => {
                        let x = rows(input.embeddings, &train);
                        let y: Vec<usize> = train.iter().map(|&i| input.gold[i]).collect();
                        let (head, _) = train_head_cv(&x, &y, classes, &settings.head)?;
                        head.predict(input.embeddings)
                    }
                };
                let right = |probs: &[Vec<f32>]| {
                    held.iter()
                        .filter(|&&i| crate::vector::argmax(&probs[i]) == input.gold[i])
                        .count()
                };
                // Not worse on the held-out labels (none: nothing speaks against it).
                if right(&candidate) >= right(&active) {
                    active = candidate;
                    trained_at = Some(labelled.len());
                    active_few_shot = milestone_due;
                } else {
                    not_activated += 1;
                }
            }
        }
        while next_checkpoint.peek().is_some_and(|&c| c <= labelled.len()) {
            let c = next_checkpoint.next().unwrap_or(0);
            let e = test_eval(&active);
            let random = &shuffled[..c.min(shuffled.len())];
            let x = rows(input.embeddings, random);
            let y: Vec<usize> = random.iter().map(|&i| input.gold[i]).collect();
            let random_labels = if y.iter().collect::<std::collections::HashSet<_>>().len() >= 2 {
                let (head, _) = train_head_cv(&x, &y, classes, &settings.head)?;
                evaluate(&head.predict(&test_x), &test_y, classes)
            } else {
                evaluate(
                    &vec![vec![1.0 / classes as f32; classes]; test_y.len()],
                    &test_y,
                    classes,
                )
            };
            points.push(AutoLoopPoint {
                labels: labelled.len(),
                accuracy: e.accuracy,
                macro_f1: e.macro_f1,
                trainings,
                not_activated,
                active_trained_at: trained_at,
                active_few_shot,
                random_labels,
            });
            progress(&format!("auto loop: {} labels", labelled.len()));
        }
    }
    Ok(AutoLoopReport {
        pool: pool.len(),
        test: test.len(),
        every: settings.every,
        majority_accuracy,
        zero_shot,
        points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated classes in 6 dimensions, with label embeddings that point at the
    /// wrong class (zero-shot is misled; labels fix it).
    fn clusters(n: usize) -> (Vec<Vec<f32>>, Vec<usize>, Vec<Vec<f32>>) {
        let mut rng = SplitMix64::new(3);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let c = i % 3;
            let mut v: Vec<f32> = (0..6)
                .map(|_| (rng.next_u64() % 1000) as f32 / 4000.0)
                .collect();
            v[c] += 1.0;
            x.push(v);
            y.push(c);
        }
        let labels = (0..3)
            .map(|c| {
                let mut v = vec![0.0; 6];
                v[(c + 1) % 3] = 1.0;
                v
            })
            .collect();
        (x, y, labels)
    }

    #[test]
    fn the_replayed_loop_retrains_every_n_labels_and_reports_each_checkpoint() {
        let (x, y, label_embeddings) = clusters(300);
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let input = SimulationInput {
            embeddings: &x,
            gold: &y,
            labels: &labels,
            label_embeddings: &label_embeddings,
            round_size: 0,
            rounds: 0,
            test_fraction: 0.3,
            seed: 7,
        };
        let settings = AutoLoopSettings {
            every: 20,
            checkpoints: vec![50, 10, 100],
            minimum: 10,
            head: CvHeadParams::default(),
            few_shot_at: vec![30],
        };
        // Without a tuner the few-shot milestone is not replayed.
        let report = simulate_auto_loop(&input, &settings, None, &mut |_| {}).unwrap();
        assert_eq!((report.pool, report.test), (210, 90));
        assert!((report.majority_accuracy - 1.0 / 3.0).abs() < 1e-9);
        // Zero-shot is misled by the label embeddings.
        assert!(report.zero_shot.accuracy < 0.2, "{:?}", report.zero_shot);
        let at: Vec<(usize, usize)> = report
            .points
            .iter()
            .map(|p| (p.labels, p.trainings))
            .collect();
        // At 10 labels nothing is trained yet (the first training comes at 20).
        assert_eq!(at, [(10, 0), (50, 2), (100, 5)]);
        assert_eq!(report.points[0].active_trained_at, None);
        let last = &report.points[2];
        assert!(last.active_trained_at.is_some());
        assert!(last.accuracy > 0.95, "{last:?}");
        assert!(last.random_labels.accuracy > 0.95, "{last:?}");
    }

    #[test]
    fn a_few_shot_milestone_trains_with_the_tuner_once_and_is_compared_like_a_head() {
        let (x, y, label_embeddings) = clusters(300);
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let input = SimulationInput {
            embeddings: &x,
            gold: &y,
            labels: &labels,
            label_embeddings: &label_embeddings,
            round_size: 0,
            rounds: 0,
            test_fraction: 0.3,
            seed: 7,
        };
        let settings = AutoLoopSettings {
            every: 20,
            checkpoints: vec![30, 100],
            minimum: 10,
            head: CvHeadParams::default(),
            few_shot_at: vec![30],
        };
        // A stand-in tuner that knows every answer: what it returns must become active.
        let mut calls: Vec<usize> = Vec::new();
        let mut tuner = |train: &[usize]| -> Result<Vec<Vec<f32>>, MlError> {
            calls.push(train.len());
            assert!(train.iter().all(|&i| !held_out_index(i, 7)));
            Ok(y.iter()
                .map(|&c| {
                    let mut v = vec![0.0; 3];
                    v[c] = 1.0;
                    v
                })
                .collect())
        };
        let report = simulate_auto_loop(&input, &settings, Some(&mut tuner), &mut |_| {}).unwrap();
        // A head at 20 labels, the few-shot tuning at 30 (once), then heads every 20.
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert!(calls[0] > 0 && calls[0] < 30, "{calls:?}");
        let at30 = &report.points[0];
        assert_eq!((at30.labels, at30.trainings), (30, 2));
        assert_eq!(at30.active_trained_at, Some(30));
        assert!(at30.active_few_shot);
        assert!((at30.accuracy - 1.0).abs() < 1e-9, "{at30:?}");
        assert_eq!(report.points[1].trainings, 5);
    }
}
