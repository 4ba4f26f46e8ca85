//! The review page of a span project: each annotator's spans side by side, the spans not every
//! annotator has marked as differences, the majority proposal, and the gold spans built with
//! the annotation page's editor — take one annotator's set by key, edit it, save.

use concord_domain::tokens::OffsetMap;
use concord_domain::{Relation, RelationTriple, Span};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{
    get_span_settings, resolve_relations, resolve_spans, review_item, review_next, review_summary,
};
use crate::components::{error_text, ErrorOrLogin, LabelBar};
use crate::pages::annotate_spans::{
    editor_labels, EditorHandle, RelationKeys, SpanEditorView, SpanKeys,
};
use crate::span_editor::{disagreements, SpanEditor};
use crate::wire::{ProjectView, ReviewItemView, ReviewSummaryView};

/// One stretch of an answer's text: the text, and the spans covering it (label names, whether
/// any of them is a difference), and the labels of spans ending right after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stretch {
    pub text: String,
    pub labels: Vec<String>,
    pub diff: bool,
    pub ending: Vec<String>,
}

/// Cuts `text` at every boundary of `spans`, so an answer can be shown as marked text.
/// `diff[i]` says whether span `i` is a difference.
pub fn stretches(text: &str, spans: &[Span], diff: &[bool]) -> Vec<Stretch> {
    let map = OffsetMap::new(text);
    let len = map.len();
    let mut cuts: Vec<u32> = spans
        .iter()
        .flat_map(|s| [s.start.min(len), s.end.min(len)])
        .chain([0, len])
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| {
            let (a, b) = (w[0], w[1]);
            let covering: Vec<usize> = (0..spans.len())
                .filter(|&i| spans[i].start < b && a < spans[i].end)
                .collect();
            Stretch {
                text: map.slice(text, a, b).unwrap_or("").to_string(),
                labels: covering.iter().map(|&i| spans[i].label.clone()).collect(),
                diff: covering
                    .iter()
                    .any(|&i| diff.get(i).copied().unwrap_or(false)),
                ending: spans
                    .iter()
                    .filter(|s| s.end == b)
                    .map(|s| s.label.clone())
                    .collect(),
            }
        })
        .collect()
}

/// An answer's text with its spans marked.
#[component]
fn MarkedText(text: String, spans: Vec<Span>, diff: Vec<bool>) -> impl IntoView {
    view! {
        <p class="marked-text">
            {stretches(&text, &spans, &diff).into_iter().map(|s| {
                let tags = s.ending.iter().map(|l| view! { <sub class="tag">{l.clone()}</sub> }).collect_view();
                if s.labels.is_empty() {
                    view! { {s.text}{tags} }.into_any()
                } else {
                    view! { <mark class="ent" class:diff=s.diff title=s.labels.join(", ")>{s.text}</mark>{tags} }.into_any()
                }
            }).collect_view()}
        </p>
    }
}

/// A list of spans as `li` lines (`data-start`, `data-end`, `data-label`; `diff` when not
/// every annotator has the span).
#[component]
fn SpanLines(text: String, spans: Vec<Span>, diff: Vec<bool>) -> impl IntoView {
    let map = OffsetMap::new(&text);
    view! {
        <ul class="span-lines">
            {spans.iter().zip(diff.iter().copied().chain(std::iter::repeat(false))).map(|(s, d)| {
                let covered = map.slice(&text, s.start, s.end).unwrap_or("").to_string();
                view! {
                    <li class:diff=d data-start=s.start.to_string() data-end=s.end.to_string() data-label=s.label.clone()>
                        {format!("{} “{}”", s.label, covered)}
                    </li>
                }
            }).collect_view()}
        </ul>
    }
}

/// For each answer, which of its relations not every answer has (by both spans and the type,
/// never by index: answers index different span lists).
pub fn relation_disagreements(answers: &[(&[Span], &[Relation])]) -> Vec<Vec<bool>> {
    let triples: Vec<Vec<Option<RelationTriple>>> = answers
        .iter()
        .map(|(spans, relations)| {
            relations
                .iter()
                .map(|r| RelationTriple::of(spans, r))
                .collect()
        })
        .collect();
    let everyone_has =
        |t: &RelationTriple| triples.iter().all(|ts| ts.iter().flatten().any(|o| o == t));
    triples
        .iter()
        .map(|ts| {
            ts.iter()
                .map(|t| !t.as_ref().is_some_and(everyone_has))
                .collect()
        })
        .collect()
}

