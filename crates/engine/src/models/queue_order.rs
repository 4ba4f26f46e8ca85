//! The queue order: after each prediction, the items annotators should see first, chosen by
//! the project's strategy from the active version's suggestions and cached embeddings.

use std::collections::{HashMap, HashSet};

use concord_domain::{ProjectId, QueueOrder};
use concord_store::QueueOrderRecord;

use super::encoders::fingerprint_from_hex;
use super::jobs::Stop;
use super::span_model::PATTERNS_TRAINER;
use super::ZERO_SHOT_TRAINER;
use crate::Engine;

/// Items active learning orders after each prediction (the rest keep import order).
const PRIORITY_ITEMS: usize = 200;
/// Unfinished items considered when choosing them.
const PRIORITY_POOL: usize = 20_000;

impl Engine {
    /// Chooses the items annotators should see first, by the project's queue order: by
    /// default diversity only (k-means on the embeddings, the most central item of each
    /// cluster) while the active version is zero-shot, margin + diversity once a trained one
    /// exists.
    pub(super) fn order_queue(&self, project: ProjectId, version: u64) -> Result<(), Stop> {
        let record = self.project_record(project)?;
        let Some(model) = self.store().model_version(project, version)? else {
            return Ok(());
        };
        let settings = &record.spec.settings;
        // A span item's uncertainty is one number, from its token margins (see
        // `SuggestionRecord::confidence`): every uncertainty order ranks by it, and a patterns
        // version, which knows nothing of what it did not match, orders by diversity only.
        let spans = record.spec.task.is_spans();
        let strategy = match settings.queue_order {
            QueueOrder::Import => {
                let order = QueueOrderRecord {
                    seqs: Vec::new(),
                    reasons: Vec::new(),
                    version,
                    strategy: QueueOrder::Import.as_str().into(),
                };
                self.store().put_queue_order(project, &order)?;
                self.reload_assignment(project)?;
                return Ok(());
            }
            QueueOrder::Auto if model.trainer == ZERO_SHOT_TRAINER => concord_ml::Strategy::Random,
            _ if model.trainer == PATTERNS_TRAINER => concord_ml::Strategy::Random,
            QueueOrder::Auto
            | QueueOrder::Margin
            | QueueOrder::LeastConfidence
            | QueueOrder::Entropy
                if spans =>
            {
                concord_ml::Strategy::Margin
            }
            QueueOrder::Auto | QueueOrder::Margin => concord_ml::Strategy::Margin,
            QueueOrder::LeastConfidence => concord_ml::Strategy::LeastConfidence,
            QueueOrder::Entropy => concord_ml::Strategy::Entropy,
            QueueOrder::Random => concord_ml::Strategy::Random,
        };
        let diversity = settings.diversity;
        let overlap = record.spec.settings.overlap as usize;
        let mut answers: HashMap<u64, usize> = HashMap::new();
        self.store().for_each_answered(project, 0, &mut |seq, a| {
            answers.insert(seq, a.len());
            std::ops::ControlFlow::Continue(())
        })?;
        let questions: HashSet<u64> = self.store().gold_questions(project)?.into_iter().collect();
        let fp = fingerprint_from_hex(&model.encoder);
        let suggestions: HashMap<u64, Vec<f32>> = self
            .store()
            .suggestions(project)?
            .into_iter()
            .filter(|(_, s)| s.version == version)
            .map(|(seq, s)| {
                // A span item's certainty is its mean smallest token margin: as a two-way
                // distribution [certainty, 0] its margin uncertainty is the item's.
                let probs = if spans {
                    vec![s.confidence, 0.0]
                } else {
                    s.probabilities
                };
                (seq, probs)
            })
            .collect();
        let mut seqs = Vec::new();
        let mut embeddings = Vec::new();
        let mut probs = Vec::new();
        let mut from = 0;
        while seqs.len() < PRIORITY_POOL {
            let rows = self.store().embeddings(project, &fp, from, 4096)?;
            let Some(last) = rows.last().map(|(s, _)| *s) else {
                break;
            };
            for (seq, e) in rows {
                let open = answers.get(&seq).copied().unwrap_or(0) < overlap;
                if let (true, false, Some(p)) =
                    (open, questions.contains(&seq), suggestions.get(&seq))
                {
                    seqs.push(seq);
                    embeddings.push(e);
                    probs.push(p.clone());
                }
            }
            from = last + 1;
        }
        let candidates: Vec<usize> = (0..seqs.len()).collect();
        let picks = concord_ml::select(
            &concord_ml::Pool {
                embeddings: &embeddings,
                probs: Some(&probs),
                candidates: &candidates,
            },
            strategy,
            PRIORITY_ITEMS.min(seqs.len()),
            diversity,
            version,
        );
        // Said of a span item, "margin" is its token margins'.
        let token_margins = spans && strategy == concord_ml::Strategy::Margin;
        let name = if token_margins {
            "token_margin".to_string()
        } else {
            strategy.as_str().to_string()
        };
        let order = QueueOrderRecord {
            seqs: picks.iter().map(|p| seqs[p.index]).collect(),
            reasons: picks
                .into_iter()
                .map(|p| {
                    if token_margins {
                        format!("token {}", p.reason)
                    } else {
                        p.reason
                    }
                })
                .collect(),
            version,
            strategy: if diversity {
                format!("{name}+diversity")
            } else {
                name
            },
        };
        self.store().put_queue_order(project, &order)?;
        self.reload_assignment(project)?;
        Ok(())
    }
}
