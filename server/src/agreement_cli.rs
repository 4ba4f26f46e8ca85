//! `concord agreement`: reading a ratings file from any tool (CSV or JSON, items as rows, raters
//! as columns, empty or null = missing) and printing every coefficient as a table.

use concord_engine::agreement_stats::{
    agreement_report, bootstrap, AgreementReport, BootstrapConfig, ChanceCorrected, Coefficient,
    CoefficientKind, ConfidenceInterval, InputError, Interval, Metric, PairCoefficient, Ratings,
    ReportOptions, Weighting,
};
use serde_json::Value;

/// Largest ratings file read (the statistics themselves handle far more, but the file is
/// parsed into memory).
pub const MAX_RATINGS_BYTES: usize = 512 * 1024 * 1024;

/// The measurement level of the ratings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Level {
    Nominal,
    Ordinal,
    Interval,
    Ratio,
}

impl Level {
    fn metric(self) -> Metric {
        match self {
            Level::Nominal => Metric::Nominal,
            Level::Ordinal => Metric::Ordinal,
            Level::Interval => Metric::Interval,
            Level::Ratio => Metric::Ratio,
        }
    }

    /// The weighting of the weighted variants (AC2, weighted κ) that fits the level.
    fn weighting(self) -> Weighting {
        match self {
            Level::Nominal => Weighting::Identity,
            Level::Ordinal => Weighting::Ordinal,
            Level::Interval => Weighting::Quadratic,
            Level::Ratio => Weighting::Ratio,
        }
    }
}

/// A ratings table as read: rater names and one row of optional values per item.
#[derive(Debug, PartialEq)]
pub struct RatingsTable {
    pub raters: Vec<String>,
    pub items: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// Reads CSV (a header row of rater names; a first column named `item` or `id` holds item
/// ids) or JSON (an array of arrays, or of objects mapping rater names to values; or an
/// object with `"raters"` and `"rows"`). Errors name the line (CSV) or item (JSON).
pub fn parse_ratings(name: &str, bytes: &[u8]) -> Result<RatingsTable, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("{name}: not UTF-8 ({e})"))?;
    let looks_json = text.trim_start().starts_with(['[', '{']);
    let table = if name.ends_with(".json") || looks_json {
        parse_json(text)?
    } else {
        parse_csv(text)?
    };
    if table.rows.is_empty() {
        return Err("the file holds no items".into());
    }
    if table.raters.len() < 2 {
        return Err(format!(
            "agreement needs at least two rater columns; found {}",
            table.raters.len()
        ));
    }
    Ok(table)
}

fn parse_csv(text: &str) -> Result<RatingsTable, String> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| format!("line 1: {e}"))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let has_ids = header
        .first()
        .is_some_and(|h| h.eq_ignore_ascii_case("item") || h.eq_ignore_ascii_case("id"));
    let raters: Vec<String> = header.iter().skip(usize::from(has_ids)).cloned().collect();
    let mut items = Vec::new();
    let mut rows = Vec::new();
    for (n, record) in reader.records().enumerate() {
        // The line the record starts on: blank lines are skipped and a quoted field can span
        // lines, so the record's index does not tell (nor does the csv crate's own line count,
        // which skips blank lines and miscounts CRLF files).
        let record = record.map_err(|e| {
            let line = e
                .position()
                .map_or(n as u64 + 2, |p| record_line(text.as_bytes(), p.byte()));
            match e.kind() {
                csv::ErrorKind::UnequalLengths { len, .. } => format!(
                    "line {line}: {len} fields, but the header has {}",
                    header.len()
                ),
                _ => format!("line {line}: {e}"),
            }
        })?;
        let mut fields = record.iter();
        items.push(if has_ids {
            fields.next().unwrap_or_default().to_string()
        } else {
            (n + 1).to_string()
        });
        rows.push(fields.map(cell).collect());
    }
    Ok(RatingsTable {
        raters,
        items,
        rows,
    })
}

