//! Concord's browser UI: Leptos pages rendered on the server and hydrated in the browser, the
//! server functions they call (thin wrappers over `concord-engine`, compiled only with the
//! `ssr` feature), and the wire types both sides share.

// The model card's nested views (versions, span and relation metrics, charts) are deep types;
// computing their layout for hydration needs more than the default 128 query levels.
#![recursion_limit = "256"]

pub mod api;
mod charts;
mod components;
mod pages;
pub mod span_editor;
#[cfg(feature = "ssr")]
pub mod ssr;
pub mod wire;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;
use leptos_router::SsrMode;

/// The HTML document around the app (server side only). `stylesheet` is the URL of the site's
/// stylesheet, whose name carries a hash of its contents (the server knows it, the browser
/// bundle need not: the link lives here, outside what hydrates).
pub fn shell(options: LeptosOptions, stylesheet: String) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <link id="concord" rel="stylesheet" href=stylesheet/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Marks the page once the browser has taken it over, so tests (and people on slow
    // connections) can tell a live page from the server's first paint.
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
    view! {
        <Title text="Concord"/>
        <Router>
            <Routes fallback=|| view! { <main class="page"><h1>"Not found"</h1><a href="/">"Back to projects"</a></main> }>
                // Rendered whole before the response starts, so a page can still answer with a
                // redirect (to the sign-in page) once it knows who is asking.
                <Route path=path!("/login") view=pages::login::LoginPage ssr=SsrMode::Async/>
                <Route path=path!("/setup") view=pages::setup::SetupPage ssr=SsrMode::Async/>
                <Route path=path!("/") view=pages::projects::ProjectsPage ssr=SsrMode::Async/>
                <Route path=path!("/projects/:id") view=pages::project::ProjectPage ssr=SsrMode::Async/>
                <Route path=path!("/projects/:id/agreement") view=pages::agreement::AgreementPage ssr=SsrMode::Async/>
                <Route path=path!("/projects/:id/review") view=pages::review::ReviewPage ssr=SsrMode::Async/>
                <Route path=path!("/projects/:id/label-errors") view=pages::label_errors::LabelErrorsPage ssr=SsrMode::Async/>
                <Route path=path!("/projects/:id/annotate") view=pages::annotate::AnnotatePage ssr=SsrMode::Async/>
                <Route path=path!("/users") view=pages::users::UsersPage ssr=SsrMode::Async/>
            </Routes>
        </Router>
    }
}
