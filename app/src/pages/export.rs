//! Export from the UI: the selection kept across tabs, "Export Selected" (a preview of
//! what the file will hold, dependencies and all, then the download) and "Export All
//! Configuration" on the dashboard. Both download through `/admin/export*`.

use std::collections::{BTreeMap, BTreeSet};

use leptos::{prelude::*, task::spawn_local};
use serde_json::Value;
use uuid::Uuid;

use super::modal::Modal;
use crate::{
    client::{self, human_bytes},
    jobs::{ExportPreview, PreviewItem},
    model::EntityKind,
    wire::EntitySelection,
};

/// The entities ticked on the tabs, by type: id → key. Lives as long as the signed-in
/// frame, so a selection survives moving between tabs.
#[derive(Clone, Copy)]
pub struct Selection(RwSignal<BTreeMap<EntityKind, BTreeMap<Uuid, String>>>);

impl Selection {
    pub fn provide() {
        provide_context(Selection(RwSignal::new(BTreeMap::new())));
    }

    pub fn get() -> Selection {
        expect_context::<Selection>()
    }

    pub fn contains(&self, kind: EntityKind, id: Uuid) -> bool {
        self.0
            .with(|s| s.get(&kind).is_some_and(|ids| ids.contains_key(&id)))
    }

    pub fn toggle(&self, kind: EntityKind, id: Uuid, key: &str) {
        self.0.update(|s| {
            let ids = s.entry(kind).or_default();
            if ids.remove(&id).is_none() {
                ids.insert(id, key.to_owned());
            }
        });
    }

    /// Selects all of `rows` when any is unselected, else unselects them all.
    pub fn toggle_all(&self, kind: EntityKind, rows: &[(Uuid, String)]) {
        let select = !rows.iter().all(|(id, _)| self.contains(kind, *id));
        self.0.update(|s| {
            let ids = s.entry(kind).or_default();
            for (id, key) in rows {
                if select {
                    ids.insert(*id, key.clone());
                } else {
                    ids.remove(id);
                }
            }
        });
    }

    pub fn count(&self) -> usize {
        self.0.with(|s| s.values().map(BTreeMap::len).sum())
    }

    pub fn count_of(&self, kind: EntityKind) -> usize {
        self.0.with(|s| s.get(&kind).map_or(0, BTreeMap::len))
    }

    pub fn clear(&self) {
        self.0.update(BTreeMap::clear);
    }

    /// The body of `/admin/export/selective`: per type, the selected ids.
    fn request(&self, include_dependencies: bool) -> EntitySelection {
        let mut body = EntitySelection {
            include_dependencies,
            ..Default::default()
        };
        self.0.with(|s| {
            for (kind, ids) in s {
                body.list_mut(*kind).extend(ids.keys().map(Uuid::to_string));
            }
        });
        body
    }
}

/// "Export Selected (3)": opens the preview of what the file will hold.
#[component]
pub fn ExportSelectedButton() -> impl IntoView {
    let selection = Selection::get();
    let open = RwSignal::new(false);
    view! {
        <button type="button" class="primary export-selected"
            disabled=move || selection.count() == 0
            on:click=move |_| open.set(true)>
            {move || format!("Export Selected ({})", selection.count())}
        </button>
        <Show when=move || { selection.count() > 0 }>
            <button type="button" class="link clear-selection" on:click=move |_| selection.clear()>
                "Clear selection"
            </button>
        </Show>
        <Show when=move || open.get()>
            <ExportSelectedModal on_close=Callback::new(move |_| open.set(false))/>
        </Show>
    }
    .into_any()
}

