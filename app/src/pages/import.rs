//! The import wizard (`/ui/import`): drop or choose a file; it is validated here, in the
//! browser, by the same Rust code the server runs; the server previews conflicts and
//! dependencies; entities can be left out; the import runs as a job whose progress
//! streams in (SSE) until a summary per type and per entity.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use leptos::{prelude::*, task::spawn_local};
use leptos_meta::Title;
use serde_json::Value;

use crate::{
    client::{self, ClientError, Upload, human_bytes},
    jobs::Action,
    jobs::{
        ConflictStrategy, EntityResult, ImportPreview, JobCreated, JobResults, JobState, JobStatus,
    },
    model::EntityKind,
    transfer::{OutlineRow, entity_at, keep_entities, original_pointer, outline_file, parse_file},
    validation::FieldError,
    wire::ImportOptions,
};

/// A file that was read and checked in the browser (shared, never copied: it may be large).
struct Loaded {
    name: String,
    size: u64,
    document: Option<Value>,
    rows: Vec<OutlineRow>,
    /// Every problem [`parse_file`] found (pointers into the original file).
    errors: Vec<FieldError>,
    /// Problems found beyond the listed ones (a file lists its first 1,000).
    unlisted: u64,
    /// The same errors by the entity they are in.
    errors_by_row: HashMap<(EntityKind, usize), Vec<String>>,
    warnings: Vec<FieldError>,
}

/// The server's answer to the preview, with each entity's outcome at hand.
struct PreviewView {
    preview: ImportPreview,
    actions: HashMap<(EntityKind, String), Action>,
}

/// Rows listed at first; the rest (and every row with a problem) on demand.
const ROWS_SHOWN: usize = 300;

impl Loaded {
    fn check(name: String, bytes: &[u8]) -> Loaded {
        let (errors, unlisted, warnings) = match parse_file(bytes) {
            Ok(parsed) => (Vec::new(), 0, parsed.warnings),
            Err(problems) => {
                let unlisted = problems.unlisted();
                (problems.listed, unlisted, Vec::new())
            }
        };
        let (document, rows) = match outline_file(bytes) {
            Some((d, r)) => (Some(d), r),
            None => (None, Vec::new()),
        };
        let mut errors_by_row: HashMap<_, Vec<String>> = HashMap::new();
        for e in &errors {
            if let Some(at) = entity_at(&e.pointer) {
                errors_by_row.entry(at).or_default().push(e.message.clone());
            }
        }
        Loaded {
            name,
            size: bytes.len() as u64,
            document,
            rows,
            errors,
            unlisted,
            errors_by_row,
            warnings,
        }
    }

    /// Errors that no entity owns (the envelope): they block any import.
    fn file_errors<'a>(&'a self, errors: &'a [FieldError]) -> Vec<&'a FieldError> {
        errors
            .iter()
            .filter(|e| {
                entity_at(&e.pointer)
                    .is_none_or(|at| !self.errors_by_row.contains_key(&at) && !self.has_row(at))
            })
            .collect()
    }

    fn has_row(&self, (kind, index): (EntityKind, usize)) -> bool {
        self.rows.iter().any(|r| r.kind == kind && r.index == index)
    }
}

/// The wizard's state, shared by its parts.
#[derive(Clone, Copy)]
struct Wizard {
    status: RwSignal<Option<String>>,
    loaded: RwSignal<Option<Arc<Loaded>>>,
    /// Rows the user left out, by type and position.
    excluded: RwSignal<HashSet<(EntityKind, usize)>>,
    strategy: RwSignal<ConflictStrategy>,
    source_secret: RwSignal<String>,
    preview: RwSignal<Option<Result<Arc<PreviewView>, ClientError>>>,
    /// How many rows the table lists before "Show all".
    shown: RwSignal<usize>,
    job: RwSignal<Option<JobStatus>>,
    job_error: RwSignal<Option<String>>,
}

