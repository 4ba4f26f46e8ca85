//! Every published example in `shared/agreement/published_cases.json`, matched to 1e-9 against
//! the values the reference libraries compute ("computed"). The file is part of the repository's
//! shared data: if it is missing this test fails.
//!
//! The test is data-driven: for each case it builds the input (ratings matrix, two-rater table,
//! units or spans) and walks the case's "computed" object; every key it knows maps to one of
//! this crate's functions, and one `check` helper compares. Keys that name a quantity this crate
//! deliberately does not compute (nervaluate's directional partial-match schemes) are listed as
//! skipped with the reason; every case must pass at least one check.

use std::collections::BTreeMap;
use std::path::PathBuf;

use concord_agreement::{
    confusion_matrix, mean_pairwise, span_f1, unitizing_alpha, AlphaEstimate, ChanceCorrected,
    Coefficient, ContingencyTable, Metric, PairCoefficient, Ratings, Span, SpanMatch, Tallies,
    Unit, Weighting,
};
use serde_json::Value;

const TOL: f64 = 1e-9;

#[derive(Default)]
struct Checker {
    passed: BTreeMap<String, usize>,
    failures: Vec<String>,
    skipped: Vec<String>,
}

impl Checker {
    /// The one comparison helper: `actual` must be a defined value within 1e-9 of `expected`.
    fn check(&mut self, case: &str, what: &str, actual: Coefficient, expected: &Value) {
        let Some(exp) = expected.as_f64() else {
            self.failures.push(format!(
                "{case}: {what}: expected value {expected} is not a number"
            ));
            return;
        };
        match actual {
            Coefficient::Value(v) if (v - exp).abs() <= TOL => {
                *self.passed.entry(case.to_string()).or_default() += 1;
            }
            other => self.failures.push(format!(
                "{case}: {what}: got {other:?}, expected {exp} (diff {:e})",
                other.value().map_or(f64::NAN, |v| (v - exp).abs())
            )),
        }
    }

    fn check_f(&mut self, case: &str, what: &str, actual: f64, expected: &Value) {
        self.check(case, what, Coefficient::Value(actual), expected);
    }

    /// `{coefficient, pa, pe}` objects as written by irrCAC.
    fn check_cc(&mut self, case: &str, what: &str, actual: &ChanceCorrected, expected: &Value) {
        self.check(
            case,
            &format!("{what}.coefficient"),
            actual.coefficient,
            &expected["coefficient"],
        );
        if !expected["pa"].is_null() {
            self.check_f(
                case,
                &format!("{what}.pa"),
                actual.observed_agreement,
                &expected["pa"],
            );
        }
        if !expected["pe"].is_null() {
            self.check_f(
                case,
                &format!("{what}.pe"),
                actual.chance_agreement,
                &expected["pe"],
            );
        }
    }

    fn skip(&mut self, case: &str, key: &str, why: &str) {
        self.skipped.push(format!("{case}: {key} ({why})"));
    }

    fn unknown(&mut self, case: &str, key: &str) {
        self.failures.push(format!(
            "{case}: computed key {key:?} is not mapped to a coefficient"
        ));
    }
}

fn weighting(name: &str) -> Option<Weighting> {
    Some(match name {
        "identity" | "unweighted" => Weighting::Identity,
        "linear" => Weighting::Linear,
        "quadratic" => Weighting::Quadratic,
        "ordinal" => Weighting::Ordinal,
        "ratio" => Weighting::Ratio,
        "radical" => Weighting::Radical,
        "circular" => Weighting::Circular,
        "bipolar" => Weighting::Bipolar,
        _ => return None,
    })
}

fn metric(name: &str) -> Option<Metric> {
    Some(match name {
        "nominal" => Metric::Nominal,
        "ordinal" => Metric::Ordinal,
        "interval" => Metric::Interval,
        "ratio" => Metric::Ratio,
        _ => return None,
    })
}

/// irrCAC's parameterisation of weighted Krippendorff α: `pa = (1 − 1/n)(1 − D_o) + 1/n`,
/// `pe = 1 − D_e (n − 1)/n`.
fn irrcac_alpha_parts(a: &AlphaEstimate) -> (f64, f64) {
    let n = a.pairable_values as f64;
    (
        (1.0 - 1.0 / n) * (1.0 - a.observed_disagreement) + 1.0 / n,
        1.0 - a.expected_disagreement * (n - 1.0) / n,
    )
}

