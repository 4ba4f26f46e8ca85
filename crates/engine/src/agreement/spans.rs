//! A span project's agreement: pairwise span F1 (exact and overlap) per annotator pair and per
//! entity type, Krippendorff's unitizing α_U, each annotator against independent gold, and
//! each model version as a rater (its suggested spans against every annotator and the gold).
//!
//! F1 is streamed: one walk over the items adds each item's match counts per pair and type
//! (the counts of `concord_agreement::span_f1` are sums over documents, so adding per-item
//! counts gives exactly the corpus figure), and memory does not grow with the project. α_U
//! needs every unit at once; the items it needs are kept compactly, up to
//! [`MAX_UNITIZING_SPANS`] spans and answers, beyond which α_U is reported as not computed.
//!
//! The continuum of α_U is the texts of the compared items laid end to end, one rater per
//! annotator: α_U's expected disagreement is a property of the whole corpus (how long units
//! and gaps are across it), which one short item alone cannot estimate, and it assumes every
//! rater unitized the whole continuum. So the overall α_U is computed over the items every
//! annotator answered, and each annotator pair's α_U over the items both answered; a span
//! never crosses an item's end, so laying items end to end adds no false unit boundaries.

use std::collections::{BTreeMap, HashSet};

use concord_agreement::{
    precision_recall_f1, span_f1, unitizing_alpha, Coefficient, LabelF1, SpanAgreement, SpanMatch,
    UndefinedReason, Unit, UnitizingAlpha,
};
use concord_domain::{ProjectId, ProjectSpec, Span};
use serde::{Deserialize, Serialize};

use super::rater_counts::{independent_gold, mean, mean_coefficient, Comparison, RaterCounts};
use crate::{Engine, EngineError};

/// The most entries (answer spans, answers, annotator pairs per item) kept in memory for α_U;
/// F1 has no such limit (it is streamed).
pub const MAX_UNITIZING_SPANS: usize = 500_000;

/// Span agreement of a span project (the `spans` section of the agreement figures).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanAgreementFigures {
    /// Annotators with at least one answer, in the order of the pair indexes below.
    pub annotators: Vec<String>,
    /// Items with answers from at least two annotators (the ones the figures compare).
    pub items_compared: u64,
    /// Spans in the answers of those items.
    pub spans_compared: u64,
    /// Exact-match F1 (same start, end and type), each the mean over annotator pairs that
    /// share items of the pair's figure.
    pub exact: SpanF1Means,
    /// Overlap F1 (same type, any shared character), means over pairs as above.
    pub overlap: SpanF1Means,
    /// Per entity type (the project's types in schema order, then any other type answers
    /// use): F1 and α_U, each the mean over the pairs where it is defined.
    pub per_type: Vec<SpanTypeAgreement>,
    /// Every annotator pair with shared items.
    pub pairs: Vec<SpanPairAgreement>,
    /// α_U over the items every annotator answered, all annotators as raters.
    pub unitizing: UnitizingFigures,
    /// Mean over annotator pairs of the pair's α_U.
    pub unitizing_mean_pairwise: Coefficient,
    pub annotator_stats: Vec<SpanAnnotatorStats>,
    /// Each model version whose suggestions are stored, as a rater.
    pub model_raters: Vec<SpanModelRater>,
}

/// Micro and macro F1, means over annotator pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanF1Means {
    /// F1 from the pair's counts pooled over types.
    pub micro_f1: Coefficient,
    /// The mean of the pair's per-type F1.
    pub macro_f1: Coefficient,
}

/// One entity type's agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanTypeAgreement {
    pub label: String,
    /// Spans of this type in the compared answers.
    pub spans: u64,
    pub exact_f1: Coefficient,
    pub overlap_f1: Coefficient,
    pub alpha_u: Coefficient,
}

/// Two annotators over the items both answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanPairAgreement {
    /// Indexes into `annotators`; `first < second`. The first is read as the "prediction"
    /// for precision, the second for recall (F1 is symmetric).
    pub first: usize,
    pub second: usize,
    pub items: u64,
    pub exact: SpanAgreement,
    pub overlap: SpanAgreement,
    pub unitizing: UnitizingFigures,
}