impl Wizard {
    fn new() -> Wizard {
        Wizard {
            status: RwSignal::new(None),
            loaded: RwSignal::new(None),
            excluded: RwSignal::new(HashSet::new()),
            strategy: RwSignal::new(ConflictStrategy::Update),
            source_secret: RwSignal::new(String::new()),
            preview: RwSignal::new(None),
            shown: RwSignal::new(ROWS_SHOWN),
            job: RwSignal::new(None),
            job_error: RwSignal::new(None),
        }
    }

    /// The problems of one entity, found here or by the server.
    fn row_errors(&self, at: (EntityKind, usize)) -> Vec<String> {
        let mut errors = self
            .loaded
            .with(|l| l.as_ref().and_then(|l| l.errors_by_row.get(&at).cloned()))
            .unwrap_or_default();
        errors.extend(
            self.server_errors()
                .into_iter()
                .filter(|e| entity_at(&e.pointer) == Some(at))
                .map(|e| e.message),
        );
        errors
    }

    /// The server's refusal of the preview, with pointers mapped back to the file.
    fn server_errors(&self) -> Vec<FieldError> {
        match self.preview.get() {
            Some(Err(e)) => e.details,
            _ => Vec::new(),
        }
    }

    /// Local and server errors that still block the import.
    fn blocking(&self) -> Vec<FieldError> {
        let Some(loaded) = self.loaded.get() else {
            return Vec::new();
        };
        let mut all = loaded.errors.clone();
        all.extend(self.server_errors());
        let excluded = self.excluded.get();
        all.into_iter()
            .filter(|e| entity_at(&e.pointer).is_none_or(|at| !excluded.contains(&at)))
            .collect()
    }

    fn can_import(&self) -> bool {
        let left_out = self.excluded.with(HashSet::len);
        let chosen = self
            .loaded
            .with(|l| l.as_ref().is_some_and(|l| l.rows.len() > left_out));
        let running = self
            .job
            .with(|j| j.as_ref().is_some_and(|j| !j.status.is_final()));
        chosen
            && !running
            && self.blocking().is_empty()
            && matches!(self.preview.get(), Some(Ok(_)))
    }

    /// The file to send: only the ticked entities, and where each came from.
    fn upload(&self) -> Option<(Upload, HashMap<EntityKind, Vec<usize>>)> {
        let loaded = self.loaded.get_untracked()?;
        let document = loaded.document.as_ref()?;
        let excluded = self.excluded.get_untracked();
        let (bytes, positions) = keep_entities(document, &|kind, i| !excluded.contains(&(kind, i)));
        let options = ImportOptions {
            conflict_strategy: self.strategy.get_untracked(),
            source_secret: Some(self.source_secret.get_untracked()).filter(|s| !s.is_empty()),
            ..Default::default()
        };
        Some((
            Upload {
                file_name: loaded.name.clone(),
                bytes,
                fields: options.fields(),
            },
            positions,
        ))
    }

    /// Asks the server what the import would do (conflicts, dependencies).
    fn refresh_preview(self) {
        let Some((upload, positions)) = self.upload() else {
            return;
        };
        // The server would refuse what the browser already refuses: ask only for a clean file.
        let excluded = self.excluded.get_untracked();
        let locally_valid = self.loaded.with_untracked(|l| {
            l.as_ref().is_some_and(|l| {
                l.errors
                    .iter()
                    .all(|e| entity_at(&e.pointer).is_some_and(|at| excluded.contains(&at)))
            })
        });
        if !locally_valid || upload.bytes.is_empty() {
            self.preview.set(None);
            return;
        }
        self.preview.set(None);
        spawn_local(async move {
            let result = client::post_file::<ImportPreview>("/admin/import/preview", upload).await;
            let result = result
                .map(|preview| {
                    let actions = preview
                        .results
                        .iter()
                        .map(|r| ((r.kind, r.name.clone()), r.action))
                        .collect();
                    Arc::new(PreviewView { preview, actions })
                })
                .map_err(|mut e| {
                    for d in &mut e.details {
                        d.pointer = original_pointer(&d.pointer, &positions);
                    }
                    e
                });
            self.preview.set(Some(result));
        });
    }