/// A ratings matrix from JSON rows of numbers, strings or nulls.
fn ratings_from_json(rows: &Value) -> Ratings {
    let rows = rows.as_array().expect("matrix is an array");
    let any_string = rows
        .iter()
        .flat_map(|r| r.as_array().expect("row is an array"))
        .any(Value::is_string);
    if any_string {
        let m: Vec<Vec<Option<String>>> = rows
            .iter()
            .map(|r| {
                r.as_array()
                    .expect("row")
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .collect();
        Ratings::from_labels(&m).expect("valid labels")
    } else {
        let m: Vec<Vec<Option<f64>>> = rows
            .iter()
            .map(|r| {
                r.as_array()
                    .expect("row")
                    .iter()
                    .map(Value::as_f64)
                    .collect()
            })
            .collect();
        Ratings::from_values(&m).expect("valid values")
    }
}

/// Two columns y1, y2 as a ratings matrix (categories in the case's declared order if given).
fn ratings_from_columns(case: &Value) -> Ratings {
    let y1 = case["y1"].as_array().expect("y1");
    let y2 = case["y2"].as_array().expect("y2");
    let rows: Vec<Value> = y1
        .iter()
        .zip(y2)
        .map(|(a, b)| Value::Array(vec![a.clone(), b.clone()]))
        .collect();
    if let Some(cats) = case["categories"].as_array() {
        if cats.iter().all(Value::is_string) {
            let cats: Vec<&str> = cats.iter().filter_map(Value::as_str).collect();
            let m: Vec<Vec<Option<&str>>> = rows
                .iter()
                .map(|r| {
                    r.as_array()
                        .expect("row")
                        .iter()
                        .map(Value::as_str)
                        .collect()
                })
                .collect();
            return Ratings::from_labels_with_categories(&m, &cats).expect("labels");
        }
    }
    ratings_from_json(&Value::Array(rows))
}

fn table_from_json(t: &Value) -> ContingencyTable {
    let rows: Vec<Vec<u64>> = t
        .as_array()
        .expect("table")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .filter_map(Value::as_u64)
                .collect()
        })
        .collect();
    ContingencyTable::from_rows(&rows).expect("square table")
}

