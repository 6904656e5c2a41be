//! The admin UI: Leptos pages rendered here and hydrated in the browser, their server
//! functions, and the static bundle under `/pkg`.

use app::{
    App,
    backend::{BackendError, SharedBackend, UiBackend},
    model::GatewayStatus,
    shell,
};
use async_trait::async_trait;
use axum::Router;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use std::sync::Arc;
use tower_http::services::ServeDir;

use super::AppState;
use crate::store::Store;

/// The server's side of [`UiBackend`]: the same store the REST API uses.
struct Backend {
    store: Store,
}

#[async_trait]
impl UiBackend for Backend {
    async fn status(&self) -> Result<GatewayStatus, BackendError> {
        let failed = |e: sqlx::Error| {
            tracing::error!(error.detail = %e, "dashboard status query failed");
            BackendError("the database did not answer".into())
        };
        Ok(GatewayStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            database: self.store.backend_name().to_owned(),
            users: self.store.count_users().await.map_err(failed)?,
            active_api_tokens: self.store.count_active_tokens().await.map_err(failed)?,
        })
    }
}

/// Adds the UI's page routes, its server functions and the static files to `router`.
pub fn routes(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let backend: SharedBackend = Arc::new(Backend {
        store: state.store.clone(),
    });
    let options = state.leptos.clone();
    let site = ServeDir::new(&*options.site_root);
    router
        .leptos_routes_with_context(
            state,
            generate_route_list(App),
            move || provide_context(backend.clone()),
            move || shell(options.clone()),
        )
        .fallback_service(site)
}

/// Every path the UI answers (pages and server functions), for route-table tests.
pub fn ui_paths() -> Vec<String> {
    generate_route_list(App)
        .into_iter()
        .map(|r| r.path().to_owned())
        .collect()
}
