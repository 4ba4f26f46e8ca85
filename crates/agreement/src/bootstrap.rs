//! Percentile bootstrap confidence intervals over items, seeded and reproducible.

use serde::{Deserialize, Serialize};

use crate::coefficient::{Coefficient, UndefinedReason};
use crate::error::InputError;
use crate::pairwise::PairCoefficient;
use crate::ratings::RatingsView;
use crate::rng::Xoshiro256;
use crate::tally::{Patterns, Tallies, TallyBuilder};
use crate::weights::{Metric, Weighting};

/// Any coefficient of a ratings matrix, for the bootstrap and summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoefficientKind {
    /// [`crate::PercentAgreement::mean_pairwise`].
    PercentMeanPairwise,
    /// [`crate::PercentAgreement::pairable`].
    PercentPairable,
    /// [`crate::PercentAgreement::unanimous`].
    PercentUnanimous,
    /// Fleiss' κ.
    FleissKappa(Weighting),
    /// Conger's κ.
    CongerKappa(Weighting),
    /// Gwet's AC1/AC2.
    GwetAc(Weighting),
    /// Brennan–Prediger.
    BrennanPrediger(Weighting),
    /// Krippendorff's α.
    KrippendorffAlpha(Metric),
    /// Cohen's κ; the matrix must have exactly two raters.
    CohenKappa(Weighting),
    /// Scott's π; the matrix must have exactly two raters.
    ScottPi(Weighting),
    /// The mean of a pairwise coefficient over rater pairs (Light's κ for Cohen's κ).
    MeanPairwise(PairCoefficient),
}

impl CoefficientKind {
    fn needs_pairs(self) -> bool {
        matches!(
            self,
            CoefficientKind::CohenKappa(_)
                | CoefficientKind::ScottPi(_)
                | CoefficientKind::MeanPairwise(_)
        )
    }
}

impl Tallies {
    /// Computes any [`CoefficientKind`]. Pairwise kinds (Cohen, Scott, mean pairwise) need
    /// tallies built `with_pairs`; without pair tables they are
    /// `Undefined(PairTablesUnavailable)`.
    pub fn coefficient(&self, kind: CoefficientKind) -> Coefficient {
        match kind {
            CoefficientKind::PercentMeanPairwise => self.percent_agreement().mean_pairwise,
            CoefficientKind::PercentPairable => self.percent_agreement().pairable,
            CoefficientKind::PercentUnanimous => self.percent_agreement().unanimous,
            CoefficientKind::FleissKappa(w) => self.fleiss_kappa(w).coefficient,
            CoefficientKind::CongerKappa(w) => self.conger_kappa(w).coefficient,
            CoefficientKind::GwetAc(w) => self.gwet_ac(w).coefficient,
            CoefficientKind::BrennanPrediger(w) => self.brennan_prediger(w).coefficient,
            CoefficientKind::KrippendorffAlpha(m) => self.krippendorff_alpha(m).coefficient,
            CoefficientKind::CohenKappa(w) => self.two_raters(|t| t.cohen_kappa(w).coefficient),
            CoefficientKind::ScottPi(w) => self.two_raters(|t| t.scott_pi(w).coefficient),
            CoefficientKind::MeanPairwise(p) => match self.pairwise_matrix(p) {
                Some(m) => m.mean().mean,
                None => Coefficient::Undefined(UndefinedReason::PairTablesUnavailable),
            },
        }
    }

    fn two_raters(&self, f: impl Fn(&crate::ContingencyTable) -> Coefficient) -> Coefficient {
        if self.raters != 2 {
            return Coefficient::Undefined(UndefinedReason::NotTwoRaters);
        }
        match self.pair_contingency(0, 1) {
            Some(t) => f(&t),
            None => Coefficient::Undefined(UndefinedReason::PairTablesUnavailable),
        }
    }
}

/// Bootstrap settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    /// Number of resamples (at least 1; 1000 or more for publication).
    pub replicates: usize,
    /// Two-sided confidence level in `(0, 1)`, e.g. 0.95.
    pub confidence: f64,
    /// PRNG seed: the same seed and data give the same interval.
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            replicates: 1000,
            confidence: 0.95,
            seed: 0x5EED_CA5E,
        }
    }
}

