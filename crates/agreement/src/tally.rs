//! One pass over the ratings matrix builds every sufficient statistic the coefficients need:
//! the Krippendorff coincidence matrix, the pair-agreement matrix of the kappa family, category
//! proportions, per-rater marginals and (optionally) the contingency table of every rater pair.
//! Each coefficient is then `O(categories²)` from these tallies.

use crate::ratings::{RatingsView, MISSING};

/// Largest number of cells (`pairs × categories²`) kept for all rater-pair contingency tables in
/// one pass; above it pair tables are built one pair at a time.
pub(crate) const PAIR_TABLE_CELL_LIMIT: usize = 1 << 24;

/// Sufficient statistics of a ratings matrix.
#[derive(Debug, Clone)]
pub struct Tallies {
    /// Number of categories `q`.
    pub(crate) q: usize,
    /// Number of rater columns.
    pub(crate) raters: usize,
    /// Items (rows) seen.
    pub(crate) items_total: usize,
    /// Items with at least one rating.
    pub(crate) items_rated: usize,
    /// Items with at least two ratings.
    pub(crate) items_pairable: usize,
    /// Pairable items whose ratings are all the same category.
    pub(crate) items_unanimous: usize,
    /// Ratings in pairable items, Krippendorff's `n`.
    pub(crate) pairable_values: u64,
    /// Σ over pairable items of `n_ik n_il − δ_kl n_ik` divided by `r_i − 1`: the coincidences.
    pub(crate) coincidence: Vec<f64>,
    /// The same pair counts divided by `r_i (r_i − 1)`.
    pub(crate) pair_share: Vec<f64>,
    /// Σ over rated items of `n_ik / r_i`.
    pub(crate) proportion_sum: Vec<f64>,
    /// Ratings per rater and category (`raters × q`).
    pub(crate) rater_counts: Vec<u64>,
    /// Σ over pairable items of `n_ik (n_ik − 1)`.
    pub(crate) specific_agree: Vec<u64>,
    /// Σ over pairable items of `n_ik (r_i − 1)`.
    pub(crate) specific_total: Vec<u64>,
    /// Contingency table of every rater pair `g < h` (`pairs × q × q`), when requested.
    pub(crate) pair_tables: Option<Vec<u64>>,
    /// Category scores (for weights and metrics).
    pub(crate) scores: Vec<f64>,
}

/// Largest `(raters + 1) × categories²` for which pair counts are kept per number of ratings
/// `r` as exact integers (converted once at the end); above it they are accumulated as floats.
const BY_R_CELL_LIMIT: usize = 1 << 20;

/// Largest number of distinct rating patterns `(categories + 1)^raters` for which items are first
/// counted per pattern (one array increment per item), then tallied once per distinct pattern.
const PATTERN_LIMIT: usize = 1 << 18;

#[derive(Debug, Clone)]
enum PairAccumulator {
    /// `(raters + 1) × q × q` integer pair counts `n_ik n_il − δ_kl n_ik`, by ratings per item.
    ByRatingCount(Vec<u64>),
    /// The coincidence and pair-share matrices directly.
    Float {
        coincidence: Vec<f64>,
        pair_share: Vec<f64>,
    },
}

/// Streaming builder for [`Tallies`]; rows can be added in any order, repeated, or added with a
/// multiplicity (the bootstrap and the pattern fast path do). Callers that tally growing subsets
/// (agreement over time) keep one builder and read [`TallyBuilder::tallies`] as they go.
#[derive(Debug, Clone)]
pub struct TallyBuilder {
    q: usize,
    raters: usize,
    scores: Vec<f64>,
    items_total: u64,
    items_unanimous: u64,
    /// Items by number of ratings `r` (`raters + 1`).
    items_by_r: Vec<u64>,
    /// Σ n_ik by `r` and category (`(raters + 1) × q`).
    cat_by_r: Vec<u64>,
    pairs: PairAccumulator,
    rater_counts: Vec<u64>,
    specific_agree: Vec<u64>,
    pair_tables: Option<Vec<u64>>,
    counts: Vec<u32>,
    touched: Vec<u32>,
}

