use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// The sign-in form. A plain HTML form posted to `/auth/login`, so it works with
/// JavaScript off as well as after hydration.
#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let failed = move || query.read().get("error").is_some();
    view! {
        <Title text="Sign in"/>
        <main class="login">
            <form class="card login-card" method="post" action="/auth/login">
                <h1 class="brand">"mcpgateway"</h1>
                <p class="muted">"Sign in to the admin console."</p>
                <Show when=failed>
                    <p class="error" role="alert">"Invalid email or password."</p>
                </Show>
                <label for="email">"Email"</label>
                <input id="email" name="email" type="email" autocomplete="username" required/>
                <label for="password">"Password"</label>
                <input
                    id="password"
                    name="password"
                    type="password"
                    autocomplete="current-password"
                    required
                />
                <button type="submit" class="primary">"Sign in"</button>
            </form>
        </main>
    }
}
