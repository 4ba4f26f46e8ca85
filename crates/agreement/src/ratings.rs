//! Input: a ratings matrix with items as rows, raters as columns and missing values.
//!
//! The fast path is [`RatingsView`], a borrowed flat `&[u32]` of category indices (row-major,
//! `items × raters`) with [`MISSING`] for an absent rating. [`Ratings`] owns such a matrix and
//! builds it from nested rows of category indices, numbers or string labels.

use std::collections::BTreeMap;

use crate::error::InputError;

/// The sentinel for a missing rating in the flat form.
pub const MISSING: u32 = u32::MAX;

/// A borrowed ratings matrix: `data[item * raters + rater]` is a category index below
/// `categories`, or [`MISSING`].
///
/// Each category has a numeric score used by weighted coefficients and by the interval and
/// ratio metrics of Krippendorff's α; by default category `k` scores `k + 1` (its rank).
#[derive(Debug, Clone, Copy)]
pub struct RatingsView<'a> {
    data: &'a [u32],
    raters: usize,
    categories: usize,
    scores: Option<&'a [f64]>,
}

impl<'a> RatingsView<'a> {
    /// Wraps a flat row-major slice after checking its shape and that every value is a category
    /// index below `categories` or [`MISSING`] (one pass).
    pub fn new(data: &'a [u32], raters: usize, categories: usize) -> Result<Self, InputError> {
        if raters == 0 {
            if data.is_empty() {
                return Ok(RatingsView {
                    data,
                    raters,
                    categories,
                    scores: None,
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
        if categories >= MISSING as usize {
            return Err(InputError::TooManyCategories(categories));
        }
        let limit = categories as u32;
        if let Some(pos) = data.iter().position(|&v| v != MISSING && v >= limit) {
            return Err(InputError::CategoryOutOfRange {
                item: pos / raters,
                rater: pos % raters,
                value: data[pos],
                categories,
            });
        }
        Ok(RatingsView {
            data,
            raters,
            categories,
            scores: None,
        })
    }

    /// Uses the given numeric score for each category (one per category, finite).
    pub fn with_scores(mut self, scores: &'a [f64]) -> Result<Self, InputError> {
        check_scores(scores, self.categories)?;
        self.scores = Some(scores);
        Ok(self)
    }

    /// Number of items (rows).
    pub fn items(&self) -> usize {
        self.data.len().checked_div(self.raters).unwrap_or(0)
    }

    /// Number of raters (columns).
    pub fn raters(&self) -> usize {
        self.raters
    }

    /// Number of declared categories.
    pub fn categories(&self) -> usize {
        self.categories
    }

    /// The flat data.
    pub fn data(&self) -> &'a [u32] {
        self.data
    }

    /// The ratings of one item (one per rater, [`MISSING`] where absent).
    pub fn row(&self, item: usize) -> &'a [u32] {
        let start = item * self.raters;
        self.data.get(start..start + self.raters).unwrap_or(&[])
    }

    /// The score of every category: the explicit scores, or ranks `1..=categories`.
    pub fn scores(&self) -> Vec<f64> {
        match self.scores {
            Some(s) => s.to_vec(),
            None => (1..=self.categories).map(|k| k as f64).collect(),
        }
    }
}

fn check_scores(scores: &[f64], categories: usize) -> Result<(), InputError> {
    if scores.len() != categories {
        return Err(InputError::ScoresLength {
            categories,
            found: scores.len(),
        });
    }
    if let Some(k) = scores.iter().position(|s| !s.is_finite()) {
        return Err(InputError::NonFiniteScore(k));
    }
    Ok(())
}

/// An owned ratings matrix with category labels and scores.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratings {
    data: Vec<u32>,
    raters: usize,
    labels: Vec<String>,
    scores: Vec<f64>,
}

impl Ratings {
    /// Takes a flat row-major matrix of category indices (see [`RatingsView::new`]); labels are
    /// the indices as text and scores the ranks `1..=categories`.
    pub fn from_flat(data: Vec<u32>, raters: usize, categories: usize) -> Result<Self, InputError> {
        RatingsView::new(&data, raters, categories)?;
        Ok(Ratings {
            data,
            raters,
            labels: (0..categories).map(|k| k.to_string()).collect(),
            scores: (1..=categories).map(|k| k as f64).collect(),
        })
    }

