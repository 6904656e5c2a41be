//! The gateway serves what it stores: an MCP endpoint (Streamable HTTP, rmcp) per active
//! virtual server at `/servers/{id or name}/mcp`, and the gateway's own at `/mcp` with
//! every active tool, prompt and resource.
//!
//! The door ([`admit`]) runs after authentication and before rmcp: it takes bearer
//! tokens only (a cookie is the admin UI's, not an MCP client's), refuses a foreign
//! `Origin`, resolves the path to a [`Scope`] (404 for an unknown or inactive server)
//! and hands it to the handler in the request's extensions. rmcp checks the `Host`
//! (DNS rebinding) against loopback names and the public origin's host.

mod catalog;
mod forward;
mod handler;
mod notify;
mod render;
mod session;
mod sse;

use std::{sync::Arc, time::Duration};

use app::{
    entities::{Entity, keys::fold_key, server::Server},
    model::EntityKind,
};
use axum::{
    Router,
    extract::{Request, State},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use percent_encoding::percent_decode_str;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

pub use catalog::{Scope, find};

use crate::{
    auth::{AuthMethod, Principal},
    config::Settings,
    error::{Error, Result},
    hot::Seen,
    http::AppState,
};

/// The MCP sessions of this process, and the signal that ends their streams on shutdown
/// (an open `GET` stream would otherwise hold the graceful shutdown for ever).
#[derive(Clone)]
pub struct McpSessions {
    sessions: Arc<session::Sessions>,
    sse: Arc<sse::SseSessions>,
    pub shutdown: CancellationToken,
}

impl McpSessions {
    pub fn new(settings: &Settings) -> McpSessions {
        let idle = Duration::from_secs(settings.mcp_session_idle_secs.max(1));
        McpSessions {
            sessions: Arc::new(session::Sessions::new(idle)),
            sse: Arc::default(),
            shutdown: CancellationToken::new(),
        }
    }
}

/// The gateway's own endpoint.
pub const GATEWAY_PATH: &str = "/mcp";

pub fn routes(state: &AppState) -> Router<AppState> {
    let config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(allowed_hosts(&state.settings))
        .with_cancellation_token(state.mcp.shutdown.clone());
    let for_handler = state.clone();
    let service = StreamableHttpService::new(
        move || {
            Ok(handler::Gateway {
                state: for_handler.clone(),
            })
        },
        state.mcp.sessions.clone(),
        config,
    );
    Router::new()
        .route_service(GATEWAY_PATH, service.clone())
        .route_service("/servers/{id}/mcp", service)
        .route("/servers/{id}/sse", axum::routing::get(sse::open))
        .route("/servers/{id}/message", axum::routing::post(sse::message))
        .route_layer(middleware::from_fn_with_state(state.clone(), admit))
}

/// Fills in a server's derived endpoint fields from its id (written by export; other
/// entity types have none).
pub fn derive_endpoints<E: Entity>(entity: &mut E) {
    let id = entity.id();
    if let Some(server) = (entity as &mut dyn std::any::Any).downcast_mut::<Server>() {
        server.mcp_endpoint = id.map(|id| format!("/servers/{id}/mcp"));
        server.sse_endpoint = id.map(|id| format!("/servers/{id}/sse"));
    }
}

/// The `Host` values accepted: loopback names (any port), the public origin's host, and
/// the configured listen address when it names one host.
fn allowed_hosts(settings: &Settings) -> Vec<String> {
    let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).into();
    if let Some(origin) = &settings.public_origin
        && let Ok(uri) = origin.parse::<axum::http::Uri>()
        && let Some(authority) = uri.authority()
    {
        hosts.push(authority.host().trim_matches(['[', ']']).to_owned());
    }
    if !matches!(settings.host.as_str(), "" | "0.0.0.0" | "::" | "[::]") {
        hosts.push(settings.host.trim_matches(['[', ']']).to_owned());
    }
    hosts
}

async fn admit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = server_ref(request.uri().path());
    let opens = opens_session(&request);
    let checked = match check_caller(&state, &request) {
        Ok(()) => room_for_session(&state, opens).await.map(|()| path),
        Err(e) => Err(e),
    };
    let limit = request
        .extensions()
        .get::<Principal>()
        .and_then(|p| p.servers.clone());
    let seen = request.extensions().get::<Seen>().copied();
    let seen = seen.unwrap_or_else(|| state.hot.seen());
    let resolved = match checked {
        Ok(Some(id)) => resolve(&state, seen, &id, limit.as_deref()).await,
        Ok(None) => Ok(Scope::Gateway),
        Err(e) => Err(e),
    };
    match resolved {
        Ok(scope) => {
            request.extensions_mut().insert(scope);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

/// Whether the request would open a Streamable HTTP session: a POST without
/// `Mcp-Session-Id` (the legacy SSE transport's messages have their own cap).
fn opens_session(request: &Request) -> bool {
    request.method() == axum::http::Method::POST
        && !request.headers().contains_key("mcp-session-id")
        && !request.uri().path().ends_with("/message")
}

/// Each Streamable HTTP session holds rmcp's service task and its queues until it ends
/// (idle ones after `mcp_session_idle_secs`), so a request that would open one is refused
/// while `mcp_sessions` are held, rather than held too.
async fn room_for_session(state: &AppState, opens: bool) -> Result<()> {
    if opens && state.mcp.sessions.len() >= state.settings.mcp_sessions {
        return Err(Error::TooManyRequests {
            message: "too many open MCP sessions; try again later".into(),
            retry_after_secs: 5,
        });
    }
    Ok(())
}

/// Bearer tokens only, and no foreign `Origin`.
fn check_caller(state: &AppState, request: &Request) -> Result<()> {
    let principal = request.extensions().get::<Principal>();
    if !principal.is_some_and(|p| p.via == AuthMethod::Bearer) {
        return Err(Error::Unauthorized);
    }
    if request.headers().contains_key(axum::http::header::ORIGIN)
        && !crate::http::same_origin(request.headers(), state)
    {
        return Err(Error::Forbidden(
            "cross-origin MCP request refused: the Origin header must match this gateway",
        ));
    }
    Ok(())
}

/// The server a path names (`/servers/{id}/mcp`, or the SSE transport's `/sse` and
/// `/message`, decoded), `None` for any other path.
pub fn server_ref(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/servers/")?;
    let id = ["/mcp", "/sse", "/message"]
        .iter()
        .find_map(|end| rest.strip_suffix(end))?;
    Some(percent_decode_str(id).decode_utf8_lossy().into_owned())
}

/// The active server `id` names, if the token's `limit` (when it has one) lists it.
async fn resolve(
    state: &AppState,
    seen: Seen,
    id: &str,
    limit: Option<&[String]>,
) -> Result<Scope> {
    let server = state.hot.server(seen, id).await?.ok_or(Error::NotFound)?;
    let name = fold_key(EntityKind::Server, server.key()).into_owned();
    if limit.is_some_and(|names| {
        !names
            .iter()
            .any(|n| fold_key(EntityKind::Server, n) == name)
    }) {
        return Err(Error::Forbidden(
            "this token is limited to other servers' MCP endpoints",
        ));
    }
    Ok(Scope::Server(server))
}
