//! Likely label errors: every item with a confirmed label (gold, else an agreed majority;
//! bulk-accepted gold is not a person's judgement and is left out) is scored by how well its
//! label fits out-of-fold predictions — logistic heads on the cached embeddings of the
//! project's base encoder, each item predicted by a head that never saw it — combined, where
//! annotators answered the item, with their votes weighted by their estimated accuracy
//! (`concord_ml::crowdlab_consensus`). Items confident learning flags, or whose consensus is
//! another label, are listed most likely error first, for a reviewer to fix.
//!
//! It runs no encoder: only cached embeddings and small logistic heads, in the request. That is
//! bounded by [`MAX_LABEL_ERROR_ITEMS`] (a project with more confirmed labels is refused with
//! that reason) and [`MAX_LABEL_ERROR_ROWS`].

use std::collections::{HashMap, HashSet};

use concord_domain::{GoldSource, ProjectId, Role, TaskKind, UserId};
use concord_ml::{
    argmax, crowdlab_consensus, find_label_issues, out_of_fold_probabilities, quality_of,
    CvHeadParams, DetectionMethod, Vote,
};
use serde::{Deserialize, Serialize};

use crate::models::{fingerprint_bytes, project_model};
use crate::{Engine, EngineError, Principal};

/// The most confirmed labels one computation reads. Measured (`concord simulate-label-errors`,
/// debug build with the model crate optimised, 384 dimensions, 5 folds × 4 values of C, two
/// cores shared with other builds): 2,071 tweets 3–10 s, 3,708 sentences 25 s, 5,190 in 14 s,
/// 10,605 in 11 s when the cores were quieter: seconds to about a minute at this cap, the
/// longest a reviewer should wait on a page.
pub const MAX_LABEL_ERROR_ITEMS: usize = 10_000;
/// The most rows one request returns.
pub const MAX_LABEL_ERROR_ROWS: usize = 1000;
/// Characters of an item's text a row carries.
const TEXT_CHARS: usize = 500;
/// Folds of the out-of-fold heads (as in the anchor measured with cleanlab).
pub const LABEL_ERROR_FOLDS: usize = 5;
/// Seeds the deal of items to folds, so a page shows the same list until the labels change.
const FOLD_SEED: u64 = 13;
/// Confirmed labels needed before the check means anything.
const MIN_LABELS: usize = 10;
/// Values of the penalty C tried by the heads' cross-validation: one decade apart, a third
/// of the default grid, because this runs in a request.
pub const LABEL_ERROR_C_GRID: [f64; 4] = [0.1, 1.0, 10.0, 100.0];

/// Why an item is listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LabelErrorReason {
    /// The model, never trained on this item, finds another label more likely.
    ModelDisagrees { model_probability: f32 },
    /// Most of the item's annotators answered another label.
    AnnotatorsDisagree { agreeing: u32, total: u32 },
    /// Both.
    Both {
        model_probability: f32,
        agreeing: u32,
        total: u32,
    },
}

/// An annotator's answer on a listed item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotatorAnswer {
    pub annotator: String,
    pub label: String,
}

/// A likely label error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelErrorRow {
    pub item_id: String,
    pub seq: u64,
    /// The item's text, cut to its first 500 characters.
    pub text: String,
    /// How likely the given label is wrong, in [0, 1]: one minus the label's quality under
    /// the model and the annotators together. Rows come highest first.
    pub score: f32,
    pub given: String,
    /// The label the model and the annotators together find most likely.
    pub suggested: String,
    pub reason: LabelErrorReason,
    /// Sorted by annotator name.
    pub annotators: Vec<AnnotatorAnswer>,
}

/// How an annotator's answers fare against the consensus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotatorQuality {
    pub annotator: String,
    pub answers: u64,
    /// Share of their answers on items others answered too that agree with the consensus.
    pub agreement: Option<f32>,
    /// In [0, 1]: agreement mixed with the consensus probability of their answers.
    pub quality: f32,
}

/// The likely label errors of a project and its annotators' quality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelErrorReport {
    /// Most likely error first, at most the requested number.
    pub rows: Vec<LabelErrorRow>,
    /// All flagged items (before the limit).
    pub flagged: u64,
    /// Confirmed labels checked (those with a cached embedding).
    pub checked: u64,
    /// Confirmed labels without a cached embedding yet, not checked.
    pub not_embedded: u64,
    /// Highest quality first.
    pub annotators: Vec<AnnotatorQuality>,
}

/// One checked item, as read from the store.
struct Checked {
    seq: u64,
    item_id: String,
    text: String,
    given: usize,
    /// A reviewer already decided this label: used to train, never listed again.
    reviewed: bool,
    votes: Vec<(UserId, usize)>,
}

