//! Likely label errors: every item with a confirmed label (gold, else an agreed majority;
//! bulk-accepted gold is not a person's judgement and is left out) is scored by how well its
//! label fits out-of-fold predictions — logistic heads on the cached embeddings of the
//! project's base encoder, each item predicted by a head that never saw it — combined, where
//! annotators answered the item, with their votes weighted by their estimated accuracy
//! (`concord_ml::crowdlab_consensus`). Items confident learning flags, or whose consensus is
//! another label, are listed most likely error first, for a reviewer to fix.
//!
//! Span projects are checked token by token instead ([`concord_domain::span_quality`]):
//! each confirmed item against its annotators' answers and the active version's stored
//! suggestion, with no model run at all.
//!
//! It runs no encoder: only cached embeddings and small logistic heads, in the request. That is
//! bounded by [`MAX_LABEL_ERROR_ITEMS`] (a project with more confirmed labels is refused with
//! that reason) and [`MAX_LABEL_ERROR_ROWS`].

use std::collections::{HashMap, HashSet};

use concord_domain::bio::{char_range, token_spans, TokenSpan};
use concord_domain::tokens::Token;
use concord_domain::{
    majority_span_set, span_quality, GoldSource, ModelSpans, ProjectId, ProjectSpec, Role,
    ScoredTokenSpan, Span, SpanFinding, SpanQualityInput, TaskKind, UserId,
};
use concord_ml::{
    argmax, crowdlab_consensus, find_label_issues, out_of_fold_probabilities, quality_of,
    CvHeadParams, DetectionMethod, Vote,
};
use serde::{Deserialize, Serialize};

use crate::models::{fingerprint_bytes, has_model, held_out, project_model, ConfirmedSpanItem};
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
    /// Span projects: the token whose given tag the evidence supports least, and the span
    /// that drives it.
    Span {
        /// The span as text (`person "NY"`): a given span the evidence doubts, or, when
        /// `missing`, a span the evidence finds where the given spans have none.
        span: String,
        missing: bool,
        /// The model's probability of the given tag at that token (none where the model made
        /// no suggestion for the item or gave it no weight).
        model_probability: Option<f32>,
        model_disagrees: bool,
        /// Whether the model could have learnt this item's spans.
        model_sample: ModelSample,
        /// Annotators whose tag at that token is the given one, of `total`.
        agreeing: u32,
        total: u32,
        annotators_disagree: bool,
    },
}

/// Whether the version that suggested an item's spans was trained on the item: its agreement
/// with the given spans is weak evidence then (it may have memorised them), so its
/// suggestion weighs [`IN_SAMPLE_MODEL_WEIGHT`] instead of [`MODEL_WEIGHT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelSample {
    /// The item is in the held-out fifth (`models::held_out`): never trained on.
    OutOfSample,
    /// A version trained here (or patterns, written by people who saw the items) on items
    /// outside the held-out fifth: it may have been trained on this one.
    InSample,
    /// A version imported from another tool: it never saw this project's labels.
    External,
    /// No suggestion of the active version for the item.
    NoSuggestion,
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
    /// Confirmed labels without a cached embedding yet, not checked. Span projects: confirmed
    /// items with neither answers nor a suggestion of the active version, not checked.
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
    /// cached embeddings (any prediction or training job makes them), and span projects (token
    /// by token, see [`concord_domain::span_quality`]). Reviewers and admins.
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
            TaskKind::Spans | TaskKind::Relations => return self.span_label_errors(project, &spec, limit),
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

