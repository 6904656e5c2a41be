//! The MCP half of `mcpgateway bench --calls`: a real gateway (this binary's `serve`) on a
//! fresh temporary SQLite store, seeded with one virtual server whose REST tool (with a
//! bearer credential) calls the bench's loopback upstream, reached through
//! `/servers/{id}/mcp` with an API token by rmcp's own client.
//!
//! The gateway runs in a child process so that the RSS measured is the gateway's alone:
//! in one process the client's 1,000 sessions would be counted as the gateway's.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::Context;
use app::entities::{server::Server, tool::Tool};
use futures_util::{StreamExt, stream};
use rmcp::{
    RoleClient, ServiceExt,
    model::CallToolRequestParams,
    service::{Peer, RunningService},
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{
    auth::{self, bootstrap},
    config::Settings,
    crypto::Cipher,
    entities::Entities,
    store::Store,
};

/// The seeded tool's name.
const TOOL: &str = "bench-echo";
/// The throw-away key the seeded credential is encrypted with.
const SECRET: &str = "mcpgateway-bench-calls-throwaway-secret";
const ADMIN: &str = "bench@example.com";
/// The bearer token the upstream expects: stored encrypted on the tool, sent by the
/// direct client as it is.
pub const UPSTREAM_TOKEN: &str = "bench-upstream-token";
/// How long a gateway may take to start, and a session to open.
const PATIENCE: Duration = Duration::from_secs(60);

/// Settings the bench gives its gateway beyond the defaults, as environment variables:
/// loopback upstreams allowed; room for 1,000 idle sessions (each holds its `GET` stream's
/// connection, past the default cap of 512, and is one of the `mcp_sessions`, 2,000 by
/// default); 64 calls in flight to the one upstream
/// (default 32).
const GATEWAY_ENV: [(&str, &str); 4] = [
    ("MCPGATEWAY_ALLOW_PRIVATE_NETWORKS", "true"),
    ("MCPGATEWAY_MAX_CONNECTIONS", "4096"),
    ("MCPGATEWAY_MCP_SESSIONS", "4096"),
    ("MCPGATEWAY_UPSTREAM_CONCURRENCY", "64"),
];

/// The arguments every call sends (checked against the tool's input schema).
pub fn arguments() -> serde_json::Map<String, Value> {
    let mut arguments = serde_json::Map::new();
    arguments.insert("city".into(), json!("Oslo"));
    arguments.insert("days".into(), json!(3));
    arguments
}

pub type Session = RunningService<RoleClient, ()>;

/// A gateway child process on a fresh store; killed when dropped.
pub struct Gateway {
    child: Child,
    pid: u32,
    endpoint: String,
    token: String,
    /// The seeded tool as stored (its credential sealed under [`cipher`]).
    pub tool: Tool,
    _dir: tempfile::TempDir,
}

/// The cipher of the seeded credentials.
pub fn cipher() -> Cipher {
    Cipher::new(&SecretString::from(SECRET))
}

impl Gateway {
    /// Seeds a fresh store whose tool calls `upstream`, then serves it on a free port.
    pub async fn start(upstream: &str) -> anyhow::Result<Gateway> {
        let dir = tempfile::tempdir()?;
        let database_url = format!("sqlite://{}", dir.path().join("bench.db").display());
        let settings = Settings {
            database_url: database_url.clone(),
            admin_email: ADMIN.into(),
            admin_password: Some(SecretString::from(auth::random_token(""))),
            auth_encryption_secret: Some(SecretString::from(SECRET)),
            ..Settings::default()
        };
        let (tool, server_id, token) = seed(&settings, upstream).await?;
        let mut child = spawn_serve(dir.path(), &database_url)?;
        let pid = child.id().context("the gateway exited at once")?;
        let address = tokio::time::timeout(PATIENCE, ready_address(&mut child))
            .await
            .context("the gateway did not start in time")??;
        Ok(Gateway {
            child,
            pid,
            endpoint: format!("http://{address}/servers/{server_id}/mcp"),
            token,
            tool,
            _dir: dir,
        })
    }

    /// An initialised MCP session (`initialize`, then `notifications/initialized`), on
    /// rmcp's own HTTP client (reqwest 0.13, which keeps no idle connections: each POST
    /// opens one, as every rmcp client does).
    pub async fn session(&self) -> anyhow::Result<Session> {
        let config = StreamableHttpClientTransportConfig::with_uri(self.endpoint.clone())
            .auth_header(self.token.clone());
        let transport = StreamableHttpClientTransport::from_config(config);
        let session = tokio::time::timeout(PATIENCE, ().serve(transport))
            .await
            .context("MCP initialize timed out")??;
        Ok(session)
    }

    /// `count` initialised sessions, opened 32 at a time.
    pub async fn sessions(&self, count: usize) -> anyhow::Result<Vec<Session>> {
        stream::iter(0..count)
            .map(|_| self.session())
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }

    /// The gateway process's resident set now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        super::bench_calls::status_kib(self.pid, "VmRSS:")
    }

    /// The CPU time the gateway has used so far (its live threads').
    pub fn cpu_time(&self) -> Duration {
        super::bench_calls::cpu_time(self.pid)
    }

    /// File descriptors the gateway holds open (its sockets, mostly).
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map_or(0, Iterator::count)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// One call of the seeded tool in `peer`'s session; true when it answered a result.
pub async fn call(peer: &Peer<RoleClient>) -> bool {
    let params = CallToolRequestParams::new(TOOL).with_arguments(arguments());
    peer.call_tool(params)
        .await
        .is_ok_and(|result| result.is_error != Some(true))
}

/// Idle sessions and what they cost the gateway.
pub struct Idle {
    pub sessions: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub files_before: usize,
    pub files_after: usize,
    pub opened_in: Duration,
}

impl Idle {
    pub fn kib_per_session(&self) -> f64 {
        self.rss_after_kib.saturating_sub(self.rss_before_kib) as f64 / self.sessions as f64
    }
}

/// Opens `count` sessions on a fresh gateway and leaves them idle: its RSS and open files
/// before (one session already open, so that what the first one builds lazily is not
/// counted) and after.
pub async fn idle_sessions(upstream: &str, count: usize) -> anyhow::Result<Idle> {
    let gateway = Gateway::start(upstream).await?;
    let first = gateway.session().await?;
    anyhow::ensure!(call(first.peer()).await, "the first session's call failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss_before_kib, files_before) = (gateway.rss_kib(), gateway.open_files());
    let started = Instant::now();
    let sessions = gateway.sessions(count).await?;
    let opened_in = started.elapsed();
    // Each client opens its GET stream after `initialized`; let them all arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = Idle {
        sessions: sessions.len(),
        rss_before_kib,
        rss_after_kib: gateway.rss_kib(),
        files_before,
        files_after: gateway.open_files(),
        opened_in,
    };
    anyhow::ensure!(
        call(sessions[count / 2].peer()).await,
        "an idle session could no longer call"
    );
    gateway.stop().await;
    drop((first, sessions));
    Ok(idle)
}

/// A store with the admin, the key check, one tool on `upstream` and the server `bench`
/// offering it; the stored tool, the server's id and an API token.
async fn seed(settings: &Settings, upstream: &str) -> anyhow::Result<(Tool, String, String)> {
    let store = Store::connect(&settings.database_url).await?;
    bootstrap::ensure_admin(&store, settings).await?;
    let secret = bootstrap::encryption_secret(settings, &store).await?;
    let cipher = Cipher::new(&secret).with_sensitive_headers(settings.sensitive_header_rules());
    let service = Entities {
        store: &store,
        cipher: &cipher,
        actor: "bench",
    };
    let schema = json!({"type": "object", "required": ["city"],
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}}});
    let tool = json!({"name": TOOL, "url": upstream, "request_type": "POST", "input_schema": schema,
        "auth": {"type": "bearer", "token": UPSTREAM_TOKEN}});
    let tool: Tool = service.create(tool).await?;
    let server: Server = service
        .create(json!({"name": "bench", "tool_ids": [TOOL]}))
        .await?;
    let id = server.id.context("a stored server has an id")?;
    let (_, token) = auth::create_api_token(&store, ADMIN, "bench", None).await?;
    store.close().await;
    Ok((tool, id.to_string(), token))
}

/// `mcpgateway serve` on `database_url`, a free loopback port, in `dir` (so that no
/// `mcpgateway.toml` or `.env` of the caller's is read), with only the bench's settings.
fn spawn_serve(dir: &Path, database_url: &str) -> anyhow::Result<Child> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("serve")
        .env_clear()
        .current_dir(dir)
        .env("DATABASE_URL", database_url)
        .env("AUTH_ENCRYPTION_SECRET", SECRET)
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .envs(GATEWAY_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // The per-call log lines are written (at the default level) and thrown away.
        .stderr(Stdio::null())
        .kill_on_drop(true);
    Ok(command.spawn()?)
}

/// The address from the gateway's ready line; its stdout is drained from then on.
async fn ready_address(child: &mut Child) -> anyhow::Result<String> {
    let stdout = child.stdout.take().context("the gateway's stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await? {
        if let Some(rest) = line.strip_prefix("mcpgateway is ready: open http://") {
            let address = rest.trim_end_matches("/login").to_owned();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Ok(address);
        }
    }
    anyhow::bail!("the gateway exited before it was ready")
}
