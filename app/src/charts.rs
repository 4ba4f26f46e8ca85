//! Charts drawn as SVG by the components themselves (rendered on the server, no chart
//! JavaScript). Each chart sits next to a table holding the same numbers.

use leptos::prelude::*;

/// Formats a coefficient for display.
pub fn fmt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "—".into())
}

/// A fill colour for `v` on a scale from `lo` (white) to `hi` (deep blue); negative agreement
/// is red.
fn fill(v: Option<f64>, lo: f64, hi: f64) -> String {
    let Some(v) = v else {
        return "#eeeeee".into();
    };
    if v < 0.0 {
        let t = (-v).min(1.0);
        let c = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
        return format!(
            "#{:02x}{:02x}{:02x}",
            c(255.0, 220.0),
            c(255.0, 38.0),
            c(255.0, 38.0)
        );
    }
    let t = ((v - lo) / (hi - lo).max(f64::EPSILON)).clamp(0.0, 1.0);
    let c = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        c(255.0, 29.0),
        c(255.0, 78.0),
        c(255.0, 216.0)
    )
}

/// Text colour readable on [`fill`].
fn ink(v: Option<f64>, lo: f64, hi: f64) -> &'static str {
    match v {
        Some(v) if v >= 0.0 && (v - lo) / (hi - lo).max(f64::EPSILON) > 0.55 => "#ffffff",
        _ => "#111111",
    }
}

/// A labelled estimate with its interval, if any.
pub type Estimate = (String, Option<f64>, Option<(f64, f64)>);

/// Point estimates with interval whiskers on a −0.2…1 axis (values below are clamped).
#[component]
pub fn IntervalChart(rows: Vec<Estimate>) -> impl IntoView {
    let (left, width, row_h) = (330.0, 300.0, 26.0);
    let height = rows.len() as f64 * row_h + 30.0;
    let x = move |v: f64| left + (v.clamp(-0.2, 1.0) + 0.2) / 1.2 * width;
    let ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
    view! {
        <svg class="chart" viewBox=format!("0 0 {} {height}", left + width + 20.0) role="img" aria-label="Coefficients with 95% intervals">
            {ticks.iter().map(|t| view! {
                <line x1=x(*t) x2=x(*t) y1="0" y2=height - 20.0 stroke="#dddddd"/>
                <text x=x(*t) y=height - 6.0 font-size="11" text-anchor="middle">{format!("{t:.1}")}</text>
            }).collect_view()}
            {rows.into_iter().enumerate().map(|(i, (name, v, ci))| {
                let y = i as f64 * row_h + 14.0;
                view! {
                    <text x=left - 8.0 y=y + 4.0 font-size="12" text-anchor="end">{name}</text>
                    {ci.map(|(lo, hi)| view! { <line x1=x(lo) x2=x(hi) y1=y y2=y stroke="#1d4ed8" stroke-width="2"/> })}
                    {v.map(|v| view! { <circle cx=x(v) cy=y r="5" fill="#1d4ed8"><title>{format!("{v:.4}")}</title></circle> })}
                }
            }).collect_view()}
        </svg>
    }
}

/// A square heat map with the value printed in each cell.
#[component]
pub fn HeatMap(
    rows: Vec<String>,
    cols: Vec<String>,
    values: Vec<Vec<Option<f64>>>,
    /// Cell texts (defaults to the values).
    #[prop(optional)]
    texts: Option<Vec<Vec<String>>>,
    lo: f64,
    hi: f64,
    label: String,
) -> impl IntoView {
    let cell = 48.0;
    let left = 110.0;
    let top = 70.0;
    let width = left + cols.len() as f64 * cell + 10.0;
    let height = top + rows.len() as f64 * cell + 10.0;
    view! {
        <svg class="chart heatmap" viewBox=format!("0 0 {width} {height}") role="img" aria-label=label>
            {cols.iter().enumerate().map(|(j, c)| {
                let cx = left + j as f64 * cell + cell / 2.0;
                view! { <text x=cx y=top - 8.0 font-size="12" text-anchor="start" transform=format!("rotate(-45 {cx} {})", top - 8.0)>{c.clone()}</text> }
            }).collect_view()}
            {rows.iter().enumerate().map(|(i, r)| {
                let y = top + i as f64 * cell;
                let row_values = values.get(i).cloned().unwrap_or_default();
                let row_texts = texts.as_ref().and_then(|t| t.get(i).cloned());
                view! {
                    <text x=left - 8.0 y=y + cell / 2.0 + 4.0 font-size="12" text-anchor="end">{r.clone()}</text>
                    {row_values.into_iter().enumerate().map(|(j, v)| {
                        let x = left + j as f64 * cell;
                        let text = row_texts.as_ref().and_then(|t| t.get(j).cloned()).unwrap_or_else(|| v.map(|v| format!("{v:.2}")).unwrap_or_default());
                        view! {
                            <rect x=x y=y width=cell - 2.0 height=cell - 2.0 fill=fill(v, lo, hi)/>
                            <text x=x + cell / 2.0 - 1.0 y=y + cell / 2.0 + 4.0 font-size="12" text-anchor="middle" fill=ink(v, lo, hi)>{text}</text>
                        }
                    }).collect_view()}
                }
            }).collect_view()}
        </svg>
    }
}

/// Two series over days: α per day (dots) and cumulative α (line).
/// Values over labelled steps (days, model versions): each step's first value as a dot, the
/// second as a line.
#[component]
pub fn SeriesChart(
    days: Vec<(String, Option<f64>, Option<f64>)>,
    #[prop(default = "Agreement per day")] title: &'static str,
) -> impl IntoView {
    let (left, top, width, height) = (40.0, 10.0, 560.0, 160.0);
    let n = days.len().max(1);
    let step = if n > 1 { width / (n - 1) as f64 } else { 0.0 };
    let x = move |i: usize| left + if n > 1 { i as f64 * step } else { width / 2.0 };
    let y = move |v: f64| top + (1.0 - (v.clamp(-0.2, 1.0) + 0.2) / 1.2) * height;
    let line: String = days
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.2.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
        .collect::<Vec<_>>()
        .join(" ");
    view! {
        <svg class="chart" viewBox=format!("0 0 {} {}", left + width + 20.0, top + height + 40.0) role="img" aria-label=title>
            {[0.0, 0.5, 1.0].iter().map(|t| view! {
                <line x1=left x2=left + width y1=y(*t) y2=y(*t) stroke="#dddddd"/>
                <text x=left - 6.0 y=y(*t) + 4.0 font-size="11" text-anchor="end">{format!("{t:.1}")}</text>
            }).collect_view()}
            <polyline points=line fill="none" stroke="#1d4ed8" stroke-width="2"/>
            {days.into_iter().enumerate().map(|(i, (day, alpha, _))| view! {
                {alpha.map(|v| view! { <circle cx=x(i) cy=y(v) r="4" fill="#f59e0b"><title>{format!("{day}: {v:.4}")}</title></circle> })}
                <text x=x(i) y=top + height + 18.0 font-size="11" text-anchor="middle">{day}</text>
            }).collect_view()}
        </svg>
    }
}
