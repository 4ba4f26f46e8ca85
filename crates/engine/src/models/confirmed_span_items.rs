//! The items whose spans humans confirmed, for readers outside the models module (span
//! label-error detection): [`Engine::confirmed_spans`] stays the models' own, with the fields
//! training needs; this hands out what a check of the confirmed spans needs.

use concord_domain::tokens::Token;
use concord_domain::{ProjectId, ProjectSpec, Span};

use crate::{Engine, EngineError};

/// An item whose spans humans confirmed (bulk-accepted gold is not a person's judgement and
/// is left out).
pub(crate) struct ConfirmedSpanItem {
    pub seq: u64,
    pub id: String,
    pub text: String,
    pub tokens: Vec<Token>,
    pub spans: Vec<Span>,
}

impl Engine {
    /// Every item whose spans humans confirmed, as [`Engine::confirmed_spans`] finds them.
    pub(crate) fn confirmed_span_items(
        &self,
        project: ProjectId,
        spec: &ProjectSpec,
    ) -> Result<Vec<ConfirmedSpanItem>, EngineError> {
        Ok(self
            .confirmed_spans(project, spec)?
            .into_iter()
            .map(|c| ConfirmedSpanItem {
                seq: c.seq,
                id: c.id,
                text: c.text,
                tokens: c.tokens,
                spans: c.spans,
            })
            .collect())
    }
}