impl Engine {
    /// The items whose confirmed label is most likely wrong, most likely first, at most
    /// `limit` (1..=1000), and the annotators' quality. Single-label projects whose items have
    /// cached embeddings (any prediction or training job makes them). Reviewers and admins.
    pub fn label_errors(
        &self,
        actor: &Principal,
        project: ProjectId,
        limit: usize,
    ) -> Result<LabelErrorReport, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        if !(1..=MAX_LABEL_ERROR_ROWS).contains(&limit) {
            return Err(EngineError::Invalid(format!(
                "limit must be between 1 and {MAX_LABEL_ERROR_ROWS}"
            )));
        }
        let spec = self.project_record(project)?.spec;
        match spec.task {
            TaskKind::Classification => {}
            TaskKind::Multilabel => {
                return Err(EngineError::Invalid(
                    "label-error detection supports single-label projects; multi-label projects are not checked".into(),
                ))
            }
            TaskKind::Spans => {
                return Err(EngineError::Invalid(
                    "label-error detection supports single-label projects; span projects are not checked yet".into(),
                ))
            }
        }
        let names: Vec<String> = spec.labels.iter().map(|l| l.name.clone()).collect();
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let confirmed: HashMap<u64, usize> = self
            .confirmed_labels(project, &spec)?
            .into_iter()
            .filter_map(|c| Some((c.seq, *index.get(c.label.as_str())?)))
            .collect();
        if confirmed.len() > MAX_LABEL_ERROR_ITEMS {
            return Err(EngineError::Invalid(format!(
                "label-error detection checks at most {MAX_LABEL_ERROR_ITEMS} confirmed labels in a request; this project has {}",
                confirmed.len()
            )));
        }
        let encoder = self.inner.models.encoder(project_model(&spec))?;
        let key = fingerprint_bytes(&encoder);
        let embedded: HashSet<u64> = self
            .store()
            .embedded_seqs(project, &key)?
            .into_iter()
            .collect();
        let mut items: Vec<Checked> = Vec::new();
        self.store()
            .for_each_item::<EngineError>(project, |seq, item, answers| {
                let Some(&given) = confirmed.get(&seq) else {
                    return Ok(());
                };
                if !embedded.contains(&seq) {
                    return Ok(());
                }
                let reviewed = matches!(item.gold_source(), Some(GoldSource::Review { .. }));
                let votes = answers
                    .iter()
                    .filter_map(|(user, a)| {
                        let label = a.value.labels.first()?;
                        Some((*user, *index.get(label.as_str())?))
                    })
                    .collect();
                items.push(Checked {
                    seq,
                    item_id: item.id,
                    text: item.text.chars().take(TEXT_CHARS).collect(),
                    given,
                    reviewed,
                    votes,
                });
                Ok(())
            })?;
        let not_embedded = (confirmed.len() - items.len()) as u64;
        let classes_seen: HashSet<usize> = items.iter().map(|c| c.given).collect();
        if items.len() < MIN_LABELS || classes_seen.len() < 2 {
            return Err(EngineError::Invalid(format!(
                "label-error detection needs at least {MIN_LABELS} confirmed labels with cached embeddings in two or more classes (found {} in {}; {not_embedded} confirmed labels are not embedded yet: run a prediction job)",
                items.len(),
                classes_seen.len()
            )));
        }
        let seqs: Vec<u64> = items.iter().map(|c| c.seq).collect();
        let x: Vec<Vec<f32>> = self
            .store()
            .embeddings_at(project, &key, &seqs)?
            .into_iter()
            .zip(&seqs)
            .map(|(e, seq)| {
                e.ok_or_else(|| {
                    EngineError::internal_fault(format!("item {seq} lost its embedding"))
                })
            })
            .collect::<Result<_, _>>()?;
        let y: Vec<usize> = items.iter().map(|c| c.given).collect();
        let params = CvHeadParams {
            grid: LABEL_ERROR_C_GRID.to_vec(),
            ..CvHeadParams::default()
        };
        let model =
            out_of_fold_probabilities(&x, &y, names.len(), LABEL_ERROR_FOLDS, FOLD_SEED, &params)
                .map_err(|e| EngineError::internal("out-of-fold predictions", e))?;
        let user_names = self.user_names()?;
        let ranked = rank(&items, &model, names.len(), DetectionMethod::default())?;
        let annotator_ids = ranked.annotator_ids;
        let name_of = |user: &UserId| {
            user_names
                .get(user)
                .cloned()
                .unwrap_or_else(|| format!("user {}", user.0))
        };
        let flagged = ranked.order.len() as u64;
        let rows = ranked
            .order
            .into_iter()
            .take(limit)
            .map(|(i, score, suggested, reason)| {
                let item = &items[i];
                let mut annotators: Vec<AnnotatorAnswer> = item
                    .votes
                    .iter()
                    .map(|(user, label)| AnnotatorAnswer {
                        annotator: name_of(user),
                        label: names[*label].clone(),
                    })
                    .collect();
                annotators.sort_by(|a, b| a.annotator.cmp(&b.annotator));
                LabelErrorRow {
                    item_id: item.item_id.clone(),
                    seq: item.seq,
                    text: item.text.clone(),
                    score,
                    given: names[item.given].clone(),
                    suggested: names[suggested].clone(),
                    reason,
                    annotators,
                }
            })
            .collect();
        let mut annotators: Vec<AnnotatorQuality> = annotator_ids
            .iter()
            .zip(ranked.annotators)
            .filter_map(|(user, (answers, agreement, quality))| {
                Some(AnnotatorQuality {
                    annotator: name_of(user),
                    answers,
                    agreement,
                    quality: quality?,
                })
            })
            .collect();
        annotators.sort_by(|a, b| {
            b.quality
                .total_cmp(&a.quality)
                .then(a.annotator.cmp(&b.annotator))
        });
        Ok(LabelErrorReport {
            rows,
            flagged,
            checked: items.len() as u64,
            not_embedded,
            annotators,
        })
    }
}