    /// Builds from rows of optional category indices below `categories`.
    pub fn from_indices(rows: &[Vec<Option<u32>>], categories: usize) -> Result<Self, InputError> {
        let raters = check_rows(rows)?;
        let mut data = Vec::with_capacity(rows.len() * raters);
        for row in rows {
            data.extend(row.iter().map(|v| v.unwrap_or(MISSING)));
        }
        Ratings::from_flat(data, raters, categories)
    }

    /// Builds from rows of optional numbers (ordinal, interval or ratio data). The categories are
    /// the distinct values in ascending order and each category's score is its value, so
    /// weighted coefficients and interval/ratio α use the numeric distances.
    ///
    /// Coefficients keep `categories²` counts, so this suits ordinal scales and discrete
    /// interval data; for continuous values with very many distinct values use
    /// [`crate::krippendorff_alpha_interval_values`].
    pub fn from_values(rows: &[Vec<Option<f64>>]) -> Result<Self, InputError> {
        let mut distinct: Vec<f64> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            for (g, v) in row.iter().enumerate() {
                if let Some(x) = v {
                    if !x.is_finite() {
                        return Err(InputError::NonFiniteValue { item: i, rater: g });
                    }
                    distinct.push(normalize_zero(*x));
                }
            }
        }
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        Ratings::from_values_with_categories(rows, &distinct)
    }

    /// Builds from rows of optional numbers on a scale whose values are given in ascending
    /// order, so that values nobody chose still count: coefficients that depend on the number
    /// of categories (Gwet's AC1/AC2, Brennan–Prediger) and the ordinal weights, which count
    /// the categories between two values, change with them (irrCAC's `categories=`,
    /// krippendorff's `value_domain`). Each category's score is its value. A rating outside
    /// `categories` is an error.
    pub fn from_values_with_categories(
        rows: &[Vec<Option<f64>>],
        categories: &[f64],
    ) -> Result<Self, InputError> {
        let raters = check_rows(rows)?;
        if categories.len() >= MISSING as usize {
            return Err(InputError::TooManyCategories(categories.len()));
        }
        let categories: Vec<f64> = categories.iter().map(|&c| normalize_zero(c)).collect();
        if let Some(k) = categories.iter().position(|c| !c.is_finite()) {
            return Err(InputError::NonFiniteScore(k));
        }
        if let Some(pair) = categories.windows(2).find(|p| p[0] >= p[1]) {
            return Err(if pair[0] == pair[1] {
                InputError::DuplicateCategory(format!("{}", pair[0]))
            } else {
                InputError::CategoriesNotAscending {
                    before: pair[0],
                    after: pair[1],
                }
            });
        }
        let mut data = Vec::with_capacity(rows.len() * raters);
        for (i, row) in rows.iter().enumerate() {
            for (g, v) in row.iter().enumerate() {
                let code = match v {
                    Some(x) if !x.is_finite() => {
                        return Err(InputError::NonFiniteValue { item: i, rater: g })
                    }
                    Some(x) => {
                        let x = normalize_zero(*x);
                        match categories.binary_search_by(|p| p.total_cmp(&x)) {
                            Ok(k) => k as u32,
                            Err(_) => {
                                return Err(InputError::UnknownLabel {
                                    item: i,
                                    rater: g,
                                    label: format!("{x}"),
                                })
                            }
                        }
                    }
                    None => MISSING,
                };
                data.push(code);
            }
        }
        Ok(Ratings {
            data,
            raters,
            labels: categories.iter().map(|v| format!("{v}")).collect(),
            scores: categories,
        })
    }

