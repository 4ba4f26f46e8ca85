//! Active learning: which unlabelled items a human should see next. An uncertainty strategy
//! ranks items by how unsure the model is; the diversity step then clusters the most uncertain
//! items (k-means on the embeddings) and takes one per cluster, so a batch is not fifty
//! near-duplicates. Every pick says why it was made.

use serde::{Deserialize, Serialize};

use concord_agreement::rng::SplitMix64;

use crate::vector::cosine;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Random,
    LeastConfidence,
    Margin,
    Entropy,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::LeastConfidence => "least_confidence",
            Strategy::Margin => "margin",
            Strategy::Entropy => "entropy",
        }
    }

    pub fn parse(s: &str) -> Option<Strategy> {
        [
            Strategy::Random,
            Strategy::LeastConfidence,
            Strategy::Margin,
            Strategy::Entropy,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// How unsure a prediction is; higher is more unsure.
pub fn uncertainty(strategy: Strategy, probs: &[f32]) -> f32 {
    let mut sorted = probs.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let top = sorted.first().copied().unwrap_or(0.0);
    match strategy {
        Strategy::Random => 0.0,
        Strategy::LeastConfidence => 1.0 - top,
        Strategy::Margin => 1.0 - (top - sorted.get(1).copied().unwrap_or(0.0)),
        Strategy::Entropy => -probs
            .iter()
            .filter(|p| **p > 0.0)
            .map(|p| p * p.ln())
            .sum::<f32>(),
    }
}

/// One chosen item and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pick {
    pub index: usize,
    pub reason: String,
}

/// What [`select`] works from.
pub struct Pool<'a> {
    /// Every item's embedding, by index.
    pub embeddings: &'a [Vec<f32>],
    /// Every item's predicted probabilities, when a trained model exists.
    pub probs: Option<&'a [Vec<f32>]>,
    /// Items that may be picked (not yet labelled).
    pub candidates: &'a [usize],
}

/// Picks `k` items. With `diversity`, the shortlist is the `10 k` most uncertain (a random
/// `20 k` without a model or with [`Strategy::Random`]), clustered into `k` groups.
pub fn select(pool: &Pool, strategy: Strategy, k: usize, diversity: bool, seed: u64) -> Vec<Pick> {
    let mut rng = SplitMix64::new(seed);
    let scored = |i: usize| -> f32 {
        match pool.probs {
            Some(p) => uncertainty(strategy, &p[i]),
            None => 0.0,
        }
    };
    let mut ranked: Vec<usize> = pool.candidates.to_vec();
    let ranks_by_model = pool.probs.is_some() && strategy != Strategy::Random;
    rng.shuffle(&mut ranked);
    if ranks_by_model {
        ranked.sort_by(|a, b| scored(*b).total_cmp(&scored(*a)));
    }
    let describe = |i: usize| -> String {
        if ranks_by_model {
            format!("{} {:.3}", strategy.as_str().replace('_', " "), scored(i))
        } else {
            "random sample".to_string()
        }
    };
    if !diversity {
        return ranked
            .into_iter()
            .take(k)
            .map(|index| Pick {
                reason: describe(index),
                index,
            })
            .collect();
    }
    let width = if ranks_by_model { 10 * k } else { 20 * k };
    let shortlist: Vec<usize> = ranked.into_iter().take(width.max(k)).collect();
    // Cluster the shortlist into k groups of similar items and take one item per group: the
    // most uncertain one with a model, the most central one without.
    let points: Vec<&[f32]> = shortlist
        .iter()
        .map(|&i| pool.embeddings[i].as_slice())
        .collect();
    let (assignment, centroids) = kmeans(&points, k.min(points.len()), 8, &mut rng);
    let mut picks: Vec<(f32, Pick)> = Vec::with_capacity(k);
    for (cluster, centroid) in centroids.iter().enumerate() {
        let members: Vec<usize> = (0..points.len())
            .filter(|&s| assignment[s] == cluster)
            .collect();
        let best = members.iter().copied().max_by(|&a, &b| {
            let key = |s: usize| {
                if ranks_by_model {
                    scored(shortlist[s])
                } else {
                    cosine(points[s], centroid)
                }
            };
            key(a).total_cmp(&key(b)).then(b.cmp(&a))
        });
        if let Some(s) = best {
            let index = shortlist[s];
            let why = if ranks_by_model {
                format!(
                    "{} · the most uncertain of {} similar items",
                    describe(index),
                    members.len()
                )
            } else {
                format!("representative of {} similar items", members.len())
            };
            picks.push((scored(index), Pick { index, reason: why }));
        }
    }
    picks.sort_by(|a, b| b.0.total_cmp(&a.0));
    picks.into_iter().map(|(_, p)| p).collect()
}

