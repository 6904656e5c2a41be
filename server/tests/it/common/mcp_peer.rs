//! A peer gateway for federation tests: a real rmcp MCP server (Streamable HTTP) on
//! loopback that pages its lists, records the `Authorization` of every request and the
//! calls it receives, may require a bearer token, can notify `list_changed`, and can go
//! down (every connection cut) and come back on the same port.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    extract::{Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use rmcp::{
    ErrorData, Peer, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
        ListPromptsResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ServerConfig,
    },
    service::{NotificationContext, RequestContext},
    transport::{
        StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_server::session::local::LocalSessionManager,
    },
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

/// Items per page of each list.
pub const PAGE: usize = 2;

#[derive(Default)]
pub struct Record {
    /// The `Authorization` header of each request (`None` when absent).
    pub authorizations: Vec<Option<String>>,
    /// `tools/call` names with their arguments, `prompts/get` and `resources/read` targets.
    pub calls: Vec<(String, Value)>,
}

struct Shared {
    tools: usize,
    token: Option<String>,
    record: Mutex<Record>,
    sessions: Mutex<Vec<Peer<RoleServer>>>,
}

#[derive(Clone)]
struct Handler(Arc<Shared>);

pub struct McpPeer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<CancellationToken>,
}

fn wire<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("a valid MCP value")
}

/// One page of `items` after `cursor` (an index), and the next page's cursor.
fn page(items: Vec<Value>, request: Option<&PaginatedRequestParams>) -> (Vec<Value>, Value) {
    let start: usize = request
        .and_then(|r| r.cursor.as_deref())
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let end = (start + PAGE).min(items.len());
    let next = if end < items.len() {
        json!(end.to_string())
    } else {
        Value::Null
    };
    (items[start.min(end)..end].to_vec(), next)
}

fn listed(field: &str, (items, next): (Vec<Value>, Value)) -> Value {
    let mut out = json!({ field: items });
    if !next.is_null() {
        out["nextCursor"] = next;
    }
    out
}

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        wire(json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {"listChanged": true}, "prompts": {"listChanged": true},
                             "resources": {"listChanged": true}},
            "serverInfo": {"name": "test-peer", "version": "1"},
        }))
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        self.0.sessions.lock().unwrap().push(context.peer);
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools = (0..self.0.tools)
            .map(|i| json!({"name": format!("tool-{i}"), "description": format!("tool number {i}"),
                            "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}}}))
            .collect();
        Ok(wire(listed("tools", page(tools, request.as_ref()))))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = Value::Object(request.arguments.clone().unwrap_or_default());
        if request.name == "fail" {
            return Err(ErrorData::invalid_params("the peer refuses `fail`", None));
        }
        self.0
            .record
            .lock()
            .unwrap()
            .calls
            .push((request.name.to_string(), arguments.clone()));
        let text = format!("{} ran with {arguments}", request.name);
        Ok(CallToolResponse::Complete(wire(
            json!({"content": [{"type": "text", "text": text}], "isError": false}),
        )))
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let prompts = ["greet", "farewell", "thanks"]
            .map(|n| json!({"name": n, "arguments": [{"name": "who", "required": true}]}))
            .to_vec();
        Ok(wire(listed("prompts", page(prompts, request.as_ref()))))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let arguments = Value::Object(request.arguments.clone().unwrap_or_default());
        self.0
            .record
            .lock()
            .unwrap()
            .calls
            .push((format!("prompt:{}", request.name), arguments.clone()));
        let text = format!(
            "{} {}",
            request.name,
            arguments["who"].as_str().unwrap_or("?")
        );
        Ok(GetPromptResponse::Complete(wire(json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": text}}]
        }))))
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = ["peer://a", "peer://b", "peer://c"]
            .map(|u| json!({"uri": u, "name": u.trim_start_matches("peer://"), "mimeType": "text/plain"}))
            .to_vec();
        Ok(wire(listed("resources", page(resources, request.as_ref()))))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.0
            .record
            .lock()
            .unwrap()
            .calls
            .push((format!("read:{}", request.uri), Value::Null));
        Ok(ReadResourceResponse::Complete(wire(json!({
            "contents": [{"uri": request.uri, "mimeType": "text/plain", "text": format!("content of {}", request.uri)}]
        }))))
    }
}

/// Records the request's `Authorization`; refuses it (401, no challenge) when a token is
/// required and this is not it.
async fn door(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    shared
        .record
        .lock()
        .unwrap()
        .authorizations
        .push(authorization.clone());
    if let Some(token) = &shared.token
        && authorization.as_deref() != Some(&format!("Bearer {token}"))
    {
        return (StatusCode::UNAUTHORIZED, "bad token").into_response();
    }
    next.run(request).await
}

impl McpPeer {
    /// A peer offering `tools` tools (3 prompts, 3 resources), requiring `token` if given.
    pub async fn start(tools: usize, token: Option<&str>) -> McpPeer {
        let shared = Arc::new(Shared {
            tools,
            token: token.map(str::to_owned),
            record: Mutex::default(),
            sessions: Mutex::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = McpPeer {
            addr: listener.local_addr().unwrap(),
            shared,
            stop: None,
        };
        peer.serve(listener);
        peer
    }

    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = CancellationToken::new();
        let handler = Handler(self.shared.clone());
        let config = StreamableHttpServerConfig::default().with_cancellation_token(stop.clone());
        let service = StreamableHttpService::new(
            move || Ok(handler.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let router = Router::new()
            .route_service("/mcp", service)
            .layer(middleware::from_fn_with_state(self.shared.clone(), door));
        let token = stop.clone();
        tokio::spawn(async move {
            // Each connection is a task of this set, so that going down cuts them all.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { break };
                        let service = TowerToHyperService::new(router.clone());
                        connections.spawn(async move {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .with_upgrades()
                                .await;
                        });
                    }
                }
            }
            connections.abort_all();
        });
        self.stop = Some(stop);
    }

    /// Stops listening and cuts every connection.
    pub fn down(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.cancel();
        }
        self.shared.sessions.lock().unwrap().clear();
    }

    /// Listens again on the same address.
    pub async fn up(&mut self) {
        let listener = TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    /// Tells every session that its tools list changed.
    pub async fn tools_changed(&self) {
        let sessions = self.shared.sessions.lock().unwrap().clone();
        assert!(!sessions.is_empty(), "a session to notify");
        for session in sessions {
            session.notify_tool_list_changed().await.unwrap();
        }
    }

    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.shared.record.lock().unwrap().authorizations.clone()
    }

    /// Sessions initialized since the peer (last) came up.
    pub fn sessions(&self) -> usize {
        self.shared.sessions.lock().unwrap().len()
    }

    pub fn calls(&self) -> Vec<(String, Value)> {
        self.shared.record.lock().unwrap().calls.clone()
    }
}

impl Drop for McpPeer {
    fn drop(&mut self) {
        self.down();
    }
}