/// Checks of a ratings matrix (any number of raters).
fn check_matrix(c: &mut Checker, case: &str, ratings: &Ratings, computed: &Value) {
    let view = ratings.view();
    let t = Tallies::build(&view, true);
    let label_index = |label: &str| ratings.labels().iter().position(|l| l == label);
    let obj = computed.as_object().expect("computed is an object");
    for (key, v) in obj {
        let k = key.as_str();
        match k {
            "krippendorff_pkg" => {
                for (m, exp) in v.as_object().expect("levels") {
                    match metric(m) {
                        Some(met) => c.check(
                            case,
                            &format!("{k}.{m}"),
                            t.krippendorff_alpha(met).coefficient,
                            exp,
                        ),
                        None => c.unknown(case, &format!("{k}.{m}")),
                    }
                }
            }
            "krippendorff_pkg_nominal"
            | "krippendorff_pkg_ordinal"
            | "krippendorff_pkg_interval" => {
                let met = metric(k.trim_start_matches("krippendorff_pkg_")).expect("level");
                c.check(case, k, t.krippendorff_alpha(met).coefficient, v);
            }
            "nltk_alpha_nominal" => c.check(
                case,
                k,
                t.krippendorff_alpha(Metric::Nominal).coefficient,
                &v["value"],
            ),
            "nltk_alpha_interval" => c.check(
                case,
                k,
                t.krippendorff_alpha(Metric::Interval).coefficient,
                &v["value"],
            ),
            "irrcac" => {
                for (name, exp) in v.as_object().expect("irrcac") {
                    let (family, wname) = name.split_once('/').unwrap_or((name.as_str(), ""));
                    let Some(w) = weighting(wname) else {
                        c.unknown(case, name);
                        continue;
                    };
                    check_irrcac_family(c, case, &t, family, w, &format!("{k}.{name}"), exp);
                }
            }
            "irrcac_krippendorff_identity" | "irrcac_krippendorff_quadratic" => {
                let w = weighting(k.trim_start_matches("irrcac_krippendorff_")).expect("w");
                check_irrcac_family(c, case, &t, "krippendorff", w, k, v);
            }
            "irrcac_fleiss" => {
                check_irrcac_family(c, case, &t, "fleiss", Weighting::Identity, k, v)
            }
            "irrcac_gwet_ac1" => {
                check_irrcac_family(c, case, &t, "gwet", Weighting::Identity, k, v)
            }
            "irrcac_conger" => {
                check_irrcac_family(c, case, &t, "conger", Weighting::Identity, k, v)
            }
            "gwet" | "krippendorff" | "fleiss" | "conger" | "bp" => {
                check_irrcac_family(c, case, &t, k, Weighting::Identity, k, v)
            }
            "identity" | "linear" | "quadratic" | "ordinal" | "ratio" | "bipolar" | "circular"
            | "radical" => {
                let w = weighting(k).expect("w");
                check_irrcac_family(c, case, &t, "gwet", w, &format!("gwet/{k}"), v);
            }
            "percent_agreement" => {
                let p = t.percent_agreement();
                if v.is_object() {
                    c.check(case, "percent.item_mean", p.mean_pairwise, &v["item_mean"]);
                    c.check(case, "percent.pairable", p.pairable, &v["pairable"]);
                    c.check(case, "percent.all_agree", p.unanimous, &v["all_agree"]);
                } else {
                    c.check(case, "percent (two raters)", p.mean_pairwise, v);
                    c.check(case, "percent (two raters) pairable", p.pairable, v);
                    c.check(case, "percent (two raters) unanimous", p.unanimous, v);
                }
            }
            "statsmodels_fleiss_kappa" => {
                c.check(case, k, t.fleiss_kappa(Weighting::Identity).coefficient, v)
            }
            "P_bar" => c.check_f(
                case,
                k,
                t.fleiss_kappa(Weighting::Identity).observed_agreement,
                v,
            ),
            "P_e" => c.check_f(
                case,
                k,
                t.fleiss_kappa(Weighting::Identity).chance_agreement,
                v,
            ),
            "statsmodels_randolph_kappa" => c.check(
                case,
                k,
                t.brennan_prediger(Weighting::Identity).coefficient,
                v,
            ),
            "per_category_kappa_formula" => {
                let per = t.per_label();
                for (label, exp) in v.as_object().expect("per category") {
                    match label_index(label) {
                        Some(i) => c.check(case, &format!("{k}.{label}"), per[i].fleiss_kappa, exp),
                        None => c.unknown(case, &format!("{k}.{label}")),
                    }
                }
            }
            "nltk" => {
                for (name, val) in v.as_object().expect("nltk") {
                    if val.get("error").is_some() {
                        c.skip(
                            case,
                            &format!("nltk.{name}"),
                            "NLTK itself raised an error here",
                        );
                        continue;
                    }
                    let exp = &val["value"];
                    let what = format!("nltk.{name}");
                    match name.as_str() {
                        "avg_Ao" => c.check(
                            case,
                            &what,
                            mean_pairwise(&view, PairCoefficient::PercentAgreement).mean,
                            exp,
                        ),
                        "S" => c.check(
                            case,
                            &what,
                            t.brennan_prediger(Weighting::Identity).coefficient,
                            exp,
                        ),
                        "pi" => c.check(
                            case,
                            &what,
                            t.fleiss_kappa(Weighting::Identity).coefficient,
                            exp,
                        ),
                        "kappa" => c.check(
                            case,
                            &what,
                            mean_pairwise(&view, PairCoefficient::CohenKappa(Weighting::Identity))
                                .mean,
                            exp,
                        ),
                        "multi_kappa" => c.check(
                            case,
                            &what,
                            t.conger_kappa(Weighting::Identity).coefficient,
                            exp,
                        ),
                        "alpha_nominal" => c.check(
                            case,
                            &what,
                            t.krippendorff_alpha(Metric::Nominal).coefficient,
                            exp,
                        ),
                        "alpha_interval" => c.check(
                            case,
                            &what,
                            t.krippendorff_alpha(Metric::Interval).coefficient,
                            exp,
                        ),
                        _ => c.unknown(case, &what),
                    }
                }
            }
            // Two-rater quantities on a two-column matrix.
            _ if ratings.raters() == 2 => {
                // scikit-learn and R irr weigh by rank among the categories present.
                let ranked = ratings.clone().with_rank_scores();
                let table = confusion_matrix(&ranked.view(), 0, 1).expect("two raters");
                check_table_key(c, case, &table, Some(ratings), k, v);
            }
            _ => c.unknown(case, k),
        }
    }
}

