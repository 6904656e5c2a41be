//! The pages of the admin UI and the HTML shell around them.

mod dashboard;
mod entity_detail;
mod entity_tab;
mod export;
mod health;
mod import;
mod layout;
mod login;
mod mcp;
mod modal;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    SsrMode,
    components::{ParentRoute, Redirect, Route, Router, Routes},
    path,
};

use dashboard::Dashboard;
use entity_detail::EntityDetailPage;
use entity_tab::EntityTab;
use import::ImportPage;
use layout::Layout;
use login::LoginPage;

/// The HTML document the server renders around [`App`].
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The admin UI: `/login`, then everything under `/ui`.
///
/// Signed-in pages render in `Async` mode: the server waits for their data and sends
/// complete HTML, so they read the same with JavaScript off.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Runs only in the browser, once hydration has taken over the server's HTML:
    // tests and scripts wait for this attribute before they interact.
    Effect::new(move |_| {
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-hydrated", "true");
        }
    });

    view! {
        <Stylesheet id="leptos" href="/pkg/mcpgateway.css"/>
        <Title formatter=|text| format!("{text} · mcpgateway")/>
        <Router>
            <Routes fallback=|| view! { <p class="not-found">"Page not found."</p> }>
                <Route path=path!("/") view=|| view! { <Redirect path="/ui"/> }/>
                <Route path=path!("/login") view=LoginPage/>
                <ParentRoute path=path!("/ui") view=Layout ssr=SsrMode::Async>
                    <Route path=path!("") view=Dashboard/>
                    <Route path=path!("import") view=ImportPage/>
                    <Route path=path!(":kind") view=EntityTab/>
                    <Route path=path!(":kind/:id") view=EntityDetailPage/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}
