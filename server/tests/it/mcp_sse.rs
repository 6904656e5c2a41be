//! The legacy HTTP+SSE transport at `/servers/{id}/sse`, spoken over real HTTP: the
//! `endpoint` event, messages POSTed (202) and answered on the stream by the same
//! handler, the same door, and a session gone with its stream.

use std::time::Duration;

use serde_json::{Value, json};

use super::mcp::{create, seed};
use crate::common::{TestApp, on_each_backend};

/// An open event stream, read event by event.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// The next event's name and data.
    async fn next(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    block
                        .lines()
                        .filter_map(|l| l.strip_prefix(name))
                        .map(str::trim_start)
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                let (event, data) = (field("event:"), field("data:"));
                if !data.is_empty() {
                    return (event, data);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.response.chunk())
                .await
                .expect("an event within 5 s")
                .unwrap()
                .expect("the stream is open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next `message` event's JSON.
    async fn message(&mut self) -> Value {
        let (event, data) = self.next().await;
        assert_eq!(event, "message");
        serde_json::from_str(&data).unwrap()
    }
}

async fn open(app: &TestApp, path: &str, token: &str) -> (Events, String) {
    let response = app
        .client()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut events = Events {
        response,
        buffer: String::new(),
    };
    let (event, endpoint) = events.next().await;
    assert_eq!(event, "endpoint");
    (events, endpoint)
}

async fn post(app: &TestApp, endpoint: &str, token: &str, body: Value) -> u16 {
    let response = app
        .client()
        .post(app.url(endpoint))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

#[tokio::test]
async fn the_sse_transport_serves_a_server_through_the_same_handler_and_door() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let token = app.admin_token().await;
        seed(&app, &token, "http://127.0.0.1:9").await;
        create(&app, &token, "/servers", json!({"name": "gamma"})).await;

        let (mut events, endpoint) = open(&app, "/servers/alpha/sse", &token).await;
        assert!(
            endpoint.starts_with("/servers/alpha/message?session_id="),
            "{endpoint}"
        );
        let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2024-11-05", "capabilities": {},
            "clientInfo": {"name": "old", "version": "1"}}});
        assert_eq!(post(&app, &endpoint, &token, initialize).await, 202);
        let answer = events.message().await;
        assert_eq!(answer["id"], 1);
        assert_eq!(answer["result"]["serverInfo"]["name"], "mcpgateway");
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert_eq!(post(&app, &endpoint, &token, initialized).await, 202);
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        assert_eq!(post(&app, &endpoint, &token, list.clone()).await, 202);
        let answer = events.message().await;
        assert_eq!(answer["id"], 2);
        assert_eq!(answer["result"]["tools"][0]["name"], "echo");
        assert_eq!(answer["result"]["tools"].as_array().unwrap().len(), 1);

        // The door: no token, a foreign Origin, the session on another server's path.
        let anonymous = app.client().get(app.url("/servers/alpha/sse")).send().await;
        assert_eq!(anonymous.unwrap().status(), 401);
        let foreign = app
            .client()
            .get(app.url("/servers/alpha/sse"))
            .bearer_auth(&token)
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(foreign.status(), 403);
        let other = endpoint.replace("/alpha/", "/gamma/");
        assert_eq!(post(&app, &other, &token, list.clone()).await, 404);
        let unknown = app
            .client()
            .get(app.url("/servers/beta/sse"))
            .bearer_auth(&token);
        assert_eq!(unknown.send().await.unwrap().status(), 404);

        // The stream closed, the session is gone.
        drop(events);
        let mut status = 202;
        for _ in 0..50 {
            status = post(&app, &endpoint, &token, list.clone()).await;
            if status == 404 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(status, 404);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn sse_sessions_beyond_the_cap_get_429_until_one_closes() {
    let app = TestApp::spawn_with(crate::common::TestDb::sqlite(), |s| {
        s.mcp_sse_sessions = 1;
    })
    .await;
    let token = app.admin_token().await;
    seed(&app, &token, "http://127.0.0.1:9").await;
    let (first, _) = open(&app, "/servers/alpha/sse", &token).await;
    let second = app
        .client()
        .get(app.url("/servers/alpha/sse"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 429);
    drop(first);
    let mut status = 429;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let again = app
            .client()
            .get(app.url("/servers/alpha/sse"))
            .bearer_auth(&token);
        status = again.send().await.unwrap().status().as_u16();
        if status == 200 {
            break;
        }
    }
    assert_eq!(status, 200);
    app.stop().await;
}
