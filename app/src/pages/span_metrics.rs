//! A span project's version metrics on the project page: for each version with figures,
//! entity-level strict precision, recall and F1 per entity type with its support, and the
//! micro and macro averages (seqeval's convention). A trained version is measured on its
//! held-out items; a patterns version, which is not fitted to any item, on every confirmed one
//! where no annotator took a suggestion unchanged.

use leptos::prelude::*;

use crate::wire::{SpanMetricsView, VersionRow};

#[cfg(feature = "ssr")]
impl From<concord_engine::SpanMetrics> for SpanMetricsView {
    fn from(m: concord_engine::SpanMetrics) -> Self {
        SpanMetricsView {
            items: m.items,
            micro_precision: m.micro_precision,
            micro_recall: m.micro_recall,
            micro_f1: m.micro_f1,
            macro_precision: m.macro_precision,
            macro_recall: m.macro_recall,
            macro_f1: m.macro_f1,
            support: m.support,
            per_type: m
                .per_type
                .into_iter()
                .map(|t| crate::wire::SpanTypeMetricsRow {
                    label: t.label,
                    precision: t.precision,
                    recall: t.recall,
                    f1: t.f1,
                    support: t.support,
                    predicted: t.predicted,
                })
                .collect(),
        }
    }
}

fn three(v: f64) -> String {
    format!("{v:.3}")
}

/// The span metrics of `versions` (newest first), or nothing when none has any.
pub fn span_metrics_tables(versions: &[VersionRow]) -> Option<impl IntoView> {
    let evaluated: Vec<(&VersionRow, &SpanMetricsView)> = versions
        .iter()
        .rev()
        .filter_map(|v| v.span_metrics.as_ref().map(|m| (v, m)))
        .collect();
    if evaluated.is_empty() {
        return None;
    }
    Some(view! {
        <div data-testid="span-metrics">
            {evaluated.into_iter().enumerate().map(|(i, (v, m))| {
                let measured_on = if v.trainer == "patterns" { "confirmed" } else { "held-out" };
                let summary = format!(
                    "v{} {}: micro-F1 {:.3}, macro-F1 {:.3} on {} {measured_on} items ({} entities)",
                    v.version,
                    v.trainer.replace('_', "-"),
                    m.micro_f1,
                    m.macro_f1,
                    m.items,
                    m.support,
                );
                view! {
                    <details class="compare" open=i == 0 data-version=v.version.to_string()>
                        <summary>{summary}</summary>
                        <table class="data">
                            <thead>
                                <tr>
                                    <th>"Entity type"</th>
                                    <th class="num">"Precision"</th>
                                    <th class="num">"Recall"</th>
                                    <th class="num">"F1"</th>
                                    <th class="num" title="Gold entities of the type">"Support"</th>
                                    <th class="num" title="Entities of the type the version found">"Predicted"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {m.per_type.iter().map(|t| view! {
                                    <tr data-label=t.label.clone()>
                                        <td>{t.label.clone()}</td>
                                        <td class="num">{three(t.precision)}</td>
                                        <td class="num">{three(t.recall)}</td>
                                        <td class="num">{three(t.f1)}</td>
                                        <td class="num">{t.support}</td>
                                        <td class="num">{t.predicted}</td>
                                    </tr>
                                }).collect_view()}
                                <tr data-average="micro">
                                    <th>"Micro average"</th>
                                    <td class="num">{three(m.micro_precision)}</td>
                                    <td class="num">{three(m.micro_recall)}</td>
                                    <td class="num" data-testid="span-micro-f1">{three(m.micro_f1)}</td>
                                    <td class="num">{m.support}</td>
                                    <td></td>
                                </tr>
                                <tr data-average="macro">
                                    <th>"Macro average"</th>
                                    <td class="num">{three(m.macro_precision)}</td>
                                    <td class="num">{three(m.macro_recall)}</td>
                                    <td class="num">{three(m.macro_f1)}</td>
                                    <td class="num">{m.support}</td>
                                    <td></td>
                                </tr>
                            </tbody>
                        </table>
                    </details>
                }
            }).collect_view()}
        </div>
    })
}
