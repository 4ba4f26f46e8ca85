//! Undefined cases, exclusions, input errors, spans, unitizing and the bootstrap.

use concord_agreement::{
    agreement_report, bootstrap, confusion_matrix, fleiss_kappa, gwet_ac, krippendorff_alpha,
    pairwise_matrix, pairwise_span_f1, per_label, percent_agreement, span_f1, unitizing_alpha,
    BootstrapConfig, Coefficient, CoefficientKind, InputError, Interval, Metric, PairCoefficient,
    Ratings, RatingsView, ReportOptions, Span, SpanMatch, UndefinedReason, Unit, Weighting,
    MISSING,
};

const M: u32 = MISSING;

fn undefined(r: UndefinedReason) -> Coefficient {
    Coefficient::Undefined(r)
}

#[test]
fn single_rater_is_undefined() {
    let view = RatingsView::new(&[0, 1, 1, 0], 1, 2).expect("valid");
    assert_eq!(
        fleiss_kappa(&view, Weighting::Identity).coefficient,
        undefined(UndefinedReason::SingleRater)
    );
    let a = krippendorff_alpha(&view, Metric::Nominal);
    assert_eq!(a.coefficient, undefined(UndefinedReason::NoPairableItems));
    assert_eq!(a.items_excluded, 4);
}

#[test]
fn two_columns_but_only_one_rater_rates() {
    let view = RatingsView::new(&[0, M, 1, M, 1, M], 2, 2).expect("valid");
    assert_eq!(
        gwet_ac(&view, Weighting::Identity).coefficient,
        undefined(UndefinedReason::SingleRater)
    );
}

#[test]
fn empty_matrix_is_undefined_not_nan() {
    let view = RatingsView::new(&[], 3, 4).expect("valid");
    let rep = agreement_report(&view, &ReportOptions::default());
    assert_eq!(rep.items, 0);
    assert!(!rep.fleiss_kappa.coefficient.is_defined());
    assert!(!rep.alpha_interval.coefficient.is_defined());
    assert!(!rep.percent.mean_pairwise.is_defined());
    let none = RatingsView::new(&[], 0, 0).expect("valid");
    assert_eq!(none.items(), 0);
    assert!(!percent_agreement(&none).pairable.is_defined());
}

#[test]
fn items_with_fewer_than_two_ratings_are_excluded_and_counted() {
    // Items: pairable, single rating, no rating, pairable.
    let data = [0, 0, M, 1, M, M, M, M, M, 1, 1, 0];
    let view = RatingsView::new(&data, 3, 2).expect("valid");
    let k = fleiss_kappa(&view, Weighting::Identity);
    assert_eq!(k.items_used, 2);
    assert_eq!(k.items_excluded, 2);
    let a = krippendorff_alpha(&view, Metric::Nominal);
    assert_eq!(a.items_used, 2);
    assert_eq!(a.items_excluded, 2);
    assert_eq!(a.pairable_values, 5);
    let p = percent_agreement(&view);
    assert_eq!(p.items_excluded, 2);
    assert_eq!(p.mean_pairwise, Coefficient::Value((1.0 + 2.0 / 6.0) / 2.0));
    assert_eq!(p.unanimous, Coefficient::Value(0.5));
}

#[test]
fn no_pairable_items() {
    let data = [0, M, M, 1, 1, M];
    let view = RatingsView::new(&data, 2, 2).expect("valid");
    assert_eq!(
        fleiss_kappa(&view, Weighting::Identity).coefficient,
        undefined(UndefinedReason::NoPairableItems)
    );
    assert_eq!(
        krippendorff_alpha(&view, Metric::Interval).coefficient,
        undefined(UndefinedReason::NoPairableItems)
    );
    let t = confusion_matrix(&view, 0, 1).expect("two raters");
    assert_eq!(t.total(), 0);
    assert_eq!(t.items_excluded(), 3);
    assert_eq!(
        t.cohen_kappa(Weighting::Linear).coefficient,
        undefined(UndefinedReason::NoPairableItems)
    );
}

