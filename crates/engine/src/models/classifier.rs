//! What a version's classifier is, as stored in [`concord_store::ModelVersionRecord::classifier`],
//! how it turns embeddings into label probabilities, and which label a single-label version
//! picks from them.

use concord_ml::{LinearHead, ZeroShot};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum Classifier {
    ZeroShot {
        zero_shot: ZeroShot,
        priors: Vec<f32>,
    },
    Head {
        head: LinearHead,
    },
}

impl Classifier {
    /// Per item, the probability of each label in the version's label order.
    pub(super) fn predict(&self, x: &[Vec<f32>]) -> Vec<Vec<f32>> {
        match self {
            Classifier::Head { head } => head.predict(x),
            Classifier::ZeroShot { zero_shot, priors } => {
                concord_ml::apply_priors(&zero_shot.predict(x), priors)
            }
        }
    }
}

/// The label a single-label version gives an item from its probabilities `p` (in `labels`'
/// order), and that label's probability: what the predict job suggests and an exported model
/// writes (`portable.rs`), decided here once.
pub(super) fn single_label(labels: &[String], p: &[f32]) -> (String, f32) {
    let best = concord_ml::argmax(p);
    (
        labels.get(best).cloned().unwrap_or_default(),
        p.get(best).copied().unwrap_or(0.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_zero_shot_version_of_the_old_format_still_predicts_with_its_priors() {
        // Calibrated with EM priors, as versions were stored before issue 13 (numbers exact in
        // binary, so the round trip compares equal).
        let stored = serde_json::json!({
            "kind": "zero_shot",
            "zero_shot": {
                "labels": [[1.0, 0.0], [0.0, 1.0]],
                "centre": [0.5, 0.125],
                "scale": [1.0, 1.0],
                "temperature": 0.0625
            },
            "priors": [0.75, 0.25]
        });
        let classifier: Classifier = serde_json::from_value(stored.clone()).unwrap();
        let x = vec![vec![0.6, 0.8]];
        // Logits (0.6 - 0.5) / 0.0625 = 1.6 and (0.8 - 0.125) / 0.0625 = 10.8, reweighed by
        // the priors 0.75 : 0.25.
        let (a, b) = (0.75 * 1.6f32.exp(), 0.25 * 10.8f32.exp());
        let p = classifier.predict(&x);
        assert!((p[0][1] - b / (a + b)).abs() < 1e-5, "{p:?}");
        // And it is written back the same way.
        assert_eq!(serde_json::to_value(&classifier).unwrap(), stored);
    }
}
