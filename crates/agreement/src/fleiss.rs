//! Fleiss' κ (with the form for a varying number of ratings per item) and Conger's κ.

use crate::coefficient::{ChanceCorrected, UndefinedReason};
use crate::ratings::RatingsView;
use crate::tally::Tallies;
use crate::weights::Weighting;

impl Tallies {
    /// Fleiss' κ (Fleiss 1971), weighted by `weighting` (`Identity` for the classic κ).
    ///
    /// With missing ratings this is the generalisation in Gwet (2014) and `irrCAC`'s
    /// `fleiss.kappa.raw`: `p_a` is the mean over items with at least two ratings of the share
    /// of agreeing ordered rater pairs, and the category proportions `π_k` average each item's
    /// proportions `n_ik / r_i` over all items with at least one rating; `p_e = Σ w_kl π_k π_l`.
    /// Without missing ratings it equals Fleiss (1971) and, for two raters, Scott's π.
    /// Items with fewer than two ratings are excluded from `p_a` and counted in
    /// `items_excluded`.
    pub fn fleiss_kappa(&self, weighting: Weighting) -> ChanceCorrected {
        if let Some(r) = self.kappa_precondition() {
            return ChanceCorrected::undefined(r, self.items_pairable, self.items_excluded());
        }
        let w = weighting.matrix(&self.scores);
        let pa = self.pair_agreement(&w);
        let pi = self.proportions();
        let q = self.q;
        let mut pe = 0.0;
        for k in 0..q {
            for l in 0..q {
                pe += w[k * q + l] * pi[k] * pi[l];
            }
        }
        ChanceCorrected::from_parts(
            pa,
            pe,
            self.categories_used(),
            self.items_pairable,
            self.items_excluded(),
        )
    }

    /// Conger's (1980) κ, the multi-rater generalisation of Cohen's κ, as in `irrCAC`'s
    /// `conger.kappa.raw`: `p_a` as Fleiss' κ, and chance agreement from each rater's own
    /// category distribution, `p_e = Σ w_kl (p̄_k p̄_l − s²_kl / r)` where `s²_kl` is the
    /// covariance of the raters' proportions. Raters with no rating at all are left out.
    pub fn conger_kappa(&self, weighting: Weighting) -> ChanceCorrected {
        if let Some(r) = self.kappa_precondition() {
            return ChanceCorrected::undefined(r, self.items_pairable, self.items_excluded());
        }
        let q = self.q;
        let mut props: Vec<Vec<f64>> = Vec::new();
        for g in 0..self.raters {
            let row = &self.rater_counts[g * q..(g + 1) * q];
            let ng: u64 = row.iter().sum();
            if ng > 0 {
                props.push(row.iter().map(|&c| c as f64 / ng as f64).collect());
            }
        }
        let r = props.len();
        if r < 2 {
            return ChanceCorrected::undefined(
                UndefinedReason::SingleRater,
                self.items_pairable,
                self.items_excluded(),
            );
        }
        let rf = r as f64;
        let mean: Vec<f64> = (0..q)
            .map(|k| props.iter().map(|p| p[k]).sum::<f64>() / rf)
            .collect();
        let w = weighting.matrix(&self.scores);
        let mut pe = 0.0;
        for k in 0..q {
            for l in 0..q {
                let cross: f64 = props.iter().map(|p| p[k] * p[l]).sum();
                let s2 = (cross - rf * mean[k] * mean[l]) / (rf - 1.0);
                pe += w[k * q + l] * (mean[k] * mean[l] - s2 / rf);
            }
        }
        let pa = self.pair_agreement(&w);
        ChanceCorrected::from_parts(
            pa,
            pe,
            self.categories_used(),
            self.items_pairable,
            self.items_excluded(),
        )
    }

    /// The common reasons a kappa-family coefficient is undefined.
    pub(crate) fn kappa_precondition(&self) -> Option<UndefinedReason> {
        if self.active_raters() < 2 {
            Some(UndefinedReason::SingleRater)
        } else if self.items_pairable == 0 {
            Some(UndefinedReason::NoPairableItems)
        } else {
            None
        }
    }
}

/// Fleiss' κ of a ratings matrix; see [`Tallies::fleiss_kappa`].
pub fn fleiss_kappa(view: &RatingsView<'_>, weighting: Weighting) -> ChanceCorrected {
    Tallies::build(view, false).fleiss_kappa(weighting)
}

/// Conger's κ of a ratings matrix; see [`Tallies::conger_kappa`].
pub fn conger_kappa(view: &RatingsView<'_>, weighting: Weighting) -> ChanceCorrected {
    Tallies::build(view, false).conger_kappa(weighting)
}
