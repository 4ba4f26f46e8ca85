//! Learning curves: how a model's held-out score grows with the labels it was trained on, and
//! how many labels a target score needs. Pure maths, no I/O.
//!
//! The curve is an inverse power law, `score(n) = a − b·n^(−c)` with `a ≤ 1` (the ceiling more
//! labels approach), `b > 0` and `c > 0` — the shape learning curves of classifiers follow
//! closely in practice (Figueroa et al. 2012, "Predicting sample size required for
//! classification performance"). For a fixed exponent `c` the model is linear in `a` and `b`,
//! so the fit searches `c` (a log-spaced grid, then golden-section refinement around the best
//! grid point) and solves weighted least squares for `a` and `b` at each `c`.
//!
//! Each point's score comes with a percentile bootstrap interval over its held-out items,
//! resampled with the workspace's seeded SplitMix64 so the same figures give the same interval.

use concord_agreement::rng::SplitMix64;
use concord_domain::{HeldOutPrediction, HeldOutSpanCounts, Interval};
use serde::{Deserialize, Serialize};

/// Bootstrap resamples behind every interval.
pub const BOOTSTRAP_RESAMPLES: usize = 1_000;
/// The fixed seed of every bootstrap: the same held-out predictions, the same interval.
pub const BOOTSTRAP_SEED: u64 = 0x1EA5_12C0_12E5;
/// Distinct label counts the fit needs: three parameters.
pub const MIN_CURVE_SIZES: usize = 3;
/// The exponents searched. Learning curves of text classifiers have `c` well inside this
/// range; a curve needing more is better described as flat or as a step.
const EXPONENT_RANGE: (f64, f64) = (0.01, 5.0);
/// Grid points over [`EXPONENT_RANGE`] (log-spaced) before refinement.
const EXPONENT_GRID: usize = 200;

/// One point of a learning curve: a model trained with `labels` labels scored `score` on its
/// held-out items; `weight` is how much the point counts in the fit (e.g. its held-out items,
/// since the variance of a proportion shrinks as 1/items).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub labels: f64,
    pub score: f64,
    pub weight: f64,
}

/// Why no curve could be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CurveFitError {
    #[error("a curve needs points at {MIN_CURVE_SIZES} or more different label counts (found {distinct})")]
    TooFewSizes { distinct: usize },
    #[error("the scores do not rise with more labels, so no rising curve fits them")]
    NotRising,
}

/// A fitted inverse power law `score(n) = a − b·n^(−c)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerLawFit {
    /// The ceiling: the score the curve approaches with unlimited labels (at most 1).
    pub a: f64,
    pub b: f64,
    pub c: f64,
    /// Weighted root-mean-square distance of the points from the curve (score units).
    pub residual: f64,
    /// Points fitted.
    pub points: usize,
}

impl PowerLawFit {
    /// Fits the curve to `points` (those with a positive label count, finite score and
    /// positive weight; others are left out).
    pub fn fit(points: &[CurvePoint]) -> Result<PowerLawFit, CurveFitError> {
        let usable: Vec<CurvePoint> = points
            .iter()
            .copied()
            .filter(|p| {
                p.labels >= 1.0
                    && p.labels.is_finite()
                    && p.score.is_finite()
                    && p.weight > 0.0
                    && p.weight.is_finite()
            })
            .collect();
        let mut sizes: Vec<f64> = usable.iter().map(|p| p.labels).collect();
        sizes.sort_by(f64::total_cmp);
        sizes.dedup();
        if sizes.len() < MIN_CURVE_SIZES {
            return Err(CurveFitError::TooFewSizes {
                distinct: sizes.len(),
            });
        }
        let (lo, hi) = (EXPONENT_RANGE.0.ln(), EXPONENT_RANGE.1.ln());
        let grid: Vec<f64> = (0..EXPONENT_GRID)
            .map(|i| (lo + (hi - lo) * i as f64 / (EXPONENT_GRID - 1) as f64).exp())
            .collect();
        let sse = |c: f64| linear_part(&usable, c).map_or(f64::INFINITY, |l| l.sse);
        let (best, best_sse) = grid
            .iter()
            .enumerate()
            .map(|(i, &c)| (i, sse(c)))
            .min_by(|x, y| x.1.total_cmp(&y.1))
            .ok_or(CurveFitError::NotRising)?;
        if !best_sse.is_finite() {
            return Err(CurveFitError::NotRising);
        }
        // The error is smooth in c; refine between the best grid point's neighbours.
        let left = grid[best.saturating_sub(1)];
        let right = grid[(best + 1).min(EXPONENT_GRID - 1)];
        let refined = golden_section(left, right, sse);
        let c = if sse(refined) <= best_sse {
            refined
        } else {
            grid[best]
        };
        let part = linear_part(&usable, c).ok_or(CurveFitError::NotRising)?;
        let total_weight: f64 = usable.iter().map(|p| p.weight).sum();
        Ok(PowerLawFit {
            a: part.a,
            b: part.b,
            c,
            residual: (part.sse / total_weight).sqrt(),
            points: usable.len(),
        })
    }

