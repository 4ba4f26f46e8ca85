//! Result types shared by every coefficient: a value or a typed "undefined, because …".

use serde::{Deserialize, Serialize};

/// Why a coefficient has no value for the given data.
///
/// Coefficients in this crate never return NaN or infinity: where the formula would divide by
/// zero, the result is [`Coefficient::Undefined`] with one of these reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum UndefinedReason {
    /// Fewer than two raters (columns, or raters with at least one rating) take part.
    #[error("undefined because fewer than two raters take part")]
    SingleRater,
    /// The coefficient is defined for exactly two raters and the data has another number.
    #[error("undefined because this coefficient needs exactly two raters")]
    NotTwoRaters,
    /// No item has ratings from at least two raters, so no pair of ratings can be compared.
    #[error("undefined because no item has ratings from at least two raters")]
    NoPairableItems,
    /// Only one category occurs (or fewer than two are declared), so chance agreement is
    /// certain and the chance correction divides by zero.
    #[error("undefined because only one category occurs, so chance agreement is 1")]
    SingleCategory,
    /// Expected disagreement is zero (chance agreement is 1) although more than one category
    /// occurs, for example because the weights treat every pair of categories as agreeing.
    #[error("undefined because the expected disagreement is zero")]
    ZeroExpectedDisagreement,
    /// A rater compared with themself in a pairwise matrix.
    #[error("undefined because a rater is not compared with themself")]
    SameRater,
    /// No spans or units were given by either annotator.
    #[error("undefined because there are no spans or units to compare")]
    NoSpans,
    /// No relations were given by either annotator.
    #[error("undefined because there are no relations to compare")]
    NoRelations,
    /// Rater-pair contingency tables were not kept (tallies built without pairs, or the tables
    /// would exceed the memory limit for one pass).
    #[error(
        "undefined because the rater-pair tables were not kept (too many raters × categories)"
    )]
    PairTablesUnavailable,
    /// Every bootstrap replicate was itself undefined.
    #[error("undefined because no bootstrap replicate had a defined value")]
    NoDefinedReplicates,
}

/// A coefficient value, or the reason it is undefined for this data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Coefficient {
    /// A finite value.
    Value(f64),
    /// No value, with the reason.
    Undefined(UndefinedReason),
}

impl Coefficient {
    /// The value, if defined.
    pub fn value(&self) -> Option<f64> {
        match self {
            Coefficient::Value(v) => Some(*v),
            Coefficient::Undefined(_) => None,
        }
    }

    /// The reason, if undefined.
    pub fn undefined_reason(&self) -> Option<UndefinedReason> {
        match self {
            Coefficient::Value(_) => None,
            Coefficient::Undefined(r) => Some(*r),
        }
    }

    /// Whether the coefficient has a value.
    pub fn is_defined(&self) -> bool {
        matches!(self, Coefficient::Value(_))
    }

    /// Wraps a computed number: finite numbers become values, anything else becomes
    /// `Undefined(fallback)` so that NaN never escapes.
    pub(crate) fn finite_or(v: f64, fallback: UndefinedReason) -> Coefficient {
        if v.is_finite() {
            Coefficient::Value(v)
        } else {
            Coefficient::Undefined(fallback)
        }
    }
}

/// Tolerance under which `1 - chance agreement` (or an expected disagreement) counts as zero.
pub(crate) const DEGENERATE_EPS: f64 = 1e-12;

/// A chance-corrected agreement coefficient of the kappa family, `(p_a - p_e) / (1 - p_e)`,
/// with its parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChanceCorrected {
    /// The coefficient.
    pub coefficient: Coefficient,
    /// Observed (weighted) agreement `p_a`; 0 when no item is pairable.
    pub observed_agreement: f64,
    /// Chance (expected) agreement `p_e`; 0 when it cannot be computed.
    pub chance_agreement: f64,
    /// Items that entered the observed agreement (items with at least two ratings, or, for
    /// two-rater coefficients, items rated by both).
    pub items_used: usize,
    /// Items left out of the observed agreement because they have fewer than two ratings.
    pub items_excluded: usize,
}

impl ChanceCorrected {
    /// Builds the result from `p_a` and `p_e`; `categories_used` tells whether a degenerate
    /// `p_e = 1` is due to a single category.
    pub(crate) fn from_parts(
        pa: f64,
        pe: f64,
        categories_used: usize,
        items_used: usize,
        items_excluded: usize,
    ) -> ChanceCorrected {
        let coefficient = chance_correct(pa, pe, categories_used);
        ChanceCorrected {
            coefficient,
            observed_agreement: if pa.is_finite() { pa } else { 0.0 },
            chance_agreement: if pe.is_finite() { pe } else { 0.0 },
            items_used,
            items_excluded,
        }
    }

    /// An undefined result with zeroed parts.
    pub(crate) fn undefined(
        reason: UndefinedReason,
        items_used: usize,
        items_excluded: usize,
    ) -> ChanceCorrected {
        ChanceCorrected {
            coefficient: Coefficient::Undefined(reason),
            observed_agreement: 0.0,
            chance_agreement: 0.0,
            items_used,
            items_excluded,
        }
    }
}

/// `(pa - pe) / (1 - pe)`, or the reason it is undefined.
pub(crate) fn chance_correct(pa: f64, pe: f64, categories_used: usize) -> Coefficient {
    if !pa.is_finite() || !pe.is_finite() {
        return Coefficient::Undefined(UndefinedReason::NoPairableItems);
    }
    let denom = 1.0 - pe;
    if denom.abs() <= DEGENERATE_EPS {
        if categories_used < 2 {
            return Coefficient::Undefined(UndefinedReason::SingleCategory);
        }
        return Coefficient::Undefined(UndefinedReason::ZeroExpectedDisagreement);
    }
    Coefficient::finite_or((pa - pe) / denom, UndefinedReason::ZeroExpectedDisagreement)
}