/// Flagged items (index, score, suggested class, reason), most likely error first, and per
/// annotator (in `annotator_ids` order) answers, agreement and quality.
struct Ranked {
    order: Vec<(usize, f32, usize, LabelErrorReason)>,
    annotator_ids: Vec<UserId>,
    annotators: Vec<(u64, Option<f32>, Option<f32>)>,
}

/// Scores every item: an item nobody answered is flagged by confident learning on the
/// model's out-of-fold probabilities; an answered one when the consensus of the model and its
/// annotators is another label. Reviewed items are never listed.
fn rank(
    items: &[Checked],
    model: &[Vec<f32>],
    classes: usize,
    method: DetectionMethod,
) -> Result<Ranked, EngineError> {
    let y: Vec<usize> = items.iter().map(|c| c.given).collect();
    let confident = find_label_issues(model, &y, classes, method.pruning)
        .map_err(|e| EngineError::internal("confident learning", e))?;
    let mut annotator_ids: Vec<UserId> = items
        .iter()
        .flat_map(|c| c.votes.iter().map(|(u, _)| *u))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    annotator_ids.sort_by_key(|u| u.0);
    let position: HashMap<UserId, usize> = annotator_ids
        .iter()
        .enumerate()
        .map(|(i, u)| (*u, i))
        .collect();
    let votes: Vec<Vec<Vote>> = items
        .iter()
        .map(|c| {
            c.votes
                .iter()
                .map(|(u, label)| Vote {
                    annotator: position[u],
                    label: *label,
                })
                .collect()
        })
        .collect();
    let consensus = crowdlab_consensus(model, &votes, annotator_ids.len(), classes)
        .map_err(|e| EngineError::internal("annotator consensus", e))?;
    let mut order = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if item.reviewed {
            continue;
        }
        let answered = !item.votes.is_empty();
        let suggested = consensus.labels[i];
        let listed = if answered {
            suggested != item.given
        } else {
            confident[i]
        };
        if !listed {
            continue;
        }
        let model_probability = model[i][item.given];
        let model_disagrees = argmax(&model[i]) != item.given;
        let total = item.votes.len() as u32;
        let agreeing = item.votes.iter().filter(|(_, l)| *l == item.given).count() as u32;
        let annotators_disagree = answered && agreeing * 2 < total;
        let reason = match (model_disagrees, annotators_disagree) {
            (true, true) => LabelErrorReason::Both {
                model_probability,
                agreeing,
                total,
            },
            (false, true) => LabelErrorReason::AnnotatorsDisagree { agreeing, total },
            _ => LabelErrorReason::ModelDisagrees { model_probability },
        };
        let score = 1.0 - quality_of(&consensus.probabilities[i], item.given, method.score);
        // Suggest the model's label where nobody answered (the consensus is the model's row).
        let suggested = if answered {
            suggested
        } else {
            argmax(&model[i])
        };
        order.push((i, score, suggested, reason));
    }
    order.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then(items[a.0].seq.cmp(&items[b.0].seq))
    });
    let mut answers = vec![0u64; annotator_ids.len()];
    for item_votes in &votes {
        for v in item_votes {
            answers[v.annotator] += 1;
        }
    }
    let annotators = answers
        .into_iter()
        .zip(&consensus.annotator_agreement)
        .zip(&consensus.annotator_quality)
        .map(|((n, agreement), quality)| (n, *agreement, *quality))
        .collect();
    Ok(Ranked {
        order,
        annotator_ids,
        annotators,
    })
}
