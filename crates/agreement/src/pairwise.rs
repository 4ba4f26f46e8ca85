//! Two raters: the contingency (confusion) table and the coefficients defined on it — Cohen's κ,
//! Scott's π, Gwet's AC1/AC2, Brennan–Prediger, Krippendorff's α — plus the matrix of a chosen
//! coefficient over every rater pair and its mean (Light's κ for Cohen's κ).

use serde::{Deserialize, Serialize};

use crate::coefficient::{ChanceCorrected, Coefficient, UndefinedReason};
use crate::error::InputError;
use crate::krippendorff::{alpha_from_coincidence, AlphaEstimate};
use crate::ratings::{RatingsView, MISSING};
use crate::tally::Tallies;
use crate::weights::{Metric, Weighting};

/// A `q × q` contingency table of two raters: `counts[k * q + l]` items that the first rater
/// put in category `k` and the second in `l` (rows: first rater, columns: second).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContingencyTable {
    q: usize,
    counts: Vec<u64>,
    scores: Vec<f64>,
    items_excluded: usize,
}

/// A coefficient that can be computed for any pair of raters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairCoefficient {
    /// Observed agreement `p_o`.
    PercentAgreement,
    /// Cohen's κ with the weighting.
    CohenKappa(Weighting),
    /// Scott's π with the weighting.
    ScottPi(Weighting),
    /// Gwet's AC1 (`Identity`) or AC2.
    GwetAc(Weighting),
    /// Brennan–Prediger.
    BrennanPrediger(Weighting),
    /// Krippendorff's α for two raters.
    KrippendorffAlpha(Metric),
}

impl ContingencyTable {
    /// A table from `q × q` row-major counts; scores default to ranks `1..=q`.
    pub fn new(counts: Vec<u64>) -> Result<Self, InputError> {
        let q = (counts.len() as f64).sqrt().round() as usize;
        if q * q != counts.len() {
            return Err(InputError::NotSquare { len: counts.len() });
        }
        Ok(ContingencyTable {
            q,
            counts,
            scores: (1..=q).map(|k| k as f64).collect(),
            items_excluded: 0,
        })
    }

    /// A table from nested rows (rows: first rater, columns: second).
    pub fn from_rows(rows: &[Vec<u64>]) -> Result<Self, InputError> {
        let q = rows.len();
        let mut counts = Vec::with_capacity(q * q);
        for row in rows {
            if row.len() != q {
                return Err(InputError::NotSquare {
                    len: rows.iter().map(Vec::len).sum(),
                });
            }
            counts.extend_from_slice(row);
        }
        ContingencyTable::new(counts)
    }

    /// Replaces the category scores used by weights and metrics.
    pub fn with_scores(mut self, scores: Vec<f64>) -> Result<Self, InputError> {
        if scores.len() != self.q {
            return Err(InputError::ScoresLength {
                categories: self.q,
                found: scores.len(),
            });
        }
        if let Some(k) = scores.iter().position(|s| !s.is_finite()) {
            return Err(InputError::NonFiniteScore(k));
        }
        self.scores = scores;
        Ok(self)
    }

    /// Number of categories.
    pub fn categories(&self) -> usize {
        self.q
    }

    /// The counts, row-major.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Items rated by both raters.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Items that one or both raters left unrated (when built from a ratings matrix).
    pub fn items_excluded(&self) -> usize {
        self.items_excluded
    }

    fn marginals(&self) -> (Vec<f64>, Vec<f64>, f64) {
        let q = self.q;
        let mut rows = vec![0.0; q];
        let mut cols = vec![0.0; q];
        if q > 0 {
            for (row_sum, counts) in rows.iter_mut().zip(self.counts.chunks_exact(q)) {
                for (col_sum, &c) in cols.iter_mut().zip(counts) {
                    *row_sum += c as f64;
                    *col_sum += c as f64;
                }
            }
        }
        let n = rows.iter().sum();
        (rows, cols, n)
    }

    fn used(&self) -> usize {
        let (rows, cols, _) = self.marginals();
        rows.iter()
            .zip(&cols)
            .filter(|(r, c)| **r + **c > 0.0)
            .count()
    }

