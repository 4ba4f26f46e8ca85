//! Krippendorff's α on the VADER tweet ratings (Hutto & Gilbert 2014): each line of
//! `shared/data/vader_tweets.jsonl` has "ratings", 20–99 integer scores in −4..+4. Rater
//! identities are not linked across items, so — as the Python `krippendorff` package is fed in
//! `bench/reference.py` — the k-th rating of an item is treated as rater k.
//!
//! The ratio metric is left out: it assumes non-negative values, and the scale is bipolar.
//!
//! ```text
//! cargo run --release --example vader_alpha -p concord-agreement [PATH]
//! ```

use std::time::Instant;

use concord_agreement::{agreement_report, Metric, Ratings, ReportOptions, Tallies, Weighting};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        format!(
            "{}/../../../shared/data/vader_tweets.jsonl",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut rows: Vec<Vec<Option<f64>>> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)?;
        let ratings = v["ratings"]
            .as_array()
            .ok_or_else(|| format!("line {}: no \"ratings\" array", n + 1))?;
        rows.push(ratings.iter().map(serde_json::Value::as_f64).collect());
    }
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let ratings_total: usize = rows.iter().map(Vec::len).sum();
    for r in &mut rows {
        r.resize(width, None);
    }
    let t = Instant::now();
    let ratings = Ratings::from_values(&rows)?;
    let view = ratings.view();
    let tallies = Tallies::build(&view, false);
    let ms_build = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "VADER tweets: {} items, {} rater columns (k-th rating = rater k), {} ratings, categories {:?}",
        ratings.items(),
        ratings.raters(),
        ratings_total,
        ratings.labels()
    );
    for (name, metric) in [
        ("interval", Metric::Interval),
        ("ordinal", Metric::Ordinal),
        ("nominal", Metric::Nominal),
    ] {
        let a = tallies.krippendorff_alpha(metric);
        println!(
            "Krippendorff α {name:8}: {:?}  (D_o {:.6}, D_e {:.6}, pairable values {})",
            a.coefficient.value().unwrap_or(f64::NAN),
            a.observed_disagreement,
            a.expected_disagreement,
            a.pairable_values
        );
    }
    let rep = agreement_report(
        &view,
        &ReportOptions {
            weighting: Weighting::Quadratic,
            pairwise: false,
        },
    );
    println!(
        "Fleiss κ {:.6}, Gwet AC1 {:.6}, AC2 (quadratic) {:.6}, percent agreement (mean pairwise) {:.6}",
        rep.fleiss_kappa.coefficient.value().unwrap_or(f64::NAN),
        rep.gwet_ac1.coefficient.value().unwrap_or(f64::NAN),
        rep.gwet_ac2.coefficient.value().unwrap_or(f64::NAN),
        rep.percent.mean_pairwise.value().unwrap_or(f64::NAN)
    );
    println!("tallies built in {ms_build:.1} ms");
    Ok(())
}
