//! The annotation page: one item at a time, driven entirely by the keyboard. The next item is
//! prefetched while the current one is on screen, so a submit shows the next item at once; the
//! submit itself continues in the background and the page says when everything is saved.

use concord_domain::TaskKind;
use leptos::prelude::*;
use leptos::task::spawn_local;

use super::item_queue::{now_ms, ItemQueue};
use crate::api::{get_project, submit_annotation};
use crate::components::{error_text, project_id_param, ErrorOrLogin, LabelBar};
use crate::wire::{ItemView, ProjectView};

#[component]
pub fn AnnotatePage() -> impl IntoView {
    let id = project_id_param();
    let project = Resource::new(id, get_project);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match project.await {
                    Ok(p) if p.task.is_spans() => view! { <crate::pages::annotate_spans::SpanAnnotatePage project=p/> }.into_any(),
                    Ok(p) => view! { <Annotator project=p/> }.into_any(),
                    Err(e) => view! { <ErrorOrLogin error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Annotator(project: ProjectView) -> impl IntoView {
    let pid = project.id;
    let multi = project.task == TaskKind::Multilabel;
    let labels = StoredValue::new(project.labels.clone());
    let current = RwSignal::new(None::<ItemView>);
    let prefetched = RwSignal::new(None::<ItemView>);
    let selected = RwSignal::new(Vec::<String>::new());
    let history = RwSignal::new(Vec::<String>::new());
    let recent = RwSignal::new(Vec::<String>::new());
    let finished = RwSignal::new(false);
    let loading = RwSignal::new(true);
    let pending = RwSignal::new(0u32);
    let error = RwSignal::new(None::<String>);
    let progress = RwSignal::new((project.mine, project.done, project.total));
    let show_guidelines = RwSignal::new(false);
    let shown_at = RwSignal::new(0f64);
    // Answers given on this page, newest first in authority: going back shows them even while
    // their submit is still on its way.
    let answers = StoredValue::new(std::collections::HashMap::<String, Vec<String>>::new());
    // Submits leave in order, one at a time, so a corrected answer can never overtake the
    // answer it corrects.
    let outbox = StoredValue::new(std::collections::VecDeque::<(String, Vec<String>, u64)>::new());
    let draining = StoredValue::new(false);
    let drain = move || {
        if draining.get_value() {
            return;
        }
        draining.set_value(true);
        spawn_local(async move {
            while let Some((id, chosen, spent)) =
                outbox.try_update_value(|q| q.pop_front()).flatten()
            {
                match submit_annotation(pid, id.clone(), chosen, spent).await {
                    Ok(saved) => progress.set((saved.mine, saved.done, saved.total)),
                    Err(e) => {
                        error.set(Some(format!("Item {id} was not saved: {}", error_text(&e))))
                    }
                }
                pending.update(|n| *n -= 1);
            }
            draining.set_value(false);
        });
    };

    let show = move |item: Option<ItemView>| {
        // An earlier answer wins; otherwise a validated version's suggestion is pre-selected,
        // so accepting it is one key (Enter). An unvalidated one is only a hint: pre-selected,
        // it would pull answers toward a model no better than guessing.
        selected.set(
            item.as_ref()
                .and_then(|i| {
                    i.mine.clone().or_else(|| {
                        i.suggestion
                            .as_ref()
                            .filter(|s| s.preselect)
                            .map(|s| s.labels.clone())
                    })
                })
                .unwrap_or_default(),
        );
        finished.set(item.is_none());
        current.set(item);
        shown_at.set(now_ms());
        loading.set(false);
    };
    let queue = ItemQueue {
        pid,
        current,
        prefetched,
        recent,
        loading,
        error,
        pending,
        history,
    };
    let advance = move || queue.advance(show);
    let remember = move |id: String| queue.remember(id);
    let submit = move || {
        let Some(item) = current.get_untracked() else {
            return;
        };
        let chosen = selected.get_untracked();
        if !multi && chosen.len() != 1 {
            error.set(Some("Pick a label first: press its key.".into()));
            return;
        }
        error.set(None);
        let spent = (now_ms() - shown_at.get_untracked()).max(0.0) as u64;
        pending.update(|n| *n += 1);
        history.update(|h| h.push(item.id.clone()));
        remember(item.id.clone());
        answers.update_value(|a| {
            a.insert(item.id.clone(), chosen.clone());
        });
        outbox.update_value(|q| q.push_back((item.id, chosen, spent)));
        drain();
        advance();
    };
    let skip = move || queue.skip(show);
    let back = move || {
        queue.back(show, move |item| {
            if let Some(local) = answers.with_value(|a| a.get(&item.id).cloned()) {
                item.mine = Some(local);
            }
        })
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
    let bring_back_skipped = move |_| queue.bring_back_skipped(show);

    // Everything below runs in the browser only: effects never run during server rendering.
    Effect::new(move |_| {
        advance();
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
                    let key = ev.key();
                    match key.as_str() {
                        "Enter" => {
                            ev.prevent_default();
                            submit();
                        }
                        " " => {
                            ev.prevent_default();
                            skip();
                        }
                        "Backspace" => {
                            ev.prevent_default();
                            back();
                        }
                        "?" => show_guidelines.update(|g| *g = !*g),
                        "Escape" => show_guidelines.set(false),
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

    let guidelines_html = project.guidelines_html.clone();
    let has_guidelines = project.has_guidelines;
    view! {
        <main class="annotate">
            <header class="annotate-bar">
                <a href=format!("/projects/{pid}")>"← "{project.name.clone()}</a>
                <span data-testid="progress">{move || { let (mine, done, total) = progress.get(); format!("{mine} by you · {done} / {total} done") }}</span>
                <span data-testid="save-status" class:saving=move || { pending.get() > 0 }>
                    {move || if pending.get() > 0 { "Saving…" } else { "All changes saved" }}
                </span>
            </header>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <section class="item-card">
                {move || {
                    if loading.get() {
                        view! { <p class="loading">"Loading…"</p> }.into_any()
                    } else if finished.get() {
                        view! {
                            <div class="finished" data-testid="queue-empty">
                                <p>"Nothing left for you in this project."</p>
                                <button on:click=bring_back_skipped>"Bring back items I skipped"</button>
                            </div>
                        }.into_any()
                    } else {
                        let item = current.get();
                        let revisiting = item.as_ref().is_some_and(|i| i.mine.is_some());
                        // Outside blind mode: what the other annotators chose so far.
                        let others = item.as_ref().and_then(|i| i.others.clone()).map(|counts| {
                            let answered: u32 = counts.iter().map(|(_, n)| n).sum();
                            let text = if answered == 0 {
                                "No other annotator has answered this item yet.".to_string()
                            } else {
                                let parts: Vec<String> = counts
                                    .iter()
                                    .filter(|(_, n)| *n > 0)
                                    .map(|(l, n)| format!("{l} ×{n}"))
                                    .collect();
                                format!("Other annotators so far: {}", parts.join(" · "))
                            };
                            view! { <p class="muted" data-testid="others">{text}</p> }
                        });
                        let suggestion = item.as_ref().and_then(|i| i.suggestion.clone()).map(|s| {
                            let text = if s.labels.is_empty() {
                                "no label".to_string()
                            } else {
                                s.labels.join(", ")
                            };
                            let how = if s.preselect {
                                " — pre-selected: Enter accepts it"
                            } else {
                                " — a hint, not selected: press its key to take it"
                            };
                            view! {
                                <p class="suggestion" class:hint=!s.preselect data-testid="suggestion"
                                    data-version=s.version.to_string() data-preselect=s.preselect.to_string()>
                                    "Model v"{s.version}" suggests "<strong data-testid="suggested-label">{text}</strong>
                                    {format!(" ({:.0}% sure){how}", s.confidence * 100.0)}
                                    <br/><span class="muted" data-testid="suggestion-evidence">{s.evidence}</span>
                                    <br/><span class="muted" data-testid="suggestion-validation">{s.validation}</span>
                                </p>
                            }
                        });
                        let reason = item.as_ref().and_then(|i| i.reason.clone()).map(|r| view! {
                            <p class="muted" data-testid="why">"Why this item: "{r}</p>
                        });
                        let (item_id, text) = item.map(|i| (i.id, i.text)).unzip();
                        view! {
                            {revisiting.then(|| view! { <p class="muted">"You already answered this item; change your answer and press Enter."</p> })}
                            {suggestion}
                            {others}
                            {reason}
                            <div class="item-text" data-testid="item-text" data-item-id=item_id>
                                {text}
                            </div>
                        }.into_any()
                    }
                }}
            </section>
            <LabelBar labels=labels.get_value() selected pick=Callback::new(pick) aria_label="Labels"/>
            <section class="actions">
                <button on:click=move |_| back() disabled=move || history.with(Vec::is_empty)>"← Previous"</button>
                <button on:click=move |_| skip()>"Skip"</button>
                <button class="primary" on:click=move |_| submit() data-testid="submit">"Submit"</button>
            </section>
            <p class="keys muted">
                {if multi { "Label keys toggle labels" } else { "A label key picks it" }}
                " · "<kbd>"Enter"</kbd>" submit · "<kbd>"Space"</kbd>" skip · "<kbd>"Backspace"</kbd>" previous item"
                {has_guidelines.then_some(" · ")}
                {has_guidelines.then(|| view! { <kbd>"?"</kbd>" guidelines" })}
            </p>
            <aside class="guidelines-panel" class:open=move || show_guidelines.get() data-testid="guidelines" aria-hidden=move || (!show_guidelines.get()).to_string()>
                <h2>"Guidelines"</h2>
                <div inner_html=guidelines_html></div>
                <p class="muted"><kbd>"?"</kbd>" or "<kbd>"Esc"</kbd>" to close"</p>
            </aside>
        </main>
    }
}