/// k-means with k-means++ seeding (cosine geometry on normalised vectors): the cluster of each
/// point and the centroids.
fn kmeans(
    points: &[&[f32]],
    k: usize,
    iterations: usize,
    rng: &mut SplitMix64,
) -> (Vec<usize>, Vec<Vec<f32>>) {
    if points.is_empty() || k == 0 {
        return (vec![0; points.len()], Vec::new());
    }
    let distance = |a: &[f32], b: &[f32]| (1.0 - cosine(a, b)).max(0.0);
    let mut centroids: Vec<Vec<f32>> =
        vec![points[(rng.next_u64() % points.len() as u64) as usize].to_vec()];
    let mut nearest: Vec<f32> = points.iter().map(|p| distance(p, &centroids[0])).collect();
    while centroids.len() < k {
        let total: f32 = nearest.iter().map(|d| d * d).sum();
        let next = if total <= 0.0 {
            (rng.next_u64() % points.len() as u64) as usize
        } else {
            let mut target = (rng.next_u64() >> 11) as f32 / (1u64 << 53) as f32 * total;
            let mut chosen = points.len() - 1;
            for (i, d) in nearest.iter().enumerate() {
                target -= d * d;
                if target <= 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        };
        centroids.push(points[next].to_vec());
        let c = centroids.len() - 1;
        for (i, p) in points.iter().enumerate() {
            nearest[i] = nearest[i].min(distance(p, &centroids[c]));
        }
    }
    let mut assignment = vec![0usize; points.len()];
    for _ in 0..iterations {
        for (i, p) in points.iter().enumerate() {
            assignment[i] = (0..centroids.len())
                .max_by(|&a, &b| cosine(p, &centroids[a]).total_cmp(&cosine(p, &centroids[b])))
                .unwrap_or(0);
        }
        for (c, centroid) in centroids.iter_mut().enumerate() {
            let mut sum = vec![0f32; centroid.len()];
            let mut n = 0;
            for (i, p) in points.iter().enumerate() {
                if assignment[i] == c {
                    for (s, v) in sum.iter_mut().zip(p.iter()) {
                        *s += v;
                    }
                    n += 1;
                }
            }
            let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
            if n > 0 && norm > 0.0 {
                *centroid = sum.into_iter().map(|v| v / norm).collect();
            }
        }
    }
    (assignment, centroids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncertainty_orders_predictions() {
        let sure = [0.98, 0.01, 0.01];
        let torn = [0.45, 0.44, 0.11];
        for s in [
            Strategy::LeastConfidence,
            Strategy::Margin,
            Strategy::Entropy,
        ] {
            assert!(uncertainty(s, &torn) > uncertainty(s, &sure), "{s:?}");
        }
        // Margin looks at the top two only; entropy at all of them.
        assert!(
            uncertainty(Strategy::Margin, &[0.5, 0.5, 0.0])
                > uncertainty(Strategy::Margin, &[0.4, 0.3, 0.3])
        );
        assert!(
            uncertainty(Strategy::Entropy, &[0.4, 0.3, 0.3])
                > uncertainty(Strategy::Entropy, &[0.5, 0.5, 0.0])
        );
    }

    #[test]
    fn diversity_avoids_near_duplicates() {
        // Items 0–3 are copies of one point, 4 and 5 are elsewhere; all equally uncertain.
        let e = vec![
            vec![1.0, 0.0],
            vec![1.0, 0.0],
            vec![1.0, 0.0],
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![0.6, 0.8],
        ];
        let probs = vec![vec![0.5, 0.5]; 6];
        let candidates: Vec<usize> = (0..6).collect();
        let pool = Pool {
            embeddings: &e,
            probs: Some(&probs),
            candidates: &candidates,
        };
        let picked: Vec<usize> = select(&pool, Strategy::Margin, 3, true, 7)
            .iter()
            .map(|p| p.index)
            .collect();
        let copies = picked.iter().filter(|&&i| i < 4).count();
        assert_eq!(copies, 1, "{picked:?}");
        assert!(picked.contains(&4) && picked.contains(&5));
        // Without diversity, ties are broken by the seeded shuffle: still three distinct items.
        let plain = select(&pool, Strategy::Margin, 3, false, 7);
        assert_eq!(plain.len(), 3);
    }
}
