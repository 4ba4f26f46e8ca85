//! A project's agreement figures: the ratings matrix of its annotators (items as rows, one
//! column per annotator with at least one answer), every coefficient of `concord-agreement`,
//! bootstrap intervals, the annotator-pair matrices, per-annotator statistics, agreement per
//! day, and the confusion matrix of any two annotators. Reviewers and admins only: in a blind
//! project annotators must not learn each other's answers. The same figures as CSV tables are
//! in [`tables`]. Span projects add span agreement ([`spans`]); relations projects add
//! relation agreement between annotators and of model versions ([`relations`]).

mod rater_counts;
mod relations;
mod spans;
mod tables;

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use concord_agreement::{
    bootstrap, confusion_matrix, AgreementReport, BootstrapConfig, Coefficient, CoefficientKind,
    ConfidenceInterval, Metric, PairCoefficient, PairwiseMatrix, RatingsView, ReportOptions,
    Tallies, TallyBuilder, Weighting, MISSING,
};
use concord_domain::{AnnotationValue, GoldSource, ProjectId, Role, TaskKind, UserId};
use serde::{Deserialize, Serialize};

use crate::{Engine, EngineError, Principal};

pub use relations::RelationAgreementFigures;
pub use spans::{
    SpanAgreementFigures, SpanAnnotatorStats, SpanF1Means, SpanModelRater, SpanPairAgreement,
    SpanScore, SpanTypeAgreement, UnitizingFigures, MAX_UNITIZING_SPANS,
};
pub use tables::AgreementTable;

/// Bootstrap replicates for the dashboard's intervals (seeded: the same data gives the same
/// interval on every load).
const REPLICATES: usize = 1000;

/// The most distinct categories (labels, or label sets in multi-label projects) the agreement
/// figures are computed over: per-pair and per-category tables grow with the square of this, and
/// an annotator can submit any number of distinct label sets.
pub const MAX_AGREEMENT_CATEGORIES: usize = 256;

/// Each project's last agreement figures, keyed by the store's write generation of the project
/// when they were computed: a write to the project's answers, gold, items, members, labels or
/// models changes the generation, so stale figures are never served.
#[derive(Default)]
pub(crate) struct AgreementCache {
    entries: Mutex<HashMap<ProjectId, (u64, ProjectAgreement)>>,
    hits: std::sync::atomic::AtomicU64,
    computed: std::sync::atomic::AtomicU64,
}

/// How often the agreement figures were served from the cache and how often computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgreementCacheStats {
    pub hits: u64,
    pub computed: u64,
}

/// What a category of the ratings matrix is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CategoryDefinition {
    /// Single-label projects: a category is a label.
    Label,
    /// Multi-label projects: a category is the exact set of labels an annotator chose, so two
    /// annotators agree on an item only when they chose the same set.
    ExactLabelSet,
}

/// One annotator's work and agreement with the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnotatorStats {
    pub name: String,
    /// Items answered.
    pub items: u64,
    /// Mean time per item in milliseconds, over answers that report one.
    pub mean_time_ms: Option<f64>,
    /// Mean Cohen's κ with each other annotator (pairs with shared items).
    pub kappa_with_others: Coefficient,
    /// Share of shared items where this annotator agrees with another, over all pairs.
    pub percent_with_others: Coefficient,
    /// Gold questions (and items with imported gold) this annotator answered, and how many of
    /// those answers match the gold label.
    pub gold_answered: u64,
    pub gold_correct: u64,
}

/// Agreement of the items whose last answer came on one day (UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayAgreement {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Items with at least two answers completed that day.
    pub items: usize,
    pub alpha_nominal: Coefficient,
    pub percent_pairable: Coefficient,
    /// α over every item completed up to and including this day.
    pub alpha_cumulative: Coefficient,
}

