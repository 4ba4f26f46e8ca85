//! Multinomial logistic regression on embeddings, solved to convergence, with its L2 penalty
//! chosen by stratified cross-validation on the training labels alone.
//!
//! The objective is scikit-learn's `LogisticRegression(C, multi_class="multinomial",
//! solver="lbfgs")`: the (optionally class-weighted) sum of cross-entropies plus
//! `||W||² / (2C)`, the bias unpenalised. It is minimised in `f64` by L-BFGS with a
//! backtracking line search; the stopping rule is the largest gradient component of the objective
//! divided by the total sample weight (so one tolerance suits 30 rows and 20,000). With two
//! classes scikit-learn fits one binomial weight vector instead; the two-row multinomial here is
//! then the same model at twice the C (checked: equal test accuracies against its C = 2).
//!
//! Classes without a single training label cannot be fitted (their maximum-likelihood bias is
//! minus infinity): they get a zero weight row and a bias [`ABSENT_CLASS_MARGIN`] below the
//! smallest fitted bias, so they are (almost) never predicted and the stored head keeps one row
//! per class.
//!
//! Fold rule: `k = min(folds, smallest label count among the classes present)`, at least 2. A
//! class with a single label is then missing from one fold's training part, which costs every C
//! about the same and so does not bias the choice. With fewer than 4 labels or fewer than two
//! classes present there is nothing to cross-validate: the head is fitted with
//! [`CvHeadParams::fallback_c`] and the report says `folds: 0`.

use concord_agreement::rng::SplitMix64;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::head::LinearHead;
use crate::MlError;

/// How far below the smallest fitted bias a class without training labels is put: e^-30 of the
/// probability mass, i.e. never predicted, yet finite so probabilities and logs stay defined.
pub const ABSENT_CLASS_MARGIN: f64 = 30.0;

/// Pairs of (step, gradient change) L-BFGS keeps.
const LBFGS_MEMORY: usize = 10;

/// Rows one rayon task handles in an objective evaluation: below this a split costs more than it
/// saves.
const ROWS_PER_TASK: usize = 512;

/// Smallest probability a fold's log-loss takes the log of (scikit-learn clips the same way).
const LOG_LOSS_FLOOR: f64 = 1e-15;

/// What cross-validation compares the grid's values of C by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CvScoring {
    /// Mean negative log-likelihood of the held-out fold's labels (lower is better; reported
    /// negated so that higher is better for both).
    LogLoss,
    /// Share of the held-out fold predicted right.
    Accuracy,
}

/// Settings of [`train_head_cv`] and [`out_of_fold_probabilities`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvHeadParams {
    /// Stratified folds for choosing C (fewer when a class has fewer labels; see the module).
    pub folds: usize,
    /// Values of C tried (inverse penalty strength), in any order.
    pub grid: Vec<f64>,
    pub scoring: CvScoring,
    /// Weigh each item by `n / (classes present × its class's count)` (scikit-learn's
    /// `class_weight="balanced"`).
    pub balance_classes: bool,
    /// L-BFGS iterations per fit at most.
    pub max_iterations: usize,
    /// Converged when no gradient component of the per-weight objective exceeds this.
    pub tolerance: f64,
    /// C used when there are too few labels to cross-validate.
    pub fallback_c: f64,
    /// Seeds the shuffle that deals items to folds.
    pub seed: u64,
}

impl Default for CvHeadParams {
    fn default() -> Self {
        CvHeadParams {
            folds: 5,
            // Half decades from 10^-2 to 10^3.
            grid: (0..=10)
                .map(|i| 10f64.powf(-2.0 + 0.5 * i as f64))
                .collect(),
            // Log-loss rather than accuracy: the head's confidences drive pre-selection and
            // label-error ranking, and on the development halves (tweets, spam; 50/100/300
            // labels) the two chose heads within 0.005 of each other in accuracy.
            scoring: CvScoring::LogLoss,
            balance_classes: false,
            max_iterations: 1000,
            tolerance: 1e-5,
            fallback_c: 1.0,
            seed: 17,
        }
    }
}

/// How C was chosen, recorded with the version trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CvReport {
    pub chosen_c: f64,
    /// Folds actually used; 0 when there were too few labels and `fallback_c` was used.
    pub folds: usize,
    /// (C, mean score over the folds); higher is better (log-loss is negated).
    pub per_c: Vec<(f64, f64)>,
    pub scoring: CvScoring,
    /// Iterations of the final fit on all labels, and whether it met the tolerance.
    pub iterations: usize,
    pub converged: bool,
}

