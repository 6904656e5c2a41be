//! The tool-call engine: a REST tool's upstream called with its stored credentials.
//!
//! [`Invoker::call_tool`] validates the arguments against the tool's input schema,
//! decrypts its credentials in memory for this call only, sends the request through a
//! client whose resolver refuses private addresses ([`guard`]), reads a bounded answer
//! and maps it to a result. What went wrong upstream is an error *result* the MCP client
//! sees; only what the caller did wrong, or a tool this gateway cannot call, is an `Err`.

pub(crate) mod answer;
mod args;
pub mod credentials;
pub mod guard;
pub mod metrics;
pub mod verify;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use app::entities::tool::{IntegrationType, RequestType, Tool};
use reqwest::{Method, header::HeaderValue};
use secrecy::ExposeSecret;
use serde_json::{Map, Value};
use serde_json_path::JsonPath;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::{config::Settings, crypto::Cipher};
use credentials::{Credentials, TokenCache};
use guard::{Guard, GuardedResolver, OutboundAllow, Refused};
use metrics::{Metrics, Outcome};

/// The longest per-tool `timeout` honoured, in seconds.
const MAX_TOOL_TIMEOUT_SECS: u32 = 600;
/// Same-host redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// A tool call's result, as MCP's `CallToolResult` carries it.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutcome {
    pub text: String,
    pub structured: Option<Value>,
    pub is_error: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// Arguments do not match the input schema: every problem, each naming its JSON Pointer.
    #[error("invalid arguments")]
    InvalidArguments(Vec<app::validation::FieldError>),
    /// The tool's integration type cannot be called by this gateway (MCP/A2A tools, STDIO, SSE…).
    #[error("{0}")]
    NotCallable(String),
}

/// Calls tools' upstreams with their stored credentials. Cheap to clone (Arcs inside).
#[derive(Clone)]
pub struct Invoker {
    inner: Arc<Inner>,
}

struct Inner {
    cipher: Arc<Cipher>,
    client: reqwest::Client,
    guard: Arc<Guard>,
    tokens: TokenCache,
    default_timeout: Duration,
    max_response: usize,
    per_upstream: usize,
    /// One semaphore per upstream `host:port`: bounded concurrency per upstream.
    upstreams: Mutex<HashMap<String, Arc<Semaphore>>>,
    metrics: Metrics,
}

/// How a call went wrong upstream: an error result, never an `Err`.
enum Failure {
    Refused(String),
    Timeout(Duration),
    Unreachable(&'static str),
    TooLarge(usize),
    Status(ToolOutcome),
    Token(String),
}

impl Failure {
    fn outcome(&self) -> Outcome {
        match self {
            Failure::Refused(_) => Outcome::Refused,
            Failure::Timeout(_) => Outcome::Timeout,
            Failure::Unreachable(_) | Failure::Token(_) => Outcome::Unreachable,
            Failure::TooLarge(_) => Outcome::TooLarge,
            Failure::Status(_) => Outcome::UpstreamStatus,
        }
    }

    fn into_result(self) -> ToolOutcome {
        let text = match self {
            Failure::Status(outcome) => return outcome,
            Failure::Refused(why) => why,
            Failure::Timeout(after) => {
                format!("the upstream did not answer within {} s", after.as_secs())
            }
            Failure::Unreachable(why) => format!("the upstream could not be reached ({why})"),
            Failure::TooLarge(max) => {
                format!("the upstream's answer is larger than the limit of {max} bytes")
            }
            Failure::Token(why) => format!("no OAuth access token could be had: {why}"),
        };
        ToolOutcome {
            text,
            structured: None,
            is_error: true,
        }
    }
}

impl Invoker {
    pub fn new(cipher: Arc<Cipher>, settings: &Settings) -> Invoker {
        let (guard, client) = guarded_client(settings);
        Invoker {
            inner: Arc::new(Inner {
                cipher,
                client,
                guard,
                tokens: TokenCache::default(),
                default_timeout: Duration::from_secs(settings.tool_timeout_secs.into()),
                max_response: usize::try_from(settings.tool_response_max_kb)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(1024),
                per_upstream: usize::try_from(settings.upstream_concurrency.max(1))
                    .unwrap_or(usize::MAX),
                upstreams: Mutex::default(),
                metrics: Metrics::default(),
            }),
        }
    }

