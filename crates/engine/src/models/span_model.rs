//! What a span project's version is, as stored in
//! [`concord_store::ModelVersionRecord::classifier`] — its patterns or its token classifier —
//! and the data span training and evaluation read: the items whose spans humans confirmed,
//! and the conversion between character spans and word (token) spans.

use concord_domain::tokens::Token;
use concord_domain::{
    majority_span_set, AnnotationSource, GoldSource, ProjectId, ProjectSpec, Span, SpanPattern,
    SuggestedSpan,
};
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
    /// Some annotator took a model's suggestion unchanged here (and no independent gold was
    /// imported): the item cannot validate the suggestions that shaped it.
    pub accepted_suggestion: bool,
}

pub(super) use concord_domain::bio::token_spans;
pub(super) use concord_domain::tokens::token_texts as words;

/// Predicted word spans as character spans with their confidence.
pub(super) fn suggested_spans(
    tokens: &[Token],
    spans: &[ScoredSpan],
    labels: &[String],
) -> Vec<SuggestedSpan> {
    spans
        .iter()
        .filter_map(|s| {
            let (start, end) = concord_domain::bio::char_range(tokens, s.span)?;
            Some(SuggestedSpan {
                start,
                end,
                label: labels.get(s.span.label)?.clone(),
                confidence: s.confidence,
            })
        })
        .collect()
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
                let gold = effective_gold(spec, item.gold.as_ref(), item.gold_source(), &answers)
                    .filter(|(_, source)| source.is_confirmed_by_people());
                let spans = match gold {
                    Some((g, _)) => Some(g.spans),
                    None => {
                        let values: Vec<&[Span]> = answers
                            .iter()
                            .map(|(_, a)| a.value.spans.as_slice())
                            .collect();
                        // Training wants whole answers people agreed on: a span set
                        // only a majority of spans built (`aggregate_spans`) was never
                        // anyone's answer.
                        majority_span_set(&values).map(<[Span]>::to_vec)
                    }
                };
                if let Some(spans) = spans {
                    let accepted_suggestion = item.gold_source() != Some(GoldSource::Import)
                        && answers.iter().any(|(_, a)| {
                            matches!(a.source, AnnotationSource::ModelAccepted { .. })
                        });
                    out.push(ConfirmedItem {
                        accepted_suggestion,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn character_spans_snap_to_words_and_back() {
        use concord_domain::bio::TokenSpan;
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
