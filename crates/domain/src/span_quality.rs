//! Token-level label quality of an item's confirmed spans, CROWDLAB-style (Goh, Tkachenko &
//! Mueller 2022, applied per token as cleanlab's token classification does): each token's
//! given BIO tag is scored by how much the evidence supports it — a weighted mix of the
//! annotators' votes for that tag and the model's probability of it — and the item scores its
//! worst token, so one wrong entity is enough to list it.
//!
//! The model's probability of a token's tag comes from the suggested span covering it: its
//! confidence `c` for that span's tag (`B-` on its first token, `I-` after) and `1 − c` for
//! "outside"; a token no suggestion covers is "outside" with probability one, at a weight the
//! caller may lower (a model whose suggestions are not validated says little by staying
//! silent). Pure: token indices and numbers in, numbers out.

use serde::{Deserialize, Serialize};

use crate::bio::TokenSpan;

/// A model's suggested span over tokens, with its confidence in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoredTokenSpan {
    pub span: TokenSpan,
    pub confidence: f32,
}

/// The model's side of the evidence on one item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelSpans<'a> {
    pub spans: &'a [ScoredTokenSpan],
    /// Weight of the model's probability beside one annotator's vote (weight one), on tokens
    /// a suggestion covers.
    pub weight: f32,
    /// Its weight on tokens no suggestion covers.
    pub silent_weight: f32,
}

/// One item's spans and the evidence on them, all as token ranges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpanQualityInput<'a> {
    /// Tokens in the item.
    pub tokens: usize,
    /// The confirmed spans under test.
    pub given: &'a [TokenSpan],
    /// Each annotator's answer (an empty answer says "no entity").
    pub answers: &'a [Vec<TokenSpan>],
    /// The model's suggestions, when it made some for this item.
    pub model: Option<ModelSpans<'a>>,
}

/// A token's BIO tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenTag {
    Outside,
    Begin(usize),
    Inside(usize),
}

/// Tags of `tokens` tokens under `spans` (the first span listed wins where spans overlap;
/// parts beyond the last token are ignored).
fn tags(tokens: usize, spans: &[TokenSpan]) -> Vec<TokenTag> {
    let mut out = vec![TokenTag::Outside; tokens];
    for s in spans {
        let end = s.end.min(tokens);
        for (t, tag) in out.iter_mut().enumerate().take(end).skip(s.start) {
            if *tag == TokenTag::Outside {
                *tag = if t == s.start {
                    TokenTag::Begin(s.label)
                } else {
                    TokenTag::Inside(s.label)
                };
            }
        }
    }
    out
}

/// What drives an item's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpanFinding {
    /// A given span the evidence doubts (its type or its bounds).
    Given { span: TokenSpan },
    /// A span the evidence finds where the given spans have none.
    Missing { span: TokenSpan },
    /// The given spans say "outside" there and so does most evidence, but not all of it; no
    /// single span stands for the doubt.
    Outside { token: usize },
}

/// An item's quality and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanQuality {
    /// Per token, the support of its given tag in [0, 1]; `None` where there is no evidence.
    pub tokens: Vec<Option<f32>>,
    /// The lowest token quality: the item's score (lower = more likely wrong).
    pub score: f32,
    /// The token with that quality (the first one on ties).
    pub token: usize,
    pub finding: SpanFinding,
    /// The model's probability of the given tag at that token (when it spoke there).
    pub model_probability: Option<f32>,
    /// Annotators whose tag at that token is the given one, of `total`.
    pub agreeing: u32,
    pub total: u32,
    /// The model puts less than one half on the given tag there.
    pub model_disagrees: bool,
    /// Fewer than half the annotators gave that tag there.
    pub annotators_disagree: bool,
}