impl TallyBuilder {
    /// An empty builder for `raters` columns over categories with these `scores` (one per
    /// category, as [`RatingsView::scores`]); `with_pairs` keeps rater-pair tables.
    pub fn new(raters: usize, scores: Vec<f64>, with_pairs: bool) -> TallyBuilder {
        TallyBuilder::with_limit(raters, scores, with_pairs, BY_R_CELL_LIMIT)
    }

    fn with_limit(
        raters: usize,
        scores: Vec<f64>,
        with_pairs: bool,
        by_r_limit: usize,
    ) -> TallyBuilder {
        let q = scores.len();
        let npairs = raters * raters.saturating_sub(1) / 2;
        let pair_tables = if with_pairs && npairs.saturating_mul(q * q) <= PAIR_TABLE_CELL_LIMIT {
            Some(vec![0u64; npairs * q * q])
        } else {
            None
        };
        let by_r_cells = (raters + 1).saturating_mul(q.saturating_mul(q));
        let pairs = if by_r_cells <= by_r_limit {
            PairAccumulator::ByRatingCount(vec![0; by_r_cells])
        } else {
            PairAccumulator::Float {
                coincidence: vec![0.0; q * q],
                pair_share: vec![0.0; q * q],
            }
        };
        TallyBuilder {
            q,
            raters,
            scores,
            items_total: 0,
            items_unanimous: 0,
            items_by_r: vec![0; raters + 1],
            cat_by_r: vec![0; (raters + 1) * q],
            pairs,
            rater_counts: vec![0; raters * q],
            specific_agree: vec![0; q],
            pair_tables,
            counts: vec![0; q],
            touched: Vec::with_capacity(raters.min(q)),
        }
    }

    /// Adds one item: one entry per rater, a category index or [`MISSING`] (other values are
    /// ignored).
    #[inline]
    pub fn add_row(&mut self, row: &[u32]) {
        self.add_row_times(row, 1);
    }

    /// Adds one item `m` times. `row` has one entry per rater, each a category index below `q`
    /// or [`MISSING`] (the caller has validated this; other values are ignored).
    pub(crate) fn add_row_times(&mut self, row: &[u32], m: u64) {
        let q = self.q;
        self.items_total += m;
        let mut r = 0usize;
        for (g, &c) in row.iter().enumerate() {
            if c == MISSING {
                continue;
            }
            let ci = c as usize;
            if let Some(slot) = self.counts.get_mut(ci) {
                if *slot == 0 {
                    self.touched.push(c);
                }
                *slot += 1;
                r += 1;
                if let Some(rc) = self.rater_counts.get_mut(g * q + ci) {
                    *rc += m;
                }
            }
        }
        if r == 0 {
            return;
        }
        self.items_by_r[r] += m;
        let cat_row = r * q;
        for &k in &self.touched {
            let k = k as usize;
            self.cat_by_r[cat_row + k] += u64::from(self.counts[k]) * m;
        }
        if r >= 2 {
            if self.touched.len() == 1 {
                self.items_unanimous += m;
            }
            let rr = (r * (r - 1)) as f64;
            for &k in &self.touched {
                let k = k as usize;
                let nk = u64::from(self.counts[k]);
                self.specific_agree[k] += nk * (nk - 1) * m;
                for &l in &self.touched {
                    let l = l as usize;
                    let nl = u64::from(self.counts[l]);
                    let p = if k == l { nk * (nk - 1) } else { nk * nl };
                    if p == 0 {
                        continue;
                    }
                    match &mut self.pairs {
                        PairAccumulator::ByRatingCount(v) => {
                            v[(r * q + k) * q + l] += p * m;
                        }
                        PairAccumulator::Float {
                            coincidence,
                            pair_share,
                        } => {
                            let pf = (p * m) as f64;
                            coincidence[k * q + l] += pf / (r as f64 - 1.0);
                            pair_share[k * q + l] += pf / rr;
                        }
                    }
                }
            }
            if let Some(tables) = self.pair_tables.as_mut() {
                let raters = row.len();
                let mut base = 0usize;
                for g in 0..raters {
                    let a = row[g];
                    if a != MISSING {
                        let a = a as usize;
                        for (j, &b) in row[g + 1..].iter().enumerate() {
                            if b != MISSING {
                                let idx = base + j * q * q + a * q + b as usize;
                                if let Some(cell) = tables.get_mut(idx) {
                                    *cell += m;
                                }
                            }
                        }
                    }
                    base += (raters - g - 1) * q * q;
                }
            }
        }
        for &k in &self.touched {
            self.counts[k as usize] = 0;
        }
        self.touched.clear();
    }