fn check_irrcac_family(
    c: &mut Checker,
    case: &str,
    t: &Tallies,
    family: &str,
    w: Weighting,
    what: &str,
    exp: &Value,
) {
    match family {
        "gwet" => c.check_cc(case, what, &t.gwet_ac(w), exp),
        "fleiss" => c.check_cc(case, what, &t.fleiss_kappa(w), exp),
        "conger" => c.check_cc(case, what, &t.conger_kappa(w), exp),
        "bp" => c.check_cc(case, what, &t.brennan_prediger(w), exp),
        "krippendorff" => {
            let a = t.krippendorff_alpha(Metric::Weighted(w));
            c.check(
                case,
                &format!("{what}.coefficient"),
                a.coefficient,
                &exp["coefficient"],
            );
            let (pa, pe) = irrcac_alpha_parts(&a);
            c.check_f(case, &format!("{what}.pa"), pa, &exp["pa"]);
            c.check_f(case, &format!("{what}.pe"), pe, &exp["pe"]);
        }
        _ => c.unknown(case, what),
    }
}

/// Checks of a two-rater table. `ratings` (when given) is the same data as a matrix, for the
/// keys whose categories are the values present (scikit-learn's `labels=` variants).
fn check_table_key(
    c: &mut Checker,
    case: &str,
    table: &ContingencyTable,
    ratings: Option<&Ratings>,
    k: &str,
    v: &Value,
) {
    match k {
        "sklearn_unweighted" | "statsmodels_unweighted" | "sklearn_cohen" => c.check(
            case,
            k,
            table.cohen_kappa(Weighting::Identity).coefficient,
            v,
        ),
        "sklearn_linear" | "statsmodels_linear" => {
            c.check(case, k, table.cohen_kappa(Weighting::Linear).coefficient, v)
        }
        "sklearn_quadratic" | "statsmodels_quadratic" => c.check(
            case,
            k,
            table.cohen_kappa(Weighting::Quadratic).coefficient,
            v,
        ),
        "sklearn_linear_labels_1_to_6" | "sklearn_quadratic_labels_1_to_6" => {
            // Value scores (1, 2, 3, 4, 6) weigh like scikit-learn's labels=1..6.
            let Some(r) = ratings else {
                c.unknown(case, k);
                return;
            };
            let by_value = confusion_matrix(&r.view(), 0, 1)
                .and_then(|t| t.with_scores(r.scores().to_vec()))
                .expect("table");
            let w = if k.contains("linear") {
                Weighting::Linear
            } else {
                Weighting::Quadratic
            };
            c.check(case, k, by_value.cohen_kappa(w).coefficient, v);
        }
        "labels_present" => c.skip(case, k, "a list of labels, not a coefficient"),
        "scott_pi_formula" => c.check(case, k, table.scott_pi(Weighting::Identity).coefficient, v),
        "percent_agreement" => c.check(case, k, table.percent_agreement(), v),
        "nltk_kappa" => c.check(
            case,
            k,
            table.cohen_kappa(Weighting::Identity).coefficient,
            &v["value"],
        ),
        "nltk_pi" => c.check(
            case,
            k,
            table.scott_pi(Weighting::Identity).coefficient,
            &v["value"],
        ),
        "nltk_S" => c.check(
            case,
            k,
            table.brennan_prediger(Weighting::Identity).coefficient,
            &v["value"],
        ),
        "nltk_alpha_nominal" => c.check(
            case,
            k,
            table.krippendorff_alpha(Metric::Nominal).coefficient,
            &v["value"],
        ),
        "krippendorff_pkg_nominal" => c.check(
            case,
            k,
            table.krippendorff_alpha(Metric::Nominal).coefficient,
            v,
        ),
        "irrcac_gwet_ac1" => c.check_cc(case, k, &table.gwet_ac(Weighting::Identity), v),
        "irrcac_gwet_ac2_quadratic" => c.check_cc(case, k, &table.gwet_ac(Weighting::Quadratic), v),
        _ => c.unknown(case, k),
    }
}

/// Continuum (begin, length, raters) from "units_format", else from the units themselves.
fn continuum(case: &Value, units: &[Unit]) -> (u64, u64, usize) {
    let fmt = case["units_format"].as_str().unwrap_or("");
    let num_after = |tag: &str| -> Option<u64> {
        let i = fmt.find(tag)? + tag.len();
        fmt[i..]
            .split(|ch: char| !ch.is_ascii_digit())
            .next()
            .and_then(|s| s.parse().ok())
    };
    let raters_from_fmt = fmt
        .split(';')
        .find_map(|part| part.trim().strip_suffix(" raters"))
        .and_then(|s| s.trim().parse().ok());
    let begin = num_after("begin=").unwrap_or(0);
    let length = num_after("length=").unwrap_or_else(|| {
        // Krippendorff (1995): the continuum is the stretch the units cover, from 0.
        units.iter().map(|u| u.offset + u.length).max().unwrap_or(0) - begin
    });
    let raters =
        raters_from_fmt.unwrap_or_else(|| units.iter().map(|u| u.rater + 1).max().unwrap_or(0));
    (begin, length, raters)
}