    fn start(self) {
        let Some((upload, _)) = self.upload() else {
            return;
        };
        self.job_error.set(None);
        spawn_local(async move {
            let created = match client::post_file::<JobCreated>("/admin/import", upload).await {
                Ok(c) => c,
                Err(e) => return self.job_error.set(Some(e.message)),
            };
            let on_status = move |s: JobStatus| self.job.set(Some(s));
            if let Err(e) = client::follow_job(&created.events_url, on_status).await {
                self.job_error.set(Some(e.message));
            }
        });
    }

    fn cancel(self) {
        let Some(id) = self.job.with_untracked(|j| j.as_ref().map(|j| j.job_id)) else {
            return;
        };
        spawn_local(async move {
            let url = format!("/admin/import/{id}/cancel");
            if let Err(e) = client::post_empty::<JobStatus>(&url).await {
                self.job_error.set(Some(e.message));
            }
        });
    }

    /// Reads a chosen or dropped file, then validates it once the page has painted.
    fn load(self, file: web_sys::File) {
        let name = file.name();
        self.status.set(Some(format!(
            "Reading {name} ({})…",
            human_bytes(file.size() as u64)
        )));
        self.loaded.set(None);
        self.preview.set(None);
        self.job.set(None);
        self.excluded.set(HashSet::new());
        spawn_local(async move {
            let bytes = match client::read_file(file).await {
                Ok(b) => b,
                Err(e) => return self.status.set(Some(e.message)),
            };
            self.status.set(Some(format!("Validating {name}…")));
            // Let the browser paint the status before the (synchronous) validation.
            set_timeout(
                move || {
                    self.loaded.set(Some(Arc::new(Loaded::check(name, &bytes))));
                    self.shown.set(ROWS_SHOWN);
                    self.status.set(None);
                    self.refresh_preview();
                },
                std::time::Duration::from_millis(16),
            );
        });
    }
}

#[component]
pub fn ImportPage() -> impl IntoView {
    let wizard = Wizard::new();
    view! {
        <Title text="Import"/>
        <h1>"Import Configuration"</h1>
        <DropZone wizard/>
        <p class="muted import-status" role="status" aria-live="polite">{move || wizard.status.get()}</p>
        <Show when=move || wizard.loaded.with(Option::is_some)>
            <Review wizard/>
        </Show>
        <Show when=move || wizard.job.with(Option::is_some) || wizard.job_error.with(Option::is_some)>
            <Progress wizard/>
        </Show>
    }
    .into_any()
}

#[component]
fn DropZone(wizard: Wizard) -> impl IntoView {
    let dragging = RwSignal::new(false);
    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        dragging.set(false);
        let file = ev
            .data_transfer()
            .and_then(|d| d.files())
            .and_then(|f| f.get(0));
        if let Some(file) = file {
            wizard.load(file);
        }
    };
    let on_pick = move |ev: web_sys::Event| {
        use wasm_bindgen::JsCast;
        let input: Option<web_sys::HtmlInputElement> = ev.target().and_then(|t| t.dyn_into().ok());
        if let Some(file) = input.and_then(|i| i.files()).and_then(|f| f.get(0)) {
            wizard.load(file);
        }
    };
    view! {
        <label class="dropzone" class:dragging=move || dragging.get()
            on:dragover=move |ev: web_sys::DragEvent| { ev.prevent_default(); dragging.set(true); }
            on:dragleave=move |_| dragging.set(false)
            on:drop=on_drop>
            <input type="file" class="file-input" accept=".json,application/json" on:change=on_pick/>
            <strong>"Drop an export file here"</strong>
            <span class="muted">" or press Enter to choose one. It is checked in your browser before anything is sent."</span>
        </label>
    }
    .into_any()
}

