use leptos::prelude::*;

use crate::api::{current_user, project_agreement, rater_confusion};
use crate::charts::{fmt, HeatMap, IntervalChart, SeriesChart};
use crate::components::{error_text, project_id_param, ErrorOrLogin, TopBar};
use crate::wire::{AgreementView, RelationAgreementView, SpanAgreementView};

/// The agreement dashboard of one project (reviewers and admins).
#[component]
pub fn AgreementPage() -> impl IntoView {
    let id = project_id_param();
    let me = Resource::new(|| (), |_| current_user());
    let figures = Resource::new(id, project_agreement);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match (me.await, figures.await) {
                    (Ok(Some(user)), Ok(a)) => view! { <TopBar user/><Dashboard id=id() a/> }.into_any(),
                    (Ok(None), _) => view! { <leptos_router::components::Redirect path="/login"/> }.into_any(),
                    (Err(e), _) | (_, Err(e)) => view! { <ErrorOrLogin error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

fn csv_link(id: u64, table: &str) -> impl IntoView {
    view! { <a class="csv" href=format!("/projects/{id}/agreement/{table}.csv") download>"CSV"</a> }
}

/// A figure's cell: rounded to three decimals (a dash when undefined), with the unrounded
/// value in `data-value` so that tests can compare it exactly.
fn value_cell(value: Option<f64>) -> impl IntoView {
    view! {
        <td class="num" data-value=value.map(|v| v.to_string()).unwrap_or_default()>{fmt(value)}</td>
    }
}

/// The headline figures of the span and relation dashboards: one row per figure with its
/// value and, when it is undefined, why.
fn headline_table(
    testid: &'static str,
    figures: Vec<(&'static str, Option<f64>, Option<String>)>,
) -> AnyView {
    view! {
        <table class="data" data-testid=testid>
            <thead><tr><th>"figure"</th><th>"value"</th><th>"note"</th></tr></thead>
            <tbody>
                {figures.into_iter().map(|(name, value, note)| view! {
                    <tr data-name=name>
                        <td>{name}</td>
                        {value_cell(value)}
                        <td>{note.unwrap_or_default()}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// A model version's name in the rater tables: `v3`, or `v3 (name)` when it has one.
fn version_name(version: u64, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("v{version} ({n})"),
        None => format!("v{version}"),
    }
}

/// A score against gold, with the number of gold items it rests on; nothing without gold.
fn gold_score(items: u64, score: Option<f64>) -> Option<String> {
    (items > 0).then(|| format!("{} ({items} items)", fmt(score)))
}

#[component]
fn Dashboard(id: u64, a: AgreementView) -> impl IntoView {
    // Span answers have no item labels: the label coefficients would compare empty answers.
    if let Some(spans) = a.spans.clone() {
        return view! {
            <main class="page wide">
                <p><a href=format!("/projects/{id}")>"← Project"</a></p>
                <h1>"Agreement"</h1>
                <SpanDashboard id s=spans items_total=a.items_total items_answered=a.items_answered/>
                {a.relations.clone().map(|r| view! { <RelationDashboard id r/> })}
            </main>
        }
        .into_any();
    }
    let interval_rows: Vec<_> = a
        .coefficients
        .iter()
        .map(|c| (c.name.clone(), c.value, c.ci))
        .collect();
    let names = a.annotators.clone();
    let heat_texts: Vec<Vec<String>> = a
        .pair_kappa
        .iter()
        .enumerate()
        .map(|(g, row)| {
            row.iter()
                .enumerate()
                .map(|(h, v)| {
                    if g == h {
                        format!("{}", a.pair_shared[g][h])
                    } else {
                        v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "—".into())
                    }
                })
                .collect()
        })
        .collect();
    let days_chart: Vec<_> = a
        .days
        .iter()
        .map(|d| (d.day.clone(), d.alpha, d.cumulative))
        .collect();
    view! {
        <main class="page wide">
            <p><a href=format!("/projects/{id}")>"← Project"</a></p>
            <h1>"Agreement"</h1>
            <section class="card" data-testid="coverage">
                <p>{format!(
                    "{} of {} items answered · {} with at least two answers · {} excluded (fewer than two) · {} annotators · categories: {}{}",
                    a.items_answered, a.items_total, a.items_pairable, a.items_excluded,
                    a.annotators.len(), a.categories.join(", "),
                    if a.exact_sets { " (exact label sets)" } else { "" }
                )}</p>
            </section>
            <section class="card">
                <h2>"Coefficients " {csv_link(id, "coefficients")}</h2>
                <IntervalChart rows=interval_rows/>
                <table class="data" data-testid="coefficients">
                    <thead><tr><th>"coefficient"</th><th>"value"</th><th>"95% interval"</th></tr></thead>
                    <tbody>
                        {a.coefficients.iter().map(|c| view! {
                            <tr data-name=c.name.clone()>
                                <td>{c.name.clone()}</td>
                                {value_cell(c.value)}
                                <td>{match (c.ci, c.note.clone()) {
                                    (Some((lo, hi)), _) => format!("[{lo:.3}, {hi:.3}]"),
                                    (None, Some(note)) => note,
                                    (None, None) => String::new(),
                                }}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
                <p class="muted">"Intervals: percentile bootstrap over items, 1000 replicates, fixed seed. Percent agreement is given in three definitions."</p>
            </section>
            <section class="card">
                <h2>"Per label (one vs rest) " {csv_link(id, "labels")}</h2>
                <table class="data" data-testid="per-label">
                    <thead><tr><th>"label"</th><th>"ratings"</th><th>"Fleiss' κ"</th><th>"α"</th><th>"specific agreement"</th></tr></thead>
                    <tbody>
                        {a.labels.iter().map(|l| view! {
                            <tr><td>{l.name.clone()}</td><td class="num">{l.ratings}</td><td class="num">{fmt(l.kappa)}</td><td class="num">{fmt(l.alpha)}</td><td class="num">{fmt(l.specific)}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
            <section class="card">
                <h2>"Annotator pairs: Cohen's κ " {csv_link(id, "pairs")}</h2>
                <p class="muted">"The diagonal shows how many items each annotator answered."</p>
                <HeatMap rows=names.clone() cols=names.clone() values=a.pair_kappa.clone() texts=heat_texts lo=0.0 hi=1.0 label="Cohen's kappa per annotator pair".to_string()/>
            </section>
            {if names.len() >= 2 {
                view! { <Confusion id names=names.clone()/> }.into_any()
            } else {
                // A confusion matrix compares two annotators; asking for one with a single
                // annotator would name an annotator who does not exist.
                view! {
                    <section class="card" data-testid="confusion-needs-two">
                        <h2>"Confusion matrix"</h2>
                        <p class="muted">{format!(
                            "A confusion matrix compares two annotators; this project has answers from {}.",
                            if names.is_empty() { "none yet".to_string() } else { format!("one ({})", names[0]) }
                        )}</p>
                    </section>
                }.into_any()
            }}
            <section class="card">
                <h2>"Agreement over time " {csv_link(id, "days")}</h2>
                <SeriesChart days=days_chart/>
                <table class="data">
                    <thead><tr><th>"day"</th><th>"items"</th><th>"α that day"</th><th>"α so far"</th><th>"% agreeing pairs"</th></tr></thead>
                    <tbody>
                        {a.days.iter().map(|d| view! {
                            <tr><td>{d.day.clone()}</td><td class="num">{d.items}</td><td class="num">{fmt(d.alpha)}</td><td class="num">{fmt(d.cumulative)}</td><td class="num">{fmt(d.percent)}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
            <section class="card">
                <h2>"Annotators " {csv_link(id, "annotators")}</h2>
                <table class="data" data-testid="annotators">
                    <thead><tr><th>"annotator"</th><th>"items"</th><th>"seconds per item"</th><th>"κ with others"</th><th>"% agreeing with others"</th><th>"gold accuracy"</th></tr></thead>
                    <tbody>
                        {a.annotator_rows.iter().map(|r| view! {
                            <tr>
                                <td>{r.name.clone()}</td>
                                <td class="num">{r.items}</td>
                                <td class="num">{r.seconds_per_item.map(|s| format!("{s:.1}")).unwrap_or_default()}</td>
                                <td class="num">{fmt(r.kappa)}</td>
                                <td class="num">{r.percent.map(|p| format!("{:.1}%", p * 100.0)).unwrap_or_else(|| "—".into())}</td>
                                <td class="num">{(r.gold_answered > 0).then(|| format!("{}/{}", r.gold_correct, r.gold_answered))}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
            {(!a.models.is_empty()).then(|| {
                let human = a.coefficients.iter().find(|c| c.name.contains("Cohen")).and_then(|c| c.value);
                view! {
                    <section class="card">
                        <h2>"Model versions as raters " {csv_link(id, "models")}</h2>
                        <p class="muted">"Annotators among themselves: mean pairwise Cohen's κ " {fmt(human)}</p>
                        <table class="data" data-testid="model-raters">
                            <thead><tr><th>"version"</th><th>"trainer"</th><th>"items"</th><th>"mean κ with annotators"</th><th>"agrees with the majority"</th>
                                {a.annotators.iter().map(|n| view! { <th>{format!("κ with {n}")}</th> }).collect_view()}
                            </tr></thead>
                            <tbody>
                                {a.models.iter().map(|r| view! {
                                    <tr data-version=r.version.to_string()>
                                        <td>{format!("v{}", r.version)}</td>
                                        <td>{r.trainer.replace('_', "-")}</td>
                                        <td class="num">{r.items}</td>
                                        {value_cell(r.mean_kappa)}
                                        <td class="num">{r.majority.map(|p| format!("{:.1}%", p * 100.0)).unwrap_or_else(|| "—".into())}</td>
                                        {r.kappas.iter().map(|k| view! { <td class="num">{fmt(*k)}</td> }).collect_view()}
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </section>
                }
            })}
        </main>
    }
    // Type-erased: the dashboard's full view type is deep enough to overflow the compiler's
    // query depth where the server renders it.
    .into_any()
}

/// The confusion matrix of two annotators picked from lists.
#[component]
fn Confusion(id: u64, names: Vec<String>) -> impl IntoView {
    let first = RwSignal::new(names.first().cloned().unwrap_or_default());
    let second = RwSignal::new(names.get(1).cloned().unwrap_or_default());
    let matrix = Resource::new(
        move || (first.get(), second.get()),
        move |(a, b)| rater_confusion(id, a, b),
    );
    let options = move |selected: RwSignal<String>| {
        names
            .iter()
            .map(|n| {
                let (value, is, text) = (n.clone(), n.clone(), n.clone());
                view! { <option value=value selected=move || selected.get() == is>{text}</option> }
            })
            .collect_view()
    };
    let (first_options, second_options) = (options(first), options(second));
    view! {
        <section class="card">
            <h2>"Confusion matrix"</h2>
            <p>
                <label>"Rows " <select data-testid="confusion-first" on:change=move |ev| first.set(event_target_value(&ev))>{first_options}</select></label>" "
                <label>"Columns " <select data-testid="confusion-second" on:change=move |ev| second.set(event_target_value(&ev))>{second_options}</select></label>" "
                <a class="csv" href=move || format!("/projects/{id}/agreement/confusion.csv?a={}&b={}", first.get(), second.get()) download>"CSV"</a>
            </p>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match matrix.await {
                        Ok(c) => {
                            let max = c.counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
                            let values: Vec<Vec<Option<f64>>> = c.counts.iter().map(|r| r.iter().map(|v| Some(*v as f64)).collect()).collect();
                            let texts: Vec<Vec<String>> = c.counts.iter().map(|r| r.iter().map(|v| v.to_string()).collect()).collect();
                            view! {
                                <HeatMap rows=c.categories.iter().map(|k| format!("{}: {k}", c.first)).collect() cols=c.categories.clone() values texts lo=0.0 hi=max label=format!("Confusion matrix of {} and {}", c.first, c.second)/>
                                <table class="data" data-testid="confusion">
                                    <thead><tr><th>{format!("{} \\ {}", c.first, c.second)}</th>{c.categories.iter().map(|k| view! { <th>{k.clone()}</th> }).collect_view()}</tr></thead>
                                    <tbody>
                                        {c.counts.iter().enumerate().map(|(i, row)| view! {
                                            <tr><th>{c.categories[i].clone()}</th>{row.iter().map(|v| view! { <td class="num">{*v}</td> }).collect_view()}</tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                                <p class="muted">{format!("{} items answered by only one of the two are left out.", c.excluded)}</p>
                            }.into_any()
                        }
                        Err(e) => view! { <p class="muted">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// The dashboard's figures of a span project, from the engine's.
#[cfg(feature = "ssr")]
pub fn span_view(s: &concord_engine::SpanAgreementFigures) -> SpanAgreementView {
    use crate::wire::{SpanAnnotatorRow, SpanModelRow, SpanPairRow, SpanTypeRow};
    let name = |i: usize| s.annotators.get(i).cloned().unwrap_or_default();
    SpanAgreementView {
        annotators: s.annotators.clone(),
        items_compared: s.items_compared,
        spans_compared: s.spans_compared,
        exact_micro: s.exact.micro_f1.value(),
        exact_macro: s.exact.macro_f1.value(),
        overlap_micro: s.overlap.micro_f1.value(),
        overlap_macro: s.overlap.macro_f1.value(),
        alpha_u: s
            .unitizing
            .alpha
            .as_ref()
            .and_then(|a| a.coefficient.value()),
        alpha_u_items: s.unitizing.items,
        alpha_u_note: s.unitizing.note.clone().or_else(|| {
            s.unitizing
                .alpha
                .as_ref()
                .and_then(|a| a.coefficient.undefined_reason())
                .map(|r| r.to_string())
        }),
        alpha_u_mean_pairwise: s.unitizing_mean_pairwise.value(),
        types: s
            .per_type
            .iter()
            .map(|t| SpanTypeRow {
                label: t.label.clone(),
                spans: t.spans,
                exact: t.exact_f1.value(),
                overlap: t.overlap_f1.value(),
                alpha_u: t.alpha_u.value(),
            })
            .collect(),
        pairs: s
            .pairs
            .iter()
            .map(|p| {
                let spans = |first: bool| {
                    p.exact
                        .per_label
                        .iter()
                        .map(|l| if first { l.spans_a } else { l.spans_b } as u64)
                        .sum()
                };
                SpanPairRow {
                    first: name(p.first),
                    second: name(p.second),
                    items: p.items,
                    spans_first: spans(true),
                    spans_second: spans(false),
                    exact: p.exact.micro_f1.value(),
                    exact_macro: p.exact.macro_f1.value(),
                    overlap: p.overlap.micro_f1.value(),
                    alpha_u: p.unitizing.coefficient().value(),
                }
            })
            .collect(),
        annotator_rows: s
            .annotator_stats
            .iter()
            .map(|a| SpanAnnotatorRow {
                name: a.name.clone(),
                items: a.items,
                spans: a.spans,
                exact_with_others: a.exact_f1_with_others.value(),
                gold_items: a.gold.items,
                gold_exact: a.gold.exact_f1.value(),
            })
            .collect(),
        models: s
            .model_raters
            .iter()
            .map(|m| SpanModelRow {
                version: m.version,
                trainer: m.trainer.clone(),
                name: m.name.clone(),
                items: m.items,
                mean_exact: m.mean_exact_f1,
                exact_with: m
                    .with_annotators
                    .iter()
                    .map(|w| w.exact_f1.value())
                    .collect(),
                gold_items: m.gold.items,
                gold_exact: m.gold.exact_f1.value(),
                gold_overlap: m.gold.overlap_f1.value(),
            })
            .collect(),
    }
}

/// A span project's agreement: headline F1 and α_U, then per entity type, per annotator pair,
/// per annotator and per model version.
#[component]
fn SpanDashboard(
    id: u64,
    s: SpanAgreementView,
    items_total: u64,
    items_answered: u64,
) -> impl IntoView {
    let headline = vec![
        (
            "Span F1, exact (micro, mean over pairs)",
            s.exact_micro,
            None,
        ),
        (
            "Span F1, exact (macro over types, mean over pairs)",
            s.exact_macro,
            None,
        ),
        (
            "Span F1, overlap (micro, mean over pairs)",
            s.overlap_micro,
            None,
        ),
        (
            "Span F1, overlap (macro over types, mean over pairs)",
            s.overlap_macro,
            None,
        ),
        (
            "Krippendorff's α_U (items every annotator answered)",
            s.alpha_u,
            s.alpha_u_note.clone(),
        ),
        (
            "Krippendorff's α_U (mean over annotator pairs)",
            s.alpha_u_mean_pairwise,
            None,
        ),
    ];
    view! {
        <section class="card" data-testid="span-coverage">
            <p>{format!(
                "{items_answered} of {items_total} items answered · {} compared (at least two answers) with {} spans · {} annotators · α_U over {} items",
                s.items_compared, s.spans_compared, s.annotators.len(), s.alpha_u_items
            )}</p>
        </section>
        <section class="card">
            <h2>"Span agreement " {csv_link(id, "span-types")}</h2>
            {headline_table("span-coefficients", headline)}
            <p class="muted">"Exact: same start, end and type. Overlap: same type and at least one shared character. F1 is symmetric in the two annotators. α_U lays the item texts end to end (offsets in code points) and compares where each annotator put units and gaps."</p>
        </section>
        <section class="card">
            <h2>"Per entity type"</h2>
            <table class="data" data-testid="span-types">
                <thead><tr><th>"type"</th><th>"spans"</th><th>"exact F1"</th><th>"overlap F1"</th><th>"α_U"</th></tr></thead>
                <tbody>
                    {s.types.iter().map(|t| view! {
                        <tr data-label=t.label.clone()>
                            <td>{t.label.clone()}</td>
                            <td class="num">{t.spans}</td>
                            {value_cell(t.exact)}
                            {value_cell(t.overlap)}
                            <td class="num">{fmt(t.alpha_u)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
        <section class="card">
            <h2>"Annotator pairs " {csv_link(id, "span-pairs")}</h2>
            <table class="data" data-testid="span-pairs">
                <thead><tr><th>"first"</th><th>"second"</th><th>"shared items"</th><th>"spans (first / second)"</th><th>"exact F1"</th><th>"exact macro F1"</th><th>"overlap F1"</th><th>"α_U"</th></tr></thead>
                <tbody>
                    {s.pairs.iter().map(|p| view! {
                        <tr>
                            <td>{p.first.clone()}</td>
                            <td>{p.second.clone()}</td>
                            <td class="num">{p.items}</td>
                            <td class="num">{format!("{} / {}", p.spans_first, p.spans_second)}</td>
                            {value_cell(p.exact)}
                            <td class="num">{fmt(p.exact_macro)}</td>
                            <td class="num">{fmt(p.overlap)}</td>
                            <td class="num">{fmt(p.alpha_u)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
        <section class="card">
            <h2>"Annotators"</h2>
            <table class="data" data-testid="span-annotators">
                <thead><tr><th>"annotator"</th><th>"items"</th><th>"spans"</th><th>"exact F1 with others"</th><th>"exact F1 against gold"</th></tr></thead>
                <tbody>
                    {s.annotator_rows.iter().map(|r| view! {
                        <tr>
                            <td>{r.name.clone()}</td>
                            <td class="num">{r.items}</td>
                            <td class="num">{r.spans}</td>
                            <td class="num">{fmt(r.exact_with_others)}</td>
                            <td class="num">{gold_score(r.gold_items, r.gold_exact)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
            <p class="muted">"Gold here is independent of the annotators' answers: gold questions and imported gold."</p>
        </section>
        {(!s.models.is_empty()).then(|| view! {
            <section class="card">
                <h2>"Model versions as raters " {csv_link(id, "span-models")}</h2>
                <p class="muted">"Each version is scored on the items whose current suggestions it made; its spans are read as predictions. Annotators among themselves: exact F1 " {fmt(s.exact_micro)}</p>
                <table class="data" data-testid="span-model-raters">
                    <thead><tr><th>"version"</th><th>"trainer"</th><th>"items"</th><th>"mean exact F1 with annotators"</th><th>"exact F1 against gold"</th><th>"overlap F1 against gold"</th>
                        {s.annotators.iter().map(|n| view! { <th>{format!("exact F1 with {n}")}</th> }).collect_view()}
                    </tr></thead>
                    <tbody>
                        {s.models.iter().map(|m| view! {
                            <tr data-version=m.version.to_string()>
                                <td>{version_name(m.version, m.name.as_deref())}</td>
                                <td>{m.trainer.replace('_', "-")}</td>
                                <td class="num">{m.items}</td>
                                {value_cell(m.mean_exact)}
                                <td class="num">{(m.gold_items > 0).then(|| fmt(m.gold_exact))}</td>
                                <td class="num">{(m.gold_items > 0).then(|| fmt(m.gold_overlap))}</td>
                                {m.exact_with.iter().map(|v| view! { <td class="num">{fmt(*v)}</td> }).collect_view()}
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
        })}
    }
    .into_any()
}

/// The dashboard's relation figures of a relations project, from the engine's (`None` in
/// other projects).
#[cfg(feature = "ssr")]
pub fn relation_view(a: &concord_engine::ProjectAgreement) -> Option<RelationAgreementView> {
    use crate::wire::{RelationAnnotatorRow, RelationModelRow, RelationPairRow, RelationTypeRow};
    let r = a.relations.as_ref()?;
    let name = |i: usize| r.annotators.get(i).cloned().unwrap_or_default();
    Some(RelationAgreementView {
        annotators: r.annotators.clone(),
        items_compared: r.items_compared,
        relations_compared: r.relations_compared,
        micro: r.micro_f1.value(),
        macro_f1: r.macro_f1.value(),
        note: r
            .micro_f1
            .undefined_reason()
            .map(|reason| reason.to_string()),
        types: r
            .per_type
            .iter()
            .map(|t| RelationTypeRow {
                label: t.label.clone(),
                relations: t.relations,
                f1: t.f1.value(),
            })
            .collect(),
        pairs: r
            .pairs
            .iter()
            .map(|p| RelationPairRow {
                first: name(p.first),
                second: name(p.second),
                items: p.items,
                relations_first: p.agreement.relations_a as u64,
                relations_second: p.agreement.relations_b as u64,
                matched: p.agreement.matched as u64,
                micro: p.agreement.micro_f1.value(),
                macro_f1: p.agreement.macro_f1.value(),
            })
            .collect(),
        annotator_rows: r
            .annotator_stats
            .iter()
            .map(|s| RelationAnnotatorRow {
                name: s.name.clone(),
                items: s.items,
                relations: s.relations,
                f1_with_others: s.f1_with_others.value(),
                gold_items: s.gold.items,
                gold_f1: s.gold.f1.value(),
            })
            .collect(),
        models: r
            .model_raters
            .iter()
            .map(|m| RelationModelRow {
                version: m.version,
                trainer: m.trainer.clone(),
                name: m.name.clone(),
                items: m.items,
                mean_f1: m.mean_f1,
                f1_with: m.with_annotators.iter().map(|w| w.f1.value()).collect(),
                gold_items: m.gold.items,
                gold_precision: m.gold.precision.value(),
                gold_recall: m.gold.recall.value(),
                gold_f1: m.gold.f1.value(),
            })
            .collect(),
    })
}

/// A relations project's relation agreement, under its span agreement: headline F1, then per
/// relation type, per annotator pair, per annotator and per model version.
#[component]
fn RelationDashboard(id: u64, r: RelationAgreementView) -> impl IntoView {
    let headline = vec![
        (
            "Relation F1 (micro, mean over pairs)",
            r.micro,
            r.note.clone(),
        ),
        (
            "Relation F1 (macro over types, mean over pairs)",
            r.macro_f1,
            None,
        ),
    ];
    view! {
        <section class="card">
            <h2>"Relation agreement " {csv_link(id, "relation-types")}</h2>
            <p data-testid="relation-coverage">{format!(
                "{} items compared (at least two answers) with {} relations · {} annotators",
                r.items_compared, r.relations_compared, r.annotators.len()
            )}</p>
            {headline_table("relation-coefficients", headline)}
            <p class="muted">"Two relations are the same when both spans (start, end and entity type) and the relation type match, in the same direction: a reversed relation, or one on a span with other bounds, does not count."</p>
        </section>
        <section class="card">
            <h2>"Per relation type"</h2>
            <table class="data" data-testid="relation-types">
                <thead><tr><th>"type"</th><th>"relations"</th><th>"F1"</th></tr></thead>
                <tbody>
                    {r.types.iter().map(|t| view! {
                        <tr data-label=t.label.clone()>
                            <td>{t.label.clone()}</td>
                            <td class="num">{t.relations}</td>
                            {value_cell(t.f1)}
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
        <section class="card">
            <h2>"Relations: annotator pairs " {csv_link(id, "relation-pairs")}</h2>
            <table class="data" data-testid="relation-pairs">
                <thead><tr><th>"first"</th><th>"second"</th><th>"shared items"</th><th>"relations (first / second)"</th><th>"shared relations"</th><th>"micro F1"</th><th>"macro F1"</th></tr></thead>
                <tbody>
                    {r.pairs.iter().map(|p| view! {
                        <tr>
                            <td>{p.first.clone()}</td>
                            <td>{p.second.clone()}</td>
                            <td class="num">{p.items}</td>
                            <td class="num">{format!("{} / {}", p.relations_first, p.relations_second)}</td>
                            <td class="num">{p.matched}</td>
                            {value_cell(p.micro)}
                            <td class="num">{fmt(p.macro_f1)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
        <section class="card">
            <h2>"Relations: annotators"</h2>
            <table class="data" data-testid="relation-annotators">
                <thead><tr><th>"annotator"</th><th>"items"</th><th>"relations"</th><th>"F1 with others"</th><th>"F1 against gold"</th></tr></thead>
                <tbody>
                    {r.annotator_rows.iter().map(|a| view! {
                        <tr>
                            <td>{a.name.clone()}</td>
                            <td class="num">{a.items}</td>
                            <td class="num">{a.relations}</td>
                            <td class="num">{fmt(a.f1_with_others)}</td>
                            <td class="num">{gold_score(a.gold_items, a.gold_f1)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
        {(!r.models.is_empty()).then(|| view! {
            <section class="card">
                <h2>"Model versions as relation raters " {csv_link(id, "relation-models")}</h2>
                <p class="muted">"Each version is scored on the items whose current suggestions it made; its relations are read as predictions. Annotators among themselves: relation F1 " {fmt(r.micro)}</p>
                <table class="data" data-testid="relation-model-raters">
                    <thead><tr><th>"version"</th><th>"trainer"</th><th>"items"</th><th>"mean F1 with annotators"</th><th>"precision against gold"</th><th>"recall against gold"</th><th>"F1 against gold"</th>
                        {r.annotators.iter().map(|n| view! { <th>{format!("F1 with {n}")}</th> }).collect_view()}
                    </tr></thead>
                    <tbody>
                        {r.models.iter().map(|m| view! {
                            <tr data-version=m.version.to_string()>
                                <td>{version_name(m.version, m.name.as_deref())}</td>
                                <td>{m.trainer.replace('_', "-")}</td>
                                <td class="num">{m.items}</td>
                                {value_cell(m.mean_f1)}
                                <td class="num">{(m.gold_items > 0).then(|| fmt(m.gold_precision))}</td>
                                <td class="num">{(m.gold_items > 0).then(|| fmt(m.gold_recall))}</td>
                                <td class="num">{(m.gold_items > 0).then(|| fmt(m.gold_f1))}</td>
                                {m.f1_with.iter().map(|v| view! { <td class="num">{fmt(*v)}</td> }).collect_view()}
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
        })}
    }
    .into_any()
}

// Rendering a type-erased view to HTML needs the server build.
#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;
    use crate::wire::{RelationAnnotatorRow, RelationModelRow, RelationPairRow, RelationTypeRow};

    fn figures(models: Vec<RelationModelRow>) -> RelationAgreementView {
        RelationAgreementView {
            annotators: vec!["ann".into(), "bob".into()],
            items_compared: 2,
            relations_compared: 9,
            micro: Some(4.0 / 9.0),
            macro_f1: Some(5.0 / 9.0),
            note: None,
            types: vec![
                RelationTypeRow {
                    label: "works_for".into(),
                    relations: 3,
                    f1: Some(2.0 / 3.0),
                },
                RelationTypeRow {
                    label: "owns".into(),
                    relations: 0,
                    f1: None,
                },
            ],
            pairs: vec![RelationPairRow {
                first: "ann".into(),
                second: "bob".into(),
                items: 2,
                relations_first: 4,
                relations_second: 5,
                matched: 2,
                micro: Some(4.0 / 9.0),
                macro_f1: Some(5.0 / 9.0),
            }],
            annotator_rows: vec![RelationAnnotatorRow {
                name: "ann".into(),
                items: 2,
                relations: 4,
                f1_with_others: Some(4.0 / 9.0),
                gold_items: 1,
                gold_f1: Some(1.0),
            }],
            models,
        }
    }

    #[test]
    fn the_relation_tables_show_each_figure_and_link_their_csv() {
        let html = Owner::new()
            .with(|| view! { <RelationDashboard id=7 r=figures(Vec::new())/> }.to_html());
        assert!(
            html.contains(
                "2 items compared (at least two answers) with 9 relations · 2 annotators"
            ),
            "{html}"
        );
        assert!(
            html.contains("/projects/7/agreement/relation-types.csv"),
            "{html}"
        );
        assert!(
            html.contains("/projects/7/agreement/relation-pairs.csv"),
            "{html}"
        );
        assert!(
            html.contains(&format!("data-value=\"{}\"", 4.0f64 / 9.0)),
            "{html}"
        );
        assert!(html.contains(">0.667<"), "{html}");
        // An undefined figure is a dash, never NaN or 0.
        assert!(html.contains("data-label=\"owns\""), "{html}");
        assert!(html.contains(">—<"), "{html}");
        assert!(html.contains(">4 / 5<"), "{html}");
        assert!(html.contains(">1.000 (1 items)<"), "{html}");
        // No model section without model versions.
        assert!(!html.contains("relation-model-raters"), "{html}");

        let model = RelationModelRow {
            version: 3,
            trainer: "relation_head".into(),
            name: None,
            items: 1,
            mean_f1: Some(0.75),
            f1_with: vec![Some(0.5), Some(1.0)],
            gold_items: 1,
            gold_precision: Some(0.5),
            gold_recall: Some(0.5),
            gold_f1: Some(0.5),
        };
        let html = Owner::new()
            .with(|| view! { <RelationDashboard id=7 r=figures(vec![model])/> }.to_html());
        assert!(
            html.contains("data-testid=\"relation-model-raters\""),
            "{html}"
        );
        assert!(html.contains("F1 with bob"), "{html}");
        assert!(html.contains("relation-head"), "{html}");
        assert!(
            html.contains("/projects/7/agreement/relation-models.csv"),
            "{html}"
        );
    }
}
