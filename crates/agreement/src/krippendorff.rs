//! Krippendorff's α for nominal, ordinal, interval and ratio data, any number of raters and
//! missing values, computed from the coincidence matrix.

use serde::{Deserialize, Serialize};

use crate::coefficient::{Coefficient, UndefinedReason, DEGENERATE_EPS};
use crate::error::InputError;
use crate::ratings::RatingsView;
use crate::tally::Tallies;
use crate::weights::Metric;

/// Krippendorff's α with its parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AlphaEstimate {
    /// `α = 1 − D_o / D_e`.
    pub coefficient: Coefficient,
    /// Observed disagreement `D_o = Σ o_ck δ²_ck / n`.
    pub observed_disagreement: f64,
    /// Expected disagreement `D_e = Σ n_c n_k δ²_ck / (n (n − 1))`.
    pub expected_disagreement: f64,
    /// Pairable values `n` (ratings in items with at least two ratings).
    pub pairable_values: u64,
    /// Items with at least two ratings.
    pub items_used: usize,
    /// Items with fewer than two ratings, which α leaves out.
    pub items_excluded: usize,
}

impl Tallies {
    /// Krippendorff's α with the given metric (Krippendorff 2004, 2011): from the coincidence
    /// matrix `o_ck = Σ_u (n_uc n_uk − δ_ck n_uc) / (m_u − 1)` over units with `m_u ≥ 2` values,
    /// `α = 1 − (n − 1) Σ o_ck δ²_ck / Σ n_c n_k δ²_ck`. Matches the Python `krippendorff`
    /// package. Undefined without pairable values or when the expected disagreement is zero
    /// (a single category).
    pub fn krippendorff_alpha(&self, metric: Metric) -> AlphaEstimate {
        alpha_from_coincidence(
            &self.coincidence,
            &self.scores,
            metric,
            self.items_pairable,
            self.items_excluded(),
        )
    }
}

/// α from a `q × q` coincidence matrix.
pub(crate) fn alpha_from_coincidence(
    o: &[f64],
    scores: &[f64],
    metric: Metric,
    items_used: usize,
    items_excluded: usize,
) -> AlphaEstimate {
    let q = scores.len();
    let marg: Vec<f64> = (0..q).map(|k| o[k * q..(k + 1) * q].iter().sum()).collect();
    let n: f64 = marg.iter().sum();
    let pairable_values = n.round() as u64;
    let undefined = |reason| AlphaEstimate {
        coefficient: Coefficient::Undefined(reason),
        observed_disagreement: 0.0,
        expected_disagreement: 0.0,
        pairable_values,
        items_used,
        items_excluded,
    };
    if n < 2.0 || items_used == 0 {
        return undefined(UndefinedReason::NoPairableItems);
    }
    let d = metric.matrix(scores, &marg);
    let mut obs = 0.0;
    let mut exp = 0.0;
    let mut dmax: f64 = 0.0;
    for k in 0..q {
        if marg[k] == 0.0 {
            continue;
        }
        for l in 0..q {
            let dv = d[k * q + l];
            if dv != 0.0 {
                if marg[l] > 0.0 {
                    dmax = dmax.max(dv.abs());
                }
                obs += o[k * q + l] * dv;
                exp += marg[k] * marg[l] * dv;
            }
        }
    }
    let d_o = obs / n;
    let d_e = exp / (n * (n - 1.0));
    if !(d_e.is_finite() && d_o.is_finite()) {
        return undefined(UndefinedReason::ZeroExpectedDisagreement);
    }
    let used = marg.iter().filter(|&&m| m > 0.0).count();
    let coefficient = if exp <= DEGENERATE_EPS * dmax * n * n {
        if used < 2 {
            Coefficient::Undefined(UndefinedReason::SingleCategory)
        } else {
            Coefficient::Undefined(UndefinedReason::ZeroExpectedDisagreement)
        }
    } else {
        Coefficient::finite_or(
            1.0 - (n - 1.0) * obs / exp,
            UndefinedReason::ZeroExpectedDisagreement,
        )
    };
    AlphaEstimate {
        coefficient,
        observed_disagreement: d_o,
        expected_disagreement: d_e,
        pairable_values,
        items_used,
        items_excluded,
    }
}