fn units_from_json(v: &Value, stretch: u64) -> Vec<Unit> {
    v.as_array()
        .expect("units")
        .iter()
        .map(|u| {
            let u = u.as_array().expect("unit");
            Unit::new(
                u[0].as_u64().expect("offset") * stretch,
                u[1].as_u64().expect("length") * stretch,
                u[2].as_u64().expect("rater") as usize,
                u[3].as_str().expect("category"),
            )
        })
        .collect()
}

fn check_unitizing(
    c: &mut Checker,
    case: &str,
    units: &[Unit],
    case_v: &Value,
    stretch: u64,
    exp: &Value,
    prefix: &str,
) {
    let base = units_from_json(units_json(case_v), 1);
    let (begin, length, raters) = continuum(case_v, &base);
    let r = unitizing_alpha(begin * stretch, length * stretch, raters, units).expect("valid units");
    c.check(
        case,
        &format!("{prefix}alpha"),
        r.coefficient,
        &exp["alpha"],
    );
    c.check_f(
        case,
        &format!("{prefix}D_O"),
        r.observed_disagreement,
        &exp["D_O"],
    );
    c.check_f(
        case,
        &format!("{prefix}D_E"),
        r.expected_disagreement,
        &exp["D_E"],
    );
    for (cat, e) in exp["per_category"].as_object().expect("per_category") {
        match r.per_category.iter().find(|p| &p.category == cat) {
            Some(p) => {
                c.check(
                    case,
                    &format!("{prefix}{cat}.alpha"),
                    p.coefficient,
                    &e["alpha"],
                );
                c.check_f(
                    case,
                    &format!("{prefix}{cat}.D_O"),
                    p.observed_disagreement,
                    &e["D_O"],
                );
                c.check_f(
                    case,
                    &format!("{prefix}{cat}.D_E"),
                    p.expected_disagreement,
                    &e["D_E"],
                );
            }
            None => c.unknown(case, &format!("{prefix}{cat}")),
        }
    }
}

fn units_json(case: &Value) -> &Value {
    if case["units"].is_array() {
        &case["units"]
    } else {
        &case["units_stretch_1"]
    }
}

fn spans_from_json(v: &Value) -> Vec<Span> {
    v.as_array()
        .expect("spans")
        .iter()
        .map(|s| {
            let s = s.as_array().expect("span");
            // (doc, start, end inclusive, label) → half-open.
            Span::new(
                s[0].as_str().expect("doc"),
                s[1].as_u64().expect("start"),
                s[2].as_u64().expect("end") + 1,
                s[3].as_str().expect("label"),
            )
        })
        .collect()
}

fn cases_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/agreement/published_cases.json")
}