/// A confidence as a probability: out-of-range values clipped, a non-number counts as zero.
fn probability(c: f32) -> f32 {
    if c.is_finite() {
        c.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

/// The suggestion covering token `t` (the surest one where several do).
fn covering(spans: &[ScoredTokenSpan], t: usize) -> Option<&ScoredTokenSpan> {
    spans
        .iter()
        .filter(|s| s.span.start <= t && t < s.span.end)
        .max_by(|a, b| probability(a.confidence).total_cmp(&probability(b.confidence)))
}

/// The model's probability of `tag` at token `t`, and the weight it gets there.
fn model_probability(model: &ModelSpans<'_>, t: usize, tag: TokenTag) -> (f32, f32) {
    match covering(model.spans, t) {
        Some(s) => {
            let c = probability(s.confidence);
            let suggested = if t == s.span.start {
                TokenTag::Begin(s.span.label)
            } else {
                TokenTag::Inside(s.span.label)
            };
            let p = if tag == suggested {
                c
            } else if tag == TokenTag::Outside {
                1.0 - c
            } else {
                0.0
            };
            (p, model.weight.max(0.0))
        }
        None => {
            let p = if tag == TokenTag::Outside { 1.0 } else { 0.0 };
            (p, model.silent_weight.max(0.0))
        }
    }
}

/// The item's token qualities, its score and the reason; `None` when there is nothing to
/// judge it by (no tokens, or neither answers nor a model with any weight).
pub fn span_quality(input: &SpanQualityInput<'_>) -> Option<SpanQuality> {
    let given = tags(input.tokens, input.given);
    let answers: Vec<Vec<TokenTag>> = input
        .answers
        .iter()
        .map(|a| tags(input.tokens, a))
        .collect();
    let mut qualities = Vec::with_capacity(input.tokens);
    let mut worst: Option<(usize, f32)> = None;
    for (t, &tag) in given.iter().enumerate() {
        let agreeing = answers.iter().filter(|a| a[t] == tag).count() as f32;
        let (p, w) = input
            .model
            .as_ref()
            .map_or((0.0, 0.0), |m| model_probability(m, t, tag));
        let total_weight = answers.len() as f32 + w;
        let quality = (total_weight > 0.0).then(|| (agreeing + w * p) / total_weight);
        if let Some(q) = quality {
            if worst.is_none_or(|(_, lowest)| q < lowest) {
                worst = Some((t, q));
            }
        }
        qualities.push(quality);
    }
    let (token, score) = worst?;
    let tag = given[token];
    let total = answers.len() as u32;
    let agreeing = answers.iter().filter(|a| a[token] == tag).count() as u32;
    let model_here = input
        .model
        .as_ref()
        .map(|m| model_probability(m, token, tag))
        .filter(|(_, w)| *w > 0.0);
    let model_probability = model_here.map(|(p, _)| p);
    let finding = match tag {
        TokenTag::Begin(_) | TokenTag::Inside(_) => input
            .given
            .iter()
            .find(|s| s.start <= token && token < s.end)
            .map(|&span| SpanFinding::Given { span }),
        TokenTag::Outside => missing_span(input, token).map(|span| SpanFinding::Missing { span }),
    }
    .unwrap_or(SpanFinding::Outside { token });
    Some(SpanQuality {
        tokens: qualities,
        score,
        token,
        finding,
        model_probability,
        agreeing,
        total,
        model_disagrees: model_probability.is_some_and(|p| p < 0.5),
        annotators_disagree: total > 0 && agreeing * 2 < total,
    })
}

/// The span the evidence puts over `token` where the given spans have none: the suggestion
/// covering it when the model finds an entity there more likely than not, else the span
/// most annotators marked over it.
fn missing_span(input: &SpanQualityInput<'_>, token: usize) -> Option<TokenSpan> {
    let suggested = input
        .model
        .as_ref()
        .and_then(|m| covering(m.spans, token))
        .filter(|s| probability(s.confidence) > 0.5)
        .map(|s| s.span);
    if suggested.is_some() {
        return suggested;
    }
    let mut counted: Vec<(TokenSpan, usize)> = Vec::new();
    for answer in input.answers {
        if let Some(s) = answer.iter().find(|s| s.start <= token && token < s.end) {
            match counted.iter_mut().find(|(span, _)| span == s) {
                Some((_, n)) => *n += 1,
                None => counted.push((*s, 1)),
            }
        }
    }
    // The most marked; the first marked on ties.
    let mut best: Option<(TokenSpan, usize)> = None;
    for (span, n) in counted {
        if best.is_none_or(|(_, most)| n > most) {
            best = Some((span, n));
        }
    }
    best.map(|(span, _)| span).or_else(|| {
        input
            .model
            .as_ref()
            .and_then(|m| covering(m.spans, token))
            .map(|s| s.span)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: usize, end: usize, label: usize) -> TokenSpan {
        TokenSpan { start, end, label }
    }

    fn scored(start: usize, end: usize, label: usize, confidence: f32) -> ScoredTokenSpan {
        ScoredTokenSpan {
            span: span(start, end, label),
            confidence,
        }
    }

    const PERSON: usize = 0;
    const PLACE: usize = 1;

    #[test]
    fn a_wrong_type_that_annotators_and_the_model_contradict_drives_the_score() {
        // "Bieber sang in NY": NY given as a person; both annotators and the model say place.
        let given = [span(0, 1, PERSON), span(3, 4, PERSON)];
        let right = vec![span(0, 1, PERSON), span(3, 4, PLACE)];
        let answers = [right.clone(), right];
        let suggestions = [scored(0, 1, PERSON, 0.9), scored(3, 4, PLACE, 0.8)];
        let q = span_quality(&SpanQualityInput {
            tokens: 4,
            given: &given,
            answers: &answers,
            model: Some(ModelSpans {
                spans: &suggestions,
                weight: 1.0,
                silent_weight: 1.0,
            }),
        })
        .unwrap();
        assert_eq!(q.token, 3);
        assert_eq!(q.score, 0.0);
        assert_eq!(
            q.finding,
            SpanFinding::Given {
                span: span(3, 4, PERSON)
            }
        );
        assert_eq!((q.agreeing, q.total), (0, 2));
        assert!(q.model_disagrees && q.annotators_disagree);
        // "Bieber": two votes and 0.9 of the model's weight out of three.
        let bieber = q.tokens[0].unwrap();
        assert!((bieber - 2.9 / 3.0).abs() < 1e-6, "{bieber}");
        // "sang": everyone says outside.
        assert_eq!(q.tokens[1], Some(1.0));
    }

    #[test]
    fn a_missing_entity_names_the_span_the_evidence_puts_there() {
        let answers = [vec![span(1, 3, PLACE)], vec![span(1, 3, PLACE)], vec![]];
        let q = span_quality(&SpanQualityInput {
            tokens: 4,
            given: &[],
            answers: &answers,
            model: None,
        })
        .unwrap();
        assert_eq!(q.token, 1);
        assert!((q.score - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(
            q.finding,
            SpanFinding::Missing {
                span: span(1, 3, PLACE)
            }
        );
        assert_eq!(q.model_probability, None);
        assert!(!q.model_disagrees && q.annotators_disagree);
    }

    #[test]
    fn a_boundary_is_a_tag_and_a_silent_models_weight_can_be_lowered() {
        // Given "New York City" as one place; the model suggests only "York City".
        let given = [span(0, 3, PLACE)];
        let suggestions = [scored(1, 3, PLACE, 0.7)];
        let with = |silent_weight: f32| {
            span_quality(&SpanQualityInput {
                tokens: 3,
                given: &given,
                answers: &[vec![span(0, 3, PLACE)]],
                model: Some(ModelSpans {
                    spans: &suggestions,
                    weight: 1.0,
                    silent_weight,
                }),
            })
            .unwrap()
        };
        let full = with(1.0);
        // "New": the model is silent (outside, p = 0 for B-place) → (1 + 0) / 2.
        assert_eq!(full.tokens[0], Some(0.5));
        // "York": the model says B-place, the given tag is I-place → (1 + 0) / 2 as well;
        // the first token on ties drives the score.
        assert_eq!(full.tokens[1], Some(0.5));
        assert_eq!(full.token, 0);
        // "City": I-place at 0.7 → (1 + 0.7) / 2.
        assert!((full.tokens[2].unwrap() - 0.85).abs() < 1e-6);
        let lowered = with(0.25);
        assert!((lowered.tokens[0].unwrap() - 1.0 / 1.25).abs() < 1e-6);
        assert_eq!(lowered.token, 1, "the boundary now drives it");
        assert_eq!(
            lowered.finding,
            SpanFinding::Given {
                span: span(0, 3, PLACE)
            }
        );
    }

    #[test]
    fn nothing_to_judge_by_gives_nothing_and_bad_confidences_are_clipped() {
        assert_eq!(
            span_quality(&SpanQualityInput {
                tokens: 2,
                given: &[span(0, 1, PERSON)],
                answers: &[],
                model: None,
            }),
            None
        );
        let suggestions = [scored(0, 1, PERSON, f32::NAN), scored(1, 2, PERSON, 7.0)];
        let q = span_quality(&SpanQualityInput {
            tokens: 2,
            given: &[span(0, 1, PERSON), span(1, 2, PERSON)],
            answers: &[],
            model: Some(ModelSpans {
                spans: &suggestions,
                weight: 0.5,
                silent_weight: 0.5,
            }),
        })
        .unwrap();
        assert_eq!(q.tokens, [Some(0.0), Some(1.0)]);
        assert_eq!(q.model_probability, Some(0.0));
        assert!(q.model_disagrees && !q.annotators_disagree);
    }
}