/// Krippendorff's α of a ratings matrix; see [`Tallies::krippendorff_alpha`].
pub fn krippendorff_alpha(view: &RatingsView<'_>, metric: Metric) -> AlphaEstimate {
    Tallies::build(view, false).krippendorff_alpha(metric)
}

/// Krippendorff's interval α straight from numeric values, in `O(values)` time and `O(1)`
/// extra memory, for continuous data with too many distinct values for a coincidence matrix.
/// `data` is row-major `items × raters` with `None` for missing.
///
/// Uses `Σ_{i≠j} (v_i − v_j)² = 2 (m Σv² − (Σv)²)` within each unit for `D_o` and over all
/// pairable values for `D_e`, on values centred at their mean. Equal (up to rounding) to
/// [`Tallies::krippendorff_alpha`] with [`Metric::Interval`] on the same data.
pub fn krippendorff_alpha_interval_values(
    data: &[Option<f64>],
    raters: usize,
) -> Result<AlphaEstimate, InputError> {
    if raters == 0 {
        if data.is_empty() {
            return Ok(AlphaEstimate {
                coefficient: Coefficient::Undefined(UndefinedReason::NoPairableItems),
                observed_disagreement: 0.0,
                expected_disagreement: 0.0,
                pairable_values: 0,
                items_used: 0,
                items_excluded: 0,
            });
        }
        return Err(InputError::NoRaterColumns);
    }
    if !data.len().is_multiple_of(raters) {
        return Err(InputError::LengthNotMultipleOfRaters {
            len: data.len(),
            raters,
        });
    }
    if let Some(pos) = data.iter().position(|v| v.is_some_and(|x| !x.is_finite())) {
        return Err(InputError::NonFiniteValue {
            item: pos / raters,
            rater: pos % raters,
        });
    }
    // Pass 1: mean of pairable values.
    let (mut n, mut sum) = (0u64, 0.0);
    let mut items_used = 0usize;
    let mut items_total = 0usize;
    for row in data.chunks_exact(raters) {
        items_total += 1;
        let m = row.iter().flatten().count();
        if m >= 2 {
            items_used += 1;
            n += m as u64;
            sum += row.iter().flatten().sum::<f64>();
        }
    }
    let items_excluded = items_total - items_used;
    let undefined = |reason| AlphaEstimate {
        coefficient: Coefficient::Undefined(reason),
        observed_disagreement: 0.0,
        expected_disagreement: 0.0,
        pairable_values: n,
        items_used,
        items_excluded,
    };
    if n < 2 {
        return Ok(undefined(UndefinedReason::NoPairableItems));
    }
    let nf = n as f64;
    let mean = sum / nf;
    // Pass 2: centred sums.
    let (mut within, mut total_sq, mut total_sum) = (0.0, 0.0, 0.0);
    for row in data.chunks_exact(raters) {
        let m = row.iter().flatten().count();
        if m < 2 {
            continue;
        }
        let (mut s1, mut s2) = (0.0, 0.0);
        for x in row.iter().flatten() {
            let c = x - mean;
            s1 += c;
            s2 += c * c;
        }
        let mf = m as f64;
        within += 2.0 * (mf * s2 - s1 * s1) / (mf - 1.0);
        total_sq += s2;
        total_sum += s1;
    }
    let d_o = within / nf;
    let d_e = 2.0 * (nf * total_sq - total_sum * total_sum) / (nf * (nf - 1.0));
    if d_e.is_nan() || d_e <= DEGENERATE_EPS * total_sq.max(f64::MIN_POSITIVE) / nf {
        return Ok(undefined(UndefinedReason::SingleCategory));
    }
    Ok(AlphaEstimate {
        coefficient: Coefficient::finite_or(
            1.0 - d_o / d_e,
            UndefinedReason::ZeroExpectedDisagreement,
        ),
        observed_disagreement: d_o.max(0.0),
        expected_disagreement: d_e,
        pairable_values: n,
        items_used,
        items_excluded,
    })
}