    fn observed(&self, w: &[f64], n: f64) -> f64 {
        self.counts
            .iter()
            .zip(w)
            .map(|(&c, &wv)| c as f64 * wv)
            .sum::<f64>()
            / n
    }

    fn chance_corrected(
        &self,
        weighting: Weighting,
        pe_of: impl Fn(&[f64], &[f64], &[f64], f64) -> f64,
    ) -> ChanceCorrected {
        let (rows, cols, n) = self.marginals();
        let used = n as usize;
        if n == 0.0 {
            return ChanceCorrected::undefined(
                UndefinedReason::NoPairableItems,
                0,
                self.items_excluded,
            );
        }
        let w = weighting.matrix(&self.scores);
        let pa = self.observed(&w, n);
        let pe = pe_of(&w, &rows, &cols, n);
        ChanceCorrected::from_parts(pa, pe, self.used(), used, self.items_excluded)
    }

    /// Cohen's κ (1960) and weighted κ (1968): `p_e = Σ w_kl p_k· p_·l` from each rater's own
    /// marginals. Linear and quadratic weights on rank scores match scikit-learn and R `irr`.
    pub fn cohen_kappa(&self, weighting: Weighting) -> ChanceCorrected {
        let q = self.q;
        self.chance_corrected(weighting, |w, rows, cols, n| {
            let mut pe = 0.0;
            for k in 0..q {
                for l in 0..q {
                    pe += w[k * q + l] * rows[k] * cols[l];
                }
            }
            pe / (n * n)
        })
    }

    /// Scott's π (1955): chance agreement from the pooled marginals
    /// `π_k = (p_k· + p_·k) / 2`, `p_e = Σ w_kl π_k π_l`.
    pub fn scott_pi(&self, weighting: Weighting) -> ChanceCorrected {
        let q = self.q;
        self.chance_corrected(weighting, |w, rows, cols, n| {
            let pi: Vec<f64> = (0..q).map(|k| (rows[k] + cols[k]) / (2.0 * n)).collect();
            let mut pe = 0.0;
            for k in 0..q {
                for l in 0..q {
                    pe += w[k * q + l] * pi[k] * pi[l];
                }
            }
            pe
        })
    }

    /// Gwet's AC1/AC2 for two raters (`irrCAC` `gwet.ac1.table`):
    /// `p_e = T_w Σ π_k (1 − π_k) / (q (q − 1))` with pooled marginals.
    pub fn gwet_ac(&self, weighting: Weighting) -> ChanceCorrected {
        let q = self.q;
        if q < 2 {
            let (_, _, n) = self.marginals();
            return ChanceCorrected::undefined(
                if n == 0.0 {
                    UndefinedReason::NoPairableItems
                } else {
                    UndefinedReason::SingleCategory
                },
                n as usize,
                self.items_excluded,
            );
        }
        let qf = q as f64;
        self.chance_corrected(weighting, |w, rows, cols, n| {
            let tw: f64 = w.iter().sum();
            let spread: f64 = (0..q)
                .map(|k| {
                    let p = (rows[k] + cols[k]) / (2.0 * n);
                    p * (1.0 - p)
                })
                .sum();
            tw * spread / (qf * (qf - 1.0))
        })
    }

    /// Brennan–Prediger: `p_e = T_w / q²`.
    pub fn brennan_prediger(&self, weighting: Weighting) -> ChanceCorrected {
        let qf = self.q as f64;
        let (_, _, n) = self.marginals();
        if n == 0.0 {
            return ChanceCorrected::undefined(
                UndefinedReason::NoPairableItems,
                0,
                self.items_excluded,
            );
        }
        let w = weighting.matrix(&self.scores);
        let pa = self.observed(&w, n);
        let pe = w.iter().sum::<f64>() / (qf * qf);
        ChanceCorrected::from_parts(pa, pe, self.q, n as usize, self.items_excluded)
    }

    /// Krippendorff's α for the two raters: the coincidence matrix is `T + Tᵀ`.
    pub fn krippendorff_alpha(&self, metric: Metric) -> AlphaEstimate {
        let q = self.q;
        let mut o = vec![0.0; q * q];
        for k in 0..q {
            for l in 0..q {
                o[k * q + l] = (self.counts[k * q + l] + self.counts[l * q + k]) as f64;
            }
        }
        let n = self.total() as usize;
        alpha_from_coincidence(&o, &self.scores, metric, n, self.items_excluded)
    }

