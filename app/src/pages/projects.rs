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
                    </select>
                </label>
                <label>"Labels, one per line (name, or name: description); for entity spans, the entity types"
                    <textarea name="labels" rows="4" required placeholder="positive: the author likes it\nnegative\nneutral"></textarea>
                </label>
                <label>"Guidelines (Markdown)" <textarea name="guidelines" rows="4"></textarea></label>
                <button type="submit">"Create project"</button>
            </ActionForm>
            {move || action.value().get().and_then(Result::err).map(|e| view! { <p class="error" role="alert">{error_text(&e)}</p> })}
        </section>
    }
}