/// Everything the agreement dashboard, `GET /api/v1/projects/{id}/agreement` and
/// `concord agreement PROJECT` show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectAgreement {
    /// Rater columns, in order (annotator names).
    pub annotators: Vec<String>,
    /// Categories, in order (label names, or label sets joined with `|`).
    pub categories: Vec<String>,
    pub category_definition: CategoryDefinition,
    /// Items in the project, and items with no answer at all (not in the matrix).
    pub project_items: u64,
    pub unannotated_items: u64,
    pub report: AgreementReport,
    /// 95% percentile-bootstrap intervals (1000 replicates, fixed seed) for Krippendorff's α
    /// (nominal), Fleiss' κ, Gwet's AC1 and the mean pairwise Cohen's κ.
    pub intervals: Vec<ConfidenceInterval>,
    /// Cohen's κ for every annotator pair.
    pub pairwise_kappa: PairwiseMatrix,
    /// Observed agreement for every annotator pair.
    pub pairwise_percent: PairwiseMatrix,
    pub annotator_stats: Vec<AnnotatorStats>,
    pub over_time: Vec<DayAgreement>,
    /// Each model version as one more rater, beside the humans.
    pub model_raters: Vec<ModelRater>,
    /// Span projects only: span F1, α_U and model versions as span raters. (The figures
    /// above compare item labels, which span answers do not have.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spans: Option<SpanAgreementFigures>,
    /// Relations projects only: relation F1 between annotators (per pair, per type, micro
    /// and macro) and model versions' suggested relations as raters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relations: Option<RelationAgreementFigures>,
}

/// A model version compared with the annotators as if it were one of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRater {
    pub version: u64,
    pub trainer: String,
    /// Annotated items the version has a prediction for.
    pub items: u64,
    /// Cohen's κ of the version with each annotator (in `annotators` order), over shared items.
    pub kappa_with_annotators: Vec<Coefficient>,
    /// Mean of the defined values above.
    pub mean_kappa: Option<f64>,
    /// Share of items with a strict human majority on which the version gives that label.
    pub agrees_with_majority: Option<f64>,
}

/// The contingency table of two annotators over the items both answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaterConfusion {
    pub first: String,
    pub second: String,
    pub categories: Vec<String>,
    /// `counts[a][b]`: items the first annotator put in category `a` and the second in `b`.
    pub counts: Vec<Vec<u64>>,
    /// Items that only one of the two answered.
    pub items_excluded: usize,
}

/// The project's answers as a ratings matrix.
struct Matrix {
    annotators: Vec<UserId>,
    names: Vec<String>,
    categories: Vec<String>,
    definition: CategoryDefinition,
    /// Row-major, `annotators.len()` columns, `MISSING` where an annotator gave no answer.
    data: Vec<u32>,
    /// Per row: the time of its last answer.
    last_ms: Vec<u64>,
    /// Per row: the item's seq.
    seqs: Vec<u64>,
    /// Per row: the item's gold category, if it is a gold question or has imported gold.
    gold: Vec<Option<u32>>,
    /// Per annotator: (answers, answers reporting a time, total reported time).
    work: Vec<(u64, u64, u64)>,
    project_items: u64,
}

fn category_name(task: TaskKind, value: &AnnotationValue) -> String {
    match task {
        TaskKind::Classification => value.labels.first().cloned().unwrap_or_default(),
        _ => {
            let mut labels = value.labels.clone();
            labels.sort();
            labels.join("|")
        }
    }
}

