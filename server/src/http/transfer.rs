//! Export and import over REST: thin adapters over [`crate::transfer`].
//!
//! - `GET /admin/export`, `POST /admin/export/selective`: the file, as a download.
//! - `GET|POST /admin/export/preview`: what an export would hold.
//! - `POST /admin/import` (multipart or JSON): 202 and a durable job; `POST /admin/import/preview`.
//! - `GET /admin/import/status/{id}`, `…/events` (SSE), `POST /admin/import/{id}/cancel`,
//!   `GET /admin/import/jobs`, `GET /admin/audit`.

use app::validation::Code;
use std::{collections::HashSet, convert::Infallible, time::Duration};

use app::{
    jobs::{ConflictStrategy, ExportPreview, ImportPreview, JobCreated, JobResults, JobStatus},
    model::EntityKind,
    validation::FieldError,
};
use axum::{
    Extension, Json, Router,
    body::{Body, Bytes},
    extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use futures_util::{Stream, TryStreamExt};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, de};
use serde_json::{Map, Value, value::RawValue};
use uuid::Uuid;

use super::{
    AppState,
    extract::{Path, Query},
};
use crate::{
    auth::Principal,
    crypto::Cipher,
    error::{Error, Result},
    store::audit::{AuditEntry, AuditQuery},
    transfer::{
        export::{ExportOptions, Plan, preview as export_preview},
        input::Input,
        jobs::{JobRequest, SubmitError},
        selection::{Include, parse_types},
        spool::Spool,
    },
};

pub fn routes(max_upload_bytes: usize) -> Router<AppState> {
    // Multipart bodies are limited by this layer as a whole; a JSON body is counted as it
    // is spooled, against the same number (`upload_limit`).
    let uploads = Router::new()
        .route("/admin/import", post(start_import))
        .route("/admin/import/preview", post(preview_import))
        .layer(DefaultBodyLimit::max(max_upload_bytes));
    Router::new()
        .route("/admin/export", get(export_all))
        .route("/admin/export/selective", post(export_selected))
        .route(
            "/admin/export/preview",
            get(preview_export_query).post(preview_export_selected),
        )
        .route("/admin/import/status/{id}", get(job_status))
        .route("/admin/import/status/{id}/events", get(job_events))
        .route("/admin/import/status/{id}/results", get(job_results))
        .route("/admin/import/{id}/cancel", post(cancel_job))
        .route("/admin/import/jobs", get(list_jobs))
        .route("/admin/audit", get(audit))
        .merge(uploads)
}

// ---- export ------------------------------------------------------------------------

/// Export the configuration as a download.
#[utoipa::path(get, path = "/admin/export", tag = "export",
    params(
        ("types" = Option<String>, Query, description = "Comma-separated types (tools, gateways, servers, prompts, resources, roots)"),
        ("exclude_types" = Option<String>, Query, description = "Comma-separated types to leave out"),
        ("tags" = Option<String>, Query, description = "Entities with any of these tags (all of them with `tags_all=true`), plus the servers that use them (which keep all their links)"),
        ("tags_all" = Option<bool>, Query, description = "Every tag of `tags` must match (default false: any one)"),
        ("include" = Option<String>, Query, description = "Names or globs per type, e.g. `tool:weather_api,server:ai-*`"),
        ("include_inactive" = Option<bool>, Query, description = "Include disabled entities (default false)"),
        ("include_dependencies" = Option<bool>, Query, description = "Add what selected servers need (default true)"),
        ("format" = Option<String>, Query, description = "Only `json`"),
    ),
    responses(
        (status = 200, description = "The export file (attachment)", body = ref("#/components/schemas/ExportFile")),
        (status = 400, description = "A bad parameter, named", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn export_all(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let options = export_options(&params)?;
    download(&state, &who, &options).await
}

/// Export exactly the chosen entities (by id or name), plus their dependencies.
#[utoipa::path(post, path = "/admin/export/selective", tag = "export",
    request_body(content = ref("#/components/schemas/Selection"), description = "Per type, ids or names; `include_dependencies` (default true). ContextForge's `{\"entity_selections\": {...}}` is accepted too."),
    responses(
        (status = 200, description = "The export file (attachment)", body = ref("#/components/schemas/ExportFile")),
        (status = 400, description = "A bad selection, named", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn export_selected(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Result<Response> {
    let options = selection_options(&body)?;
    download(&state, &who, &options).await
}

/// What `GET /admin/export` would hold with the same parameters.
#[utoipa::path(get, path = "/admin/export/preview", tag = "export",
    responses((status = 200, description = "Counts, selected entities and added dependencies", body = ref("#/components/schemas/ExportPreview"))))]
pub async fn preview_export_query(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<ExportPreview>> {
    let options = export_options(&params)?;
    Ok(Json(export_preview(&state.store, &options).await?))
}

/// What `POST /admin/export/selective` would hold with the same body.
#[utoipa::path(post, path = "/admin/export/preview", tag = "export",
    request_body(content = ref("#/components/schemas/Selection")),
    responses((status = 200, description = "Counts, selected entities and added dependencies", body = ref("#/components/schemas/ExportPreview"))))]
pub async fn preview_export_selected(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<ExportPreview>> {
    let options = selection_options(&body)?;
    Ok(Json(export_preview(&state.store, &options).await?))
}

/// The export streamed as it is written: the selection is settled first (its errors are
/// proper answers), then a task writes the file into a bounded pipe the body reads from.
async fn download(state: &AppState, who: &Principal, options: &ExportOptions) -> Result<Response> {
    let source = state
        .settings
        .public_origin
        .clone()
        .unwrap_or_else(|| format!("http://{}:{}", state.settings.host, state.settings.port));
    // The plan opens the snapshot: a permit first, so exports never take the whole pool.
    let permit = state
        .exports
        .clone()
        .acquire_owned()
        .await
        .map_err(anyhow::Error::from)?;
    let plan = Plan::new(&state.store, options).await?;
    let (mut writer, reader) = tokio::io::duplex(EXPORT_PIPE_BYTES);
    let (store, actor) = (state.store.clone(), who.email.clone());
    tokio::spawn(async move {
        let _permit = permit;
        match plan.write(&store, &actor, &source, &mut writer).await {
            Ok(written) => tracing::info!(
                export.entities = written.total(),
                export.bytes = written.bytes,
                "export sent"
            ),
            // The body ends early: the client sees a cut-off file, never a wrong one.
            Err(e) => tracing::warn!(error.detail = %e, "export stopped"),
        }
    });
    let name = format!("export-{}.json", chrono::Utc::now().format("%Y%m%d-%H%M%S"));
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .map_err(anyhow::Error::from)?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(reader)),
    )
        .into_response())
}