#[component]
fn Review(wizard: Wizard) -> impl IntoView {
    let loaded = move || wizard.loaded.get().expect("shown when loaded");
    let header = move || {
        wizard.loaded.with(|l| {
            l.as_ref().map(|l| {
                format!(
                    "{} · {} · {} entities",
                    l.name,
                    human_bytes(l.size),
                    l.rows.len()
                )
            })
        })
    };
    let file_errors = move || {
        let l = loaded();
        let mut errors = l.errors.clone();
        errors.extend(wizard.server_errors());
        l.file_errors(&errors)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
    };
    view! {
        <section class="review">
            <h2>{header}</h2>
            <ErrorList wizard/>
            <Show when=move || !file_errors().is_empty()>
                <p class="error">"The file itself is not an export file; fix it and choose it again."</p>
            </Show>
            <Summary wizard/>
            <Options wizard/>
            <EntityRows wizard/>
            <div class="actions">
                <button type="button" class="primary start-import"
                    disabled=move || !wizard.can_import()
                    on:click=move |_| wizard.start()>
                    "Import"
                </button>
                <span class="muted">{move || {
                    let n = wizard.blocking().len();
                    (n > 0).then(|| format!("{n} problem(s) left: fix the file, or untick the entities marked in red."))
                }}</span>
            </div>
        </section>
    }
    .into_any()
}

/// Every problem, with its field, local and from the server.
#[component]
fn ErrorList(wizard: Wizard) -> impl IntoView {
    let errors = move || {
        let mut all = wizard
            .loaded
            .with(|l| l.as_ref().map(|l| l.errors.clone()).unwrap_or_default());
        all.extend(wizard.server_errors());
        all
    };
    let unlisted = move || wizard.loaded.with(|l| l.as_ref().map_or(0, |l| l.unlisted));
    let warnings = move || {
        wizard
            .loaded
            .with(|l| l.as_ref().map(|l| l.warnings.clone()).unwrap_or_default())
    };
    view! {
        <Show when=move || !warnings().is_empty()>
            <details class="validation-warnings">
                <summary>{move || format!("{} note(s)", warnings().len())}</summary>
                <ul>
                    {move || warnings().into_iter().map(|w| view! {
                        <li><code class="pointer">{w.pointer}</code> " " {w.message}</li>
                    }).collect_view()}
                </ul>
            </details>
        </Show>
        <Show when=move || !errors().is_empty()>
            <div class="validation-errors" role="alert">
                <h3>{move || match unlisted() {
                    0 => format!("{} problem(s) found", errors().len()),
                    n => format!("{} problem(s) found; the first {} are listed", errors().len() as u64 + n, errors().len()),
                }}</h3>
                <ul>
                    {move || errors().into_iter().map(|e| view! {
                        <li class="field-error"><code class="pointer">{e.pointer}</code> " " {e.message}</li>
                    }).collect_view()}
                </ul>
            </div>
        </Show>
    }
    .into_any()
}

