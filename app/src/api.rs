//! Server functions: the browser's calls into the server, thin adapters over
//! [`crate::backend::UiBackend`]. Every one runs behind the server's auth middleware.

use leptos::prelude::*;
use uuid::Uuid;

use crate::model::{
    EntityDetail, EntityKind, EntityRow, GatewayStatus, ListFilter, SessionUser, ToolTest,
};

/// The signed-in user, as the auth middleware saw the request.
#[server]
pub async fn current_user() -> Result<SessionUser, ServerFnError> {
    let axum::Extension(user) = leptos_axum::extract::<axum::Extension<SessionUser>>()
        .await
        .map_err(|_| ServerFnError::new("not signed in"))?;
    Ok(user)
}

/// Version, database and counts for the dashboard.
#[server]
pub async fn fetch_gateway_status() -> Result<GatewayStatus, ServerFnError> {
    crate::backend::current()
        .status()
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))
}

/// The entities of one type that pass the filter.
#[server]
pub async fn list_entities(
    kind: EntityKind,
    filter: ListFilter,
) -> Result<Vec<EntityRow>, ServerFnError> {
    crate::backend::current()
        .list(kind, filter)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))
}

/// One entity and its dependencies; `None` when there is no such entity.
#[server]
pub async fn fetch_entity_detail(
    kind: EntityKind,
    id: Uuid,
) -> Result<Option<EntityDetail>, ServerFnError> {
    crate::backend::current()
        .detail(kind, id)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))
}

/// Calls a tool from its Test dialog. `arguments` is a JSON object's text (form-encoded
/// server-function arguments cannot carry arbitrary JSON); the call takes the same path as
/// an MCP `tools/call`.
#[server]
pub async fn test_tool(id: Uuid, arguments: String) -> Result<ToolTest, ServerFnError> {
    let arguments: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&arguments)
        .map_err(|_| ServerFnError::new("the arguments must be a JSON object"))?;
    crate::backend::current()
        .test_tool(id, arguments)
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))?
        .ok_or_else(|| ServerFnError::new("no such tool"))
}
