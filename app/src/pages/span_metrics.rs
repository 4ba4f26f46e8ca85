//! A span project's version metrics on the project page: for each version with figures,
//! entity-level strict precision, recall and F1 per entity type with its support, and the
//! micro and macro averages (seqeval's convention). A trained version is measured on its
//! held-out items; a patterns version, which is not fitted to any item, on every confirmed one
//! where no annotator took a suggestion unchanged. A relations project's version adds its
//! relation classifier's held-out figures: precision, recall and F1 per relation type, from
//! the confirmed spans and end to end from the spans it predicted, and pair accuracy beside
//! always answering "no relation".

use leptos::prelude::*;

use crate::wire::{RelationMetricsView, SpanMetricsView, VersionRow};

/// One type's row of figures (label, precision, recall, F1, support, predicted) as the wire
/// type `row`. A macro, not a function: the engine's entity type rows and concord-ml's relation
/// type rows have these fields but share no type, and this crate cannot name concord-ml's.
#[cfg(feature = "ssr")]
macro_rules! type_row {
    ($row:ident, $t:expr) => {
        crate::wire::$row {
            label: $t.label.clone(),
            precision: $t.precision,
            recall: $t.recall,
            f1: $t.f1,
            support: $t.support,
            predicted: $t.predicted,
        }
    };
}

/// A version's relation metrics as the page shows them (none when it has no relation
/// classifier).
#[cfg(feature = "ssr")]
pub fn relation_metrics_view(v: &concord_engine::ModelVersionInfo) -> Option<RelationMetricsView> {
    let m = v.relation_metrics.as_ref()?;
    // The engine's figures are concord-ml types, which this crate does not depend on.
    macro_rules! scores {
        ($s:expr) => {
            crate::wire::RelationScoresView {
                micro_precision: $s.micro_precision,
                micro_recall: $s.micro_recall,
                micro_f1: $s.micro_f1,
                support: $s.support,
                predicted: $s.predicted,
                per_type: $s
                    .per_type
                    .iter()
                    .map(|t| type_row!(RelationScoreRow, t))
                    .collect(),
            }
        };
    }
    Some(RelationMetricsView {
        trainer: v.relation_trainer.clone().unwrap_or_default(),
        validation: v.relation_validation.clone().unwrap_or_default(),
        items: m.items,
        pairs: m.pairs.pairs,
        pairs_correct: m.pairs.correct,
        no_relation: m.pairs.no_relation,
        end_to_end: scores!(m.end_to_end),
        given_spans: scores!(m.given_spans),
    })
}

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
                .iter()
                .map(|t| type_row!(SpanTypeMetricsRow, t))
                .collect(),
        }
    }
}

fn three(v: f64) -> String {
    format!("{v:.3}")
}

fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".to_string()
    } else {
        format!("{:.3}", part as f64 / whole as f64)
    }
}

/// A relations version's relation figures, per type, from confirmed spans and end to end.
fn relation_table(r: &RelationMetricsView) -> impl IntoView {
    let summary = format!(
        "Relations ({}): pair accuracy {} vs {} always answering \"no relation\" on {} held-out span pairs; relation micro-F1 {:.3} from confirmed spans, {:.3} end to end",
        r.trainer.replace('_', "-"),
        share(r.pairs_correct, r.pairs),
        share(r.no_relation, r.pairs),
        r.pairs,
        r.given_spans.micro_f1,
        r.end_to_end.micro_f1,
    );
    let row = |label: String, given: [f64; 3], end: [f64; 3], support: u64| {
        view! {
            <td>{label}</td>
            <td class="num">{three(given[0])}</td>
            <td class="num">{three(given[1])}</td>
            <td class="num">{three(given[2])}</td>
            <td class="num">{three(end[0])}</td>
            <td class="num">{three(end[1])}</td>
            <td class="num">{three(end[2])}</td>
            <td class="num">{support}</td>
        }
    };
    let types: Vec<_> = r
        .given_spans
        .per_type
        .iter()
        .zip(&r.end_to_end.per_type)
        .map(|(g, e)| {
            view! {
                <tr data-relation=g.label.clone()>
                    {row(
                        g.label.clone(),
                        [g.precision, g.recall, g.f1],
                        [e.precision, e.recall, e.f1],
                        g.support,
                    )}
                </tr>
            }
        })
        .collect();
    let (g, e) = (&r.given_spans, &r.end_to_end);
    view! {
        <div data-testid="relation-metrics">
            <p>{summary}</p>
            <p class="muted">{r.validation.clone()}</p>
            <table class="data">
                <thead>
                    <tr>
                        <th rowspan="2">"Relation type"</th>
                        <th colspan="3" title="Relations between the held-out items' confirmed spans">"From confirmed spans"</th>
                        <th colspan="3" title="Relations between the spans the version predicted">"End to end"</th>
                        <th rowspan="2" class="num" title="Gold relations of the type">"Support"</th>
                    </tr>
                    <tr>
                        <th class="num">"Precision"</th>
                        <th class="num">"Recall"</th>
                        <th class="num">"F1"</th>
                        <th class="num">"Precision"</th>
                        <th class="num">"Recall"</th>
                        <th class="num">"F1"</th>
                    </tr>
                </thead>
                <tbody>
                    {types}
                    <tr data-average="micro">
                        {row(
                            "Micro average".to_string(),
                            [g.micro_precision, g.micro_recall, g.micro_f1],
                            [e.micro_precision, e.micro_recall, e.micro_f1],
                            g.support,
                        )}
                    </tr>
                </tbody>
            </table>
        </div>
    }
}

/// The span metrics of `versions` (newest first), or nothing when none has any.
pub fn span_metrics_tables(versions: &[VersionRow]) -> Option<AnyView> {
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
                        {v.relation_metrics.as_ref().map(relation_table)}
                    </details>
                }
            }).collect_view()}
        </div>
    }.into_any())
}
