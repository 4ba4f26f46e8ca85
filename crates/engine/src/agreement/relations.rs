//! A relations project's relation agreement: pairwise relation F1 per annotator pair and per
//! relation type (a relation counts as shared when both its spans — start, end, entity type —
//! and its type match, direction included: `concord_domain::RelationTriple`), micro and
//! macro; each annotator against independent gold; and each model version's stored suggested
//! relations as a rater against every annotator and the gold in force.
//!
//! Streamed like span F1: one walk over the items adds each item's per-type counts
//! (`concord_agreement::RelationCounts`, sums over documents), so memory does not grow with
//! the project and the figures equal the corpus figure of `relation_f1`.

use std::collections::{BTreeMap, HashSet};

use concord_agreement::{
    Coefficient, LabelledRelation, RelationAgreement, RelationCounts, RelationEnd,
};
use concord_domain::{AnnotationValue, ProjectId, ProjectSpec, RelationTriple, Span};
use concord_store::SuggestionRecord;
use serde::{Deserialize, Serialize};

use super::rater_counts::{independent_gold, mean_coefficient, Comparison, RaterCounts};
use crate::{Engine, EngineError};

/// Relation agreement of a relations project (the `relations` section of the agreement
/// figures).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationAgreementFigures {
    /// Annotators with at least one answer, in the order of the pair indexes below (the same
    /// order as the span section's).
    pub annotators: Vec<String>,
    /// Items with answers from at least two annotators (the ones the figures compare).
    pub items_compared: u64,
    /// Relations in the answers of those items.
    pub relations_compared: u64,
    /// The mean over annotator pairs of the pair's micro relation F1 (counts pooled over
    /// types).
    pub micro_f1: Coefficient,
    /// The mean over annotator pairs of the pair's macro relation F1 (mean over types).
    pub macro_f1: Coefficient,
    /// Per relation type (the project's types in schema order, then any other type answers
    /// use): relations compared and F1, the mean over the pairs where it is defined.
    pub per_type: Vec<RelationTypeAgreement>,
    /// Every annotator pair with shared items.
    pub pairs: Vec<RelationPairAgreement>,
    pub annotator_stats: Vec<RelationAnnotatorStats>,
    /// Each model version whose suggestions are stored, as a relation rater.
    pub model_raters: Vec<RelationModelRater>,
}

/// One relation type's agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationTypeAgreement {
    pub label: String,
    /// Relations of this type in the compared answers.
    pub relations: u64,
    /// Mean over annotator pairs of the pair's F1 on this type.
    pub f1: Coefficient,
}

/// Two annotators' relations over the items both answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationPairAgreement {
    /// Indexes into `annotators`; `first < second`. The first is read as the "prediction"
    /// for precision, the second for recall (F1 is symmetric).
    pub first: usize,
    pub second: usize,
    pub items: u64,
    pub agreement: RelationAgreement,
}

/// One annotator's relation work and agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationAnnotatorStats {
    pub name: String,
    /// Items answered, and relations in those answers.
    pub items: u64,
    pub relations: u64,
    /// Mean over this annotator's pairs of the pair's micro relation F1.
    pub f1_with_others: Coefficient,
    /// Against gold that did not come from the annotators' own answers (gold questions and
    /// imported gold), the annotator read as the prediction.
    pub gold: RelationScore,
}

/// One rater's relations against a reference, pooled over the items both have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationScore {
    pub items: u64,
    /// The rater's relations as predictions, the reference's as truth; micro over types.
    pub precision: Coefficient,
    pub recall: Coefficient,
    pub f1: Coefficient,
}

/// A model version's stored suggested relations scored as a rater (a project keeps one
/// suggestion per item, so a version is measured on the items whose current suggestion it
/// made).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationModelRater {
    pub version: u64,
    /// How the version was made (`unknown` when its record is gone).
    pub trainer: String,
    /// The name an imported version was given.
    pub name: Option<String>,
    /// Items with this version's suggestion and an answer or gold.
    pub items: u64,
    /// Against each annotator, in `annotators` order.
    pub with_annotators: Vec<RelationScore>,
    /// Mean of the defined F1 values above.
    pub mean_f1: Option<f64>,
    /// Against the gold in force (imported, reviewed, or unanimous and accepted).
    pub gold: RelationScore,
}

