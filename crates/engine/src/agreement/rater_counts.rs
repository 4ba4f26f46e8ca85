//! What span agreement and relation agreement count the same way in their one walk over a
//! project's items: each annotator's column and work, each annotator against independent
//! gold, every annotator pair, and each model version against every annotator and the gold in
//! force; then the per-annotator and per-version figures built from those counts. How two
//! answers are compared (span match counts, relation counts) stays with each section, as its
//! [`Comparison`].

use std::collections::{BTreeMap, HashMap, HashSet};

use concord_agreement::{Coefficient, UndefinedReason};
use concord_domain::{AnnotationValue, GoldSource, ProjectId, ProjectSpec, UserId};
use concord_store::{AnnotationRecord, ItemRecord, ModelVersionRecord, SuggestionRecord};

use crate::{Engine, EngineError};

/// Counts of one rater against a reference, added item by item.
pub(super) trait Comparison: Default {
    /// What an answer holds that is compared: a span, a relation.
    type Unit;
    /// The figures of one rater against a reference.
    type Score;

    /// Adds one item's comparison of `rater` (read as the prediction) with `reference`.
    fn add(&mut self, rater: &[Self::Unit], reference: &[Self::Unit]) -> Result<(), EngineError>;

    /// The figures of the counts added so far.
    fn score(&self) -> Self::Score;
}

/// One annotator's work: items answered, units in those answers, and counts against
/// independent gold.
#[derive(Default)]
struct AnnotatorWork<C> {
    items: u64,
    units: u64,
    gold: C,
}

/// A model version's counts: against each annotator column (shorter than the columns when
/// the last annotators share no item with the version), against the gold in force, and the
/// items it was measured on.
#[derive(Default)]
struct VersionCounts<C> {
    with_annotators: Vec<C>,
    gold: C,
    items: u64,
}

/// Everything one walk over a project's items counts per rater, `C` comparing two answers.
#[derive(Default)]
pub(super) struct RaterCounts<C> {
    column: HashMap<UserId, usize>,
    /// Annotators in column order: the order of their first answer.
    annotators: Vec<UserId>,
    work: Vec<AnnotatorWork<C>>,
    /// Keyed by the pair's columns, lower column first.
    pairs: BTreeMap<(usize, usize), C>,
    versions: BTreeMap<u64, VersionCounts<C>>,
}

/// One annotator's figures, before they take their section's public type.
pub(super) struct AnnotatorFigures<S> {
    pub name: String,
    /// Items answered, and units (spans, relations) in those answers.
    pub items: u64,
    pub units: u64,
    /// Mean over this annotator's pairs of the pair's micro F1.
    pub f1_with_others: Coefficient,
    /// Against independent gold, the annotator read as the prediction.
    pub gold: S,
}

/// One model version's figures, before they take their section's public type.
pub(super) struct VersionFigures<S> {
    pub version: u64,
    /// How the version was made (`unknown` when its record is gone).
    pub trainer: String,
    pub name: Option<String>,
    pub items: u64,
    /// Against each annotator, in column order.
    pub with_annotators: Vec<S>,
    /// Mean of the defined F1 values above.
    pub mean_f1: Option<f64>,
    pub gold: S,
}

impl<C: Comparison> RaterCounts<C> {
    /// Adds one item's answers, `units[k]` being what answer `k` holds: each annotator's work,
    /// each answer against `independent_gold`, and every pair of answers. Returns each
    /// answer's annotator column (an annotator takes the next column on their first answer).
    pub(super) fn add_answers(
        &mut self,
        answers: &[(UserId, AnnotationRecord)],
        units: &[&[C::Unit]],
        independent_gold: Option<&[C::Unit]>,
    ) -> Result<Vec<usize>, EngineError> {
        let mut cols = Vec::with_capacity(answers.len());
        for ((user, _), mine) in answers.iter().zip(units.iter().copied()) {
            let col = match self.column.get(user) {
                Some(&col) => col,
                None => {
                    let col = self.annotators.len();
                    self.column.insert(*user, col);
                    self.annotators.push(*user);
                    self.work.push(AnnotatorWork::default());
                    col
                }
            };
            self.work[col].items += 1;
            self.work[col].units += mine.len() as u64;
            cols.push(col);
        }
        if let Some(gold) = independent_gold {
            for (&col, mine) in cols.iter().zip(units.iter().copied()) {
                self.work[col].gold.add(mine, gold)?;
            }
        }
        for x in 0..cols.len() {
            for y in x + 1..cols.len() {
                // Pairs are keyed lower column first.
                let (x, y) = if cols[x] < cols[y] { (x, y) } else { (y, x) };
                self.pairs
                    .entry((cols[x], cols[y]))
                    .or_default()
                    .add(units[x], units[y])?;
            }
        }
        Ok(cols)
    }

    /// Adds model `version`'s `suggested` units on one item: against each answer (`cols` as
    /// [`RaterCounts::add_answers`] returned them, `units` as it took them) and against
    /// `gold`, the gold in force.
    pub(super) fn add_suggestion(
        &mut self,
        version: u64,
        suggested: &[C::Unit],
        cols: &[usize],
        units: &[&[C::Unit]],
        gold: Option<&[C::Unit]>,
    ) -> Result<(), EngineError> {
        let counts = self.versions.entry(version).or_default();
        counts.items += 1;
        for (&col, mine) in cols.iter().zip(units.iter().copied()) {
            if counts.with_annotators.len() <= col {
                counts.with_annotators.resize_with(col + 1, C::default);
            }
            counts.with_annotators[col].add(suggested, mine)?;
        }
        if let Some(gold) = gold {
            counts.gold.add(suggested, gold)?;
        }
        Ok(())
    }

