use concord_domain::RelationLabel;
use leptos::prelude::*;

use crate::api::{current_user, list_projects, CreateProject};
use crate::components::{error_text, go_to, ErrorOrLogin, TopBar};
use crate::wire::{ProjectView, UserView};

#[component]
pub fn ProjectsPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| current_user());
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match me.await {
                    Ok(Some(user)) => view! { <TopBar user=user.clone()/><Projects user/> }.into_any(),
                    Ok(None) => view! { <leptos_router::components::Redirect path="/login"/> }.into_any(),
                    Err(e) => view! { <ErrorOrLogin error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Projects(user: UserView) -> impl IntoView {
    let projects = Resource::new(|| (), |_| list_projects());
    view! {
        <main class="page">
            <h1>"Projects"</h1>
            <Suspense fallback=|| view! { <p class="loading">"Loading projects…"</p> }>
                {move || Suspend::new(async move {
                    match projects.await {
                        Ok(list) if list.is_empty() => view! { <p class="hint">"No projects yet."</p> }.into_any(),
                        Ok(list) => view! {
                            <ul class="project-list">
                                {list.into_iter().map(|p| view! { <ProjectRow project=p/> }).collect_view()}
                            </ul>
                        }.into_any(),
                        Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Suspense>
            {user.is_admin.then(|| view! { <NewProject/> })}
        </main>
    }
}

#[component]
fn ProjectRow(project: ProjectView) -> impl IntoView {
    let percent = project.percent_done();
    view! {
        <li class="project-row">
            <a href=format!("/projects/{}", project.id)>{project.name.clone()}</a>
            <span class="muted">{project.task.as_str()}" · "{project.role.as_str()}</span>
            <span class="progress-text">{format!("{} / {} done · {} by you", project.done, project.total, project.mine)}</span>
            <progress max="100" value=percent></progress>
        </li>
    }
}

#[component]
fn NewProject() -> impl IntoView {
    let action = ServerAction::<CreateProject>::new();
    Effect::new(move |_| {
        if let Some(Ok(id)) = action.value().get() {
            go_to(&format!("/projects/{id}"));
        }
    });
    view! {
        <section class="card">
            <h2>"New project"</h2>
            <ActionForm action=action attr:class="stack">
                <label>"Name" <input name="name" required maxlength="200"/></label>
                <label>"Task"
                    <select name="task" data-testid="new-project-task">
                        <option value="classification">"Classification (one label per item)"</option>
                        <option value="multilabel">"Multi-label (any labels per item)"</option>
                        <option value="spans">"Entity spans (labelled stretches of the text; the labels are the entity types)"</option>
                        <option value="relations">"Relations (entity spans, and typed links from one span to another)"</option>
                    </select>
                </label>
                <label>"Labels, one per line (name, or name: description); for entity spans, the entity types"
                    <textarea name="labels" rows="4" required placeholder="positive: the author likes it\nnegative\nneutral"></textarea>
                </label>
                <label>"Relation types, one per line, for a relations project only: name, or name: head types -> tail types (comma-separated entity types; empty or * for any)"
                    <textarea name="relation_types" rows="3" data-testid="new-project-relation-types" placeholder="works_for: PER -> ORG\nlocated_in: ORG, PER -> LOC\nrelated_to"></textarea>
                </label>
                <label>"Guidelines (Markdown)" <textarea name="guidelines" rows="4"></textarea></label>
                <button type="submit">"Create project"</button>
            </ActionForm>
            {move || action.value().get().and_then(Result::err).map(|e| view! { <p class="error" role="alert">{error_text(&e)}</p> })}
        </section>
    }
}

/// Reads the new-project form's relation types, one per line: `name` (between any entity
/// types) or `name: HEAD, … -> TAIL, …` (either side empty or `*`: any type). Blank lines are
/// skipped; a line that cannot be read is refused with its number.
// Called by the `create_project` server function, which the browser build does not compile.
#[cfg_attr(not(feature = "ssr"), allow(dead_code))]
pub fn parse_relation_lines(text: &str) -> Result<Vec<RelationLabel>, String> {
    let types = |side: &str| -> Vec<String> {
        side.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "*")
            .map(String::from)
            .collect()
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (name, ends) = match line.split_once(':') {
            Some((name, ends)) => (name.trim(), Some(ends)),
            None => (line, None),
        };
        if name.is_empty() {
            return Err(format!(
                "relation types, line {}: the name is missing",
                n + 1
            ));
        }
        let (head, tail) = match ends {
            None => (Vec::new(), Vec::new()),
            Some(ends) => match ends.split_once("->") {
                Some((head, tail)) => (types(head), types(tail)),
                None => {
                    return Err(format!(
                        "relation types, line {}: write the ends as head types -> tail types (e.g. {name}: PER -> ORG)",
                        n + 1
                    ))
                }
            },
        };
        out.push(RelationLabel {
            head,
            tail,
            ..RelationLabel::named(name)
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::type_complexity)]
    fn check(text: &str, expected: Result<Vec<(&str, &[&str], &[&str])>, &str>) {
        let got = parse_relation_lines(text).map(|kinds| {
            kinds
                .into_iter()
                .map(|k| (k.name, k.head, k.tail))
                .collect::<Vec<_>>()
        });
        let expected = expected
            .map(|rows| {
                rows.into_iter()
                    .map(|(n, h, t)| {
                        let strings = |xs: &[&str]| xs.iter().map(|x| x.to_string()).collect();
                        (n.to_string(), strings(h), strings(t))
                    })
                    .collect::<Vec<_>>()
            })
            .map_err(String::from);
        assert_eq!(got, expected, "{text:?}");
    }

    #[test]
    fn relation_type_lines_are_read_or_refused_with_their_line_number() {
        check("", Ok(vec![]));
        check(
            "works_for: PER -> ORG\n\nlocated_in: ORG, PER -> LOC\nrelated_to\nany: * -> ",
            Ok(vec![
                ("works_for", &["PER"], &["ORG"]),
                ("located_in", &["ORG", "PER"], &["LOC"]),
                ("related_to", &[], &[]),
                ("any", &[], &[]),
            ]),
        );
        check(
            "ok\nbad: PER ORG",
            Err("relation types, line 2: write the ends as head types -> tail types (e.g. bad: PER -> ORG)"),
        );
        check(
            ": PER -> ORG",
            Err("relation types, line 1: the name is missing"),
        );
    }
}