/// How far the export's writer may run ahead of the client.
const EXPORT_PIPE_BYTES: usize = 256 * 1024;

fn bad(name: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        pointer: format!("/{name}"),
        code: Code::Invalid,
        message: message.into(),
    }
}

/// An option given twice with different values (never echoed: it may be a secret).
fn twice(name: &str) -> FieldError {
    FieldError {
        pointer: format!("/{name}"),
        code: Code::Conflicting,
        message: format!(
            "`{name}` is given twice with different values (form field, JSON member or query parameter): give it once"
        ),
    }
}

fn parse_bool(name: &str, value: &str, errors: &mut Vec<FieldError>) -> bool {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => true,
        "false" | "0" | "no" | "" => false,
        _ => {
            errors.push(bad(name, format!("`{value}` is not true or false")));
            false
        }
    }
}

/// The export query, every bad parameter named at once (400).
fn export_options(params: &[(String, String)]) -> Result<ExportOptions> {
    let mut options = ExportOptions {
        include_dependencies: true,
        ..Default::default()
    };
    let mut errors = Vec::new();
    let mut excluded = Vec::new();
    for (name, value) in params {
        match name.as_str() {
            "format" | "export_format" if value != "json" => errors.push(bad(
                name,
                format!("`{value}` is not a supported format: use json"),
            )),
            "format" | "export_format" => {}
            "types" => match parse_types(value) {
                Ok(types) => options.types = types,
                Err(e) => errors.push(bad(name, e)),
            },
            "exclude_types" => match parse_types(value) {
                Ok(types) => excluded = types,
                Err(e) => errors.push(bad(name, e)),
            },
            "tags" => {
                options.tags = value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "include" => match Include::parse(value) {
                Ok(include) => options.include = Some(include),
                Err(e) => errors.push(bad(name, e)),
            },
            "tags_all" => options.tags_all = parse_bool(name, value, &mut errors),
            "include_inactive" => options.include_inactive = parse_bool(name, value, &mut errors),
            "include_dependencies" => {
                options.include_dependencies = parse_bool(name, value, &mut errors)
            }
            _ => errors.push(bad(name, "unknown parameter")),
        }
    }
    if !excluded.is_empty() {
        let base = if options.types.is_empty() {
            EntityKind::ALL.to_vec()
        } else {
            options.types.clone()
        };
        options.types = base.into_iter().filter(|k| !excluded.contains(k)).collect();
        if options.types.is_empty() {
            errors.push(bad("exclude_types", "leaves no type to export"));
        }
    }
    if errors.is_empty() {
        Ok(options)
    } else {
        Err(Error::Parameters(errors))
    }
}

/// `{"tools": [ids or names], …, "include_dependencies": true}` (or ContextForge's
/// `{"entity_selections": {…}, "include_dependencies": true}`).
fn selection_options(body: &[u8]) -> Result<ExportOptions> {
    let body: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        Error::Parameters(vec![FieldError {
            pointer: String::new(),
            code: Code::InvalidJson,
            message: format!("the body is not a JSON object: {e}"),
        }])
    })?;
    let mut errors = Vec::new();
    let mut options = ExportOptions {
        include_dependencies: true,
        include_inactive: true,
        ..Default::default()
    };
    let (selections, base) = match body.get("entity_selections") {
        Some(Value::Object(inner)) => (inner.clone(), "/entity_selections"),
        Some(_) => {
            errors.push(bad("entity_selections", "must be an object of type → ids"));
            (Map::new(), "/entity_selections")
        }
        None => (body.clone(), ""),
    };
    for (name, value) in &body {
        match (name.as_str(), value) {
            ("include_dependencies", Value::Bool(b)) => options.include_dependencies = *b,
            ("include_dependencies", _) => errors.push(bad(name, "must be true or false")),
            _ => {}
        }
    }
    let mut picked = HashSet::new();
    for (name, value) in &selections {
        if base.is_empty() && matches!(name.as_str(), "include_dependencies" | "entity_selections")
        {
            continue;
        }
        let pointer = format!("{base}/{name}");
        let Some(kind) = EntityKind::parse(name) else {
            errors.push(FieldError {
                pointer,
                code: Code::UnknownType,
                message: format!("`{name}` is not an entity type"),
            });
            continue;
        };
        let Some(items) = value.as_array() else {
            errors.push(FieldError {
                pointer,
                code: Code::Invalid,
                message: "must be a list of ids or names".into(),
            });
            continue;
        };
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) => {
                    picked.insert((kind, s.to_owned()));
                }
                None => errors.push(FieldError {
                    pointer: format!("{pointer}/{i}"),
                    code: Code::Invalid,
                    message: "must be an id or a name (a string)".into(),
                }),
            }
        }
    }
    if picked.is_empty() && errors.is_empty() {
        errors.push(bad("", "select at least one entity"));
    }
    if !errors.is_empty() {
        return Err(Error::Parameters(errors));
    }
    options.picked = Some(picked);
    Ok(options)
}