impl Engine {
    fn ratings_matrix(&self, project: ProjectId) -> Result<Matrix, EngineError> {
        let record = self.project_record(project)?;
        let task = record.spec.task;
        let definition = match task {
            TaskKind::Classification => CategoryDefinition::Label,
            _ => CategoryDefinition::ExactLabelSet,
        };
        let mut categories: Vec<String> = match definition {
            CategoryDefinition::Label => {
                record.spec.labels.iter().map(|l| l.name.clone()).collect()
            }
            CategoryDefinition::ExactLabelSet => Vec::new(),
        };
        let mut category_index: HashMap<String, u32> = categories
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), i as u32))
            .collect();
        let mut column: HashMap<UserId, usize> = HashMap::new();
        let mut annotators: Vec<UserId> = Vec::new();
        // (row, column, category), rows in item order.
        let mut cells: Vec<(u32, u32, u32)> = Vec::new();
        let mut last_ms = Vec::new();
        let mut seqs = Vec::new();
        let mut gold = Vec::new();
        let mut work: Vec<(u64, u64, u64)> = Vec::new();
        let mut project_items = 0u64;
        let questions: HashSet<u64> = self.store().gold_questions(project)?.into_iter().collect();
        let mut index_of = |name: String, categories: &mut Vec<String>| -> u32 {
            *category_index.entry(name.clone()).or_insert_with(|| {
                categories.push(name);
                (categories.len() - 1) as u32
            })
        };
        self.store()
            .for_each_item::<EngineError>(project, |seq, item, answers| {
                project_items += 1;
                if answers.is_empty() {
                    return Ok(());
                }
                let row = last_ms.len() as u32;
                let mut latest = 0;
                for (user, answer) in answers {
                    let col = *column.entry(user).or_insert_with(|| {
                        annotators.push(user);
                        work.push((0, 0, 0));
                        annotators.len() - 1
                    });
                    let category = index_of(category_name(task, &answer.value), &mut categories);
                    cells.push((row, col as u32, category));
                    latest = latest.max(answer.updated_ms);
                    let w = &mut work[col];
                    w.0 += 1;
                    if answer.time_spent_ms > 0 {
                        w.1 += 1;
                        w.2 += answer.time_spent_ms;
                    }
                }
                last_ms.push(latest);
                seqs.push(seq);
                // Accuracy is measured only against gold that does not come from these
                // annotators' own answers: gold questions and imported gold.
                let independent =
                    questions.contains(&seq) || item.gold_source() == Some(GoldSource::Import);
                gold.push(
                    item.gold
                        .as_ref()
                        .filter(|_| independent)
                        .map(|g| index_of(category_name(task, g), &mut categories)),
                );
                Ok(())
            })?;
        if categories.len() > MAX_AGREEMENT_CATEGORIES {
            return Err(EngineError::Invalid(format!(
                "agreement is computed over at most {MAX_AGREEMENT_CATEGORIES} distinct categories, and this project's answers have {}{}: merge or correct the answers, or export them and compute agreement on a coarser scale",
                categories.len(),
                match definition {
                    CategoryDefinition::Label => " labels",
                    CategoryDefinition::ExactLabelSet => " label sets (each distinct set of labels is one category)",
                }
            )));
        }
        let raters = annotators.len();
        let mut data = vec![MISSING; last_ms.len() * raters];
        for (row, col, category) in cells {
            data[row as usize * raters + col as usize] = category;
        }
        let mut names = Vec::with_capacity(raters);
        for user in &annotators {
            names.push(
                self.store()
                    .user(*user)?
                    .map(|u| u.name)
                    .unwrap_or_else(|| format!("user {}", user.0)),
            );
        }
        Ok(Matrix {
            annotators,
            names,
            categories,
            definition,
            data,
            last_ms,
            seqs,
            gold,
            work,
            project_items,
        })
    }

    /// Every agreement figure of a project (reviewers and admins).
    pub fn agreement(
        &self,
        actor: &Principal,
        project: ProjectId,
    ) -> Result<ProjectAgreement, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        use std::sync::atomic::Ordering::Relaxed;
        let cache = &self.inner.agreement_cache;
        // Read before computing: a write during the computation changes the generation, so
        // figures that may predate it are stored under the old one and never served again.
        let generation = self.store().project_generation(project);
        if let (Some(generation), Ok(entries)) = (generation, cache.entries.lock()) {
            if let Some((cached, figures)) = entries.get(&project) {
                if *cached == generation {
                    cache.hits.fetch_add(1, Relaxed);
                    return Ok(figures.clone());
                }
            }
        }
        let figures = self.compute_agreement(project)?;
        cache.computed.fetch_add(1, Relaxed);
        if let (Some(generation), Ok(mut entries)) = (generation, cache.entries.lock()) {
            entries.insert(project, (generation, figures.clone()));
        }
        Ok(figures)
    }

    /// How often [`Engine::agreement`] was served from its cache and how often computed.
    pub fn agreement_cache_stats(&self) -> AgreementCacheStats {
        use std::sync::atomic::Ordering::Relaxed;
        let cache = &self.inner.agreement_cache;
        AgreementCacheStats {
            hits: cache.hits.load(Relaxed),
            computed: cache.computed.load(Relaxed),
        }
    }

    fn compute_agreement(&self, project: ProjectId) -> Result<ProjectAgreement, EngineError> {
        let m = self.ratings_matrix(project)?;
        let raters = m.annotators.len();
        let q = m.categories.len().max(1);
        let view = RatingsView::new(&m.data, raters, q)
            .map_err(|e| EngineError::internal("ratings matrix", e))?;
        // One pass over the matrix serves the report and the pair matrices.
        let tallies = Tallies::build(&view, true);
        let report = tallies.report(&ReportOptions::default());
        let kinds = [
            CoefficientKind::KrippendorffAlpha(Metric::Nominal),
            CoefficientKind::FleissKappa(Weighting::Identity),
            CoefficientKind::GwetAc(Weighting::Identity),
            CoefficientKind::MeanPairwise(PairCoefficient::CohenKappa(Weighting::Identity)),
        ];
        let intervals = if view.items() == 0 {
            Vec::new()
        } else {
            bootstrap(
                &view,
                &kinds,
                &BootstrapConfig {
                    replicates: REPLICATES,
                    ..BootstrapConfig::default()
                },
            )
            .map_err(|e| EngineError::internal("bootstrap", e))?
        };
        let matrix = |which| {
            tallies.pairwise_matrix(which).unwrap_or(PairwiseMatrix {
                raters,
                coefficient: which,
                values: Vec::new(),
                shared_items: Vec::new(),
            })
        };
        let pairwise_kappa = matrix(PairCoefficient::CohenKappa(Weighting::Identity));
        let pairwise_percent = matrix(PairCoefficient::PercentAgreement);
        let percent_with_others = percent_with_others(&m.data, raters);
        let annotator_stats = (0..raters)
            .map(|g| {
                let (items, timed, total) = m.work[g];
                let (mut gold_answered, mut gold_correct) = (0, 0);
                for (row, gold) in m.gold.iter().enumerate() {
                    let mine = m.data[row * raters + g];
                    if let (Some(gold), true) = (gold, mine != MISSING) {
                        gold_answered += 1;
                        gold_correct += u64::from(*gold == mine);
                    }
                }
                AnnotatorStats {
                    name: m.names[g].clone(),
                    items,
                    mean_time_ms: (timed > 0).then(|| total as f64 / timed as f64),
                    kappa_with_others: mean_with_others(&pairwise_kappa, g),
                    percent_with_others: percent_with_others[g],
                    gold_answered,
                    gold_correct,
                }
            })
            .collect();
        let over_time = over_time(&view, &m.last_ms);
        let model_raters = self.model_raters(project, &m)?;
        let spec = self.project_record(project)?.spec;
        let spans = if spec.task.is_spans() {
            Some(self.span_agreement(project, &spec)?)
        } else {
            None
        };
        let relations = if spec.task.has_relations() {
            Some(self.relation_agreement(project, &spec)?)
        } else {
            None
        };
        Ok(ProjectAgreement {
            annotators: m.names,
            categories: m.categories,
            category_definition: m.definition,
            project_items: m.project_items,
            unannotated_items: m.project_items - m.last_ms.len() as u64,
            report,
            intervals,
            pairwise_kappa,
            pairwise_percent,
            annotator_stats,
            over_time,
            model_raters,
            spans,
            relations,
        })
    }

    /// Every model version as a rater: κ with each annotator and agreement with the majority.
    fn model_raters(&self, project: ProjectId, m: &Matrix) -> Result<Vec<ModelRater>, EngineError> {
        if m.definition != CategoryDefinition::Label {
            return Ok(Vec::new());
        }
        let raters = m.annotators.len();
        let q = m.categories.len().max(1);
        let mut out = Vec::new();
        for crate::models::VersionLabels {
            version,
            trainer,
            labels,
        } in self.version_labels(project, &m.seqs)?
        {
            let model: Vec<u32> = labels
                .iter()
                .map(|l| {
                    l.as_ref()
                        .and_then(|l| m.categories.iter().position(|c| c == l))
                        .map_or(MISSING, |c| c as u32)
                })
                .collect();
            let items = model.iter().filter(|&&c| c != MISSING).count() as u64;
            let mut kappas = Vec::with_capacity(raters);
            let mut pair = vec![MISSING; 2 * model.len()];
            for g in 0..raters {
                for (row, &c) in model.iter().enumerate() {
                    pair[2 * row] = c;
                    pair[2 * row + 1] = m.data[row * raters + g];
                }
                let kappa = RatingsView::new(&pair, 2, q)
                    .ok()
                    .and_then(|v| confusion_matrix(&v, 0, 1).ok())
                    .map(|t| t.cohen_kappa(Weighting::Identity).coefficient);
                kappas.push(kappa.unwrap_or(Coefficient::Undefined(
                    concord_agreement::UndefinedReason::NoPairableItems,
                )));
            }
            let defined: Vec<f64> = kappas.iter().filter_map(Coefficient::value).collect();
            let mean_kappa =
                (!defined.is_empty()).then(|| defined.iter().sum::<f64>() / defined.len() as f64);
            let (mut with_majority, mut agreeing) = (0u64, 0u64);
            for (row, &c) in model.iter().enumerate() {
                let mut counts = vec![0usize; q];
                let mut answered = 0;
                for g in 0..raters {
                    let v = m.data[row * raters + g];
                    if v != MISSING {
                        counts[v as usize] += 1;
                        answered += 1;
                    }
                }
                if let Some(top) = (0..q).find(|&k| 2 * counts[k] > answered) {
                    if c != MISSING {
                        with_majority += 1;
                        agreeing += u64::from(c as usize == top);
                    }
                }
            }
            out.push(ModelRater {
                version,
                trainer,
                items,
                kappa_with_annotators: kappas,
                mean_kappa,
                agrees_with_majority: (with_majority > 0)
                    .then(|| agreeing as f64 / with_majority as f64),
            });
        }
        Ok(out)
    }

    /// The confusion matrix of two annotators, by name (reviewers and admins).
    pub fn rater_confusion(
        &self,
        actor: &Principal,
        project: ProjectId,
        first: &str,
        second: &str,
    ) -> Result<RaterConfusion, EngineError> {
        self.authorize(actor, project, Role::Reviewer)?;
        let m = self.ratings_matrix(project)?;
        let column = |name: &str| {
            m.names.iter().position(|n| n == name).ok_or_else(|| {
                EngineError::NotFound(format!("annotator {name:?} with answers in this project"))
            })
        };
        let (a, b) = (column(first)?, column(second)?);
        let q = m.categories.len().max(1);
        let view = RatingsView::new(&m.data, m.annotators.len(), q)
            .map_err(|e| EngineError::internal("ratings matrix", e))?;
        let table = confusion_matrix(&view, a, b)
            .map_err(|e| EngineError::internal("confusion matrix", e))?;
        let counts = (0..m.categories.len())
            .map(|i| {
                (0..m.categories.len())
                    .map(|j| table.counts()[i * q + j])
                    .collect()
            })
            .collect();
        Ok(RaterConfusion {
            first: first.to_string(),
            second: second.to_string(),
            categories: m.categories,
            counts,
            items_excluded: table.items_excluded(),
        })
    }
}

