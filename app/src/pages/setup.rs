use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::SetupAdmin;
use crate::components::{error_text, go_to};

/// First-run page: the link printed in the server log carries a one-time token.
#[component]
pub fn SetupPage() -> impl IntoView {
    let query = use_query_map();
    let token = move || query.read().get("token").unwrap_or_default();
    let action = ServerAction::<SetupAdmin>::new();
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            go_to("/");
        }
    });
    view! {
        <main class="page narrow">
            <h1>"Set up Concord"</h1>
            <p>"Create the first administrator account."</p>
            <ActionForm action=action attr:class="stack">
                <input type="hidden" name="token" prop:value=token/>
                <label>"Name" <input name="name" autocomplete="username" required/></label>
                <label>"Password (8 characters or more)" <input type="password" name="password" autocomplete="new-password" minlength="8" required/></label>
                <button type="submit">"Create administrator"</button>
            </ActionForm>
            {move || action.value().get().and_then(Result::err).map(|e| view! { <p class="error" role="alert">{error_text(&e)}</p> })}
        </main>
    }
}