    /// Observed agreement `p_o`: the share of items on which the raters agree.
    pub fn percent_agreement(&self) -> Coefficient {
        let (_, _, n) = self.marginals();
        if n == 0.0 {
            return Coefficient::Undefined(UndefinedReason::NoPairableItems);
        }
        let agree: u64 = (0..self.q).map(|k| self.counts[k * self.q + k]).sum();
        Coefficient::finite_or(agree as f64 / n, UndefinedReason::NoPairableItems)
    }

    /// Any [`PairCoefficient`].
    pub fn coefficient(&self, which: PairCoefficient) -> Coefficient {
        match which {
            PairCoefficient::PercentAgreement => self.percent_agreement(),
            PairCoefficient::CohenKappa(w) => self.cohen_kappa(w).coefficient,
            PairCoefficient::ScottPi(w) => self.scott_pi(w).coefficient,
            PairCoefficient::GwetAc(w) => self.gwet_ac(w).coefficient,
            PairCoefficient::BrennanPrediger(w) => self.brennan_prediger(w).coefficient,
            PairCoefficient::KrippendorffAlpha(m) => self.krippendorff_alpha(m).coefficient,
        }
    }

    /// Cohen's κ of each category against the rest (the table collapsed to 2 × 2).
    pub fn per_category_kappa(&self) -> Vec<Coefficient> {
        let q = self.q;
        let (rows, cols, n) = self.marginals();
        (0..q)
            .map(|k| {
                let a = self.counts[k * q + k] as f64;
                let b = rows[k] - a;
                let c = cols[k] - a;
                let d = n - a - b - c;
                match ContingencyTable::new(vec![a as u64, b as u64, c as u64, d as u64]) {
                    Ok(t) => t.cohen_kappa(Weighting::Identity).coefficient,
                    Err(_) => Coefficient::Undefined(UndefinedReason::NoPairableItems),
                }
            })
            .collect()
    }
}

/// The confusion (contingency) table of raters `first` and `second` over the items both rated.
/// Items that either left unrated are counted in [`ContingencyTable::items_excluded`].
pub fn confusion_matrix(
    view: &RatingsView<'_>,
    first: usize,
    second: usize,
) -> Result<ContingencyTable, InputError> {
    let raters = view.raters();
    for r in [first, second] {
        if r >= raters {
            return Err(InputError::RaterOutOfRange { rater: r, raters });
        }
    }
    let q = view.categories();
    let mut counts = vec![0u64; q * q];
    let mut excluded = 0usize;
    for row in view.data().chunks_exact(raters) {
        let (a, b) = (row[first], row[second]);
        if a == MISSING || b == MISSING {
            excluded += 1;
            continue;
        }
        if let Some(c) = counts.get_mut(a as usize * q + b as usize) {
            *c += 1;
        }
    }
    Ok(ContingencyTable {
        q,
        counts,
        scores: view.scores(),
        items_excluded: excluded,
    })
}

/// A chosen coefficient for every pair of raters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairwiseMatrix {
    /// Number of raters.
    pub raters: usize,
    /// The coefficient computed.
    pub coefficient: PairCoefficient,
    /// `raters × raters`, row-major and symmetric for the symmetric coefficients; the diagonal
    /// is `Undefined(SameRater)`. Cohen's κ is symmetric too (transposing the table swaps the
    /// marginals only).
    pub values: Vec<Coefficient>,
    /// Items rated by both raters of each pair (`raters × raters`; the diagonal counts the
    /// rater's own rated items).
    pub shared_items: Vec<u64>,
}

impl PairwiseMatrix {
    /// The coefficient for raters `g` and `h`.
    pub fn get(&self, g: usize, h: usize) -> Option<Coefficient> {
        if g >= self.raters || h >= self.raters {
            return None;
        }
        self.values.get(g * self.raters + h).copied()
    }

