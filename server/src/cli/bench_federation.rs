//! `mcpgateway bench --federated`: a peer MCP server (rmcp, Streamable HTTP) on loopback
//! with 1,000 tools, and a gateway (SQLite in a temporary directory) federating it.
//! Measures discovery of the 1,000 tools (`Peers::discover`, then `sync::apply`), and a
//! tool call made by an rmcp client directly to the peer, through the peer client
//! (`Peers::call_tool`), and through the gateway's virtual server endpoint
//! (`/servers/{id}/mcp` → forwarded to the peer), at concurrency 1 and 64: p50/p99 and
//! what the gateway adds.

use std::{sync::Arc, time::Instant};

use app::entities::{Gateway, Server};
use axum::{Router, serve::ListenerExt};
use rmcp::{
    ErrorData, RoleClient, RoleServer, ServerHandler, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams,
        ServerConfig,
    },
    service::{RequestContext, RunningService},
    transport::{
        StreamableHttpClientTransport, StreamableHttpServerConfig, StreamableHttpService,
        streamable_http_client::StreamableHttpClientTransportConfig,
        streamable_http_server::session::local::LocalSessionManager,
    },
};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;

use super::bench_calls::measure;
use crate::{
    auth::{self, bootstrap},
    config::Settings,
    entities::Entities,
    federation::{peer::Peers, sync},
    http::{self, AppState},
    store::Store,
};

/// Tools the peer offers.
const TOOLS: usize = 1000;
/// Tools per `tools/list` page.
const PAGE: usize = 100;
const SECRET: &str = "bench-federation-secret-0123456789abcdef";
const ADMIN: &str = "bench@example.com";

fn wire<T: DeserializeOwned>(value: Value) -> anyhow::Result<T> {
    Ok(serde_json::from_value(value)?)
}

/// The peer: `tool-0` … `tool-999`, each answering with its arguments.
#[derive(Clone)]
struct Peer;

impl ServerHandler for Peer {
    fn get_info(&self) -> ServerConfig {
        wire(
            json!({"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                    "serverInfo": {"name": "bench-peer", "version": "1"}}),
        )
        .expect("a valid initialize result")
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let start: usize = request
            .and_then(|r| r.cursor)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let end = (start + PAGE).min(TOOLS);
        let tools: Vec<Value> = (start..end)
            .map(|i| json!({"name": format!("tool-{i}"), "description": format!("bench tool {i}"),
                            "inputSchema": {"type": "object", "properties": {"city": {"type": "string"}}}}))
            .collect();
        let mut page = json!({"tools": tools});
        if end < TOOLS {
            page["nextCursor"] = json!(end.to_string());
        }
        wire(page).map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let result = json!({"content": [{"type": "text", "text": arguments.to_string()}]});
        wire(result)
            .map(CallToolResponse::Complete)
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))
    }
}

async fn start_peer() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/mcp", listener.local_addr()?);
    let service = StreamableHttpService::new(
        || Ok(Peer),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = Router::new().route_service("/mcp", service);
    // Without TCP_NODELAY an SSE answer's small writes wait for delayed ACKs (~40 ms).
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

async fn client(url: &str, token: Option<&str>) -> anyhow::Result<RunningService<RoleClient, ()>> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    Ok(
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await?,
    )
}

/// A gateway on a temporary SQLite store, serving on loopback, with an admin token.
async fn start_gateway(dir: &std::path::Path) -> anyhow::Result<(AppState, String, String)> {
    let settings = Settings {
        database_url: format!("sqlite://{}", dir.join("bench.db").display()),
        admin_email: ADMIN.into(),
        admin_password: Some(SecretString::from("bench-password-0123")),
        auth_encryption_secret: Some(SecretString::from(SECRET)),
        allow_private_networks: true,
        ..Settings::default()
    };
    let store = Store::connect_with(&settings.database_url, settings.lock_wait()).await?;
    bootstrap::ensure_admin(&store, &settings).await?;
    let (_, token) = auth::create_api_token(&store, ADMIN, "bench", None).await?;
    let state = AppState::new(store, settings, SecretString::from(SECRET));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let serving = state.clone();
    tokio::spawn(http::launch_with_listener(
        serving,
        listener,
        std::future::pending(),
    ));
    Ok((state, base, token))
}

