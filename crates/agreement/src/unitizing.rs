//! Krippendorff's unitizing α (α_U; Krippendorff 1995, 2004 p. 251–256) for raters who both
//! place units on a continuum and label them. Computed per category (units of other categories
//! count as gaps) and overall from the mean observed and expected disagreements, as in DKPro
//! Agreement's `KrippendorffAlphaUnitizingAgreement`. All sums are exact integers (`i128`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::coefficient::{Coefficient, UndefinedReason};
use crate::error::InputError;

/// A unit placed by a rater: `[offset, offset + length)` with a category.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Unit {
    /// Start position.
    pub offset: u64,
    /// Length (positive).
    pub length: u64,
    /// Rater index below the declared number of raters.
    pub rater: usize,
    /// Category label.
    pub category: String,
}

impl Unit {
    /// A unit.
    pub fn new(offset: u64, length: u64, rater: usize, category: impl Into<String>) -> Unit {
        Unit {
            offset,
            length,
            rater,
            category: category.into(),
        }
    }
}

/// α_U of one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryAlphaU {
    /// The category.
    pub category: String,
    /// `α_U = 1 − D_O / D_E` for this category.
    pub coefficient: Coefficient,
    /// Observed disagreement `D_O`.
    pub observed_disagreement: f64,
    /// Expected disagreement `D_E`.
    pub expected_disagreement: f64,
    /// Units of this category over all raters.
    pub units: usize,
}

/// Krippendorff's unitizing α.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitizingAlpha {
    /// `1 − mean D_O / mean D_E` over categories.
    pub coefficient: Coefficient,
    /// Mean observed disagreement over categories.
    pub observed_disagreement: f64,
    /// Mean expected disagreement over categories.
    pub expected_disagreement: f64,
    /// Per category, in label order.
    pub per_category: Vec<CategoryAlphaU>,
}

/// A stretch of one rater's continuum for one category: a unit or a gap.
#[derive(Debug, Clone, Copy)]
struct Segment {
    start: i128,
    end: i128,
    unit: bool,
}

/// Exact integer sum with an `f64` shadow in case of overflow.
#[derive(Debug, Clone, Copy)]
struct Sum {
    exact: Option<i128>,
    approx: f64,
}

impl Sum {
    fn zero() -> Sum {
        Sum {
            exact: Some(0),
            approx: 0.0,
        }
    }
    fn add(&mut self, exact: Option<i128>, approx: f64) {
        self.exact = match (self.exact, exact) {
            (Some(a), Some(b)) => a.checked_add(b),
            _ => None,
        };
        self.approx += approx;
    }
    fn get(&self) -> f64 {
        self.exact.map_or(self.approx, |v| v as f64)
    }
}

/// Krippendorff's α_U for units on the continuum `[begin, begin + length)` placed by `raters`
/// raters. Units of one rater and category must not overlap.
pub fn unitizing_alpha(
    begin: u64,
    length: u64,
    raters: usize,
    units: &[Unit],
) -> Result<UnitizingAlpha, InputError> {
    if length == 0 {
        return Err(InputError::EmptyContinuum);
    }
    let end = u128::from(begin) + u128::from(length);
    let mut by_category: BTreeMap<&str, Vec<Vec<(u64, u64)>>> = BTreeMap::new();
    for u in units {
        if u.length == 0 {
            return Err(InputError::EmptyUnit { start: u.offset });
        }
        if u.offset < begin || u128::from(u.offset) + u128::from(u.length) > end {
            return Err(InputError::UnitOutsideContinuum {
                offset: u.offset,
                length: u.length,
            });
        }
        if u.rater >= raters {
            return Err(InputError::RaterOutOfRange {
                rater: u.rater,
                raters,
            });
        }
        by_category
            .entry(u.category.as_str())
            .or_insert_with(|| vec![Vec::new(); raters])[u.rater]
            .push((u.offset, u.length));
    }
    let b = i128::from(begin);
    let l = i128::from(length);
    let mut per_category = Vec::with_capacity(by_category.len());
    for (category, mut per_rater) in by_category {
        let mut segments: Vec<Vec<Segment>> = Vec::with_capacity(raters);
        for (rater, list) in per_rater.iter_mut().enumerate() {
            list.sort_unstable();
            let mut segs = Vec::with_capacity(2 * list.len() + 1);
            let mut pos = b;
            for &(off, len) in list.iter() {
                let (s, e) = (i128::from(off), i128::from(off) + i128::from(len));
                if s < pos {
                    return Err(InputError::OverlappingUnits {
                        rater,
                        category: category.to_string(),
                        offset: off,
                    });
                }
                if s > pos {
                    segs.push(Segment {
                        start: pos,
                        end: s,
                        unit: false,
                    });
                }
                segs.push(Segment {
                    start: s,
                    end: e,
                    unit: true,
                });
                pos = e;
            }
            if pos < b + l {
                segs.push(Segment {
                    start: pos,
                    end: b + l,
                    unit: false,
                });
            }
            segments.push(segs);
        }
        let (d_o, d_e) = category_disagreements(&segments, l);
        let units_count = per_rater.iter().map(Vec::len).sum();
        per_category.push(CategoryAlphaU {
            category: category.to_string(),
            coefficient: alpha_u(d_o, d_e, raters),
            observed_disagreement: d_o.unwrap_or(0.0),
            expected_disagreement: d_e.unwrap_or(0.0),
            units: units_count,
        });
    }
    let c = per_category.len() as f64;
    let (d_o, d_e) = if per_category.is_empty() {
        (None, None)
    } else {
        (
            Some(
                per_category
                    .iter()
                    .map(|p| p.observed_disagreement)
                    .sum::<f64>()
                    / c,
            ),
            Some(
                per_category
                    .iter()
                    .map(|p| p.expected_disagreement)
                    .sum::<f64>()
                    / c,
            ),
        )
    };
    let coefficient = if per_category.is_empty() {
        Coefficient::Undefined(UndefinedReason::NoSpans)
    } else {
        alpha_u(d_o, d_e, raters)
    };
    Ok(UnitizingAlpha {
        coefficient,
        observed_disagreement: d_o.unwrap_or(0.0),
        expected_disagreement: d_e.unwrap_or(0.0),
        per_category,
    })
}