/// Embeddings and labels in the form the solver reads: rows as one `f64` matrix, labels mapped
/// to the classes present, and a weight per row.
struct Problem {
    x: Vec<f64>,
    rows: usize,
    dimension: usize,
    /// Original class index of each fitted class.
    present: Vec<usize>,
    /// Fitted-class index of each row.
    y: Vec<usize>,
    sample_weight: Vec<f64>,
    total_weight: f64,
}

impl Problem {
    /// The problem of the rows `rows` of (`x`, `y`).
    fn new(x: &[Vec<f32>], y: &[usize], rows: &[usize], classes: usize, balance: bool) -> Self {
        let dimension = x.first().map_or(0, Vec::len);
        let mut counts = vec![0usize; classes];
        for &r in rows {
            counts[y[r]] += 1;
        }
        let present: Vec<usize> = (0..classes).filter(|&c| counts[c] > 0).collect();
        let mut index = vec![usize::MAX; classes];
        for (i, &c) in present.iter().enumerate() {
            index[c] = i;
        }
        let mut flat = Vec::with_capacity(rows.len() * dimension);
        for &r in rows {
            flat.extend(x[r].iter().map(|&v| f64::from(v)));
        }
        let sample_weight: Vec<f64> = rows
            .iter()
            .map(|&r| {
                if balance {
                    rows.len() as f64 / (present.len() as f64 * counts[y[r]] as f64)
                } else {
                    1.0
                }
            })
            .collect();
        Problem {
            x: flat,
            rows: rows.len(),
            dimension,
            y: rows.iter().map(|&r| index[y[r]]).collect(),
            present,
            total_weight: sample_weight.iter().sum(),
            sample_weight,
        }
    }

    fn fitted_classes(&self) -> usize {
        self.present.len()
    }

    fn parameters(&self) -> usize {
        self.fitted_classes() * (self.dimension + 1)
    }

    /// The objective divided by the total sample weight, and its gradient into `grad`.
    /// `theta` is W (fitted classes × dimension, row-major) then the biases.
    fn value_and_gradient(&self, theta: &[f64], inverse_c: f64, grad: &mut [f64]) -> f64 {
        let (k, d) = (self.fitted_classes(), self.dimension);
        let (w, b) = theta.split_at(k * d);
        let partial = |range: std::ops::Range<usize>| -> (f64, Vec<f64>) {
            let mut g = vec![0.0; k * d + k];
            let mut loss = 0.0;
            let mut logits = vec![0.0; k];
            for i in range {
                let row = &self.x[i * d..(i + 1) * d];
                for c in 0..k {
                    logits[c] = b[c] + dot(&w[c * d..(c + 1) * d], row);
                }
                let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = logits.iter().map(|z| (z - max).exp()).sum();
                let log_sum = max + sum.ln();
                let s = self.sample_weight[i];
                loss += s * (log_sum - logits[self.y[i]]);
                for c in 0..k {
                    let residual =
                        s * ((logits[c] - log_sum).exp() - f64::from(u8::from(c == self.y[i])));
                    let gc = &mut g[c * d..(c + 1) * d];
                    for (gj, xj) in gc.iter_mut().zip(row) {
                        *gj += residual * xj;
                    }
                    g[k * d + c] += residual;
                }
            }
            (loss, g)
        };
        let (loss, g) = if self.rows <= ROWS_PER_TASK {
            partial(0..self.rows)
        } else {
            (0..self.rows.div_ceil(ROWS_PER_TASK))
                .into_par_iter()
                .map(|t| partial(t * ROWS_PER_TASK..((t + 1) * ROWS_PER_TASK).min(self.rows)))
                .reduce(
                    || (0.0, vec![0.0; k * d + k]),
                    |(la, mut ga), (lb, gb)| {
                        for (a, b) in ga.iter_mut().zip(&gb) {
                            *a += b;
                        }
                        (la + lb, ga)
                    },
                )
        };
        let scale = 1.0 / self.total_weight;
        let penalty = 0.5 * inverse_c * w.iter().map(|v| v * v).sum::<f64>();
        for (j, (gj, pj)) in grad.iter_mut().zip(&g).enumerate() {
            let from_penalty = if j < k * d { inverse_c * w[j] } else { 0.0 };
            *gj = scale * (pj + from_penalty);
        }
        scale * (loss + penalty)
    }

