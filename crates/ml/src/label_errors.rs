//! Label-error detection on out-of-fold predicted probabilities: confident learning
//! (Northcutt, Jiang & Chuang 2021, "Confident Learning: Estimating Uncertainty in Dataset
//! Labels"; the pruning rules as cleanlab implements them) and, where several annotators
//! answered an item, a CROWDLAB-style consensus (Goh, Tkachenko & Mueller 2022) mixing the
//! model's probabilities with the annotators' votes weighted by their estimated accuracy.
//!
//! Every probability handed in must be out-of-fold (the model never saw the item's label),
//! or a memorised wrong label looks right. Pure: callers hand in numbers and get numbers back.

use serde::{Deserialize, Serialize};

/// What is wrong with the numbers handed in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelErrorInputError {
    #[error("{probabilities} probability rows for {labels} labels")]
    Lengths { probabilities: usize, labels: usize },
    #[error("item {item} has {found} probabilities for {classes} classes")]
    RowWidth {
        item: usize,
        found: usize,
        classes: usize,
    },
    #[error("item {item} has label {label}, out of range for {classes} classes")]
    LabelOutOfRange {
        item: usize,
        label: usize,
        classes: usize,
    },
    #[error("vote by annotator {annotator} on item {item} is out of range ({annotators} annotators, {classes} classes)")]
    VoteOutOfRange {
        item: usize,
        annotator: usize,
        annotators: usize,
        classes: usize,
    },
    #[error("need at least two classes")]
    TooFewClasses,
}

/// How confident learning decides which items with given label `k` are issues, from the
/// confident joint `C[k][j]` (items given `k` that are confidently `j`). As in cleanlab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pruning {
    /// For each other class `j`, the `C[k][j]` items with the largest margin `p_j − p_k`
    /// (cleanlab's default, `prune_by_noise_rate`).
    ByNoiseRate,
    /// The `Σ_{j≠k} C[k][j]` items with the lowest self-confidence `p_k`.
    ByClass,
    /// Items both rules flag.
    Both,
}

/// The label-quality score items are ranked by (lower = more likely mislabelled), in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityScore {
    /// The probability of the given label.
    SelfConfidence,
    /// `(p_given − max_{j≠given} p_j + 1) / 2`.
    NormalizedMargin,
}

impl QualityScore {
    pub fn as_str(&self) -> &'static str {
        match self {
            QualityScore::SelfConfidence => "self_confidence",
            QualityScore::NormalizedMargin => "normalized_margin",
        }
    }
}

/// The pruning rule and ranking score label-error detection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionMethod {
    pub pruning: Pruning,
    pub score: QualityScore,
}

impl Default for DetectionMethod {
    /// Chosen on the development halves (items whose sha256(id) is even) of the spam and
    /// tweet sets with 10% planted flips (`concord simulate-label-errors --split dev`, seeds 1–5
    /// and 7): the normalized margin's precision@100 on the tweets was higher on each of the six
    /// seeds (mean 0.767 against 0.743 for self-confidence); on spam (two classes) the two rank
    /// alike. The pruning rule only decides how long the list is; cleanlab's default is kept.
    fn default() -> Self {
        DetectionMethod {
            pruning: Pruning::ByNoiseRate,
            score: QualityScore::NormalizedMargin,
        }
    }
}

/// Checks that `probabilities` has one row of `classes` entries per label, labels in range.
fn check_inputs(
    probabilities: &[Vec<f32>],
    labels: &[usize],
    classes: usize,
) -> Result<(), LabelErrorInputError> {
    if classes < 2 {
        return Err(LabelErrorInputError::TooFewClasses);
    }
    if probabilities.len() != labels.len() {
        return Err(LabelErrorInputError::Lengths {
            probabilities: probabilities.len(),
            labels: labels.len(),
        });
    }
    for (item, (row, &label)) in probabilities.iter().zip(labels).enumerate() {
        if row.len() != classes {
            return Err(LabelErrorInputError::RowWidth {
                item,
                found: row.len(),
                classes,
            });
        }
        if label >= classes {
            return Err(LabelErrorInputError::LabelOutOfRange {
                item,
                label,
                classes,
            });
        }
    }
    Ok(())
}