// ---- import ------------------------------------------------------------------------

/// Start an import job: the file is checked completely, stored, and run in the background.
#[utoipa::path(post, path = "/admin/import", tag = "import",
    request_body(content = ref("#/components/schemas/ImportRequest"), description = "multipart/form-data with `file`, `conflict_strategy`, `dry_run`, `include`, `selected_entities` (JSON), `source_secret`, `rekey_secret`; or a JSON body: the export file itself, or ContextForge's `{import_data, conflict_strategy, dry_run, rekey_secret, selected_entities}`",
        content_type = "multipart/form-data"),
    responses(
        (status = 202, description = "Queued; follow `status_url`", body = ref("#/components/schemas/JobCreated")),
        (status = 400, description = "A bad option, named", body = ref("#/components/schemas/ErrorEnvelope")),
        (status = 413, description = "Larger than MCPGATEWAY_MAX_UPLOAD_MB", body = ref("#/components/schemas/ErrorEnvelope")),
        (status = 415, description = "Neither multipart/form-data nor JSON", body = ref("#/components/schemas/ErrorEnvelope")),
        (status = 422, description = "Every problem of the file, each with its JSON Pointer; nothing queued", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn start_import(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    request: Request,
) -> Result<Response> {
    let upload = read_upload(&state, request).await?;
    let created: JobCreated = state
        .jobs
        .submit(upload, &who.email)
        .await
        .map_err(refused)?;
    let location = HeaderValue::from_str(&created.status_url).map_err(anyhow::Error::from)?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(created),
    )
        .into_response())
}

/// What an import would do (the import run and rolled back): counts, conflicts,
/// dependencies it would create, per-entity results.
#[utoipa::path(post, path = "/admin/import/preview", tag = "import",
    request_body(content = ref("#/components/schemas/ImportRequest"), content_type = "multipart/form-data"),
    responses(
        (status = 200, description = "The plan", body = ref("#/components/schemas/ImportPreview")),
        (status = 422, description = "Every problem of the file, each with its JSON Pointer", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn preview_import(
    State(state): State<AppState>,
    request: Request,
) -> Result<Json<ImportPreview>> {
    let upload = read_upload(&state, request).await?;
    Ok(Json(state.jobs.preview(upload).await.map_err(refused)?))
}

fn refused(e: SubmitError) -> Error {
    match e {
        SubmitError::Invalid(problems) => Error::InvalidFile(problems),
        SubmitError::Database(e) => Error::from(e),
    }
}

/// The file and options of an import request, from multipart form data or JSON.
async fn read_upload(state: &AppState, request: Request) -> Result<JobRequest> {
    // Options may come as query parameters too (`?dry_run=true`): read before the body.
    let query = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(request.uri())
        .map_err(|e| Error::BadRequest(e.body_text()))?
        .0;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let limit = state.settings.max_upload_mb;
    let mut form = if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, state)
            .await
            .map_err(|e| Error::BadRequest(e.body_text()))?;
        read_multipart(multipart, limit).await?
    } else if content_type.starts_with("application/json") {
        read_json(spool_body(request, limit).await?).await?
    } else {
        return Err(Error::UnsupportedMediaType(format!(
            "send the file as multipart/form-data (field `file`) or as application/json, not `{}`",
            if content_type.is_empty() {
                "no content type"
            } else {
                &content_type
            }
        )));
    };
    for (name, value) in query {
        match name.as_str() {
            "file" => form
                .errors
                .push(bad(&name, "send the file in the body, not the query")),
            _ => form.set(&name, value),
        }
    }
    form.check_rekey(&state.cipher);
    form.finish()
}

/// The largest upload, in bytes (the limit `routes` is given too).
fn upload_limit(limit_mb: u64) -> u64 {
    limit_mb.saturating_mul(1 << 20)
}