    /// Probabilities over the fitted classes of row `row` of `x` (any matrix of this dimension).
    fn probabilities(&self, theta: &[f64], row: &[f64]) -> Vec<f64> {
        let (k, d) = (self.fitted_classes(), self.dimension);
        let (w, b) = theta.split_at(k * d);
        let logits: Vec<f64> = (0..k)
            .map(|c| b[c] + dot(&w[c * d..(c + 1) * d], row))
            .collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = logits.iter().map(|z| (z - max).exp()).collect();
        let sum: f64 = exps.iter().sum();
        exps.into_iter().map(|e| e / sum).collect()
    }
}

/// Dot product with four accumulators, so the compiler can vectorise it.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = a.len() / 4;
    for i in 0..chunks {
        for (lane, slot) in acc.iter_mut().enumerate() {
            *slot += a[4 * i + lane] * b[4 * i + lane];
        }
    }
    let mut total = acc[0] + acc[1] + acc[2] + acc[3];
    for i in 4 * chunks..a.len().min(b.len()) {
        total += a[i] * b[i];
    }
    total
}

/// The outcome of one L-BFGS run.
struct Solution {
    iterations: usize,
    converged: bool,
}

/// Minimises the problem's objective for `c`, starting from (and leaving the result in) `theta`.
fn minimise(problem: &Problem, c: f64, theta: &mut [f64], params: &CvHeadParams) -> Solution {
    let n = theta.len();
    let inverse_c = 1.0 / c;
    let mut grad = vec![0.0; n];
    let mut value = problem.value_and_gradient(theta, inverse_c, &mut grad);
    let mut steps: std::collections::VecDeque<(Vec<f64>, Vec<f64>, f64)> =
        std::collections::VecDeque::with_capacity(LBFGS_MEMORY);
    let mut trial = vec![0.0; n];
    let mut trial_grad = vec![0.0; n];
    for iteration in 0..params.max_iterations {
        if max_abs(&grad) <= params.tolerance {
            return Solution {
                iterations: iteration,
                converged: true,
            };
        }
        // Two-loop recursion: direction = -H·grad.
        let mut direction: Vec<f64> = grad.iter().map(|g| -g).collect();
        let mut alphas = Vec::with_capacity(steps.len());
        for (s, y, rho) in steps.iter().rev() {
            let alpha = rho * dot(s, &direction);
            for (d, yi) in direction.iter_mut().zip(y) {
                *d -= alpha * yi;
            }
            alphas.push(alpha);
        }
        let initial_step = match steps.back() {
            Some((s, y, _)) => dot(s, y) / dot(y, y),
            // No curvature known yet: a first step of length at most 1.
            None => 1.0 / max_abs(&grad).max(1.0),
        };
        for d in direction.iter_mut() {
            *d *= initial_step;
        }
        for ((s, y, rho), alpha) in steps.iter().zip(alphas.iter().rev()) {
            let beta = rho * dot(y, &direction);
            for (d, si) in direction.iter_mut().zip(s) {
                *d += (alpha - beta) * si;
            }
        }
        let mut slope = dot(&grad, &direction);
        if slope >= 0.0 {
            // Not a descent direction (rounding): restart from steepest descent.
            steps.clear();
            direction = grad.iter().map(|g| -g).collect();
            slope = -dot(&grad, &grad);
        }
        // Backtracking line search with the Armijo condition.
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..40 {
            for ((t, x), d) in trial.iter_mut().zip(theta.iter()).zip(&direction) {
                *t = x + step * d;
            }
            let v = problem.value_and_gradient(&trial, inverse_c, &mut trial_grad);
            if v <= value + 1e-4 * step * slope {
                accepted = Some(v);
                break;
            }
            step *= 0.5;
        }
        let Some(new_value) = accepted else {
            // No decrease possible at machine precision: as converged as this problem gets.
            return Solution {
                iterations: iteration,
                converged: max_abs(&grad) <= params.tolerance * 10.0,
            };
        };
        let s: Vec<f64> = trial.iter().zip(theta.iter()).map(|(t, x)| t - x).collect();
        let y: Vec<f64> = trial_grad.iter().zip(&grad).map(|(a, b)| a - b).collect();
        let curvature = dot(&s, &y);
        if curvature > 1e-12 * dot(&y, &y).max(f64::MIN_POSITIVE) {
            if steps.len() == LBFGS_MEMORY {
                steps.pop_front();
            }
            steps.push_back((s, y, 1.0 / curvature));
        }
        theta.copy_from_slice(&trial);
        grad.copy_from_slice(&trial_grad);
        let decrease = value - new_value;
        value = new_value;
        if decrease <= 1e-15 * value.abs().max(1.0) && max_abs(&grad) <= params.tolerance * 10.0 {
            return Solution {
                iterations: iteration + 1,
                converged: true,
            };
        }
    }
    Solution {
        iterations: params.max_iterations,
        converged: max_abs(&grad) <= params.tolerance,
    }
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// The stored head of a solution: one row per class, classes without labels pushed far down.
fn to_head(problem: &Problem, theta: &[f64], classes: usize) -> LinearHead {
    let (k, d) = (problem.fitted_classes(), problem.dimension);
    let mut weight = vec![0f32; classes * d];
    let fitted_bias = &theta[k * d..];
    let lowest = fitted_bias.iter().copied().fold(f64::INFINITY, f64::min);
    let mut bias = vec![(lowest - ABSENT_CLASS_MARGIN) as f32; classes];
    for (i, &c) in problem.present.iter().enumerate() {
        for j in 0..d {
            weight[c * d + j] = theta[i * d + j] as f32;
        }
        bias[c] = fitted_bias[i] as f32;
    }
    LinearHead {
        classes,
        dimension: d,
        weight,
        bias,
    }
}

/// Probabilities over all `classes` for row `row`, classes the problem did not fit at (almost)
/// zero as in [`to_head`].
fn full_probabilities(problem: &Problem, theta: &[f64], row: &[f64], classes: usize) -> Vec<f64> {
    let fitted = problem.probabilities(theta, row);
    let mut out = vec![0.0; classes];
    for (i, &c) in problem.present.iter().enumerate() {
        out[c] = fitted[i];
    }
    out
}

fn check(x: &[Vec<f32>], y: &[usize], classes: usize) -> Result<(), MlError> {
    if x.is_empty() || x.len() != y.len() {
        return Err(MlError::Training(format!(
            "need as many labels as items, and at least one (got {} items, {} labels)",
            x.len(),
            y.len()
        )));
    }
    if let Some(bad) = y.iter().find(|&&c| c >= classes) {
        return Err(MlError::Training(format!("class {bad} out of range")));
    }
    let dimension = x[0].len();
    if x.iter().any(|r| r.len() != dimension) {
        return Err(MlError::Training("embeddings differ in dimension".into()));
    }
    if x.iter().flatten().any(|v| !v.is_finite()) {
        return Err(MlError::Training("an embedding is not finite".into()));
    }
    Ok(())
}

/// Folds the labels allow (see the module's fold rule), or `None` when there are too few.
fn fold_count(y: &[usize], classes: usize, requested: usize) -> Option<usize> {
    let mut counts = vec![0usize; classes];
    for &c in y {
        counts[c] += 1;
    }
    let present: Vec<usize> = counts.into_iter().filter(|&n| n > 0).collect();
    if present.len() < 2 || y.len() < 4 || requested < 2 {
        return None;
    }
    let smallest = present.iter().copied().min().unwrap_or(0);
    Some(requested.min(smallest).max(2))
}

/// Fold of each item: each class's items shuffled and dealt round-robin, the dealing carrying on
/// from one class to the next so fold sizes differ by at most one.
fn stratified_folds(y: &[usize], classes: usize, folds: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed);
    let mut fold = vec![0usize; y.len()];
    let mut next = 0usize;
    for c in 0..classes {
        let mut members: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
        rng.shuffle(&mut members);
        for i in members {
            fold[i] = next % folds;
            next += 1;
        }
    }
    fold
}

