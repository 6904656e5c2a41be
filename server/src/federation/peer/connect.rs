//! Opening a session with a peer: its URL checked by the outbound guard, its credentials
//! decrypted for the connection only, its transport (Streamable HTTP, or the legacy SSE
//! adapter), `initialize`; and what any failure on the way means ([`classify`]).

use std::{collections::HashMap, sync::Arc, time::Duration};

use app::entities::gateway::{Gateway, Transport};
use reqwest13::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use rmcp::{
    ClientHandler, RoleClient, ServiceExt,
    model::{ClientConfig, Implementation, ProtocolVersion},
    service::{ClientInitializeError, NotificationContext, RunningService, ServiceError},
    transport::{
        StreamableHttpClientTransport,
        streamable_http_client::{StreamableHttpClientTransportConfig, StreamableHttpError},
    },
};
use secrecy::ExposeSecret;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::{PeerError, sse_client::SseClient};
use crate::{
    config::Settings,
    crypto::Cipher,
    invoke::{
        self,
        credentials::{Credentials, TokenCache},
        guard::{Guard, GuardedResolver, Refused},
    },
};

/// The HTTP side every session shares: rmcp's client (reqwest 0.13) resolving through the
/// outbound guard, and the Invoker's client (reqwest 0.12) for OAuth token endpoints.
pub struct Http {
    pub client: reqwest13::Client,
    pub guard: Arc<Guard>,
    token_client: reqwest::Client,
    tokens: TokenCache,
}

impl Http {
    pub fn new(settings: &Settings) -> Http {
        let (guard, token_client) = invoke::guarded_client(settings);
        let client = reqwest13::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            // A proxy would resolve the name itself, past the guard.
            .no_proxy()
            .connect_timeout(invoke::connect_timeout(settings))
            // An MCP endpoint that redirects is not followed: the credentials would go along.
            .redirect(reqwest13::redirect::Policy::none())
            .user_agent(invoke::USER_AGENT)
            .tls_backend_preconfigured(tls_config())
            .build()
            .expect("a rustls client with a custom resolver always builds");
        Http {
            client,
            guard,
            token_client,
            tokens: TokenCache::default(),
        }
    }
}

/// Makes ring the process's default rustls provider: reqwest 0.13 without a provider of
/// its own (`rustls-no-provider`) panics building any client with defaults (rmcp's
/// `StreamableHttpClientTransport::from_config`, used by `bench --calls`, the tests and
/// tools) unless one is installed. The CLI calls it first thing; [`tls_config`] too, for
/// the tests that build `Peers` without the CLI.
pub fn install_default_tls_provider() {
    // Already installed (by an earlier call, or by someone else) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// rustls with the ring provider and the Mozilla roots (as the Invoker's reqwest 0.12 has).
fn tls_config() -> rustls::ClientConfig {
    install_default_tls_provider();
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// The handler of a session's incoming side: `list_changed` notifications are published
/// with the gateway's id.
pub struct Listener {
    pub gateway_id: Uuid,
    pub changes: broadcast::Sender<Uuid>,
}

impl Listener {
    fn changed(&self) {
        // No receiver is fine: nobody is refreshing right now.
        let _ = self.changes.send(self.gateway_id);
    }
}

impl ClientHandler for Listener {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.changed();
    }
    async fn on_prompt_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.changed();
    }
    async fn on_resource_list_changed(&self, _: NotificationContext<RoleClient>) {
        self.changed();
    }
    fn get_info(&self) -> ClientConfig {
        // 2025-11-25: list_changed arrives unasked (2026-07-28 needs a listen stream).
        let mut config =
            ClientConfig::default().with_protocol_version(ProtocolVersion::V_2025_11_25);
        config.client_info = Implementation::new("mcpgateway", env!("CARGO_PKG_VERSION"));
        config
    }
}

pub type Service = RunningService<RoleClient, Listener>;

/// A running session and the secrets it was opened with (masked in any peer text shown).
pub struct Opened {
    pub service: Service,
    pub secrets: Vec<String>,
}

