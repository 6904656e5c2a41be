use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::A, hooks::use_params_map};
use uuid::Uuid;

use super::{
    health::HealthCard,
    mcp::{McpEndpoint, ToolTestButton},
};
use crate::{
    api::fetch_entity_detail,
    model::{EntityDetail, EntityKind},
};

/// One entity (`/ui/tools/{id}`): its fields (never a secret) and its dependencies.
#[component]
pub fn EntityDetailPage() -> impl IntoView {
    let params = use_params_map();
    let target = move || {
        let p = params.read();
        let kind = p.get("kind").and_then(|k| EntityKind::parse(&k))?;
        let id = p.get("id").and_then(|i| Uuid::parse_str(&i).ok())?;
        Some((kind, id))
    };
    let detail = Resource::new(target, |t| async move {
        match t {
            Some((kind, id)) => fetch_entity_detail(kind, id).await,
            None => Ok(None),
        }
    });
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || detail.get().map(|result| match result {
                Ok(Some(d)) => view! { <Detail d/> }.into_any(),
                Ok(None) => view! { <p class="not-found">"No such entity."</p> }.into_any(),
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn Detail(d: EntityDetail) -> impl IntoView {
    let kind = d.row.kind;
    let link = |kind: EntityKind, key: String| view! { <li><span class="kind">{kind.singular()}</span> " " {key}</li> };
    let uses: Vec<_> = d
        .uses
        .into_iter()
        .flat_map(|(k, keys)| keys.into_iter().map(move |key| (k, key)))
        .collect();
    let no_uses = uses.is_empty();
    let used_by = d.used_by;
    let no_users = used_by.is_empty();
    let mcp = (kind == EntityKind::Server).then(|| {
        view! { <McpEndpoint id=d.row.id name=d.row.key.clone() public_origin=d.public_origin.clone()/> }
    });
    let test = d
        .input_schema
        .filter(|_| kind == EntityKind::Tool)
        .map(|schema| view! { <ToolTestButton id=d.row.id name=d.row.key.clone() schema/> });
    let health = d
        .row
        .health
        .clone()
        .map(|health| view! { <HealthCard health/> });
    view! {
        <Title text=d.row.key.clone()/>
        <p><A href=format!("/ui/{}", kind.plural())>{format!("← {}", kind.title())}</A></p>
        <h1 class="detail-title">{d.row.key.clone()}</h1>
        <p class="muted">{d.row.summary.clone()}</p>
        {test}
        {mcp}
        {health}
        <section class="dependencies">
            <div class="card">
                <h2>"Uses"</h2>
                <Show when=move || no_uses fallback=|| ()><p class="muted">"Nothing."</p></Show>
                <ul class="uses">{uses.into_iter().map(|(k, key)| link(k, key)).collect_view()}</ul>
            </div>
            <div class="card">
                <h2>"Used by"</h2>
                <Show when=move || no_users fallback=|| ()><p class="muted">"No server."</p></Show>
                <ul class="used-by">{used_by.into_iter().map(|s| link(EntityKind::Server, s)).collect_view()}</ul>
            </div>
        </section>
        <h2>"Fields"</h2>
        <pre class="json">{d.json}</pre>
    }
}