/// Cross-validation over the grid: mean fold score per C (higher is better) and, when asked,
/// each item's out-of-fold probabilities per C (grid order).
struct CvRun {
    scores: Vec<f64>,
    out_of_fold: Option<Vec<Vec<Vec<f32>>>>,
}

fn cross_validate(
    x: &[Vec<f32>],
    y: &[usize],
    classes: usize,
    folds: usize,
    seed: u64,
    params: &CvHeadParams,
    keep_probabilities: bool,
) -> CvRun {
    let grid = &params.grid;
    let fold = stratified_folds(y, classes, folds, seed);
    // Ascending C, so each fit starts from the more regularised solution before it.
    let mut order: Vec<usize> = (0..grid.len()).collect();
    order.sort_by(|&a, &b| grid[a].total_cmp(&grid[b]));
    let per_fold: Vec<(Vec<usize>, Vec<Vec<f64>>)> = (0..folds)
        .into_par_iter()
        .map(|f| {
            let train: Vec<usize> = (0..y.len()).filter(|&i| fold[i] != f).collect();
            let test: Vec<usize> = (0..y.len()).filter(|&i| fold[i] == f).collect();
            let problem = Problem::new(x, y, &train, classes, params.balance_classes);
            let mut theta = vec![0.0; problem.parameters()];
            let mut probabilities = vec![Vec::new(); grid.len()];
            for &g in &order {
                minimise(&problem, grid[g], &mut theta, params);
                probabilities[g] = test
                    .iter()
                    .flat_map(|&i| {
                        let row: Vec<f64> = x[i].iter().map(|&v| f64::from(v)).collect();
                        full_probabilities(&problem, &theta, &row, classes)
                    })
                    .collect();
            }
            (test, probabilities)
        })
        .collect();
    let mut scores = vec![0.0; grid.len()];
    let mut out_of_fold = keep_probabilities.then(|| vec![vec![Vec::new(); y.len()]; grid.len()]);
    for (test, probabilities) in &per_fold {
        for (g, flat) in probabilities.iter().enumerate() {
            let mut fold_score = 0.0;
            for (t, &i) in test.iter().enumerate() {
                let p = &flat[t * classes..(t + 1) * classes];
                fold_score += match params.scoring {
                    CvScoring::LogLoss => p[y[i]].max(LOG_LOSS_FLOOR).ln(),
                    CvScoring::Accuracy => {
                        let best = (0..classes)
                            .max_by(|&a, &b| p[a].total_cmp(&p[b]).then(b.cmp(&a)))
                            .unwrap_or(0);
                        f64::from(u8::from(best == y[i]))
                    }
                };
                if let Some(oof) = out_of_fold.as_mut() {
                    oof[g][i] = p.iter().map(|&v| v as f32).collect();
                }
            }
            // Mean over folds of each fold's mean, as scikit-learn averages fold scores.
            scores[g] += fold_score / test.len().max(1) as f64 / folds as f64;
        }
    }
    CvRun {
        scores,
        out_of_fold,
    }
}

