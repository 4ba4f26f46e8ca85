//! From per-word tag probabilities to entities: constrained Viterbi over BIO, span
//! confidences and the item's uncertainty for active learning.

use concord_domain::bio::{TagSet, TokenSpan};
use serde::{Deserialize, Serialize};

/// A predicted entity with its confidence: the smallest probability, over its words, of the
/// tag decoding gave the word (`B-X` on the first word, `I-X` after), so one doubtful word
/// makes the whole span doubtful and a span's confidence does not shrink just for being long.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoredSpan {
    pub span: TokenSpan,
    pub confidence: f32,
}

/// The model's reading of one item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenPrediction {
    /// Per word, the probability of each tag (tag order of [`TagSet`]).
    pub probabilities: Vec<Vec<f32>>,
    /// Per word, the decoded tag: the most probable well-formed sequence, where `I-X` follows
    /// only `B-X` or `I-X`.
    pub tags: Vec<u16>,
    /// The entities of `tags`, in word order.
    pub spans: Vec<ScoredSpan>,
    /// How unsure the model is about the item, in [0, 1]: one minus the mean of the
    /// [`UNCERTAIN_WORDS`] smallest top-1 − top-2 probability margins over its words (all of
    /// them in a shorter item; 0 for an item without words). Driven by the few hardest words,
    /// so a long item of easy words does not hide one ambiguous name.
    pub uncertainty: f32,
}

/// How many of the least certain words make an item's uncertainty.
pub const UNCERTAIN_WORDS: usize = 3;

/// The most probable tag sequence (sum of log-probabilities) in which every `I-X` follows
/// `B-X` or `I-X` ([`TagSet::allowed`]).
pub(crate) fn viterbi(tag_set: &TagSet, probabilities: &[Vec<f32>]) -> Vec<u16> {
    let n = probabilities.len();
    let tags = tag_set.len();
    if n == 0 {
        return Vec::new();
    }
    let log = |p: f32| p.max(1e-12).ln();
    let mut score: Vec<f32> = (0..tags)
        .map(|t| {
            if tag_set.allowed(None, t as u16) {
                log(probabilities[0].get(t).copied().unwrap_or(0.0))
            } else {
                f32::NEG_INFINITY
            }
        })
        .collect();
    let mut back = vec![0u16; n * tags];
    for i in 1..n {
        let mut next = vec![f32::NEG_INFINITY; tags];
        for t in 0..tags {
            let mut best = (f32::NEG_INFINITY, 0u16);
            for (p, &s) in score.iter().enumerate() {
                if s > best.0 && tag_set.allowed(Some(p as u16), t as u16) {
                    best = (s, p as u16);
                }
            }
            next[t] = best.0 + log(probabilities[i].get(t).copied().unwrap_or(0.0));
            back[i * tags + t] = best.1;
        }
        score = next;
    }
    // `O` is allowed everywhere, so some path is finite.
    let mut last = 0u16;
    for (t, &s) in score.iter().enumerate() {
        if s > score[last as usize] {
            last = t as u16;
        }
    }
    let mut path = vec![0u16; n];
    path[n - 1] = last;
    for i in (1..n).rev() {
        path[i - 1] = back[i * tags + path[i] as usize];
    }
    path
}

/// Decodes one item's probabilities into tags, scored spans and its uncertainty.
pub(crate) fn decode(tag_set: &TagSet, probabilities: Vec<Vec<f32>>) -> TokenPrediction {
    let tags = viterbi(tag_set, &probabilities);
    let spans = tag_set
        .decode(&tags)
        .into_iter()
        .map(|span| {
            let confidence = (span.start..span.end)
                .map(|w| probabilities[w][tags[w] as usize])
                .fold(1.0f32, f32::min);
            ScoredSpan { span, confidence }
        })
        .collect();
    let mut margins: Vec<f32> = probabilities.iter().map(|p| top_margin(p)).collect();
    margins.sort_by(f32::total_cmp);
    let hardest = &margins[..margins.len().min(UNCERTAIN_WORDS)];
    let uncertainty = if hardest.is_empty() {
        0.0
    } else {
        1.0 - hardest.iter().sum::<f32>() / hardest.len() as f32
    };
    TokenPrediction {
        probabilities,
        tags,
        spans,
        uncertainty,
    }
}

/// Top-1 minus top-2 probability.
fn top_margin(p: &[f32]) -> f32 {
    let (mut first, mut second) = (0f32, 0f32);
    for &v in p {
        if v > first {
            second = first;
            first = v;
        } else if v > second {
            second = v;
        }
    }
    first - second
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> TagSet {
        TagSet::new(&["person".to_string(), "place".to_string()])
    }

    /// A distribution that puts `p` on `tag` and spreads the rest.
    fn row(tag: usize, p: f32) -> Vec<f32> {
        let rest = (1.0 - p) / 4.0;
        (0..5).map(|t| if t == tag { p } else { rest }).collect()
    }

    #[test]
    fn viterbi_never_puts_inside_after_outside() {
        // Word-wise argmax would read O, I-person, I-person: a dangling I-.
        let probs = vec![row(0, 0.9), row(2, 0.5), row(2, 0.6)];
        let tags = viterbi(&set(), &probs);
        for i in 0..tags.len() {
            let prev = if i == 0 { None } else { Some(tags[i - 1]) };
            assert!(set().allowed(prev, tags[i]), "{tags:?}");
        }
        // The best legal reading turns the run into B-person I-person.
        assert_eq!(tags, vec![0, 1, 2]);
    }

    #[test]
    fn spans_get_their_weakest_word_and_items_their_hardest_margins() {
        let probs = vec![row(1, 0.9), row(2, 0.6), row(0, 0.95), row(0, 0.95)];
        let p = decode(&set(), probs);
        assert_eq!(p.tags, vec![1, 2, 0, 0]);
        assert_eq!(p.spans.len(), 1);
        assert_eq!(
            p.spans[0].span,
            TokenSpan {
                start: 0,
                end: 2,
                label: 0
            }
        );
        assert!((p.spans[0].confidence - 0.6).abs() < 1e-6);
        // Margins 0.875, 0.5, 0.9375, 0.9375: the three smallest average to 0.7708.
        assert!((p.uncertainty - (1.0 - (0.5 + 0.875 + 0.9375) / 3.0)).abs() < 1e-5);
        assert_eq!(decode(&set(), Vec::new()).uncertainty, 0.0);
    }
}
