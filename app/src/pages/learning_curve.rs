//! The project page's learning curve: each trained version as a point (confirmed labels →
//! held-out score) with its bootstrap interval as a whisker, the fitted inverse power law
//! dashed, the majority-label rate (span projects: the patterns' F1) and the target as
//! reference lines, the sentence that says how many more labels the target needs (or why it
//! cannot say), and the rounds of the loop in a table with the same numbers.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::project_learning_curve;
use crate::charts::fmt;
use crate::components::error_text;
use crate::wire::{CurvePointView, LearningCurveView, RoundView, ScoredView};

/// The page's query parameter holding the target, in percent (a plain GET form sets it, so it
/// works before the page hydrates).
const TARGET_PARAM: &str = "curve_target";

#[cfg(feature = "ssr")]
impl From<concord_engine::LearningCurve> for LearningCurveView {
    fn from(c: concord_engine::LearningCurve) -> Self {
        use crate::wire::{
            BaselineView, CurveFitView, CurvePointView, PendingRoundView, RoundView, ScoredView,
        };
        let scored = |s: concord_engine::Scored| ScoredView {
            value: s.value,
            interval: s.interval.map(|i| (i.low, i.high)),
        };
        LearningCurveView {
            metric: match c.metric {
                concord_engine::CurveMetric::Accuracy => "accuracy",
                concord_engine::CurveMetric::SpanF1 => "span_f1",
            }
            .into(),
            points: c
                .points
                .into_iter()
                .map(|p| CurvePointView {
                    version: p.version,
                    trainer: p.trainer,
                    auto: p.auto.is_some(),
                    labels: p.labels,
                    held_out_items: p.held_out_items,
                    score: scored(p.score),
                    macro_f1: p.macro_f1.map(scored),
                })
                .collect(),
            fit: c.fit.map(|f| CurveFitView {
                a: f.a,
                b: f.b,
                c: f.c,
                residual: f.residual,
            }),
            labels_now: c.labels_now,
            target: c.target,
            target_is_default: c.target_is_default,
            labels_needed: c.labels_needed,
            more_labels: c.more_labels,
            why_not: c.why_not,
            baseline: c.baseline.map(|b| BaselineView {
                name: b.name,
                value: b.value,
            }),
            rounds: c
                .rounds
                .into_iter()
                .map(|r| RoundView {
                    round: r.round,
                    version: r.version,
                    trainer: r.trainer,
                    auto: r.auto.is_some(),
                    labels: r.labels,
                    labels_added: r.labels_added,
                    score: r.score,
                    change: r.change,
                    answers: r.answers,
                    annotator_ms: r.annotator_ms,
                    wall_ms: r.wall_ms,
                    activated: r.activated,
                })
                .collect(),
            pending: c.pending.map(|p| PendingRoundView {
                labels_added: p.labels_added,
                answers: p.answers,
                annotator_ms: p.annotator_ms,
            }),
        }
    }
}