#[component]
fn ExportSelectedModal(on_close: Callback<()>) -> impl IntoView {
    let selection = Selection::get();
    let include_dependencies = RwSignal::new(true);
    let preview = LocalResource::new(move || {
        let body = selection.request(include_dependencies.get());
        async move { client::post_json::<_, ExportPreview>("/admin/export/preview", &body).await }
    });
    let download = DownloadState::new();
    let start = move |_| {
        let body = selection.request(include_dependencies.get_untracked());
        download.run("/admin/export/selective", Some(body));
    };
    view! {
        <Modal title="Export Selected".to_string() on_close>
            <label class="check">
                <input type="checkbox" class="include-dependencies"
                    prop:checked=move || include_dependencies.get()
                    on:change=move |ev| include_dependencies.set(event_target_checked(&ev))/>
                " Include dependencies (a server's tools, prompts and resources)"
            </label>
            <Suspense fallback=|| view! { <p class="muted">"Preparing the preview…"</p> }>
                {move || preview.get().map(|result| match result {
                    Ok(p) => view! { <PreviewBody preview=p/> }.into_any(),
                    Err(e) => view! { <p class="error" role="alert">{e.message}</p> }.into_any(),
                })}
            </Suspense>
            <footer class="modal-actions">
                <DownloadStatus download/>
                <button type="button" on:click=move |_| on_close.run(())>"Cancel"</button>
                <button type="button" class="primary download-export"
                    disabled=move || download.busy.get() on:click=start>
                    "Download Export"
                </button>
            </footer>
        </Modal>
    }
    .into_any()
}

#[component]
fn PreviewBody(preview: ExportPreview) -> impl IntoView {
    let by_type = group(&preview.selected);
    let total = preview.total;
    let dependencies = preview.dependencies;
    let has_dependencies = !dependencies.is_empty();
    view! {
        <p class="preview-total">{format!("{total} items in the file")}</p>
        <section class="preview-selected">
            <h3>"Selected"</h3>
            {by_type.into_iter().map(|(kind, names)| view! {
                <div class="preview-type" data-kind=kind.plural()>
                    <h4>{format!("{} ({})", kind.title(), names.len())}</h4>
                    <ul>{names.into_iter().map(|n| view! { <li>{n}</li> }).collect_view()}</ul>
                </div>
            }).collect_view()}
        </section>
        <section class="preview-dependencies">
            <h3>{format!("Dependencies ({})", dependencies.len())}</h3>
            <Show when=move || has_dependencies fallback=|| view! { <p class="muted">"None added."</p> }>
                <ul class="dependency-list">
                    {dependencies.iter().map(|d| view! {
                        <li data-kind=d.kind.plural() data-name=d.name.clone()>
                            <span class="tag">{d.kind.singular()}</span> " " {d.name.clone()}
                            <span class="muted">{format!(" ← {}", d.required_by.join(", "))}</span>
                        </li>
                    }).collect_view()}
                </ul>
                <DependencyGraph dependencies=dependencies.clone()/>
            </Show>
        </section>
    }
    .into_any()
}

fn group(items: &[PreviewItem]) -> Vec<(EntityKind, Vec<String>)> {
    EntityKind::ALL
        .into_iter()
        .map(|kind| {
            let names: Vec<String> = items
                .iter()
                .filter(|i| i.kind == kind)
                .map(|i| i.name.clone())
                .collect();
            (kind, names)
        })
        .filter(|(_, names)| !names.is_empty())
        .collect()
}