/// Relation counts of one comparison, added item by item.
#[derive(Default)]
struct ScoreCounts {
    items: u64,
    counts: RelationCounts,
}

impl Comparison for ScoreCounts {
    type Unit = LabelledRelation;
    type Score = RelationScore;

    fn add(&mut self, a: &[LabelledRelation], b: &[LabelledRelation]) -> Result<(), EngineError> {
        self.items += 1;
        self.counts.add(a, b);
        Ok(())
    }

    fn score(&self) -> RelationScore {
        let a = self.counts.agreement();
        RelationScore {
            items: self.items,
            precision: a.micro_precision,
            recall: a.micro_recall,
            f1: a.micro_f1,
        }
    }
}

fn end(e: &(u32, u32, String)) -> RelationEnd {
    RelationEnd::new(u64::from(e.0), u64::from(e.1), e.2.clone())
}

fn labelled(triple: &RelationTriple) -> LabelledRelation {
    LabelledRelation::new(
        "",
        end(&triple.head),
        end(&triple.tail),
        triple.label.clone(),
    )
}

/// An answer's relations as the statistics crate takes them (one document: the item).
fn relations_of(value: &AnnotationValue) -> Vec<LabelledRelation> {
    value.relation_triples().iter().map(labelled).collect()
}

/// A suggestion's relations. Suggestions are a model's output, never validated as answers
/// are: a relation whose end is missing or an empty span is left out rather than failing
/// every figure.
fn suggested_relations(suggestion: &SuggestionRecord) -> Vec<LabelledRelation> {
    let spans: Vec<Span> = suggestion
        .spans
        .iter()
        .map(|s| Span::new(s.start, s.end, s.label.clone()))
        .collect();
    let mut triples: Vec<RelationTriple> = suggestion
        .relations
        .iter()
        .filter_map(|r| {
            let relation = concord_domain::Relation::new(r.from, r.to, r.label.clone());
            RelationTriple::of(&spans, &relation)
        })
        .filter(|t| t.head.1 > t.head.0 && t.tail.1 > t.tail.0 && t.head != t.tail)
        .collect();
    triples.sort();
    triples.dedup();
    triples.iter().map(labelled).collect()
}

