//! The review queue (reviewers and admins): one item whose annotators disagree at a time, every
//! answer side by side, and the gold label chosen by keyboard. Saving waits for the server and
//! brings the next item in the same round trip, so a reviewer never sees an item twice.

use concord_domain::TaskKind;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{
    bulk_accept, bulk_accept_preview, bulk_accept_state, current_user, get_project, resolve_item,
    review_item, review_next, review_summary, undo_bulk_accept,
};
use crate::components::{error_text, project_id_param, ErrorOrLogin, LabelBar, TopBar};
use crate::wire::{BulkAcceptPreviewView, ProjectView, ReviewItemView, ReviewSummaryView};

#[component]
pub fn ReviewPage() -> impl IntoView {
    let id = project_id_param();
    let me = Resource::new(|| (), |_| current_user());
    let project = Resource::new(id, get_project);
    // Loaded with the page so that a caller without the reviewer role gets the refusal at once.
    let summary = Resource::new(id, review_summary);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match (me.await, project.await, summary.await) {
                    (Ok(Some(user)), Ok(p), Ok(s)) if p.task.is_spans() => view! { <TopBar user/><crate::pages::review_spans::SpanReviewPage project=p summary=s/> }.into_any(),
                    (Ok(Some(user)), Ok(p), Ok(s)) => view! { <TopBar user/><Reviewer project=p summary=s/> }.into_any(),
                    (Ok(None), _, _) => view! { <leptos_router::components::Redirect path="/login"/> }.into_any(),
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => view! { <ErrorOrLogin error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

pub(crate) fn summary_text(s: &ReviewSummaryView) -> String {
    format!(
        "{} waiting for review ({} disagreements) · {} accepted unanimously · {} resolved by review · {} imported gold · {} gold questions · {} still being annotated",
        s.needs_review,
        s.disagreements,
        s.accepted,
        s.gold_by_review,
        s.gold_imported,
        s.gold_questions,
        s.in_progress + s.unannotated
    )
}

#[component]
fn Reviewer(project: ProjectView, summary: ReviewSummaryView) -> impl IntoView {
    let pid = project.id;
    let multi = project.task == TaskKind::Multilabel;
    let labels = StoredValue::new(project.labels.clone());
    let summary = RwSignal::new(summary);
    let current = RwSignal::new(None::<ReviewItemView>);
    let selected = RwSignal::new(Vec::<String>::new());
    let gold_question = RwSignal::new(false);
    let history = RwSignal::new(Vec::<String>::new());
    let loading = RwSignal::new(true);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let show = move |item: Option<ReviewItemView>| {
        selected.set(
            item.as_ref()
                .map(|i| i.gold.clone().unwrap_or_else(|| i.proposal.clone()))
                .unwrap_or_default(),
        );
        gold_question.set(item.as_ref().is_some_and(|i| i.gold_question));
        current.set(item);
        loading.set(false);
        busy.set(false);
    };
    let refresh_summary = move || {
        spawn_local(async move {
            if let Ok(s) = review_summary(pid).await {
                summary.set(s);
            }
        });
    };
    let fail = move |e: crate::wire::AppError| {
        busy.set(false);
        loading.set(false);
        error.set(Some(error_text(&e)));
    };
    let load_next = move |after: Option<String>| {
        loading.set(true);
        spawn_local(async move {
            match review_next(pid, after).await {
                Ok(item) => show(item),
                Err(e) => fail(e),
            }
        });
    };
    let save = move |as_question: bool| {
        let Some(item) = current.get_untracked() else {
            return;
        };
        if busy.get_untracked() {
            return;
        }
        let chosen = selected.get_untracked();
        if !multi && chosen.len() != 1 {
            error.set(Some("Pick the gold label first: press its key.".into()));
            return;
        }
        let question = as_question || gold_question.get_untracked();
        error.set(None);
        busy.set(true);
        spawn_local(async move {
            match resolve_item(pid, item.id.clone(), chosen, question).await {
                Ok(next) => {
                    history.update(|h| h.push(item.id));
                    show(next);
                    refresh_summary();
                }
                Err(e) => fail(e),
            }
        });
    };
    let skip = move || {
        if busy.get_untracked() {
            return;
        }
        if let Some(item) = current.get_untracked() {
            error.set(None);
            history.update(|h| h.push(item.id.clone()));
            load_next(Some(item.id));
        }
    };
    let back = move || {
        let Some(previous) = history.try_update(Vec::pop).flatten() else {
            return;
        };
        error.set(None);
        loading.set(true);
        spawn_local(async move {
            match review_item(pid, previous).await {
                Ok(item) => show(Some(item)),
                Err(e) => fail(e),
            }
        });
    };
    let pick = move |name: String| {
        selected.update(|s| {
            if multi {
                match s.iter().position(|l| *l == name) {
                    Some(i) => {
                        s.remove(i);
                    }
                    None => s.push(name),
                }
            } else {
                *s = vec![name];
            }
        });
    };

    Effect::new(move |_| {
        load_next(None);
        #[cfg(feature = "hydrate")]
        {
            let handle =
                window_event_listener(leptos::ev::keydown, move |ev: web_sys::KeyboardEvent| {
                    if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
                        return;
                    }
                    if crate::components::typing_in_field(&ev) {
                        return;
                    }
                    match ev.key().as_str() {
                        "Enter" => {
                            ev.prevent_default();
                            save(ev.shift_key());
                        }
                        " " => {
                            ev.prevent_default();
                            skip();
                        }
                        "Backspace" => {
                            ev.prevent_default();
                            back();
                        }
                        other => {
                            let hit =
                                labels.with_value(|ls| crate::components::label_for_key(ls, other));
                            if let Some(name) = hit {
                                ev.prevent_default();
                                pick(name);
                            }
                        }
                    }
                });
            on_cleanup(move || handle.remove());
        }
    });

    view! {
        <main class="page review">
            <p><a href=format!("/projects/{pid}")>"← "{project.name.clone()}</a></p>
            <h1>"Review"</h1>
            <p class="muted" data-testid="review-summary" data-waiting=move || summary.get().needs_review.to_string()>
                {move || summary_text(&summary.get())}
            </p>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {move || {
                if loading.get() {
                    return view! { <p class="loading">"Loading…"</p> }.into_any();
                }
                let Some(item) = current.get() else {
                    return view! {
                        <section class="card" data-testid="review-empty">
                            <p>"Nothing waits for review: every finished item has its gold label."</p>
                        </section>
                    }.into_any();
                };
                let gold_line = item.gold.clone().map(|g| {
                    let source = item.gold_source.clone().unwrap_or_default();
                    view! { <p data-testid="review-gold">"Gold label now: "<strong>{g.join(", ")}</strong>" ("{source}")"</p> }
                });
                view! {
                    <section class="item-card">
                        <p class="muted"><span class="badge" data-testid="review-state">{item.state.replace('_', " ")}</span>" · item "{item.id.clone()}</p>
                        <div class="item-text" data-testid="review-text" data-item-id=item.id.clone()>{item.text.clone()}</div>
                    </section>
                    <section class="card">
                        <h2>"Answers"</h2>
                        <table class="data" data-testid="review-answers">
                            <thead><tr><th>"Annotator"</th><th>"Answer"</th><th>"Source"</th><th class="num">"Seconds"</th></tr></thead>
                            <tbody>
                                {item.answers.iter().map(|a| view! {
                                    <tr data-annotator=a.annotator.clone()>
                                        <td>{a.annotator.clone()}</td>
                                        <td data-testid="answer-labels">{if a.labels.is_empty() { "(no label)".to_string() } else { a.labels.join(", ") }}</td>
                                        <td>{a.source.replace('_', " ")}</td>
                                        <td class="num">{format!("{:.1}", a.seconds)}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                        {item.suggestion.clone().map(|s| view! {
                            <p class="suggestion" data-testid="review-suggestion">
                                "Model v"{s.version}" suggests "<strong>{s.labels.join(", ")}</strong>
                                {format!(" ({:.0}% sure)", s.confidence * 100.0)}
                            </p>
                        })}
                        {gold_line}
                    </section>
                }.into_any()
            }}
            <LabelBar labels=labels.get_value() selected pick=Callback::new(pick) aria_label="Gold label"/>
            <section class="actions">
                <label class="inline">
                    <input type="checkbox" data-testid="gold-question" prop:checked=move || gold_question.get()
                        on:change=move |ev| gold_question.set(event_target_checked(&ev))/>
                    " Use as a gold question in annotators' queues"
                </label>
                <button on:click=move |_| back() disabled=move || history.with(Vec::is_empty)>"← Previous"</button>
                <button on:click=move |_| skip() disabled=move || current.with(Option::is_none)>"Skip"</button>
                <button class="primary" data-testid="resolve" on:click=move |_| save(false) disabled=move || current.with(Option::is_none) || busy.get()>"Save gold label"</button>
            </section>
            <p class="keys muted">
                {if multi { "Label keys toggle labels" } else { "A label key picks it" }}
                " · "<kbd>"Enter"</kbd>" save gold label · "<kbd>"Shift"</kbd>"+"<kbd>"Enter"</kbd>" save as a gold question · "
                <kbd>"Space"</kbd>" skip · "<kbd>"Backspace"</kbd>" previous"
            </p>
            <BulkAccept pid on_change=Callback::new(move |_| refresh_summary())/>
        </main>
    }
}

/// Bulk acceptance: the active version's suggestions at or above a confidence become gold for
/// every item no one has answered or settled, once the reviewer has seen the slice's size and
/// its error rate on held-out labels; each batch is listed with an undo. Offered only while
/// the active version is validated (the server refuses otherwise).
#[component]
fn BulkAccept(pid: u64, on_change: Callback<()>) -> impl IntoView {
    let tick = RwSignal::new(0u32);
    let state = Resource::new(move || tick.get(), move |_| bulk_accept_state(pid));
    let threshold = RwSignal::new(90u8);
    let preview = RwSignal::new(None::<BulkAcceptPreviewView>);
    let busy = RwSignal::new(false);
    let message = RwSignal::new(None::<String>);
    let failed = move |e: crate::wire::AppError| {
        busy.set(false);
        message.set(Some(error_text(&e)));
    };
    let changed = move || {
        busy.set(false);
        preview.set(None);
        tick.update(|t| *t += 1);
        on_change.run(());
    };
    let look = move |version: u64| {
        busy.set(true);
        message.set(None);
        let pct = threshold.get_untracked();
        spawn_local(async move {
            match bulk_accept_preview(pid, version, pct).await {
                Ok(p) => {
                    busy.set(false);
                    preview.set(Some(p));
                }
                Err(e) => failed(e),
            }
        });
    };
    let accept = move |p: BulkAcceptPreviewView| {
        busy.set(true);
        spawn_local(async move {
            match bulk_accept(pid, p.version, p.min_confidence).await {
                Ok(batch) => {
                    message.set(Some(format!(
                        "{} items now have v{}'s suggestion as gold (bulk accept); undo below",
                        batch.items, batch.version
                    )));
                    changed();
                }
                Err(e) => failed(e),
            }
        });
    };
    let undo = move |reviewer: u64, at_ms: u64| {
        busy.set(true);
        spawn_local(async move {
            match undo_bulk_accept(pid, reviewer, at_ms).await {
                Ok(cleared) => {
                    message.set(Some(format!(
                        "Undone: {cleared} items lost that batch's gold"
                    )));
                    changed();
                }
                Err(e) => failed(e),
            }
        });
    };
    view! {
        <section class="card" data-testid="bulk-accept">
            <h2>"Bulk-accept the model's suggestions"</h2>
            {move || message.get().map(|m| view! { <p class="muted" role="status" data-testid="bulk-message">{m}</p> })}
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    let st = match state.await {
                        Ok(st) => st,
                        Err(e) => return view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                    };
                    let offer = match st.active.clone() {
                        None => view! { <p class="muted">"No active model version."</p> }.into_any(),
                        Some((version, false, why)) => view! {
                            <p class="muted" data-testid="bulk-not-validated">
                                {format!("v{version} is not validated, so its suggestions cannot become gold: {why}")}
                            </p>
                        }.into_any(),
                        Some((version, true, why)) => view! {
                            <p class="muted">{format!("v{version}: {why}")}</p>
                            <div class="row">
                                <label class="inline">"Confidence at least "
                                    <input type="number" min="0" max="100" data-testid="bulk-threshold"
                                        prop:value=move || threshold.get().to_string()
                                        on:input=move |ev| {
                                            if let Ok(v) = event_target_value(&ev).parse::<u8>() {
                                                threshold.set(v.min(100));
                                                preview.set(None);
                                            }
                                        }/>
                                    " %"
                                </label>
                                <button data-testid="bulk-preview" disabled=move || busy.get() on:click=move |_| look(version)>"Preview"</button>
                            </div>
                            {move || preview.get().map(|p| {
                                let rate = match (p.error_rate, p.error_interval) {
                                    (Some(r), Some((lo, hi))) => format!(
                                        "estimated error rate {:.1}% [{:.1}%, {:.1}%]: {} wrong of {} held-out items at this confidence",
                                        100.0 * r, 100.0 * lo, 100.0 * hi, p.held_out_errors, p.held_out_items
                                    ),
                                    _ => "no held-out item reaches this confidence: the error rate cannot be estimated".to_string(),
                                };
                                let ready = p.items > 0;
                                let chosen = p.clone();
                                view! {
                                    <p data-testid="bulk-slice" data-items=p.items.to_string()>
                                        {format!("{} items without an answer or gold have v{}'s suggestion at ≥ {}% · {rate}", p.items, p.version, p.min_confidence)}
                                    </p>
                                    <button class="primary" data-testid="bulk-accept-button" disabled=move || busy.get() || !ready
                                        on:click=move |_| accept(chosen.clone())>
                                        {format!("Accept {} suggestions as gold", p.items)}
                                    </button>
                                }
                            })}
                        }.into_any(),
                    };
                    let batches = (!st.batches.is_empty()).then(|| view! {
                        <table class="data" data-testid="bulk-batches">
                            <thead><tr><th>"Batch"</th><th class="num">"Items"</th><th></th></tr></thead>
                            <tbody>
                                {st.batches.iter().map(|b| {
                                    let (reviewer, at_ms) = (b.reviewer, b.at_ms);
                                    view! {
                                        <tr data-at=at_ms.to_string()>
                                            <td>{format!("v{} at ≥ {}% by {}", b.version, b.min_confidence, b.reviewer_name)}</td>
                                            <td class="num">{b.items}</td>
                                            <td><button data-testid="bulk-undo" disabled=move || busy.get() on:click=move |_| undo(reviewer, at_ms)>"Undo"</button></td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    });
                    view! { {offer} {batches} }.into_any()
                })}
            </Transition>
        </section>
    }
}