/// Scores every item: an item fewer than two people answered is flagged by confident learning
/// on the model's out-of-fold probabilities; one several answered when the consensus of the
/// model and its annotators is another label. Reviewed items are never listed.
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
        // With one answer the given label is that answer, which the consensus can never
        // overrule: only overlap gives the annotators a say; otherwise confident learning on
        // the model's out-of-fold probabilities decides, as for items nobody answered.
        let overlapped = item.votes.len() >= 2;
        let suggested = consensus.labels[i];
        let listed = if overlapped {
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
        let evidence = if overlapped {
            &consensus.probabilities[i]
        } else {
            &model[i]
        };
        let score = 1.0 - quality_of(evidence, item.given, method.score);
        // Suggest the model's label where fewer than two answered.
        let suggested = if overlapped {
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

/// A span suggestion's weight beside one annotator's vote when the version never saw the item
/// (held out, or made elsewhere): as much as one annotator, as CROWDLAB starts a model.
pub const MODEL_WEIGHT: f32 = 1.0;
/// Its weight when the version may have been trained on the item: a model agrees with labels
/// it was fitted to whether they are right or not, so that agreement counts half.
pub const IN_SAMPLE_MODEL_WEIGHT: f32 = 0.5;
/// How much of its weight a version whose suggestions are not validated keeps on tokens it
/// suggests nothing for: an unproven model's silence is weak evidence of "no entity".
pub const UNVALIDATED_SILENCE: f32 = 0.5;
/// Items are listed when the support of some token's given tag is below this: the evidence
/// against the given tag outweighs the evidence for it.
const SPAN_LISTING_QUALITY: f32 = 0.5;

/// The weight of a span suggestion beside one annotator's vote, on the tokens it covers and
/// on those it suggests nothing for: halved where the version may have been trained on the
/// item, and its silence halved again while its suggestions are not validated.
fn model_weights(sample: ModelSample, validated: bool) -> (f32, f32) {
    let weight = match sample {
        ModelSample::InSample => IN_SAMPLE_MODEL_WEIGHT,
        ModelSample::OutOfSample | ModelSample::External | ModelSample::NoSuggestion => {
            MODEL_WEIGHT
        }
    };
    let silent = if validated {
        weight
    } else {
        weight * UNVALIDATED_SILENCE
    };
    (weight, silent)
}

/// One checked span item.
struct SpanChecked {
    seq: u64,
    item_id: String,
    text: String,
    given: String,
    suggested: String,
    quality: concord_domain::SpanQuality,
    reason: LabelErrorReason,
    reviewed: bool,
    /// (annotator, answer as text, answer equals the given spans).
    answers: Vec<(UserId, String, bool)>,
}

/// Spans as text: `person "Bieber"; geo-loc "NY"` (`(none)` for an empty set).
fn spans_text(text: &str, spans: &[Span]) -> String {
    if spans.is_empty() {
        return "(none)".to_string();
    }
    spans
        .iter()
        .map(|s| format!("{} \"{}\"", s.label, covered_text(text, s.start, s.end)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The code points `start..end` of `text`.
fn covered_text(text: &str, start: u32, end: u32) -> String {
    text.chars()
        .skip(start as usize)
        .take(end.saturating_sub(start) as usize)
        .collect()
}

/// A token span as text (`person "NY"`).
fn token_span_text(text: &str, tokens: &[Token], labels: &[String], span: TokenSpan) -> String {
    let label = labels.get(span.label).map_or("?", String::as_str);
    match char_range(tokens, span) {
        Some((start, end)) => format!("{label} \"{}\"", covered_text(text, start, end)),
        None => label.to_string(),
    }
}

impl Engine {
    /// [`Engine::label_errors`] of a span project: every item whose spans humans confirmed
    /// is scored token by token ([`concord_domain::span_quality`]) against its annotators'
    /// answers and the active version's stored suggestion; items where some token's given tag
    /// has less than half the support are listed, worst token first. Runs no model.
    fn span_label_errors(
        &self,
        project: ProjectId,
        spec: &ProjectSpec,
        limit: usize,
    ) -> Result<LabelErrorReport, EngineError> {
        let labels: Vec<String> = spec.labels.iter().map(|l| l.name.clone()).collect();
        let confirmed: HashMap<u64, ConfirmedSpanItem> = self
            .confirmed_span_items(project, spec)?
            .into_iter()
            .map(|c| (c.seq, c))
            .collect();
        if confirmed.len() > MAX_LABEL_ERROR_ITEMS {
            return Err(EngineError::Invalid(format!(
                "label-error detection checks at most {MAX_LABEL_ERROR_ITEMS} confirmed items in a request; this project has {}",
                confirmed.len()
            )));
        }
        let active = self.project_record(project)?.active_model;
        let version = match active {
            Some(v) => self.store().model_version(project, v)?.map(|r| (v, r)),
            None => None,
        };
        let validated = match &version {
            Some((v, _)) => self
                .suggestion_evidence(project, *v, true)?
                .is_some_and(|c| c.evidence.validated),
            None => false,
        };
        let user_names = self.user_names()?;
        let name_of = |user: &UserId| {
            user_names
                .get(user)
                .cloned()
                .unwrap_or_else(|| format!("user {}", user.0))
        };
        let mut checked: Vec<SpanChecked> = Vec::new();
        let mut unscored = 0u64;
        self.store()
            .for_each_item::<EngineError>(project, |seq, item, answers| {
                let Some(c) = confirmed.get(&seq) else {
                    return Ok(());
                };
                let n = c.tokens.len();
                let given = token_spans(&c.tokens, &c.spans, &labels);
                let answer_spans: Vec<Vec<TokenSpan>> = answers
                    .iter()
                    .map(|(_, a)| token_spans(&c.tokens, &a.value.spans, &labels))
                    .collect();
                let suggestion = match &version {
                    Some((v, record)) => self
                        .store()
                        .suggestion(project, seq)?
                        .filter(|s| s.version == *v)
                        .map(|s| (s, record)),
                    None => None,
                };
                let model_sample = match &suggestion {
                    None => ModelSample::NoSuggestion,
                    Some((_, record)) if !has_model(record) => ModelSample::External,
                    Some(_) if held_out(&c.id) => ModelSample::OutOfSample,
                    Some(_) => ModelSample::InSample,
                };
                let (weight, silent_weight) = model_weights(model_sample, validated);
                let scored: Vec<ScoredTokenSpan> = suggestion
                    .as_ref()
                    .map(|(s, _)| {
                        s.spans
                            .iter()
                            .flat_map(|x| {
                                token_spans(
                                    &c.tokens,
                                    &[Span::new(x.start, x.end, x.label.clone())],
                                    &labels,
                                )
                                .into_iter()
                                .map(|span| ScoredTokenSpan {
                                    span,
                                    confidence: x.confidence,
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let model = suggestion.as_ref().map(|_| ModelSpans {
                    spans: &scored,
                    weight,
                    silent_weight,
                });
                let Some(quality) = span_quality(&SpanQualityInput {
                    tokens: n,
                    given: &given,
                    answers: &answer_spans,
                    model,
                }) else {
                    unscored += 1;
                    return Ok(());
                };
                let (span, missing) = match quality.finding {
                    SpanFinding::Given { span } => {
                        (token_span_text(&c.text, &c.tokens, &labels, span), false)
                    }
                    SpanFinding::Missing { span } => {
                        (token_span_text(&c.text, &c.tokens, &labels, span), true)
                    }
                    SpanFinding::Outside { token } => {
                        let word = c
                            .tokens
                            .get(token)
                            .map(|t| covered_text(&c.text, t.start, t.end))
                            .unwrap_or_default();
                        (format!("\"{word}\""), true)
                    }
                };
                let reason = LabelErrorReason::Span {
                    span,
                    missing,
                    model_probability: quality.model_probability,
                    model_disagrees: quality.model_disagrees,
                    model_sample,
                    agreeing: quality.agreeing,
                    total: quality.total,
                    annotators_disagree: quality.annotators_disagree,
                };
                let mut sorted_given = given.clone();
                sorted_given.sort_unstable();
                let answers_text = answers
                    .iter()
                    .zip(&answer_spans)
                    .map(|((user, a), spans)| {
                        let mut spans = spans.clone();
                        spans.sort_unstable();
                        (
                            *user,
                            spans_text(&c.text, &a.value.spans),
                            spans == sorted_given,
                        )
                    })
                    .collect();
                let suggested = match &suggestion {
                    Some((s, _)) => s
                        .spans
                        .iter()
                        .map(|x| {
                            format!(
                                "{} \"{}\" ({:.2})",
                                x.label,
                                covered_text(&c.text, x.start, x.end),
                                x.confidence
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                    None => {
                        let values: Vec<&[Span]> = answers
                            .iter()
                            .map(|(_, a)| a.value.spans.as_slice())
                            .collect();
                        majority_span_set(&values)
                            .map(|s| spans_text(&c.text, s))
                            .unwrap_or_default()
                    }
                };
                checked.push(SpanChecked {
                    seq,
                    item_id: c.id.clone(),
                    text: c.text.chars().take(TEXT_CHARS).collect(),
                    given: spans_text(&c.text, &c.spans),
                    suggested: if suggestion.is_some() && suggested.is_empty() {
                        "(none)".to_string()
                    } else {
                        suggested
                    },
                    quality,
                    reason,
                    reviewed: matches!(item.gold_source(), Some(GoldSource::Review { .. })),
                    answers: answers_text,
                });
                Ok(())
            })?;
        // Per annotator: answers, and the share equal to the confirmed spans — on items others
        // answered too (agreement) and on all of them (quality).
        let mut per_annotator: HashMap<UserId, (u64, u64, u64, u64)> = HashMap::new();
        for item in &checked {
            let shared = item.answers.len() > 1;
            for (user, _, equal) in &item.answers {
                let e = per_annotator.entry(*user).or_default();
                e.0 += 1;
                e.1 += u64::from(*equal);
                if shared {
                    e.2 += 1;
                    e.3 += u64::from(*equal);
                }
            }
        }
        let mut annotators: Vec<AnnotatorQuality> = per_annotator
            .into_iter()
            .map(
                |(user, (n, equal, shared, shared_equal))| AnnotatorQuality {
                    annotator: name_of(&user),
                    answers: n,
                    agreement: (shared > 0).then(|| shared_equal as f32 / shared as f32),
                    quality: equal as f32 / n as f32,
                },
            )
            .collect();
        annotators.sort_by(|a, b| {
            b.quality
                .total_cmp(&a.quality)
                .then(a.annotator.cmp(&b.annotator))
        });
        let checked_count = checked.len() as u64;
        let mut listed: Vec<SpanChecked> = checked
            .into_iter()
            .filter(|c| !c.reviewed && c.quality.score < SPAN_LISTING_QUALITY)
            .collect();
        listed.sort_by(|a, b| {
            a.quality
                .score
                .total_cmp(&b.quality.score)
                .then(a.seq.cmp(&b.seq))
        });
        let flagged = listed.len() as u64;
        let rows = listed
            .into_iter()
            .take(limit)
            .map(|c| {
                let mut answers: Vec<AnnotatorAnswer> = c
                    .answers
                    .iter()
                    .map(|(user, text, _)| AnnotatorAnswer {
                        annotator: name_of(user),
                        label: text.clone(),
                    })
                    .collect();
                answers.sort_by(|a, b| a.annotator.cmp(&b.annotator));
                LabelErrorRow {
                    item_id: c.item_id,
                    seq: c.seq,
                    text: c.text,
                    score: 1.0 - c.quality.score,
                    given: c.given,
                    suggested: c.suggested,
                    reason: c.reason,
                    annotators: answers,
                }
            })
            .collect();
        Ok(LabelErrorReport {
            rows,
            flagged,
            checked: checked_count,
            not_embedded: unscored,
            annotators,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_that_may_have_seen_the_item_or_is_unproven_weighs_less() {
        assert_eq!(model_weights(ModelSample::OutOfSample, true), (1.0, 1.0));
        assert_eq!(model_weights(ModelSample::External, false), (1.0, 0.5));
        assert_eq!(model_weights(ModelSample::InSample, true), (0.5, 0.5));
        assert_eq!(model_weights(ModelSample::InSample, false), (0.5, 0.25));
    }

    #[test]
    fn spans_read_as_their_types_and_words() {
        let text = "🙂 Bieber in NY";
        assert_eq!(
            spans_text(
                text,
                &[Span::new(2, 8, "person"), Span::new(12, 14, "geo-loc")]
            ),
            "person \"Bieber\"; geo-loc \"NY\""
        );
        assert_eq!(spans_text(text, &[]), "(none)");
        let tokens = concord_domain::tokens::tokenize(text);
        let labels = vec!["person".to_string()];
        let span = TokenSpan {
            start: 1,
            end: 2,
            label: 0,
        };
        assert_eq!(
            token_span_text(text, &tokens, &labels, span),
            "person \"Bieber\""
        );
    }
}
