//! The accept loop. `axum::serve` has no header-read timeout and no connection cap, so
//! 1,100 connections that never finish their headers would exhaust the file
//! descriptors. Here every connection is HTTP/1.1 with:
//! - a header-read timeout (hyper's, which also ends idle keep-alive connections);
//! - an idle timeout on request bodies (a stalled upload fails; a moving one never does);
//! - a cap on open connections: past it the oldest idle connection (no request in flight,
//!   e.g. one still trickling its headers) is closed to make room, and when every one is
//!   busy the newcomer is closed at once.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Body, extract::ConnectInfo, http::Request, response::Response};
use http_body_util::BodyExt;
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use crate::config::Settings;

/// What a full gateway writes to a connection it closes at once (best effort, never waits).
const BUSY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
}

impl Limits {
    pub fn from_settings(settings: &Settings) -> Limits {
        Limits {
            max_connections: usize::try_from(settings.max_connections.max(1)).unwrap_or(1),
            header_read_timeout: Duration::from_secs(settings.header_read_timeout_secs.max(1)),
            body_read_timeout: Duration::from_secs(settings.body_read_timeout_secs.max(1)),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for the requests
/// in flight (idle connections close at once).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Slots::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = slots.admit() else {
            refuse(stream, peer);
            continue;
        };
        // An answer's last small write (an SSE event after the headers) must not wait
        // for the client's delayed ACK (Nagle).
        let _ = stream.set_nodelay(true);
        let service = connection_service(
            router.clone(),
            peer,
            slot.state.clone(),
            limits.body_read_timeout,
        );
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            tokio::select! {
                // Errors here are the client's (reset, timed out headers, bad request).
                done = connection => {
                    if let Err(e) = done {
                        tracing::debug!(client.ip = %peer.ip(), error = %e, "connection ended");
                    }
                }
                () = slot.state.evicted.cancelled() => {
                    tracing::debug!(client.ip = %peer.ip(), "idle connection closed to make room");
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The router as one connection's service: the peer address for `ConnectInfo`, the body
/// idle timeout, and the busy count that keeps this connection from being evicted until
/// its response body is done.
fn connection_service(
    router: Router,
    peer: SocketAddr,
    slot: Arc<SlotState>,
    body_read_timeout: Duration,
) -> TowerToHyperService<
    impl tower::Service<Request<Incoming>, Response = Response, Error = Infallible, Future = impl Send>
    + Clone,
> {
    TowerToHyperService::new(tower::service_fn(move |request: Request<Incoming>| {
        let busy = Busy::enter(slot.clone());
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(ConnectInfo(peer));
        let body = Body::new(TimeoutBody::new(body_read_timeout, body));
        let response = router.clone().oneshot(Request::from_parts(parts, body));
        async move {
            let response = response.await?;
            // The connection stays busy until the body is sent (or dropped).
            Ok::<_, Infallible>(response.map(|body| {
                Body::new(body.map_frame(move |frame| {
                    let _held = &busy;
                    frame
                }))
            }))
        }
    }))
}

/// Closes a connection the gateway has no room for, with a 503 if the socket takes it now.
fn refuse(stream: TcpStream, peer: SocketAddr) {
    let _ = stream.try_write(BUSY);
    drop(stream);
    tracing::warn!(client.ip = %peer.ip(), "connection refused: every connection is busy (max_connections)");
}

/// Accept errors: the client's (it reset before we accepted) pass by; anything else
/// (e.g. out of file descriptors) gets a short pause instead of a spinning loop.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The open connections, oldest first (ids only grow).
struct Slots {
    max: usize,
    next_id: AtomicU64,
    open: Mutex<BTreeMap<u64, Arc<SlotState>>>,
}

struct SlotState {
    /// Requests whose response is not yet fully sent.
    busy: AtomicUsize,
    evicted: CancellationToken,
}

/// One admitted connection; gives its place back when dropped.
struct Slot {
    id: u64,
    state: Arc<SlotState>,
    slots: Arc<Slots>,
}

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            max,
            next_id: AtomicU64::new(0),
            open: Mutex::new(BTreeMap::new()),
        }
    }

    /// A place for a new connection: a free one, else the oldest idle connection's.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.max {
            let idle = open
                .iter()
                .find(|(_, s)| s.busy.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id)?;
            if let Some(evicted) = open.remove(&idle) {
                evicted.evicted.cancel();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(SlotState {
            busy: AtomicUsize::new(0),
            evicted: CancellationToken::new(),
        });
        open.insert(id, state.clone());
        Some(Slot {
            id,
            state,
            slots: self.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&self.id);
    }
}

/// Marks a connection busy while it lives.
struct Busy(Arc<SlotState>);

impl Busy {
    fn enter(slot: Arc<SlotState>) -> Busy {
        slot.busy.fetch_add(1, Ordering::AcqRel);
        Busy(slot)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_evicts_the_oldest_idle_connection_and_refuses_when_all_are_busy() {
        let slots = Arc::new(Slots::new(2));
        let first = slots.admit().unwrap();
        let second = slots.admit().unwrap();
        let busy_first = Busy::enter(first.state.clone());
        let third = slots.admit().expect("the idle second makes room");
        assert!(second.state.evicted.is_cancelled());
        assert!(!first.state.evicted.is_cancelled(), "busy: kept");
        let _busy_third = Busy::enter(third.state.clone());
        assert!(slots.admit().is_none(), "every connection busy: refused");
        drop(busy_first);
        let _fourth = slots.admit().expect("the first is idle again");
        assert!(first.state.evicted.is_cancelled());
        drop(second);
        drop(first);
        assert_eq!(
            slots.open.lock().unwrap().len(),
            2,
            "an evicted slot's drop frees nothing twice"
        );
    }
}