/// Per-class thresholds `t_j`: the mean probability of class `j` over the items given `j`.
/// A class no item was given gets `+∞`, so no item is ever confidently in it (cleanlab's NaN).
pub fn class_thresholds(probabilities: &[Vec<f32>], labels: &[usize], classes: usize) -> Vec<f32> {
    let mut sums = vec![0.0f64; classes];
    let mut counts = vec![0usize; classes];
    for (row, &label) in probabilities.iter().zip(labels) {
        if let Some(p) = row.get(label) {
            sums[label] += f64::from(*p);
            counts[label] += 1;
        }
    }
    sums.iter()
        .zip(&counts)
        .map(|(&s, &n)| {
            if n == 0 {
                f32::INFINITY
            } else {
                (s / n as f64) as f32
            }
        })
        .collect()
}

/// The confident joint: `counts[k][j]` is the number of items given `k` whose probability of
/// `j` reaches `t_j` (the largest such class when several do); `guesses[i]` is that class.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfidentJoint {
    pub counts: Vec<Vec<usize>>,
    pub guesses: Vec<Option<usize>>,
}

/// Slack below a threshold that still counts as reaching it (as cleanlab: float error).
const THRESHOLD_SLACK: f32 = 1e-6;

/// The confident joint of `probabilities` under `thresholds`.
pub fn confident_joint(
    probabilities: &[Vec<f32>],
    labels: &[usize],
    thresholds: &[f32],
) -> ConfidentJoint {
    let classes = thresholds.len();
    let mut counts = vec![vec![0usize; classes]; classes];
    let guesses: Vec<Option<usize>> = probabilities
        .iter()
        .zip(labels)
        .map(|(row, &label)| {
            let guess = row
                .iter()
                .zip(thresholds)
                .enumerate()
                .filter(|(_, (p, t))| **p >= **t - THRESHOLD_SLACK)
                .max_by(|a, b| a.1 .0.total_cmp(b.1 .0))
                .map(|(j, _)| j);
            if let (Some(j), true) = (guess, label < classes) {
                counts[label][j] += 1;
            }
            guess
        })
        .collect();
    ConfidentJoint { counts, guesses }
}

/// Rounds each row of `matrix` to integers keeping the row's (rounded) total: floors, then the
/// largest remainders get the leftover units.
fn round_preserving_row_totals(matrix: &[Vec<f64>]) -> Vec<Vec<usize>> {
    matrix
        .iter()
        .map(|row| {
            let total = row.iter().sum::<f64>().round().max(0.0) as usize;
            let mut out: Vec<usize> = row.iter().map(|v| v.max(0.0).floor() as usize).collect();
            let mut left = total.saturating_sub(out.iter().sum());
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| (row[b] - row[b].floor()).total_cmp(&(row[a] - row[a].floor())));
            for &j in order.iter().cycle().take(row.len() * 2) {
                if left == 0 {
                    break;
                }
                out[j] += 1;
                left -= 1;
            }
            out
        })
        .collect()
}

/// Calibrates the confident joint so each row sums to the number of items given that label
/// and the whole to the number of items (cleanlab's `calibrate_confident_joint`): items no
/// class was confident about are spread in the row's proportions.
pub fn calibrate_joint(counts: &[Vec<usize>], label_counts: &[usize]) -> Vec<Vec<usize>> {
    let scaled: Vec<Vec<f64>> = counts
        .iter()
        .zip(label_counts)
        .map(|(row, &n)| {
            let sum: usize = row.iter().sum();
            if sum == 0 {
                vec![0.0; row.len()]
            } else {
                row.iter()
                    .map(|&c| c as f64 / sum as f64 * n as f64)
                    .collect()
            }
        })
        .collect();
    let total: f64 = scaled.iter().flatten().sum();
    let items: usize = label_counts.iter().sum();
    let normalised: Vec<Vec<f64>> = if total > 0.0 {
        scaled
            .iter()
            .map(|row| row.iter().map(|v| v / total * items as f64).collect())
            .collect()
    } else {
        scaled
    };
    round_preserving_row_totals(&normalised)
}