/// The 1-based line of the record the csv crate places at byte `byte`: the crate counts a
/// record from the end of the previous one's content, so the line breaks (and blank lines)
/// right at `byte` still come before it.
fn record_line(text: &[u8], byte: u64) -> u64 {
    let at = usize::try_from(byte).map_or(text.len(), |b| b.min(text.len()));
    let newlines = |bytes: &[u8]| bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    let breaks = text[at..]
        .iter()
        .take_while(|&&b| b == b'\n' || b == b'\r')
        .count();
    1 + newlines(&text[..at]) + newlines(&text[at..at + breaks])
}

fn cell(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty() && !s.eq_ignore_ascii_case("null") && !s.eq_ignore_ascii_case("na"))
        .then(|| s.to_string())
}

fn json_cell(v: &Value, item: usize) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(cell(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(format!(
            "item {}: a rating must be a string, number or null, not {other}",
            item + 1
        )),
    }
}

fn parse_json(text: &str) -> Result<RatingsTable, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let (declared, rows) = match value {
        Value::Array(rows) => (None, rows),
        Value::Object(mut o) => {
            let raters = match o.remove("raters") {
                Some(Value::Array(r)) => Some(
                    r.iter()
                        .map(|v| v.as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()
                        .ok_or("\"raters\" must be an array of names")?,
                ),
                Some(_) => return Err("\"raters\" must be an array of names".into()),
                None => None,
            };
            match o.remove("rows") {
                Some(Value::Array(rows)) => (raters, rows),
                _ => return Err("expected an array of rows, or an object with \"rows\"".into()),
            }
        }
        _ => return Err("expected an array of rows, or an object with \"rows\"".into()),
    };
    let mut raters: Vec<String> = declared.clone().unwrap_or_default();
    let mut table_rows = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        match row {
            Value::Array(cells) => {
                if declared.is_none() && i == 0 {
                    raters = (1..=cells.len()).map(|g| format!("rater {g}")).collect();
                }
                if cells.len() != raters.len() {
                    return Err(format!(
                        "item {}: {} ratings, but there are {} raters",
                        i + 1,
                        cells.len(),
                        raters.len()
                    ));
                }
                table_rows.push(
                    cells
                        .iter()
                        .map(|v| json_cell(v, i))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            Value::Object(map) => {
                for name in map.keys() {
                    if !raters.contains(name) {
                        if declared.is_some() {
                            return Err(format!("item {}: unknown rater {name:?}", i + 1));
                        }
                        raters.push(name.clone());
                    }
                }
                table_rows.push(
                    raters
                        .iter()
                        .map(|r| map.get(r).map_or(Ok(None), |v| json_cell(v, i)))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            _ => {
                return Err(format!(
                    "item {}: a row must be an array or an object",
                    i + 1
                ))
            }
        }
    }
    // Rows written before a later rater first appeared lack that column.
    for row in &mut table_rows {
        row.resize(raters.len(), None);
    }
    Ok(RatingsTable {
        raters,
        items: (1..=table_rows.len()).map(|i| i.to_string()).collect(),
        rows: table_rows,
    })
}

/// The ratings matrix for `level`: numbers when every rating is a number (their values are the
/// category scores), otherwise text labels, which only the nominal level accepts.
///
/// `categories` declares the scale (values in scale order: ascending numbers, or labels in any
/// order) so that a category nobody chose still counts; without it the categories are the
/// values present. A rating outside the declared categories is an error.
pub fn to_ratings(
    table: &RatingsTable,
    level: Level,
    categories: Option<&[String]>,
) -> Result<Ratings, String> {
    let numeric: Option<Vec<Vec<Option<f64>>>> = table
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|c| match c {
                    Some(s) => parse_number(s).map(Some),
                    None => Some(None),
                })
                .collect()
        })
        .collect();
    let numeric_categories: Option<Option<Vec<f64>>> =
        categories.map(|list| list.iter().map(|c| parse_number(c)).collect());
    let built = match (numeric, numeric_categories) {
        (Some(rows), None) => Ratings::from_values(&rows),
        (Some(rows), Some(Some(scale))) => Ratings::from_values_with_categories(&rows, &scale),
        (_, _) if level != Level::Nominal => return Err(not_a_number(table, categories, level)),
        (_, Some(_)) => {
            Ratings::from_labels_with_categories(&table.rows, categories.unwrap_or_default())
        }
        (None, None) => Ratings::from_labels(&table.rows),
    };
    built.map_err(|e| describe(table, e))
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|v| v.is_finite())
}