/// Appends a piece of an upload to its spool, refusing it past the limit (413).
async fn spool_piece(spool: &mut Spool, piece: &[u8], limit_mb: u64) -> Result<()> {
    if spool.len() + piece.len() as u64 > upload_limit(limit_mb) {
        return Err(Error::PayloadTooLarge(limit_mb));
    }
    spool.write(piece).await.map_err(spool_failed)
}

fn spool_failed(e: std::io::Error) -> Error {
    Error::Internal(anyhow::Error::new(e).context("cannot spool the upload"))
}

/// A JSON body, streamed into a spool file as it arrives and mapped.
async fn spool_body(request: Request, limit_mb: u64) -> Result<Input> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > upload_limit(limit_mb)) {
        return Err(Error::PayloadTooLarge(limit_mb));
    }
    let mut body = request.into_body().into_data_stream();
    let mut spool = Spool::new().map_err(spool_failed)?;
    while let Some(piece) = body
        .try_next()
        .await
        .map_err(|e| Error::BadRequest(format!("the request body cannot be read: {e}")))?
    {
        spool_piece(&mut spool, &piece, limit_mb).await?;
    }
    spool.finish().await.map_err(spool_failed)
}

/// Fields of an import request before they are checked.
#[derive(Default)]
struct Form {
    input: Option<Input>,
    file_name: Option<String>,
    strategy: Option<String>,
    dry_run: Option<String>,
    include: Option<String>,
    selected: Option<Value>,
    source_secret: Option<String>,
    rekey_secret: Option<String>,
    allow_missing_links: Option<String>,
    errors: Vec<FieldError>,
}

impl Form {
    /// One option, from a form field, a JSON member or a query parameter: the same
    /// option given twice must say the same thing (a silent choice of one could turn a
    /// dry run into a real import).
    fn set(&mut self, name: &str, value: String) {
        let slot = match name {
            "conflict_strategy" => &mut self.strategy,
            "dry_run" => &mut self.dry_run,
            "include" => &mut self.include,
            "source_secret" => &mut self.source_secret,
            "rekey_secret" => &mut self.rekey_secret,
            "allow_missing_links" => &mut self.allow_missing_links,
            "selected_entities" => {
                match serde_json::from_str(&value) {
                    Ok(v) => self.set_selected(v),
                    Err(e) => self.errors.push(bad(name, format!("not JSON: {e}"))),
                }
                return;
            }
            _ => {
                self.errors.push(bad(name, "unknown field or parameter"));
                return;
            }
        };
        match slot {
            Some(old) if *old != value => self.errors.push(twice(name)),
            Some(_) => {}
            None => *slot = Some(value),
        }
    }

    fn set_selected(&mut self, value: Value) {
        match &self.selected {
            Some(old) if *old != value => self.errors.push(twice("selected_entities")),
            Some(_) => {}
            None => self.selected = Some(value),
        }
    }

    /// `rekey_secret` (ContextForge's name) must be this gateway's own secret: the
    /// credentials are re-encrypted with the key the gateway decrypts with.
    fn check_rekey(&mut self, cipher: &Cipher) {
        let Some(rekey) = self.rekey_secret.take().filter(|s| !s.is_empty()) else {
            return;
        };
        if Cipher::new(&SecretString::from(rekey)).fingerprint() != cipher.fingerprint() {
            self.errors.push(bad(
                "rekey_secret",
                "must be this gateway's AUTH_ENCRYPTION_SECRET (credentials are re-encrypted with the key the gateway decrypts with); send the exporter's secret as source_secret",
            ));
        }
    }

    fn finish(mut self) -> Result<JobRequest> {
        let strategy = match self.strategy.as_deref() {
            None | Some("") => ConflictStrategy::default(),
            Some(s) => s.parse().unwrap_or_else(|e: String| {
                self.errors.push(bad("conflict_strategy", e));
                ConflictStrategy::default()
            }),
        };
        let dry_run = self
            .dry_run
            .as_deref()
            .is_some_and(|v| parse_bool("dry_run", v, &mut self.errors));
        let allow_missing_links = self
            .allow_missing_links
            .as_deref()
            .is_some_and(|v| parse_bool("allow_missing_links", v, &mut self.errors));
        let selected = self.selected.take().and_then(|v| self.selected_keys(v));
        if self.input.is_none() {
            self.errors
                .push(bad("file", "no file: send it in the field `file`"));
        }
        if !self.errors.is_empty() {
            return Err(Error::Parameters(self.errors));
        }
        Ok(JobRequest {
            input: self.input.unwrap_or_else(|| Input::from(Vec::new())),
            file_name: self.file_name,
            strategy,
            dry_run,
            include: self.include.filter(|s| !s.trim().is_empty()),
            selected,
            source_secret: self
                .source_secret
                .filter(|s| !s.is_empty())
                .map(SecretString::from),
            allow_missing_links,
        })
    }

