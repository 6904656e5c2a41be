//! The client side of MCP's legacy HTTP+SSE transport (2024-11-05), which rmcp 3 does not
//! have: `GET` the event stream, read its `endpoint` event, `POST` each JSON-RPC message
//! there; the answers arrive on the stream as `message` events. Our own server side is
//! `mcp/sse.rs`.

use std::future::Future;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use reqwest13::{Client, Url, header::HeaderMap};
use rmcp::{
    RoleClient,
    model::{ClientJsonRpcMessage, ServerJsonRpcMessage},
    transport::Transport,
};
use tokio::{sync::mpsc, task::JoinHandle};

/// Messages from the peer queued before the stream reader waits for the session.
const QUEUE: usize = 64;
/// The largest event read from the peer's stream (a whole tools/list page is one event).
pub const MAX_EVENT: usize = 16 << 20;

/// Why the transport failed. Never carries a header or URL (either may hold a credential).
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("the HTTP request failed")]
    Http(#[source] reqwest13::Error),
    #[error("the peer answered HTTP {0}")]
    Status(u16),
    #[error("the peer's event stream ended before its `endpoint` event")]
    NoEndpoint,
    #[error("the peer's `endpoint` event names another origin or is not a URL")]
    BadEndpoint,
    #[error("the peer's event stream is not valid server-sent events")]
    Stream,
}

/// One session over the legacy SSE transport.
pub struct SseClient {
    client: Client,
    endpoint: Url,
    headers: HeaderMap,
    inbound: mpsc::Receiver<ServerJsonRpcMessage>,
    reader: JoinHandle<()>,
}

impl SseClient {
    /// Opens the event stream at `url` with `headers` and waits for its `endpoint` event.
    pub async fn connect(client: Client, url: Url, headers: HeaderMap) -> Result<Self, SseError> {
        let response = client
            .get(url.clone())
            .headers(headers.clone())
            .header(reqwest13::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(SseError::Http)?;
        if !response.status().is_success() {
            return Err(SseError::Status(response.status().as_u16()));
        }
        let mut events = Box::pin(sse_stream::SseStream::from_bytes_stream(bounded(
            response.bytes_stream(),
        )));
        let endpoint = loop {
            let event = events
                .next()
                .await
                .ok_or(SseError::NoEndpoint)?
                .map_err(|_| SseError::Stream)?;
            if event.event.as_deref() == Some("endpoint") {
                break endpoint_of(&url, event.data.as_deref().unwrap_or_default())?;
            }
        };
        let (tx, inbound) = mpsc::channel(QUEUE);
        let reader = tokio::spawn(async move {
            while let Some(Ok(event)) = events.next().await {
                if !matches!(event.event.as_deref(), None | Some("message")) {
                    continue;
                }
                let Some(data) = event.data else { continue };
                match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
                    Ok(message) => {
                        if tx.send(message).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "peer sent an unreadable SSE message"),
                }
            }
        });
        Ok(SseClient {
            client,
            endpoint,
            headers,
            inbound,
            reader,
        })
    }
}

/// The `endpoint` event's URL, resolved against the stream's; on the same origin only, as
/// the messages POSTed there carry the gateway's credentials.
fn endpoint_of(stream: &Url, data: &str) -> Result<Url, SseError> {
    let endpoint = stream
        .join(data.trim())
        .map_err(|_| SseError::BadEndpoint)?;
    if endpoint.origin() == stream.origin() {
        Ok(endpoint)
    } else {
        Err(SseError::BadEndpoint)
    }
}

/// The byte stream, failing once more than [`MAX_EVENT`] bytes pass without an event's end,
/// so a peer cannot make the parser hold an endless event.
fn bounded(
    stream: impl Stream<Item = reqwest13::Result<Bytes>> + Send + 'static,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let mut pending = 0usize;
    stream.map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        pending = match memchr::memmem::rfind(&chunk, b"\n\n") {
            Some(end) => chunk.len() - end,
            None => pending + chunk.len(),
        };
        if pending > MAX_EVENT {
            return Err(std::io::Error::other("an SSE event exceeds the size limit"));
        }
        Ok(chunk)
    })
}

impl Transport<RoleClient> for SseClient {
    type Error = SseError;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), SseError>> + Send + 'static {
        let request = self
            .client
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .json(&item);
        async move {
            let response = request.send().await.map_err(SseError::Http)?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(SseError::Status(response.status().as_u16()))
            }
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ServerJsonRpcMessage>> + Send {
        self.inbound.recv()
    }

    async fn close(&mut self) -> Result<(), SseError> {
        self.reader.abort();
        Ok(())
    }
}

impl Drop for SseClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_must_stay_on_the_streams_origin() {
        let stream: Url = "http://peer.example:8080/servers/a/sse".parse().unwrap();
        let same = endpoint_of(&stream, "/servers/a/message?session_id=1").unwrap();
        assert_eq!(
            same.as_str(),
            "http://peer.example:8080/servers/a/message?session_id=1"
        );
        assert!(endpoint_of(&stream, "http://evil.example/collect").is_err());
        assert!(endpoint_of(&stream, "https://peer.example:8080/x").is_err());
    }
}
