//! The Streamable HTTP sessions: rmcp's [`SessionManager`] over one small shared state
//! per session, in place of rmcp's `LocalSessionManager`.
//!
//! That one gives every session a worker task and four tokio queues of whole JSON-RPC
//! messages (about 500 bytes each); a tokio queue allocates its first block of 32 slots
//! when it is made, so an idle session held about 64 KiB of queues it never used (heap
//! profile in the README, Performance). Here a session is its routes (which stream
//! waits for which answer), one inbound queue of boxed messages, read by rmcp's service
//! loop through [`SessionTransport`], and one small queue per open stream. Messages are
//! routed as rmcp routes them: an answer (and the progress and cancellation of its
//! request) to the `POST` stream that asked, everything else to the session's `GET`
//! stream, held (the last [`QUEUE`]) while none is open. Streams carry no resumable event
//! ids: a `Last-Event-ID` on the `GET` stream opens a fresh one; on a `POST` stream's it
//! gets rmcp's empty stream.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock},
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use rmcp::{
    RoleServer,
    model::{
        ClientJsonRpcMessage, ClientNotification, GetExtensions, GetMeta, JsonRpcMessage,
        ProgressToken, RequestId, ServerJsonRpcMessage, ServerNotification,
    },
    service::{OriginatingRequestId, RxJsonRpcMessage, TxJsonRpcMessage},
    transport::{
        Transport,
        streamable_http_server::session::{ServerSseMessage, SessionId, SessionManager},
    },
};
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tokio_stream::wrappers::ReceiverStream;

/// Messages queued per stream (and held for a `GET` stream that is not open yet), and
/// client messages queued for the handler, before the sender waits.
const QUEUE: usize = 16;
/// Extra `GET` streams a session keeps open beside its first (they hear only keep-alives).
const MAX_SHADOWS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session not found")]
    NotFound,
    #[error("the session has ended")]
    Ended,
    #[error("a request stream cannot be resumed")]
    NotResumable,
    #[error("the session's first message must be an initialize request")]
    NotInitialize,
}

/// The open sessions; an idle one ends after `keep_alive` with no message either way.
pub struct Sessions {
    open: RwLock<HashMap<SessionId, Handle>>,
    keep_alive: Duration,
}

/// What the manager holds of a session: dropping it ends the session's input, so rmcp's
/// service loop ends.
struct Handle {
    inbound: mpsc::Sender<Box<ClientJsonRpcMessage>>,
    shared: Arc<Shared>,
}

/// What the manager and the session's transport share.
struct Shared {
    routes: Mutex<Routes>,
    last_active: Mutex<Instant>,
}

#[derive(Default)]
struct Routes {
    /// The `initialize` request's id and who waits for its answer.
    initialize: Option<(RequestId, oneshot::Sender<ServerJsonRpcMessage>)>,
    /// Each request in flight: the stream of the `POST` that sent it, and its progress token.
    requests: HashMap<RequestId, (Outlet, Option<ProgressToken>)>,
    progress: HashMap<ProgressToken, RequestId>,
    /// The `GET` stream, and what waits for one to open.
    common: Option<Outlet>,
    held: VecDeque<ServerSseMessage>,
    shadows: Vec<Outlet>,
    ended: bool,
}

type Outlet = mpsc::Sender<Box<ServerSseMessage>>;