impl ProjectAgreement {
    /// The headline coefficients with their intervals, in dashboard order.
    pub fn headline(&self) -> Vec<(&'static str, CoefficientKind, Coefficient)> {
        let r = &self.report;
        vec![
            (
                "Krippendorff's α (nominal)",
                CoefficientKind::KrippendorffAlpha(Metric::Nominal),
                r.alpha_nominal.coefficient,
            ),
            (
                "Cohen's κ (mean over annotator pairs)",
                CoefficientKind::MeanPairwise(PairCoefficient::CohenKappa(Weighting::Identity)),
                r.mean_cohen_kappa
                    .map(|m| m.mean)
                    .unwrap_or(Coefficient::Undefined(
                        concord_agreement::UndefinedReason::PairTablesUnavailable,
                    )),
            ),
            (
                "Fleiss' κ",
                CoefficientKind::FleissKappa(Weighting::Identity),
                r.fleiss_kappa.coefficient,
            ),
            (
                "Gwet's AC1",
                CoefficientKind::GwetAc(Weighting::Identity),
                r.gwet_ac1.coefficient,
            ),
            (
                "Brennan–Prediger",
                CoefficientKind::BrennanPrediger(Weighting::Identity),
                r.brennan_prediger.coefficient,
            ),
            (
                "Conger's κ",
                CoefficientKind::CongerKappa(Weighting::Identity),
                r.conger_kappa.coefficient,
            ),
            (
                "Percent agreement (mean over annotator pairs)",
                CoefficientKind::PercentMeanPairwise,
                r.percent.mean_pairwise,
            ),
            (
                "Percent agreement (agreeing pairs / all pairs)",
                CoefficientKind::PercentPairable,
                r.percent.pairable,
            ),
            (
                "Percent agreement (unanimous items)",
                CoefficientKind::PercentUnanimous,
                r.percent.unanimous,
            ),
        ]
    }