/// Krippendorff's α_U over a continuum of items laid end to end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitizingFigures {
    /// Items in the continuum.
    pub items: u64,
    /// Its length in code points.
    pub length: u64,
    /// `None` when α_U could not be computed (the reason is in `note`).
    pub alpha: Option<UnitizingAlpha>,
    pub note: Option<String>,
}

impl UnitizingFigures {
    /// α_U, or why it is undefined.
    pub fn coefficient(&self) -> Coefficient {
        self.alpha.as_ref().map_or(
            Coefficient::Undefined(UndefinedReason::NoPairableItems),
            |a| a.coefficient,
        )
    }
}

/// One annotator's span work and agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanAnnotatorStats {
    pub name: String,
    /// Items answered, and spans in those answers.
    pub items: u64,
    pub spans: u64,
    /// Mean over this annotator's pairs of the pair's exact micro F1.
    pub exact_f1_with_others: Coefficient,
    /// Against gold that did not come from the annotators' own answers (gold questions and
    /// imported gold), the annotator read as the prediction.
    pub gold: SpanScore,
}

/// One rater's spans against a reference, pooled over the items both have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanScore {
    pub items: u64,
    /// Exact match, the rater's spans as predictions and the reference's as truth.
    pub exact_precision: Coefficient,
    pub exact_recall: Coefficient,
    pub exact_f1: Coefficient,
    pub overlap_f1: Coefficient,
}

/// A model version's stored suggestions scored as a rater. A project keeps one suggestion per
/// item (the last prediction's), so a version is measured on the items whose current
/// suggestion it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanModelRater {
    pub version: u64,
    /// How the version was made (`unknown` when its record is gone).
    pub trainer: String,
    /// The name an imported version was given.
    pub name: Option<String>,
    /// Items with this version's suggestion and an answer or gold.
    pub items: u64,
    /// Against each annotator, in `annotators` order.
    pub with_annotators: Vec<SpanScore>,
    /// Mean of the defined exact F1 values above.
    pub mean_exact_f1: Option<f64>,
    /// Against the gold in force (imported, reviewed, or unanimous and accepted).
    pub gold: SpanScore,
}

/// Match counts per type: spans of A, spans of B, A's matched, B's matched.
type TypeCounts = BTreeMap<String, [usize; 4]>;

/// Exact and overlap counts of one comparison.
#[derive(Default)]
struct PairCounts {
    items: u64,
    exact: TypeCounts,
    overlap: TypeCounts,
}

impl Comparison for PairCounts {
    type Unit = Span;
    type Score = SpanScore;

    fn add(&mut self, a: &[Span], b: &[Span]) -> Result<(), EngineError> {
        self.items += 1;
        add_counts(&mut self.exact, a, b, SpanMatch::Exact)?;
        add_counts(&mut self.overlap, a, b, SpanMatch::Overlap)
    }

    fn score(&self) -> SpanScore {
        let exact = agreement_from_counts(SpanMatch::Exact, &self.exact);
        let overlap = agreement_from_counts(SpanMatch::Overlap, &self.overlap);
        let (exact_precision, exact_recall, _) = exact.micro();
        SpanScore {
            items: self.items,
            exact_precision,
            exact_recall,
            exact_f1: exact.micro_f1,
            overlap_f1: overlap.micro_f1,
        }
    }
}

fn to_stats_spans(spans: &[Span]) -> Vec<concord_agreement::Span> {
    spans
        .iter()
        .map(|s| concord_agreement::Span::new("", u64::from(s.start), u64::from(s.end), &s.label))
        .collect()
}

/// Adds the per-type counts of comparing one item's `a` with its `b`.
fn add_counts(
    counts: &mut TypeCounts,
    a: &[Span],
    b: &[Span],
    matching: SpanMatch,
) -> Result<(), EngineError> {
    let agreement = span_f1(&to_stats_spans(a), &to_stats_spans(b), matching)
        .map_err(|e| EngineError::internal("span F1 of stored answers", e))?;
    for l in agreement.per_label {
        let c = counts.entry(l.label).or_default();
        c[0] += l.spans_a;
        c[1] += l.spans_b;
        c[2] += l.matched_a;
        c[3] += l.matched_b;
    }
    Ok(())
}

