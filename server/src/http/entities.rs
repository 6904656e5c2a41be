//! REST CRUD for the six entity types: `GET|POST /{type}`, `GET|PATCH|DELETE /{type}/{id}`.
//! Thin adapters over [`crate::entities::Entities`]; bodies use the export file's field names.

use app::validation::Code;
use app::{
    entities::{Entity, Gateway, Prompt, Resource, Root, Server, Tool},
    model::EntityKind,
    validation::FieldError,
};
use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    AppState,
    extract::{Path, Query},
};
use crate::{
    auth::Principal,
    entities::{Entities, view},
    error::{Error, Result},
    store::{Store, entities::ListQuery},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(routes_for::<Tool>())
        .merge(routes_for::<Gateway>())
        .merge(routes_for::<Server>())
        .merge(routes_for::<Prompt>())
        .merge(routes_for::<Resource>())
        .merge(routes_for::<Root>())
}

fn routes_for<E: Entity>() -> Router<AppState> {
    let base = format!("/{}", E::KIND.plural());
    Router::new()
        .route(&base, get(list::<E>).post(create::<E>))
        .route(
            &format!("{base}/{{id}}"),
            get(read::<E>).patch(update::<E>).delete(delete::<E>),
        )
}

#[derive(Debug, Deserialize)]
struct ListParams {
    tag: Option<String>,
    name: Option<String>,
    #[serde(default)]
    include_inactive: bool,
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    100
}

async fn list<E: Entity>(
    State(state): State<AppState>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>> {
    if !(1..=1000).contains(&params.limit) || params.offset < 0 {
        return Err(Error::BadRequest(
            "limit must be 1-1000 and offset at least 0".into(),
        ));
    }
    let query = ListQuery {
        tag: params.tag,
        search: params.name,
        include_inactive: params.include_inactive,
        limit: Some(params.limit),
        offset: params.offset,
    };
    let (items, total) = state.store.list_entities::<E>(&query).await?;
    let items = views(&state.store, &items).await?;
    Ok(Json(
        json!({ "items": items, "total": total, "limit": params.limit, "offset": params.offset }),
    ))
}

async fn read<E: Entity>(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let entity: E = state
        .store
        .get_entity(parse_id(&id)?)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(Json(one_view(&state.store, entity).await?))
}

async fn create<E: Entity>(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Result<Response> {
    let body = parse_json(&body)?;
    let entity: E = service(&state, &who).create(body).await?;
    let id = entity.id().expect("a stored entity has an id");
    let location = format!("/{}/{id}", E::KIND.plural());
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(one_view(&state.store, entity).await?),
    )
        .into_response())
}

async fn update<E: Entity>(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>> {
    let id = parse_id(&id)?;
    let patch = parse_json(&body)?;
    let entity: E = service(&state, &who).update(id, patch).await?;
    Ok(Json(one_view(&state.store, entity).await?))
}

/// The entities as the API shows them ([`view`]); a gateway with its peer's `health`.
async fn views<E: Entity>(store: &Store, entities: &[E]) -> Result<Vec<Value>> {
    let mut views: Vec<Value> = entities.iter().map(view).collect();
    if E::KIND == EntityKind::Gateway {
        let ids: Vec<Uuid> = entities.iter().filter_map(Entity::id).collect();
        let mut health = store.gateway_healths(&ids).await?;
        for (entity, shown) in entities.iter().zip(&mut views) {
            let h = entity.id().and_then(|id| health.remove(&id));
            if let Value::Object(map) = shown {
                let h = serde_json::to_value(h.unwrap_or_default()).unwrap_or(Value::Null);
                map.insert("health".into(), h);
            }
        }
    }
    Ok(views)
}

async fn one_view<E: Entity>(store: &Store, entity: E) -> Result<Value> {
    let mut views = views(store, std::slice::from_ref(&entity)).await?;
    Ok(views.pop().unwrap_or(Value::Null))
}

#[derive(Debug, Deserialize)]
struct DeleteParams {
    #[serde(default)]
    force: bool,
}

async fn delete<E: Entity>(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Query(params): Query<DeleteParams>,
) -> Result<StatusCode> {
    service(&state, &who)
        .delete::<E>(parse_id(&id)?, params.force)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn service<'a>(state: &'a AppState, who: &'a Principal) -> Entities<'a> {
    Entities {
        store: &state.store,
        cipher: &state.cipher,
        actor: &who.email,
    }
}

/// An id that is not a UUID names no entity: 404, like an unknown one.
fn parse_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| Error::NotFound)
}

/// The request body as JSON; a syntax error names its line and column.
fn parse_json(body: &[u8]) -> Result<Value> {
    serde_json::from_slice(body).map_err(|e| {
        Error::Validation(vec![FieldError {
            pointer: String::new(),
            code: Code::InvalidJson,
            message: format!("the body is not valid JSON: {e}"),
        }])
    })
}
