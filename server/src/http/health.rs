//! Liveness and readiness, open to anyone.

use axum::{Json, extract::State, http::StatusCode};
use serde_json::{Value, json};

use super::AppState;

/// The process is up.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The database answers and its migrations are applied.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = state.store.backend_name();
    if state.store.is_ready().await {
        (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": database })),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "database": database })),
        )
    }
}