    /// `{"tools": ["name", …], …}` → (type, key) pairs.
    fn selected_keys(&mut self, value: Value) -> Option<Vec<(EntityKind, String)>> {
        let Value::Object(map) = value else {
            self.errors.push(bad(
                "selected_entities",
                "must be an object of type → names",
            ));
            return None;
        };
        let mut keys = Vec::new();
        for (name, list) in map {
            let kind = EntityKind::parse(&name);
            match (kind, list.as_array()) {
                (Some(kind), Some(items)) => keys.extend(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|s| (kind, s.to_owned())),
                ),
                _ => self.errors.push(FieldError {
                    pointer: format!("/selected_entities/{name}"),
                    code: Code::Invalid,
                    message: "must be an entity type with a list of names".into(),
                }),
            }
        }
        Some(keys)
    }
}

/// The largest option of an import request (any field but the file), in bytes. Options
/// are a strategy, a flag, a pattern, secrets and a selection of names; a larger one is
/// refused naming it (400) before it is kept, so no option costs memory in proportion to
/// the body.
pub const MAX_OPTION_BYTES: usize = 64 * 1024;
/// The most option fields (any but the file) an import request may have.
const MAX_OPTIONS: usize = 32;

fn option_too_large(name: &str, size: usize) -> FieldError {
    FieldError {
        pointer: format!("/{}", app::validation::escape(name)),
        code: Code::TooLarge,
        message: format!(
            "is {size} bytes; an option may be at most {} KiB",
            MAX_OPTION_BYTES / 1024
        ),
    }
}

fn too_many() -> FieldError {
    bad(
        "",
        format!("more than {MAX_OPTIONS} option fields: send the file and the options it needs"),
    )
}

/// An option field's text, read up to [`MAX_OPTION_BYTES`]; past that the rest of the
/// field is read and dropped, and only its size is kept (`Err`).
async fn option_text(
    field: &mut axum::extract::multipart::Field<'_>,
) -> std::result::Result<std::result::Result<String, usize>, axum::extract::multipart::MultipartError>
{
    let mut text = Vec::new();
    let mut size = 0;
    while let Some(piece) = field.chunk().await? {
        size += piece.len();
        if size <= MAX_OPTION_BYTES {
            text.extend_from_slice(&piece);
        }
    }
    if size > MAX_OPTION_BYTES {
        return Ok(Err(size));
    }
    Ok(Ok(String::from_utf8_lossy(&text).into_owned()))
}

async fn read_multipart(mut multipart: Multipart, limit: u64) -> Result<Form> {
    let too_large = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::PayloadTooLarge(limit)
        } else {
            Error::BadRequest(format!(
                "the multipart body cannot be read: {}",
                e.body_text()
            ))
        }
    };
    let mut form = Form::default();
    let mut options = 0;
    while let Some(mut field) = multipart.next_field().await.map_err(too_large)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name != "file" {
            options += 1;
            if options > MAX_OPTIONS {
                form.errors.push(too_many());
                return Err(Error::Parameters(form.errors));
            }
        }
        if name == "file" {
            form.file_name = field.file_name().map(str::to_owned);
            let mut spool = Spool::new().map_err(spool_failed)?;
            while let Some(piece) = field.chunk().await.map_err(too_large)? {
                spool_piece(&mut spool, &piece, limit).await?;
            }
            form.input = Some(spool.finish().await.map_err(spool_failed)?);
        } else {
            match option_text(&mut field).await.map_err(too_large)? {
                Ok(value) => form.set(&name, value),
                Err(size) => form.errors.push(option_too_large(&name, size)),
            }
        }
    }
    Ok(form)
}

/// A JSON body: ContextForge's `{"import_data": {...}, …options}`, or the file itself.
/// The file is the part of the spool that `import_data` spans: nothing is copied.
async fn read_json(body: Input) -> Result<Form> {
    let mut form = Form::default();
    let Some(wrapped) = scan(&body, |b| parse_wrapper(b.bytes())).await? else {
        form.input = Some(body);
        return Ok(form);
    };
    form.input = Some(body.slice(wrapped.data));
    form.errors.extend(wrapped.refused);
    for (name, value) in wrapped.options {
        match value {
            Value::Null => {}
            Value::String(s) => form.set(&name, s),
            Value::Bool(b) => form.set(&name, b.to_string()),
            other if name == "selected_entities" => form.set_selected(other),
            _ => form
                .errors
                .push(bad(&name, "must be a string or a boolean")),
        }
    }
    Ok(form)
}

/// Runs `parse` over `body` on a blocking thread while the body's pages are let go every
/// few milliseconds, so a scan of a large body keeps little of it resident (a dropped page
/// the parser still needs is read again from the file: the bytes never change).
async fn scan<T: Send + 'static>(
    body: &Input,
    parse: impl FnOnce(&Input) -> T + Send + 'static,
) -> Result<T> {
    let task = {
        let body = body.clone();
        tokio::task::spawn_blocking(move || parse(&body))
    };
    tokio::pin!(task);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let done = loop {
        tokio::select! {
            done = &mut task => break done,
            _ = tick.tick() => body.release_before(body.len()),
        }
    };
    body.release_before(body.len());
    done.map_err(|e| Error::Internal(anyhow::Error::new(e).context("scanning the upload")))
}

/// A wrapper body taken apart: where the file is, and the other members as JSON.
#[derive(Debug)]
struct Wrapped {
    data: std::ops::Range<usize>,
    /// In order; a repeated name keeps its first place and its last value.
    options: Map<String, Value>,
    /// Options too large to keep, or past the first [`MAX_OPTIONS`]: only named.
    refused: Vec<FieldError>,
}