/// Where one outgoing message goes.
enum Target {
    Initialize(oneshot::Sender<ServerJsonRpcMessage>),
    Stream(Outlet),
    /// The `GET` stream, or held until one opens.
    Common,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sessions {
    pub fn new(keep_alive: Duration) -> Sessions {
        Sessions {
            open: RwLock::default(),
            keep_alive,
        }
    }

    /// Sessions held now.
    pub fn len(&self) -> usize {
        self.open
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn handle(
        &self,
        id: &SessionId,
    ) -> Result<(mpsc::Sender<Box<ClientJsonRpcMessage>>, Arc<Shared>), SessionError> {
        let open = self.open.read().unwrap_or_else(PoisonError::into_inner);
        let handle = open.get(id).ok_or(SessionError::NotFound)?;
        Ok((handle.inbound.clone(), handle.shared.clone()))
    }

    /// Hands `message` to the session's handler.
    async fn push(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<Arc<Shared>, SessionError> {
        let (inbound, shared) = self.handle(id)?;
        shared.touch();
        inbound
            .send(Box::new(message))
            .await
            .map_err(|_| SessionError::Ended)?;
        Ok(shared)
    }
}

impl Shared {
    fn touch(&self) {
        *lock(&self.last_active) = Instant::now();
    }

    /// When the session ends unless something happens first.
    fn idle_deadline(&self, keep_alive: Duration) -> Instant {
        *lock(&self.last_active) + keep_alive
    }

    fn routes(&self) -> MutexGuard<'_, Routes> {
        lock(&self.routes)
    }

    /// Sends `message` where it belongs. A stream whose client went away loses it, as
    /// rmcp's does; one for the `GET` stream is held for the next one instead.
    async fn deliver(&self, message: ServerJsonRpcMessage) -> Result<(), SessionError> {
        self.touch();
        let target = self.routes().target(&message)?;
        let (outlet, common) = match target {
            Target::Initialize(waiting) => {
                let _ = waiting.send(message);
                return Ok(());
            }
            Target::Stream(outlet) => (outlet, false),
            Target::Common => {
                let Some(outlet) = self.routes().common() else {
                    self.routes().hold(ServerSseMessage::from_message(message));
                    return Ok(());
                };
                (outlet, true)
            }
        };
        let message = Box::new(ServerSseMessage::from_message(message));
        if let Err(mpsc::error::SendError(lost)) = outlet.send(message).await
            && common
        {
            self.routes().hold(*lost);
        }
        Ok(())
    }
}

/// Whether a message rides a request's stream or the session's `GET` stream (before
/// looking up whether that request still has one).
enum Kind {
    Request(RequestId),
    Progress(ProgressToken),
    Common,
}

fn target_kind(message: &ServerJsonRpcMessage) -> Kind {
    match message {
        JsonRpcMessage::Response(response) => Kind::Request(response.id.clone()),
        JsonRpcMessage::Error(error) => error.id.clone().map_or(Kind::Common, Kind::Request),
        JsonRpcMessage::Notification(n) => match &n.notification {
            ServerNotification::ProgressNotification(p) => {
                Kind::Progress(p.params.progress_token.clone())
            }
            ServerNotification::CancelledNotification(c) => c
                .params
                .request_id
                .clone()
                .map_or(Kind::Common, Kind::Request),
            _ => Kind::Common,
        },
        // SEP-2260: a request made on behalf of a client's request rides its stream.
        JsonRpcMessage::Request(request) => request
            .request
            .extensions()
            .get::<OriginatingRequestId>()
            .map_or(Kind::Common, |o| Kind::Request(o.0.clone())),
    }
}

impl Routes {
    fn target(&mut self, message: &ServerJsonRpcMessage) -> Result<Target, SessionError> {
        if self.ended {
            return Err(SessionError::Ended);
        }
        let answer = matches!(
            message,
            JsonRpcMessage::Response(_) | JsonRpcMessage::Error(_)
        );
        let id = match target_kind(message) {
            Kind::Request(id) => id,
            Kind::Progress(token) => match self.progress.get(&token) {
                Some(id) => id.clone(),
                None => return Ok(Target::Common),
            },
            Kind::Common => return Ok(Target::Common),
        };
        if answer
            && self
                .initialize
                .as_ref()
                .is_some_and(|(waiting, _)| *waiting == id)
        {
            let (_, waiting) = self.initialize.take().expect("checked above");
            return Ok(Target::Initialize(waiting));
        }
        // The answer ends its request's stream (once the stream has it).
        let outlet = if answer {
            self.finish(&id)
        } else {
            self.requests.get(&id).map(|(outlet, _)| outlet.clone())
        };
        Ok(outlet.map_or(Target::Common, Target::Stream))
    }

    /// Forgets request `id`; its stream's sender, if it had one.
    fn finish(&mut self, id: &RequestId) -> Option<Outlet> {
        let (outlet, token) = self.requests.remove(id)?;
        if let Some(token) = token {
            self.progress.remove(&token);
        }
        Some(outlet)
    }

    /// The open `GET` stream's sender.
    fn common(&self) -> Option<Outlet> {
        self.common.clone().filter(|outlet| !outlet.is_closed())
    }

    fn hold(&mut self, message: ServerSseMessage) {
        if self.held.len() >= QUEUE {
            self.held.pop_front();
        }
        self.held.push_back(message);
    }

    /// Ends every stream and whoever waits for `initialize`.
    fn end(&mut self) {
        *self = Routes {
            ended: true,
            ..Routes::default()
        };
    }
}

/// A stream of what `outlet`'s receiver gets.
fn stream(
    receiver: mpsc::Receiver<Box<ServerSseMessage>>,
) -> impl Stream<Item = ServerSseMessage> + Send + Sync + 'static {
    ReceiverStream::new(receiver).map(|message| *message)
}

impl SessionManager for Sessions {
    type Error = SessionError;
    type Transport = SessionTransport;

