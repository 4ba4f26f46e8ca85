//! Percent agreement under its three common definitions.

use serde::{Deserialize, Serialize};

use crate::coefficient::{Coefficient, UndefinedReason};
use crate::ratings::RatingsView;
use crate::tally::Tallies;

/// Raw (not chance-corrected) agreement. With two raters and no missing ratings all three
/// numbers equal the observed agreement `p_o` of the two raters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PercentAgreement {
    /// Pairwise agreement averaged over items, Fleiss' `P̄` (the `p_a` of Fleiss' κ and Gwet's
    /// AC1 in `irrCAC`): for each item with at least two ratings the share of agreeing ordered
    /// rater pairs, averaged with every item weighted equally.
    pub mean_pairwise: Coefficient,
    /// Krippendorff's observed agreement `1 − D_o` (nominal): the share of agreeing pairable
    /// values, `Σ_c o_cc / n`, so items weigh by their number of ratings.
    pub pairable: Coefficient,
    /// The proportion of items (with at least two ratings) on which all ratings agree.
    pub unanimous: Coefficient,
    /// Items with at least two ratings.
    pub items_used: usize,
    /// Items with fewer than two ratings, left out of all three numbers.
    pub items_excluded: usize,
}

impl Tallies {
    /// Percent agreement under the three definitions of [`PercentAgreement`].
    pub fn percent_agreement(&self) -> PercentAgreement {
        let items_used = self.items_pairable;
        let items_excluded = self.items_excluded();
        if items_used == 0 {
            let u = Coefficient::Undefined(UndefinedReason::NoPairableItems);
            return PercentAgreement {
                mean_pairwise: u,
                pairable: u,
                unanimous: u,
                items_used,
                items_excluded,
            };
        }
        let q = self.q;
        let diag_share: f64 = (0..q).map(|k| self.pair_share[k * q + k]).sum();
        let diag_o: f64 = (0..q).map(|k| self.coincidence[k * q + k]).sum();
        let m = items_used as f64;
        let n = self.pairable_values as f64;
        PercentAgreement {
            mean_pairwise: Coefficient::finite_or(diag_share / m, UndefinedReason::NoPairableItems),
            pairable: Coefficient::finite_or(diag_o / n, UndefinedReason::NoPairableItems),
            unanimous: Coefficient::finite_or(
                self.items_unanimous as f64 / m,
                UndefinedReason::NoPairableItems,
            ),
            items_used,
            items_excluded,
        }
    }
}

/// Percent agreement of a ratings matrix; see [`PercentAgreement`].
pub fn percent_agreement(view: &RatingsView<'_>) -> PercentAgreement {
    Tallies::build(view, false).percent_agreement()
}
