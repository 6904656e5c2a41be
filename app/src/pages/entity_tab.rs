use super::{
    export::{ExportSelectedButton, Selection},
    health::HealthBadge,
};
use crate::{
    api::list_entities,
    model::{EntityKind, EntityRow, ListFilter},
};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{
    components::{A, Form},
    hooks::{use_params_map, use_query_map},
};

/// One configuration tab (`/ui/tools`, `/ui/gateways`, …): a filterable table with a
/// checkbox per row and a select-all.
#[component]
pub fn EntityTab() -> impl IntoView {
    let params = use_params_map();
    let kind = move || {
        params
            .read()
            .get("kind")
            .and_then(|k| EntityKind::parse(&k))
    };
    move || match kind() {
        Some(kind) => view! { <KindTable kind/> }.into_any(),
        None => view! { <p class="not-found">"No such tab."</p> }.into_any(),
    }
}

#[component]
fn KindTable(kind: EntityKind) -> impl IntoView {
    let query = use_query_map();
    let filter = move || {
        let q = query.read();
        ListFilter {
            search: q.get("q").filter(|s| !s.is_empty()),
            tag: q.get("tag").filter(|s| !s.is_empty()),
            include_inactive: q.get("inactive").is_some(),
        }
    };
    let rows = Resource::new(filter, move |f| list_entities(kind, f));
    view! {
        <Title text=kind.title()/>
        <div class="tab-header">
            <h1 class="tab-title">{kind.title()}</h1>
            <ExportSelectedButton/>
        </div>
        <Form method="GET" action="">
            <div class="filters" role="search">
                <input type="search" name="q" placeholder="Search by name" aria-label="Search by name"
                    prop:value=move || query.read().get("q").unwrap_or_default()/>
                <input type="text" name="tag" placeholder="Tag" aria-label="Filter by tag"
                    prop:value=move || query.read().get("tag").unwrap_or_default()/>
                <label class="check">
                    <input type="checkbox" name="inactive" value="1"
                        prop:checked=move || query.read().get("inactive").is_some()/>
                    " Include inactive"
                </label>
                <button type="submit">"Filter"</button>
            </div>
        </Form>
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || rows.get().map(|result| match result {
                Ok(rows) => view! { <Rows kind rows/> }.into_any(),
                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn Rows(kind: EntityKind, rows: Vec<EntityRow>) -> impl IntoView {
    let selection = Selection::get();
    let ids: Vec<(uuid::Uuid, String)> = rows.iter().map(|r| (r.id, r.key.clone())).collect();
    let all_ids = ids.clone();
    let all_selected =
        move || !all_ids.is_empty() && all_ids.iter().all(|(id, _)| selection.contains(kind, *id));
    let toggle_all = move |_| selection.toggle_all(kind, &ids);
    let count = rows.len();
    let empty = rows.is_empty();
    view! {
        <p class="muted selection-status">
            {count} " " {kind.plural()} " · "
            <span class="selected-count">{move || selection.count_of(kind)}</span> " selected"
        </p>
        <table class="entities" data-kind=kind.plural()>
            <thead>
                <tr>
                    <th scope="col" class="select">
                        <input type="checkbox" class="select-all" aria-label=format!("Select all {}", kind.plural())
                            prop:checked=all_selected on:change=toggle_all/>
                    </th>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Details"</th>
                    <th scope="col">"Tags"</th>
                    <th scope="col">"Auth"</th>
                    <th scope="col">"Active"</th>
                </tr>
            </thead>
            <tbody>
                <Show when=move || empty>
                    <tr class="empty">
                        <td colspan="6">{format!("No {} match.", kind.plural())}</td>
                    </tr>
                </Show>
                {rows.into_iter().map(|row| view! { <Row row/> }).collect_view()}
            </tbody>
        </table>
    }
}

#[component]
fn Row(row: EntityRow) -> impl IntoView {
    let selection = Selection::get();
    let (id, kind, key) = (row.id, row.kind, row.key.clone());
    let href = format!("/ui/{}/{}", row.kind.plural(), row.id);
    let toggle = move |_| selection.toggle(kind, id, &key);
    let checked = move || selection.contains(kind, id);
    let title = if row.name == row.key {
        row.name.clone()
    } else {
        format!("{} ({})", row.name, row.key)
    };
    view! {
        <tr class="entity-row" data-key=row.key class:selected=checked>
            <td class="select">
                <input type="checkbox" class="row-select" aria-label=format!("Select {}", row.key)
                    prop:checked=checked on:change=toggle/>
            </td>
            <td><A href=href>{title}</A> {row.health.map(|health| view! { <HealthBadge health/> })}</td>
            <td class="summary">{row.summary}</td>
            <td class="tags">{row.tags.into_iter().map(|t| view! { <span class="tag">{t}</span> }).collect_view()}</td>
            <td>{row.auth_type.map_or("—", |t| t.as_str())}</td>
            <td>{if row.is_active { "yes" } else { "no" }}</td>
        </tr>
    }
}