    /// The interval computed for `kind`, if any.
    pub fn interval(&self, kind: CoefficientKind) -> Option<(f64, f64)> {
        self.intervals
            .iter()
            .find(|i| i.kind == kind)
            .and_then(|i| match i.interval {
                concord_agreement::Interval::Bounds { lower, upper } => Some((lower, upper)),
                concord_agreement::Interval::Undefined(_) => None,
            })
    }
}

/// The mean of annotator `g`'s defined pair values.
fn mean_with_others(matrix: &PairwiseMatrix, g: usize) -> Coefficient {
    let values: Vec<f64> = (0..matrix.raters)
        .filter(|h| *h != g)
        .filter_map(|h| matrix.get(g, h).and_then(|c| c.value()))
        .collect();
    if values.is_empty() {
        Coefficient::Undefined(if matrix.raters < 2 {
            concord_agreement::UndefinedReason::SingleRater
        } else {
            concord_agreement::UndefinedReason::NoPairableItems
        })
    } else {
        Coefficient::Value(values.iter().sum::<f64>() / values.len() as f64)
    }
}

/// For each annotator, over the items they share with others: agreeing (annotator, other)
/// pairs / all such pairs. One pass over the rows.
fn percent_with_others(data: &[u32], raters: usize) -> Vec<Coefficient> {
    let (mut agree, mut pairs) = (vec![0u64; raters], vec![0u64; raters]);
    let mut same: HashMap<u32, u64> = HashMap::new();
    for row in data.chunks_exact(raters.max(1)) {
        same.clear();
        let mut present = 0u64;
        for c in row.iter().filter(|c| **c != MISSING) {
            *same.entry(*c).or_default() += 1;
            present += 1;
        }
        for (g, c) in row.iter().enumerate() {
            if *c != MISSING {
                pairs[g] += present - 1;
                agree[g] += same[c] - 1;
            }
        }
    }
    agree
        .iter()
        .zip(&pairs)
        .map(|(a, p)| {
            if *p == 0 {
                Coefficient::Undefined(concord_agreement::UndefinedReason::NoPairableItems)
            } else {
                Coefficient::Value(*a as f64 / *p as f64)
            }
        })
        .collect()
}

