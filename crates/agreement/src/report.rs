//! Every coefficient of a ratings matrix from one pass: what a dashboard or a command-line
//! summary shows.

use serde::{Deserialize, Serialize};

use crate::coefficient::ChanceCorrected;
use crate::krippendorff::AlphaEstimate;
use crate::pairwise::{MeanPairwise, PairCoefficient};
use crate::per_label::LabelAgreement;
use crate::percent::PercentAgreement;
use crate::ratings::RatingsView;
use crate::tally::Tallies;
use crate::weights::{Metric, Weighting};

/// Options for [`agreement_report`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReportOptions {
    /// Weighting for the weighted variants (AC2, weighted Fleiss/Conger/Cohen); `Identity`
    /// repeats the unweighted numbers.
    pub weighting: Weighting,
    /// Also compute the mean pairwise Cohen's κ (keeps every rater pair's table).
    pub pairwise: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            weighting: Weighting::Quadratic,
            pairwise: true,
        }
    }
}

/// All coefficients of one ratings matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgreementReport {
    /// Items (rows).
    pub items: usize,
    /// Rater columns.
    pub raters: usize,
    /// Declared categories.
    pub categories: usize,
    /// Items with at least two ratings.
    pub items_pairable: usize,
    /// Items with fewer than two ratings.
    pub items_excluded: usize,
    /// Percent agreement, three definitions.
    pub percent: PercentAgreement,
    /// Fleiss' κ (unweighted).
    pub fleiss_kappa: ChanceCorrected,
    /// Fleiss' κ with the chosen weighting.
    pub fleiss_kappa_weighted: ChanceCorrected,
    /// Conger's κ (unweighted).
    pub conger_kappa: ChanceCorrected,
    /// Gwet's AC1.
    pub gwet_ac1: ChanceCorrected,
    /// Gwet's AC2 with the chosen weighting.
    pub gwet_ac2: ChanceCorrected,
    /// Brennan–Prediger (unweighted).
    pub brennan_prediger: ChanceCorrected,
    /// Krippendorff's α, nominal.
    pub alpha_nominal: AlphaEstimate,
    /// Krippendorff's α, ordinal.
    pub alpha_ordinal: AlphaEstimate,
    /// Krippendorff's α, interval.
    pub alpha_interval: AlphaEstimate,
    /// Krippendorff's α, ratio.
    pub alpha_ratio: AlphaEstimate,
    /// Mean pairwise Cohen's κ (Light's κ), when requested.
    pub mean_cohen_kappa: Option<MeanPairwise>,
    /// One-vs-rest agreement per category.
    pub per_label: Vec<LabelAgreement>,
}

impl Tallies {
    /// Every coefficient from these tallies.
    pub fn report(&self, options: &ReportOptions) -> AgreementReport {
        let w = options.weighting;
        AgreementReport {
            items: self.items(),
            raters: self.raters,
            categories: self.q,
            items_pairable: self.items_pairable,
            items_excluded: self.items_excluded(),
            percent: self.percent_agreement(),
            fleiss_kappa: self.fleiss_kappa(Weighting::Identity),
            fleiss_kappa_weighted: self.fleiss_kappa(w),
            conger_kappa: self.conger_kappa(Weighting::Identity),
            gwet_ac1: self.gwet_ac(Weighting::Identity),
            gwet_ac2: self.gwet_ac(w),
            brennan_prediger: self.brennan_prediger(Weighting::Identity),
            alpha_nominal: self.krippendorff_alpha(Metric::Nominal),
            alpha_ordinal: self.krippendorff_alpha(Metric::Ordinal),
            alpha_interval: self.krippendorff_alpha(Metric::Interval),
            alpha_ratio: self.krippendorff_alpha(Metric::Ratio),
            mean_cohen_kappa: if options.pairwise {
                self.pairwise_matrix(PairCoefficient::CohenKappa(Weighting::Identity))
                    .map(|m| m.mean())
            } else {
                None
            },
            per_label: self.per_label(),
        }
    }
}

/// Every coefficient of a ratings matrix from one pass over it.
pub fn agreement_report(view: &RatingsView<'_>, options: &ReportOptions) -> AgreementReport {
    Tallies::build(view, options.pairwise).report(options)
}
