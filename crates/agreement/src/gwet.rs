//! Gwet's AC1 and AC2 and the Brennan–Prediger coefficient.

use crate::coefficient::{ChanceCorrected, UndefinedReason};
use crate::ratings::RatingsView;
use crate::tally::Tallies;
use crate::weights::Weighting;

impl Tallies {
    /// Gwet's agreement coefficient: AC1 with `Weighting::Identity`, AC2 with any other
    /// weighting (Gwet 2008, 2014; `irrCAC`'s `gwet.ac1.raw`).
    ///
    /// `p_a` as Fleiss' κ; `p_e = T_w Σ_k π_k (1 − π_k) / (q (q − 1))` where `T_w` is the sum of
    /// all weights and `q` the number of declared categories (unused ones included).
    /// Undefined with fewer than two declared categories.
    pub fn gwet_ac(&self, weighting: Weighting) -> ChanceCorrected {
        if let Some(r) = self.kappa_precondition() {
            return ChanceCorrected::undefined(r, self.items_pairable, self.items_excluded());
        }
        let q = self.q;
        if q < 2 {
            return ChanceCorrected::undefined(
                UndefinedReason::SingleCategory,
                self.items_pairable,
                self.items_excluded(),
            );
        }
        let w = weighting.matrix(&self.scores);
        let pa = self.pair_agreement(&w);
        let pi = self.proportions();
        let tw: f64 = w.iter().sum();
        let spread: f64 = pi.iter().map(|p| p * (1.0 - p)).sum();
        let qf = q as f64;
        let pe = tw * spread / (qf * (qf - 1.0));
        ChanceCorrected::from_parts(
            pa,
            pe,
            self.categories_used().max(2),
            self.items_pairable,
            self.items_excluded(),
        )
    }

    /// Brennan and Prediger's (1981) coefficient (Bennett's S, Randolph's free-marginal κ):
    /// chance agreement assumes uniform category use, `p_e = T_w / q²` (`1/q` unweighted),
    /// with `q` the number of declared categories.
    pub fn brennan_prediger(&self, weighting: Weighting) -> ChanceCorrected {
        if let Some(r) = self.kappa_precondition() {
            return ChanceCorrected::undefined(r, self.items_pairable, self.items_excluded());
        }
        let q = self.q;
        let w = weighting.matrix(&self.scores);
        let pa = self.pair_agreement(&w);
        let tw: f64 = w.iter().sum();
        let qf = q as f64;
        let pe = if q == 0 { 1.0 } else { tw / (qf * qf) };
        ChanceCorrected::from_parts(pa, pe, q, self.items_pairable, self.items_excluded())
    }
}

/// Gwet's AC1 (`Identity`) or AC2 of a ratings matrix; see [`Tallies::gwet_ac`].
pub fn gwet_ac(view: &RatingsView<'_>, weighting: Weighting) -> ChanceCorrected {
    Tallies::build(view, false).gwet_ac(weighting)
}

/// Brennan–Prediger of a ratings matrix; see [`Tallies::brennan_prediger`].
pub fn brennan_prediger(view: &RatingsView<'_>, weighting: Weighting) -> ChanceCorrected {
    Tallies::build(view, false).brennan_prediger(weighting)
}
