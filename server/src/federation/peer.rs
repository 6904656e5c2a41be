//! Sessions with peer gateways, pooled per gateway.
//!
//! One live MCP session per gateway serves every forwarded call; it is opened on first
//! use (or by [`Peers::discover`], which always opens a fresh one), replaced when the
//! gateway's connection settings change, and dropped when the peer fails, so the next
//! call reconnects. Calls go through a circuit breaker ([`circuit`]): a peer that failed
//! three times in a row is not tried again until a backoff elapses, so callers get
//! [`PeerError::CircuitOpen`] at once instead of a timeout each.

mod circuit;
mod connect;
pub mod sse_client;

use std::{
    collections::HashMap,
    future::Future,
    hash::{Hash, Hasher},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use app::entities::gateway::Gateway;
use reqwest13::header::HeaderMap;
use rmcp::{
    Peer, RoleClient,
    model::{
        CallToolRequestParams, CallToolResult, GetPromptRequestParams, GetPromptResult,
        ReadResourceRequestParams, ReadResourceResult,
    },
    service::ServiceError,
};
use serde_json::{Map, Value};
use tokio::sync::broadcast;
use uuid::Uuid;

pub use circuit::Policy as CircuitPolicy;
use circuit::{Admission, Breaker};
pub use connect::install_default_tls_provider;
use connect::{Http, Listener, Service};

use super::Discovered;
use crate::{config::Settings, crypto::Cipher, invoke::answer::scrub};

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Connection refused, DNS, TLS, closed.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// 401/403 from the peer.
    #[error("credentials rejected ({0})")]
    AuthFailed(u16),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("peer is down; next attempt in {0:?}")]
    CircuitOpen(Duration),
    #[error("refused by the outbound policy: {0}")]
    Refused(String),
    /// The peer answered an MCP error, or data that is not MCP.
    #[error("{0}")]
    Protocol(String),
}

impl PeerError {
    /// Whether the session is unusable after this (it is dropped; the next call reconnects).
    fn breaks_session(&self) -> bool {
        matches!(
            self,
            PeerError::Unreachable(_) | PeerError::AuthFailed(_) | PeerError::Timeout(_)
        )
    }

    /// Whether this counts against the peer's circuit (it did not answer).
    fn is_outage(&self) -> bool {
        matches!(self, PeerError::Unreachable(_) | PeerError::Timeout(_))
    }
}

/// Changes published per `list_changed` before a slow receiver misses some.
const CHANGES: usize = 256;

/// Sessions with peer gateways, pooled per gateway. Cheap to clone. In AppState as `peers`.
#[derive(Clone)]
pub struct Peers {
    inner: Arc<Inner>,
}

struct Inner {
    http: Http,
    cipher: Arc<Cipher>,
    call_timeout: Duration,
    circuit: CircuitPolicy,
    slots: Mutex<HashMap<Uuid, Arc<Slot>>>,
    changes: broadcast::Sender<Uuid>,
}

/// One gateway's pooled session and circuit.
#[derive(Default)]
struct Slot {
    /// Held while connecting, so concurrent callers wait for one connection.
    connecting: tokio::sync::Mutex<()>,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    session: Option<Arc<Session>>,
    breaker: Breaker,
}

struct Session {
    /// The connection settings it was opened with (see [`fingerprint`]).
    fingerprint: u64,
    service: Service,
    /// The credentials' values, masked in any text of the peer's that is passed on.
    secrets: Vec<String>,
}

impl Slot {
    fn state(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pooled session, if it is open and was opened with these settings.
    fn live(&self, fingerprint: u64) -> Option<Arc<Session>> {
        let state = self.state();
        state
            .session
            .clone()
            .filter(|s| s.fingerprint == fingerprint && !s.service.is_transport_closed())
    }

    /// Forgets `session` if it is still the pooled one.
    fn drop_session(&self, session: &Arc<Session>) {
        let mut state = self.state();
        if state
            .session
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            state.session = None;
        }
    }
}