    /// The curve's score at `labels` labels.
    pub fn score_at(&self, labels: f64) -> f64 {
        self.a - self.b * labels.max(1.0).powf(-self.c)
    }

    /// The labels at which the curve reaches `target`, rounded up: `None` when the target is
    /// at or above the ceiling `a` (more labels approach it but never reach it) or the count
    /// overflows. A target the curve already passes at one label needs one.
    pub fn labels_needed(&self, target: f64) -> Option<u64> {
        if !target.is_finite() || target >= self.a {
            return None;
        }
        // a − b·n^(−c) = t  ⇔  n = (b / (a − t))^(1/c)
        let n = (self.b / (self.a - target)).powf(1.0 / self.c);
        if !n.is_finite() || n >= u64::MAX as f64 {
            return None;
        }
        // A count a rounding error away from a whole number is that number, not the next.
        let whole = n.round();
        let n = if (n - whole).abs() <= 1e-9 * n.max(1.0) {
            whole
        } else {
            n.ceil()
        };
        Some((n as u64).max(1))
    }
}

/// The best `a` and `b` for one exponent, and the weighted squared error they leave.
struct LinearPart {
    a: f64,
    b: f64,
    sse: f64,
}

/// Weighted least squares of `score = a − b·x` with `x = labels^(−c)`, under `a ≤ 1`; `None`
/// when the best rising line has `b ≤ 0` (no rising curve with this exponent) or the
/// points do not determine it.
fn linear_part(points: &[CurvePoint], c: f64) -> Option<LinearPart> {
    let xs: Vec<f64> = points.iter().map(|p| p.labels.powf(-c)).collect();
    let w: f64 = points.iter().map(|p| p.weight).sum();
    let xm = points
        .iter()
        .zip(&xs)
        .map(|(p, x)| p.weight * x)
        .sum::<f64>()
        / w;
    let ym = points.iter().map(|p| p.weight * p.score).sum::<f64>() / w;
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (p, x) in points.iter().zip(&xs) {
        sxx += p.weight * (x - xm) * (x - xm);
        sxy += p.weight * (x - xm) * (p.score - ym);
    }
    if sxx <= 0.0 || !sxx.is_finite() {
        return None;
    }
    let slope = sxy / sxx;
    let (mut a, mut b) = (ym - slope * xm, -slope);
    if a > 1.0 {
        // No score exceeds 1: the best curve with its ceiling at 1.
        let sx2: f64 = points.iter().zip(&xs).map(|(p, x)| p.weight * x * x).sum();
        let sxr: f64 = points
            .iter()
            .zip(&xs)
            .map(|(p, x)| p.weight * x * (1.0 - p.score))
            .sum();
        a = 1.0;
        b = sxr / sx2;
    }
    if b <= 0.0 || !a.is_finite() || !b.is_finite() {
        return None;
    }
    let sse = points
        .iter()
        .zip(&xs)
        .map(|(p, x)| {
            let r = p.score - (a - b * x);
            p.weight * r * r
        })
        .sum();
    Some(LinearPart { a, b, sse })
}

/// The minimum of `f` on `[lo, hi]` by golden-section search (to a relative width of 1e-12).
fn golden_section(mut lo: f64, mut hi: f64, f: impl Fn(f64) -> f64) -> f64 {
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut x1 = hi - ratio * (hi - lo);
    let mut x2 = lo + ratio * (hi - lo);
    let (mut f1, mut f2) = (f(x1), f(x2));
    for _ in 0..200 {
        if hi - lo <= 1e-12 * hi.abs().max(1e-12) {
            break;
        }
        if f1 <= f2 {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - ratio * (hi - lo);
            f1 = f(x1);
        } else {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + ratio * (hi - lo);
            f2 = f(x2);
        }
    }
    (lo + hi) / 2.0
}

/// A figure measured on held-out items with its 95% percentile bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapEstimate {
    /// The figure on all the held-out items.
    pub estimate: f64,
    pub interval: Interval,
}

