//! Property tests: permutation invariance, perfect agreement, bounds, weighted = unweighted for
//! two categories, no NaN, streaming = batch.

use concord_agreement::{
    agreement_report, bootstrap, confusion_matrix, pairwise_matrix, BootstrapConfig,
    ChanceCorrected, Coefficient, CoefficientKind, Metric, PairCoefficient, Ratings, ReportOptions,
    Tallies, UndefinedReason, Weighting, MISSING,
};
use proptest::prelude::*;

const EPS: f64 = 1e-9;

/// A ratings matrix: (flat data, raters, categories).
fn matrix(
    max_items: usize,
    max_raters: usize,
    max_q: usize,
) -> impl Strategy<Value = (Vec<u32>, usize, usize)> {
    (1..=max_items, 2..=max_raters, 2..=max_q).prop_flat_map(|(items, raters, q)| {
        let cell = prop_oneof![1 => Just(MISSING), 4 => 0..q as u32];
        (
            proptest::collection::vec(cell, items * raters),
            Just(raters),
            Just(q),
        )
    })
}

/// Every chance-corrected and alpha coefficient of a matrix, flattened for comparison.
fn all_values(data: &[u32], raters: usize, q: usize) -> Vec<Coefficient> {
    let r = Ratings::from_flat(data.to_vec(), raters, q).expect("valid");
    let view = r.view();
    let t = Tallies::build(&view, true);
    let mut out = Vec::new();
    for w in Weighting::ALL {
        out.push(t.fleiss_kappa(w).coefficient);
        out.push(t.gwet_ac(w).coefficient);
        out.push(t.brennan_prediger(w).coefficient);
        out.push(t.conger_kappa(w).coefficient);
    }
    for m in [
        Metric::Nominal,
        Metric::Ordinal,
        Metric::Interval,
        Metric::Ratio,
    ] {
        out.push(t.krippendorff_alpha(m).coefficient);
    }
    let p = t.percent_agreement();
    out.extend([p.mean_pairwise, p.pairable, p.unanimous]);
    for l in t.per_label() {
        out.extend([l.fleiss_kappa, l.krippendorff_alpha, l.specific_agreement]);
    }
    out.push(
        pairwise_matrix(&view, PairCoefficient::CohenKappa(Weighting::Identity))
            .mean()
            .mean,
    );
    out
}

fn same(a: &[Coefficient], b: &[Coefficient]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Coefficient::Value(u), Coefficient::Value(v)) => (u - v).abs() <= EPS,
            (Coefficient::Undefined(r), Coefficient::Undefined(s)) => r == s,
            _ => false,
        })
}