/// Resets a half-open circuit's trial if its call ends without an outcome.
struct Trial<'a> {
    slot: &'a Slot,
    armed: bool,
}

impl Drop for Trial<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.slot.state().breaker.abandoned();
        }
    }
}

/// Whether the circuit is consulted before going to the peer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Forwarded calls: refused at once while the circuit is open.
    Circuit,
    /// Discovery and health checks: always try (they are how a peer is found back).
    Always,
}

impl Peers {
    /// The outbound guard and connect timeout are the Invoker's (`allow_private_networks`,
    /// `outbound_allow`, `outbound_connect_timeout_secs`); calls wait `tool_timeout_secs`.
    pub fn new(settings: &Settings, cipher: Arc<Cipher>) -> Self {
        Peers {
            inner: Arc::new(Inner {
                http: Http::new(settings),
                cipher,
                call_timeout: Duration::from_secs(settings.tool_timeout_secs.max(1).into()),
                circuit: CircuitPolicy::default(),
                slots: Mutex::default(),
                changes: broadcast::channel(CHANGES).0,
            }),
        }
    }

    /// The same, with another circuit policy (tests, benchmarks).
    pub fn with_circuit(settings: &Settings, cipher: Arc<Cipher>, circuit: CircuitPolicy) -> Self {
        let mut peers = Peers::new(settings, cipher);
        Arc::get_mut(&mut peers.inner)
            .expect("not shared yet")
            .circuit = circuit;
        peers
    }

    /// Connects with the gateway's transport (STREAMABLEHTTP or SSE), decrypted credentials and
    /// passthrough headers, runs `initialize`, lists every page of tools, prompts and resources.
    /// Keeps the session in the pool for forwarded calls (replacing an older one).
    pub async fn discover(&self, gateway: &Gateway) -> Result<Discovered, PeerError> {
        let (id, slot) = self.slot(gateway)?;
        let timeout = self.inner.call_timeout;
        let outcome = async {
            let _connecting = slot.connecting.lock().await;
            let session = self
                .connect(id, gateway, timeout, &HeaderMap::new())
                .await?;
            let listed = tokio::time::timeout(timeout, list_everything(&session))
                .await
                .map_err(|_| PeerError::Timeout(timeout))
                .and_then(|r| r.map_err(|e| session_error(&session, &e, timeout)));
            match listed {
                Ok(found) => {
                    slot.state().session = Some(session);
                    Ok(found)
                }
                Err(e) => Err(e),
            }
        }
        .await;
        self.record(&slot, None, &outcome);
        outcome
    }

    /// MCP `ping` over the pooled session (connecting first when there is none). Waits the
    /// gateway's `health_check.timeout` (else `tool_timeout_secs`).
    pub async fn ping(&self, gateway: &Gateway) -> Result<Duration, PeerError> {
        let timeout = gateway
            .health_check
            .as_ref()
            .map_or(self.inner.call_timeout, |h| {
                Duration::from_secs(h.timeout.max(1).into())
            });
        self.run(gateway, Gate::Always, timeout, |peer| async move {
            let started = Instant::now();
            peer.send_request(rmcp::model::ClientRequest::PingRequest(Default::default()))
                .await?;
            Ok(started.elapsed())
        })
        .await
    }

    pub async fn call_tool(
        &self,
        gateway: &Gateway,
        remote_name: &str,
        arguments: Map<String, Value>,
    ) -> Result<CallToolResult, PeerError> {
        self.call_tool_passing(gateway, remote_name, arguments, &HeaderMap::new())
            .await
    }

    /// [`Self::call_tool`], passing on the caller's headers that the gateway lists in
    /// `passthrough_headers` (except `Authorization` and `Cookie`). A call that passes any
    /// runs on a session of its own, opened with them.
    pub async fn call_tool_passing(
        &self,
        gateway: &Gateway,
        remote_name: &str,
        arguments: Map<String, Value>,
        incoming: &HeaderMap,
    ) -> Result<CallToolResult, PeerError> {
        let passed = connect::passthrough(gateway, incoming);
        let params = CallToolRequestParams::new(remote_name.to_owned()).with_arguments(arguments);
        let timeout = self.inner.call_timeout;
        self.run_passing(gateway, Gate::Circuit, timeout, passed, |peer| async move {
            peer.call_tool(params).await
        })
        .await
    }

