use leptos::prelude::*;
use leptos_meta::Title;

use super::export::ExportAllButton;
use crate::{api::fetch_gateway_status, model::EntityKind};

/// The landing page after sign-in: one card per configuration type and the gateway's state.
#[component]
pub fn Dashboard() -> impl IntoView {
    let status = Resource::new(|| (), |_| fetch_gateway_status());
    view! {
        <Title text="Dashboard"/>
        <h1>"Dashboard"</h1>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            <section class="cards">
                {move || {
                    let counts = status.get().and_then(Result::ok).map(|s| s.counts).unwrap_or_default();
                    EntityKind::ALL
                        .into_iter()
                        .map(|kind| {
                            let n = counts.iter().find(|(k, _)| *k == kind).map(|(_, n)| *n);
                            view! {
                                <a class="card kind-card" href=format!("/ui/{}", kind.plural()) data-kind=kind.plural()>
                                    <span class="kind-count">{n.map(|n| n.to_string()).unwrap_or_else(|| "–".into())}</span>
                                    <span class="kind-title">{kind.title()}</span>
                                </a>
                            }
                        })
                        .collect_view()
                }}
            </section>
            {move || {
                status
                    .get()
                    .map(|result| match result {
                        Ok(s) => {
                            view! {
                                <div class="dashboard-actions">
                                    <ExportAllButton counts=s.counts.clone()/>
                                    <a class="button" href="/ui/import">"Import Configuration"</a>
                                </div>
                                <dl class="status">
                                    <dt>"Version"</dt>
                                    <dd>{s.version}</dd>
                                    <dt>"Database"</dt>
                                    <dd class="database">{s.database}</dd>
                                    <dt>"Users"</dt>
                                    <dd>{s.users}</dd>
                                    <dt>"Active API tokens"</dt>
                                    <dd>{s.active_api_tokens}</dd>
                                </dl>
                            }
                                .into_any()
                        }
                        Err(e) => {
                            view! { <p class="error">{e.to_string()}</p> }.into_any()
                        }
                    })
            }}
        </Suspense>
    }
}