fn permute_raters(data: &[u32], raters: usize, perm: &[usize]) -> Vec<u32> {
    data.chunks_exact(raters)
        .flat_map(|row| perm.iter().map(move |&g| row[g]))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn rater_permutation_invariance((data, raters, q) in matrix(25, 5, 5), seed in any::<u64>()) {
        let mut perm: Vec<usize> = (0..raters).collect();
        // Fisher–Yates with a simple LCG from the seed.
        let mut s = seed;
        for i in (1..raters).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let j = (s >> 33) as usize % (i + 1);
            perm.swap(i, j);
        }
        let permuted = permute_raters(&data, raters, &perm);
        prop_assert!(same(&all_values(&data, raters, q), &all_values(&permuted, raters, q)));
    }

    #[test]
    fn item_permutation_invariance((data, raters, q) in matrix(25, 5, 5)) {
        let mut rows: Vec<&[u32]> = data.chunks_exact(raters).collect();
        rows.reverse();
        let third = rows.len() / 3;
        rows.rotate_left(third);
        let permuted: Vec<u32> = rows.concat();
        prop_assert!(same(&all_values(&data, raters, q), &all_values(&permuted, raters, q)));
    }

    #[test]
    fn never_nan((data, raters, q) in matrix(12, 4, 4)) {
        for c in all_values(&data, raters, q) {
            if let Coefficient::Value(v) = c {
                prop_assert!(v.is_finite());
            }
        }
        let r = Ratings::from_flat(data, raters, q).expect("valid");
        let rep = agreement_report(&r.view(), &ReportOptions::default());
        let json = serde_json::to_string(&rep).expect("serializes");
        prop_assert!(!json.contains("NaN") && !json.contains("null"));
    }

    #[test]
    fn bounds((data, raters, q) in matrix(25, 5, 5)) {
        let r = Ratings::from_flat(data, raters, q).expect("valid");
        let view = r.view();
        let t = Tallies::build(&view, true);
        let p = t.percent_agreement();
        for v in [p.mean_pairwise, p.pairable, p.unanimous].iter().filter_map(Coefficient::value) {
            prop_assert!((-EPS..=1.0 + EPS).contains(&v));
        }
        let upper = |c: &ChanceCorrected| c.coefficient.value().is_none_or(|v| v <= 1.0 + EPS);
        for w in Weighting::ALL {
            prop_assert!(upper(&t.fleiss_kappa(w)));
            prop_assert!(upper(&t.brennan_prediger(w)));
            prop_assert!(upper(&t.conger_kappa(w)));
            let ac = t.gwet_ac(w);
            prop_assert!(upper(&ac));
            for part in [ac.observed_agreement, ac.chance_agreement] {
                prop_assert!((-EPS..=1.0 + EPS).contains(&part));
            }
        }
        for m in [Metric::Nominal, Metric::Ordinal, Metric::Interval, Metric::Ratio] {
            let a = t.krippendorff_alpha(m);
            prop_assert!(a.coefficient.value().is_none_or(|v| v <= 1.0 + EPS));
            prop_assert!(a.observed_disagreement >= -EPS && a.expected_disagreement >= -EPS);
        }
        let table = confusion_matrix(&view, 0, 1).expect("two raters");
        if let Some(k) = table.cohen_kappa(Weighting::Identity).coefficient.value() {
            prop_assert!((-1.0 - EPS..=1.0 + EPS).contains(&k));
        }
    }

    #[test]
    fn perfect_agreement_gives_one(items in proptest::collection::vec((0u32..4, 2usize..5), 2..20), raters in 2usize..6) {
        // Every rated item is unanimous; at least two categories occur (items 0 and 1 differ).
        let mut data = Vec::new();
        for (i, &(c, m)) in items.iter().enumerate() {
            let c = if i == 0 { 0 } else if i == 1 { 1 } else { c };
            for g in 0..raters {
                data.push(if g < m.min(raters) { c } else { MISSING });
            }
        }
        let r = Ratings::from_flat(data, raters, 4).expect("valid");
        let t = Tallies::build(&r.view(), true);
        for w in Weighting::ALL {
            prop_assert_eq!(t.fleiss_kappa(w).coefficient, Coefficient::Value(1.0));
            prop_assert_eq!(t.gwet_ac(w).coefficient, Coefficient::Value(1.0));
            prop_assert_eq!(t.brennan_prediger(w).coefficient, Coefficient::Value(1.0));
            prop_assert!((t.conger_kappa(w).coefficient.value().unwrap_or(0.0) - 1.0).abs() < EPS);
        }
        for m in [Metric::Nominal, Metric::Ordinal, Metric::Interval, Metric::Ratio] {
            prop_assert_eq!(t.krippendorff_alpha(m).coefficient, Coefficient::Value(1.0));
        }
        let p = t.percent_agreement();
        prop_assert_eq!(p.mean_pairwise, Coefficient::Value(1.0));
        prop_assert_eq!(p.unanimous, Coefficient::Value(1.0));
    }

    #[test]
    fn single_category_is_undefined(items in 1usize..15, raters in 2usize..5) {
        let r = Ratings::from_flat(vec![0; items * raters], raters, 1).expect("valid");
        let t = Tallies::build(&r.view(), false);
        prop_assert_eq!(t.fleiss_kappa(Weighting::Identity).coefficient, Coefficient::Undefined(UndefinedReason::SingleCategory));
        prop_assert_eq!(t.krippendorff_alpha(Metric::Nominal).coefficient, Coefficient::Undefined(UndefinedReason::SingleCategory));
        prop_assert_eq!(t.gwet_ac(Weighting::Identity).coefficient, Coefficient::Undefined(UndefinedReason::SingleCategory));
        prop_assert_eq!(t.percent_agreement().mean_pairwise, Coefficient::Value(1.0));
    }

    #[test]
    fn weighted_equals_unweighted_for_two_categories((data, raters, _q) in matrix(25, 5, 2)) {
        let r = Ratings::from_flat(data.iter().map(|&v| if v == MISSING { v } else { v % 2 }).collect(), raters, 2).expect("valid");
        let view = r.view();
        let t = Tallies::build(&view, true);
        let eq = |a: Coefficient, b: Coefficient| match (a, b) {
            (Coefficient::Value(x), Coefficient::Value(y)) => (x - y).abs() <= EPS,
            (x, y) => x == y,
        };
        for w in [Weighting::Linear, Weighting::Quadratic, Weighting::Ordinal, Weighting::Radical] {
            prop_assert!(eq(t.fleiss_kappa(w).coefficient, t.fleiss_kappa(Weighting::Identity).coefficient));
            prop_assert!(eq(t.gwet_ac(w).coefficient, t.gwet_ac(Weighting::Identity).coefficient));
            prop_assert!(eq(t.brennan_prediger(w).coefficient, t.brennan_prediger(Weighting::Identity).coefficient));
            prop_assert!(eq(t.conger_kappa(w).coefficient, t.conger_kappa(Weighting::Identity).coefficient));
            let table = confusion_matrix(&view, 0, 1).expect("two raters");
            prop_assert!(eq(table.cohen_kappa(w).coefficient, table.cohen_kappa(Weighting::Identity).coefficient));
        }
        let nominal = t.krippendorff_alpha(Metric::Nominal).coefficient;
        for m in [Metric::Ordinal, Metric::Interval, Metric::Weighted(Weighting::Quadratic)] {
            prop_assert!(eq(t.krippendorff_alpha(m).coefficient, nominal));
        }
    }

    #[test]
    fn cohen_is_symmetric_and_two_rater_fleiss_is_scott(pairs in proptest::collection::vec((0u32..4, 0u32..4), 1..40)) {
        let data: Vec<u32> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
        let swapped: Vec<u32> = pairs.iter().flat_map(|&(a, b)| [b, a]).collect();
        let r = Ratings::from_flat(data, 2, 4).expect("valid");
        let s = Ratings::from_flat(swapped, 2, 4).expect("valid");
        for w in Weighting::ALL {
            let a = confusion_matrix(&r.view(), 0, 1).expect("t").cohen_kappa(w).coefficient;
            let b = confusion_matrix(&s.view(), 0, 1).expect("t").cohen_kappa(w).coefficient;
            prop_assert!(same(&[a], &[b]));
            let scott = confusion_matrix(&r.view(), 0, 1).expect("t").scott_pi(w).coefficient;
            let fleiss = Tallies::build(&r.view(), false).fleiss_kappa(w).coefficient;
            prop_assert!(same(&[scott], &[fleiss]));
        }
    }

    #[test]
    fn bootstrap_is_reproducible((data, raters, q) in matrix(15, 4, 3), seed in any::<u64>()) {
        let r = Ratings::from_flat(data, raters, q).expect("valid");
        let kinds = [CoefficientKind::KrippendorffAlpha(Metric::Nominal), CoefficientKind::GwetAc(Weighting::Identity), CoefficientKind::MeanPairwise(PairCoefficient::CohenKappa(Weighting::Identity))];
        let cfg = BootstrapConfig { replicates: 20, confidence: 0.9, seed };
        let a = bootstrap(&r.view(), &kinds, &cfg).expect("valid config");
        let b = bootstrap(&r.view(), &kinds, &cfg).expect("valid config");
        prop_assert_eq!(&a, &b);
        for ci in &a {
            prop_assert_eq!(ci.replicates, 20);
            if let concord_agreement::Interval::Bounds { lower, upper } = ci.interval {
                prop_assert!(lower <= upper && lower.is_finite() && upper.is_finite());
            }
        }
    }

    #[test]
    fn per_label_equals_coefficients_on_dichotomised_data((data, raters, q) in matrix(25, 5, 5)) {
        let r = Ratings::from_flat(data.clone(), raters, q).expect("valid");
        let per = Tallies::build(&r.view(), false).per_label();
        for (k, label) in per.iter().enumerate() {
            let binary: Vec<u32> = data
                .iter()
                .map(|&v| if v == MISSING { v } else { u32::from(v as usize == k) })
                .collect();
            let b = Ratings::from_flat(binary, raters, 2).expect("valid");
            let t = Tallies::build(&b.view(), false);
            prop_assert!(same(&[label.fleiss_kappa], &[t.fleiss_kappa(Weighting::Identity).coefficient]));
            prop_assert!(same(&[label.krippendorff_alpha], &[t.krippendorff_alpha(Metric::Nominal).coefficient]));
        }
    }
}