    async fn create_session(&self) -> Result<(SessionId, SessionTransport), SessionError> {
        let id: SessionId = uuid::Uuid::new_v4().simple().to_string().into();
        let (inbound, receiver) = mpsc::channel(QUEUE);
        let shared = Arc::new(Shared {
            routes: Mutex::default(),
            last_active: Mutex::new(Instant::now()),
        });
        let transport = SessionTransport {
            shared: shared.clone(),
            inbound: receiver,
            keep_alive: self.keep_alive,
        };
        self.open
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), Handle { inbound, shared });
        Ok((id, transport))
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, SessionError> {
        let JsonRpcMessage::Request(request) = &message else {
            return Err(SessionError::NotInitialize);
        };
        let (answer, answered) = oneshot::channel();
        let (_, shared) = self.handle(id)?;
        shared.routes().initialize = Some((request.id.clone(), answer));
        self.push(id, message).await?;
        // The transport drops the waiting sender when the session ends first.
        answered.await.map_err(|_| SessionError::Ended)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, SessionError> {
        Ok(self
            .open
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(id))
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), SessionError> {
        let handle = self
            .open
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if let Some(handle) = handle {
            handle.shared.routes().end();
        }
        Ok(())
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, SessionError> {
        let (outlet, receiver) = mpsc::channel(QUEUE);
        if let JsonRpcMessage::Request(request) = &message {
            let (_, shared) = self.handle(id)?;
            let token = request.request.get_meta().get_progress_token();
            let mut routes = shared.routes();
            if let Some(token) = &token {
                routes.progress.insert(token.clone(), request.id.clone());
            }
            routes.requests.insert(request.id.clone(), (outlet, token));
        }
        self.push(id, message).await?;
        Ok(stream(receiver))
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), SessionError> {
        // A cancelled request's stream ends, as rmcp's does.
        if let JsonRpcMessage::Notification(n) = &message
            && let ClientNotification::CancelledNotification(c) = &n.notification
            && let Some(request) = &c.params.request_id
        {
            let (_, shared) = self.handle(id)?;
            shared.routes().finish(request);
        }
        self.push(id, message).await.map(drop)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, SessionError> {
        let (_, shared) = self.handle(id)?;
        shared.touch();
        let (outlet, receiver) = mpsc::channel(QUEUE);
        let mut routes = shared.routes();
        if routes.ended {
            return Err(SessionError::Ended);
        }
        if routes.common().is_some() {
            // A second GET stream (a client's reconnecting EventSource) stays open on
            // keep-alives, rather than taking the first one's place (as rmcp does).
            if routes.shadows.len() >= MAX_SHADOWS {
                routes.shadows.remove(0);
            }
            routes.shadows.push(outlet);
        } else {
            for held in routes.held.drain(..) {
                let _ = outlet.try_send(Box::new(held));
            }
            routes.common = Some(outlet);
        }
        Ok(stream(receiver))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, SessionError> {
        // The GET stream's ids are rmcp's priming `0` (no `/`): a fresh GET stream gets
        // what is held. A POST stream's answer is not kept for a late reconnection.
        if last_event_id.contains('/') {
            return Err(SessionError::NotResumable);
        }
        self.create_standalone_stream(id).await
    }
}

/// One session as rmcp's service loop sees it.
pub struct SessionTransport {
    shared: Arc<Shared>,
    inbound: mpsc::Receiver<Box<ClientJsonRpcMessage>>,
    keep_alive: Duration,
}

impl Transport<RoleServer> for SessionTransport {
    type Error = SessionError;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), SessionError>> + Send + 'static {
        let shared = self.shared.clone();
        async move { shared.deliver(item).await }
    }

    /// The next client message; none once the session is closed or has been idle for
    /// `keep_alive` (the service loop then ends, and rmcp closes the session).
    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            let deadline = self.shared.idle_deadline(self.keep_alive);
            tokio::select! {
                message = self.inbound.recv() => return message.map(|m| *m),
                () = tokio::time::sleep_until(deadline) => {
                    if self.shared.idle_deadline(self.keep_alive) <= Instant::now() {
                        return None;
                    }
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), SessionError> {
        self.inbound.close();
        Ok(())
    }
}

impl Drop for SessionTransport {
    fn drop(&mut self) {
        self.shared.routes().end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_goes_to_the_stream_of_its_request_and_ends_it() {
        let mut routes = Routes::default();
        let (outlet, _receiver) = mpsc::channel(1);
        routes.requests.insert(RequestId::Number(7), (outlet, None));
        let answer: ServerJsonRpcMessage =
            serde_json::from_value(serde_json::json!({"jsonrpc": "2.0", "id": 7, "result": {}}))
                .unwrap();
        assert!(matches!(routes.target(&answer), Ok(Target::Stream(_))));
        assert!(routes.requests.is_empty());
        // A second answer to it has no stream left: the GET stream.
        assert!(matches!(routes.target(&answer), Ok(Target::Common)));
    }
}
