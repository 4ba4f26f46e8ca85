//! Active learning: which unlabelled items a human should see next. An uncertainty strategy
//! ranks items by how unsure the model is; the diversity step then picks, from the most
//! uncertain, items far from everything already labelled or picked (greedy k-center on the
//! embeddings), so a batch is not fifty near-duplicates. Every pick says why it was made.

use serde::{Deserialize, Serialize};

use crate::encoder::cosine;

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

/// A small deterministic generator (splitmix64) for the random strategy and samples.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}

/// What [`select`] works from.
pub struct Pool<'a> {
    /// Every item's embedding, by index.
    pub embeddings: &'a [Vec<f32>],
    /// Every item's predicted probabilities, when a trained model exists.
    pub probs: Option<&'a [Vec<f32>]>,
    /// Items that may be picked.
    pub candidates: &'a [usize],
    /// Items already labelled (the diversity step keeps away from them).
    pub labelled: &'a [usize],
}

/// Picks `k` items. With `diversity`, the shortlist is the `10 k` most uncertain (a random
/// `20 k` without a model or with [`Strategy::Random`]) and greedy k-center chooses from it.
pub fn select(pool: &Pool, strategy: Strategy, k: usize, diversity: bool, seed: u64) -> Vec<Pick> {
    let mut rng = SplitMix(seed);
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
    // Distance (1 − cosine) from each shortlisted item to the nearest labelled or picked item.
    let mut nearest: Vec<f32> = shortlist
        .iter()
        .map(|&i| {
            pool.labelled
                .iter()
                .map(|&l| 1.0 - cosine(&pool.embeddings[i], &pool.embeddings[l]))
                .fold(f32::INFINITY, f32::min)
        })
        .collect();
    let mut taken = vec![false; shortlist.len()];
    let mut picks = Vec::with_capacity(k);
    for _ in 0..k.min(shortlist.len()) {
        // The farthest item; on ties (nothing labelled yet) the shortlist's order decides.
        let mut best = None;
        for (s, &d) in nearest.iter().enumerate() {
            if taken[s] {
                continue;
            }
            if best.is_none_or(|b: usize| d > nearest[b]) {
                best = Some(s);
            }
        }
        let Some(b) = best else { break };
        taken[b] = true;
        let index = shortlist[b];
        let reason = if nearest[b].is_finite() {
            format!(
                "{} · distance {:.2} to the nearest labelled item",
                describe(index),
                nearest[b]
            )
        } else {
            describe(index)
        };
        picks.push(Pick { index, reason });
        for (s, &i) in shortlist.iter().enumerate() {
            if !taken[s] {
                let d = 1.0 - cosine(&pool.embeddings[i], &pool.embeddings[index]);
                nearest[s] = nearest[s].min(d);
            }
        }
    }
    picks
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
            labelled: &[],
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