#[test]
fn published_cases_match_reference_values() {
    let path = cases_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the published agreement cases are missing: cannot read {} ({e}). The repository \
             expects shared/ cloned beside it (../shared/agreement/published_cases.json).",
            path.display()
        )
    });
    let doc: Value = serde_json::from_str(&text).expect("published_cases.json is valid JSON");
    let cases = doc["cases"].as_object().expect("\"cases\" object");
    assert_eq!(cases.len(), 26, "expected the 26 published cases");
    let mut c = Checker::default();
    for (name, case) in cases {
        let computed = &case["computed"];
        if case["matrix"].is_array() {
            let ratings = ratings_from_json(&case["matrix"]);
            if case["table_counts"].is_array() {
                // The matrix must be the count table expanded.
                let counts: Vec<Vec<u64>> = case["table_counts"]
                    .as_array()
                    .expect("counts")
                    .iter()
                    .map(|r| {
                        r.as_array()
                            .expect("row")
                            .iter()
                            .filter_map(Value::as_u64)
                            .collect()
                    })
                    .collect();
                for (i, row) in counts.iter().enumerate() {
                    let mut got = vec![0u64; ratings.categories()];
                    for &x in ratings.view().row(i) {
                        got[x as usize] += 1;
                    }
                    assert_eq!(
                        &got, row,
                        "{name}: matrix row {i} does not expand table_counts"
                    );
                }
            }
            check_matrix(&mut c, name, &ratings, computed);
        } else if case["table"].is_array() {
            let table = table_from_json(&case["table"]);
            let from_columns = case["y1"].is_array().then(|| ratings_from_columns(case));
            if let Some(r) = &from_columns {
                let derived = confusion_matrix(&r.view(), 0, 1).expect("two raters");
                assert_eq!(
                    derived.counts(),
                    table.counts(),
                    "{name}: y1/y2 do not give the table"
                );
            }
            for (k, v) in computed.as_object().expect("computed") {
                check_table_key(&mut c, name, &table, from_columns.as_ref(), k, v);
                // The same numbers through the ratings-matrix path.
                if let Some(r) = &from_columns {
                    let derived = confusion_matrix(&r.view(), 0, 1).expect("two raters");
                    check_table_key(&mut c, name, &derived, Some(r), k, v);
                }
            }
        } else if units_json(case).is_array() {
            let base = units_from_json(units_json(case), 1);
            if computed.get("alpha").is_some() {
                check_unitizing(&mut c, name, &base, case, 1, computed, "");
            }
            for (k, v) in computed.as_object().expect("computed") {
                if let Some(s) = k.strip_prefix("stretch_") {
                    let stretch: u64 = s.parse().expect("stretch factor");
                    let units = units_from_json(units_json(case), stretch);
                    check_unitizing(&mut c, name, &units, case, stretch, v, &format!("{k}."));
                } else if !["alpha", "D_O", "D_E", "per_category"].contains(&k.as_str()) {
                    c.unknown(name, k);
                }
            }
        } else if case["spans"].is_object() {
            let a = spans_from_json(&case["spans"]["A"]);
            let b = spans_from_json(&case["spans"]["B"]);
            let exact = span_f1(&a, &b, SpanMatch::Exact).expect("valid spans");
            let exact_ba = span_f1(&b, &a, SpanMatch::Exact).expect("valid spans");
            for (k, v) in computed.as_object().expect("computed") {
                match k.as_str() {
                    "exact_pairwise_f1_formula" => {
                        c.check(name, k, exact.micro_f1, v);
                        c.check(name, &format!("{k} (B vs A)"), exact_ba.micro_f1, v);
                    }
                    _ => {
                        // nervaluate: "strict" is exact matching; the other schemes are
                        // directional evaluation scores, not agreement measures.
                        let strict = &v["strict"];
                        if strict.is_object() {
                            let pooled = |x: &concord_agreement::SpanAgreement,
                                          f: fn(&concord_agreement::LabelF1) -> usize|
                             -> usize {
                                x.per_label.iter().map(f).sum()
                            };
                            let (ma, na) = (
                                pooled(&exact, |l| l.matched_a),
                                pooled(&exact, |l| l.spans_a),
                            );
                            let (mb, nb) = (
                                pooled(&exact, |l| l.matched_b),
                                pooled(&exact, |l| l.spans_b),
                            );
                            c.check_f(
                                name,
                                &format!("{k}.strict.precision"),
                                ma as f64 / na as f64,
                                &strict["precision"],
                            );
                            c.check_f(
                                name,
                                &format!("{k}.strict.recall"),
                                mb as f64 / nb as f64,
                                &strict["recall"],
                            );
                            c.check(
                                name,
                                &format!("{k}.strict.f1"),
                                exact.micro_f1,
                                &strict["f1"],
                            );
                        }
                        c.skip(name, &format!("{k} (partial, ent_type, exact schemes)"),
                            "nervaluate's directional SemEval schemes are evaluation scores, not symmetric agreement");
                    }
                }
            }
        } else {
            c.failures
                .push(format!("{name}: no input this test understands"));
        }
        if c.passed.get(name.as_str()).copied().unwrap_or(0) == 0 {
            c.failures.push(format!("{name}: no value was checked"));
        }
    }
    let total: usize = c.passed.values().sum();
    println!(
        "published cases: {} cases, {total} values matched to {TOL:e}",
        c.passed.len()
    );
    for (name, n) in &c.passed {
        println!("  {name}: {n} values");
    }
    for s in &c.skipped {
        println!("  skipped {s}");
    }
    assert!(
        c.failures.is_empty(),
        "{} mismatches:\n{}",
        c.failures.len(),
        c.failures.join("\n")
    );
    assert_eq!(c.passed.len(), 26, "every case must pass");
}