/// The library's error, with its item and rater named as in the file.
fn describe(table: &RatingsTable, e: InputError) -> String {
    match e {
        InputError::UnknownLabel { item, rater, label } => format!(
            "item {}, rater {:?}: {label:?} is not one of the categories given with --categories",
            table.items.get(item).map(String::as_str).unwrap_or("?"),
            table.raters.get(rater).map(String::as_str).unwrap_or("?"),
        ),
        other => other.to_string(),
    }
}

/// The first rating (or declared category) that is not a number, for levels that need numbers.
fn not_a_number(table: &RatingsTable, categories: Option<&[String]>, level: Level) -> String {
    let cell = table.rows.iter().enumerate().find_map(|(i, row)| {
        row.iter().enumerate().find_map(|(g, c)| {
            c.as_deref()
                .filter(|s| parse_number(s).is_none())
                .map(|s| (i, g, s))
        })
    });
    match cell {
        Some((i, g, s)) => format!(
            "item {}, rater {:?}: {s:?} is not a number; the {level:?} level needs numbers (use --level nominal for labels)",
            table.items.get(i).map(String::as_str).unwrap_or("?"),
            table.raters.get(g).map(String::as_str).unwrap_or("?"),
        ),
        None => {
            let c = categories
                .unwrap_or_default()
                .iter()
                .find(|c| parse_number(c).is_none())
                .map(String::as_str)
                .unwrap_or("");
            format!("category {c:?} is not a number; the {level:?} level needs numbers (use --level nominal for labels)")
        }
    }
}

/// Every coefficient of `ratings`, with 95% bootstrap intervals for the main ones.
pub fn compute(ratings: &Ratings, level: Level) -> (AgreementReport, Vec<ConfidenceInterval>) {
    let view = ratings.view();
    let options = ReportOptions {
        weighting: level.weighting(),
        pairwise: true,
    };
    let report = agreement_report(&view, &options);
    let kinds = [
        CoefficientKind::KrippendorffAlpha(level.metric()),
        CoefficientKind::FleissKappa(Weighting::Identity),
        CoefficientKind::GwetAc(level.weighting()),
        CoefficientKind::MeanPairwise(PairCoefficient::CohenKappa(Weighting::Identity)),
    ];
    let intervals = bootstrap(&view, &kinds, &BootstrapConfig::default()).unwrap_or_default();
    (report, intervals)
}

fn value(c: &Coefficient) -> String {
    match c {
        Coefficient::Value(v) => format!("{v:.4}"),
        Coefficient::Undefined(reason) => format!("undefined ({reason})"),
    }
}

fn interval_for(intervals: &[ConfidenceInterval], kind: CoefficientKind) -> String {
    match intervals
        .iter()
        .find(|i| i.kind == kind)
        .map(|i| i.interval)
    {
        Some(Interval::Bounds { lower, upper }) => format!("[{lower:.4}, {upper:.4}]"),
        _ => String::new(),
    }
}

