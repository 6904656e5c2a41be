//! Server functions: the browser's calls into the server, thin adapters over
//! [`crate::backend::UiBackend`]. Every one runs behind the server's auth middleware.

use leptos::prelude::*;

use crate::model::{GatewayStatus, SessionUser};

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
    let backend = expect_context::<crate::backend::SharedBackend>();
    backend
        .status()
        .await
        .map_err(|e| ServerFnError::new(e.to_string()))
}
