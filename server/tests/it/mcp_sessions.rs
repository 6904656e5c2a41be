//! The Streamable HTTP sessions themselves, over raw HTTP: an idle session ends after
//! `mcp_session_idle_secs` (its streams close, its id gets 404, its place in the cap is
//! free again), a `DELETE` ends one at once, and a `list_changed` sent while no `GET`
//! stream is open waits for the next one.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::mcp::{create, initialize_body};
use crate::common::{TestApp, TestDb};

const PROTOCOL: &str = "2025-06-18";

/// A raw session on `/mcp`: initialized, no `GET` stream yet.
struct Raw<'a> {
    app: &'a TestApp,
    token: String,
    id: String,
}

impl<'a> Raw<'a> {
    async fn open(app: &'a TestApp, token: &str) -> Raw<'a> {
        let response = Raw::post_as(app, token, None, &initialize_body()).await;
        assert_eq!(response.status(), 200);
        let id = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let raw = Raw {
            app,
            token: token.to_owned(),
            id,
        };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(raw.post(&initialized).await.status(), 202);
        raw
    }

    async fn post_as(
        app: &TestApp,
        token: &str,
        session: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut request = app
            .client()
            .post(app.url("/mcp"))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(body);
        if let Some(id) = session {
            request = request
                .header("mcp-session-id", id)
                .header("mcp-protocol-version", PROTOCOL);
        }
        request.send().await.unwrap()
    }

    async fn post(&self, body: &Value) -> reqwest::Response {
        Raw::post_as(self.app, &self.token, Some(&self.id), body).await
    }

    async fn list_tools_status(&self) -> u16 {
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        self.post(&list).await.status().as_u16()
    }

    /// The session's `GET` stream.
    async fn stream(&self) -> reqwest::Response {
        let response = self
            .app
            .client()
            .get(self.app.url("/mcp"))
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &self.id)
            .header("mcp-protocol-version", PROTOCOL)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response
    }
}

/// What `stream` sends within `wait`, and whether it ended by then.
async fn read_for(stream: &mut reqwest::Response, wait: Duration) -> (String, bool) {
    let until = Instant::now() + wait;
    let mut text = String::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None) | Err(_)) => return (text, true),
            Err(_) => return (text, false),
        }
    }
}

#[tokio::test]
async fn an_idle_session_ends_after_its_idle_time_and_frees_its_place() {
    let app = TestApp::spawn_with(TestDb::sqlite(), |s| {
        s.mcp_sessions = 1;
        s.mcp_session_idle_secs = 1;
    })
    .await;
    let token = app.admin_token().await;
    let session = Raw::open(&app, &token).await;
    let mut stream = session.stream().await;
    // Held: the cap of one is reached.
    let refused = Raw::post_as(&app, &token, None, &initialize_body()).await;
    assert_eq!(refused.status(), 429);

    // An open GET stream with nothing to say is idle too: it ends with the session.
    let (_, ended) = read_for(&mut stream, Duration::from_secs(10)).await;
    assert!(ended, "the idle session's GET stream stayed open");
    assert_eq!(session.list_tools_status().await, 404);
    let fresh = Raw::post_as(&app, &token, None, &initialize_body()).await;
    assert_eq!(fresh.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_session_in_use_outlives_its_idle_time() {
    let app = TestApp::spawn_with(TestDb::sqlite(), |s| {
        s.mcp_session_idle_secs = 1;
    })
    .await;
    let token = app.admin_token().await;
    let session = Raw::open(&app, &token).await;
    // A request every half idle time, for three idle times.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(session.list_tools_status().await, 200);
    }
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_session_ends_its_get_stream_and_its_id() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let token = app.admin_token().await;
    let session = Raw::open(&app, &token).await;
    let mut stream = session.stream().await;
    let deleted = app
        .client()
        .delete(app.url("/mcp"))
        .bearer_auth(&token)
        .header("mcp-session-id", &session.id)
        .header("mcp-protocol-version", PROTOCOL)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let (_, ended) = read_for(&mut stream, Duration::from_secs(5)).await;
    assert!(ended, "the deleted session's GET stream stayed open");
    assert_eq!(session.list_tools_status().await, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_list_changed_sent_before_the_get_stream_opens_arrives_on_it() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let token = app.admin_token().await;
    let session = Raw::open(&app, &token).await;
    // The session watches the store from `initialized` on; no GET stream is open yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tool = json!({"name": "late", "url": "http://127.0.0.1:9/late", "request_type": "POST"});
    create(&app, &token, "/tools", tool).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut stream = session.stream().await;
    let (text, _) = read_for(&mut stream, Duration::from_secs(2)).await;
    assert!(
        text.contains("notifications/tools/list_changed"),
        "the held list_changed did not arrive: {text:?}"
    );
    // A second GET stream stays open beside the first (it hears only keep-alives).
    let mut second = session.stream().await;
    let (_, ended) = read_for(&mut second, Duration::from_millis(500)).await;
    assert!(!ended, "a second GET stream was closed");
    app.stop().await;
}