/// Connects to `gateway` and runs `initialize`.
pub async fn open(
    http: &Http,
    cipher: &Cipher,
    gateway: &Gateway,
    listener: Listener,
    passed: &HeaderMap,
) -> Result<Opened, PeerError> {
    let mut url = target(http, gateway)?;
    let credentials = Credentials::of_gateway(gateway, cipher)
        .map_err(|e| PeerError::Refused(format!("the gateway's credentials: {e}")))?;
    let secrets = credentials.secrets();
    let mut headers = credentials.header_map().map_err(PeerError::Refused)?;
    for (name, value) in passed {
        // The gateway's own credentials win over a caller's header of the same name.
        if !headers.contains_key(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    if let Some(grant) = &credentials.oauth {
        let token = http
            .tokens
            .token(&http.token_client, grant)
            .await
            .map_err(|e| token_error(&e))?;
        let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
            .map_err(|_| PeerError::Protocol("the access token is not a valid header".into()))?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    if !credentials.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in &credentials.query {
            pairs.append_pair(name, value.expose_secret());
        }
    }
    let service = match gateway.transport {
        Transport::StreamableHttp => {
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                .custom_headers(header_table(&headers));
            let transport = StreamableHttpClientTransport::with_client(http.client.clone(), config);
            listener
                .serve(transport)
                .await
                .map_err(|e| init_error(&e))?
        }
        Transport::Sse => {
            let transport = SseClient::connect(http.client.clone(), url, headers)
                .await
                .map_err(|e| classify(&e))?;
            listener
                .serve(transport)
                .await
                .map_err(|e| init_error(&e))?
        }
    };
    Ok(Opened { service, secrets })
}

/// The caller's headers that `gateway` lists in `passthrough_headers`; never the caller's
/// own credentials (`Authorization`, `Cookie`), which are for this gateway, not the peer.
pub fn passthrough(gateway: &Gateway, incoming: &HeaderMap) -> HeaderMap {
    let mut passed = HeaderMap::new();
    for name in &gateway.passthrough_headers {
        let Ok(name) = reqwest13::header::HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        if name == AUTHORIZATION || name == reqwest13::header::COOKIE {
            continue;
        }
        if let Some(value) = incoming.get(&name) {
            passed.insert(name, value.clone());
        }
    }
    passed
}

/// The gateway's URL, if the outbound policy lets it be called.
fn target(http: &Http, gateway: &Gateway) -> Result<reqwest13::Url, PeerError> {
    let url: reqwest13::Url = gateway
        .url
        .as_deref()
        .and_then(|u| u.parse().ok())
        .ok_or_else(|| PeerError::Protocol("the gateway has no valid url".into()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PeerError::Refused(format!(
            "only http and https peers are contacted, not {}",
            url.scheme()
        )));
    }
    http.guard
        .check_literal(&url)
        .map_err(|r| PeerError::Refused(r.to_string()))?;
    Ok(url)
}

fn header_table(
    headers: &HeaderMap,
) -> HashMap<reqwest13::header::HeaderName, reqwest13::header::HeaderValue> {
    headers
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

/// A token endpoint that refused the client is a credential failure; one that could not
/// be reached, or gave no token, leaves the peer unreachable for now.
fn token_error(error: &invoke::credentials::TokenError) -> PeerError {
    match error {
        invoke::credentials::TokenError::Status(status) => PeerError::AuthFailed(status.as_u16()),
        other => PeerError::Unreachable(other.to_string()),
    }
}

fn init_error(error: &ClientInitializeError) -> PeerError {
    match error {
        ClientInitializeError::JsonRpcError(data) => {
            PeerError::Protocol(format!("initialize refused: {}", data.message))
        }
        // Not linked as the error's source: looked at here.
        ClientInitializeError::TransportError { error, .. } => classify(error),
        ClientInitializeError::ConnectionClosed(_) => walk(error)
            .unwrap_or_else(|| PeerError::Unreachable("the peer closed the connection".into())),
        _ => classify(error),
    }
}

/// What a failed request means.
pub fn service_error(error: &ServiceError, timeout: Duration) -> PeerError {
    match error {
        ServiceError::McpError(data) => PeerError::Protocol(data.message.to_string()),
        ServiceError::TransportClosed | ServiceError::Cancelled { .. } => {
            PeerError::Unreachable("the session with the peer closed".into())
        }
        ServiceError::Timeout { .. } => PeerError::Timeout(timeout),
        ServiceError::TransportSend(_) => classify(error),
        _ => PeerError::Protocol("the peer's answer is not the one asked for".into()),
    }
}

/// The meaning of a transport failure, from the errors in its chain. Only fixed texts and
/// status codes are used: a client error's own text holds the URL, which may hold a
/// query-parameter credential.
pub fn classify(error: &(dyn std::error::Error + 'static)) -> PeerError {
    walk(error).unwrap_or_else(|| PeerError::Protocol("the peer's answer is not MCP".into()))
}

fn walk(error: &(dyn std::error::Error + 'static)) -> Option<PeerError> {
    let chain = || std::iter::successors(Some(error), |e| e.source());
    if let Some(refused) = chain().find_map(|e| e.downcast_ref::<Refused>()) {
        return Some(PeerError::Refused(refused.to_string()));
    }
    chain().find_map(one)
}

fn one(error: &(dyn std::error::Error + 'static)) -> Option<PeerError> {
    use super::sse_client::SseError;
    if let Some(sse) = error.downcast_ref::<SseError>() {
        return match sse {
            SseError::Status(code) => Some(status(*code)),
            SseError::Http(e) => Some(client_error(e)),
            other => Some(PeerError::Protocol(other.to_string())),
        };
    }
    if let Some(http) = error.downcast_ref::<StreamableHttpError<reqwest13::Error>>() {
        return match http {
            StreamableHttpError::AuthRequired(_) => Some(PeerError::AuthFailed(401)),
            StreamableHttpError::InsufficientScope(_) => Some(PeerError::AuthFailed(403)),
            StreamableHttpError::HttpStatus(e) => Some(status(e.status)),
            // "HTTP 401 Unauthorized: …" (rmcp's text for an error without a challenge).
            StreamableHttpError::UnexpectedServerResponse(text) => Some(
                text.strip_prefix("HTTP ")
                    .and_then(|t| t.get(..3)?.parse().ok())
                    .map_or_else(
                        || PeerError::Protocol("the peer's answer is not MCP".into()),
                        status,
                    ),
            ),
            // Not linked as the error's source: looked at here.
            StreamableHttpError::Client(e) => Some(client_error(e)),
            StreamableHttpError::Io(_) => {
                Some(PeerError::Unreachable("the connection broke".into()))
            }
            StreamableHttpError::SessionExpired => Some(PeerError::Unreachable(
                "the peer no longer knows the session".into(),
            )),
            _ => Some(PeerError::Protocol(
                "the peer's answer is not Streamable HTTP MCP".into(),
            )),
        };
    }
    if let Some(client) = error.downcast_ref::<reqwest13::Error>() {
        return Some(client_error(client));
    }
    if error.downcast_ref::<std::io::Error>().is_some() {
        return Some(PeerError::Unreachable("the connection broke".into()));
    }
    None
}

/// A failed HTTP exchange: refused by the guard, or why the peer was not reached.
fn client_error(error: &reqwest13::Error) -> PeerError {
    let refused = std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .find_map(|e| e.downcast_ref::<Refused>());
    if let Some(refused) = refused {
        return PeerError::Refused(refused.to_string());
    }
    PeerError::Unreachable(
        if error.is_timeout() {
            "timed out"
        } else if error.is_connect() {
            "connection failed"
        } else {
            "the connection broke"
        }
        .into(),
    )
}

/// A peer's HTTP error status.
fn status(code: u16) -> PeerError {
    match code {
        401 | 403 => PeerError::AuthFailed(code),
        429 | 500..=599 => PeerError::Unreachable(format!("the peer answered HTTP {code}")),
        _ => PeerError::Protocol(format!("the peer answered HTTP {code}")),
    }
}
