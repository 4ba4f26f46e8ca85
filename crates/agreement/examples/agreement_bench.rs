//! Benchmark (not a test): every coefficient on two synthetic inputs generated
//! deterministically, with wall time per coefficient, all together, and peak memory.
//!
//! ```text
//! cargo run --release --example agreement_bench -p concord-agreement
//! python3 crates/agreement/bench/reference.py   # the Python side, same CSVs
//! ```
//!
//! Input A: 1,000,000 items × 3 raters × 10 categories, complete. Input B: 100,000 items ×
//! 20 raters × 10 categories with 10% missing. Each item has a true category from a skewed
//! distribution; each rater reports it with a rater-specific accuracy, otherwise a neighbouring
//! category (ordinal confusion) or, rarely, any category. Both inputs are written as CSV (items
//! as rows, raters as columns, empty = missing) to /tmp for the Python comparison, and the Rust
//! values to /tmp/agreement_bench_rust.json.

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Write as _;
use std::time::Instant;

use concord_agreement::rng::Xoshiro256;
use concord_agreement::{
    agreement_report, bootstrap, confusion_matrix, pairwise_matrix, BootstrapConfig,
    CoefficientKind, Metric, PairCoefficient, RatingsView, ReportOptions, Tallies, Weighting,
    MISSING,
};

fn generate(items: usize, raters: usize, q: u32, missing: f64, seed: u64) -> Vec<u32> {
    let mut rng = Xoshiro256::seed_from_u64(seed);
    // Skewed category prevalence: weight 1/(k+1).
    let weights: Vec<f64> = (0..q).map(|k| 1.0 / f64::from(k + 1)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(q as usize);
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cdf.push(acc);
    }
    let accuracy: Vec<f64> = (0..raters)
        .map(|g| 0.70 + 0.2 * (g % 5) as f64 / 4.0)
        .collect();
    let mut data = Vec::with_capacity(items * raters);
    for _ in 0..items {
        let u = rng.next_f64();
        let truth = cdf.iter().position(|&c| u < c).unwrap_or(q as usize - 1) as u32;
        for &acc_g in &accuracy {
            if rng.next_f64() < missing {
                data.push(MISSING);
                continue;
            }
            let v = rng.next_f64();
            let label = if v < acc_g {
                truth
            } else if v < acc_g + (1.0 - acc_g) * 0.8 {
                // A neighbouring category.
                if (rng.next_u64() & 1 == 0 && truth > 0) || truth == q - 1 {
                    truth - 1
                } else {
                    truth + 1
                }
            } else {
                rng.below(u64::from(q)) as u32
            };
            data.push(label);
        }
    }
    data
}

fn write_csv(path: &str, data: &[u32], raters: usize) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let header: Vec<String> = (0..raters).map(|g| format!("r{g}")).collect();
    writeln!(out, "{}", header.join(","))?;
    let mut line = String::new();
    for row in data.chunks_exact(raters) {
        line.clear();
        for (g, &v) in row.iter().enumerate() {
            if g > 0 {
                line.push(',');
            }
            if v != MISSING {
                let _ = write!(line, "{}", v + 1);
            }
        }
        writeln!(out, "{line}")?;
    }
    out.flush()
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Best-of-`reps` wall time in milliseconds.
fn time_ms<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut last = None;
    for _ in 0..reps {
        let t = Instant::now();
        let v = black_box(f());
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
        last = Some(v);
    }
    (best, last.expect("reps >= 1"))
}

fn fmt_c(c: concord_agreement::Coefficient) -> String {
    match c.value() {
        Some(v) => format!("{v:.6}"),
        None => format!("{c:?}"),
    }
}