    /// Clears all counts for reuse (keeps the allocations).
    pub(crate) fn reset(&mut self) {
        self.items_total = 0;
        self.items_unanimous = 0;
        self.items_by_r.fill(0);
        self.cat_by_r.fill(0);
        match &mut self.pairs {
            PairAccumulator::ByRatingCount(v) => v.fill(0),
            PairAccumulator::Float {
                coincidence,
                pair_share,
            } => {
                coincidence.fill(0.0);
                pair_share.fill(0.0);
            }
        }
        self.rater_counts.fill(0);
        self.specific_agree.fill(0);
        if let Some(p) = self.pair_tables.as_mut() {
            p.fill(0);
        }
    }

    /// The tallies of the rows added so far.
    pub fn tallies(&self) -> Tallies {
        let q = self.q;
        let mut items_rated = 0u64;
        let mut items_pairable = 0u64;
        let mut pairable_values = 0u64;
        let mut proportion_sum = vec![0.0; q];
        let mut specific_total = vec![0u64; q];
        for r in 1..=self.raters {
            let n = self.items_by_r[r];
            if n == 0 {
                continue;
            }
            items_rated += n;
            let cats = &self.cat_by_r[r * q..(r + 1) * q];
            for k in 0..q {
                proportion_sum[k] += cats[k] as f64 / r as f64;
            }
            if r >= 2 {
                items_pairable += n;
                pairable_values += n * r as u64;
                for k in 0..q {
                    specific_total[k] += cats[k] * (r as u64 - 1);
                }
            }
        }
        let (coincidence, pair_share) = match &self.pairs {
            PairAccumulator::ByRatingCount(v) => {
                let mut o = vec![0.0; q * q];
                let mut a = vec![0.0; q * q];
                for r in 2..=self.raters {
                    if self.items_by_r[r] == 0 {
                        continue;
                    }
                    let c1 = r as f64 - 1.0;
                    let c2 = r as f64 * c1;
                    let block = &v[r * q * q..(r + 1) * q * q];
                    for (i, &p) in block.iter().enumerate() {
                        if p > 0 {
                            o[i] += p as f64 / c1;
                            a[i] += p as f64 / c2;
                        }
                    }
                }
                (o, a)
            }
            PairAccumulator::Float {
                coincidence,
                pair_share,
            } => (coincidence.clone(), pair_share.clone()),
        };
        Tallies {
            q,
            raters: self.raters,
            items_total: self.items_total as usize,
            items_rated: items_rated as usize,
            items_pairable: items_pairable as usize,
            items_unanimous: self.items_unanimous as usize,
            pairable_values,
            coincidence,
            pair_share,
            proportion_sum,
            rater_counts: self.rater_counts.clone(),
            specific_agree: self.specific_agree.clone(),
            specific_total,
            pair_tables: self.pair_tables.clone(),
            scores: self.scores.clone(),
        }
    }
}

/// Pattern encoding for the fast path: item rows as numbers in base `q + 1` (`q` for missing).
#[derive(Debug, Clone)]
pub(crate) struct Patterns {
    base: u64,
    raters: usize,
    size: usize,
}