/// The report as an aligned text table.
pub fn format_report(
    report: &AgreementReport,
    intervals: &[ConfidenceInterval],
    level: Level,
    categories: &[String],
) -> String {
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    let mut chance = |name: &str, c: &ChanceCorrected, kind: Option<CoefficientKind>| {
        rows.push((
            name.to_string(),
            value(&c.coefficient),
            kind.map(|k| interval_for(intervals, k)).unwrap_or_default(),
            format!("{:.4} / {:.4}", c.observed_agreement, c.chance_agreement),
        ));
    };
    let w = level.weighting();
    chance(
        "Fleiss' κ",
        &report.fleiss_kappa,
        Some(CoefficientKind::FleissKappa(Weighting::Identity)),
    );
    if w != Weighting::Identity {
        chance(
            &format!("Fleiss' κ ({w:?} weights)"),
            &report.fleiss_kappa_weighted,
            None,
        );
    }
    chance("Conger's κ", &report.conger_kappa, None);
    chance(
        "Gwet's AC1",
        &report.gwet_ac1,
        (w == Weighting::Identity).then_some(CoefficientKind::GwetAc(Weighting::Identity)),
    );
    if w != Weighting::Identity {
        chance(
            &format!("Gwet's AC2 ({w:?} weights)"),
            &report.gwet_ac2,
            Some(CoefficientKind::GwetAc(w)),
        );
    }
    chance("Brennan–Prediger", &report.brennan_prediger, None);
    if let Some(mean) = &report.mean_cohen_kappa {
        rows.push((
            format!("Cohen's κ, mean of {} pairs", mean.pairs_defined),
            value(&mean.mean),
            interval_for(
                intervals,
                CoefficientKind::MeanPairwise(PairCoefficient::CohenKappa(Weighting::Identity)),
            ),
            String::new(),
        ));
    }
    for (name, a, metric) in [
        (
            "Krippendorff's α (nominal)",
            &report.alpha_nominal,
            Metric::Nominal,
        ),
        (
            "Krippendorff's α (ordinal)",
            &report.alpha_ordinal,
            Metric::Ordinal,
        ),
        (
            "Krippendorff's α (interval)",
            &report.alpha_interval,
            Metric::Interval,
        ),
        (
            "Krippendorff's α (ratio)",
            &report.alpha_ratio,
            Metric::Ratio,
        ),
    ] {
        rows.push((
            name.to_string(),
            value(&a.coefficient),
            if metric == level.metric() {
                interval_for(intervals, CoefficientKind::KrippendorffAlpha(metric))
            } else {
                String::new()
            },
            format!(
                "D_o {:.4} / D_e {:.4}",
                a.observed_disagreement, a.expected_disagreement
            ),
        ));
    }
    let p = &report.percent;
    rows.push((
        "% agreement, mean over rater pairs".into(),
        value(&p.mean_pairwise),
        String::new(),
        String::new(),
    ));
    rows.push((
        "% agreement, agreeing pairs / all pairs".into(),
        value(&p.pairable),
        String::new(),
        String::new(),
    ));
    rows.push((
        "% agreement, unanimous items".into(),
        value(&p.unanimous),
        String::new(),
        String::new(),
    ));
    let mut out = format!(
        "{} items ({} with at least two ratings, {} excluded), {} raters, {} categories, level {:?}\n\n",
        report.items,
        report.items_pairable,
        report.items_excluded,
        report.raters,
        report.categories,
        level
    );
    let width = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(10);
    out.push_str(&format!(
        "{:width$}  {:>10}  {:18}  observed / chance\n",
        "coefficient", "value", "95% CI"
    ));
    for (name, v, ci, parts) in &rows {
        out.push_str(&format!("{name:width$}  {v:>10}  {ci:18}  {parts}\n"));
    }
    if !report.per_label.is_empty() {
        out.push_str("\nper category (one vs rest)\n");
        out.push_str(&format!(
            "{:20}  {:>8}  {:>10}  {:>10}  {:>10}\n",
            "category", "ratings", "Fleiss κ", "α", "specific"
        ));
        for l in &report.per_label {
            let name = categories
                .get(l.category)
                .cloned()
                .unwrap_or_else(|| l.category.to_string());
            out.push_str(&format!(
                "{:20}  {:>8}  {:>10}  {:>10}  {:>10}\n",
                name,
                l.ratings,
                value(&l.fleiss_kappa),
                value(&l.krippendorff_alpha),
                value(&l.specific_agreement)
            ));
        }
    }
    out
}