    /// The call counts, errors and latencies, in Prometheus' text format.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Validates `arguments` against the tool's input schema, decrypts its credentials in memory,
    /// sends the request (guarded), and maps the answer. Upstream failures (non-2xx, timeout,
    /// refused target) are `Ok(ToolOutcome { is_error: true, .. })` with a safe message;
    /// `Err` is only for what the MCP caller did wrong or what cannot be called at all.
    pub async fn call_tool(
        &self,
        tool: &Tool,
        arguments: Map<String, Value>,
    ) -> Result<ToolOutcome, InvokeError> {
        let name = tool.name.clone().unwrap_or_default();
        let span = tracing::info_span!(
            "tool_call",
            tool = %name,
            upstream = tracing::field::Empty,
            upstream_status = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self.call(tool, arguments).instrument(span.clone()).await;
        let outcome = match &result {
            Ok((_, outcome)) => *outcome,
            Err(InvokeError::InvalidArguments(_)) => Outcome::InvalidArguments,
            Err(InvokeError::NotCallable(_)) => Outcome::NotCallable,
        };
        span.record("outcome", outcome.as_str());
        span.in_scope(|| {
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "tool call ended"
            );
        });
        self.inner.metrics.record(&name, outcome, started.elapsed());
        result.map(|(result, _)| result)
    }

    async fn call(
        &self,
        tool: &Tool,
        arguments: Map<String, Value>,
    ) -> Result<(ToolOutcome, Outcome), InvokeError> {
        let call = self.prepare(tool, arguments)?;
        let timeout = tool
            .timeout
            .filter(|t| *t > 0)
            .map_or(self.inner.default_timeout, |t| {
                Duration::from_secs(t.min(MAX_TOOL_TIMEOUT_SECS).into())
            });
        let sent = tokio::time::timeout(timeout, self.send(&call)).await;
        Ok(match sent {
            Ok(Ok(outcome)) => (outcome, Outcome::Ok),
            Ok(Err(failure)) => {
                let outcome = failure.outcome();
                (failure.into_result(), outcome)
            }
            Err(_) => (Failure::Timeout(timeout).into_result(), Outcome::Timeout),
        })
    }

    /// Everything that can be refused before a byte is sent.
    fn prepare(&self, tool: &Tool, arguments: Map<String, Value>) -> Result<Call, InvokeError> {
        if tool.integration_type != IntegrationType::REST {
            return Err(InvokeError::NotCallable(format!(
                "{:?} tools are not called by this gateway, only REST tools",
                tool.integration_type
            )));
        }
        let method = match tool.request_type {
            RequestType::Get => Method::GET,
            RequestType::Post => Method::POST,
            RequestType::Put => Method::PUT,
            RequestType::Delete => Method::DELETE,
            RequestType::Patch => Method::PATCH,
            other => {
                return Err(InvokeError::NotCallable(format!(
                    "a REST tool with request_type {other:?} cannot be called"
                )));
            }
        };
        let url = tool
            .url
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok())
            .ok_or_else(|| InvokeError::NotCallable("the tool has no valid url".into()))?;
        let arguments = Value::Object(arguments);
        let problems = args::check(&tool.input_schema, &arguments).map_err(|e| {
            InvokeError::NotCallable(format!("the tool's input_schema is not usable: {e}"))
        })?;
        if !problems.is_empty() {
            return Err(InvokeError::InvalidArguments(problems));
        }
        let filter = match tool.jsonpath_filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => Some(JsonPath::parse(text).map_err(|e| {
                InvokeError::NotCallable(format!("the tool's jsonpath_filter is not usable: {e}"))
            })?),
        };
        let credentials = Credentials::of(tool, &self.inner.cipher)
            .map_err(|e| InvokeError::NotCallable(e.to_string()))?;
        let Value::Object(arguments) = arguments else {
            unreachable!("built from a map above")
        };
        Ok(Call {
            method,
            url,
            arguments,
            credentials,
            filter,
            structured: tool.output_schema.is_some(),
        })
    }

    /// The guarded request and its bounded answer.
    async fn send(&self, call: &Call) -> Result<ToolOutcome, Failure> {
        let secrets = call.credentials.secrets();
        let (request, turns) = self.request(call, &call.method, true).await?;
        let _turn = turns
            .acquire_owned()
            .await
            .expect("upstream semaphores are never closed");
        let response = request.send().await.map_err(|e| failure_of(&e))?;
        tracing::Span::current().record("upstream_status", response.status().as_u16());
        let status = response.status();
        if status.is_redirection() {
            // Same-host redirects were followed; this one leads elsewhere.
            return Err(Failure::Status(ToolOutcome {
                text: format!(
                    "upstream answered {status}: a redirect to another host, not followed"
                ),
                structured: None,
                is_error: true,
            }));
        }
        let body = read_bounded(response, self.inner.max_response).await?;
        if status.is_success() {
            Ok(answer::success(
                &body,
                call.filter.as_ref(),
                call.structured,
            ))
        } else {
            Err(Failure::Status(answer::failure(status, &body, &secrets)))
        }
    }

    /// The request for `call`, with its credentials (and, when `with_arguments`, its
    /// arguments), after the target's checks and with a turn at the upstream taken.
    async fn request(
        &self,
        call: &Call,
        method: &Method,
        with_arguments: bool,
    ) -> Result<(reqwest::RequestBuilder, Arc<Semaphore>), Failure> {
        if !matches!(call.url.scheme(), "http" | "https") {
            return Err(Failure::Refused(format!(
                "only http and https upstreams are called, not {}",
                call.url.scheme()
            )));
        }
        self.inner
            .guard
            .check_literal(&call.url)
            .map_err(|r| Failure::Refused(r.to_string()))?;
        let upstream = format!(
            "{}:{}",
            call.url.host_str().unwrap_or_default(),
            call.url.port_or_known_default().unwrap_or_default()
        );
        tracing::Span::current().record("upstream", upstream.as_str());
        let mut headers = call.credentials.header_map().map_err(Failure::Refused)?;
        if let Some(grant) = &call.credentials.oauth {
            let token = self
                .inner
                .tokens
                .token(&self.inner.client, grant)
                .await
                .map_err(|e| match &e {
                    credentials::TokenError::Unreachable(source) => match failure_of(source) {
                        Failure::Refused(why) => Failure::Token(why),
                        _ => Failure::Token(e.to_string()),
                    },
                    _ => Failure::Token(e.to_string()),
                })?;
            let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
                .map_err(|_| Failure::Token("the access token is not a valid header".into()))?;
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let mut query: Vec<(String, String)> = call
            .credentials
            .query
            .iter()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
            .collect();
        let mut request = self
            .inner
            .client
            .request(method.clone(), call.url.clone())
            .headers(headers);
        if with_arguments {
            if matches!(*method, Method::GET | Method::DELETE) {
                query.extend(query_pairs(&call.arguments));
            } else {
                request = request.json(&call.arguments);
            }
        }
        if !query.is_empty() {
            request = request.query(&query);
        }
        Ok((request, self.upstream_turns(&upstream)))
    }

    /// The semaphore bounding calls in flight to `upstream`.
    fn upstream_turns(&self, upstream: &str) -> Arc<Semaphore> {
        let mut map = self.inner.upstreams.lock().expect("not poisoned");
        map.entry(upstream.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.inner.per_upstream)))
            .clone()
    }
}

