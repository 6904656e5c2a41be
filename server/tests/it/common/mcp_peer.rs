//! A real MCP peer gateway on loopback for the federation tests: an rmcp server over
//! Streamable HTTP offering named tools, optionally demanding a bearer token (401
//! without it), that can be stopped and started again on the same port. It counts the
//! sessions initialized and records every `Authorization` a tool call came with.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::Request,
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams,
        ServerConfig,
    },
    service::{NotificationContext, RequestContext},
    transport::{
        StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_server::session::local::LocalSessionManager,
    },
};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Shared {
    tools: Mutex<Vec<String>>,
    token: Option<String>,
    initialized: AtomicUsize,
    /// The `Authorization` of every tool call (the gateway forwards the stored one).
    call_auth: Mutex<Vec<String>>,
}

#[derive(Clone)]
struct Handler {
    shared: Arc<Shared>,
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        serde_json::from_value(json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": {"name": "test-peer", "version": "1"},
        }))
        .unwrap()
    }

    async fn on_initialized(&self, _context: NotificationContext<RoleServer>) {
        self.shared.initialized.fetch_add(1, Ordering::SeqCst);
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools: Vec<_> = (self.shared.tools.lock().unwrap().iter())
            .map(|name| json!({"name": name, "description": format!("peer tool {name}"), "inputSchema": {"type": "object"}}))
            .collect();
        Ok(serde_json::from_value(json!({ "tools": tools })).unwrap())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let auth = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.headers.get("authorization"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        self.shared.call_auth.lock().unwrap().push(auth);
        let text = format!("peer answered {}", request.name);
        let result = json!({"content": [{"type": "text", "text": text}], "isError": false});
        Ok(CallToolResponse::Complete(
            serde_json::from_value(result).unwrap(),
        ))
    }
}

/// A peer gateway; stopped when dropped.
pub struct McpPeer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    running: Option<(CancellationToken, JoinHandle<()>)>,
}

impl McpPeer {
    /// A peer offering `tools`, demanding `Authorization: Bearer <token>` when given.
    pub async fn start(tools: &[&str], token: Option<&str>) -> McpPeer {
        let shared = Arc::new(Shared {
            tools: Mutex::new(tools.iter().map(|t| (*t).to_owned()).collect()),
            token: token.map(str::to_owned),
            ..Shared::default()
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut peer = McpPeer {
            addr,
            shared,
            running: None,
        };
        peer.serve(listener);
        peer
    }

    /// Its MCP endpoint.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Sessions initialized so far.
    pub fn initialized(&self) -> usize {
        self.shared.initialized.load(Ordering::SeqCst)
    }

    /// The `Authorization` header of each tool call so far.
    pub fn call_auth(&self) -> Vec<String> {
        self.shared.call_auth.lock().unwrap().clone()
    }

    /// Goes down: the port is closed and every session with it ends.
    pub async fn stop(&mut self) {
        if let Some((cancel, task)) = self.running.take() {
            cancel.cancel();
            if tokio::time::timeout(Duration::from_secs(5), task).await.is_err() {
                panic!("the test peer did not stop");
            }
        }
    }

    /// Comes back on the same port.
    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let cancel = CancellationToken::new();
        let config = StreamableHttpServerConfig::default().with_cancellation_token(cancel.clone());
        let handler = Handler {
            shared: self.shared.clone(),
        };
        let service = StreamableHttpService::new(
            move || Ok(handler.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let token = self.shared.token.clone();
        let app = Router::new()
            .route_service("/mcp", service)
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                let token = token.clone();
                async move { demand(token.as_deref(), request, next).await }
            }));
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
        });
        self.running = Some((cancel, task));
    }
}

/// 401 unless the request has `Authorization: Bearer <token>` (when a token is demanded).
async fn demand(token: Option<&str>, request: Request, next: Next) -> Response {
    if let Some(token) = token {
        let sent = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if sent != Some(&format!("Bearer {token}")) {
            return (StatusCode::UNAUTHORIZED, "bearer token required").into_response();
        }
    }
    next.run(request).await
}

impl Drop for McpPeer {
    fn drop(&mut self) {
        if let Some((cancel, task)) = self.running.take() {
            cancel.cancel();
            task.abort();
        }
    }
}