fn run(name: &str, data: &[u32], raters: usize, q: usize, reps: usize, json: &mut Vec<String>) {
    let view = RatingsView::new(data, raters, q).expect("generated data is valid");
    println!(
        "\n## {name}: {} items × {raters} raters × {q} categories",
        view.items()
    );
    println!("| coefficient | value | time (ms, best of {reps}) |");
    println!("|---|---|---|");
    let mut rows: Vec<(String, String, f64)> = Vec::new();
    let single = |t: &Tallies, k: CoefficientKind| t.coefficient(k);
    let kinds: Vec<(&str, CoefficientKind, bool)> = vec![
        (
            "percent agreement (mean pairwise, Fleiss P̄)",
            CoefficientKind::PercentMeanPairwise,
            false,
        ),
        (
            "Fleiss κ",
            CoefficientKind::FleissKappa(Weighting::Identity),
            false,
        ),
        (
            "Fleiss κ (quadratic)",
            CoefficientKind::FleissKappa(Weighting::Quadratic),
            false,
        ),
        (
            "Conger κ",
            CoefficientKind::CongerKappa(Weighting::Identity),
            false,
        ),
        (
            "Gwet AC1",
            CoefficientKind::GwetAc(Weighting::Identity),
            false,
        ),
        (
            "Gwet AC2 (quadratic)",
            CoefficientKind::GwetAc(Weighting::Quadratic),
            false,
        ),
        (
            "Brennan–Prediger",
            CoefficientKind::BrennanPrediger(Weighting::Identity),
            false,
        ),
        (
            "Krippendorff α nominal",
            CoefficientKind::KrippendorffAlpha(Metric::Nominal),
            false,
        ),
        (
            "Krippendorff α ordinal",
            CoefficientKind::KrippendorffAlpha(Metric::Ordinal),
            false,
        ),
        (
            "Krippendorff α interval",
            CoefficientKind::KrippendorffAlpha(Metric::Interval),
            false,
        ),
        (
            "Krippendorff α ratio",
            CoefficientKind::KrippendorffAlpha(Metric::Ratio),
            false,
        ),
        (
            "mean pairwise Cohen κ (Light)",
            CoefficientKind::MeanPairwise(PairCoefficient::CohenKappa(Weighting::Identity)),
            true,
        ),
    ];
    for (label, kind, pairs) in &kinds {
        let (ms, v) = time_ms(reps, || single(&Tallies::build(&view, *pairs), *kind));
        rows.push((label.to_string(), fmt_c(v), ms));
        if let Some(x) = v.value() {
            json.push(format!("\"{name}/{kind:?}\": {x}"));
        }
    }
    let (ms, per) = time_ms(reps, || Tallies::build(&view, false).per_label());
    rows.push((
        "per-label (10 × κ, α, specific)".into(),
        format!("κ₀={}", fmt_c(per[0].fleiss_kappa)),
        ms,
    ));
    let (ms, m) = time_ms(reps, || {
        pairwise_matrix(&view, PairCoefficient::CohenKappa(Weighting::Identity))
    });
    rows.push((
        "pairwise Cohen κ matrix".into(),
        format!("κ₀₁={}", m.get(0, 1).map_or(String::new(), fmt_c)),
        ms,
    ));
    let (ms, t) = time_ms(reps, || confusion_matrix(&view, 0, 1).expect("raters 0, 1"));
    rows.push((
        "confusion matrix raters 0×1".into(),
        format!("n={}", t.total()),
        ms,
    ));
    for (label, value, ms) in &rows {
        println!("| {label} | {value} | {ms:.1} |");
    }
    let opts = ReportOptions::default();
    let (ms, rep) = time_ms(reps, || agreement_report(&view, &opts));
    println!(
        "| **all coefficients together** (one pass: report incl. per-label, Light's κ) | α_nom={} | **{ms:.1}** |",
        fmt_c(rep.alpha_nominal.coefficient)
    );
    json.push(format!("\"{name}/all_ms\": {ms}"));
    let cfg = BootstrapConfig {
        replicates: 20,
        confidence: 0.95,
        seed: 7,
    };
    let boot_kinds = [
        CoefficientKind::KrippendorffAlpha(Metric::Nominal),
        CoefficientKind::FleissKappa(Weighting::Identity),
        CoefficientKind::GwetAc(Weighting::Identity),
    ];
    let (ms, cis) = time_ms(1, || bootstrap(&view, &boot_kinds, &cfg).expect("valid"));
    let ci = &cis[0].interval;
    println!(
        "| bootstrap 95% CI, 20 replicates × 3 coefficients (α nominal: {ci:?}) | | {ms:.1} |"
    );
    println!("peak memory so far (VmHWM): {:.1} MiB", peak_rss_mib());
}

fn main() -> std::io::Result<()> {
    let mut json = Vec::new();
    let t = Instant::now();
    let a = generate(1_000_000, 3, 10, 0.0, 1);
    let gen_a = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "generated input A in {gen_a:.0} ms; VmHWM after generation {:.1} MiB",
        peak_rss_mib()
    );
    run("A_1M_x3", &a, 3, 10, 5, &mut json);
    let peak_a = peak_rss_mib();
    write_csv("/tmp/agreement_bench_1m_x3.csv", &a, 3)?;
    drop(a);
    let b = generate(100_000, 20, 10, 0.10, 2);
    run("B_100k_x20", &b, 20, 10, 3, &mut json);
    write_csv("/tmp/agreement_bench_100k_x20.csv", &b, 20)?;
    println!(
        "\npeak memory: {peak_a:.1} MiB after input A (input itself: 11.4 MiB); {:.1} MiB at the end",
        peak_rss_mib()
    );
    std::fs::write(
        "/tmp/agreement_bench_rust.json",
        format!("{{{}}}\n", json.join(",\n")),
    )?;
    println!("wrote /tmp/agreement_bench_1m_x3.csv, /tmp/agreement_bench_100k_x20.csv, /tmp/agreement_bench_rust.json");
    Ok(())
}
