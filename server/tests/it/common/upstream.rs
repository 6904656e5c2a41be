//! A real upstream on loopback for tool calls: it records every request it receives and
//! answers like a small REST API. Paths it knows:
//! - `/oauth/token`: a client-credentials token endpoint (counts the tokens it hands out);
//! - `/status/<code>`: answers that status, echoing the request's `Authorization`;
//! - `/redirect?to=<url>`: a 302 to `to`;
//! - `/big`: two megabytes; `/slow`: answers after five seconds;
//! - anything else: 200 with the request as JSON, unless [`Upstream::expect`] set what
//!   credentials the path needs and the request lacks them (401).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{OriginalUri, State},
    http::{HeaderMap, Method, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde_json::{Value, json};

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HashMap<String, String>,
    pub body: String,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    /// path → (header or `?param`, exact value) the path requires.
    expect: Mutex<HashMap<String, (String, String)>>,
    tokens_issued: Mutex<u32>,
}

#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

/// The client id and secret `/oauth/token` accepts.
pub const OAUTH_CLIENT: (&str, &str) = ("client-7", "client-secret-7x9");

impl Upstream {
    pub async fn start() -> Upstream {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Upstream { addr, shared }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests to `path` must carry `header` (or `?param`) with exactly `value`.
    pub fn expect(&self, path: &str, header: &str, value: &str) {
        self.shared.expect.lock().unwrap().insert(
            path.to_owned(),
            (header.to_ascii_lowercase(), value.to_owned()),
        );
    }

    /// Every request received so far to `path`.
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        let seen = self.shared.seen.lock().unwrap();
        seen.iter().filter(|s| s.path == path).cloned().collect()
    }

    pub fn tokens_issued(&self) -> u32 {
        *self.shared.tokens_issued.lock().unwrap()
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    shared.seen.lock().unwrap().push(seen.clone());
    let path = seen.path.as_str();
    if path == "/oauth/token" {
        return token(&shared, &seen);
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let status = StatusCode::from_u16(code.parse().unwrap()).unwrap();
        let echo = seen
            .headers
            .get("authorization")
            .cloned()
            .unwrap_or_default();
        return (status, format!("refused; you sent {echo}")).into_response();
    }
    if path == "/redirect" {
        let to = seen
            .query
            .as_deref()
            .unwrap_or("")
            .trim_start_matches("to=");
        return Redirect::to(to).into_response();
    }
    if path == "/big" {
        return "x".repeat(2 << 20).into_response();
    }
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
        return "late".into_response();
    }
    let expected = shared.expect.lock().unwrap().get(path).cloned();
    if let Some((name, value)) = expected {
        let given = match name.strip_prefix('?') {
            Some(param) => query_param(seen.query.as_deref(), param),
            None => seen.headers.get(&name).cloned(),
        };
        if given.as_deref() != Some(value.as_str()) {
            return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
        }
    }
    let body: Value = serde_json::from_str(&seen.body).unwrap_or(Value::Null);
    Json(json!({
        "method": seen.method,
        "query": seen.query,
        "body": body,
        "data": [{"name": "alpha"}, {"name": "beta"}],
    }))
    .into_response()
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

fn token(shared: &Shared, seen: &Seen) -> Response {
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", OAUTH_CLIENT.0, OAUTH_CLIENT.1))
    );
    if seen.headers.get("authorization") != Some(&basic)
        || !seen.body.contains("grant_type=client_credentials")
    {
        return (StatusCode::UNAUTHORIZED, "bad client").into_response();
    }
    let mut issued = shared.tokens_issued.lock().unwrap();
    *issued += 1;
    Json(json!({"access_token": format!("access-{issued}"), "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}
