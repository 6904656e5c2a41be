//! The admin UI: Leptos pages rendered here and hydrated in the browser, their server
//! functions, and the static bundle under `/pkg`.

use app::{
    App,
    backend::{BackendError, SharedBackend, UiBackend},
    entities::{Entity, Gateway, Prompt, Resource, Root, Server, Tool},
    model::{EntityDetail, EntityKind, EntityRow, GatewayStatus, ListFilter, ToolTest},
    shell,
};
use async_trait::async_trait;
use axum::Router;
use leptos::prelude::provide_context;
use leptos_axum::{LeptosRoutes, generate_route_list};
use std::{path::Path, sync::Arc};
use uuid::Uuid;

use super::AppState;
use crate::{
    entities::view,
    invoke::{InvokeError, Invoker},
    store::{Store, entities::ListQuery},
};

/// The server's side of [`UiBackend`]: the same store the REST API uses, and the same
/// invoker MCP `tools/call` uses.
struct Backend {
    store: Store,
    invoker: Invoker,
    public_origin: Option<String>,
}

#[expect(clippy::needless_pass_by_value, reason = "called as `map_err(failed)`")]
fn failed(e: sqlx::Error) -> BackendError {
    tracing::error!(error.detail = %e, "a UI query failed");
    BackendError("the database did not answer".into())
}

#[async_trait]
impl UiBackend for Backend {
    async fn status(&self) -> Result<GatewayStatus, BackendError> {
        let mut counts = Vec::new();
        for kind in EntityKind::ALL {
            counts.push((kind, self.store.count_entities(kind).await.map_err(failed)?));
        }
        Ok(GatewayStatus {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            database: self.store.backend_name().to_owned(),
            users: self.store.count_users().await.map_err(failed)?,
            active_api_tokens: self.store.count_active_tokens().await.map_err(failed)?,
            counts,
        })
    }

    async fn list(
        &self,
        kind: EntityKind,
        filter: ListFilter,
    ) -> Result<Vec<EntityRow>, BackendError> {
        match kind {
            EntityKind::Tool => self.rows::<Tool>(filter).await,
            EntityKind::Gateway => self.rows::<Gateway>(filter).await,
            EntityKind::Server => self.rows::<Server>(filter).await,
            EntityKind::Prompt => self.rows::<Prompt>(filter).await,
            EntityKind::Resource => self.rows::<Resource>(filter).await,
            EntityKind::Root => self.rows::<Root>(filter).await,
        }
    }

    async fn detail(
        &self,
        kind: EntityKind,
        id: Uuid,
    ) -> Result<Option<EntityDetail>, BackendError> {
        let schema = |t: &Tool| Some(serde_json::Value::Object(t.input_schema.clone()));
        match kind {
            EntityKind::Tool => self.detail_of::<Tool>(id, schema).await,
            EntityKind::Gateway => self.detail_of::<Gateway>(id, |_| None).await,
            EntityKind::Server => self.detail_of::<Server>(id, |_| None).await,
            EntityKind::Prompt => self.detail_of::<Prompt>(id, |_| None).await,
            EntityKind::Resource => self.detail_of::<Resource>(id, |_| None).await,
            EntityKind::Root => self.detail_of::<Root>(id, |_| None).await,
        }
    }

    async fn test_tool(
        &self,
        id: Uuid,
        arguments: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<ToolTest>, BackendError> {
        let Some(tool) = self.store.get_entity::<Tool>(id).await.map_err(failed)? else {
            return Ok(None);
        };
        Ok(Some(match self.invoker.call_tool(&tool, arguments).await {
            Ok(outcome) => ToolTest::Called {
                text: outcome.text,
                structured: outcome
                    .structured
                    .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default()),
                is_error: outcome.is_error,
            },
            Err(InvokeError::InvalidArguments(problems)) => ToolTest::Invalid(problems),
            Err(InvokeError::NotCallable(why)) => ToolTest::NotCallable(why),
        }))
    }
}

impl Backend {
    async fn rows<E: Entity>(&self, filter: ListFilter) -> Result<Vec<EntityRow>, BackendError> {
        let query = ListQuery {
            tag: filter
                .tag
                .filter(|t| !t.trim().is_empty())
                .map(|t| app::entities::Tag::new(&t).id),
            search: filter.search,
            include_inactive: filter.include_inactive,
            limit: Some(1000),
            offset: 0,
        };
        let (entities, _) = self
            .store
            .list_entities::<E>(&query)
            .await
            .map_err(failed)?;
        let mut rows: Vec<EntityRow> = entities.iter().map(row).collect();
        self.add_health(&mut rows).await?;
        Ok(rows)
    }

    /// A gateway's row carries its peer's health (the badge).
    async fn add_health(&self, rows: &mut [EntityRow]) -> Result<(), BackendError> {
        if rows.first().is_none_or(|r| r.kind != EntityKind::Gateway) {
            return Ok(());
        }
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut health = self.store.gateway_healths(&ids).await.map_err(failed)?;
        for row in rows {
            row.health = Some(health.remove(&row.id).unwrap_or_default());
        }
        Ok(())
    }

    /// One entity's detail; `input_schema` picks what its Test form is built from.
    async fn detail_of<E: Entity>(
        &self,
        id: Uuid,
        input_schema: impl Fn(&E) -> Option<serde_json::Value>,
    ) -> Result<Option<EntityDetail>, BackendError> {
        let Some(entity) = self.store.get_entity::<E>(id).await.map_err(failed)? else {
            return Ok(None);
        };
        let used_by = match E::KIND {
            EntityKind::Tool | EntityKind::Prompt | EntityKind::Resource => self
                .store
                .servers_using(E::KIND, id)
                .await
                .map_err(failed)?,
            _ => Vec::new(),
        };
        let mut shown = [row(&entity)];
        self.add_health(&mut shown).await?;
        let [shown] = shown;
        Ok(Some(EntityDetail {
            row: shown,
            json: serde_json::to_string_pretty(&view(&entity)).unwrap_or_default(),
            uses: entity
                .links()
                .into_iter()
                .map(|(k, keys)| (k, keys.to_vec()))
                .collect(),
            used_by,
            input_schema: input_schema(&entity),
            public_origin: self.public_origin.clone(),
        }))
    }
}

fn row<E: Entity>(entity: &E) -> EntityRow {
    EntityRow {
        id: entity.id().unwrap_or_default(),
        kind: E::KIND,
        key: entity.key().to_owned(),
        name: entity.name().to_owned(),
        summary: entity.summary(),
        tags: entity.tags().iter().map(|t| t.label.clone()).collect(),
        is_active: entity.is_active(),
        auth_type: entity.credential().map(|(t, _)| t),
        health: None,
    }
}

/// Adds the UI's page routes, its server functions and the static files to `router`.
pub fn routes(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let backend: SharedBackend = Arc::new(Backend {
        store: state.store.clone(),
        invoker: state.invoker.clone(),
        public_origin: state.settings.public_origin.clone(),
    });
    let options = state.leptos.clone();
    let site = super::site::Site::find(
        Path::new(&*options.site_root),
        &options.site_pkg_dir,
        &options.output_name,
    );
    site.serve(router.leptos_routes_with_context(
        state,
        generate_route_list(App),
        move || {
            provide_context(backend.clone());
            super::headers::provide_request_nonce();
        },
        move || shell(options.clone()),
    ))
}

/// Every path the UI answers (pages and server functions), for route-table tests.
pub fn ui_paths() -> Vec<String> {
    generate_route_list(App)
        .into_iter()
        .map(|r| r.path().to_owned())
        .collect()
}