/// The outbound guard `settings` ask for, and an HTTP client that resolves names through
/// it (no proxy, the connect timeout, same-host redirects only). Peer sessions
/// (`federation::peer`) use the same guard.
pub fn guarded_client(settings: &Settings) -> (Arc<Guard>, reqwest::Client) {
    let guard = Arc::new(outbound_guard(settings));
    let client = reqwest::Client::builder()
        .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
        // A proxy would resolve the name itself, past the guard.
        .no_proxy()
        .connect_timeout(connect_timeout(settings))
        .redirect(same_host_redirects())
        .user_agent(USER_AGENT)
        .build()
        .expect("a rustls client with a custom resolver always builds");
    (guard, client)
}

/// The outbound rules from `allow_private_networks` and `outbound_allow`.
pub fn outbound_guard(settings: &Settings) -> Guard {
    let allow = OutboundAllow::parse(&settings.outbound_allow).unwrap_or_default();
    Guard::new(settings.allow_private_networks, allow)
}

pub fn connect_timeout(settings: &Settings) -> Duration {
    Duration::from_secs(settings.outbound_connect_timeout_secs.into())
}

/// The `User-Agent` of every outbound request.
pub const USER_AGENT: &str = concat!("mcpgateway/", env!("CARGO_PKG_VERSION"));

/// A call, checked and with its credentials decrypted.
struct Call {
    method: Method,
    url: reqwest::Url,
    arguments: Map<String, Value>,
    credentials: Credentials,
    filter: Option<JsonPath>,
    structured: bool,
}

/// Redirects are followed only on the same host (a redirect elsewhere is the 3xx answer).
fn same_host_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_host = attempt
            .previous()
            .first()
            .is_some_and(|first| first.host_str() == attempt.url().host_str());
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if same_host {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Arguments as query parameters: strings as they are, lists repeated, the rest as JSON.
fn query_pairs(arguments: &Map<String, Value>) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut pairs = Vec::new();
    for (name, value) in arguments {
        match value {
            Value::Null => {}
            Value::Array(items) => pairs.extend(items.iter().map(|i| (name.clone(), text(i)))),
            other => pairs.push((name.clone(), text(other))),
        }
    }
    pairs
}

/// The failure a client error stands for. Its text is never used: it holds the URL, and
/// the URL may hold query-parameter credentials.
fn failure_of(error: &reqwest::Error) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Failure::Refused(refused.to_string());
        }
        source = e.source();
    }
    if error.is_timeout() {
        Failure::Unreachable("timed out")
    } else if error.is_connect() {
        Failure::Unreachable("connection failed")
    } else if error.is_redirect() {
        Failure::Unreachable("too many redirects")
    } else {
        Failure::Unreachable("the connection broke")
    }
}

/// The body, or [`Failure::TooLarge`] as soon as it passes `max` bytes.
async fn read_bounded(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, Failure> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(Failure::TooLarge(max));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failure_of(&e))? {
        if body.len() + chunk.len() > max {
            return Err(Failure::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
