//! What a version's classifier is, as stored in [`concord_store::ModelVersionRecord::classifier`],
//! and how it turns cached embeddings into label probabilities.

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
                let uniform = 1.0 / priors.len().max(1) as f32;
                zero_shot
                    .predict(x)
                    .into_iter()
                    .map(|p| {
                        let w: Vec<f32> =
                            p.iter().zip(priors).map(|(a, b)| a * b / uniform).collect();
                        let total: f32 = w.iter().sum::<f32>().max(f32::MIN_POSITIVE);
                        w.into_iter().map(|v| v / total).collect()
                    })
                    .collect()
            }
        }
    }
}