/// An answer's relations as `li` lines (`data-head`, `data-label`, `data-tail`; `diff` when
/// not every annotator has the relation).
#[component]
fn RelationLines(
    text: String,
    spans: Vec<Span>,
    relations: Vec<Relation>,
    diff: Vec<bool>,
) -> impl IntoView {
    let map = OffsetMap::new(&text);
    let covered = move |i: u32| {
        spans
            .get(i as usize)
            .map(|s| {
                (
                    map.slice(&text, s.start, s.end).unwrap_or("").to_string(),
                    s.label.clone(),
                )
            })
            .unwrap_or_default()
    };
    view! {
        <ul class="relation-lines">
            {relations.iter().zip(diff.iter().copied().chain(std::iter::repeat(false))).map(|(r, d)| {
                let ((head, head_type), (tail, tail_type)) = (covered(r.from), covered(r.to));
                view! {
                    <li class:diff=d data-head=head.clone() data-label=r.label.clone() data-tail=tail.clone()>
                        {format!("“{head}” {head_type} → {} → “{tail}” {tail_type}", r.label)}
                    </li>
                }
            }).collect_view()}
        </ul>
    }
}

/// The review page of a span project.
#[component]
pub fn SpanReviewPage(project: ProjectView, summary: ReviewSummaryView) -> impl IntoView {
    let pid = project.id;
    let settings = Resource::new(move || pid, get_span_settings);
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                let (project, summary) = (project.clone(), summary.clone());
                Suspend::new(async move {
                    match settings.await {
                        Ok(s) => view! { <SpanReviewer project summary overlapping=s.overlapping_spans threshold=s.accept_threshold/> }.into_any(),
                        Err(e) => view! { <ErrorOrLogin error=e/> }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}

/// The digit of `Shift+digit` (by the key's position, whatever the keyboard layout writes).
fn shifted_digit(ev: &web_sys::KeyboardEvent) -> Option<usize> {
    if !ev.shift_key() || ev.ctrl_key() || ev.alt_key() || ev.meta_key() {
        return None;
    }
    ev.code()
        .strip_prefix("Digit")
        .and_then(|d| d.parse::<usize>().ok())
}

#[component]
fn SpanReviewer(
    project: ProjectView,
    summary: ReviewSummaryView,
    overlapping: bool,
    threshold: u8,
) -> impl IntoView {
    let pid = project.id;
    let labels = StoredValue::new(project.labels.clone());
    let relation_kinds = StoredValue::new(project.relation_labels.clone());
    let has_relations = !project.relation_labels.is_empty();
    let summary = RwSignal::new(summary);
    let handle = EditorHandle::new();
    let current = RwSignal::new(None::<ReviewItemView>);
    let gold_question = RwSignal::new(false);
    let history = RwSignal::new(Vec::<String>::new());
    let loading = RwSignal::new(true);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let show_guidelines = RwSignal::new(false);

    let show = move |item: Option<ReviewItemView>| {
        let editor = item.as_ref().map(|i| {
            // The gold in force, else the majority proposal (spans and relations together:
            // relations index their own answer's spans).
            let (start, start_relations) = match &i.gold_spans {
                Some(gold) => (gold.clone(), i.gold_relations.clone().unwrap_or_default()),
                None => (i.proposal_spans.clone(), i.proposal_relations.clone()),
            };
            let suggested = i
                .suggestion
                .as_ref()
                .map(|s| s.spans.clone())
                .unwrap_or_default();
            let editor = SpanEditor::new(
                &i.text,
                i.tokens.clone(),
                labels.with_value(|l| editor_labels(l)),
                overlapping,
                threshold,
                &start,
                &suggested,
            );
            if has_relations {
                let suggested_relations = i
                    .suggestion
                    .as_ref()
                    .map(|s| s.relations.clone())
                    .unwrap_or_default();
                editor.with_relations(
                    relation_kinds.get_value(),
                    &start_relations,
                    &suggested,
                    &suggested_relations,
                )
            } else {
                editor
            }
        });
        gold_question.set(item.as_ref().is_some_and(|i| i.gold_question));
        current.set(item);
        handle.load(editor);
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
        let spans = handle.own_spans();
        let relations = handle.own_relations();
        let question = as_question || gold_question.get_untracked();
        error.set(None);
        busy.set(true);
        spawn_local(async move {
            let saved = if has_relations {
                resolve_relations(pid, item.id.clone(), spans, relations, question).await
            } else {
                resolve_spans(pid, item.id.clone(), spans, question).await
            };
            match saved {
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
    // Shift+N takes annotator N's spans as the gold draft; Shift+0 the majority proposal.
    let take = move |n: usize| {
        let Some(item) = current.get_untracked() else {
            return;
        };
        let (spans, relations, what) = if n == 0 {
            (
                item.proposal_spans.clone(),
                item.proposal_relations.clone(),
                "the majority proposal".to_string(),
            )
        } else {
            match item.answers.get(n - 1) {
                Some(a) => (
                    a.spans.clone(),
                    a.relations.clone(),
                    format!("{}'s answer", a.annotator),
                ),
                None => {
                    error.set(Some(format!("There is no annotator {n} on this item.")));
                    return;
                }
            }
        };
        error.set(None);
        handle.act(|e| e.replace_own_answer(&spans, &relations, &what));
    };
    Effect::new(move |_| load_next(None));

    let page_keys = Callback::new(move |ev: web_sys::KeyboardEvent| {
        if let Some(n) = shifted_digit(&ev) {
            take(n);
            return true;
        }
        match ev.key().as_str() {
            " " if !ev.ctrl_key() && !ev.alt_key() && !ev.meta_key() => {
                skip();
                true
            }
            "Escape" => {
                show_guidelines.set(false);
                false
            }
            _ => false,
        }
    });
    let on_submit = Callback::new(save);
    let on_guidelines = Callback::new(move |_| show_guidelines.update(|g| *g = !*g));
    let pick = Callback::new(move |name: String| {
        handle.act(|e| e.label_named(&name));
        handle.focus();
    });
    let guidelines_html = project.guidelines_html.clone();
    let project_labels = project.labels.clone();

    view! {
        <main class="page review spans">
            <p><a href=format!("/projects/{pid}")>"← "{project.name.clone()}</a></p>
            <h1>"Review"</h1>
            <p class="muted" data-testid="review-summary" data-waiting=move || summary.get().needs_review.to_string()>
                {move || crate::pages::review::summary_text(&summary.get())}
            </p>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {move || {
                if loading.get() {
                    return view! { <p class="loading">"Loading…"</p> }.into_any();
                }
                let Some(item) = current.get() else {
                    return view! {
                        <section class="card" data-testid="review-empty">
                            <p>"Nothing waits for review: every finished item has its gold spans."</p>
                        </section>
                    }.into_any();
                };
                let answer_spans: Vec<&[Span]> = item.answers.iter().map(|a| a.spans.as_slice()).collect();
                let diffs = disagreements(&answer_spans);
                let proposal_diff = vec![false; item.proposal_spans.len()];
                let answer_relations: Vec<(&[Span], &[Relation])> = item.answers.iter().map(|a| (a.spans.as_slice(), a.relations.as_slice())).collect();
                let relation_diffs = relation_disagreements(&answer_relations);
                let gold_line = item.gold_spans.clone().map(|g| {
                    let source = item.gold_source.clone().unwrap_or_default();
                    let relations = item.gold_relations.as_ref().filter(|_| has_relations).map(|r| format!(", {} relation{}", r.len(), if r.len() == 1 { "" } else { "s" })).unwrap_or_default();
                    view! { <p data-testid="review-gold">{format!("Gold now: {} span{}{relations} ({source})", g.len(), if g.len() == 1 { "" } else { "s" })}</p> }
                });
                view! {
                    <section class="item-card">
                        <p class="muted"><span class="badge" data-testid="review-state">{item.state.replace('_', " ")}</span>" · item "{item.id.clone()}</p>
                        <div class="item-text spans" data-testid="review-text" data-item-id=item.id.clone()>
                            <SpanEditorView handle labels=project_labels.clone() page_keys on_submit on_guidelines/>
                        </div>
                        {gold_line}
                    </section>
                    <section class="card">
                        <h2>"Answers"</h2>
                        <div class="span-answers" data-testid="review-answers">
                            {item.answers.iter().zip(diffs).zip(relation_diffs).enumerate().map(|(n, ((a, diff), relation_diff))| view! {
                                <div class="span-answer" data-annotator=a.annotator.clone()>
                                    <h3>
                                        <kbd data-take-key=format!("Shift+Digit{}", n + 1)>{format!("Shift+{}", n + 1)}</kbd>" "{a.annotator.clone()}
                                        <span class="muted">{format!(" · {} · {:.1} s · {} span{}", a.source.replace('_', " "), a.seconds, a.spans.len(), if a.spans.len() == 1 { "" } else { "s" })}</span>
                                        {has_relations.then(|| view! { <span class="muted">{format!(" · {} relation{}", a.relations.len(), if a.relations.len() == 1 { "" } else { "s" })}</span> })}
                                    </h3>
                                    <MarkedText text=item.text.clone() spans=a.spans.clone() diff=diff.clone()/>
                                    <SpanLines text=item.text.clone() spans=a.spans.clone() diff/>
                                    {has_relations.then(|| view! { <RelationLines text=item.text.clone() spans=a.spans.clone() relations=a.relations.clone() diff=relation_diff/> })}
                                </div>
                            }).collect_view()}
                            <div class="span-answer proposal" data-testid="review-proposal">
                                <h3><kbd data-take-key="Shift+Digit0">"Shift+0"</kbd>" majority proposal"<span class="muted">" · spans more than half of the annotators have"</span></h3>
                                <MarkedText text=item.text.clone() spans=item.proposal_spans.clone() diff=proposal_diff.clone()/>
                                <SpanLines text=item.text.clone() spans=item.proposal_spans.clone() diff=proposal_diff/>
                                {has_relations.then(|| view! { <RelationLines text=item.text.clone() spans=item.proposal_spans.clone() relations=item.proposal_relations.clone() diff=Vec::new()/> })}
                            </div>
                        </div>
                    </section>
                }.into_any()
            }}
            <LabelBar labels=labels.get_value() selected=handle.selected_label() pick aria_label="Entity types"/>
            <section class="actions">
                <label class="inline">
                    <input type="checkbox" data-testid="gold-question" prop:checked=move || gold_question.get()
                        on:change=move |ev| gold_question.set(event_target_checked(&ev))/>
                    " Use as a gold question in annotators' queues"
                </label>
                <button on:click=move |_| back() disabled=move || history.with(Vec::is_empty)>"← Previous"</button>
                <button on:click=move |_| skip() disabled=move || current.with(Option::is_none)>"Skip"</button>
                <button class="primary" data-testid="resolve" on:click=move |_| save(false) disabled=move || current.with(Option::is_none) || busy.get()>"Save gold spans"</button>
            </section>
            <SpanKeys extra=vec![
                ("Shift+1 … Shift+9".into(), "take annotator N's spans (and relations) as the gold draft (numbered above)".into()),
                ("Shift+0".into(), "take the majority proposal".into()),
                ("Enter".into(), "save the gold spans (and relations)".into()),
                ("Shift+Enter".into(), "save as a gold question".into()),
                ("Space".into(), "skip".into()),
            ]/>
            {has_relations.then(|| view! { <RelationKeys kinds=relation_kinds.get_value()/> })}
            <aside class="guidelines-panel" class:open=move || show_guidelines.get() data-testid="guidelines" aria-hidden=move || (!show_guidelines.get()).to_string()>
                <h2>"Guidelines"</h2>
                <div inner_html=guidelines_html></div>
                {has_relations.then(|| view! { <h3>"Relation keys"</h3><RelationKeys kinds=relation_kinds.get_value()/> })}
                <p class="muted"><kbd>"?"</kbd>" or "<kbd>"Esc"</kbd>" to close"</p>
            </aside>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretches_cut_an_answer_at_its_boundaries_and_carry_differences() {
        // Code points: the emoji is one.
        let text = "🙂 Anna met Bob";
        let spans = [Span::new(2, 6, "PER"), Span::new(11, 14, "PER")];
        let got = stretches(text, &spans, &[false, true]);
        let texts: Vec<&str> = got.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(texts, ["🙂 ", "Anna", " met ", "Bob"]);
        assert_eq!(got[1].labels, ["PER"]);
        assert!(!got[1].diff && got[3].diff);
        assert_eq!(got[1].ending, ["PER"]);
        assert!(got[2].labels.is_empty() && got[2].ending.is_empty());
        // Nested spans cut the text into more stretches, each with every covering label.
        let nested = [Span::new(2, 14, "EVT"), Span::new(11, 14, "PER")];
        let got = stretches(text, &nested, &[true, false]);
        assert_eq!(got.last().unwrap().labels, ["EVT", "PER"]);
        assert_eq!(got.last().unwrap().ending, ["EVT", "PER"]);
        assert!(got.last().unwrap().diff);
    }

    #[test]
    fn relation_differences_compare_spans_and_types_not_indices() {
        let a_spans = [Span::new(0, 4, "PER"), Span::new(9, 13, "ORG")];
        // The same spans listed the other way round, and one more.
        let b_spans = [
            Span::new(9, 13, "ORG"),
            Span::new(0, 4, "PER"),
            Span::new(20, 25, "LOC"),
        ];
        let a = [Relation::new(0, 1, "works_for")];
        let b = [
            Relation::new(1, 0, "works_for"),
            Relation::new(0, 2, "located_in"),
        ];
        let reversed = [Relation::new(1, 0, "works_for")];
        assert_eq!(
            relation_disagreements(&[(&a_spans, &a), (&b_spans, &b)]),
            [vec![false], vec![false, true]]
        );
        assert_eq!(
            relation_disagreements(&[(&a_spans, &a), (&a_spans, &reversed)]),
            [vec![true], vec![true]],
            "a reversed relation is another relation"
        );
    }
}