fn alpha_u(d_o: Option<f64>, d_e: Option<f64>, raters: usize) -> Coefficient {
    if raters < 2 {
        return Coefficient::Undefined(UndefinedReason::SingleRater);
    }
    match (d_o, d_e) {
        (Some(o), Some(e)) if e > 0.0 => {
            Coefficient::finite_or(1.0 - o / e, UndefinedReason::ZeroExpectedDisagreement)
        }
        _ => Coefficient::Undefined(UndefinedReason::ZeroExpectedDisagreement),
    }
}

/// `δ²` of two intersecting segments of different raters.
fn distance(g: &Segment, h: &Segment) -> i128 {
    match (g.unit, h.unit) {
        (true, true) => {
            let db = g.start - h.start;
            let de = g.end - h.end;
            db * db + de * de
        }
        (true, false) if g.start >= h.start && g.end <= h.end => {
            let len = g.end - g.start;
            len * len
        }
        (false, true) if h.start >= g.start && h.end <= g.end => {
            let len = h.end - h.start;
            len * len
        }
        _ => 0,
    }
}

/// `(D_O, D_E)` of one category from every rater's segmentation of the continuum.
fn category_disagreements(segments: &[Vec<Segment>], l: i128) -> (Option<f64>, Option<f64>) {
    let m = segments.len() as i128;
    if m < 2 {
        return (None, None);
    }
    // Observed: sum over rater pairs and intersecting segments.
    let mut observed = Sum::zero();
    for i in 0..segments.len() {
        for j in i + 1..segments.len() {
            let (a, c) = (&segments[i], &segments[j]);
            let (mut x, mut y) = (0usize, 0usize);
            while x < a.len() && y < c.len() {
                let d = distance(&a[x], &c[y]);
                observed.add(Some(d), d as f64);
                let (ea, ec) = (a[x].end, c[y].end);
                if ea <= ec {
                    x += 1;
                }
                if ec <= ea {
                    y += 1;
                }
            }
        }
    }
    let d_o = 2.0 * observed.get() / ((m * (m - 1)) as f64 * (l as f64) * (l as f64));

    // Expected.
    let mut unit_lengths: Vec<i128> = Vec::new();
    let mut gaps: Vec<i128> = Vec::new();
    for segs in segments {
        for s in segs {
            if s.unit {
                unit_lengths.push(s.end - s.start);
            } else {
                gaps.push(s.end - s.start);
            }
        }
    }
    gaps.sort_unstable();
    // suffix[k] = Σ gaps[k..]
    let mut suffix = vec![0i128; gaps.len() + 1];
    for k in (0..gaps.len()).rev() {
        suffix[k] = suffix[k + 1].saturating_add(gaps[k]);
    }
    let n_c = unit_lengths.len() as i128;
    let mut numerator = Sum::zero();
    let mut squared = Sum::zero();
    for &len in &unit_lengths {
        let lf = len as f64;
        let t1 = (n_c - 1)
            .checked_mul(len)
            .and_then(|v| v.checked_mul(len - 1))
            .and_then(|v| v.checked_mul(2 * len - 1))
            .map(|v| v / 3);
        let t1f = (n_c - 1) as f64 * lf * (lf - 1.0) * (2.0 * lf - 1.0) / 3.0;
        let k = gaps.partition_point(|&g| g < len);
        let count = (gaps.len() - k) as i128;
        let gsum = suffix[k] - count * (len - 1);
        let t2 = len.checked_mul(len).and_then(|v| v.checked_mul(gsum));
        let t2f = lf * lf * gsum as f64;
        let exact = match (t1, t2) {
            (Some(a), Some(b2)) => a.checked_add(b2),
            _ => None,
        };
        numerator.add(exact, t1f + t2f);
        squared.add(len.checked_mul(len - 1), lf * (lf - 1.0));
    }
    let ml = m * l;
    let den = (ml as f64) * ((ml - 1) as f64) - squared.get();
    let den_exact = ml
        .checked_mul(ml - 1)
        .zip(squared.exact)
        .map(|(a, s)| (a - s) as f64);
    let den = den_exact.unwrap_or(den);
    if den <= 0.0 {
        return (Some(d_o), None);
    }
    let d_e = 2.0 * numerator.get() / (l as f64 * den);
    (Some(d_o), Some(d_e))
}