/// Items whose given label confident learning flags as an issue, as a mask. Never flags an
/// item whose most probable class is its given label, and keeps at least one item per class.
pub fn find_label_issues(
    probabilities: &[Vec<f32>],
    labels: &[usize],
    classes: usize,
    pruning: Pruning,
) -> Result<Vec<bool>, LabelErrorInputError> {
    check_inputs(probabilities, labels, classes)?;
    let thresholds = class_thresholds(probabilities, labels, classes);
    let joint = confident_joint(probabilities, labels, &thresholds);
    let mut label_counts = vec![0usize; classes];
    for &l in labels {
        label_counts[l] += 1;
    }
    let calibrated = calibrate_joint(&joint.counts, &label_counts);
    let mut by_class_members: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class_members[l].push(i);
    }
    let by_noise = |mask: &mut Vec<bool>| {
        for (k, members) in by_class_members.iter().enumerate() {
            // Keep at least one item of each class.
            let mut budget = members.len().saturating_sub(1);
            for j in (0..classes).filter(|&j| j != k) {
                let take = calibrated[k][j].min(budget);
                if take == 0 {
                    continue;
                }
                let mut sorted = members.clone();
                let margin = |i: usize| probabilities[i][j] - probabilities[i][k];
                sorted.sort_by(|&a, &b| margin(b).total_cmp(&margin(a)));
                for &i in sorted.iter().take(take) {
                    mask[i] = true;
                }
                budget -= take;
            }
        }
    };
    let by_class = |mask: &mut Vec<bool>| {
        for (k, members) in by_class_members.iter().enumerate() {
            let off_diagonal: usize = (0..classes)
                .filter(|&j| j != k)
                .map(|j| calibrated[k][j])
                .sum();
            let take = off_diagonal.min(members.len().saturating_sub(1));
            let mut sorted = members.clone();
            sorted.sort_by(|&a, &b| probabilities[a][k].total_cmp(&probabilities[b][k]));
            for &i in sorted.iter().take(take) {
                mask[i] = true;
            }
        }
    };
    let n = labels.len();
    let mut mask = vec![false; n];
    match pruning {
        Pruning::ByNoiseRate => by_noise(&mut mask),
        Pruning::ByClass => by_class(&mut mask),
        Pruning::Both => {
            let mut other = vec![false; n];
            by_noise(&mut mask);
            by_class(&mut other);
            for (m, o) in mask.iter_mut().zip(other) {
                *m = *m && o;
            }
        }
    }
    for (i, m) in mask.iter_mut().enumerate() {
        if crate::argmax(&probabilities[i]) == labels[i] {
            *m = false;
        }
    }
    Ok(mask)
}

/// The quality of each item's given label (lower = more likely wrong), in [0, 1].
pub fn label_quality(
    probabilities: &[Vec<f32>],
    labels: &[usize],
    score: QualityScore,
) -> Vec<f32> {
    probabilities
        .iter()
        .zip(labels)
        .map(|(row, &label)| quality_of(row, label, score))
        .collect()
}

/// The quality of `label` under one row of probabilities.
pub fn quality_of(row: &[f32], label: usize, score: QualityScore) -> f32 {
    let given = row.get(label).copied().unwrap_or(0.0);
    match score {
        QualityScore::SelfConfidence => given,
        QualityScore::NormalizedMargin => {
            let best_other = row
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != label)
                .map(|(_, p)| *p)
                .fold(0.0f32, f32::max);
            (given - best_other + 1.0) / 2.0
        }
    }
}

/// The items confident learning flags, most likely mislabelled first (lowest quality first;
/// ties by index).
pub fn rank_label_issues(
    probabilities: &[Vec<f32>],
    labels: &[usize],
    classes: usize,
    pruning: Pruning,
    score: QualityScore,
) -> Result<Vec<usize>, LabelErrorInputError> {
    let mask = find_label_issues(probabilities, labels, classes, pruning)?;
    let quality = label_quality(probabilities, labels, score);
    let mut flagged: Vec<usize> = (0..labels.len()).filter(|&i| mask[i]).collect();
    flagged.sort_by(|&a, &b| quality[a].total_cmp(&quality[b]).then(a.cmp(&b)));
    Ok(flagged)
}

/// One annotator's answer on an item: annotator index and class index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub annotator: usize,
    pub label: usize,
}