impl Patterns {
    /// `Some` when `(q + 1)^raters` patterns fit in [`PATTERN_LIMIT`].
    pub(crate) fn new(raters: usize, q: usize) -> Option<Patterns> {
        let base = q as u64 + 1;
        let mut size: u64 = 1;
        for _ in 0..raters {
            size = size.checked_mul(base)?;
            if size > PATTERN_LIMIT as u64 {
                return None;
            }
        }
        Some(Patterns {
            base,
            raters,
            size: size as usize,
        })
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    #[inline]
    pub(crate) fn key(&self, row: &[u32]) -> usize {
        let missing = self.base - 1;
        let mut key = 0u64;
        for &v in row.iter().rev() {
            let digit = if v == MISSING {
                missing
            } else {
                u64::from(v).min(missing)
            };
            key = key * self.base + digit;
        }
        key as usize
    }

    pub(crate) fn decode(&self, mut key: usize, row: &mut [u32]) {
        let base = self.base as usize;
        for slot in row.iter_mut().take(self.raters) {
            let d = key % base;
            key /= base;
            *slot = if d == base - 1 { MISSING } else { d as u32 };
        }
    }

    /// Adds every pattern of `hist` with its count to `builder`.
    pub(crate) fn feed(&self, hist: &[u64], builder: &mut TallyBuilder) {
        let mut row = vec![MISSING; self.raters];
        for (key, &n) in hist.iter().enumerate() {
            if n > 0 {
                self.decode(key, &mut row);
                builder.add_row_times(&row, n);
            }
        }
    }
}

impl Tallies {
    /// Builds the tallies in one pass over the matrix. With `with_pairs`, the contingency table
    /// of every rater pair is kept too (when it fits in [`PAIR_TABLE_CELL_LIMIT`] cells).
    ///
    /// With few raters and categories (`(categories + 1)^raters ≤ 2^18`, e.g. 3 raters × 10
    /// categories) the pass only counts each distinct rating pattern; each pattern is then
    /// tallied once with its multiplicity.
    pub fn build(view: &RatingsView<'_>, with_pairs: bool) -> Tallies {
        let raters = view.raters();
        let mut b = TallyBuilder::new(raters, view.scores(), with_pairs);
        if raters == 0 {
            return b.tallies();
        }
        match Patterns::new(raters, view.categories()) {
            Some(p) if view.items() >= p.size() / 4 => {
                let mut hist = vec![0u64; p.size()];
                for row in view.data().chunks_exact(raters) {
                    if let Some(h) = hist.get_mut(p.key(row)) {
                        *h += 1;
                    }
                }
                p.feed(&hist, &mut b);
            }
            _ => {
                for row in view.data().chunks_exact(raters) {
                    b.add_row(row);
                }
            }
        }
        b.tallies()
    }

    /// Number of items (rows).
    pub fn items(&self) -> usize {
        self.items_total
    }

    /// Items with at least two ratings.
    pub fn items_pairable(&self) -> usize {
        self.items_pairable
    }

    /// Items with fewer than two ratings (excluded from observed agreement).
    pub fn items_excluded(&self) -> usize {
        self.items_total - self.items_pairable
    }

    /// Items with at least one rating.
    pub fn items_rated(&self) -> usize {
        self.items_rated
    }

    /// The Krippendorff coincidence matrix (`q × q`, row-major).
    pub fn coincidence(&self) -> &[f64] {
        &self.coincidence
    }

    /// Number of categories.
    pub fn categories(&self) -> usize {
        self.q
    }

    /// Category scores used by weights and metrics.
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// Number of rater columns.
    pub fn raters(&self) -> usize {
        self.raters
    }

    /// Number of ratings per rater and category (`raters × categories`, row-major).
    pub fn rater_counts(&self) -> &[u64] {
        &self.rater_counts
    }

    /// Raters with at least one rating.
    pub(crate) fn active_raters(&self) -> usize {
        (0..self.raters)
            .filter(|g| {
                self.rater_counts[g * self.q..(g + 1) * self.q]
                    .iter()
                    .any(|&c| c > 0)
            })
            .count()
    }

    /// Categories that occur in at least one rating.
    pub(crate) fn categories_used(&self) -> usize {
        (0..self.q)
            .filter(|&k| self.proportion_sum[k] > 0.0)
            .count()
    }

    /// Mean category proportions `π_k` over rated items (Fleiss/Gwet with missing data).
    pub(crate) fn proportions(&self) -> Vec<f64> {
        let n = self.items_rated as f64;
        self.proportion_sum
            .iter()
            .map(|&s| if n > 0.0 { s / n } else { 0.0 })
            .collect()
    }

