//! Pieces shared by several pages.

use concord_domain::ErrorKind;
use leptos::prelude::*;
use leptos_router::components::Redirect;

use crate::api::Logout;
use crate::wire::{AppError, UserView};

/// The message of a server function error, as a person reads it.
pub fn error_text(e: &AppError) -> String {
    e.message.clone()
}

/// Shows an error, or sends the visitor to the sign-in page when the error is that they are
/// not signed in.
#[component]
pub fn ErrorOrLogin(error: AppError) -> impl IntoView {
    if error.kind == ErrorKind::NotSignedIn {
        view! { <Redirect path="/login"/> }.into_any()
    } else {
        view! { <main class="page"><p class="error" role="alert">{error.message}</p><a href="/">"Back to projects"</a></main> }.into_any()
    }
}

/// The `:id` of a `/projects/:id/…` route, reactive; 0 (no such project) when it is not a number.
pub fn project_id_param() -> impl Fn() -> u64 + Copy + Send + Sync + 'static {
    let params = leptos_router::hooks::use_params_map();
    move || {
        params
            .read()
            .get("id")
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
    }
}

/// Navigates with a full page load (used after signing in or out, so every resource reloads).
pub fn go_to(path: &str) {
    #[cfg(feature = "hydrate")]
    {
        let _ = window().location().set_href(path);
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}

/// The top bar: where you are, who you are, how to leave.
#[component]
pub fn TopBar(user: UserView) -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = logout.value().get() {
            go_to("/login");
        }
    });
    view! {
        <header class="topbar">
            <a class="brand" href="/">"Concord"</a>
            <nav>
                <a href="/">"Projects"</a>
                <a href="/users">{if user.is_admin { "Accounts" } else { "Account" }}</a>
            </nav>
            <span class="who" data-testid="signed-in-as">{user.name.clone()}</span>
            <ActionForm action=logout>
                <button type="submit" class="link">"Sign out"</button>
            </ActionForm>
        </header>
    }
}

/// Whether a key press happened while typing in a form field, where label keys must not fire.
#[cfg(feature = "hydrate")]
pub fn typing_in_field(ev: &web_sys::KeyboardEvent) -> bool {
    use wasm_bindgen::JsCast;
    ev.target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok())
        .is_some_and(|el| matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT"))
}

/// The name of the label whose hotkey is `key` (case-insensitive).
#[cfg(feature = "hydrate")]
pub fn label_for_key(labels: &[concord_domain::Label], key: &str) -> Option<String> {
    let key = key.to_lowercase();
    labels
        .iter()
        .find(|l| l.hotkey.as_deref() == Some(key.as_str()))
        .map(|l| l.name.clone())
}

/// The row of label buttons (colour, hotkey, description as tooltip); `selected` marks the
/// chosen ones and a click calls `pick` with the label's name.
#[component]
pub fn LabelBar(
    labels: Vec<concord_domain::Label>,
    selected: RwSignal<Vec<String>>,
    pick: Callback<String>,
    aria_label: &'static str,
) -> impl IntoView {
    view! {
        <section class="label-bar" role="group" aria-label=aria_label>
            {labels.into_iter().map(|l| {
                let name = l.name.clone();
                let is_on = { let name = name.clone(); move || selected.get().contains(&name) };
                let on_click = { let name = name.clone(); move |_| pick.run(name.clone()) };
                view! {
                    <button class="label-button" class:selected=is_on.clone() aria-pressed=move || is_on().to_string()
                        style=format!("--label-colour:{}", l.colour) title=l.description.clone().unwrap_or_default()
                        data-label=name.clone() on:click=on_click>
                        <kbd>{l.hotkey.clone().unwrap_or_default()}</kbd>" "{name.clone()}
                    </button>
                }
            }).collect_view()}
        </section>
    }
}