/// The CROWDLAB-style consensus over a set of items.
#[derive(Debug, Clone, PartialEq)]
pub struct Consensus {
    /// Per item, the class the model and the annotators together find most likely.
    pub labels: Vec<usize>,
    /// Per item, the mixed class probabilities (model and weighted annotators).
    pub probabilities: Vec<Vec<f32>>,
    /// Per item, the mixed probability of its consensus label.
    pub quality: Vec<f32>,
    /// Per annotator, a quality in [0, 1]: agreement with the consensus on items others
    /// answered too, mixed with the consensus probability of their answers; `None` for an
    /// annotator with no answers.
    pub annotator_quality: Vec<Option<f32>>,
    /// Per annotator, the share of their answers on items others answered too that agree with
    /// the consensus; `None` when they have no such answer.
    pub annotator_agreement: Vec<Option<f32>>,
    /// The weight the model's probabilities got against one annotator of average weight.
    pub model_weight: f32,
}

/// The smallest weight a source (model or annotator) keeps, so a source worse than the
/// most-common-class baseline is discounted, not inverted (CROWDLAB's clipping bound).
const MIN_WEIGHT: f64 = 1e-3;

/// The consensus of the model's (out-of-fold) probabilities and the annotators' votes:
/// a majority vote (ties broken by the model) gives a first consensus; each annotator's
/// agreement with it on items answered by two or more people, and the model's, turn into
/// weights relative to always answering the most common class (`w = 1 − error/baseline_error`,
/// the model's times √(mean answers per item)); the weighted mix of the model's row and each
/// vote (its annotators' mean agreement on the voted class, the rest spread evenly) gives the
/// consensus and its quality. Items nobody answered take the model's row as it is.
pub fn crowdlab_consensus(
    model_probabilities: &[Vec<f32>],
    votes: &[Vec<Vote>],
    annotators: usize,
    classes: usize,
) -> Result<Consensus, LabelErrorInputError> {
    if classes < 2 {
        return Err(LabelErrorInputError::TooFewClasses);
    }
    if model_probabilities.len() != votes.len() {
        return Err(LabelErrorInputError::Lengths {
            probabilities: model_probabilities.len(),
            labels: votes.len(),
        });
    }
    for (item, (row, item_votes)) in model_probabilities.iter().zip(votes).enumerate() {
        if row.len() != classes {
            return Err(LabelErrorInputError::RowWidth {
                item,
                found: row.len(),
                classes,
            });
        }
        if let Some(v) = item_votes
            .iter()
            .find(|v| v.annotator >= annotators || v.label >= classes)
        {
            return Err(LabelErrorInputError::VoteOutOfRange {
                item,
                annotator: v.annotator,
                annotators,
                classes,
            });
        }
    }
    // First consensus: majority vote, ties (and unanswered items) by the model.
    let majority: Vec<usize> = model_probabilities
        .iter()
        .zip(votes)
        .map(|(row, item_votes)| {
            let mut counts = vec![0usize; classes];
            for v in item_votes {
                counts[v.label] += 1;
            }
            (0..classes)
                .max_by(|&a, &b| counts[a].cmp(&counts[b]).then(row[a].total_cmp(&row[b])))
                .unwrap_or(0)
        })
        .collect();
    let shared: Vec<usize> = (0..votes.len()).filter(|&i| votes[i].len() >= 2).collect();
    // Where nobody's answers overlap, agreement is measured on every answered item.
    let measured: Vec<usize> = if shared.is_empty() {
        (0..votes.len()).filter(|&i| !votes[i].is_empty()).collect()
    } else {
        shared.clone()
    };
    let mut agree = vec![0usize; annotators];
    let mut answered = vec![0usize; annotators];
    let mut class_counts = vec![0usize; classes];
    let mut model_right = 0usize;
    for &i in &measured {
        class_counts[majority[i]] += 1;
        if crate::argmax(&model_probabilities[i]) == majority[i] {
            model_right += 1;
        }
        for v in &votes[i] {
            answered[v.annotator] += 1;
            if v.label == majority[i] {
                agree[v.annotator] += 1;
            }
        }
    }
    let annotator_agreement: Vec<Option<f32>> = agree
        .iter()
        .zip(&answered)
        .map(|(&a, &n)| (n > 0).then(|| a as f32 / n as f32))
        .collect();
    let known: Vec<f32> = annotator_agreement.iter().flatten().copied().collect();
    let mean_agreement = if known.is_empty() {
        0.0
    } else {
        known.iter().sum::<f32>() / known.len() as f32
    };
    let baseline_error = if measured.is_empty() {
        1.0 - 1.0 / classes as f64
    } else {
        let top = class_counts.iter().copied().max().unwrap_or(0);
        (1.0 - top as f64 / measured.len() as f64).max(MIN_WEIGHT)
    };
    let weight_of = |accuracy: f64| (1.0 - (1.0 - accuracy) / baseline_error).max(MIN_WEIGHT);
    let annotator_weight: Vec<f64> = annotator_agreement
        .iter()
        .map(|a| weight_of(f64::from(a.unwrap_or(mean_agreement))))
        .collect();
    let answered_items: Vec<usize> = (0..votes.len()).filter(|&i| !votes[i].is_empty()).collect();
    let mean_answers = if answered_items.is_empty() {
        1.0
    } else {
        answered_items
            .iter()
            .map(|&i| votes[i].len())
            .sum::<usize>() as f64
            / answered_items.len() as f64
    };
    let model_accuracy = if measured.is_empty() {
        1.0
    } else {
        model_right as f64 / measured.len() as f64
    };
    let model_weight = weight_of(model_accuracy) * mean_answers.sqrt();
    // Each vote's class distribution: the annotators' mean agreement on the voted class.
    let likelihood = f64::from(mean_agreement).clamp(1.0 / classes as f64, 1.0 - 1e-6);
    let elsewhere = (1.0 - likelihood) / (classes - 1) as f64;
    let mut probabilities = Vec::with_capacity(votes.len());
    for (row, item_votes) in model_probabilities.iter().zip(votes) {
        if item_votes.is_empty() {
            probabilities.push(row.clone());
            continue;
        }
        let mut mixed: Vec<f64> = row.iter().map(|&p| model_weight * f64::from(p)).collect();
        let mut total = model_weight;
        for v in item_votes {
            let w = annotator_weight[v.annotator];
            for (c, m) in mixed.iter_mut().enumerate() {
                *m += w * if c == v.label { likelihood } else { elsewhere };
            }
            total += w;
        }
        probabilities.push(mixed.iter().map(|m| (m / total) as f32).collect());
    }
    let labels: Vec<usize> = probabilities.iter().map(|r| crate::argmax(r)).collect();
    let quality: Vec<f32> = probabilities
        .iter()
        .zip(&labels)
        .map(|(r, &l)| r[l])
        .collect();
    // Annotator quality: the consensus probability of their answers, mixed with their
    // agreement by how much the model counts in the consensus.
    let mean_annotator_weight =
        annotator_weight.iter().sum::<f64>() / annotator_weight.len().max(1) as f64;
    let model_share = (model_weight / (model_weight + mean_annotator_weight * mean_answers)) as f32;
    let mut probability_sum = vec![0.0f64; annotators];
    let mut answer_count = vec![0usize; annotators];
    for (row, item_votes) in probabilities.iter().zip(votes) {
        for v in item_votes {
            probability_sum[v.annotator] += f64::from(row[v.label]);
            answer_count[v.annotator] += 1;
        }
    }
    let annotator_quality = (0..annotators)
        .map(|a| {
            (answer_count[a] > 0).then(|| {
                let answer_quality = (probability_sum[a] / answer_count[a] as f64) as f32;
                let agreement = annotator_agreement[a].unwrap_or(answer_quality);
                model_share * answer_quality + (1.0 - model_share) * agreement
            })
        })
        .collect();
    Ok(Consensus {
        labels,
        probabilities,
        quality,
        annotator_quality,
        annotator_agreement,
        model_weight: (model_weight / mean_annotator_weight.max(MIN_WEIGHT)) as f32,
    })
}