/// The corpus figure from per-type counts summed over items.
fn agreement_from_counts(matching: SpanMatch, counts: &TypeCounts) -> SpanAgreement {
    let mut total = [0usize; 4];
    let per_label: Vec<LabelF1> = counts
        .iter()
        .map(|(label, c)| {
            for k in 0..4 {
                total[k] += c[k];
            }
            let [na, nb, ma, mb] = *c;
            let (precision, recall, f1) = precision_recall_f1(ma, na, mb, nb);
            LabelF1 {
                label: label.clone(),
                spans_a: c[0],
                spans_b: c[1],
                matched_a: c[2],
                matched_b: c[3],
                precision,
                recall,
                f1,
            }
        })
        .collect();
    let [na, nb, ma, mb] = total;
    let micro_f1 = precision_recall_f1(ma, na, mb, nb).2;
    let defined: Vec<f64> = per_label.iter().filter_map(|l| l.f1.value()).collect();
    SpanAgreement {
        matching,
        per_label,
        micro_f1,
        macro_f1: mean(&defined).map_or(
            Coefficient::Undefined(UndefinedReason::NoSpans),
            Coefficient::Value,
        ),
    }
}

/// An item kept for α_U: its length and each answer's spans (annotator column, spans).
struct KeptItem {
    length: u64,
    answers: Vec<(usize, Vec<Span>)>,
}

/// α_U of `raters` raters over `items` laid end to end; `rater_of` maps an annotator column
/// to a rater index (or leaves the answer out).
fn unitizing_over<'a>(
    items: impl Iterator<Item = &'a KeptItem>,
    raters: usize,
    rater_of: impl Fn(usize) -> Option<usize>,
) -> UnitizingFigures {
    let mut units = Vec::new();
    let (mut offset, mut count) = (0u64, 0u64);
    for item in items {
        count += 1;
        for (column, spans) in &item.answers {
            if let Some(rater) = rater_of(*column) {
                units.extend(spans.iter().map(|s| {
                    Unit::new(
                        offset + u64::from(s.start),
                        u64::from(s.end - s.start),
                        rater,
                        &s.label,
                    )
                }));
            }
        }
        offset += item.length;
    }
    let (alpha, note) = if count == 0 {
        (
            None,
            Some("no item was answered by all of these annotators".into()),
        )
    } else {
        match unitizing_alpha(0, offset, raters, &units) {
            Ok(alpha) => (Some(alpha), None),
            Err(concord_agreement::InputError::OverlappingUnits { .. }) => (
                None,
                Some("α_U needs each annotator's spans of one type not to overlap, and some answers in this project nest or overlap spans of one type".into()),
            ),
            Err(e) => (None, Some(format!("α_U is undefined here: {e}"))),
        }
    };
    UnitizingFigures {
        items: count,
        length: offset,
        alpha,
        note,
    }
}

