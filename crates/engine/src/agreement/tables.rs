//! The agreement dashboard's tables as CSV, one per [`AgreementTable`], and the confusion
//! matrix of two annotators: the figures of [`ProjectAgreement`] and [`RaterConfusion`] written
//! at full precision, undefined values as empty cells. Cells that a spreadsheet would run as
//! formulas (an annotator or label named `=…`) are written as text, with a leading `'`, as in
//! the items export.

use concord_agreement::{Coefficient, PairwiseMatrix};

use super::{ProjectAgreement, RaterConfusion};
use crate::csv_columns::neutralise_formula;
use crate::EngineError;

/// A table of the agreement dashboard, as CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgreementTable {
    Coefficients,
    Labels,
    Pairs,
    Annotators,
    Days,
    Models,
    /// Span projects: F1 and α_U per entity type.
    SpanTypes,
    /// Span projects: F1 and α_U per annotator pair.
    SpanPairs,
    /// Span projects: model versions' suggested spans against each annotator and the gold.
    SpanModels,
    /// Relations projects: relation F1 per relation type.
    RelationTypes,
    /// Relations projects: relation F1 per annotator pair.
    RelationPairs,
    /// Relations projects: model versions' suggested relations against each annotator and
    /// the gold.
    RelationModels,
}

impl AgreementTable {
    pub fn parse(name: &str) -> Option<AgreementTable> {
        Some(match name {
            "coefficients" => AgreementTable::Coefficients,
            "labels" => AgreementTable::Labels,
            "models" => AgreementTable::Models,
            "pairs" => AgreementTable::Pairs,
            "annotators" => AgreementTable::Annotators,
            "days" => AgreementTable::Days,
            "span-types" => AgreementTable::SpanTypes,
            "span-pairs" => AgreementTable::SpanPairs,
            "span-models" => AgreementTable::SpanModels,
            "relation-types" => AgreementTable::RelationTypes,
            "relation-pairs" => AgreementTable::RelationPairs,
            "relation-models" => AgreementTable::RelationModels,
            _ => return None,
        })
    }
}

/// A CSV cell for a coefficient: the number at full precision, or empty when undefined.
fn cell(c: &Coefficient) -> String {
    c.value().map(|v| v.to_string()).unwrap_or_default()
}

/// Writes rows with the `csv` crate (as the export does) into a string, every cell through
/// [`neutralise_formula`].
struct CsvTable(csv::Writer<Vec<u8>>);

impl CsvTable {
    fn new() -> CsvTable {
        CsvTable(csv::Writer::from_writer(Vec::new()))
    }

    fn row(&mut self, fields: &[String]) -> Result<(), EngineError> {
        self.0
            .write_record(fields.iter().map(|f| neutralise_formula(f.clone())))
            .map_err(|e| EngineError::internal("writing CSV", e))
    }

    fn finish(self) -> Result<String, EngineError> {
        let bytes = self
            .0
            .into_inner()
            .map_err(|e| EngineError::internal("writing CSV", e))?;
        String::from_utf8(bytes).map_err(|e| EngineError::internal("writing CSV", e))
    }
}