/// Servers on the left, what they need on the right, a line for each need.
#[component]
fn DependencyGraph(dependencies: Vec<PreviewItem>) -> impl IntoView {
    let servers: Vec<String> = dependencies
        .iter()
        .flat_map(|d| d.required_by.iter().cloned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    const ROW: usize = 26;
    let rows = servers.len().max(dependencies.len());
    let height = rows * ROW + 10;
    let y = |i: usize| i * ROW + 18;
    let server_y = |name: &str| y(servers.iter().position(|s| s == name).unwrap_or(0));
    let lines: Vec<(usize, usize)> = dependencies
        .iter()
        .enumerate()
        .flat_map(|(i, d)| d.required_by.iter().map(move |s| (server_y(s), y(i))))
        .collect();
    view! {
        <svg class="dependency-graph" role="img" aria-label="Dependency graph: servers and what they need"
            viewBox=format!("0 0 640 {height}") width="100%" height=height>
            {lines.into_iter().map(|(from, to)| view! {
                <line x1="200" y1=from - 4 x2="380" y2=to - 4 class="edge"/>
            }).collect_view()}
            {servers.iter().enumerate().map(|(i, s)| view! {
                <text x="195" y=y(i) text-anchor="end" class="node server">{s.clone()}</text>
            }).collect_view()}
            {dependencies.iter().enumerate().map(|(i, d)| view! {
                <text x="385" y=y(i) class=format!("node {}", d.kind.singular())>
                    {format!("{} {}", d.kind.singular(), d.name)}
                </text>
            }).collect_view()}
        </svg>
    }
}

/// A download in progress: bytes received, then the saved file's name.
#[derive(Clone, Copy)]
struct DownloadState {
    busy: RwSignal<bool>,
    received: RwSignal<u64>,
    outcome: RwSignal<Option<Result<String, String>>>,
}

impl DownloadState {
    fn new() -> DownloadState {
        DownloadState {
            busy: RwSignal::new(false),
            received: RwSignal::new(0),
            outcome: RwSignal::new(None),
        }
    }

    fn run(self, url: &'static str, body: Option<EntitySelection>) {
        self.busy.set(true);
        self.received.set(0);
        self.outcome.set(None);
        spawn_local(async move {
            let result = client::download(url, body.as_ref(), move |n| self.received.set(n)).await;
            let outcome = result.and_then(|file| {
                client::save(&file)?;
                Ok(summary(&file.bytes, &file.file_name))
            });
            self.outcome.set(Some(outcome.map_err(|e| e.message)));
            self.busy.set(false);
        });
    }
}

/// "Exported 49 total items across 6 categories" (from the file itself).
fn summary(bytes: &[u8], file_name: &str) -> String {
    let file: Value = serde_json::from_slice(bytes).unwrap_or_default();
    let counts: Vec<usize> = file["entities"]
        .as_object()
        .map(|m| {
            m.values()
                .map(|v| v.as_array().map_or(0, Vec::len))
                .collect()
        })
        .unwrap_or_default();
    let total: usize = counts.iter().sum();
    let categories = counts.iter().filter(|n| **n > 0).count();
    format!("Exported {total} total items across {categories} categories ({file_name})")
}

#[component]
fn DownloadStatus(download: DownloadState) -> impl IntoView {
    view! {
        <p class="download-status" role="status" aria-live="polite">
            {move || match (download.busy.get(), download.outcome.get()) {
                (true, _) => format!("Downloading… {} received", human_bytes(download.received.get())),
                (false, Some(Ok(summary))) => summary,
                (false, Some(Err(e))) => format!("Export failed: {e}"),
                (false, None) => String::new(),
            }}
        </p>
    }
}

/// "Export All Configuration": a confirmation with the counts, then the whole file.
#[component]
pub fn ExportAllButton(counts: Vec<(EntityKind, i64)>) -> impl IntoView {
    let open = RwSignal::new(false);
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let counts = StoredValue::new(counts);
    let download = DownloadState::new();
    view! {
        <button type="button" class="primary export-all" on:click=move |_| open.set(true)>
            "Export All Configuration"
        </button>
        <DownloadStatus download/>
        <Show when=move || open.get()>
            <Modal title="Export All Configuration".to_string() on_close=Callback::new(move |_| open.set(false))>
                <p>{format!("The file will hold all {total} items, credentials encrypted:")}</p>
                <table class="counts">
                    <tbody>
                        {counts.get_value().into_iter().map(|(kind, n)| view! {
                            <tr data-kind=kind.plural()><th scope="row">{kind.title()}</th><td>{n}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
                <footer class="modal-actions">
                    <button type="button" on:click=move |_| open.set(false)>"Cancel"</button>
                    <button type="button" class="primary confirm-export"
                        on:click=move |_| {
                            open.set(false);
                            download.run("/admin/export", None);
                        }>
                        "Export"
                    </button>
                </footer>
            </Modal>
        </Show>
    }
    .into_any()
}