impl Engine {
    /// The span agreement of a span project (one walk over its items).
    pub(crate) fn span_agreement(
        &self,
        project: ProjectId,
        spec: &ProjectSpec,
    ) -> Result<SpanAgreementFigures, EngineError> {
        let names = self.user_names()?;
        let questions: HashSet<u64> = self.store().gold_questions(project)?.into_iter().collect();
        let versions = self.store().model_versions(project)?;
        let mut counts: RaterCounts<PairCounts> = RaterCounts::default();
        // Per pair, the kept items both answered (indexes into `kept`).
        let mut pair_items: BTreeMap<(usize, usize), Vec<usize>> = BTreeMap::new();
        let mut kept: Vec<KeptItem> = Vec::new();
        let mut kept_spans = 0usize;
        let mut kept_all = true;
        let mut type_spans: BTreeMap<String, u64> = BTreeMap::new();
        let (mut items_compared, mut spans_compared) = (0u64, 0u64);
        self.store()
            .for_each_item::<EngineError>(project, |seq, item, answers| {
                let units: Vec<&[Span]> = answers
                    .iter()
                    .map(|(_, answer)| answer.value.spans.as_slice())
                    .collect();
                let gold = independent_gold(&questions, seq, &item).map(|g| g.spans.as_slice());
                let cols = counts.add_answers(&answers, &units, gold)?;
                if answers.len() >= 2 {
                    items_compared += 1;
                    for (_, answer) in &answers {
                        spans_compared += answer.value.spans.len() as u64;
                        for s in &answer.value.spans {
                            *type_spans.entry(s.label.clone()).or_default() += 1;
                        }
                    }
                    // What keeping the item holds: its spans, one entry per answer and one
                    // per pair of its annotators (answers without spans cost memory too).
                    let spans_here: usize = answers.iter().map(|(_, a)| a.value.spans.len()).sum();
                    let held_here =
                        spans_here + answers.len() + answers.len() * (answers.len() - 1) / 2;
                    if kept_all && kept_spans + held_here <= MAX_UNITIZING_SPANS {
                        kept_spans += held_here;
                        let index = kept.len();
                        for x in 0..cols.len() {
                            for y in x + 1..cols.len() {
                                let key = (cols[x].min(cols[y]), cols[x].max(cols[y]));
                                pair_items.entry(key).or_default().push(index);
                            }
                        }
                        kept.push(KeptItem {
                            length: u64::from(concord_domain::tokens::char_len(&item.text)),
                            answers: cols
                                .iter()
                                .zip(&answers)
                                .map(|(c, (_, a))| (*c, a.value.spans.clone()))
                                .collect(),
                        });
                    } else {
                        // α_U over part of the items would be a different statistic: drop it.
                        kept_all = false;
                        kept.clear();
                        pair_items.clear();
                    }
                }
                let Some((suggestion, gold)) =
                    self.suggestion_to_score(project, spec, &versions, seq, &item, &answers)?
                else {
                    return Ok(());
                };
                // Suggestions are a model's output, never validated as answers are: an empty
                // span (which matches nothing) is left out rather than failing every figure.
                let suggested: Vec<Span> = suggestion
                    .spans
                    .iter()
                    .filter(|s| s.end > s.start)
                    .map(|s| Span::new(s.start, s.end, s.label.clone()))
                    .collect();
                counts.add_suggestion(
                    suggestion.version,
                    &suggested,
                    &cols,
                    &units,
                    gold.as_ref().map(|g| g.spans.as_slice()),
                )
            })?;

        let annotator_names = counts.annotator_names(&names);
        let raters = annotator_names.len();
        let not_kept = || {
            UnitizingFigures {
            items: 0,
            length: 0,
            alpha: None,
            note: Some(format!(
                "α_U keeps at most {MAX_UNITIZING_SPANS} spans and answers in memory, and the compared answers have more"
            )),
        }
        };
        let pair_figures: Vec<SpanPairAgreement> = counts
            .pairs()
            .iter()
            .map(|(&(first, second), pair)| {
                let unitizing = if kept_all {
                    let indexes = pair_items
                        .get(&(first, second))
                        .map_or(&[][..], Vec::as_slice);
                    unitizing_over(indexes.iter().map(|&i| &kept[i]), 2, |c| {
                        (c == first).then_some(0).or((c == second).then_some(1))
                    })
                } else {
                    not_kept()
                };
                SpanPairAgreement {
                    first,
                    second,
                    items: pair.items,
                    exact: agreement_from_counts(SpanMatch::Exact, &pair.exact),
                    overlap: agreement_from_counts(SpanMatch::Overlap, &pair.overlap),
                    unitizing,
                }
            })
            .collect();
        let unitizing = if kept_all {
            unitizing_over(
                kept.iter().filter(|k| k.answers.len() == raters),
                raters,
                Some,
            )
        } else {
            not_kept()
        };

        let means = |pick: fn(&SpanPairAgreement) -> &SpanAgreement| SpanF1Means {
            micro_f1: mean_coefficient(pair_figures.iter().map(|p| pick(p).micro_f1)),
            macro_f1: mean_coefficient(pair_figures.iter().map(|p| pick(p).macro_f1)),
        };
        let exact = means(|p| &p.exact);
        let overlap = means(|p| &p.overlap);

        let mut labels: Vec<String> = spec.labels.iter().map(|l| l.name.clone()).collect();
        for label in type_spans.keys() {
            if !labels.contains(label) {
                labels.push(label.clone());
            }
        }
        let type_f1 = |a: &SpanAgreement, label: &str| {
            a.per_label.iter().find(|l| l.label == label).map(|l| l.f1)
        };
        let per_type = labels
            .iter()
            .map(|label| SpanTypeAgreement {
                label: label.clone(),
                spans: type_spans.get(label).copied().unwrap_or(0),
                exact_f1: mean_coefficient(
                    pair_figures.iter().filter_map(|p| type_f1(&p.exact, label)),
                ),
                overlap_f1: mean_coefficient(
                    pair_figures
                        .iter()
                        .filter_map(|p| type_f1(&p.overlap, label)),
                ),
                alpha_u: mean_coefficient(pair_figures.iter().filter_map(|p| {
                    p.unitizing.alpha.as_ref().and_then(|a| {
                        a.per_category
                            .iter()
                            .find(|c| c.category == *label)
                            .map(|c| c.coefficient)
                    })
                })),
            })
            .collect();
        let unitizing_mean_pairwise =
            mean_coefficient(pair_figures.iter().map(|p| p.unitizing.coefficient()));

        let annotator_stats = counts
            .annotator_figures(&annotator_names, &pair_figures, |p| {
                (p.first, p.second, p.exact.micro_f1)
            })
            .into_iter()
            .map(|a| SpanAnnotatorStats {
                name: a.name,
                items: a.items,
                spans: a.units,
                exact_f1_with_others: a.f1_with_others,
                gold: a.gold,
            })
            .collect();
        let model_raters = counts
            .version_figures(versions, |s| s.exact_f1)
            .into_iter()
            .map(|v| SpanModelRater {
                version: v.version,
                trainer: v.trainer,
                name: v.name,
                items: v.items,
                with_annotators: v.with_annotators,
                mean_exact_f1: v.mean_f1,
                gold: v.gold,
            })
            .collect();

        Ok(SpanAgreementFigures {
            annotators: annotator_names,
            items_compared,
            spans_compared,
            exact,
            overlap,
            per_type,
            pairs: pair_figures,
            unitizing,
            unitizing_mean_pairwise,
            annotator_stats,
            model_raters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(list: &[(u32, u32, &str)]) -> Vec<Span> {
        list.iter().map(|&(s, e, l)| Span::new(s, e, l)).collect()
    }

    #[test]
    fn per_item_counts_add_up_to_the_corpus_figure() {
        // Three items; span_f1 over the whole corpus (one document per item) must equal the
        // figure built from per-item counts.
        let a = [
            spans(&[(0, 4, "per"), (6, 9, "loc")]),
            spans(&[(1, 3, "per")]),
            spans(&[]),
        ];
        let b = [
            spans(&[(0, 4, "per"), (5, 9, "loc"), (10, 12, "org")]),
            spans(&[(2, 5, "per"), (7, 8, "loc")]),
            spans(&[(0, 1, "org")]),
        ];
        for matching in [SpanMatch::Exact, SpanMatch::Overlap] {
            let mut counts = TypeCounts::new();
            for (x, y) in a.iter().zip(&b) {
                add_counts(&mut counts, x, y, matching).unwrap();
            }
            let streamed = agreement_from_counts(matching, &counts);
            let corpus = |side: &[Vec<Span>]| -> Vec<concord_agreement::Span> {
                side.iter()
                    .enumerate()
                    .flat_map(|(doc, list)| {
                        list.iter().map(move |s| {
                            concord_agreement::Span::new(
                                doc.to_string(),
                                u64::from(s.start),
                                u64::from(s.end),
                                &s.label,
                            )
                        })
                    })
                    .collect()
            };
            let whole = span_f1(&corpus(&a), &corpus(&b), matching).unwrap();
            assert_eq!(streamed, whole, "{matching:?}");
        }
    }

    #[test]
    fn nested_spans_of_one_type_leave_alpha_u_undefined_with_a_reason() {
        let item = KeptItem {
            length: 10,
            answers: vec![
                (0, spans(&[(0, 6, "per"), (2, 4, "per")])),
                (1, spans(&[(0, 6, "per")])),
            ],
        };
        let figures = unitizing_over([&item].into_iter(), 2, Some);
        assert!(figures.alpha.is_none());
        assert!(figures.note.unwrap().contains("overlap"));
    }
}