/// A label version's held-out accuracy and macro-F1 with their intervals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelScoreIntervals {
    /// Held-out items counted (those whose classes lie among the `classes`).
    pub items: u64,
    pub accuracy: BootstrapEstimate,
    pub macro_f1: BootstrapEstimate,
}

/// Accuracy and macro-F1 (the mean F1 over classes with support or predictions, as
/// [`crate::evaluate`] computes it) of `predictions` with 95% percentile bootstrap intervals:
/// `resamples` resamples of the items with replacement, seeded with `seed`. Predictions whose
/// classes are not below `classes` are left out; `None` without any left.
pub fn label_score_intervals(
    predictions: &[HeldOutPrediction],
    classes: usize,
    resamples: usize,
    seed: u64,
) -> Option<LabelScoreIntervals> {
    let pairs: Vec<(usize, usize)> = predictions
        .iter()
        .map(|p| (p.gold as usize, p.predicted as usize))
        .filter(|&(g, p)| g < classes && p < classes)
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let mut tally = ClassTally::new(classes);
    for &(g, p) in &pairs {
        tally.add(g, p);
    }
    let (accuracy, macro_f1) = (tally.accuracy(), tally.macro_f1());
    let mut rng = SplitMix64::new(seed);
    let mut accuracies = Vec::with_capacity(resamples);
    let mut macro_f1s = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        tally.clear();
        for _ in 0..pairs.len() {
            let (g, p) = pairs[below(&mut rng, pairs.len())];
            tally.add(g, p);
        }
        accuracies.push(tally.accuracy());
        macro_f1s.push(tally.macro_f1());
    }
    Some(LabelScoreIntervals {
        items: pairs.len() as u64,
        accuracy: BootstrapEstimate {
            estimate: accuracy,
            interval: percentile_interval(accuracies, accuracy),
        },
        macro_f1: BootstrapEstimate {
            estimate: macro_f1,
            interval: percentile_interval(macro_f1s, macro_f1),
        },
    })
}

/// Strict micro-F1 (`2·tp / (2·tp + fp + fn)` over all items, 0 when nothing was predicted or
/// expected, seqeval's convention) of a span version's per-item counts (`model`: tp, fp, fn),
/// with its 95% percentile bootstrap interval over items. `None` without items.
pub fn span_f1_interval(
    counts: &[HeldOutSpanCounts],
    resamples: usize,
    seed: u64,
) -> Option<BootstrapEstimate> {
    span_triples_interval(
        &counts.iter().map(|c| c.model).collect::<Vec<_>>(),
        resamples,
        seed,
    )
}

/// Strict micro-F1 with its interval from per-item (tp, fp, fn) triples; for a span
/// version's counts or the patterns' on the same items.
pub fn span_triples_interval(
    triples: &[[u32; 3]],
    resamples: usize,
    seed: u64,
) -> Option<BootstrapEstimate> {
    if triples.is_empty() {
        return None;
    }
    let f1 = |sum: [u64; 3]| {
        let denominator = 2 * sum[0] + sum[1] + sum[2];
        if denominator == 0 {
            0.0
        } else {
            2.0 * sum[0] as f64 / denominator as f64
        }
    };
    let add = |sum: &mut [u64; 3], t: &[u32; 3]| {
        for (s, v) in sum.iter_mut().zip(t) {
            *s += u64::from(*v);
        }
    };
    let mut all = [0u64; 3];
    triples.iter().for_each(|t| add(&mut all, t));
    let estimate = f1(all);
    let mut rng = SplitMix64::new(seed);
    let samples: Vec<f64> = (0..resamples)
        .map(|_| {
            let mut sum = [0u64; 3];
            for _ in 0..triples.len() {
                add(&mut sum, &triples[below(&mut rng, triples.len())]);
            }
            f1(sum)
        })
        .collect();
    Some(BootstrapEstimate {
        estimate,
        interval: percentile_interval(samples, estimate),
    })
}

/// Per-class counts of a sample: enough for accuracy and macro-F1.
struct ClassTally {
    correct: Vec<u64>,
    gold: Vec<u64>,
    predicted: Vec<u64>,
    items: u64,
}

impl ClassTally {
    fn new(classes: usize) -> ClassTally {
        ClassTally {
            correct: vec![0; classes],
            gold: vec![0; classes],
            predicted: vec![0; classes],
            items: 0,
        }
    }

    fn clear(&mut self) {
        self.correct.fill(0);
        self.gold.fill(0);
        self.predicted.fill(0);
        self.items = 0;
    }