    /// Weighted observed agreement of the kappa family: mean over pairable items of the share of
    /// agreeing (weighted) ordered rater pairs.
    pub(crate) fn pair_agreement(&self, w: &[f64]) -> f64 {
        if self.items_pairable == 0 {
            return 0.0;
        }
        let s: f64 = self.pair_share.iter().zip(w).map(|(a, b)| a * b).sum();
        s / self.items_pairable as f64
    }

    /// The contingency table of raters `g` and `h` if it was kept.
    pub(crate) fn pair_table(&self, g: usize, h: usize) -> Option<&[u64]> {
        let tables = self.pair_tables.as_ref()?;
        if g >= h || h >= self.raters {
            return None;
        }
        let idx = pair_index(self.raters, g, h);
        let qq = self.q * self.q;
        tables.get(idx * qq..(idx + 1) * qq)
    }
}

/// Index of the pair `g < h` among all `raters·(raters−1)/2` pairs in row order.
pub(crate) fn pair_index(raters: usize, g: usize, h: usize) -> usize {
    // Pairs before row g: Σ_{i<g} (raters - i - 1).
    g * (2 * raters - g - 1) / 2 + (h - g - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Xoshiro256;

    fn random(items: usize, raters: usize, q: u32, seed: u64) -> Vec<u32> {
        let mut rng = Xoshiro256::seed_from_u64(seed);
        (0..items * raters)
            .map(|_| {
                if rng.below(6) == 0 {
                    MISSING
                } else {
                    rng.below(u64::from(q)) as u32
                }
            })
            .collect()
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= 1e-9 * (1.0 + x.abs()))
    }

    fn assert_same(a: &Tallies, b: &Tallies) {
        assert_eq!(a.items_total, b.items_total);
        assert_eq!(a.items_rated, b.items_rated);
        assert_eq!(a.items_pairable, b.items_pairable);
        assert_eq!(a.items_unanimous, b.items_unanimous);
        assert_eq!(a.pairable_values, b.pairable_values);
        assert_eq!(a.rater_counts, b.rater_counts);
        assert_eq!(a.specific_agree, b.specific_agree);
        assert_eq!(a.specific_total, b.specific_total);
        assert_eq!(a.pair_tables, b.pair_tables);
        assert!(close(&a.coincidence, &b.coincidence));
        assert!(close(&a.pair_share, &b.pair_share));
        assert!(close(&a.proportion_sum, &b.proportion_sum));
    }

    #[test]
    fn pattern_path_equals_row_path_and_float_equals_integer() {
        for (items, raters, q, seed) in [(5000, 3, 4, 1), (400, 2, 3, 2), (3000, 4, 5, 3)] {
            let data = random(items, raters, q, seed);
            let view = RatingsView::new(&data, raters, q as usize).expect("valid");
            assert!(Patterns::new(raters, q as usize).is_some());
            let fast = Tallies::build(&view, true);
            let mut rows = TallyBuilder::new(raters, view.scores(), true);
            let mut float = TallyBuilder::with_limit(raters, view.scores(), true, 0);
            assert!(matches!(float.pairs, PairAccumulator::Float { .. }));
            for row in data.chunks_exact(raters) {
                rows.add_row(row);
                float.add_row(row);
            }
            assert_same(&fast, &rows.tallies());
            assert_same(&fast, &float.tallies());
        }
    }

    #[test]
    fn pair_index_enumerates_pairs_in_order() {
        let raters = 6;
        let mut k = 0;
        for g in 0..raters {
            for h in g + 1..raters {
                assert_eq!(pair_index(raters, g, h), k);
                k += 1;
            }
        }
    }

    #[test]
    fn pattern_keys_round_trip() {
        let p = Patterns::new(3, 10).expect("fits");
        let mut out = [0u32; 3];
        for row in [[0, MISSING, 9], [MISSING, MISSING, MISSING], [3, 2, 1]] {
            p.decode(p.key(&row), &mut out);
            assert_eq!(out, row);
        }
    }
}