/// `bytes` as ContextForge's wrapper, or `None` when it is not one (the body is the file).
fn parse_wrapper(bytes: &[u8]) -> Option<Wrapped> {
    // First pass: nothing but `import_data` is kept, so a body that is the file itself
    // costs no memory to rule out.
    let data = serde_json::from_slice::<ImportData>(bytes).ok()?.0?;
    let data = span_of(bytes, data);
    // Second pass (a wrapper): the options, each parsed only if it is small.
    let mut options = Map::new();
    let mut refused = Vec::new();
    if let Ok(Options { members, more }) = serde_json::from_slice::<Options>(bytes) {
        for (name, raw) in members {
            let size = raw.get().len();
            if size > MAX_OPTION_BYTES {
                refused.push(option_too_large(&name, size));
            } else {
                options.insert(name, serde_json::from_str(raw.get()).unwrap_or(Value::Null));
            }
        }
        if more > 0 {
            refused.push(too_many());
        }
    }
    Some(Wrapped {
        data,
        options,
        refused,
    })
}

/// Where `raw` (borrowed from `bytes`) lies in `bytes`.
fn span_of(bytes: &[u8], raw: &RawValue) -> std::ops::Range<usize> {
    let start = raw.get().as_ptr() as usize - bytes.as_ptr() as usize;
    start..start + raw.get().len()
}

/// A JSON object's `import_data` member, borrowed (the last one when repeated); every
/// other member is skipped.
struct ImportData<'a>(Option<&'a RawValue>);

/// A JSON object's members other than `import_data`, in order, values borrowed: the
/// first [`MAX_OPTIONS`] (names cut to [`NAME_CHARS`]), and how many more there were.
struct Options<'a> {
    members: Vec<(String, &'a RawValue)>,
    more: usize,
}

/// How much of an option's name is kept (to name it in an error).
const NAME_CHARS: usize = 100;

impl<'de> Deserialize<'de> for ImportData<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor(ImportData(None)))
    }
}

impl<'de> Deserialize<'de> for Options<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor(Options {
            members: Vec::new(),
            more: 0,
        }))
    }
}

/// Visits a JSON object's members into `T` (one of the two above).
struct MembersVisitor<T>(T);

impl<'de> de::Visitor<'de> for MembersVisitor<ImportData<'de>> {
    type Value = ImportData<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: de::MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(name) = map.next_key_seed(ShortName)? {
            if name == "import_data" {
                self.0.0 = Some(map.next_value()?);
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(self.0)
    }
}

impl<'de> de::Visitor<'de> for MembersVisitor<Options<'de>> {
    type Value = Options<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: de::MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(name) = map.next_key_seed(ShortName)? {
            let value: &'de RawValue = map.next_value()?;
            let options = &mut self.0;
            if name == "import_data" {
                continue;
            }
            if options.members.len() < MAX_OPTIONS {
                options.members.push((name, value));
            } else {
                options.more += 1;
            }
        }
        Ok(self.0)
    }
}

/// A member name, cut to its first [`NAME_CHARS`] characters (a name may be megabytes).
struct ShortName;

impl<'de> de::DeserializeSeed<'de> for ShortName {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl de::Visitor<'_> for ShortName {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<String, E> {
        Ok(name.chars().take(NAME_CHARS).collect())
    }
}

// ---- jobs --------------------------------------------------------------------------