/// The learning-curve card (reviewers and admins).
#[component]
pub fn LearningCurveCard(id: u64) -> impl IntoView {
    let query = use_query_map();
    let target = move || {
        query
            .read()
            .get(TARGET_PARAM)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| *v > 0.0 && *v <= 100.0)
            .map(|v| v / 100.0)
    };
    let curve = Resource::new(target, move |t| project_learning_curve(id, t));
    view! {
        <section class="card" data-testid="learning-curve">
            <h2>"Learning curve"</h2>
            <Transition fallback=|| view! { <p class="loading">"Loading the learning curve…"</p> }>
                {move || Suspend::new(async move {
                    match curve.await {
                        Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                        Ok(c) => curve_view(c).into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

fn curve_view(c: LearningCurveView) -> impl IntoView {
    let metric = metric_name(&c.metric);
    let target_percent = c.target.map(|t| format!("{:.1}", 100.0 * t));
    view! {
        <p data-testid="curve-estimate">{estimate_sentence(&c)}</p>
        {(!c.points.is_empty()).then(|| view! {
            <CurveChart curve=c.clone()/>
            <p class="muted">{format!(
                "Dots: each trained version's held-out {metric} (hollow: trained by the loop on its own); bars: 95% bootstrap intervals; dashed: the fitted curve."
            )}</p>
        })}
        <form method="get" class="row">
            <label>{format!("Target {metric} (%) ")}
                <input type="number" name=TARGET_PARAM min="1" max="100" step="0.1" value=target_percent data-testid="curve-target"/>
            </label>
            <button type="submit">"Estimate"</button>
        </form>
        {rounds_table(&c)}
    }
}

/// `accuracy` or `span F1`, as the sentence and the headers say it.
fn metric_name(metric: &str) -> &'static str {
    match metric {
        "span_f1" => "span F1",
        _ => "accuracy",
    }
}

/// How many more labels the target needs, by the fitted curve, or why that cannot be said.
pub fn estimate_sentence(c: &LearningCurveView) -> String {
    let metric = metric_name(&c.metric);
    let fit = c.fit.map(|f| {
        format!(
            "fit: {:.3} − {:.3}·n^−{:.2}, residual {:.3}",
            f.a, f.b, f.c, f.residual
        )
    });
    let target = c.target.map(|t| {
        let default = match (c.target_is_default, c.fit) {
            (true, Some(f)) if f.a > 0.0 => {
                format!(", {:.0}% of the fitted ceiling {:.3}", 100.0 * t / f.a, f.a)
            }
            _ => String::new(),
        };
        format!("{metric} {t:.3}{default}")
    });
    match (c.more_labels, target, fit) {
        (Some(0), Some(target), Some(fit)) => format!(
            "The fitted curve already reaches {target} at the {} confirmed labels there are ({fit}).",
            c.labels_now
        ),
        (Some(more), Some(target), Some(fit)) => format!(
            "About {more} more labels to reach {target} ({} in all; {fit}).",
            c.labels_needed.unwrap_or(c.labels_now + more)
        ),
        (_, target, fit) => {
            let why = c.why_not.clone().unwrap_or_else(|| "no estimate".into());
            let what = match target {
                Some(target) => format!("Cannot say how many labels reach {target}"),
                None => "Cannot estimate the labels a target needs".to_string(),
            };
            match fit {
                Some(fit) => format!("{what}: {why} ({fit})."),
                None => format!("{what}: {why}."),
            }
        }
    }
}

/// Plot area of the chart, in SVG units.
const LEFT: f64 = 48.0;
const TOP: f64 = 12.0;
const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 200.0;
/// How far past the newest point the axis may stretch to show where the target is reached.
const MAX_STRETCH: f64 = 20.0;

/// The label axis (logarithmic: a power law's early steps and late steps both show):
/// from below the first point to past the last one, the labels there are now, and the labels
/// the target needs when that is not far beyond.
pub fn label_domain(c: &LearningCurveView) -> (f64, f64) {
    let labels = c.points.iter().map(|p| p.labels as f64);
    let lo = (labels.clone().fold(f64::INFINITY, f64::min) / 1.25).max(1.0);
    let mut hi = labels.fold(c.labels_now as f64, f64::max);
    if let Some(needed) = c.labels_needed {
        if (needed as f64) <= hi * MAX_STRETCH {
            hi = hi.max(needed as f64);
        }
    }
    let hi = hi * 1.25;
    if lo.is_finite() && hi > lo * 1.5 {
        (lo, hi)
    } else {
        (lo.min(hi).max(1.0), lo.min(hi).max(1.0) * 2.0)
    }
}

/// Ticks at 1, 2 and 5 times the powers of ten inside `[lo, hi]` (only the powers when
/// those are too many); on a short axis, where fewer than three of those fall inside, evenly
/// spaced round numbers instead (200, 250, 300…).
pub fn label_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    let mut ticks: Vec<f64> = (first..=last)
        .flat_map(|k| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(k)))
        .filter(|v| *v >= lo && *v <= hi)
        .collect();
    if ticks.len() > 8 {
        ticks.retain(|v| (v.log10() - v.log10().round()).abs() < 1e-9);
    }
    if ticks.len() >= 3 {
        return ticks;
    }
    // A round step giving about four ticks: 1, 2 or 5 times a power of ten (at least 1).
    let rough = (hi - lo) / 4.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= rough)
        .unwrap_or(10.0 * power)
        .max(1.0);
    let mut tick = (lo / step).ceil() * step;
    let mut even = Vec::new();
    while tick <= hi && even.len() < 12 {
        even.push(tick);
        tick += step;
    }
    even
}

/// The score axis: from a tenth below the lowest value shown (interval ends, references) up
/// to 1.
fn score_domain(c: &LearningCurveView) -> (f64, f64) {
    let mut values: Vec<f64> = c
        .points
        .iter()
        .flat_map(|p| [Some(p.score.value), p.score.interval.map(|i| i.0)])
        .flatten()
        .collect();
    values.extend(c.baseline.as_ref().map(|b| b.value));
    values.extend(c.target);
    let lowest = values.into_iter().fold(1.0, f64::min);
    let lo = ((lowest - 0.05) * 10.0).floor() / 10.0;
    (lo.clamp(0.0, 0.9), 1.0)
}

/// The learning curve as SVG.
#[component]
fn CurveChart(curve: LearningCurveView) -> impl IntoView {
    let (xlo, xhi) = label_domain(&curve);
    let (ylo, yhi) = score_domain(&curve);
    let x = move |n: f64| LEFT + (n.max(xlo).ln() - xlo.ln()) / (xhi.ln() - xlo.ln()) * WIDTH;
    let y = move |v: f64| TOP + (1.0 - (v.clamp(ylo, yhi) - ylo) / (yhi - ylo)) * HEIGHT;
    let metric = metric_name(&curve.metric);
    let fitted: Option<String> = curve.fit.map(|f| {
        (0..=80)
            .map(|i| {
                let n = (xlo.ln() + (xhi.ln() - xlo.ln()) * f64::from(i) / 80.0).exp();
                format!("{:.1},{:.1}", x(n), y(f.score_at(n)))
            })
            .collect::<Vec<_>>()
            .join(" ")
    });
    let score_ticks: Vec<f64> = (0..=10)
        .map(|i| f64::from(i) / 10.0)
        .filter(|t| *t >= ylo - 1e-9)
        .collect();
    let bottom = TOP + HEIGHT;
    let reference = |value: f64, colour: &'static str, dash: &'static str, text: String| {
        view! {
            <line x1=LEFT x2=LEFT + WIDTH y1=y(value) y2=y(value) stroke=colour stroke-width="1.5" stroke-dasharray=dash/>
            <text x=LEFT + WIDTH - 4.0 y=y(value) - 4.0 font-size="11" text-anchor="end" fill=colour>{text}</text>
        }
    };
    let needed_marker = match (curve.labels_needed, curve.target) {
        (Some(n), Some(t)) if (n as f64) <= xhi => Some(view! {
            <line x1=x(n as f64) x2=x(n as f64) y1=y(t) y2=bottom stroke="#ea580c" stroke-dasharray="2 3"/>
            <text x=x(n as f64) y=bottom - 4.0 font-size="11" text-anchor="middle" fill="#ea580c">{n.to_string()}</text>
        }),
        _ => None,
    };
    view! {
        <svg class="chart" viewBox=format!("0 0 {} {}", LEFT + WIDTH + 20.0, bottom + 40.0) role="img"
            aria-label=format!("Held-out {metric} by confirmed labels, with 95% intervals and the fitted curve")>
            {score_ticks.into_iter().map(|t| view! {
                <line x1=LEFT x2=LEFT + WIDTH y1=y(t) y2=y(t) stroke="#eeeeee"/>
                <text x=LEFT - 6.0 y=y(t) + 4.0 font-size="11" text-anchor="end">{format!("{t:.1}")}</text>
            }).collect_view()}
            {label_ticks(xlo, xhi).into_iter().map(|n| view! {
                <line x1=x(n) x2=x(n) y1=TOP y2=bottom stroke="#eeeeee"/>
                <text x=x(n) y=bottom + 16.0 font-size="11" text-anchor="middle">{format!("{n:.0}")}</text>
            }).collect_view()}
            <text x=LEFT + WIDTH / 2.0 y=bottom + 34.0 font-size="12" text-anchor="middle">"confirmed labels (log scale)"</text>
            {curve.baseline.clone().map(|b| reference(b.value, "#6b7280", "8 3 2 3", format!("{} {:.3}", b.name, b.value)))}
            {curve.target.map(|t| reference(t, "#ea580c", "2 3", format!("target {t:.3}")))}
            {needed_marker}
            {fitted.map(|points| view! { <polyline points=points fill="none" stroke="#1d4ed8" stroke-width="1.5" stroke-dasharray="6 4" data-testid="curve-fit"/> })}
            {curve.points.iter().map(|p| point_view(p, metric, x, y)).collect_view()}
        </svg>
    }
}

/// One version: its whisker, its dot (hollow when the loop trained it on its own), and a
/// tooltip with the numbers.
fn point_view(
    p: &CurvePointView,
    metric: &'static str,
    x: impl Fn(f64) -> f64,
    y: impl Fn(f64) -> f64,
) -> impl IntoView {
    let cx = x(p.labels as f64);
    let title = format!(
        "v{} ({}{}): {} labels, {metric} {} on {} held-out items",
        p.version,
        p.trainer.replace('_', "-"),
        if p.auto { ", automatic" } else { "" },
        p.labels,
        scored_text(&p.score),
        p.held_out_items
    );
    view! {
        {p.score.interval.map(|(lo, hi)| view! { <line x1=cx x2=cx y1=y(lo) y2=y(hi) stroke="#1d4ed8" stroke-width="2"/> })}
        <circle cx=cx cy=y(p.score.value) r="5" fill=if p.auto { "#ffffff" } else { "#1d4ed8" } stroke="#1d4ed8" stroke-width="2"
            data-testid="curve-point" data-version=p.version.to_string()>
            <title>{title}</title>
        </circle>
    }
}

/// A figure with its interval: `0.812 [0.750, 0.870]`.
fn scored_text(s: &ScoredView) -> String {
    match s.interval {
        Some((lo, hi)) => format!("{:.3} [{lo:.3}, {hi:.3}]", s.value),
        None => format!("{:.3}", s.value),
    }
}

/// A duration for people: `45 s`, `3 min 20 s`, `2 h 5 min`.
pub fn duration_text(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

/// The rounds of the loop, newest first, with the work since the newest version on top.
fn rounds_table(c: &LearningCurveView) -> Option<impl IntoView> {
    if c.rounds.is_empty() {
        return None;
    }
    let metric = metric_name(&c.metric);
    let labels = !c.metric.starts_with("span");
    let point = |version: u64| c.points.iter().find(|p| p.version == version).cloned();
    let pending = c
        .pending
        .clone()
        .filter(|p| p.answers > 0 || p.labels_added.is_some_and(|n| n != 0));
    let newest = c.rounds.last().map(|r| r.version);
    let rows: Vec<(RoundView, Option<CurvePointView>)> = c
        .rounds
        .iter()
        .rev()
        .map(|r| (r.clone(), point(r.version)))
        .collect();
    Some(view! {
        <table class="data" data-testid="curve-rounds">
            <thead><tr>
                <th>"Round"</th><th>"Version"</th><th class="num">"Labels added"</th><th class="num">"Labels"</th>
                <th class="num">{format!("Held-out {metric} [95%]")}</th>
                {labels.then(|| view! { <th class="num">"Macro-F1"</th> })}
                <th class="num">"Change"</th><th class="num">"Answers"</th><th class="num">"Annotator time"</th><th class="num">"Wall time"</th>
            </tr></thead>
            <tbody>
                {pending.map(|p| view! {
                    <tr data-testid="curve-pending">
                        <td>"next"</td><td>{newest.map(|v| format!("since v{v}")).unwrap_or_default()}</td>
                        <td class="num">{p.labels_added.map(signed).unwrap_or_default()}</td><td></td><td></td>
                        {labels.then(|| view! { <td></td> })}
                        <td></td><td class="num">{p.answers}</td><td class="num">{duration_text(p.annotator_ms)}</td><td></td>
                    </tr>
                })}
                {rows.into_iter().map(|(r, p)| view! {
                    <tr data-round=r.round.to_string() data-version=r.version.to_string()>
                        <td>{r.round}</td>
                        <td>{format!("v{} {}", r.version, r.trainer.replace('_', "-"))}{r.auto.then_some(" (automatic)")}{(r.activated == Some(false)).then_some(", not activated")}</td>
                        <td class="num" data-testid="round-labels-added">{signed(r.labels_added)}</td>
                        <td class="num">{r.labels}</td>
                        <td class="num">{p.as_ref().map(|p| scored_text(&p.score)).unwrap_or_else(|| fmt(r.score))}</td>
                        {labels.then(|| view! { <td class="num">{p.as_ref().and_then(|p| p.macro_f1).map(|f| scored_text(&f)).unwrap_or_else(|| fmt(None))}</td> })}
                        <td class="num">{r.change.map(|d| format!("{d:+.3}")).unwrap_or_else(|| "—".into())}</td>
                        <td class="num">{r.answers}</td>
                        <td class="num" data-testid="round-annotator-time">{duration_text(r.annotator_ms)}</td>
                        <td class="num">{r.wall_ms.map(duration_text).unwrap_or_else(|| "—".into())}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    })
}

/// A count with its sign: `+12`, `-3`, `0`.
fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{n}")
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CurveFitView;

    fn curve(points: &[(u64, f64)]) -> LearningCurveView {
        LearningCurveView {
            metric: "accuracy".into(),
            points: points
                .iter()
                .enumerate()
                .map(|(i, &(labels, value))| CurvePointView {
                    version: i as u64 + 1,
                    trainer: "head".into(),
                    auto: false,
                    labels,
                    held_out_items: 20,
                    score: ScoredView {
                        value,
                        interval: Some((value - 0.1, value + 0.1)),
                    },
                    macro_f1: None,
                })
                .collect(),
            fit: None,
            labels_now: points.last().map_or(0, |p| p.0),
            target: None,
            target_is_default: false,
            labels_needed: None,
            more_labels: None,
            why_not: Some(
                "a curve needs points at 3 or more different label counts (found 2)".into(),
            ),
            baseline: None,
            rounds: Vec::new(),
            pending: None,
        }
    }

    #[test]
    fn the_sentence_says_how_many_more_labels_or_why_not() {
        let mut c = curve(&[(16, 0.7), (64, 0.8), (256, 0.85)]);
        assert_eq!(
            estimate_sentence(&c),
            "Cannot estimate the labels a target needs: a curve needs points at 3 or more different label counts (found 2)."
        );
        c.fit = Some(CurveFitView {
            a: 0.9,
            b: 0.8,
            c: 0.5,
            residual: 0.0,
        });
        c.why_not = None;
        c.target = Some(0.855);
        c.target_is_default = true;
        c.labels_needed = Some(317);
        c.more_labels = Some(61);
        assert_eq!(
            estimate_sentence(&c),
            "About 61 more labels to reach accuracy 0.855, 95% of the fitted ceiling 0.900 (317 in all; fit: 0.900 − 0.800·n^−0.50, residual 0.000)."
        );
        c.more_labels = Some(0);
        assert!(
            estimate_sentence(&c).starts_with("The fitted curve already reaches accuracy 0.855")
        );
        c.target = Some(0.95);
        c.target_is_default = false;
        c.labels_needed = None;
        c.more_labels = None;
        c.why_not = Some("the fitted curve levels off at 0.900, below the target 0.950".into());
        assert_eq!(
            estimate_sentence(&c),
            "Cannot say how many labels reach accuracy 0.950: the fitted curve levels off at 0.900, below the target 0.950 (fit: 0.900 − 0.800·n^−0.50, residual 0.000)."
        );
    }

    #[test]
    fn the_label_axis_spans_the_points_and_a_near_target() {
        let mut c = curve(&[(16, 0.7), (64, 0.8), (256, 0.85)]);
        let (lo, hi) = label_domain(&c);
        assert!(lo < 16.0 && hi > 256.0 && hi < 400.0, "{lo} {hi}");
        c.labels_needed = Some(1_000);
        assert!(label_domain(&c).1 >= 1_000.0);
        // A target far beyond the points does not squash them into a corner.
        c.labels_needed = Some(1_000_000);
        assert!(label_domain(&c).1 < 400.0);
        // One point still gives an axis.
        let one = curve(&[(40, 0.6)]);
        let (lo, hi) = label_domain(&one);
        assert!(lo < 40.0 && hi > 40.0, "{lo} {hi}");
    }

    #[test]
    fn label_ticks_are_round_numbers_inside_the_axis() {
        assert_eq!(label_ticks(12.8, 320.0), [20.0, 50.0, 100.0, 200.0]);
        assert_eq!(
            label_ticks(1.0, 1e6),
            [1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0]
        );
        assert_eq!(label_ticks(195.2, 370.0), [200.0, 250.0, 300.0, 350.0]);
        assert_eq!(label_ticks(21.0, 39.0), [25.0, 30.0, 35.0]);
        assert_eq!(label_ticks(1.0, 2.5), [1.0, 2.0]);
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn the_chart_draws_points_whiskers_the_fit_and_the_references() {
        let mut c = curve(&[(16, 0.7), (64, 0.8), (256, 0.85)]);
        c.points[2].score.interval = None;
        c.fit = Some(CurveFitView {
            a: 0.9,
            b: 0.8,
            c: 0.5,
            residual: 0.0,
        });
        c.target = Some(0.855);
        c.labels_needed = Some(317);
        c.baseline = Some(crate::wire::BaselineView {
            name: "majority label".into(),
            value: 0.5,
        });
        let html = Owner::new().with(|| view! { <CurveChart curve=c/> }.to_html());
        assert_eq!(
            html.matches("data-testid=\"curve-point\"").count(),
            3,
            "{html}"
        );
        // Whiskers only where there is an interval.
        assert_eq!(
            html.matches("stroke-width=\"2\"></line>").count(),
            2,
            "{html}"
        );
        assert_eq!(html.matches("data-testid=\"curve-fit\"").count(), 1);
        assert!(html.contains("majority label 0.500"), "{html}");
        assert!(html.contains("target 0.855"), "{html}");
        // Where the fit reaches the target, marked on the label axis.
        assert!(html.contains(">317</text>"), "{html}");
        assert!(
            html.contains("accuracy 0.800 [0.700, 0.900] on 20 held-out items"),
            "{html}"
        );
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration_text(900), "0 s");
        assert_eq!(duration_text(45_000), "45 s");
        assert_eq!(duration_text(200_000), "3 min 20 s");
        assert_eq!(duration_text(7_500_000), "2 h 5 min");
    }
}
