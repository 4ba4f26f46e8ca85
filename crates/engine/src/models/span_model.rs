//! What a span project's version is, as stored in
//! [`concord_store::ModelVersionRecord::classifier`] — its patterns or its token classifier —
//! and the data span training and evaluation read: the items whose spans humans confirmed,
//! and the conversion between character spans and word (token) spans.

use concord_domain::bio::TokenSpan;
use concord_domain::tokens::{covered_tokens, OffsetMap, Token};
use concord_domain::{ProjectId, ProjectSpec, Span, SpanPattern, SuggestedSpan};
use concord_ml::{ScoredSpan, TokenClassifier};
use serde::{Deserialize, Serialize};

use super::patterns::PatternCheck;
use crate::review::effective_gold;
use crate::{Engine, EngineError};

/// [`concord_store::ModelVersionRecord::trainer`] of a patterns version (trained ones record
/// their [`concord_domain::Trainer`]).
pub(crate) const PATTERNS_TRAINER: &str = "patterns";

/// A span version's model. Tagged apart from the classification [`super::classifier`] kinds,
/// so neither is ever read as the other.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum SpanModel {
    /// The project's patterns when the version was made, with how each fared on the items
    /// confirmed then (its suggestions' confidence).
    Patterns {
        patterns: Vec<SpanPattern>,
        checks: Vec<PatternCheck>,
    },
    /// A token classifier over the version's encoder.
    TokenClassifier { classifier: TokenClassifier },
}

impl SpanModel {
    pub(super) fn read(
        version: u64,
        classifier: serde_json::Value,
    ) -> Result<SpanModel, EngineError> {
        serde_json::from_value(classifier)
            .map_err(|e| EngineError::internal(format!("reading stored span model {version}"), e))
    }
}

/// An item whose spans humans confirmed.
pub(super) struct ConfirmedItem {
    pub seq: u64,
    pub id: String,
    pub text: String,
    pub tokens: Vec<Token>,
    pub spans: Vec<Span>,
}

/// The words of an item: its tokens' text.
pub(super) fn words<'t>(text: &'t str, tokens: &[Token]) -> Vec<&'t str> {
    let map = OffsetMap::new(text);
    tokens
        .iter()
        .map(|t| map.slice(text, t.start, t.end).unwrap_or(""))
        .collect()
}

/// Character spans as word spans over `tokens` (a sub-token span takes its whole tokens);
/// spans of labels outside `labels` or covering no token are left out.
pub(super) fn token_spans(tokens: &[Token], spans: &[Span], labels: &[String]) -> Vec<TokenSpan> {
    spans
        .iter()
        .filter_map(|s| {
            let label = labels.iter().position(|l| *l == s.label)?;
            let range = covered_tokens(tokens, s.start, s.end)?;
            Some(TokenSpan {
                start: range.start,
                end: range.end,
                label,
            })
        })
        .collect()
}

/// Predicted word spans as character spans with their confidence.
pub(super) fn suggested_spans(
    tokens: &[Token],
    spans: &[ScoredSpan],
    labels: &[String],
) -> Vec<SuggestedSpan> {
    spans
        .iter()
        .filter_map(|s| {
            let first = tokens.get(s.span.start)?;
            let last = tokens.get(s.span.end.checked_sub(1)?)?;
            Some(SuggestedSpan {
                start: first.start,
                end: last.end,
                label: labels.get(s.span.label)?.clone(),
                confidence: s.confidence,
            })
        })
        .collect()
}

/// Whether an item is held out of training for evaluation: a fifth of the items, chosen by a
/// hash of the item's id, so an item stays on its side as items are added and every version's
/// figures are measured on the same items.
pub(super) fn held_out(item_id: &str) -> bool {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(item_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first) % 5 == 0
}

impl Engine {
    /// Every item whose spans humans confirmed: its gold spans (imported, chosen by a
    /// reviewer, or unanimous), else the answer a strict majority of its annotators gave
    /// (spans for spans; a single annotator's answer stands, as for labels). An empty answer
    /// confirms that the item has no entity.
    pub(super) fn confirmed_spans(
        &self,
        project: ProjectId,
        spec: &ProjectSpec,
    ) -> Result<Vec<ConfirmedItem>, EngineError> {
        let mut out = Vec::new();
        self.store()
            .for_each_item::<EngineError>(project, |seq, item, answers| {
                let gold = effective_gold(spec, item.gold.as_ref(), item.gold_source(), &answers);
                let spans = match gold {
                    Some((g, _)) => Some(g.spans),
                    None => {
                        let values: Vec<&[Span]> = answers
                            .iter()
                            .map(|(_, a)| a.value.spans.as_slice())
                            .collect();
                        majority_answer(&values).map(<[Span]>::to_vec)
                    }
                };
                if let Some(spans) = spans {
                    out.push(ConfirmedItem {
                        seq,
                        tokens: item.tokens().into_owned(),
                        id: item.id,
                        text: item.text,
                        spans,
                    });
                }
                Ok(())
            })?;
        Ok(out)
    }
}

/// The span set more than half of `answers` gave exactly (answers hold canonical, sorted
/// spans), if any.
fn majority_answer<'a>(answers: &[&'a [Span]]) -> Option<&'a [Span]> {
    answers
        .iter()
        .copied()
        .find(|candidate| 2 * answers.iter().filter(|a| *a == candidate).count() > answers.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_strict_majority_of_identical_answers_confirms() {
        let a = vec![Span::new(0, 3, "x")];
        let b = vec![Span::new(0, 4, "x")];
        assert_eq!(majority_answer(&[&a]), Some(a.as_slice()));
        assert_eq!(majority_answer(&[&a, &b]), None);
        assert_eq!(majority_answer(&[&a, &b, &a]), Some(a.as_slice()));
        let none: Vec<Span> = Vec::new();
        assert_eq!(majority_answer(&[&none]), Some(none.as_slice()));
        assert_eq!(majority_answer(&[]), None);
    }

    #[test]
    fn character_spans_snap_to_words_and_back() {
        let text = "🙂 New York rocks";
        let tokens = concord_domain::tokens::tokenize(text);
        let labels = vec!["city".to_string()];
        // "ew Yor" snaps to "New York" (tokens 1..3); an unknown label is dropped.
        let spans = token_spans(
            &tokens,
            &[Span::new(3, 8, "city"), Span::new(0, 1, "other")],
            &labels,
        );
        assert_eq!(
            spans,
            [TokenSpan {
                start: 1,
                end: 3,
                label: 0
            }]
        );
        let back = suggested_spans(
            &tokens,
            &[ScoredSpan {
                span: spans[0],
                confidence: 0.5,
            }],
            &labels,
        );
        assert_eq!((back[0].start, back[0].end), (2, 10));
        assert_eq!(words(text, &tokens)[1..3], ["New", "York"]);
    }
}
