//! "Likely label errors" (reviewers and admins): confirmed labels that out-of-fold models and
//! the annotators' answers find most likely wrong, most likely first, each with the given
//! label, the suggested one, the score, the reason in words and the annotators' answers. A
//! label button writes gold as the review queue does, and the row leaves the list.
//!
//! Span projects list items whose confirmed spans the annotators' answers and the active
//! version's suggestions contradict, token by token, with the given and suggested spans as
//! text; the span review page (which opens the next item to review, not a chosen one) is
//! where they are fixed, so rows link there instead of carrying label buttons.
//!
//! The page renders at once (the refusal for non-reviewers comes with it, from the review
//! summary); the list is computed after, in the browser's request, since it trains small
//! models on the cached embeddings and takes seconds on large projects.

use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{current_user, fix_label, get_project, label_errors, review_summary};
use crate::components::{error_text, project_id_param, ErrorOrLogin, TopBar};
use crate::wire::{LabelErrorView, LabelErrorsView, ProjectView};

/// Rows asked for at a time.
const ROWS: usize = 100;

#[component]
pub fn LabelErrorsPage() -> impl IntoView {
    let id = project_id_param();
    let me = Resource::new(|| (), |_| current_user());
    let project = Resource::new(id, get_project);
    // Loaded with the page so that a caller without the reviewer role gets the refusal at once.
    let summary = Resource::new(id, review_summary);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match (me.await, project.await, summary.await) {
                    (Ok(Some(user)), Ok(p), Ok(_)) => view! { <TopBar user/><LabelErrors project=p/> }.into_any(),
                    (Ok(None), _, _) => view! { <leptos_router::components::Redirect path="/login"/> }.into_any(),
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => view! { <ErrorOrLogin error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// "N of M confirmed labels flagged", and what was not checked.
fn summary_text(v: &LabelErrorsView, spans: bool) -> String {
    if spans {
        let mut text = format!("{} of {} confirmed items look wrong", v.flagged, v.checked);
        if v.not_embedded > 0 {
            text.push_str(&format!(
                " · {} not checked (neither answers nor a suggestion of the active version)",
                v.not_embedded
            ));
        }
        return text;
    }
    let mut text = format!("{} of {} confirmed labels look wrong", v.flagged, v.checked);
    if v.not_embedded > 0 {
        text.push_str(&format!(
            " · {} not checked yet (no embedding: run a prediction job)",
            v.not_embedded
        ));
    }
    text
}

#[component]
fn LabelErrors(project: ProjectView) -> impl IntoView {
    let pid = project.id;
    let spans = project.task.is_spans();
    let labels = StoredValue::new(project.labels.clone());
    let report = RwSignal::new(None::<LabelErrorsView>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(None::<String>);

    Effect::new(move |_| {
        spawn_local(async move {
            match label_errors(pid, ROWS).await {
                Ok(r) => report.set(Some(r)),
                Err(e) => error.set(Some(error_text(&e))),
            }
        });
    });
    let fix = move |item: String, label: String| {
        if busy.get_untracked().is_some() {
            return;
        }
        error.set(None);
        busy.set(Some(item.clone()));
        spawn_local(async move {
            match fix_label(pid, item.clone(), label).await {
                Ok(()) => report.update(|r| {
                    if let Some(r) = r {
                        r.rows.retain(|row| row.item_id != item);
                        r.flagged = r.flagged.saturating_sub(1);
                    }
                }),
                Err(e) => error.set(Some(error_text(&e))),
            }
            busy.set(None);
        });
    };

    let row_view = move |row: LabelErrorView| {
        let item = row.item_id.clone();
        let answers = if row.annotators.is_empty() {
            "(no answers)".to_string()
        } else {
            row.annotators
                .iter()
                .map(|(who, label)| format!("{who}: {label}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if spans {
            return view! {
                <tr data-testid="label-error" data-item-id=row.item_id.clone()>
                    <td class="item-text">{row.text.clone()}</td>
                    <td data-testid="given">{row.given.clone()}</td>
                    <td data-testid="suggested">{row.suggested.clone()}</td>
                    <td class="num" data-testid="score">{format!("{:.2}", row.score)}</td>
                    <td>{row.reason.clone()}</td>
                    <td>{answers}</td>
                    <td class="actions">
                        <a href=format!("/projects/{pid}/review") data-testid="fix-in-review">"Fix in review"</a>
                    </td>
                </tr>
            }
            .into_any();
        }
        let buttons = labels
            .get_value()
            .into_iter()
            .map(|l| {
                let (item, name) = (item.clone(), l.name.clone());
                let class = if name == row.suggested { "primary" } else { "" };
                let testid = format!("fix-{name}");
                view! {
                    <button class=class data-testid=testid
                        disabled=move || busy.get().is_some()
                        on:click=move |_| fix(item.clone(), name.clone())>{l.name.clone()}</button>
                }
            })
            .collect_view();
        view! {
            <tr data-testid="label-error" data-item-id=row.item_id.clone()>
                <td class="item-text">{row.text.clone()}</td>
                <td data-testid="given">{row.given.clone()}</td>
                <td data-testid="suggested">{row.suggested.clone()}</td>
                <td class="num" data-testid="score">{format!("{:.2}", row.score)}</td>
                <td>{row.reason.clone()}</td>
                <td>{answers}</td>
                <td class="actions">{buttons}</td>
            </tr>
        }
        .into_any()
    };

    view! {
        <main class="page label-errors">
            <p><a href=format!("/projects/{pid}")>"← "{project.name.clone()}</a></p>
            <h1>"Likely label errors"</h1>
            {spans.then(|| view! {
                <p class="muted">
                    "Each token of the confirmed spans is checked against the annotators' answers and the active version's suggestion (a version possibly trained on the item counts half; an unvalidated version's silence counts half). "
                    "Most likely error first; the score is one minus the support of the worst token's given tag. Fix the spans on the review page; items a reviewer decided are not listed again."
                </p>
            })}
            <p class="muted" hidden=spans>
                "Each confirmed label is checked by models that never saw it (5-fold heads on the cached embeddings) and, where annotators answered, against their answers weighted by how often each agrees with the others. "
                "Most likely error first; the score is how likely the given label is wrong. Pick the right label to save it as gold; items a reviewer decided are not listed again."
            </p>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {move || match report.get() {
                None => view! { <p class="loading">"Checking the labels…"</p> }.into_any(),
                Some(r) => {
                    let annotators = r.annotators.clone();
                    view! {
                        <p class="muted" data-testid="label-errors-summary">{summary_text(&r, spans)}</p>
                        {if r.rows.is_empty() {
                            view! { <section class="card" data-testid="label-errors-empty"><p>"No likely label errors."</p></section> }.into_any()
                        } else {
                            view! {
                                <table class="data" data-testid="label-errors">
                                    <thead><tr><th>"Text"</th><th>"Given"</th><th>"Model"</th><th class="num">"Score"</th><th>"Why"</th><th>"Annotators"</th><th>"Fix"</th></tr></thead>
                                    <tbody>{r.rows.into_iter().map(row_view).collect_view()}</tbody>
                                </table>
                            }.into_any()
                        }}
                        {(!annotators.is_empty()).then(|| view! {
                            <section class="card">
                                <h2>"Annotators"</h2>
                                <table class="data" data-testid="annotator-quality">
                                    <thead><tr><th>"Annotator"</th><th class="num">"Answers"</th><th class="num">"Agreement"</th><th class="num">"Quality"</th></tr></thead>
                                    <tbody>
                                        {annotators.into_iter().map(|a| view! {
                                            <tr data-annotator=a.annotator.clone()>
                                                <td>{a.annotator.clone()}</td>
                                                <td class="num">{a.answers}</td>
                                                <td class="num">{a.agreement.map(|x| format!("{:.0}%", x * 100.0)).unwrap_or_else(|| "–".into())}</td>
                                                <td class="num">{format!("{:.2}", a.quality)}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </section>
                        })}
                    }.into_any()
                }
            }}
        </main>
    }
}