/// Index of the best score; on ties (within rounding) the smaller C, the stronger penalty.
fn best_index(grid: &[f64], scores: &[f64]) -> usize {
    let mut best = 0;
    for g in 1..grid.len() {
        let better = scores[g] > scores[best] + 1e-12;
        let tie_smaller = (scores[g] - scores[best]).abs() <= 1e-12 && grid[g] < grid[best];
        if better || tie_smaller {
            best = g;
        }
    }
    best
}

fn check_grid(params: &CvHeadParams) -> Result<(), MlError> {
    if params.grid.is_empty() || params.grid.iter().any(|c| !(c.is_finite() && *c > 0.0)) {
        return Err(MlError::Training(
            "the grid of C needs at least one positive, finite value".into(),
        ));
    }
    if !(params.fallback_c.is_finite() && params.fallback_c > 0.0) {
        return Err(MlError::Training("fallback C must be positive".into()));
    }
    Ok(())
}

/// Fits the logistic regression on all of (`x`, `y`) with penalty `c`.
pub fn train_logistic(
    x: &[Vec<f32>],
    y: &[usize],
    classes: usize,
    c: f64,
    params: &CvHeadParams,
) -> Result<(LinearHead, usize, bool), MlError> {
    check(x, y, classes)?;
    if !(c.is_finite() && c > 0.0) {
        return Err(MlError::Training(format!("C must be positive, got {c}")));
    }
    let rows: Vec<usize> = (0..y.len()).collect();
    let problem = Problem::new(x, y, &rows, classes, params.balance_classes);
    let mut theta = vec![0.0; problem.parameters()];
    let solution = minimise(&problem, c, &mut theta, params);
    Ok((
        to_head(&problem, &theta, classes),
        solution.iterations,
        solution.converged,
    ))
}

