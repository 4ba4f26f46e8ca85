//! The accounts page: everyone's own password, sessions and API tokens; for admins also every
//! account (create, disable, enable, set a password) and every user's tokens.

use leptos::prelude::*;

use crate::api::{
    current_user, list_accounts, list_tokens, ChangePassword, CreateAccount, CreateToken,
    RevokeToken, SetAccountDisabled, SignOutEverywhere,
};
use crate::components::{error_text, go_to, ErrorOrLogin, TopBar};
use crate::wire::{format_utc_minute, AppError, UserView};

#[component]
pub fn UsersPage() -> impl IntoView {
    let me = Resource::new(|| (), |_| current_user());
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match me.await {
                    Ok(Some(user)) => view! { <TopBar user=user.clone()/><Accounts user/> }.into_any(),
                    Ok(None) => view! { <leptos_router::components::Redirect path="/login"/> }.into_any(),
                    Err(e) => view! { <ErrorOrLogin error=e/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// A form's outcome: a confirmation or the error.
fn outcome<T>(result: Option<Result<T, AppError>>, done: &'static str) -> Option<AnyView> {
    result.map(|r| match r {
        Ok(_) => view! { <p class="ok" role="status">{done}</p> }.into_any(),
        Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
    })
}

#[component]
fn Accounts(user: UserView) -> impl IntoView {
    let is_admin = user.is_admin;
    view! {
        <main class="page">
            <h1>{if is_admin { "Accounts" } else { "Your account" }}</h1>
            {is_admin.then(|| view! { <AdminAccounts/> })}
            <OwnAccount/>
            <Tokens is_admin/>
        </main>
    }
}

/// Every account, with disable/enable; creating accounts; setting another user's password.
#[component]
fn AdminAccounts() -> impl IntoView {
    let create = ServerAction::<CreateAccount>::new();
    let toggle = ServerAction::<SetAccountDisabled>::new();
    let set_password = ServerAction::<ChangePassword>::new();
    let accounts = Resource::new(
        move || (create.version().get(), toggle.version().get()),
        |_| list_accounts(),
    );
    view! {
        <Suspense fallback=|| view! { <p class="loading">"Loading accounts…"</p> }>
            {move || Suspend::new(async move {
                match accounts.await {
                    Ok(list) => view! {
                        <ul data-testid="accounts">
                            {list.into_iter().map(|a| {
                                let (label, next) = if a.disabled { ("Enable", "false") } else { ("Disable", "true") };
                                view! {
                                    <li class="row" data-testid="account" data-disabled=a.disabled.to_string()>
                                        <span>{a.name.clone()}{a.is_admin.then_some(" (admin)")}{a.disabled.then_some(" — disabled")}</span>
                                        <ActionForm action=toggle>
                                            <input type="hidden" name="name" value=a.name.clone()/>
                                            <input type="hidden" name="disabled" value=next/>
                                            <button type="submit" class="link" data-testid="account-toggle">{label}</button>
                                        </ActionForm>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                    Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                }
            })}
        </Suspense>
        {move || outcome(toggle.value().get(), "Account updated; a disabled account's sessions ended.")}
        <section class="card">
            <h2>"New account"</h2>
            <ActionForm action=create attr:class="stack">
                <label>"Name" <input name="name" required data-testid="account-name"/></label>
                <label>"Password (8 characters or more)" <input type="password" name="password" minlength="8" required data-testid="account-password"/></label>
                <label class="inline"><input type="checkbox" name="admin" value="on"/>" Administrator"</label>
                <button type="submit" data-testid="account-submit">"Create account"</button>
            </ActionForm>
            {move || outcome(create.value().get(), "Account created.")}
        </section>
        <section class="card">
            <h2>"Set another account's password"</h2>
            <p class="muted">"Ends that account's sessions."</p>
            <ActionForm action=set_password attr:class="stack">
                <label>"Account" <input name="user" required/></label>
                <label>"New password" <input type="password" name="new_password" minlength="8" required autocomplete="new-password"/></label>
                <button type="submit">"Set password"</button>
            </ActionForm>
            {move || outcome(set_password.value().get(), "Password set.")}
        </section>
    }
}

/// The caller's own password and sessions.
#[component]
fn OwnAccount() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    let everywhere = ServerAction::<SignOutEverywhere>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = everywhere.value().get() {
            go_to("/login");
        }
    });
    view! {
        <section class="card">
            <h2>"Change your password"</h2>
            <p class="muted">"Your other sessions end; this one stays signed in."</p>
            <ActionForm action=change attr:class="stack">
                <label>"Current password" <input type="password" name="current" required autocomplete="current-password"/></label>
                <label>"New password (8 characters or more)" <input type="password" name="new_password" minlength="8" required autocomplete="new-password"/></label>
                <button type="submit" data-testid="password-submit">"Change password"</button>
            </ActionForm>
            {move || outcome(change.value().get(), "Password changed.")}
        </section>
        <section class="card">
            <h2>"Sign out everywhere"</h2>
            <ActionForm action=everywhere attr:class="row">
                <label class="inline"><input type="checkbox" name="tokens" value="on"/>" Also revoke my API tokens"</label>
                <button type="submit" data-testid="sign-out-everywhere">"Sign out everywhere"</button>
            </ActionForm>
            {move || everywhere.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{error_text(&e)}</p> })}
        </section>
    }
}

/// API tokens: create (optionally expiring), list (never the secret), revoke.
#[component]
fn Tokens(is_admin: bool) -> impl IntoView {
    let create = ServerAction::<CreateToken>::new();
    let revoke = ServerAction::<RevokeToken>::new();
    let tokens = Resource::new(
        move || (create.version().get(), revoke.version().get()),
        |_| list_tokens(),
    );
    view! {
        <section class="card">
            <h2>"API tokens"</h2>
            <p class="muted">"A bearer token for the REST API under /api/v1, acting as you. It is shown once."</p>
            <ActionForm action=create attr:class="row">
                <input name="name" placeholder="what it is for" required aria-label="Token name"/>
                <input name="expires_days" type="number" min="1" placeholder="expires after days (empty: never)" aria-label="Expires after days" data-testid="token-expires"/>
                <button type="submit">"Create token"</button>
            </ActionForm>
            {move || create.value().get().map(|r| match r {
                Ok(secret) => view! { <p class="ok">"Token: "<code data-testid="token">{secret}</code></p> }.into_any(),
                Err(e) => view! { <p class="error" role="alert">{error_text(&e)}</p> }.into_any(),
            })}
            <Suspense fallback=|| view! { <p class="loading">"Loading tokens…"</p> }>
                {move || Suspend::new(async move {
                    match tokens.await {
                        Ok(list) if list.is_empty() => view! { <p class="muted">"No API tokens."</p> }.into_any(),
                        Ok(list) => view! {
                            <table data-testid="tokens">
                                <thead><tr>
                                    {is_admin.then(|| view! { <th>"Account"</th> })}
                                    <th>"Name"</th><th>"Created"</th><th>"Last used"</th><th>"Expires"</th><th></th>
                                </tr></thead>
                                <tbody>
                                    {list.into_iter().map(|t| view! {
                                        <tr>
                                            {is_admin.then(|| view! { <td>{t.user.clone()}</td> })}
                                            <td>{t.name.clone()}</td>
                                            <td>{format_utc_minute(t.created_ms)}</td>
                                            <td>{t.last_used_ms.map(format_utc_minute).unwrap_or_else(|| "never".into())}</td>
                                            <td>{t.expires_ms.map(format_utc_minute).unwrap_or_else(|| "never".into())}</td>
                                            <td>
                                                <ActionForm action=revoke>
                                                    <input type="hidden" name="id" value=t.id.clone()/>
                                                    <button type="submit" class="link" data-testid="token-revoke">"Revoke"</button>
                                                </ActionForm>
                                            </td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(e) => view! { <p class="error">{error_text(&e)}</p> }.into_any(),
                    }
                })}
            </Suspense>
            {move || revoke.value().get().and_then(|r| r.err()).map(|e| view! { <p class="error" role="alert">{error_text(&e)}</p> })}
        </section>
    }
}