impl Engine {
    /// The relation agreement of a relations project (one walk over its items).
    pub(crate) fn relation_agreement(
        &self,
        project: ProjectId,
        spec: &ProjectSpec,
    ) -> Result<RelationAgreementFigures, EngineError> {
        let names = self.user_names()?;
        let questions: HashSet<u64> = self.store().gold_questions(project)?.into_iter().collect();
        let versions = self.store().model_versions(project)?;
        let mut counts: RaterCounts<ScoreCounts> = RaterCounts::default();
        let mut type_relations: BTreeMap<String, u64> = BTreeMap::new();
        let (mut items_compared, mut relations_compared) = (0u64, 0u64);
        self.store()
            .for_each_item::<EngineError>(project, |seq, item, answers| {
                let relations: Vec<Vec<LabelledRelation>> = answers
                    .iter()
                    .map(|(_, answer)| relations_of(&answer.value))
                    .collect();
                let units: Vec<&[LabelledRelation]> = relations.iter().map(Vec::as_slice).collect();
                let gold = independent_gold(&questions, seq, &item).map(relations_of);
                let cols = counts.add_answers(&answers, &units, gold.as_deref())?;
                if answers.len() >= 2 {
                    items_compared += 1;
                    for mine in &relations {
                        relations_compared += mine.len() as u64;
                        for r in mine {
                            *type_relations.entry(r.label.clone()).or_default() += 1;
                        }
                    }
                }
                let Some((suggestion, gold)) =
                    self.suggestion_to_score(project, spec, &versions, seq, &item, &answers)?
                else {
                    return Ok(());
                };
                let gold = gold.as_ref().map(relations_of);
                counts.add_suggestion(
                    suggestion.version,
                    &suggested_relations(&suggestion),
                    &cols,
                    &units,
                    gold.as_deref(),
                )
            })?;

        let annotator_names = counts.annotator_names(&names);
        let pair_figures: Vec<RelationPairAgreement> = counts
            .pairs()
            .iter()
            .map(|(&(first, second), pair)| RelationPairAgreement {
                first,
                second,
                items: pair.items,
                agreement: pair.counts.agreement(),
            })
            .collect();
        let micro_f1 = mean_coefficient(pair_figures.iter().map(|p| p.agreement.micro_f1));
        let macro_f1 = mean_coefficient(pair_figures.iter().map(|p| p.agreement.macro_f1));

        let mut labels: Vec<String> = spec
            .relation_labels
            .iter()
            .map(|l| l.name.clone())
            .collect();
        for label in type_relations.keys() {
            if !labels.contains(label) {
                labels.push(label.clone());
            }
        }
        let per_type = labels
            .iter()
            .map(|label| RelationTypeAgreement {
                label: label.clone(),
                relations: type_relations.get(label).copied().unwrap_or(0),
                f1: mean_coefficient(pair_figures.iter().filter_map(|p| {
                    p.agreement
                        .per_type
                        .iter()
                        .find(|t| t.label == *label)
                        .map(|t| t.f1)
                })),
            })
            .collect();

        let annotator_stats = counts
            .annotator_figures(&annotator_names, &pair_figures, |p| {
                (p.first, p.second, p.agreement.micro_f1)
            })
            .into_iter()
            .map(|a| RelationAnnotatorStats {
                name: a.name,
                items: a.items,
                relations: a.units,
                f1_with_others: a.f1_with_others,
                gold: a.gold,
            })
            .collect();
        let model_raters = counts
            .version_figures(versions, |s| s.f1)
            .into_iter()
            .map(|v| RelationModelRater {
                version: v.version,
                trainer: v.trainer,
                name: v.name,
                items: v.items,
                with_annotators: v.with_annotators,
                mean_f1: v.mean_f1,
                gold: v.gold,
            })
            .collect();

        Ok(RelationAgreementFigures {
            annotators: annotator_names,
            items_compared,
            relations_compared,
            micro_f1,
            macro_f1,
            per_type,
            pairs: pair_figures,
            annotator_stats,
            model_raters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_domain::{SuggestedRelation, SuggestedSpan};

    fn suggestion(spans: &[(u32, u32, &str)], relations: &[(u32, u32, &str)]) -> SuggestionRecord {
        SuggestionRecord {
            labels: Vec::new(),
            confidence: 1.0,
            probabilities: Vec::new(),
            version: 1,
            created_ms: 0,
            spans: spans
                .iter()
                .map(|&(start, end, label)| SuggestedSpan {
                    start,
                    end,
                    label: label.into(),
                    confidence: 1.0,
                })
                .collect(),
            relations: relations
                .iter()
                .map(|&(from, to, label)| SuggestedRelation {
                    from,
                    to,
                    label: label.into(),
                    confidence: 1.0,
                })
                .collect(),
        }
    }

    #[test]
    fn suggested_relations_leave_out_what_no_answer_could_hold() {
        let s = suggestion(
            &[(0, 4, "per"), (10, 14, "org"), (20, 20, "loc")],
            &[
                (0, 1, "works_for"),
                (0, 1, "works_for"),
                (0, 2, "lives_in"),
                (0, 9, "works_for"),
                (1, 1, "works_for"),
            ],
        );
        let got = suggested_relations(&s);
        assert_eq!(
            got,
            vec![LabelledRelation::new(
                "",
                RelationEnd::new(0, 4, "per"),
                RelationEnd::new(10, 14, "org"),
                "works_for"
            )]
        );
    }
}
