//! Liveness and readiness, open to anyone.

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use super::AppState;

/// The process is up.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The store can take writes: it answers, is migrated, is not read-only and has room.
/// A store that is only busy (an import holds its lock) is ready.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = state.store.backend_name();
    match state.store.writable().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": database })),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "database": database,
                "reason": reason.to_string(),
            })),
        ),
    }
}
