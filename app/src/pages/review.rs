//! The review queue (reviewers and admins): one item whose annotators disagree at a time, every
//! answer side by side, and the gold label chosen by keyboard. Saving waits for the server and
//! brings the next item in the same round trip, so a reviewer never sees an item twice.

use concord_domain::TaskKind;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{
    current_user, get_project, resolve_item, review_item, review_next, review_summary,
};
use crate::components::{error_text, project_id_param, ErrorOrLogin, LabelBar, TopBar};
use crate::wire::{ProjectView, ReviewItemView, ReviewSummaryView};

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
        </main>
    }
}