/// α and percent agreement of the items completed each day, and α up to that day.
fn over_time(view: &RatingsView<'_>, last_ms: &[u64]) -> Vec<DayAgreement> {
    let mut by_day: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
    for (row, ms) in last_ms.iter().enumerate() {
        if view.row(row).iter().filter(|c| **c != MISSING).count() >= 2 {
            by_day.entry(ms / 86_400_000).or_default().push(row);
        }
    }
    let mut cumulative = TallyBuilder::new(view.raters(), view.scores(), false);
    let mut out = Vec::new();
    for (day, rows) in by_day {
        let mut that_day = TallyBuilder::new(view.raters(), view.scores(), false);
        for row in &rows {
            that_day.add_row(view.row(*row));
            cumulative.add_row(view.row(*row));
        }
        let t = that_day.tallies();
        out.push(DayAgreement {
            day: civil_date(day),
            items: rows.len(),
            alpha_nominal: t.krippendorff_alpha(Metric::Nominal).coefficient,
            percent_pairable: t.percent_agreement().pairable,
            alpha_cumulative: cumulative
                .tallies()
                .krippendorff_alpha(Metric::Nominal)
                .coefficient,
        });
    }
    out
}

/// `YYYY-MM-DD` of a day count since 1970-01-01.
fn civil_date(days: u64) -> String {
    let (y, m, d) = concord_domain::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(19_723), "2024-01-01");
        assert_eq!(civil_date(20_787), "2026-11-30");
        assert_eq!(civil_date(11_016), "2000-02-29");
    }

    #[test]
    fn percent_with_others_counts_pairs_on_shared_items() {
        // Rater 0 agrees with 1 on item 0, disagrees with 1 and 2 on item 1.
        let data = [0, 0, MISSING, 0, 1, 1];
        assert_eq!(
            percent_with_others(&data, 3)[0],
            Coefficient::Value(1.0 / 3.0)
        );
        assert!(!percent_with_others(&[0, MISSING], 2)[0].is_defined());
    }
}
