//! Replays a labelled dataset as if annotators answered every picked item with its gold label:
//! zero-shot accuracy first, then accuracy and macro-F1 after each round of labels picked by
//! each strategy, against the same held-out split (stratified, fixed seed).

use serde::{Deserialize, Serialize};

use concord_agreement::rng::SplitMix64;

use crate::active::{select, Pool, Strategy};
use crate::head::{HeadParams, LinearHead};
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

pub fn simulate(
    input: &SimulationInput,
    runs: &[StrategyRun],
    params: &HeadParams,
    device: &Device,
    progress: &mut dyn FnMut(&str),
) -> Result<SimulationReport, MlError> {
    let classes = input.labels.len();
    let (pool, test) = split(input.gold, classes, input.test_fraction, input.seed);
    let test_x = rows(input.embeddings, &test);
    let test_y: Vec<usize> = test.iter().map(|&i| input.gold[i]).collect();
    let pool_x = rows(input.embeddings, &pool);
    let pool_y: Vec<usize> = pool.iter().map(|&i| input.gold[i]).collect();

    let mut counts = vec![0usize; classes];
    for &c in &pool_y {
        counts[c] += 1;
    }
    let majority = crate::vector::argmax(&counts.iter().map(|&n| n as f32).collect::<Vec<_>>());
    let majority_accuracy =
        test_y.iter().filter(|&&c| c == majority).count() as f64 / test_y.len().max(1) as f64;

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
    let zs = ZeroShot::new(
        input.label_embeddings.to_vec(),
        &pool_x,
        Calibration::Standardize,
    );
    let (priors, _) = crate::zero_shot::adjust_priors(&zs.predict(&pool_x), 50);
    let reweigh = |probs: Vec<Vec<f32>>| -> Vec<Vec<f32>> {
        let uniform = 1.0 / classes as f32;
        probs
            .into_iter()
            .map(|p| {
                let w: Vec<f32> = p
                    .iter()
                    .zip(&priors)
                    .map(|(a, b)| a * b / uniform)
                    .collect();
                let t: f32 = w.iter().sum();
                w.into_iter().map(|v| v / t).collect()
            })
            .collect()
    };
    let zero_shot_priors = evaluate(&reweigh(zs.predict(&test_x)), &test_y, classes);
    let pool_adjusted = reweigh(zs.predict(&pool_x));
    let pseudo = crate::zero_shot::self_train(&pool_x, &pool_adjusted, 0.3, params, device)?;
    let zero_shot_self_trained = evaluate(&pseudo.predict(&test_x), &test_y, classes);
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
        all_labels,
        rounds: results,
    })
}