/// A span project's agreement as text: the headline F1 and α_U, then per entity type, per
/// annotator pair and per model version.
pub fn format_span_report(s: &concord_engine::SpanAgreementFigures) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let name = |i: usize| s.annotators.get(i).map_or("?", String::as_str);
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "\nspans: {} items with at least two answers, {} spans",
        s.items_compared, s.spans_compared
    );
    let alpha_u = match (&s.unitizing.alpha, &s.unitizing.note) {
        (Some(a), _) => value(&a.coefficient),
        (None, Some(note)) => format!("not computed ({note})"),
        (None, None) => "not computed".into(),
    };
    for (figure, v) in [
        (
            "span F1 exact, micro (mean over pairs)",
            value(&s.exact.micro_f1),
        ),
        (
            "span F1 exact, macro (mean over pairs)",
            value(&s.exact.macro_f1),
        ),
        (
            "span F1 overlap, micro (mean over pairs)",
            value(&s.overlap.micro_f1),
        ),
        (
            "span F1 overlap, macro (mean over pairs)",
            value(&s.overlap.macro_f1),
        ),
        (
            "unitizing α_U (items every annotator answered)",
            format!("{alpha_u} over {} items", s.unitizing.items),
        ),
        (
            "unitizing α_U (mean over pairs)",
            value(&s.unitizing_mean_pairwise),
        ),
    ] {
        let _ = writeln!(out, "{figure:48}  {v}");
    }
    let _ = writeln!(out, "\nentity types");
    let _ = writeln!(
        out,
        "{:20}  {:>7}  {:>10}  {:>10}  {:>10}",
        "type", "spans", "exact F1", "overlap F1", "α_U"
    );
    for t in &s.per_type {
        let _ = writeln!(
            out,
            "{:20}  {:>7}  {:>10}  {:>10}  {:>10}",
            t.label,
            t.spans,
            short(&t.exact_f1),
            short(&t.overlap_f1),
            short(&t.alpha_u)
        );
    }
    let _ = writeln!(out, "\nannotator pairs");
    let _ = writeln!(
        out,
        "{:20}  {:20}  {:>6}  {:>10}  {:>10}  {:>10}",
        "first", "second", "items", "exact F1", "overlap F1", "α_U"
    );
    for p in &s.pairs {
        let _ = writeln!(
            out,
            "{:20}  {:20}  {:>6}  {:>10}  {:>10}  {:>10}",
            name(p.first),
            name(p.second),
            p.items,
            short(&p.exact.micro_f1),
            short(&p.overlap.micro_f1),
            short(&p.unitizing.coefficient())
        );
    }
    if !s.model_raters.is_empty() {
        let _ = writeln!(out, "\nmodel versions as raters");
        let _ = writeln!(
            out,
            "{:24}  {:>6}  {:>16}  {:>14}  {:>16}",
            "version", "items", "mean exact F1", "gold exact F1", "gold overlap F1"
        );
        for m in &s.model_raters {
            let version = match &m.name {
                Some(n) => format!("v{} {n} ({})", m.version, m.trainer),
                None => format!("v{} ({})", m.version, m.trainer),
            };
            let _ = writeln!(
                out,
                "{:24}  {:>6}  {:>16}  {:>14}  {:>16}",
                version,
                m.items,
                m.mean_exact_f1
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or_else(|| "—".into()),
                short(&m.gold.exact_f1),
                short(&m.gold.overlap_f1)
            );
        }
    }
    out
}

