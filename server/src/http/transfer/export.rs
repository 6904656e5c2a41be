//! Export over REST: the whole configuration filtered by a query, or exactly the chosen
//! entities, as a streamed download or as a preview of what the file would hold.

use app::{
    jobs::ExportPreview,
    validation::{Code, FieldError},
    wire::{EntitySelection, ExportQuery, Flag, invalid},
};
use axum::{
    Extension, Json,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value};

use crate::{
    auth::Principal,
    error::{Error, Result},
    http::{AppState, extract::Query},
    transfer::{
        export::{ExportOptions, Plan, preview as export_preview},
        selection::Include,
    },
};

/// Export the configuration as a download.
#[utoipa::path(get, path = "/admin/export", tag = "export",
    params(ExportQuery),
    responses(
        (status = 200, description = "The export file (attachment)", body = ref("#/components/schemas/ExportFile")),
        (status = 400, description = "A bad parameter, named", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn export_all(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response> {
    let options = query_options(&params)?;
    download(&state, &who, &options).await
}

/// Export exactly the chosen entities (by id or name), plus their dependencies.
#[utoipa::path(post, path = "/admin/export/selective", tag = "export",
    request_body(content = ref("#/components/schemas/EntitySelection"), description = "Per type, ids or names; `include_dependencies` (default true). ContextForge's `{\"entity_selections\": {...}}` is accepted too."),
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
    params(ExportQuery),
    responses((status = 200, description = "Counts, selected entities and added dependencies", body = ref("#/components/schemas/ExportPreview"))))]
pub async fn preview_export_query(
    State(state): State<AppState>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<ExportPreview>> {
    let options = query_options(&params)?;
    Ok(Json(export_preview(&state.store, &options).await?))
}

/// What `POST /admin/export/selective` would hold with the same body.
#[utoipa::path(post, path = "/admin/export/preview", tag = "export",
    request_body(content = ref("#/components/schemas/EntitySelection")),
    responses((status = 200, description = "Counts, selected entities and added dependencies", body = ref("#/components/schemas/ExportPreview"))))]
pub async fn preview_export_selected(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<ExportPreview>> {
    let options = selection_options(&body)?;
    Ok(Json(export_preview(&state.store, &options).await?))
}

/// The export query as options, every bad parameter named at once (400).
fn query_options(params: &[(String, String)]) -> Result<ExportOptions> {
    let (query, mut errors) = ExportQuery::parse(params);
    let types = query.kinds().unwrap_or_else(|e| {
        errors.push(e);
        Vec::new()
    });
    let include = match query.include.as_deref().map(Include::parse) {
        Some(Err(e)) => {
            errors.push(invalid("/include", e));
            None
        }
        parsed => parsed.and_then(Result::ok),
    };
    if !errors.is_empty() {
        return Err(Error::Parameters(errors));
    }
    let flag = |f: Option<Flag>, default| f.map_or(default, |f| f.0);
    Ok(ExportOptions {
        types,
        tags: query.tag_list(),
        tags_all: flag(query.tags_all, false),
        include,
        include_inactive: flag(query.include_inactive, false),
        include_dependencies: flag(query.include_dependencies, true),
        picked: None,
    })
}

/// The selection body as options: exactly the chosen entities, disabled ones too.
fn selection_options(body: &[u8]) -> Result<ExportOptions> {
    let body: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        Error::Parameters(vec![FieldError {
            pointer: String::new(),
            code: Code::InvalidJson,
            message: format!("the body is not a JSON object: {e}"),
        }])
    })?;
    let selection = EntitySelection::parse_export(body).map_err(Error::Parameters)?;
    Ok(ExportOptions {
        include_dependencies: selection.include_dependencies,
        include_inactive: true,
        picked: Some(selection.into_picked().into_iter().collect()),
        ..Default::default()
    })
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