    /// The annotators' names in column order (`user N` for a user with no record).
    pub(super) fn annotator_names(&self, names: &HashMap<UserId, String>) -> Vec<String> {
        self.annotators
            .iter()
            .map(|u| {
                names
                    .get(u)
                    .cloned()
                    .unwrap_or_else(|| format!("user {}", u.0))
            })
            .collect()
    }

    /// Every annotator pair with shared items, keyed by the pair's columns, lower first.
    pub(super) fn pairs(&self) -> &BTreeMap<(usize, usize), C> {
        &self.pairs
    }

    /// Each annotator's figures, in column order. `names` are [`RaterCounts::annotator_names`];
    /// `pair_f1` gives a pair figure's columns and micro F1, the F1 an annotator's mean with
    /// others is of.
    pub(super) fn annotator_figures<P>(
        &self,
        names: &[String],
        pairs: &[P],
        pair_f1: impl Fn(&P) -> (usize, usize, Coefficient),
    ) -> Vec<AnnotatorFigures<C::Score>> {
        self.work
            .iter()
            .enumerate()
            .map(|(g, work)| AnnotatorFigures {
                name: names[g].clone(),
                items: work.items,
                units: work.units,
                f1_with_others: mean_coefficient(
                    pairs
                        .iter()
                        .map(&pair_f1)
                        .filter(|&(first, second, _)| first == g || second == g)
                        .map(|(_, _, f1)| f1),
                ),
                gold: work.gold.score(),
            })
            .collect()
    }

    /// Each model version's figures, in version order. `versions` are the project's version
    /// records (how each was made); `f1` picks the F1 of a score that the mean over
    /// annotators is of.
    pub(super) fn version_figures(
        &self,
        versions: Vec<(u64, ModelVersionRecord)>,
        f1: impl Fn(&C::Score) -> Coefficient,
    ) -> Vec<VersionFigures<C::Score>> {
        let version_info: HashMap<u64, (String, Option<String>)> = versions
            .into_iter()
            .map(|(v, r)| (v, (r.trainer, r.name)))
            .collect();
        self.versions
            .iter()
            .map(|(&version, counts)| {
                // An annotator the version shares no item with is scored on empty counts.
                let with_annotators: Vec<C::Score> = (0..self.annotators.len())
                    .map(|col| {
                        counts
                            .with_annotators
                            .get(col)
                            .map_or_else(|| C::default().score(), C::score)
                    })
                    .collect();
                let defined: Vec<f64> = with_annotators
                    .iter()
                    .filter_map(|s| f1(s).value())
                    .collect();
                let (trainer, name) = version_info
                    .get(&version)
                    .cloned()
                    .unwrap_or_else(|| ("unknown".into(), None));
                VersionFigures {
                    version,
                    trainer,
                    name,
                    items: counts.items,
                    with_annotators,
                    mean_f1: mean(&defined),
                    gold: counts.gold.score(),
                }
            })
            .collect()
    }
}

/// An item's gold when it did not come from the annotators' own answers (gold questions and
/// imported gold): the only gold an annotator is measured against, as gold taken from their
/// own answers would agree with them by construction.
pub(super) fn independent_gold<'i>(
    questions: &HashSet<u64>,
    seq: u64,
    item: &'i ItemRecord,
) -> Option<&'i AnnotationValue> {
    let independent = questions.contains(&seq) || item.gold_source() == Some(GoldSource::Import);
    item.gold.as_ref().filter(|_| independent)
}

impl Engine {
    /// Item `seq`'s stored suggestion and the gold in force, when a model version is scored
    /// on the item: the project has `versions`, the item a suggestion, and an answer or gold
    /// to score it against.
    pub(super) fn suggestion_to_score(
        &self,
        project: ProjectId,
        spec: &ProjectSpec,
        versions: &[(u64, ModelVersionRecord)],
        seq: u64,
        item: &ItemRecord,
        answers: &[(UserId, AnnotationRecord)],
    ) -> Result<Option<(SuggestionRecord, Option<AnnotationValue>)>, EngineError> {
        // Without versions no suggestion is looked up: one store read per item saved.
        if versions.is_empty() {
            return Ok(None);
        }
        let Some(suggestion) = self.store().suggestion(project, seq)? else {
            return Ok(None);
        };
        let gold =
            crate::review::effective_gold(spec, item.gold.as_ref(), item.gold_source(), answers);
        if answers.is_empty() && gold.is_none() {
            return Ok(None);
        }
        Ok(Some((suggestion, gold.map(|(gold, _)| gold))))
    }
}

/// The mean of the defined values, or why there is none.
pub(super) fn mean_coefficient(values: impl IntoIterator<Item = Coefficient>) -> Coefficient {
    let defined: Vec<f64> = values.into_iter().filter_map(|c| c.value()).collect();
    mean(&defined).map_or(
        Coefficient::Undefined(UndefinedReason::NoPairableItems),
        Coefficient::Value,
    )
}

/// The mean of `values`, `None` when there are none.
pub(super) fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}