    pub async fn get_prompt(
        &self,
        gateway: &Gateway,
        remote_name: &str,
        arguments: Map<String, Value>,
    ) -> Result<GetPromptResult, PeerError> {
        let params = GetPromptRequestParams::new(remote_name.to_owned()).with_arguments(arguments);
        let timeout = self.inner.call_timeout;
        self.run(gateway, Gate::Circuit, timeout, |peer| async move {
            peer.get_prompt(params).await
        })
        .await
    }

    pub async fn read_resource(
        &self,
        gateway: &Gateway,
        uri: &str,
    ) -> Result<ReadResourceResult, PeerError> {
        let params = ReadResourceRequestParams::new(uri.to_owned());
        let timeout = self.inner.call_timeout;
        self.run(gateway, Gate::Circuit, timeout, |peer| async move {
            peer.read_resource(params).await
        })
        .await
    }

    /// Gateway ids whose peer sent a `list_changed` notification (tools, prompts or resources).
    pub fn list_changes(&self) -> broadcast::Receiver<Uuid> {
        self.inner.changes.subscribe()
    }

    /// Closes and forgets the gateway's session (deleted or deactivated gateway).
    pub async fn forget(&self, gateway_id: Uuid) {
        let slot = self.slots().remove(&gateway_id);
        let session = slot.and_then(|s| s.state().session.take());
        if let Some(mut session) = session.and_then(|s| Arc::try_unwrap(s).ok()) {
            let _ = session
                .service
                .close_with_timeout(Duration::from_secs(2))
                .await;
        }
        // A session still in use by a call closes when that call drops it.
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<Uuid, Arc<Slot>>> {
        self.inner
            .slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&self, gateway: &Gateway) -> Result<(Uuid, Arc<Slot>), PeerError> {
        let id = gateway
            .id
            .ok_or_else(|| PeerError::Protocol("the gateway has no id (not stored)".into()))?;
        Ok((id, self.slots().entry(id).or_default().clone()))
    }

    /// `op` on the gateway's session, within `timeout`, through its circuit when `gate` says so.
    async fn run<T, F, Fut>(
        &self,
        gateway: &Gateway,
        gate: Gate,
        timeout: Duration,
        op: F,
    ) -> Result<T, PeerError>
    where
        F: FnOnce(Peer<RoleClient>) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        self.run_passing(gateway, gate, timeout, HeaderMap::new(), op)
            .await
    }

    /// [`Self::run`]; with `passed` headers, on a session of its own (the pooled one
    /// carries the gateway's headers only), closed after the call.
    async fn run_passing<T, F, Fut>(
        &self,
        gateway: &Gateway,
        gate: Gate,
        timeout: Duration,
        passed: HeaderMap,
        op: F,
    ) -> Result<T, PeerError>
    where
        F: FnOnce(Peer<RoleClient>) -> Fut,
        Fut: Future<Output = Result<T, ServiceError>>,
    {
        let (id, slot) = self.slot(gateway)?;
        let admission = if gate == Gate::Circuit {
            let admitted = slot
                .state()
                .breaker
                .admit(Instant::now(), &self.inner.circuit);
            Some(admitted.map_err(PeerError::CircuitOpen)?)
        } else {
            None
        };
        let trial = Trial {
            slot: &slot,
            armed: admission == Some(Admission::Trial),
        };
        let outcome = async {
            let session = if passed.is_empty() {
                self.session(id, &slot, gateway, timeout).await?
            } else {
                self.connect(id, gateway, timeout, &passed).await?
            };
            let answered = tokio::time::timeout(timeout, op(session.service.peer().clone())).await;
            let result = match answered {
                Err(_) => Err(PeerError::Timeout(timeout)),
                Ok(r) => r.map_err(|e| session_error(&session, &e, timeout)),
            };
            if result.as_ref().is_err_and(PeerError::breaks_session) {
                slot.drop_session(&session);
            }
            result
        }
        .await;
        self.record(&slot, Some(trial), &outcome);
        outcome
    }