    /// Callers pass classes below the tally's size.
    fn add(&mut self, gold: usize, predicted: usize) {
        self.gold[gold] += 1;
        self.predicted[predicted] += 1;
        if gold == predicted {
            self.correct[gold] += 1;
        }
        self.items += 1;
    }

    fn accuracy(&self) -> f64 {
        if self.items == 0 {
            return 0.0;
        }
        self.correct.iter().sum::<u64>() as f64 / self.items as f64
    }

    fn macro_f1(&self) -> f64 {
        let (mut sum, mut counted) = (0.0, 0usize);
        for c in 0..self.correct.len() {
            if self.gold[c] == 0 && self.predicted[c] == 0 {
                continue;
            }
            // F1 = 2·tp / (gold + predicted), equal to 2PR/(P+R) and 0 when tp is.
            sum += 2.0 * self.correct[c] as f64 / (self.gold[c] + self.predicted[c]) as f64;
            counted += 1;
        }
        if counted == 0 {
            0.0
        } else {
            sum / counted as f64
        }
    }
}

/// A uniform index below `n` (> 0) by multiply-shift: its bias, under n/2⁶⁴, is immaterial
/// for resampling.
fn below(rng: &mut SplitMix64, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// The 2.5th and 97.5th percentiles (type 7, linear interpolation) of `samples`; the point
/// `estimate` itself without samples.
fn percentile_interval(mut samples: Vec<f64>, estimate: f64) -> Interval {
    samples.sort_by(f64::total_cmp);
    match (quantile(&samples, 0.025), quantile(&samples, 0.975)) {
        (Some(low), Some(high)) => Interval { low, high },
        _ => Interval {
            low: estimate,
            high: estimate,
        },
    }
}

/// Type-7 quantile of sorted values.
fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let h = last as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(last);
    Some(sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(a: f64, b: f64, c: f64, sizes: &[f64]) -> Vec<CurvePoint> {
        sizes
            .iter()
            .map(|&n| CurvePoint {
                labels: n,
                score: a - b * n.powf(-c),
                weight: 1.0 + n / 10.0,
            })
            .collect()
    }

    #[test]
    fn noise_free_points_give_back_their_curve() {
        for (a, b, c) in [
            (0.9, 0.8, 0.5),
            (0.75, 1.2, 0.3),
            (1.0, 2.0, 1.1),
            (0.6, 0.4, 0.08),
        ] {
            let fit = PowerLawFit::fit(&curve(a, b, c, &[10.0, 20.0, 50.0, 100.0, 300.0, 1000.0]))
                .expect("a fit");
            assert!((fit.a - a).abs() < 1e-6, "a: {fit:?} vs {a}");
            assert!((fit.b - b).abs() < 1e-5, "b: {fit:?} vs {b}");
            assert!((fit.c - c).abs() < 1e-5, "c: {fit:?} vs {c}");
            assert!(fit.residual < 1e-7, "{fit:?}");
            assert_eq!(fit.points, 6);
        }
    }

    #[test]
    fn labels_needed_inverts_the_curve() {
        let fit = PowerLawFit::fit(&curve(0.9, 0.8, 0.5, &[10.0, 30.0, 100.0, 300.0])).unwrap();
        for target in [0.7, 0.8, 0.85, 0.89] {
            let n = fit.labels_needed(target).expect("below the ceiling");
            assert!(fit.score_at(n as f64) >= target - 1e-12, "{target}: {n}");
            assert!(
                fit.score_at(n as f64 - 1.0) < target,
                "{target}: {n} is not the first"
            );
        }
        assert_eq!(fit.labels_needed(0.9 + 1e-6), None, "above the ceiling");
        assert_eq!(fit.labels_needed(0.95), None);
        let exact = PowerLawFit {
            a: 0.9,
            b: 0.8,
            c: 0.5,
            residual: 0.0,
            points: 4,
        };
        // (0.8 / 0.1)^2 = 64 labels reach 0.8.
        assert_eq!(exact.labels_needed(0.8), Some(64));
        assert_eq!(
            exact.labels_needed(0.9),
            None,
            "the ceiling is never reached"
        );
        assert_eq!(exact.labels_needed(0.0), Some(1));
    }

    #[test]
    fn a_fit_needs_three_label_counts_and_a_rise() {
        let two = curve(0.9, 0.8, 0.5, &[10.0, 10.0, 40.0]);
        assert_eq!(
            PowerLawFit::fit(&two),
            Err(CurveFitError::TooFewSizes { distinct: 2 })
        );
        let falling: Vec<CurvePoint> = [(10.0, 0.8), (50.0, 0.7), (200.0, 0.6)]
            .iter()
            .map(|&(labels, score)| CurvePoint {
                labels,
                score,
                weight: 1.0,
            })
            .collect();
        assert_eq!(PowerLawFit::fit(&falling), Err(CurveFitError::NotRising));
    }

    #[test]
    fn the_ceiling_stays_at_most_one() {
        // Points on a curve whose ceiling would be 1.2: the fit keeps a = 1.
        let fit = PowerLawFit::fit(&curve(1.2, 1.0, 0.4, &[10.0, 40.0, 160.0, 640.0])).unwrap();
        assert_eq!(fit.a, 1.0);
        assert!(fit.b > 0.0 && fit.c > 0.0, "{fit:?}");
        assert!(fit.residual > 0.0);
    }

    /// `items` predictions of three classes, about 70% right, in a fixed pattern.
    fn predictions(items: usize) -> Vec<HeldOutPrediction> {
        (0..items)
            .map(|i| {
                let gold = (i % 3) as u32;
                let predicted = if i % 10 < 7 { gold } else { (gold + 1) % 3 };
                HeldOutPrediction {
                    gold,
                    predicted,
                    confidence: 0.5,
                }
            })
            .collect()
    }

    #[test]
    fn bootstrap_intervals_hold_the_estimate_and_narrow_with_more_items() {
        let small = label_score_intervals(&predictions(40), 3, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)
            .unwrap();
        let large =
            label_score_intervals(&predictions(1000), 3, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED)
                .unwrap();
        for (s, l) in [
            (small.accuracy, large.accuracy),
            (small.macro_f1, large.macro_f1),
        ] {
            for e in [s, l] {
                assert!(
                    e.interval.low <= e.estimate && e.estimate <= e.interval.high,
                    "{e:?}"
                );
                assert!(e.interval.low < e.interval.high, "{e:?}");
            }
            let width = |e: BootstrapEstimate| e.interval.high - e.interval.low;
            assert!(width(l) < width(s) / 2.0, "{s:?} vs {l:?}");
        }
        assert_eq!(large.items, 1000);
        assert!((large.accuracy.estimate - 0.7).abs() < 1e-9);
        // The same data and seed, the same interval.
        assert_eq!(
            label_score_intervals(&predictions(40), 3, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED),
            Some(small)
        );
    }

    #[test]
    fn macro_f1_matches_the_evaluation() {
        let preds = predictions(97);
        let probs: Vec<Vec<f32>> = preds
            .iter()
            .map(|p| {
                let mut v = vec![0.0; 3];
                v[p.predicted as usize] = 1.0;
                v
            })
            .collect();
        let gold: Vec<usize> = preds.iter().map(|p| p.gold as usize).collect();
        let evaluation = crate::evaluate(&probs, &gold, 3);
        let intervals = label_score_intervals(&preds, 3, 10, 1).unwrap();
        assert!((intervals.accuracy.estimate - evaluation.accuracy).abs() < 1e-12);
        assert!((intervals.macro_f1.estimate - evaluation.macro_f1).abs() < 1e-12);
        // Classes outside the version's labels are left out, and nothing left is no figure.
        let stray = [HeldOutPrediction {
            gold: 7,
            predicted: 0,
            confidence: 1.0,
        }];
        assert_eq!(label_score_intervals(&stray, 3, 10, 1), None);
    }

    #[test]
    fn span_f1_is_strict_micro_f1_with_an_interval() {
        let counts: Vec<HeldOutSpanCounts> = (0..60)
            .map(|i| HeldOutSpanCounts {
                model: [2, (i % 3 == 0) as u32, (i % 4 == 0) as u32],
                patterns: [0, 0, 0],
            })
            .collect();
        let f1 = span_f1_interval(&counts, BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED).unwrap();
        // tp 120, fp 20, fn 15.
        assert!((f1.estimate - 240.0 / 275.0).abs() < 1e-12, "{f1:?}");
        assert!(f1.interval.low <= f1.estimate && f1.estimate <= f1.interval.high);
        assert!(f1.interval.low < f1.interval.high);
        assert_eq!(span_f1_interval(&[], 10, 1), None);
        let nothing = [HeldOutSpanCounts {
            model: [0, 0, 0],
            patterns: [0, 0, 0],
        }];
        assert_eq!(span_f1_interval(&nothing, 10, 1).unwrap().estimate, 0.0);
    }
}
