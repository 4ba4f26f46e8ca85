use leptos::prelude::*;

use crate::api::{current_user, list_accounts, CreateAccount, CreateToken};
use crate::components::{error_text, ErrorOrLogin, TopBar};

#[component]
pub fn UsersPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| current_user());
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match me.await {
                    Ok(Some(user)) => view! { <TopBar user/><Accounts/> }.into_any(),
                    Ok(None) => view! { <leptos_router::components::Redirect path="/login"/> }.into_any(),
                    Err(e) => view! { <ErrorOrLogin error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Accounts() -> impl IntoView {
    let create = ServerAction::<CreateAccount>::new();
    let token = ServerAction::<CreateToken>::new();
    let accounts = Resource::new(move || create.version().get(), |_| list_accounts());
    view! {
        <main class="page">
            <h1>"Accounts"</h1>
            <Suspense fallback=|| view! { <p class="loading">"Loading accounts…"</p> }>
                {move || Suspend::new(async move {
                    match accounts.await {
                        Ok(list) => view! {
                            <ul data-testid="accounts">
                                {list.into_iter().map(|a| view! { <li>{a.name}{a.is_admin.then_some(" (admin)")}</li> }).collect_view()}
                            </ul>
                        }.into_any(),
                        Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Suspense>
            <section class="card">
                <h2>"New account"</h2>
                <ActionForm action=create attr:class="stack">
                    <label>"Name" <input name="name" required data-testid="account-name"/></label>
                    <label>"Password (8 characters or more)" <input type="password" name="password" minlength="8" required data-testid="account-password"/></label>
                    <label class="inline"><input type="checkbox" name="admin" value="on"/>" Administrator"</label>
                    <button type="submit" data-testid="account-submit">"Create account"</button>
                </ActionForm>
                {move || create.value().get().map(|r| match r {
                    Ok(()) => view! { <p class="ok" role="status">"Account created."</p> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
                })}
            </section>
            <section class="card">
                <h2>"API token"</h2>
                <p class="muted">"A bearer token for the REST API under /api/v1, acting as you. It is shown once."</p>
                <ActionForm action=token attr:class="row">
                    <input name="name" placeholder="what it is for" required/>
                    <button type="submit">"Create token"</button>
                </ActionForm>
                {move || token.value().get().map(|r| match r {
                    Ok(secret) => view! { <p class="ok">"Token: "<code data-testid="token">{secret}</code></p> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
                })}
            </section>
        </main>
    }
}
