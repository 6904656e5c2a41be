//! The legacy HTTP+SSE transport (MCP 2024-11-05) for older clients, as ContextForge
//! serves it: `GET /servers/{id}/sse` opens a session's event stream, whose first
//! `endpoint` event names `/servers/{id}/message?session_id=…`; each JSON-RPC message
//! POSTed there goes into the session (202), and the answers come back as `message`
//! events. rmcp has no server side of it, so this adapter gives rmcp a channel pair
//! per session; the same handler serves it. The door ([`super::admit`]) runs first.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
};

use axum::{
    Json,
    extract::{Query, State},
    http::{StatusCode, request::Parts},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::{Stream, StreamExt, stream};
use rmcp::{
    ServiceExt,
    model::{ClientJsonRpcMessage, GetExtensions, JsonRpcMessage, ServerJsonRpcMessage},
};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;
use uuid::Uuid;

use super::{Scope, handler::Gateway};
use crate::{
    error::{Error, Result},
    http::AppState,
};

/// Messages queued per direction per session before the sender waits (or is refused).
const QUEUE: usize = 64;

/// The open SSE sessions: id → the server it serves and its inbound queue.
#[derive(Default)]
pub struct SseSessions(Mutex<HashMap<Uuid, Session>>);

struct Session {
    server: Option<Uuid>,
    inbound: mpsc::Sender<ClientJsonRpcMessage>,
}

impl SseSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Session>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Forgets the session when its event stream is dropped (the client went away, or the
/// gateway shuts down); the handler then sees its input end and stops.
struct Forget(Arc<SseSessions>, Uuid);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

fn server_id(scope: &Scope) -> Option<Uuid> {
    match scope {
        Scope::Server(server) => server.id,
        Scope::Gateway => None,
    }
}

/// `GET /servers/{id}/sse`: a new session and its event stream.
pub async fn open(State(state): State<AppState>, parts: Parts) -> Result<Response> {
    let scope = parts
        .extensions
        .get::<Scope>()
        .cloned()
        .ok_or(Error::NotFound)?;
    let sessions = state.mcp.sse.clone();
    let id = Uuid::new_v4();
    let (inbound, from_client) = mpsc::channel::<ClientJsonRpcMessage>(QUEUE);
    let (to_client, outbound) = mpsc::channel::<ServerJsonRpcMessage>(QUEUE);
    {
        let mut open = sessions.lock();
        // Each session holds a task and two queues: more are refused rather than held.
        if open.len() >= state.settings.mcp_sse_sessions {
            return Err(Error::TooManyRequests {
                message: "too many open MCP SSE sessions; try again later".into(),
                retry_after_secs: 5,
            });
        }
        let server = server_id(&scope);
        open.insert(id, Session { server, inbound });
    }
    let handler = Gateway {
        state: state.clone(),
    };
    tokio::spawn(async move {
        let input = Box::pin(stream::unfold(from_client, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        }));
        if let Ok(running) = handler.serve((PollSender::new(to_client), input)).await {
            let _ = running.waiting().await;
        }
    });
    let path = parts.uri.path();
    let base = path.strip_suffix("/sse").unwrap_or(path);
    let endpoint = format!("{base}/message?session_id={}", id.simple());
    let events = events(endpoint, outbound, Forget(sessions, id));
    let shutdown = state.mcp.shutdown.clone().cancelled_owned();
    Ok(Sse::new(events.take_until(shutdown))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The `endpoint` event, then each message the handler sends.
fn events(
    endpoint: String,
    outbound: mpsc::Receiver<ServerJsonRpcMessage>,
    forget: Forget,
) -> impl Stream<Item = std::result::Result<Event, Infallible>> {
    let first = Event::default().event("endpoint").data(endpoint);
    let rest = stream::unfold((outbound, forget), |(mut rx, forget)| async move {
        let message = rx.recv().await?;
        let data = serde_json::to_string(&message).unwrap_or_default();
        Some((Event::default().event("message").data(data), (rx, forget)))
    });
    stream::once(async { first }).chain(rest).map(Ok)
}

#[derive(Deserialize)]
pub struct Target {
    session_id: Uuid,
}

/// `POST /servers/{id}/message?session_id=…`: one JSON-RPC message into the session.
pub async fn message(
    State(state): State<AppState>,
    Query(target): Query<Target>,
    parts: Parts,
    Json(mut message): Json<ClientJsonRpcMessage>,
) -> Result<StatusCode> {
    let scope = parts
        .extensions
        .get::<Scope>()
        .cloned()
        .ok_or(Error::NotFound)?;
    let inbound = {
        let open = state.mcp.sse.lock();
        let session = open.get(&target.session_id).ok_or(Error::NotFound)?;
        // A session answers only on the path of the server it was opened for.
        if session.server != server_id(&scope) {
            return Err(Error::NotFound);
        }
        session.inbound.clone()
    };
    // The handler reads the scope from the request, as over Streamable HTTP.
    match &mut message {
        JsonRpcMessage::Request(r) => {
            r.request.extensions_mut().insert(parts);
        }
        JsonRpcMessage::Notification(n) => {
            n.notification.extensions_mut().insert(parts);
        }
        _ => {}
    }
    inbound.send(message).await.map_err(|_| Error::NotFound)?;
    Ok(StatusCode::ACCEPTED)
}