/// A coefficient for a table cell: four decimals, or a dash when undefined.
fn short(c: &Coefficient) -> String {
    c.value()
        .map(|v| format!("{v:.4}"))
        .unwrap_or_else(|| "—".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_span_report_names_every_figure_and_pair() {
        let undefined = serde_json::json!({"undefined": "no_spans"});
        let pair_f1 = |micro: f64| serde_json::json!({"matching": "exact", "per_label": [], "micro_f1": {"value": micro}, "macro_f1": {"value": micro}});
        let figures: concord_engine::SpanAgreementFigures = serde_json::from_value(serde_json::json!({
            "annotators": ["ann", "bob"],
            "items_compared": 2,
            "spans_compared": 8,
            "exact": {"micro_f1": {"value": 0.25}, "macro_f1": {"value": 0.2}},
            "overlap": {"micro_f1": {"value": 0.75}, "macro_f1": undefined},
            "per_type": [{"label": "loc", "spans": 5, "exact_f1": {"value": 0.4}, "overlap_f1": {"value": 0.8}, "alpha_u": undefined}],
            "pairs": [{"first": 0, "second": 1, "items": 2, "exact": pair_f1(0.25), "overlap": pair_f1(0.75),
                       "unitizing": {"items": 2, "length": 40, "alpha": null, "note": "too many"}}],
            "unitizing": {"items": 0, "length": 0, "alpha": null, "note": "no item was answered by all of these annotators"},
            "unitizing_mean_pairwise": undefined,
            "annotator_stats": [],
            "model_raters": []
        }))
        .unwrap();
        let text = format_span_report(&figures);
        assert!(
            text.contains("2 items with at least two answers, 8 spans"),
            "{text}"
        );
        assert!(
            text.contains("span F1 exact, micro (mean over pairs)"),
            "{text}"
        );
        assert!(text.contains("0.2500"), "{text}");
        assert!(
            text.contains("not computed (no item was answered"),
            "{text}"
        );
        let loc = text.lines().find(|l| l.starts_with("loc ")).unwrap();
        assert!(loc.contains("0.4000") && loc.contains("0.8000"), "{loc}");
        let pair = text.lines().find(|l| l.starts_with("ann ")).unwrap();
        assert!(pair.contains("bob") && pair.contains("0.7500"), "{pair}");
    }

    fn check_alpha(name: &str, input: &str, level: Level, expected: f64) {
        let table = parse_ratings(name, input.as_bytes()).unwrap();
        let ratings = to_ratings(&table, level, None).unwrap();
        let (report, _) = compute(&ratings, level);
        let alpha = match level {
            Level::Nominal => report.alpha_nominal,
            Level::Ordinal => report.alpha_ordinal,
            Level::Interval => report.alpha_interval,
            Level::Ratio => report.alpha_ratio,
        };
        let got = alpha.coefficient.value().unwrap();
        assert!((got - expected).abs() < 1e-9, "{name}: {got} vs {expected}");
    }

    // Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 raters × 12
    // units example with missing values: nominal α = 0.743, interval α = 0.849.
    const K2011_CSV: &str = "item,A,B,C,D
1,1,1,,1
2,2,2,3,2
3,3,3,3,3
4,3,3,3,3
5,2,2,2,2
6,1,2,3,4
7,4,4,4,4
8,1,1,2,1
9,2,2,2,2
10,,5,5,5
11,,,1,1
12,,,3,
";

    #[test]
    fn csv_and_json_give_the_published_alphas() {
        check_alpha("k.csv", K2011_CSV, Level::Nominal, 0.743_421_052_631_578_9);
        check_alpha("k.csv", K2011_CSV, Level::Interval, 0.849_107_142_857_142_8);
        let json = r#"[[1,1,null,1],[2,2,3,2],[3,3,3,3],[3,3,3,3],[2,2,2,2],[1,2,3,4],
            [4,4,4,4],[1,1,2,1],[2,2,2,2],[null,5,5,5],[null,null,1,1],[null,null,3,null]]"#;
        check_alpha("k.json", json, Level::Nominal, 0.743_421_052_631_578_9);
    }

    #[test]
    fn json_objects_name_the_raters_and_missing_ones_are_missing() {
        let t = parse_ratings(
            "r.json",
            br#"[{"ann":"pos","bob":"neg"},{"ann":"pos","cy":"pos"}]"#,
        )
        .unwrap();
        assert_eq!(t.raters, ["ann", "bob", "cy"]);
        assert_eq!(
            t.rows,
            [
                vec![Some("pos".into()), Some("neg".into()), None],
                vec![Some("pos".into()), None, Some("pos".into())]
            ]
        );
    }

    #[test]
    fn bad_files_get_errors_that_say_where() {
        let err = parse_ratings("r.csv", b"a,b\n1,2\n1,2,3\n").unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
        // After a quoted field spanning two lines and a blank line, the bad record is on
        // line 5, not the third record's "line 4".
        let err = parse_ratings("r.csv", b"a,b\n\"x\ny\",1\n\n1,2,3\n").unwrap_err();
        assert!(err.starts_with("line 5:"), "{err}");
        let err = parse_ratings("r.csv", b"a,b\r\n1,2\r\n\r\n1,2,3\r\n").unwrap_err();
        assert!(err.starts_with("line 4:"), "{err}");
        let err = parse_ratings("r.csv", b"a\n1\n").unwrap_err();
        assert!(err.contains("two rater columns"), "{err}");
        let err = parse_ratings("r.json", b"[[1,2],[1]]").unwrap_err();
        assert!(err.starts_with("item 2:"), "{err}");
        let table = parse_ratings("r.csv", b"a,b\npos,neg\n").unwrap();
        let err = to_ratings(&table, Level::Interval, None).unwrap_err();
        assert!(err.contains("\"pos\" is not a number"), "{err}");
        assert!(to_ratings(&table, Level::Nominal, None).is_ok());
    }

    #[test]
    fn the_table_lists_every_coefficient() {
        let table = parse_ratings("k.csv", K2011_CSV.as_bytes()).unwrap();
        let ratings = to_ratings(&table, Level::Nominal, None).unwrap();
        let (report, intervals) = compute(&ratings, Level::Nominal);
        let text = format_report(&report, &intervals, Level::Nominal, ratings.labels());
        for needle in [
            "12 items (11 with at least two ratings, 1 excluded), 4 raters",
            "Fleiss' κ",
            "Gwet's AC1",
            "Brennan–Prediger",
            "Cohen's κ, mean of 6 pairs",
            "% agreement, unanimous items",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        let alpha_line = text
            .lines()
            .find(|l| l.starts_with("Krippendorff's α (nominal)"))
            .unwrap();
        assert!(alpha_line.contains("0.7434"), "{alpha_line}");
    }

    // R irr's `anxiety` data, raters 2 and 3 (a published case: ../shared/agreement,
    // R_irr_anxiety_raters2_3). The scale is 1–6 but nobody chose 5.
    const ANXIETY_CSV: &str = "item,rater2,rater3
1,3,2
2,6,1
3,4,4
4,6,4
5,2,3
6,4,2
7,2,1
8,4,6
9,3,1
10,3,1
11,2,1
12,3,2
13,3,3
14,3,3
15,2,1
16,2,1
17,1,3
18,3,3
19,3,2
20,4,2
";

    fn anxiety(level: Level, categories: Option<&[String]>) -> AgreementReport {
        let table = parse_ratings("anxiety.csv", ANXIETY_CSV.as_bytes()).unwrap();
        let ratings = to_ratings(&table, level, categories).unwrap();
        compute(&ratings, level).0
    }

    fn close(what: &str, got: &Coefficient, want: f64) {
        let got = got.value().unwrap_or(f64::NAN);
        assert!((got - want).abs() < 1e-12, "{what}: {got} vs {want}");
    }

    /// Reference values: irrCAC 0.4.4 (`CAC(ratings, weights=W, categories=C).gwet()` and
    /// `.bp()`) and krippendorff 0.9.0 (`alpha(..., value_domain=C)`), C = [1, 2, 3, 4, 5, 6]
    /// or left out.
    #[test]
    fn declared_categories_count_the_unused_one_as_irrcac_does() {
        let scale: Vec<String> = (1..=6).map(|k| k.to_string()).collect();
        // (level, AC2 with the level's weights: without, with the scale)
        let cases = [
            (
                Level::Nominal,
                0.011_201_235_998_455_04,
                0.055_768_663_322_514_03,
            ),
            (
                Level::Ordinal,
                0.440_223_910_435_825_6,
                0.543_252_595_155_709_2,
            ),
            (
                Level::Interval,
                0.550_450_010_593_904_2,
                0.589_709_097_023_709_8,
            ),
            (
                Level::Ratio,
                0.326_619_470_343_605_17,
                0.365_173_215_405_065_9,
            ),
        ];
        for (level, present, declared) in cases {
            let without = anxiety(level, None);
            let with = anxiety(level, Some(&scale));
            assert_eq!((without.categories, with.categories), (5, 6));
            close(
                &format!("{level:?} AC2, values present"),
                &without.gwet_ac2.coefficient,
                present,
            );
            close(
                &format!("{level:?} AC2, scale 1–6"),
                &with.gwet_ac2.coefficient,
                declared,
            );
            close(
                "AC1, values present",
                &without.gwet_ac1.coefficient,
                0.011_201_235_998_455_04,
            );
            close(
                "AC1, scale 1–6",
                &with.gwet_ac1.coefficient,
                0.055_768_663_322_514_03,
            );
            close(
                "Brennan–Prediger, values present",
                &without.brennan_prediger.coefficient,
                0.0,
            );
            close(
                "Brennan–Prediger, scale 1–6",
                &with.brennan_prediger.coefficient,
                0.04,
            );
            // α counts only pairable values: krippendorff gives the same with `value_domain`.
            for (name, a, want) in [
                ("nominal", &with.alpha_nominal, -0.021_276_595_744_680_993),
                ("ordinal", &with.alpha_ordinal, 0.176_491_306_954_436_5),
                ("interval", &with.alpha_interval, 0.173_671_413_685_307_36),
                ("ratio", &with.alpha_ratio, 0.065_442_339_954_410_51),
            ] {
                close(&format!("α {name}, scale 1–6"), &a.coefficient, want);
            }
        }
    }

    #[test]
    fn ratings_outside_the_declared_categories_are_refused() {
        let table = parse_ratings("anxiety.csv", ANXIETY_CSV.as_bytes()).unwrap();
        let five: Vec<String> = (1..=5).map(|k| k.to_string()).collect();
        let err = to_ratings(&table, Level::Ordinal, Some(&five)).unwrap_err();
        assert!(
            err.starts_with("item 2, rater \"rater2\": \"6\" is not one of the categories"),
            "{err}"
        );
        let backwards: Vec<String> = (1..=6).rev().map(|k| k.to_string()).collect();
        let err = to_ratings(&table, Level::Ordinal, Some(&backwards)).unwrap_err();
        assert!(err.contains("ascending order"), "{err}");
        let labels = parse_ratings("l.csv", b"a,b\npos,neg\npos,pos\n").unwrap();
        let three: Vec<String> = ["pos", "neg", "neutral"].map(String::from).to_vec();
        let ratings = to_ratings(&labels, Level::Nominal, Some(&three)).unwrap();
        assert_eq!(ratings.labels(), three.as_slice());
        let err = to_ratings(&labels, Level::Ordinal, Some(&three)).unwrap_err();
        assert!(err.contains("\"pos\" is not a number"), "{err}");
    }
}
