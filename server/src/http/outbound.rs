//! `POST /admin/verify` (are stored credentials accepted upstream?) and `GET /metrics`
//! (tool calls in Prometheus' text format). Both need credentials like the rest of the
//! API: per-tool names and error counts describe the gateway's configuration.

use app::{
    validation::Code,
    verify::{VerifyReport, VerifyRequest},
};
use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::State,
    http::header,
    response::{IntoResponse, Response},
    routing::{get, post},
};

use super::AppState;
use crate::{
    auth::Principal,
    error::{Error, FieldError, Result},
    invoke::{
        metrics::render_gateways,
        verify::{VerifyOptions, verify},
    },
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/verify", post(verify_credentials))
        .route("/metrics", get(metrics))
}

/// Verifies the stored credentials of the selected tools (an authenticated `HEAD`, or
/// `OPTIONS`, on each URL). An empty body verifies every tool and gateway.
#[utoipa::path(post, path = "/admin/verify", tag = "verify",
    request_body(content = ref("#/components/schemas/VerifyRequest"), description = "`types` (tool, gateway) and `include` (`tool:name-or-glob,…`); both optional"),
    responses(
        (status = 200, description = "One verdict per entity and the summary line", body = ref("#/components/schemas/VerifyReport")),
        (status = 400, description = "A bad type or include spec, named", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn verify_credentials(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Result<Json<VerifyReport>> {
    let request: VerifyRequest = if body.iter().all(u8::is_ascii_whitespace) {
        VerifyRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            Error::Parameters(vec![FieldError {
                pointer: String::new(),
                code: Code::InvalidJson,
                message: format!("the body is not a verify request: {e}"),
            }])
        })?
    };
    let options = VerifyOptions::from_request(&request).map_err(Error::Parameters)?;
    Ok(Json(
        verify(
            &state.store,
            &state.invoker,
            &state.peers,
            &options,
            &who.email,
        )
        .await?,
    ))
}

/// Tool call counts, errors and latencies per tool; peer gateways' health.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Result<Response> {
    let mut text = state.invoker.metrics().render();
    // Read from the store, so every replica shows the same health.
    let gateways = state.store.all_gateway_health().await?;
    text.push_str(&render_gateways(&gateways));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}
