use leptos::prelude::*;

use crate::api::{needs_setup, Login};
use crate::components::{error_text, go_to};

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<Login>::new();
    let setup = Resource::new(|| (), |_| needs_setup());
    Effect::new(move |_| {
        if let Some(Ok(_)) = action.value().get() {
            go_to("/");
        }
    });
    view! {
        <main class="page narrow">
            <h1>"Sign in to Concord"</h1>
            <ActionForm action=action attr:class="stack">
                <label>"Name" <input name="name" autocomplete="username" required/></label>
                <label>"Password" <input type="password" name="password" autocomplete="current-password" required/></label>
                <button type="submit" disabled=move || action.pending().get()>"Sign in"</button>
            </ActionForm>
            {move || action.value().get().and_then(Result::err).map(|e| view! { <p class="error" role="alert">{error_text(&e)}</p> })}
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    matches!(setup.await, Ok(true)).then(|| view! {
                        <p class="hint">
                            "No administrator exists yet. Open the setup link printed in the server log, or run "
                            <code>"concord user add --admin NAME"</code>"."
                        </p>
                    })
                })}
            </Suspense>
        </main>
    }
}