    /// Builds from rows of optional string labels. The categories are the distinct labels in
    /// lexicographic order; scores are their ranks `1..=categories`.
    pub fn from_labels<S: AsRef<str>>(rows: &[Vec<Option<S>>]) -> Result<Self, InputError> {
        let mut set: BTreeMap<&str, ()> = BTreeMap::new();
        for row in rows {
            for s in row.iter().flatten() {
                set.insert(s.as_ref(), ());
            }
        }
        let categories: Vec<&str> = set.keys().copied().collect();
        Ratings::from_labels_with_categories(rows, &categories)
    }

    /// Builds from rows of optional string labels with the categories given in order (unused
    /// categories count for coefficients that depend on the number of categories, such as
    /// Brennan–Prediger and Gwet's AC1). A label outside `categories` is an error.
    pub fn from_labels_with_categories<S: AsRef<str>, C: AsRef<str>>(
        rows: &[Vec<Option<S>>],
        categories: &[C],
    ) -> Result<Self, InputError> {
        let raters = check_rows(rows)?;
        if categories.len() >= MISSING as usize {
            return Err(InputError::TooManyCategories(categories.len()));
        }
        let mut index: BTreeMap<&str, u32> = BTreeMap::new();
        for (k, c) in categories.iter().enumerate() {
            if index.insert(c.as_ref(), k as u32).is_some() {
                return Err(InputError::DuplicateCategory(c.as_ref().to_string()));
            }
        }
        let mut data = Vec::with_capacity(rows.len() * raters);
        for (i, row) in rows.iter().enumerate() {
            for (g, v) in row.iter().enumerate() {
                let code = match v {
                    Some(s) => match index.get(s.as_ref()) {
                        Some(&k) => k,
                        None => {
                            return Err(InputError::UnknownLabel {
                                item: i,
                                rater: g,
                                label: s.as_ref().to_string(),
                            })
                        }
                    },
                    None => MISSING,
                };
                data.push(code);
            }
        }
        Ok(Ratings {
            data,
            raters,
            labels: categories.iter().map(|c| c.as_ref().to_string()).collect(),
            scores: (1..=categories.len()).map(|k| k as f64).collect(),
        })
    }

    /// Replaces the category scores (one finite score per category).
    pub fn with_scores(mut self, scores: Vec<f64>) -> Result<Self, InputError> {
        check_scores(&scores, self.labels.len())?;
        self.scores = scores;
        Ok(self)
    }

    /// Scores categories by rank `1..=categories` instead of by value. Weighted Cohen's κ in
    /// scikit-learn and R `irr` uses ranks among the categories present.
    pub fn with_rank_scores(mut self) -> Self {
        self.scores = (1..=self.labels.len()).map(|k| k as f64).collect();
        self
    }

    /// The borrowed fast-path form.
    pub fn view(&self) -> RatingsView<'_> {
        RatingsView {
            data: &self.data,
            raters: self.raters,
            categories: self.labels.len(),
            scores: Some(&self.scores),
        }
    }

    /// Category labels, by index.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Category scores, by index.
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// Number of items.
    pub fn items(&self) -> usize {
        self.view().items()
    }

    /// Number of raters.
    pub fn raters(&self) -> usize {
        self.raters
    }

    /// Number of categories.
    pub fn categories(&self) -> usize {
        self.labels.len()
    }

    /// The flat data (`MISSING` for absent ratings).
    pub fn data(&self) -> &[u32] {
        &self.data
    }
}

fn normalize_zero(x: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x
    }
}

fn check_rows<T>(rows: &[Vec<T>]) -> Result<usize, InputError> {
    let raters = rows.first().map_or(0, Vec::len);
    for (i, row) in rows.iter().enumerate() {
        if row.len() != raters {
            return Err(InputError::RaggedRows {
                row: i,
                expected: raters,
                found: row.len(),
            });
        }
    }
    Ok(raters)
}
