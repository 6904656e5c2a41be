use leptos::prelude::*;
use leptos_router::components::{A, Outlet};

use super::export::Selection;
use crate::{api::current_user, model::EntityKind};

/// The frame around every signed-in page: brand, tabs, the user and sign-out.
#[component]
pub fn Layout() -> impl IntoView {
    let user = Resource::new(|| (), |_| current_user());
    Selection::provide();
    view! {
        <header class="topbar">
            <a class="brand" href="/ui">"mcpgateway"</a>
            <nav class="tabs" aria-label="Configuration">
                <A href="/ui" exact=true>"Dashboard"</A>
                {EntityKind::ALL
                    .into_iter()
                    .map(|kind| {
                        view! { <A href=format!("/ui/{}", kind.plural())>{kind.title()}</A> }
                    })
                    .collect_view()}
                <A href="/ui/import">"Import"</A>
            </nav>
            <div class="account">
                <Suspense>
                    <span class="user-email">
                        {move || user.get().and_then(Result::ok).map(|u| u.email)}
                    </span>
                </Suspense>
                <form method="post" action="/auth/logout">
                    <button type="submit" class="link">"Sign out"</button>
                </form>
            </div>
        </header>
        <main class="content">
            <Outlet/>
        </main>
    }
}
