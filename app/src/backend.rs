//! What the UI needs from the server, as a trait the server crate implements.
//!
//! Server functions live in this crate but the store lives in `server`; the server
//! provides an [`UiBackend`] through Leptos context and every server function calls it,
//! so the UI, the REST API and the CLI share one service layer.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use crate::model::{EntityDetail, EntityKind, EntityRow, GatewayStatus, ListFilter, ToolTest};

/// An error the UI may show: a message safe for any user, never internals.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

#[async_trait]
pub trait UiBackend: Send + Sync + 'static {
    async fn status(&self) -> Result<GatewayStatus, BackendError>;
    async fn list(
        &self,
        kind: EntityKind,
        filter: ListFilter,
    ) -> Result<Vec<EntityRow>, BackendError>;
    async fn detail(
        &self,
        kind: EntityKind,
        id: Uuid,
    ) -> Result<Option<EntityDetail>, BackendError>;
    /// Calls tool `id` with `arguments` through the gateway's one tool-call path
    /// (schema check, credentials, outbound guard); `None` when there is no such tool.
    async fn test_tool(
        &self,
        id: Uuid,
        arguments: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<ToolTest>, BackendError>;
}

/// The handle server functions take from context.
pub type SharedBackend = Arc<dyn UiBackend>;

/// The backend the server put in context, for server functions.
pub fn current() -> SharedBackend {
    leptos::prelude::expect_context::<SharedBackend>()
}
