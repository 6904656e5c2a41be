use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::model::EntityKind;

/// One configuration tab (`/ui/tools`, `/ui/gateways`, …).
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
    view! {
        <Title text=kind.title()/>
        <h1 class="tab-title">{kind.title()}</h1>
        <table class="entities" data-kind=kind.plural()>
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Details"</th>
                    <th scope="col">"Tags"</th>
                    <th scope="col">"Active"</th>
                </tr>
            </thead>
            <tbody>
                <tr class="empty">
                    <td colspan="4">{format!("No {} configured yet.", kind.plural())}</td>
                </tr>
            </tbody>
        </table>
    }
}