#[test]
fn undefined_reason_says_why() {
    let msg = UndefinedReason::SingleCategory.to_string();
    assert!(msg.starts_with("undefined because"), "{msg}");
    let json = serde_json::to_string(&undefined(UndefinedReason::NoPairableItems)).expect("json");
    assert_eq!(json, r#"{"undefined":"no_pairable_items"}"#);
    assert_eq!(
        serde_json::to_string(&Coefficient::Value(0.5)).expect("json"),
        r#"{"value":0.5}"#
    );
}

#[test]
fn per_label_for_a_category_nobody_used() {
    let data = [0, 0, 1, 1, 0, 1];
    let view = RatingsView::new(&data, 2, 3).expect("valid");
    let per = per_label(&view);
    assert_eq!(per.len(), 3);
    assert_eq!(per[2].ratings, 0);
    assert!(!per[2].fleiss_kappa.is_defined());
    assert_eq!(
        per[2].krippendorff_alpha,
        undefined(UndefinedReason::SingleCategory)
    );
    // Two raters: specific agreement is 2a / (2a + b + c).
    assert_eq!(per[0].specific_agreement, Coefficient::Value(2.0 / 3.0));
}

#[test]
fn input_errors() {
    assert!(matches!(
        RatingsView::new(&[0, 5], 2, 3),
        Err(InputError::CategoryOutOfRange { value: 5, .. })
    ));
    assert!(matches!(
        RatingsView::new(&[0, 1, 2], 2, 3),
        Err(InputError::LengthNotMultipleOfRaters { .. })
    ));
    assert!(matches!(
        Ratings::from_indices(&[vec![Some(0), None], vec![Some(1)]], 2),
        Err(InputError::RaggedRows { row: 1, .. })
    ));
    assert!(matches!(
        Ratings::from_values(&[vec![Some(f64::NAN), Some(1.0)]]),
        Err(InputError::NonFiniteValue { .. })
    ));
    assert!(matches!(
        Ratings::from_labels_with_categories(&[vec![Some("x"), Some("y")]], &["x"]),
        Err(InputError::UnknownLabel { .. })
    ));
    let r = Ratings::from_labels(&[vec![Some("b"), Some("a")]]).expect("labels");
    assert_eq!(r.labels(), ["a", "b"]);
    assert!(matches!(
        r.clone().with_scores(vec![1.0]),
        Err(InputError::ScoresLength { .. })
    ));
    assert!(confusion_matrix(&r.view(), 0, 2).is_err());
}

#[test]
fn labels_api_matches_indices_api() {
    let labels = vec![
        vec![Some("pos"), Some("pos"), Some("neg")],
        vec![Some("neg"), None, Some("neg")],
        vec![Some("neu"), Some("pos"), Some("neu")],
        vec![None, Some("neu"), Some("neu")],
    ];
    let by_label = Ratings::from_labels(&labels).expect("labels");
    // Sorted: neg=0, neu=1, pos=2.
    let by_index = Ratings::from_indices(
        &[
            vec![Some(2), Some(2), Some(0)],
            vec![Some(0), None, Some(0)],
            vec![Some(1), Some(2), Some(1)],
            vec![None, Some(1), Some(1)],
        ],
        3,
    )
    .expect("indices");
    assert_eq!(by_label.data(), by_index.data());
    assert_eq!(
        krippendorff_alpha(&by_label.view(), Metric::Nominal),
        krippendorff_alpha(&by_index.view(), Metric::Nominal)
    );
}

#[test]
fn pairwise_matrix_and_confusion() {
    let data = [0, 0, 1, 1, 1, M, 0, 1, 0, 2, 2, 2];
    let r = Ratings::from_flat(data.to_vec(), 3, 3).expect("valid");
    let m = pairwise_matrix(&r.view(), PairCoefficient::PercentAgreement);
    assert_eq!(m.get(0, 0), Some(undefined(UndefinedReason::SameRater)));
    assert_eq!(m.get(0, 1), m.get(1, 0));
    assert_eq!(m.shared_items[1], 4);
    assert_eq!(m.shared_items[3 + 2], 3);
    assert_eq!(m.get(1, 2), Some(Coefficient::Value(1.0 / 3.0)));
    let t = confusion_matrix(&r.view(), 0, 1).expect("table");
    assert_eq!(t.counts(), [1, 1, 0, 0, 1, 0, 0, 0, 1]);
    let mean = m.mean();
    assert_eq!(mean.pairs_defined, 3);
}

#[test]
fn span_exact_and_overlap_f1() {
    let a = vec![
        Span::new("d1", 0, 3, "PER"),
        Span::new("d1", 5, 8, "ORG"),
        Span::new("d1", 10, 11, "LOC"),
        Span::new("d2", 3, 5, "PER"),
    ];
    let b = vec![
        Span::new("d1", 0, 3, "PER"),
        Span::new("d1", 5, 7, "ORG"),
        Span::new("d1", 10, 11, "ORG"),
        Span::new("d2", 8, 10, "LOC"),
    ];
    let exact = span_f1(&a, &b, SpanMatch::Exact).expect("valid");
    assert_eq!(exact.micro_f1, Coefficient::Value(0.25));
    let overlap = span_f1(&a, &b, SpanMatch::Overlap).expect("valid");
    assert_eq!(overlap.micro_f1, Coefficient::Value(0.5));
    let per: Vec<(&str, Option<f64>)> = overlap
        .per_label
        .iter()
        .map(|l| (l.label.as_str(), l.f1.value()))
        .collect();
    assert_eq!(
        per,
        [
            ("LOC", Some(0.0)),
            ("ORG", Some(2.0 / 3.0)),
            ("PER", Some(2.0 / 3.0))
        ]
    );
    assert_eq!(overlap.macro_f1, Coefficient::Value(4.0 / 9.0));
    // Symmetric.
    let back = span_f1(&b, &a, SpanMatch::Overlap).expect("valid");
    assert_eq!(back.micro_f1, overlap.micro_f1);
    // Nested spans overlap in both directions.
    let wide = [Span::new("d", 0, 10, "PER")];
    let narrow = [Span::new("d", 0, 3, "PER")];
    assert_eq!(
        span_f1(&wide, &narrow, SpanMatch::Overlap)
            .expect("valid")
            .micro_f1,
        Coefficient::Value(1.0)
    );
    assert_eq!(
        span_f1(&[], &[], SpanMatch::Exact).expect("valid").micro_f1,
        undefined(UndefinedReason::NoSpans)
    );
    assert!(span_f1(&[Span::new("d", 4, 4, "X")], &[], SpanMatch::Exact).is_err());
    let pairs = pairwise_span_f1(&[a.clone(), b.clone(), a], SpanMatch::Exact).expect("valid");
    assert_eq!(pairs.len(), 3);
    assert_eq!(pairs[1].2.micro_f1, Coefficient::Value(1.0));
}

#[test]
fn unitizing_edge_cases() {
    let units = [Unit::new(0, 5, 0, "A"), Unit::new(0, 5, 1, "A")];
    let r = unitizing_alpha(0, 10, 2, &units).expect("valid");
    assert_eq!(r.coefficient, Coefficient::Value(1.0));
    let single = unitizing_alpha(0, 10, 1, &[Unit::new(0, 5, 0, "A")]).expect("valid");
    assert_eq!(single.coefficient, undefined(UndefinedReason::SingleRater));
    let none = unitizing_alpha(0, 10, 2, &[]).expect("valid");
    assert_eq!(none.coefficient, undefined(UndefinedReason::NoSpans));
    assert!(matches!(
        unitizing_alpha(
            0,
            10,
            2,
            &[Unit::new(0, 5, 0, "A"), Unit::new(3, 4, 0, "A")]
        ),
        Err(InputError::OverlappingUnits { .. })
    ));
    assert!(matches!(
        unitizing_alpha(0, 10, 2, &[Unit::new(8, 5, 0, "A")]),
        Err(InputError::UnitOutsideContinuum { .. })
    ));
    assert!(matches!(
        unitizing_alpha(0, 10, 2, &[Unit::new(1, 1, 2, "A")]),
        Err(InputError::RaterOutOfRange { .. })
    ));
    assert!(matches!(
        unitizing_alpha(0, 0, 2, &[]),
        Err(InputError::EmptyContinuum)
    ));
}

#[test]
fn bootstrap_interval_brackets_the_estimate() {
    // 200 items, 3 raters, strong agreement with some noise.
    let mut data = Vec::new();
    for i in 0..200u32 {
        let truth = i % 4;
        for g in 0..3u32 {
            data.push(if (i * 7 + g * 13) % 10 == 0 {
                (truth + 1) % 4
            } else {
                truth
            });
        }
    }
    let view = RatingsView::new(&data, 3, 4).expect("valid");
    let cfg = BootstrapConfig {
        replicates: 200,
        confidence: 0.95,
        seed: 42,
    };
    let kinds = [
        CoefficientKind::KrippendorffAlpha(Metric::Nominal),
        CoefficientKind::FleissKappa(Weighting::Identity),
        CoefficientKind::PercentMeanPairwise,
        CoefficientKind::CohenKappa(Weighting::Identity),
    ];
    let cis = bootstrap(&view, &kinds, &cfg).expect("valid");
    for ci in &cis[..3] {
        let est = ci.estimate.value().expect("defined");
        match ci.interval {
            Interval::Bounds { lower, upper } => {
                assert!(lower <= est && est <= upper, "{ci:?}");
                assert!(upper - lower < 0.2, "{ci:?}");
            }
            Interval::Undefined(r) => panic!("undefined interval: {r}"),
        }
    }
    // Cohen's κ needs exactly two raters.
    assert_eq!(cis[3].estimate, undefined(UndefinedReason::NotTwoRaters));
    assert_eq!(
        cis[3].interval,
        Interval::Undefined(UndefinedReason::NoDefinedReplicates)
    );
    assert_eq!(cis[3].undefined_replicates, 200);
    let other = bootstrap(&view, &kinds, &BootstrapConfig { seed: 43, ..cfg }).expect("valid");
    assert_ne!(cis[0].interval, other[0].interval);
    assert!(bootstrap(
        &view,
        &kinds,
        &BootstrapConfig {
            replicates: 0,
            ..cfg
        }
    )
    .is_err());
    assert!(bootstrap(
        &view,
        &kinds,
        &BootstrapConfig {
            confidence: 1.0,
            ..cfg
        }
    )
    .is_err());
}

#[test]
fn report_serializes_without_nan() {
    let data = [0, 0, 0, 0, 0, 0];
    let view = RatingsView::new(&data, 3, 2).expect("valid");
    let rep = agreement_report(&view, &ReportOptions::default());
    let json = serde_json::to_string(&rep).expect("json");
    assert!(!json.contains("NaN") && !json.contains("null"), "{json}");
    assert_eq!(
        rep.alpha_nominal.coefficient,
        undefined(UndefinedReason::SingleCategory)
    );
    // Brennan–Prediger is defined with two declared categories.
    assert_eq!(rep.brennan_prediger.coefficient, Coefficient::Value(1.0));
}

#[test]
fn interval_alpha_from_values_matches_coincidence_path() {
    // Krippendorff (2011) section E, 4 coders × 12 units; interval α = 0.849107142857.
    let rows: Vec<Vec<Option<f64>>> = vec![
        vec![Some(1.0), Some(1.0), None, Some(1.0)],
        vec![Some(2.0), Some(2.0), Some(3.0), Some(2.0)],
        vec![Some(3.0), Some(3.0), Some(3.0), Some(3.0)],
        vec![Some(3.0), Some(3.0), Some(3.0), Some(3.0)],
        vec![Some(2.0), Some(2.0), Some(2.0), Some(2.0)],
        vec![Some(1.0), Some(2.0), Some(3.0), Some(4.0)],
        vec![Some(4.0), Some(4.0), Some(4.0), Some(4.0)],
        vec![Some(1.0), Some(1.0), Some(2.0), Some(1.0)],
        vec![Some(2.0), Some(2.0), Some(2.0), Some(2.0)],
        vec![None, Some(5.0), Some(5.0), Some(5.0)],
        vec![None, None, Some(1.0), Some(1.0)],
        vec![None, None, Some(3.0), None],
    ];
    let flat: Vec<Option<f64>> = rows.concat();
    let direct = concord_agreement::krippendorff_alpha_interval_values(&flat, 4).expect("valid");
    let via = krippendorff_alpha(
        &Ratings::from_values(&rows).expect("valid").view(),
        Metric::Interval,
    );
    let (a, b) = (
        direct.coefficient.value().expect("defined"),
        via.coefficient.value().expect("defined"),
    );
    assert!((a - 0.8491071428571428).abs() < 1e-12, "{a}");
    assert!((a - b).abs() < 1e-12);
    assert_eq!(direct.items_excluded, 1);
    assert_eq!(direct.pairable_values, via.pairable_values);
    // Constant values: undefined, not NaN.
    let constant =
        concord_agreement::krippendorff_alpha_interval_values(&[Some(2.5); 6], 3).expect("valid");
    assert_eq!(
        constant.coefficient,
        undefined(UndefinedReason::SingleCategory)
    );
}