pub async fn run(seconds: u64) -> anyhow::Result<()> {
    let peer_url = start_peer().await?;
    let dir = tempfile::tempdir()?;
    let (state, base, token) = start_gateway(dir.path()).await?;
    let service = Entities {
        store: &state.store,
        cipher: &state.cipher,
        actor: "bench",
    };
    let body = json!({"name": "bench peer", "url": peer_url, "transport": "STREAMABLEHTTP"});
    let gateway: Gateway = service.create(body).await?;
    let id = gateway
        .id
        .ok_or_else(|| anyhow::anyhow!("gateway stored without id"))?;

    // Discovery, on a fresh peer client each time (a new session, as at a reconnect).
    println!("| discovery of {TOOLS} tools ({PAGE} per page) | run | seconds |");
    println!("|---|---:|---:|");
    for run in 1..=3 {
        let peers = Peers::new(&state.settings, state.cipher.clone());
        let started = Instant::now();
        let found = peers.discover(&gateway).await?;
        let discovered = started.elapsed();
        anyhow::ensure!(found.tools.len() == TOOLS, "{} tools", found.tools.len());
        let started = Instant::now();
        sync::apply(&state.store, id, &found).await?;
        let applied = started.elapsed();
        println!(
            "| Peers::discover | {run} | {:.3} |",
            discovered.as_secs_f64()
        );
        println!("| sync::apply | {run} | {:.3} |", applied.as_secs_f64());
    }
    let server: Server = service
        .create(json!({"name": "bench", "tool_ids": ["bench-peer-tool-7"]}))
        .await?;
    let server_url = format!(
        "{base}/servers/{}/mcp",
        server.id.map(|i| i.to_string()).unwrap_or_default()
    );

    let arguments: Map<String, Value> = json!({"city": "Oslo"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let direct = Arc::new(client(&peer_url, None).await?);
    let through = Arc::new(client(&server_url, Some(&token)).await?);
    let peers = state.peers.clone();
    let span = std::time::Duration::from_secs(seconds.max(1));
    println!();
    println!("| path | concurrency | calls/s | p50 | p99 | failures |");
    println!("|---|---:|---:|---:|---:|---:|");
    for concurrency in [1, 64] {
        let call = |client: Arc<RunningService<RoleClient, ()>>, name: &'static str| {
            let args = arguments.clone();
            move |_| {
                let (client, args) = (client.clone(), args.clone());
                async move {
                    let params = CallToolRequestParams::new(name).with_arguments(args);
                    client
                        .call_tool(params)
                        .await
                        .is_ok_and(|r| r.is_error != Some(true))
                }
            }
        };
        let plain = measure(concurrency, span, call(direct.clone(), "tool-7")).await;
        let (engine_peers, engine_gateway, engine_args) =
            (peers.clone(), gateway.clone(), arguments.clone());
        let engine = measure(concurrency, span, move |_| {
            let (peers, gateway, args) = (
                engine_peers.clone(),
                engine_gateway.clone(),
                engine_args.clone(),
            );
            async move { peers.call_tool(&gateway, "tool-7", args).await.is_ok() }
        })
        .await;
        let gateway_run = measure(
            concurrency,
            span,
            call(through.clone(), "bench-peer-tool-7"),
        )
        .await;
        for (path, run) in [
            ("direct to the peer", &plain),
            ("Peers::call_tool", &engine),
            ("through /servers/{id}/mcp", &gateway_run),
        ] {
            println!("{}", run.row(path, concurrency));
        }
        println!("{}", gateway_run.added("the gateway", concurrency, &plain));
    }
    Ok(())
}