    /// The circuit hears how the peer did.
    fn record<T>(&self, slot: &Slot, trial: Option<Trial<'_>>, outcome: &Result<T, PeerError>) {
        if let Some(mut trial) = trial {
            trial.armed = false;
        }
        let mut state = slot.state();
        match outcome {
            Ok(_) => state.breaker.succeeded(),
            Err(e) if e.is_outage() => state.breaker.failed(Instant::now(), &self.inner.circuit),
            // The peer answered (an MCP error, bad credentials) or was never tried.
            Err(PeerError::Protocol(_) | PeerError::AuthFailed(_)) => state.breaker.succeeded(),
            Err(_) => {}
        }
    }

    /// The pooled session, or a new one (one connection at a time per gateway).
    async fn session(
        &self,
        id: Uuid,
        slot: &Slot,
        gateway: &Gateway,
        timeout: Duration,
    ) -> Result<Arc<Session>, PeerError> {
        let fingerprint = fingerprint(gateway);
        if let Some(session) = slot.live(fingerprint) {
            return Ok(session);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(session) = slot.live(fingerprint) {
            return Ok(session);
        }
        let session = self
            .connect(id, gateway, timeout, &HeaderMap::new())
            .await?;
        slot.state().session = Some(session.clone());
        Ok(session)
    }

    /// A new session with the peer, `initialize` done, within `timeout`.
    async fn connect(
        &self,
        id: Uuid,
        gateway: &Gateway,
        timeout: Duration,
        passed: &HeaderMap,
    ) -> Result<Arc<Session>, PeerError> {
        let listener = Listener {
            gateway_id: id,
            changes: self.inner.changes.clone(),
        };
        let opened = connect::open(
            &self.inner.http,
            &self.inner.cipher,
            gateway,
            listener,
            passed,
        );
        let opened = tokio::time::timeout(timeout, opened)
            .await
            .map_err(|_| PeerError::Timeout(timeout))??;
        Ok(Arc::new(Session {
            fingerprint: fingerprint(gateway),
            service: opened.service,
            secrets: opened.secrets,
        }))
    }
}

/// A request's failure, with the peer's own text masked of the session's credentials.
fn session_error(session: &Session, error: &ServiceError, timeout: Duration) -> PeerError {
    match connect::service_error(error, timeout) {
        PeerError::Protocol(text) => PeerError::Protocol(scrub(&text, &session.secrets)),
        other => other,
    }
}

/// Capabilities and every page of tools, prompts and resources the peer offers.
async fn list_everything(session: &Session) -> Result<Discovered, ServiceError> {
    let peer = session.service.peer();
    let info = peer.peer_info();
    let capabilities = info.as_ref().map(|i| &i.capabilities);
    let offers = |what: &str| {
        capabilities
            .and_then(|c| serde_json::to_value(c).ok())
            .is_some_and(|c| c.get(what).is_some())
    };
    let capabilities = match capabilities.and_then(|c| serde_json::to_value(c).ok()) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    Ok(Discovered {
        tools: if offers("tools") {
            peer.list_all_tools().await?
        } else {
            Vec::new()
        },
        prompts: if offers("prompts") {
            peer.list_all_prompts().await?
        } else {
            Vec::new()
        },
        resources: if offers("resources") {
            peer.list_all_resources().await?
        } else {
            Vec::new()
        },
        capabilities,
    })
}

/// What a session depends on: a gateway whose URL, transport or credentials changed is
/// connected again.
fn fingerprint(gateway: &Gateway) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    gateway.url.hash(&mut hasher);
    serde_json::to_string(&(
        &gateway.transport,
        &gateway.auth_type,
        &gateway.auth_value,
        &gateway.auth_query_params,
        &gateway.passthrough_headers,
    ))
    .unwrap_or_default()
    .hash(&mut hasher);
    hasher.finish()
}
