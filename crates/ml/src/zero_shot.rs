//! Zero-shot classification before any label exists: each item is scored against each label's
//! name and description by embedding similarity. Raw cosine similarities favour whichever label
//! text happens to sit closer to everything (its "prior"); calibrating each label's scores
//! against the project's own items removes that bias before the softmax.

use serde::{Deserialize, Serialize};

use crate::vector::{cosine, softmax};

/// How similarities are adjusted before the softmax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Calibration {
    /// Raw cosine similarity (the naive baseline).
    None,
    /// Minus the label's mean similarity over the reference items.
    Centre,
    /// Centred and divided by the label's standard deviation over the reference items.
    Standardize,
}

/// Softmax temperature on (calibrated) similarities.
pub const TEMPERATURE: f32 = 0.05;

/// The text embedded for a label: its name, and its description when it has one.
pub fn label_prompt(name: &str, description: Option<&str>) -> String {
    match description.map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => format!("{name}: {d}"),
        None => name.to_string(),
    }
}

/// A zero-shot classifier: label embeddings plus per-label calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroShot {
    pub labels: Vec<Vec<f32>>,
    pub centre: Vec<f32>,
    pub scale: Vec<f32>,
    pub temperature: f32,
}

impl ZeroShot {
    /// Calibrates against `reference` items (a sample of the project's items; no labels needed).
    pub fn new(
        labels: Vec<Vec<f32>>,
        reference: &[Vec<f32>],
        calibration: Calibration,
    ) -> ZeroShot {
        let n = reference.len().max(1) as f32;
        let mut centre = vec![0.0; labels.len()];
        let mut scale = vec![1.0; labels.len()];
        if calibration != Calibration::None && !reference.is_empty() {
            for (j, label) in labels.iter().enumerate() {
                let sims: Vec<f32> = reference.iter().map(|x| cosine(x, label)).collect();
                let mean = sims.iter().sum::<f32>() / n;
                centre[j] = mean;
                if calibration == Calibration::Standardize {
                    let var = sims.iter().map(|s| (s - mean).powi(2)).sum::<f32>() / n;
                    // In units of a typical spread, so the temperature means the same thing.
                    scale[j] = (var.sqrt() / 0.05).max(1e-3);
                }
            }
        }
        ZeroShot {
            labels,
            centre,
            scale,
            temperature: TEMPERATURE,
        }
    }

    /// Class probabilities for each item.
    pub fn predict(&self, items: &[Vec<f32>]) -> Vec<Vec<f32>> {
        items
            .iter()
            .map(|x| {
                let logits: Vec<f32> = self
                    .labels
                    .iter()
                    .enumerate()
                    .map(|(j, l)| {
                        (cosine(x, l) - self.centre[j]) / self.scale[j] / self.temperature
                    })
                    .collect();
                softmax(&logits)
            })
            .collect()
    }
}

/// Re-estimates class priors from unlabelled items (Saerens et al., 2002): zero-shot scores
/// assume every label is equally common; EM on the items' own posteriors finds how common each
/// label really looks and reweighs the posteriors accordingly. Returns (priors, posteriors).
pub fn adjust_priors(probs: &[Vec<f32>], iterations: usize) -> (Vec<f32>, Vec<Vec<f32>>) {
    let classes = probs.first().map_or(0, Vec::len);
    let start = vec![1.0 / classes.max(1) as f32; classes];
    let mut priors = start.clone();
    let mut adjusted = probs.to_vec();

    for _ in 0..iterations {
        for (row, p) in adjusted.iter_mut().zip(probs) {
            let mut total = 0.0;
            for j in 0..classes {
                row[j] = p[j] * priors[j] / start[j];
                total += row[j];
            }
            for v in row.iter_mut() {
                *v /= total.max(f32::MIN_POSITIVE);
            }
        }
        let n = adjusted.len().max(1) as f32;
        for (j, prior) in priors.iter_mut().enumerate() {
            *prior = adjusted.iter().map(|r| r[j]).sum::<f32>() / n;
        }
    }
    (priors, adjusted)
}

/// Self-training without any human label: the items the (prior-adjusted) zero-shot model is
/// surest of become pseudo-labels for a head on the embeddings, which then scores every item.
/// `fraction` of each predicted class is kept.
pub fn self_train(
    items: &[Vec<f32>],
    probs: &[Vec<f32>],
    fraction: f32,
    params: &crate::HeadParams,
    device: &crate::Device,
) -> Result<crate::LinearHead, crate::MlError> {
    let classes = probs.first().map_or(0, Vec::len);
    let mut by_class: Vec<Vec<(f32, usize)>> = vec![Vec::new(); classes];
    for (i, p) in probs.iter().enumerate() {
        let c = crate::argmax(p);
        by_class[c].push((p[c], i));
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (c, members) in by_class.iter_mut().enumerate() {
        members.sort_by(|a, b| b.0.total_cmp(&a.0));
        let keep = ((members.len() as f32 * fraction).ceil() as usize).min(members.len());
        for &(_, i) in &members[..keep] {
            x.push(items[i].clone());
            y.push(c);
        }
    }
    crate::LinearHead::train(&x, &y, classes, params, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_priors_follow_the_items() {
        // Three items lean to class 0, one to class 1: the re-estimated prior of class 0 rises
        // and every posterior stays a distribution.
        let probs = vec![
            vec![0.6, 0.4],
            vec![0.7, 0.3],
            vec![0.55, 0.45],
            vec![0.3, 0.7],
        ];
        let (priors, adjusted) = adjust_priors(&probs, 50);
        assert!(priors[0] > 0.6, "{priors:?}");
        for p in &adjusted {
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn centring_removes_a_label_that_is_close_to_everything() {
        // Label 0 is similar to every item; label 1 only to the items that are really about it.
        let labels = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let norm = |a: f32, b: f32| {
            let n = (a * a + b * b).sqrt();
            vec![a / n, b / n]
        };
        let items = vec![
            norm(0.9, 0.1),
            norm(0.9, 0.1),
            norm(0.7, 0.7),
            norm(0.7, 0.7),
        ];
        let naive = ZeroShot::new(labels.clone(), &items, Calibration::None).predict(&items);
        assert!(
            naive.iter().all(|p| p[0] >= p[1]),
            "naive picks label 0 everywhere"
        );
        let centred = ZeroShot::new(labels, &items, Calibration::Centre).predict(&items);
        assert!(centred[0][0] > centred[0][1]);
        assert!(centred[2][1] > centred[2][0], "{centred:?}");
    }
}