    /// The mean of the defined off-diagonal values (each unordered pair once).
    pub fn mean(&self) -> MeanPairwise {
        let mut sum = 0.0;
        let mut defined = 0usize;
        let mut undefined = 0usize;
        for g in 0..self.raters {
            for h in g + 1..self.raters {
                match self.values.get(g * self.raters + h) {
                    Some(Coefficient::Value(v)) => {
                        sum += v;
                        defined += 1;
                    }
                    _ => undefined += 1,
                }
            }
        }
        let mean = if defined == 0 {
            Coefficient::Undefined(if self.raters < 2 {
                UndefinedReason::SingleRater
            } else {
                UndefinedReason::NoPairableItems
            })
        } else {
            Coefficient::finite_or(sum / defined as f64, UndefinedReason::NoPairableItems)
        };
        MeanPairwise {
            mean,
            pairs_defined: defined,
            pairs_undefined: undefined,
        }
    }
}

/// The mean of a pairwise coefficient over rater pairs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanPairwise {
    /// The mean over pairs with a defined value.
    pub mean: Coefficient,
    /// Pairs whose value is defined.
    pub pairs_defined: usize,
    /// Pairs left out because their value is undefined (for example no shared items).
    pub pairs_undefined: usize,
}

impl Tallies {
    /// The contingency table of raters `g` and `h`, if the tallies kept pair tables.
    pub fn pair_contingency(&self, g: usize, h: usize) -> Option<ContingencyTable> {
        let (a, b) = if g < h { (g, h) } else { (h, g) };
        let t = self.pair_table(a, b)?;
        let q = self.q;
        let mut counts = t.to_vec();
        if g > h {
            for k in 0..q {
                for l in 0..q {
                    counts[k * q + l] = t[l * q + k];
                }
            }
        }
        Some(ContingencyTable {
            q,
            counts,
            scores: self.scores.clone(),
            items_excluded: 0,
        })
    }
}

impl Tallies {
    /// The pairwise annotator matrix from the kept pair tables; `None` when the tallies were
    /// built without them (or they exceeded the memory limit).
    pub fn pairwise_matrix(&self, which: PairCoefficient) -> Option<PairwiseMatrix> {
        self.pair_tables.as_ref()?;
        let q = self.q;
        let diag: Vec<u64> = (0..self.raters)
            .map(|g| self.rater_counts[g * q..(g + 1) * q].iter().sum())
            .collect();
        Some(build_matrix(self.raters, diag, which, |g, h| {
            self.pair_contingency(g, h)
        }))
    }
}

fn build_matrix(
    r: usize,
    diag: Vec<u64>,
    which: PairCoefficient,
    table: impl Fn(usize, usize) -> Option<ContingencyTable>,
) -> PairwiseMatrix {
    let mut values = vec![Coefficient::Undefined(UndefinedReason::SameRater); r * r];
    let mut shared = vec![0u64; r * r];
    for g in 0..r {
        shared[g * r + g] = diag.get(g).copied().unwrap_or(0);
        for h in g + 1..r {
            let (v, n) = match table(g, h) {
                Some(t) => (t.coefficient(which), t.total()),
                None => (Coefficient::Undefined(UndefinedReason::NoPairableItems), 0),
            };
            // Every pair coefficient here is symmetric in the two raters.
            values[g * r + h] = v;
            values[h * r + g] = v;
            shared[g * r + h] = n;
            shared[h * r + g] = n;
        }
    }
    PairwiseMatrix {
        raters: r,
        coefficient: which,
        values,
        shared_items: shared,
    }
}

/// The pairwise annotator matrix: `which` for every pair of raters, from one pass that keeps
/// every pair's contingency table, or one pass per pair when those tables would be too large.
pub fn pairwise_matrix(view: &RatingsView<'_>, which: PairCoefficient) -> PairwiseMatrix {
    let tallies = Tallies::build(view, true);
    if let Some(m) = tallies.pairwise_matrix(which) {
        return m;
    }
    let q = tallies.q;
    let diag: Vec<u64> = (0..tallies.raters)
        .map(|g| tallies.rater_counts[g * q..(g + 1) * q].iter().sum())
        .collect();
    build_matrix(view.raters(), diag, which, |g, h| {
        confusion_matrix(view, g, h).ok()
    })
}

/// Mean of Cohen's κ over all rater pairs (Light's κ, as NLTK's multi-rater `kappa`), or of any
/// other pairwise coefficient.
pub fn mean_pairwise(view: &RatingsView<'_>, which: PairCoefficient) -> MeanPairwise {
    pairwise_matrix(view, which).mean()
}