/// An import job: status, progress, counts per type, how many results, errors (the
/// first 1,000 and their count). The per-entity results are paged: `…/results`.
#[utoipa::path(get, path = "/admin/import/status/{id}", tag = "import",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job", body = ref("#/components/schemas/JobStatus")),
        (status = 404, description = "No such job", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn job_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>> {
    let id = job_id(&id)?;
    Ok(Json(state.jobs.status(id).await?.ok_or(Error::NotFound)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsParams {
    offset: Option<u64>,
    limit: Option<u64>,
}

/// A page of a finished job's per-entity results, in dependency order.
#[utoipa::path(get, path = "/admin/import/status/{id}/results", tag = "import",
    params(
        ("id" = String, Path, description = "The job id"),
        ("offset" = Option<u64>, Query, description = "The first result's position, from 0 (default 0)"),
        ("limit" = Option<u64>, Query, description = "1-1000, default 1000"),
    ),
    responses(
        (status = 200, description = "The page and the total", body = ref("#/components/schemas/JobResults")),
        (status = 400, description = "A bad parameter, named", body = ref("#/components/schemas/ErrorEnvelope")),
        (status = 404, description = "No such job", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn job_results(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<ResultsParams>,
) -> Result<Json<JobResults>> {
    let id = job_id(&id)?;
    let limit = params.limit.unwrap_or(JobResults::MAX_LIMIT);
    if !(1..=JobResults::MAX_LIMIT).contains(&limit) {
        return Err(Error::Parameters(vec![bad("limit", "must be 1-1000")]));
    }
    let offset = params.offset.unwrap_or(0);
    let page = state.jobs.results(id, offset, limit).await?;
    Ok(Json(page.ok_or(Error::NotFound)?))
}

/// Server-Sent Events: `progress` events as the job advances, then one `done` event.
#[utoipa::path(get, path = "/admin/import/status/{id}/events", tag = "import",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "text/event-stream of `progress` and a final `done` event, each carrying the job status as JSON", content_type = "text/event-stream"),
        (status = 404, description = "No such job", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn job_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let id = job_id(&id)?;
    let first = state.jobs.status(id).await?.ok_or(Error::NotFound)?;
    let stream = futures_util::stream::unfold(
        (state, Some(first), None::<JobStatus>),
        move |(state, next, last)| async move {
            let status = match next {
                Some(s) => s,
                None => wait_for_change(&state, id, last.as_ref()?).await?,
            };
            let done = status.status.is_final();
            let event = Event::default()
                .event(if done { "done" } else { "progress" })
                .json_data(&status)
                .unwrap_or_default();
            // After `done`, the next poll ends the stream.
            let last = (!done).then_some(status);
            Some((Ok(event), (state, None, last)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The job's next different status (progress moved or the state changed).
async fn wait_for_change(state: &AppState, id: Uuid, last: &JobStatus) -> Option<JobStatus> {
    let mut changes = state.jobs.subscribe(id);
    loop {
        match changes.as_mut() {
            Some(rx) => {
                let _ = tokio::time::timeout(Duration::from_millis(500), rx.changed()).await;
                // Bursts of entities become one event per 100 ms at most.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None => tokio::time::sleep(Duration::from_millis(250)).await,
        }
        let status = state.jobs.status(id).await.ok()??;
        if status.status != last.status || status.progress != last.progress {
            return Some(status);
        }
        if changes.is_none() {
            changes = state.jobs.subscribe(id);
        }
    }
}

/// Cancel a job: a queued one at once, a running one rolls back (nothing written).
#[utoipa::path(post, path = "/admin/import/{id}/cancel", tag = "import",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job after the request (a running job becomes `cancelled` when its transaction has rolled back)", body = ref("#/components/schemas/JobStatus")),
        (status = 404, description = "No such job", body = ref("#/components/schemas/ErrorEnvelope")),
        (status = 409, description = "The job had already ended", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn cancel_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>> {
    let id = job_id(&id)?;
    let before = state.jobs.status(id).await?.ok_or(Error::NotFound)?;
    if before.status.is_final() {
        return Err(Error::Conflict(format!(
            "the job has already ended ({})",
            before.status.as_str()
        )));
    }
    Ok(Json(state.jobs.cancel(id).await?.ok_or(Error::NotFound)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsParams {
    limit: Option<i64>,
}

/// Recent import jobs, newest first (without per-entity results).
#[utoipa::path(get, path = "/admin/import/jobs", tag = "import",
    params(("limit" = Option<i64>, Query, description = "1-500, default 50")),
    responses((status = 200, description = "Jobs", body = ref("#/components/schemas/JobList"))))]
pub async fn list_jobs(
    State(state): State<AppState>,
    Query(params): Query<JobsParams>,
) -> Result<Json<Value>> {
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Error::Parameters(vec![bad("limit", "must be 1-500")]));
    }
    let jobs = state.jobs.list(limit).await?;
    Ok(Json(serde_json::json!({ "jobs": jobs })))
}

fn job_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| Error::NotFound)
}

// ---- audit -------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    action: Option<String>,
    user: Option<String>,
    since: Option<String>,
    limit: Option<i64>,
}

/// The audit trail: exports, imports, key rotations, sign-ins and entity changes, with
/// who did them (never a secret).
#[utoipa::path(get, path = "/admin/audit", tag = "audit",
    params(
        ("action" = Option<String>, Query, description = "e.g. export, import, rekey, login"),
        ("user" = Option<String>, Query, description = "The actor's email"),
        ("since" = Option<String>, Query, description = "RFC 3339 time"),
        ("limit" = Option<i64>, Query, description = "1-1000, default 100"),
    ),
    responses((status = 200, description = "Entries, newest first", body = ref("#/components/schemas/AuditList"))))]
pub async fn audit(
    State(state): State<AppState>,
    Query(params): Query<AuditParams>,
) -> Result<Json<Value>> {
    let mut errors = Vec::new();
    let since = params.since.as_deref().and_then(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| errors.push(bad("since", format!("not an RFC 3339 time: {e}"))))
            .ok()
    });
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        errors.push(bad("limit", "must be 1-1000"));
    }
    if !errors.is_empty() {
        return Err(Error::Parameters(errors));
    }
    let entries: Vec<AuditEntry> = state
        .store
        .search_audit(&AuditQuery {
            action: params.action,
            actor: params.user,
            since,
            limit,
        })
        .await?;
    Ok(Json(serde_json::json!({ "entries": entries })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(body: &[u8]) -> Input {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, body).unwrap();
        Input::map(&file).unwrap()
    }

    #[tokio::test]
    async fn a_wrapper_hands_over_the_exact_bytes_of_import_data() {
        let data = r#"{ "entities" : {"tools": [{"name": "a\"b", "url": "https://x"}]}, "k": [1, 2.5e3] }"#;
        let body = format!(
            "{{\"conflict_strategy\": \"skip\",\n \"import_data\"  :\t{data} ,\"dry_run\": true, \"rekey_secret\": null}}"
        );
        for input in [mapped(body.as_bytes()), Input::from(body.as_bytes())] {
            let form = read_json(input.clone()).await.unwrap();
            let file = form.input.expect("the file");
            assert_eq!(file.bytes(), data.as_bytes());
            let start = body.find(data).unwrap();
            assert_eq!(
                file.bytes().as_ptr() as usize - input.bytes().as_ptr() as usize,
                start,
                "a slice of the body, not a copy"
            );
            assert_eq!(form.strategy.as_deref(), Some("skip"));
            assert_eq!(form.dry_run.as_deref(), Some("true"));
            assert!(form.errors.is_empty(), "{:?}", form.errors);
        }
    }

    #[test]
    fn a_scalar_or_a_repeated_import_data_is_still_its_value() {
        let body = br#"{"import_data": 1, "import_data": [ 7 ]}"#;
        let data = parse_wrapper(body).unwrap().data;
        assert_eq!(&body[data], b"[ 7 ]");
        let body = br#"{"import_data":-12.5}"#;
        let data = parse_wrapper(body).unwrap().data;
        assert_eq!(&body[data], b"-12.5");
    }

    #[tokio::test]
    async fn a_body_that_is_not_a_wrapper_is_the_file_itself() {
        for body in [
            &br#"{"version": "2025-03-26", "entities": {"tools": []}}"#[..],
            br#"[{"import_data": {}}]"#,
            br#"{"import_data": {}, "broken": "#,
            b"",
        ] {
            assert!(parse_wrapper(body).is_none());
            let form = read_json(mapped(body)).await.unwrap();
            assert_eq!(form.input.unwrap().bytes(), body);
            assert!(form.errors.is_empty());
        }
    }

    #[tokio::test]
    async fn a_json_body_is_counted_against_the_limit_as_it_streams() {
        let pieces = || {
            futures_util::stream::iter(
                (0..3).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 512 * 1024]))),
            )
        };
        let request = |body| Request::builder().body(body).unwrap();
        // No Content-Length: refused once the second MiB starts.
        let refused = spool_body(request(Body::from_stream(pieces())), 1).await;
        assert!(matches!(refused, Err(Error::PayloadTooLarge(1))));
        let taken = spool_body(request(Body::from_stream(pieces())), 2).await;
        assert_eq!(taken.unwrap().len(), 3 * 512 * 1024);
        // A declared length above the limit is refused before the body is read.
        let declared = Request::builder()
            .header(header::CONTENT_LENGTH, (2u64 << 20).to_string())
            .body(Body::empty())
            .unwrap();
        assert!(matches!(
            spool_body(declared, 1).await,
            Err(Error::PayloadTooLarge(1))
        ));
    }

    #[tokio::test]
    async fn wrapper_options_too_large_or_too_many_are_named_not_kept() {
        let big = format!("\"{}\"", "x".repeat(MAX_OPTION_BYTES));
        let body = format!(r#"{{"import_data": {{}}, "include": {big}, "dry_run": true}}"#);
        let form = read_json(mapped(body.as_bytes())).await.unwrap();
        assert_eq!(
            form.errors,
            [option_too_large("include", MAX_OPTION_BYTES + 2)]
        );
        assert_eq!(form.errors[0].code, "too_large");
        assert_eq!(form.dry_run.as_deref(), Some("true"));
        assert!(form.include.is_none());
        let many: String = (0..40).map(|i| format!(r#", "o{i}": 1"#)).collect();
        let wrapped =
            parse_wrapper(format!(r#"{{"import_data": {{}}{many}}}"#).as_bytes()).unwrap();
        assert_eq!(wrapped.options.len(), MAX_OPTIONS);
        assert_eq!(wrapped.refused, [too_many()]);
        let long_name = format!(r#"{{"import_data": {{}}, "{}": 1}}"#, "n".repeat(1 << 20));
        let wrapped = parse_wrapper(long_name.as_bytes()).unwrap();
        assert_eq!(wrapped.options.keys().next().unwrap().len(), NAME_CHARS);
    }

    #[tokio::test]
    async fn wrapper_options_of_the_wrong_type_are_field_errors() {
        let body = br#"{"import_data": {}, "dry_run": 3, "colour": "red", "selected_entities": {"tools": ["a"]}}"#;
        let form = read_json(mapped(body)).await.unwrap();
        let pointers: Vec<&str> = form.errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/dry_run", "/colour"]);
        assert_eq!(form.selected, Some(serde_json::json!({"tools": ["a"]})));
        assert_eq!(form.input.unwrap().bytes(), b"{}");
        let body =
            br#"{"conflict_strategy": "skip", "import_data": {}, "conflict_strategy": "fail"}"#;
        let options = parse_wrapper(body).unwrap().options;
        // As the whole body parsed into a map (what the wrapper used to be), less the file.
        let mut before: Map<String, Value> = serde_json::from_slice(body).unwrap();
        before.shift_remove("import_data");
        assert_eq!(options, before);
        assert_eq!(options["conflict_strategy"], "fail", "the last value");
    }
}