impl ProjectAgreement {
    /// One dashboard table as CSV (numbers at full precision; undefined values empty, with
    /// the reason in a `note` column where a table has one).
    pub fn csv(&self, table: AgreementTable) -> Result<String, EngineError> {
        let mut out = CsvTable::new();
        let spans = || {
            self.spans.as_ref().ok_or_else(|| {
                EngineError::NotFound("span tables (this is not a span project)".into())
            })
        };
        let relations = || {
            self.relations.as_ref().ok_or_else(|| {
                EngineError::NotFound("relation tables (this is not a relations project)".into())
            })
        };
        match table {
            AgreementTable::Coefficients => {
                out.row(&[
                    "coefficient".into(),
                    "value".into(),
                    "ci_lower".into(),
                    "ci_upper".into(),
                    "note".into(),
                ])?;
                for (name, kind, c) in self.headline() {
                    let (lo, hi) = self
                        .interval(kind)
                        .map(|(l, h)| (l.to_string(), h.to_string()))
                        .unwrap_or_default();
                    let note = c
                        .undefined_reason()
                        .map(|r| r.to_string())
                        .unwrap_or_default();
                    out.row(&[name.into(), cell(&c), lo, hi, note])?;
                }
            }
            AgreementTable::Labels => {
                out.row(&[
                    "category".into(),
                    "ratings".into(),
                    "prevalence".into(),
                    "fleiss_kappa".into(),
                    "krippendorff_alpha".into(),
                    "specific_agreement".into(),
                ])?;
                for l in &self.report.per_label {
                    out.row(&[
                        self.categories.get(l.category).cloned().unwrap_or_default(),
                        l.ratings.to_string(),
                        l.prevalence.to_string(),
                        cell(&l.fleiss_kappa),
                        cell(&l.krippendorff_alpha),
                        cell(&l.specific_agreement),
                    ])?;
                }
            }
            AgreementTable::Pairs => {
                out.row(&[
                    "first".into(),
                    "second".into(),
                    "shared_items".into(),
                    "cohen_kappa".into(),
                    "percent_agreement".into(),
                ])?;
                let n = self.annotators.len();
                for g in 0..n {
                    for h in g + 1..n {
                        let shared = self
                            .pairwise_kappa
                            .shared_items
                            .get(g * n + h)
                            .copied()
                            .unwrap_or(0);
                        let get =
                            |m: &PairwiseMatrix| m.get(g, h).map(|c| cell(&c)).unwrap_or_default();
                        out.row(&[
                            self.annotators[g].clone(),
                            self.annotators[h].clone(),
                            shared.to_string(),
                            get(&self.pairwise_kappa),
                            get(&self.pairwise_percent),
                        ])?;
                    }
                }
            }
            AgreementTable::Annotators => {
                out.row(&[
                    "annotator".into(),
                    "items".into(),
                    "mean_time_ms".into(),
                    "kappa_with_others".into(),
                    "percent_with_others".into(),
                    "gold_answered".into(),
                    "gold_correct".into(),
                ])?;
                for a in &self.annotator_stats {
                    out.row(&[
                        a.name.clone(),
                        a.items.to_string(),
                        a.mean_time_ms.map(|t| t.to_string()).unwrap_or_default(),
                        cell(&a.kappa_with_others),
                        cell(&a.percent_with_others),
                        a.gold_answered.to_string(),
                        a.gold_correct.to_string(),
                    ])?;
                }
            }
            AgreementTable::Days => {
                out.row(&[
                    "day".into(),
                    "items".into(),
                    "alpha_nominal".into(),
                    "percent_pairable".into(),
                    "alpha_cumulative".into(),
                ])?;
                for d in &self.over_time {
                    out.row(&[
                        d.day.clone(),
                        d.items.to_string(),
                        cell(&d.alpha_nominal),
                        cell(&d.percent_pairable),
                        cell(&d.alpha_cumulative),
                    ])?;
                }
            }
            AgreementTable::Models => {
                let mut header = vec![
                    "version".to_string(),
                    "trainer".into(),
                    "items".into(),
                    "mean_kappa_with_annotators".into(),
                    "agrees_with_majority".into(),
                ];
                header.extend(self.annotators.iter().map(|a| format!("kappa_with_{a}")));
                out.row(&header)?;
                for r in &self.model_raters {
                    let mut row = vec![
                        r.version.to_string(),
                        r.trainer.clone(),
                        r.items.to_string(),
                        r.mean_kappa.map(|v| v.to_string()).unwrap_or_default(),
                        r.agrees_with_majority
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                    ];
                    row.extend(r.kappa_with_annotators.iter().map(cell));
                    out.row(&row)?;
                }
            }
            AgreementTable::SpanTypes => {
                let s = spans()?;
                out.row(&[
                    "type".into(),
                    "spans".into(),
                    "exact_f1".into(),
                    "overlap_f1".into(),
                    "alpha_u".into(),
                ])?;
                for t in &s.per_type {
                    out.row(&[
                        t.label.clone(),
                        t.spans.to_string(),
                        cell(&t.exact_f1),
                        cell(&t.overlap_f1),
                        cell(&t.alpha_u),
                    ])?;
                }
            }
            AgreementTable::SpanPairs => {
                let s = spans()?;
                out.row(&[
                    "first".into(),
                    "second".into(),
                    "shared_items".into(),
                    "exact_micro_f1".into(),
                    "exact_macro_f1".into(),
                    "overlap_micro_f1".into(),
                    "overlap_macro_f1".into(),
                    "alpha_u".into(),
                    "note".into(),
                ])?;
                let name = |i: usize| s.annotators.get(i).cloned().unwrap_or_default();
                for p in &s.pairs {
                    out.row(&[
                        name(p.first),
                        name(p.second),
                        p.items.to_string(),
                        cell(&p.exact.micro_f1),
                        cell(&p.exact.macro_f1),
                        cell(&p.overlap.micro_f1),
                        cell(&p.overlap.macro_f1),
                        cell(&p.unitizing.coefficient()),
                        p.unitizing.note.clone().unwrap_or_default(),
                    ])?;
                }
            }
            AgreementTable::SpanModels => {
                let s = spans()?;
                let mut header = vec![
                    "version".to_string(),
                    "name".into(),
                    "trainer".into(),
                    "items".into(),
                    "mean_exact_f1_with_annotators".into(),
                    "gold_items".into(),
                    "gold_exact_precision".into(),
                    "gold_exact_recall".into(),
                    "gold_exact_f1".into(),
                    "gold_overlap_f1".into(),
                ];
                header.extend(s.annotators.iter().map(|a| format!("exact_f1_with_{a}")));
                out.row(&header)?;
                for m in &s.model_raters {
                    let mut row = vec![
                        m.version.to_string(),
                        m.name.clone().unwrap_or_default(),
                        m.trainer.clone(),
                        m.items.to_string(),
                        m.mean_exact_f1.map(|v| v.to_string()).unwrap_or_default(),
                        m.gold.items.to_string(),
                        cell(&m.gold.exact_precision),
                        cell(&m.gold.exact_recall),
                        cell(&m.gold.exact_f1),
                        cell(&m.gold.overlap_f1),
                    ];
                    row.extend(m.with_annotators.iter().map(|w| cell(&w.exact_f1)));
                    out.row(&row)?;
                }
            }
            AgreementTable::RelationTypes => {
                let r = relations()?;
                out.row(&["type".into(), "relations".into(), "f1".into()])?;
                for t in &r.per_type {
                    out.row(&[t.label.clone(), t.relations.to_string(), cell(&t.f1)])?;
                }
            }
            AgreementTable::RelationPairs => {
                let r = relations()?;
                out.row(&[
                    "first".into(),
                    "second".into(),
                    "shared_items".into(),
                    "relations_first".into(),
                    "relations_second".into(),
                    "matched".into(),
                    "micro_f1".into(),
                    "macro_f1".into(),
                ])?;
                let name = |i: usize| r.annotators.get(i).cloned().unwrap_or_default();
                for p in &r.pairs {
                    out.row(&[
                        name(p.first),
                        name(p.second),
                        p.items.to_string(),
                        p.agreement.relations_a.to_string(),
                        p.agreement.relations_b.to_string(),
                        p.agreement.matched.to_string(),
                        cell(&p.agreement.micro_f1),
                        cell(&p.agreement.macro_f1),
                    ])?;
                }
            }
            AgreementTable::RelationModels => {
                let r = relations()?;
                let mut header = vec![
                    "version".to_string(),
                    "name".into(),
                    "trainer".into(),
                    "items".into(),
                    "mean_f1_with_annotators".into(),
                    "gold_items".into(),
                    "gold_precision".into(),
                    "gold_recall".into(),
                    "gold_f1".into(),
                ];
                header.extend(r.annotators.iter().map(|a| format!("f1_with_{a}")));
                out.row(&header)?;
                for m in &r.model_raters {
                    let mut row = vec![
                        m.version.to_string(),
                        m.name.clone().unwrap_or_default(),
                        m.trainer.clone(),
                        m.items.to_string(),
                        m.mean_f1.map(|v| v.to_string()).unwrap_or_default(),
                        m.gold.items.to_string(),
                        cell(&m.gold.precision),
                        cell(&m.gold.recall),
                        cell(&m.gold.f1),
                    ];
                    row.extend(m.with_annotators.iter().map(|w| cell(&w.f1)));
                    out.row(&row)?;
                }
            }
        }
        out.finish()
    }
}

impl RaterConfusion {
    /// The matrix as CSV: one row per category of the first annotator.
    pub fn csv(&self) -> Result<String, EngineError> {
        let mut header = vec![format!("{} \\ {}", self.first, self.second)];
        header.extend(self.categories.iter().cloned());
        let mut out = CsvTable::new();
        out.row(&header)?;
        for (i, row) in self.counts.iter().enumerate() {
            let mut line = vec![self.categories[i].clone()];
            line.extend(row.iter().map(|c| c.to_string()));
            out.row(&line)?;
        }
        out.finish()
    }
}