/// Lower and upper percentile bounds, or why there are none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    /// The bounds.
    Bounds {
        /// Lower bound.
        lower: f64,
        /// Upper bound.
        upper: f64,
    },
    /// No bounds, with the reason.
    Undefined(UndefinedReason),
}

/// A coefficient with its bootstrap confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ConfidenceInterval {
    /// Which coefficient.
    pub kind: CoefficientKind,
    /// The coefficient on the full data.
    pub estimate: Coefficient,
    /// Percentile interval of the defined replicates.
    pub interval: Interval,
    /// Confidence level.
    pub confidence: f64,
    /// Replicates drawn.
    pub replicates: usize,
    /// Replicates whose coefficient was undefined (left out of the percentiles).
    pub undefined_replicates: usize,
}

/// Percentile bootstrap over items: each replicate draws `items` rows with replacement (with
/// xoshiro256** seeded from `config.seed`), rebuilds the tallies in one pass and computes every
/// requested coefficient. Bounds are the `(1 ± confidence)/2` quantiles (linear interpolation).
pub fn bootstrap(
    view: &RatingsView<'_>,
    kinds: &[CoefficientKind],
    config: &BootstrapConfig,
) -> Result<Vec<ConfidenceInterval>, InputError> {
    if config.replicates == 0 {
        return Err(InputError::InvalidBootstrap(
            "replicates must be at least 1",
        ));
    }
    if !(config.confidence > 0.0 && config.confidence < 1.0) {
        return Err(InputError::InvalidBootstrap(
            "confidence must lie strictly between 0 and 1",
        ));
    }
    let with_pairs = kinds.iter().any(|k| k.needs_pairs());
    let full = Tallies::build(view, with_pairs);
    let estimates: Vec<Coefficient> = kinds.iter().map(|&k| full.coefficient(k)).collect();
    let items = view.items();
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(config.replicates); kinds.len()];
    let mut undefined = vec![0usize; kinds.len()];
    if items > 0 {
        let mut rng = Xoshiro256::seed_from_u64(config.seed);
        let mut builder = TallyBuilder::new(view.raters(), view.scores(), with_pairs);
        // Few raters and categories: resample pattern keys into a histogram instead of rows.
        let mut patterns = Patterns::new(view.raters(), view.categories())
            .filter(|p| items >= p.size() / 4)
            .map(|p| {
                let keys: Vec<u32> = (0..items).map(|i| p.key(view.row(i)) as u32).collect();
                let hist = vec![0u64; p.size()];
                (p, keys, hist)
            });
        for _ in 0..config.replicates {
            builder.reset();
            match patterns.as_mut() {
                Some((p, keys, hist)) => {
                    hist.fill(0);
                    for _ in 0..items {
                        let i = rng.below(items as u64) as usize;
                        if let Some(h) = keys.get(i).and_then(|&k| hist.get_mut(k as usize)) {
                            *h += 1;
                        }
                    }
                    p.feed(hist, &mut builder);
                }
                None => {
                    for _ in 0..items {
                        let i = rng.below(items as u64) as usize;
                        builder.add_row(view.row(i));
                    }
                }
            }
            let t = builder.tallies();
            for (j, &k) in kinds.iter().enumerate() {
                match t.coefficient(k) {
                    Coefficient::Value(v) => samples[j].push(v),
                    Coefficient::Undefined(_) => undefined[j] += 1,
                }
            }
        }
    } else {
        undefined.iter_mut().for_each(|u| *u = config.replicates);
    }
    let alpha = (1.0 - config.confidence) / 2.0;
    Ok(kinds
        .iter()
        .enumerate()
        .map(|(j, &kind)| {
            let s = &mut samples[j];
            s.sort_by(f64::total_cmp);
            let interval = match (quantile(s, alpha), quantile(s, 1.0 - alpha)) {
                (Some(lower), Some(upper)) => Interval::Bounds { lower, upper },
                _ => Interval::Undefined(UndefinedReason::NoDefinedReplicates),
            };
            ConfidenceInterval {
                kind,
                estimate: estimates[j],
                interval,
                confidence: config.confidence,
                replicates: config.replicates,
                undefined_replicates: undefined[j],
            }
        })
        .collect())
}

/// Type-7 quantile of sorted values.
fn quantile(sorted: &[f64], p: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(n - 1);
    let a = *sorted.get(lo)?;
    let b = *sorted.get(hi)?;
    Some(a + (h - lo as f64) * (b - a))
}
