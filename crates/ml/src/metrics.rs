//! How good a classifier is on held-out items: accuracy, macro-F1, per-label precision, recall
//! and F1, the confusion matrix and the expected calibration error. Pure functions.

use serde::{Deserialize, Serialize};

use crate::vector::argmax;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Held-out items whose gold label is this one.
    pub support: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub items: u64,
    pub accuracy: f64,
    /// Unweighted mean of the per-label F1 over labels with support or predictions.
    pub macro_f1: f64,
    pub per_label: Vec<LabelMetrics>,
    /// `confusion[gold][predicted]`.
    pub confusion: Vec<Vec<u64>>,
    /// Expected calibration error over 10 equal-width confidence bins.
    pub calibration_error: f64,
}

/// Scores predicted class probabilities against gold class indices.
pub fn evaluate(probs: &[Vec<f32>], gold: &[usize], classes: usize) -> Evaluation {
    let mut confusion = vec![vec![0u64; classes]; classes];
    let bins = 10;
    let mut bin_count = vec![0u64; bins];
    let mut bin_conf = vec![0f64; bins];
    let mut bin_correct = vec![0u64; bins];
    for (p, &g) in probs.iter().zip(gold) {
        let predicted = argmax(p);
        if g < classes && predicted < classes {
            confusion[g][predicted] += 1;
        }
        let confidence = f64::from(p.get(predicted).copied().unwrap_or(0.0));
        let bin = ((confidence * bins as f64) as usize).min(bins - 1);
        bin_count[bin] += 1;
        bin_conf[bin] += confidence;
        bin_correct[bin] += u64::from(predicted == g);
    }
    let items = probs.len().min(gold.len()) as u64;
    let correct: u64 = (0..classes).map(|c| confusion[c][c]).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_label: Vec<LabelMetrics> = (0..classes)
        .map(|c| {
            let tp = confusion[c][c];
            let predicted: u64 = (0..classes).map(|g| confusion[g][c]).sum();
            let support: u64 = confusion[c].iter().sum();
            let precision = ratio(tp, predicted);
            let recall = ratio(tp, support);
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            LabelMetrics {
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let counted: Vec<f64> = (0..classes)
        .filter(|&c| per_label[c].support > 0 || (0..classes).any(|g| confusion[g][c] > 0))
        .map(|c| per_label[c].f1)
        .collect();
    let macro_f1 = if counted.is_empty() {
        0.0
    } else {
        counted.iter().sum::<f64>() / counted.len() as f64
    };
    let calibration_error = (0..bins)
        .filter(|&b| bin_count[b] > 0)
        .map(|b| {
            let n = bin_count[b] as f64;
            (n / items.max(1) as f64) * (bin_conf[b] / n - bin_correct[b] as f64 / n).abs()
        })
        .sum();
    Evaluation {
        items,
        accuracy: ratio(correct, items),
        macro_f1,
        per_label,
        confusion,
        calibration_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(probs: &[[f32; 2]], gold: &[usize], accuracy: f64, macro_f1: f64, ece: f64) {
        let p: Vec<Vec<f32>> = probs.iter().map(|r| r.to_vec()).collect();
        let e = evaluate(&p, gold, 2);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(
            close(e.accuracy, accuracy),
            "accuracy {} != {accuracy}",
            e.accuracy
        );
        assert!(
            close(e.macro_f1, macro_f1),
            "macro-F1 {} != {macro_f1}",
            e.macro_f1
        );
        assert!(
            close(e.calibration_error, ece),
            "ECE {} != {ece}",
            e.calibration_error
        );
    }

    #[test]
    fn scores() {
        // Perfect and fully confident: no calibration error.
        check(&[[1.0, 0.0], [0.0, 1.0]], &[0, 1], 1.0, 1.0, 0.0);
        // Always class 0 on a 3:1 set: accuracy 0.75; F1 of class 0 is 6/7, class 1 is 0.
        check(
            &[[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]],
            &[0, 0, 0, 1],
            0.75,
            (6.0 / 7.0) / 2.0,
            (0.9f32 as f64 - 0.75).abs(),
        );
    }

    #[test]
    fn confusion_rows_are_gold_and_columns_predictions() {
        let e = evaluate(&[vec![0.2, 0.8], vec![0.6, 0.4]], &[0, 0], 2);
        assert_eq!(e.confusion, [[1, 1], [0, 0]]);
        assert_eq!(e.per_label[0].support, 2);
        assert_eq!(e.per_label[1].precision, 0.0);
    }
}