/// Trains the head: C chosen by stratified k-fold cross-validation on these labels only, then
/// one fit on all of them with that C.
pub fn train_head_cv(
    x: &[Vec<f32>],
    y: &[usize],
    classes: usize,
    params: &CvHeadParams,
) -> Result<(LinearHead, CvReport), MlError> {
    check(x, y, classes)?;
    check_grid(params)?;
    let (chosen_c, folds, per_c) = match fold_count(y, classes, params.folds) {
        None => (params.fallback_c, 0, Vec::new()),
        Some(folds) => {
            let run = cross_validate(x, y, classes, folds, params.seed, params, false);
            let best = best_index(&params.grid, &run.scores);
            let per_c = params.grid.iter().copied().zip(run.scores).collect();
            (params.grid[best], folds, per_c)
        }
    };
    let (head, iterations, converged) = train_logistic(x, y, classes, chosen_c, params)?;
    Ok((
        head,
        CvReport {
            chosen_c,
            folds,
            per_c,
            scoring: params.scoring,
            iterations,
            converged,
        },
    ))
}

/// Each item's class probabilities from a model that never saw it: stratified `folds`-fold
/// (fewer when a class has fewer labels, as in [`train_head_cv`]), fold assignment seeded by
/// `seed`. C is the grid's best by the same cross-validation, so these are exactly the
/// held-out predictions that chose it; the one thing all labels shape is that single number
/// (pass a one-value grid to fix it beforehand). Fails when there are too few labels for two
/// folds (fewer than 4, or fewer than two classes).
pub fn out_of_fold_probabilities(
    x: &[Vec<f32>],
    y: &[usize],
    classes: usize,
    folds: usize,
    seed: u64,
    params: &CvHeadParams,
) -> Result<Vec<Vec<f32>>, MlError> {
    check(x, y, classes)?;
    check_grid(params)?;
    let folds = fold_count(y, classes, folds).ok_or_else(|| {
        MlError::Training(
            "out-of-fold predictions need at least 4 labels in at least two classes".into(),
        )
    })?;
    let run = cross_validate(x, y, classes, folds, seed, params, true);
    let best = best_index(&params.grid, &run.scores);
    let mut all = run.out_of_fold.unwrap_or_default();
    if best >= all.len() {
        return Err(MlError::Training(
            "cross-validation produced nothing".into(),
        ));
    }
    Ok(all.swap_remove(best))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::argmax;

    /// A uniform float in [0, 1).
    fn unit(rng: &mut SplitMix64) -> f64 {
        (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Gaussian-ish noise from SplitMix (sum of uniforms), deterministic.
    fn noise(rng: &mut SplitMix64) -> f32 {
        let s: f64 = (0..4).map(|_| unit(rng)).sum::<f64>() - 2.0;
        (s * 0.866) as f32
    }

    /// `n` rows of `dimension` features, `classes` classes whose means differ in the first
    /// `signal` features by `separation`; the rest is noise.
    fn blobs(
        n: usize,
        dimension: usize,
        classes: usize,
        signal: usize,
        separation: f32,
        seed: u64,
    ) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = SplitMix64::new(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let c = i % classes;
            let row: Vec<f32> = (0..dimension)
                .map(|j| {
                    let centre = if j < signal && j % classes == c {
                        separation
                    } else {
                        0.0
                    };
                    centre + noise(&mut rng)
                })
                .collect();
            x.push(row);
            y.push(c);
        }
        (x, y)
    }

    fn accuracy(head: &LinearHead, x: &[Vec<f32>], y: &[usize]) -> f64 {
        let p = head.predict(x);
        p.iter().zip(y).filter(|(p, &c)| argmax(p) == c).count() as f64 / y.len() as f64
    }

    #[test]
    fn logistic_separates_separable_classes() {
        let (x, y) = blobs(300, 20, 3, 6, 4.0, 1);
        let (tx, ty) = blobs(300, 20, 3, 6, 4.0, 2);
        let (head, report) = train_head_cv(&x, &y, 3, &CvHeadParams::default()).unwrap();
        assert_eq!(report.folds, 5);
        assert!(report.converged, "{report:?}");
        assert!(accuracy(&head, &x, &y) > 0.97);
        assert!(
            accuracy(&head, &tx, &ty) > 0.95,
            "{}",
            accuracy(&head, &tx, &ty)
        );
    }

    #[test]
    fn logistic_cv_picks_a_smaller_c_on_noisy_high_dimensional_data() {
        // Clean: the classes are far apart in few dimensions. Noisy: a weak signal among 200
        // noise dimensions with only 60 rows, where a weak penalty overfits.
        let (clean_x, clean_y) = blobs(200, 10, 2, 4, 3.0, 3);
        let (noisy_x, noisy_y) = blobs(60, 200, 2, 4, 0.6, 4);
        let params = CvHeadParams::default();
        let (_, clean) = train_head_cv(&clean_x, &clean_y, 2, &params).unwrap();
        let (_, noisy) = train_head_cv(&noisy_x, &noisy_y, 2, &params).unwrap();
        assert!(
            noisy.chosen_c < clean.chosen_c,
            "noisy {} vs clean {}",
            noisy.chosen_c,
            clean.chosen_c
        );
        assert_eq!(noisy.per_c.len(), params.grid.len());
    }

    #[test]
    fn logistic_gradient_matches_finite_differences() {
        let (x, y) = blobs(40, 5, 3, 3, 1.0, 5);
        let rows: Vec<usize> = (0..40).collect();
        for balance in [false, true] {
            // Uneven classes so balancing changes the weights.
            let y: Vec<usize> = y
                .iter()
                .enumerate()
                .map(|(i, &c)| if i % 7 == 0 { 0 } else { c })
                .collect();
            let problem = Problem::new(&x, &y, &rows, 3, balance);
            let mut rng = SplitMix64::new(9);
            let theta: Vec<f64> = (0..problem.parameters())
                .map(|_| unit(&mut rng) - 0.5)
                .collect();
            let inverse_c = 1.0 / 0.7;
            let mut grad = vec![0.0; theta.len()];
            problem.value_and_gradient(&theta, inverse_c, &mut grad);
            let mut scratch = vec![0.0; theta.len()];
            for j in 0..theta.len() {
                let h = 1e-6;
                let mut plus = theta.clone();
                plus[j] += h;
                let mut minus = theta.clone();
                minus[j] -= h;
                let numeric = (problem.value_and_gradient(&plus, inverse_c, &mut scratch)
                    - problem.value_and_gradient(&minus, inverse_c, &mut scratch))
                    / (2.0 * h);
                assert!(
                    (numeric - grad[j]).abs() < 1e-6,
                    "parameter {j}: analytic {} numeric {numeric}",
                    grad[j]
                );
            }
        }
    }

    #[test]
    fn logistic_objective_is_scikit_learns() {
        // At W = 0, b = 0 every class has probability 1/3: the objective is ln 3 per row plus
        // no penalty; with W = 1 everywhere it adds ||W||²/(2C) (divided by the rows).
        let x = vec![vec![1.0f32, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]];
        let y = vec![0, 1, 2];
        let problem = Problem::new(&x, &y, &[0, 1, 2], 3, false);
        let mut grad = vec![0.0; problem.parameters()];
        let zero = vec![0.0; problem.parameters()];
        let at_zero = problem.value_and_gradient(&zero, 0.5, &mut grad);
        assert!((at_zero - 3f64.ln()).abs() < 1e-12);
        let mut ones = vec![1.0; 6];
        ones.extend([0.0; 3]);
        let at_ones = problem.value_and_gradient(&ones, 0.5, &mut grad);
        // Every logit of a row equals the row's sum, so the cross-entropy stays ln 3.
        assert!((at_ones - (3f64.ln() + 0.5 * 0.5 * 6.0 / 3.0)).abs() < 1e-12);
    }

    /// Two clean classes plus `copies` copies of an item labelled 1 that sits in class 0's
    /// region but also has a feature of its own (the last one, zero everywhere else): a model
    /// that trained on a copy can use that feature to believe the label; one that never saw a
    /// copy cannot.
    fn with_outliers(copies: usize) -> (Vec<Vec<f32>>, Vec<usize>, Vec<f32>) {
        let (x, mut y) = blobs(80, 4, 2, 2, 3.0, 6);
        let mut x: Vec<Vec<f32>> = x
            .into_iter()
            .map(|mut r| {
                r.push(0.0);
                r
            })
            .collect();
        let outlier = vec![3.0f32, 0.0, 0.0, 0.0, 1.0];
        for _ in 0..copies {
            x.push(outlier.clone());
            y.push(1);
        }
        (x, y, outlier)
    }

    #[test]
    fn logistic_out_of_fold_never_trains_on_the_item() {
        let (x, y, outlier) = with_outliers(1);
        let params = CvHeadParams {
            grid: vec![1000.0],
            ..CvHeadParams::default()
        };
        // Fitted on everything, the model learns the outlier's own feature and believes it.
        let (head, _, _) = train_logistic(&x, &y, 2, 1000.0, &params).unwrap();
        let in_sample = head.predict(&[outlier])[0][1];
        assert!(in_sample > 0.5, "in sample: {in_sample}");
        // Out of fold, its model never saw the feature set, so class 0's region wins.
        let oof = out_of_fold_probabilities(&x, &y, 2, 5, 3, &params).unwrap();
        assert_eq!(oof.len(), x.len());
        let last = oof.len() - 1;
        assert!(oof[last][1] < 0.05, "out of fold: {:?}", oof[last]);
        for p in &oof {
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn logistic_out_of_fold_sees_a_duplicate_in_another_fold() {
        // The same outlier twice, the copies in different folds: each copy's model trained on
        // the other copy and believes the label. So the fold holds out the item itself (the
        // previous test's low probability is not just a strong penalty).
        let (x, y, _) = with_outliers(2);
        let params = CvHeadParams {
            grid: vec![1000.0],
            ..CvHeadParams::default()
        };
        let folds = fold_count(&y, 2, 5).unwrap();
        let (a, b) = (x.len() - 2, x.len() - 1);
        let seed = (0..50u64)
            .find(|&s| {
                let f = stratified_folds(&y, 2, folds, s);
                f[a] != f[b]
            })
            .unwrap();
        let oof = out_of_fold_probabilities(&x, &y, 2, 5, seed, &params).unwrap();
        assert!(
            oof[a][1] > 0.5 && oof[b][1] > 0.5,
            "{:?} {:?}",
            oof[a],
            oof[b]
        );
    }

    #[test]
    fn logistic_classes_without_labels_are_never_predicted() {
        let (x, y) = blobs(60, 6, 2, 4, 3.0, 7);
        let (head, report) = train_head_cv(&x, &y, 4, &CvHeadParams::default()).unwrap();
        assert_eq!(head.classes, 4);
        assert_eq!(head.weight.len(), 4 * 6);
        for p in head.predict(&x) {
            assert!(p[2] < 1e-9 && p[3] < 1e-9, "{p:?}");
        }
        assert!(report.folds >= 2);
    }

    #[test]
    fn logistic_too_few_labels_fall_back_to_the_default_c() {
        let x = vec![vec![1.0f32, 0.0], vec![0.0, 1.0], vec![1.0, 0.1]];
        let y = vec![0, 1, 0];
        let (head, report) = train_head_cv(&x, &y, 2, &CvHeadParams::default()).unwrap();
        assert_eq!(report.folds, 0);
        assert_eq!(report.chosen_c, 1.0);
        assert_eq!(argmax(&head.predict(&[vec![1.0, 0.0]])[0]), 0);
        assert!(out_of_fold_probabilities(&x, &y, 2, 5, 1, &CvHeadParams::default()).is_err());
        // A single class: the head predicts it, with nothing to cross-validate.
        let (head, report) = train_head_cv(&x, &[1, 1, 1], 2, &CvHeadParams::default()).unwrap();
        assert_eq!(report.folds, 0);
        assert!(head.predict(&x).iter().all(|p| argmax(p) == 1));
    }

    #[test]
    fn logistic_rejects_bad_input() {
        let x = vec![vec![1.0f32], vec![0.0]];
        assert!(train_head_cv(&x, &[0], 2, &CvHeadParams::default()).is_err());
        assert!(train_head_cv(&x, &[0, 2], 2, &CvHeadParams::default()).is_err());
        let empty_grid = CvHeadParams {
            grid: Vec::new(),
            ..CvHeadParams::default()
        };
        assert!(train_head_cv(&x, &[0, 1], 2, &empty_grid).is_err());
        assert!(train_head_cv(
            &[vec![f32::NAN], vec![0.0]],
            &[0, 1],
            2,
            &CvHeadParams::default()
        )
        .is_err());
    }
}
