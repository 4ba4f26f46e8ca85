//! Per-label (one-vs-rest) agreement: each category against all others.

use serde::{Deserialize, Serialize};

use crate::coefficient::{chance_correct, Coefficient, UndefinedReason};
use crate::ratings::RatingsView;
use crate::tally::Tallies;

/// Agreement on one category against the rest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LabelAgreement {
    /// Category index.
    pub category: usize,
    /// Ratings that use this category (all items).
    pub ratings: u64,
    /// Mean share of the category over rated items, `π_k`.
    pub prevalence: f64,
    /// Fleiss' κ of the data dichotomised into this category versus the rest (Fleiss 1971,
    /// eq. 9 without missing data; the missing-data form of [`Tallies::fleiss_kappa`] otherwise).
    pub fleiss_kappa: Coefficient,
    /// Krippendorff's nominal α of the dichotomised data (Krippendorff 1980's per-category α).
    pub krippendorff_alpha: Coefficient,
    /// Proportion of specific agreement: agreeing ordered pairs that involve the category over
    /// all ordered pairs that involve it, `Σ n_ik (n_ik − 1) / Σ n_ik (r_i − 1)`; for two raters
    /// `2a / (2a + b + c)`.
    pub specific_agreement: Coefficient,
}

impl Tallies {
    /// One-vs-rest agreement for every category.
    pub fn per_label(&self) -> Vec<LabelAgreement> {
        let q = self.q;
        let m = self.items_pairable as f64;
        let pi = self.proportions();
        let marg: Vec<f64> = (0..q)
            .map(|k| self.coincidence[k * q..(k + 1) * q].iter().sum())
            .collect();
        let n: f64 = marg.iter().sum();
        let no_pairs = self.items_pairable == 0 || self.active_raters() < 2;
        (0..q)
            .map(|k| {
                let ratings: u64 = (0..self.raters).map(|g| self.rater_counts[g * q + k]).sum();
                let fleiss_kappa = if no_pairs {
                    Coefficient::Undefined(
                        self.kappa_precondition()
                            .unwrap_or(UndefinedReason::NoPairableItems),
                    )
                } else {
                    let row: f64 = self.pair_share[k * q..(k + 1) * q].iter().sum();
                    let off = row - self.pair_share[k * q + k];
                    let pa = 1.0 - 2.0 * off / m;
                    let p = pi[k];
                    let pe = p * p + (1.0 - p) * (1.0 - p);
                    let used = if p > 0.0 && p < 1.0 { 2 } else { 1 };
                    chance_correct(pa, pe, used)
                };
                let nk = marg[k];
                let krippendorff_alpha = if no_pairs || n < 2.0 {
                    Coefficient::Undefined(UndefinedReason::NoPairableItems)
                } else if nk <= 0.0 || nk >= n {
                    Coefficient::Undefined(UndefinedReason::SingleCategory)
                } else {
                    let disagree = nk - self.coincidence[k * q + k];
                    Coefficient::finite_or(
                        1.0 - (n - 1.0) * disagree / (nk * (n - nk)),
                        UndefinedReason::SingleCategory,
                    )
                };
                let total = self.specific_total[k];
                let specific_agreement = if total == 0 {
                    Coefficient::Undefined(UndefinedReason::NoPairableItems)
                } else {
                    Coefficient::Value(self.specific_agree[k] as f64 / total as f64)
                };
                LabelAgreement {
                    category: k,
                    ratings,
                    prevalence: pi[k],
                    fleiss_kappa,
                    krippendorff_alpha,
                    specific_agreement,
                }
            })
            .collect()
    }
}

/// One-vs-rest agreement for every category of a ratings matrix.
pub fn per_label(view: &RatingsView<'_>) -> Vec<LabelAgreement> {
    Tallies::build(view, false).per_label()
}