/// Counts by type, conflicts and the dependencies the import would create.
#[component]
fn Summary(wizard: Wizard) -> impl IntoView {
    let counts = move || {
        let excluded = wizard.excluded.get();
        wizard.loaded.with(|l| {
            let rows = l.as_ref().map(|l| l.rows.as_slice()).unwrap_or_default();
            EntityKind::ALL
                .into_iter()
                .map(|k| {
                    let n = rows
                        .iter()
                        .filter(|r| r.kind == k && !excluded.contains(&(r.kind, r.index)))
                        .count();
                    (k, n)
                })
                .filter(|(_, n)| *n > 0)
                .collect::<Vec<_>>()
        })
    };
    let preview = move || wizard.preview.get().and_then(Result::ok);
    view! {
        <div class="import-summary">
            <table class="counts">
                <thead><tr><th scope="col">"Type"</th><th scope="col">"In the file"</th><th scope="col">"New"</th><th scope="col">"Existing"</th></tr></thead>
                <tbody>
                    {move || counts().into_iter().map(|(kind, n)| {
                        let c = preview().and_then(|p| p.preview.counts.get(kind).copied()).unwrap_or_default();
                        let existing = c.updated + c.unchanged + c.skipped + c.renamed;
                        view! {
                            <tr data-kind=kind.plural()>
                                <th scope="row">{kind.title()}</th>
                                <td class="count">{n}</td>
                                <td class="new">{c.created}</td>
                                <td class="existing">{existing}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            {move || preview().map(|p| view! {
                <p class="conflict-count">{format!("{} conflict(s) with existing names", p.preview.conflicts.len())}</p>
                <p class="dependency-count">{format!("{} dependenc(ies) will be created", p.preview.dependencies.len())}</p>
            })}
        </div>
    }
    .into_any()
}

#[component]
fn Options(wizard: Wizard) -> impl IntoView {
    let choices = [
        (ConflictStrategy::Skip, "Skip conflicting items"),
        (ConflictStrategy::Update, "Update existing items"),
        (ConflictStrategy::Rename, "Rename on import"),
        (ConflictStrategy::Fail, "Fail on any conflict"),
    ];
    view! {
        <fieldset class="strategy">
            <legend>"When a name already exists"</legend>
            {choices.into_iter().map(|(strategy, label)| view! {
                <label class="check">
                    <input type="radio" name="conflict_strategy" value=strategy.as_str()
                        prop:checked=move || wizard.strategy.get() == strategy
                        on:change=move |_| { wizard.strategy.set(strategy); wizard.refresh_preview(); }/>
                    " " {label}
                </label>
            }).collect_view()}
        </fieldset>
        <label class="secret">
            "Source secret (only for files from another environment) "
            <input type="password" autocomplete="off" class="source-secret"
                prop:value=move || wizard.source_secret.get()
                on:change=move |ev| { wizard.source_secret.set(event_target_value(&ev)); wizard.refresh_preview(); }/>
        </label>
    }
    .into_any()
}

#[component]
fn EntityRows(wizard: Wizard) -> impl IntoView {
    // Every row with a problem, and the first `shown` rows.
    let rows = move || {
        let shown = wizard.shown.get();
        wizard.loaded.with(|l| {
            l.as_ref()
                .map(|l| {
                    l.rows
                        .iter()
                        .enumerate()
                        .filter(|(i, r)| {
                            *i < shown || l.errors_by_row.contains_key(&(r.kind, r.index))
                        })
                        .map(|(_, r)| r.clone())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    };
    let total = move || {
        wizard
            .loaded
            .with(|l| l.as_ref().map_or(0, |l| l.rows.len()))
    };
    view! {
        <Show when=move || { total() > wizard.shown.get() }>
            <p class="muted">
                {move || format!("Listing the first {} of {} entities (and every one with a problem). ", wizard.shown.get(), total())}
                <button type="button" class="link show-all" on:click=move |_| wizard.shown.set(usize::MAX)>
                    {move || format!("Show all {}", total())}
                </button>
            </p>
        </Show>
        <table class="import-rows">
            <thead><tr><th scope="col">"Import"</th><th scope="col">"Type"</th><th scope="col">"Name"</th><th scope="col">"Status"</th></tr></thead>
            <tbody>
                {move || rows().into_iter().map(|row| view! { <EntityRow wizard row/> }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
fn EntityRow(wizard: Wizard, row: OutlineRow) -> impl IntoView {
    let at = (row.kind, row.index);
    let errors = move || wizard.row_errors(at);
    let invalid = move || !errors().is_empty();
    let key = row.key.clone();
    let outcome = move || {
        wizard.preview.with(|p| {
            p.as_ref()
                .and_then(|p| p.as_ref().ok())
                .and_then(|v| v.actions.get(&(at.0, key.clone())))
                .map(|a| format!("{a:?}").to_lowercase())
        })
    };
    let toggle = move |_| {
        wizard.excluded.update(|e| {
            if !e.remove(&at) {
                e.insert(at);
            }
        });
        wizard.refresh_preview();
    };
    view! {
        <tr class="import-row" class:invalid=invalid data-kind=row.kind.plural() data-key=row.key
            aria-invalid=move || invalid().to_string()>
            <td><input type="checkbox" class="row-include" aria-label=format!("Import {}", row.key)
                prop:checked=move || wizard.excluded.with(|e| !e.contains(&at)) on:change=toggle/></td>
            <td>{row.kind.singular()}</td>
            <td>{row.key.clone()}</td>
            <td class="row-status">{move || {
                let errors = errors();
                if errors.is_empty() { outcome().unwrap_or_default() } else { errors.join("; ") }
            }}</td>
        </tr>
    }
}

/// The running job: a progress bar from the event stream, Cancel, then the summary.
#[component]
fn Progress(wizard: Wizard) -> impl IntoView {
    let job = move || wizard.job.get();
    let percent = move || job().map_or(0.0, |j| j.progress.percent);
    let running = move || job().is_some_and(|j| !j.status.is_final());
    view! {
        <section class="import-progress">
            <h2>"Import"</h2>
            <div class="progressbar" role="progressbar" aria-label="Import progress"
                aria-valuemin="0" aria-valuemax="100" aria-valuenow=move || percent().round().to_string()>
                <div class="progressbar-fill" style=move || format!("width: {}%", percent())></div>
            </div>
            <p class="job-state">{move || job().map(|j| format!(
                "{} · {} of {} entities ({}%)",
                j.status.as_str(), j.progress.processed, j.progress.total, j.progress.percent
            ))}</p>
            <Show when=running>
                <button type="button" class="cancel-import" on:click=move |_| wizard.cancel()>"Cancel"</button>
            </Show>
            {move || wizard.job_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {move || job().filter(|j| j.status.is_final()).map(|j| view! { <JobSummary job=j/> })}
        </section>
    }
    .into_any()
}

#[component]
fn JobSummary(job: JobStatus) -> impl IntoView {
    let headline = match job.status {
        JobState::Completed => job.summary.clone().unwrap_or_else(|| "Imported.".into()),
        JobState::Cancelled => "Cancelled: nothing was imported.".into(),
        _ => "The import failed: nothing was imported.".into(),
    };
    view! {
        <div class="job-summary" data-status=job.status.as_str()>
            <p class="headline">{headline}</p>
            <ul class="errors">
                {job.errors.iter().map(|e| view! { <li class="field-error"><code>{e.pointer.clone()}</code> " " {e.message.clone()}</li> }).collect_view()}
            </ul>
            <table class="counts">
                <thead><tr>
                    <th scope="col">"Type"</th><th scope="col">"Created"</th><th scope="col">"Updated"</th>
                    <th scope="col">"Unchanged"</th><th scope="col">"Skipped"</th><th scope="col">"Renamed"</th><th scope="col">"Failed"</th>
                </tr></thead>
                <tbody>
                    {job.counts.iter().map(|(kind, c)| view! {
                        <tr data-kind=kind.plural()>
                            <th scope="row">{kind.plural()}</th>
                            <td class="created">{c.created}</td><td class="updated">{c.updated}</td>
                            <td class="unchanged">{c.unchanged}</td><td class="skipped">{c.skipped}</td>
                            <td class="renamed">{c.renamed}</td><td class="failed">{c.failed}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
            <ResultsList job_id=job.job_id total=job.results_total/>
        </div>
    }
    .into_any()
}

/// How many per-entity results the summary fetches at a time.
const RESULTS_SHOWN: u64 = 200;

/// A finished job's per-entity results, fetched a page at a time (the status carries
/// only their count, however large the job).
#[component]
fn ResultsList(job_id: uuid::Uuid, total: u64) -> impl IntoView {
    let results = RwSignal::new(Vec::<EntityResult>::new());
    let error = RwSignal::new(None::<String>);
    let more = move || {
        let offset = results.with_untracked(Vec::len);
        spawn_local(async move {
            let url = format!(
                "/admin/import/status/{job_id}/results?offset={offset}&limit={RESULTS_SHOWN}"
            );
            match client::get_json::<JobResults>(&url).await {
                Ok(page) => results.update(|r| r.extend(page.results)),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    if total > 0 {
        more();
    }
    let unread = move || (results.with(Vec::len) as u64) < total;
    view! {
        <details class="results">
            <summary>{format!("{total} entities")}</summary>
            <ul>
                {move || results.get().into_iter().map(|r| view! {
                    <li>{format!("{} {}: {:?}", r.kind.singular(), r.name, r.action).to_lowercase()}</li>
                }).collect_view()}
            </ul>
            <Show when=move || unread() && error.with(Option::is_none)>
                <button type="button" class="more-results" on:click=move |_| more()>"Show more"</button>
            </Show>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </details>
    }
    .into_any()
}