/// Precision and recall of a ranking against the items truly mislabelled.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PrecisionAtK {
    pub k: usize,
    /// Items in the top `k` (fewer when the ranking is shorter).
    pub considered: usize,
    pub found: usize,
    /// `found / considered` (0 when nothing was considered).
    pub precision: f64,
    /// `found / all truly mislabelled`.
    pub recall: f64,
}

/// Precision@k and recall@k of `ranking` (item indices, most likely error first) where
/// `is_error[i]` says whether item `i` is truly mislabelled.
pub fn precision_at_k(ranking: &[usize], is_error: &[bool], k: usize) -> PrecisionAtK {
    let considered = ranking.len().min(k);
    let found = ranking[..considered]
        .iter()
        .filter(|&&i| is_error.get(i).copied().unwrap_or(false))
        .count();
    let errors = is_error.iter().filter(|e| **e).count();
    PrecisionAtK {
        k,
        considered,
        found,
        precision: if considered == 0 {
            0.0
        } else {
            found as f64 / considered as f64
        },
        recall: if errors == 0 {
            0.0
        } else {
            found as f64 / errors as f64
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{out_of_fold_probabilities, CvHeadParams, SplitMix64};

    /// Gaussian-ish clusters: `per_class` items around each of `classes` centres in `dims`
    /// dimensions, with noise `spread`.
    fn clusters(
        classes: usize,
        per_class: usize,
        dims: usize,
        spread: f32,
        seed: u64,
    ) -> (Vec<Vec<f32>>, Vec<usize>) {
        let mut rng = SplitMix64::new(seed);
        let mut uniform = move || (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32;
        let centres: Vec<Vec<f32>> = (0..classes)
            .map(|_| (0..dims).map(|_| uniform() * 2.0 - 1.0).collect())
            .collect();
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (c, centre) in centres.iter().enumerate() {
            for _ in 0..per_class {
                // Sum of uniforms: roughly normal noise.
                x.push(
                    centre
                        .iter()
                        .map(|m| m + spread * ((0..4).map(|_| uniform()).sum::<f32>() - 2.0))
                        .collect(),
                );
                y.push(c);
            }
        }
        (x, y)
    }

    /// Flips `count` labels (distinct items) to another class; returns the flipped mask.
    fn flip(y: &mut [usize], classes: usize, count: usize, seed: u64) -> Vec<bool> {
        let mut rng = SplitMix64::new(seed);
        let mut order: Vec<usize> = (0..y.len()).collect();
        rng.shuffle(&mut order);
        let mut flipped = vec![false; y.len()];
        for &i in order.iter().take(count) {
            let shift = 1 + (rng.next_u64() % (classes as u64 - 1)) as usize;
            y[i] = (y[i] + shift) % classes;
            flipped[i] = true;
        }
        flipped
    }

    /// Out-of-fold probabilities, as the engine computes them.
    fn out_of_fold(x: &[Vec<f32>], y: &[usize], classes: usize, folds: usize) -> Vec<Vec<f32>> {
        out_of_fold_probabilities(x, y, classes, folds, 1, &CvHeadParams::default())
            .expect("out-of-fold probabilities")
    }

    #[test]
    fn planted_flips_come_first() {
        let classes = 3;
        let (x, mut y) = clusters(classes, 100, 8, 0.3, 7);
        let flipped = flip(&mut y, classes, 20, 11);
        let probs = out_of_fold(&x, &y, classes, 5);
        for pruning in [Pruning::ByNoiseRate, Pruning::ByClass, Pruning::Both] {
            for score in [QualityScore::SelfConfidence, QualityScore::NormalizedMargin] {
                let ranking = rank_label_issues(&probs, &y, classes, pruning, score).unwrap();
                let at20 = precision_at_k(&ranking, &flipped, 20);
                assert!(at20.considered >= 15, "{pruning:?} {score:?}: {at20:?}");
                assert!(at20.precision >= 0.9, "{pruning:?} {score:?}: {at20:?}");
            }
        }
        // Without flips, on well separated clusters, little is flagged.
        let (_, clean) = clusters(classes, 100, 8, 0.3, 7);
        let clean_probs = out_of_fold(&x, &clean, classes, 5);
        let flagged = find_label_issues(&clean_probs, &clean, classes, Pruning::ByNoiseRate)
            .unwrap()
            .iter()
            .filter(|m| **m)
            .count();
        assert!(flagged <= 3, "{flagged} clean items flagged");
    }

    #[test]
    fn thresholds_and_joint_follow_the_definition() {
        let probs = vec![
            vec![0.9, 0.1],
            vec![0.7, 0.3],
            vec![0.2, 0.8],
            vec![0.85, 0.15],
        ];
        let labels = vec![0, 0, 1, 1];
        let t = class_thresholds(&probs, &labels, 2);
        assert!(
            (t[0] - 0.8).abs() < 1e-6 && (t[1] - 0.475).abs() < 1e-6,
            "{t:?}"
        );
        let joint = confident_joint(&probs, &labels, &t);
        // Item 1 (0.7 < 0.8, 0.3 < 0.6) is confident about nothing; item 3 is confidently 0.
        assert_eq!(joint.guesses, vec![Some(0), None, Some(1), Some(0)]);
        assert_eq!(joint.counts, vec![vec![1, 0], vec![1, 1]]);
        let mask = find_label_issues(&probs, &labels, 2, Pruning::ByNoiseRate).unwrap();
        assert_eq!(mask, vec![false, false, false, true]);
    }

    #[test]
    fn bad_input_is_refused() {
        let probs = vec![vec![0.5, 0.5]];
        assert!(matches!(
            find_label_issues(&probs, &[2], 2, Pruning::Both),
            Err(LabelErrorInputError::LabelOutOfRange { .. })
        ));
        assert!(matches!(
            find_label_issues(&probs, &[0, 1], 2, Pruning::Both),
            Err(LabelErrorInputError::Lengths { .. })
        ));
    }

    /// Three careful annotators (right 95% of the time) and one answering at random, on
    /// items whose true class the model knows fairly well.
    fn crowd(items: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<Vec<Vote>>, Vec<usize>) {
        let classes = 3;
        let mut rng = SplitMix64::new(seed);
        let mut truth = Vec::new();
        let mut model = Vec::new();
        let mut votes = Vec::new();
        for i in 0..items {
            let t = i % classes;
            truth.push(t);
            let mut row = vec![0.2f32; classes];
            row[t] = 0.6;
            model.push(row);
            let mut item_votes = Vec::new();
            for a in 0..4 {
                // Each item gets three of the four annotators.
                if (i + a) % 4 == 0 {
                    continue;
                }
                let label = if a == 3 {
                    (rng.next_u64() % classes as u64) as usize
                } else if rng.next_u64() % 100 < 95 {
                    t
                } else {
                    (t + 1) % classes
                };
                item_votes.push(Vote {
                    annotator: a,
                    label,
                });
            }
            votes.push(item_votes);
        }
        (model, votes, truth)
    }

    #[test]
    fn a_random_annotator_ranks_below_careful_ones() {
        let (model, votes, truth) = crowd(300, 3);
        let consensus = crowdlab_consensus(&model, &votes, 4, 3).unwrap();
        let quality: Vec<f32> = consensus
            .annotator_quality
            .iter()
            .map(|q| q.unwrap())
            .collect();
        for careful in 0..3 {
            assert!(quality[careful] > quality[3] + 0.2, "{quality:?}");
        }
        let right = consensus
            .labels
            .iter()
            .zip(&truth)
            .filter(|(a, b)| a == b)
            .count();
        assert!(right >= 290, "consensus right on {right} of 300");
    }

    #[test]
    fn an_item_whose_annotators_disagree_with_its_label_scores_worse() {
        let (model, mut votes, truth) = crowd(60, 5);
        // Item 0 and item 3 share the model row and true class; item 3's careful annotators
        // all answer another class.
        assert_eq!(truth[0], truth[3]);
        for v in votes[3].iter_mut() {
            v.label = (truth[3] + 1) % 3;
        }
        let consensus = crowdlab_consensus(&model, &votes, 4, 3).unwrap();
        let given = truth[0];
        let agreeing = consensus.probabilities[0][given];
        let disputed = consensus.probabilities[3][given];
        assert!(disputed + 0.3 < agreeing, "{disputed} vs {agreeing}");
        assert_ne!(consensus.labels[3], given);
        // With no answers, the model's row stands.
        let unanswered = crowdlab_consensus(&model[..1], &[Vec::new()], 4, 3).unwrap();
        assert_eq!(unanswered.probabilities[0], model[0]);
    }

    #[test]
    fn precision_at_k_counts_the_top() {
        let p = precision_at_k(&[3, 1, 2], &[false, true, false, true], 2);
        assert_eq!((p.considered, p.found), (2, 2));
        assert_eq!(p.precision, 1.0);
        assert_eq!(p.recall, 1.0);
        let short = precision_at_k(&[2], &[false, true, false, true], 100);
        assert_eq!(
            (short.considered, short.found, short.precision),
            (1, 0, 0.0)
        );
    }
}
