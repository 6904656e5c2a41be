//! The peer client (`federation::peer::Peers`) against real MCP servers on loopback:
//! discovery of every page, the bearer sent exactly, a wrong one reported as such, a peer
//! that goes down (unreachable, then the circuit fails calls at once) and comes back,
//! `list_changed` heard, the legacy SSE transport (our own `/servers/{id}/sse`), and the
//! outbound guard.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use app::entities::{
    common::AuthType,
    gateway::{Gateway, Transport},
};
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::{
    ServiceExt,
    model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams},
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use server::{
    config::Settings,
    crypto::{Cipher, Plaintext},
    federation::peer::{CircuitPolicy, PeerError, Peers},
};
use uuid::Uuid;

use super::mcp::{create, seed};
use crate::common::{SECRET, TestApp, TestDb, mcp_peer::McpPeer, on_each_backend};

fn cipher() -> Arc<Cipher> {
    Arc::new(Cipher::new(&SecretString::from(SECRET)))
}

fn loopback() -> Settings {
    Settings {
        allow_private_networks: true,
        tool_timeout_secs: 5,
        ..Settings::default()
    }
}

fn peers() -> Peers {
    Peers::new(&loopback(), cipher())
}

/// A stored-looking gateway for `url`, with a bearer `token` if given.
pub fn gateway(url: &str, transport: Transport, token: Option<&str>) -> Gateway {
    let mut gateway = Gateway {
        id: Some(Uuid::new_v4()),
        name: Some("peer".into()),
        url: Some(url.into()),
        transport,
        ..Gateway::default()
    };
    if let Some(token) = token {
        let mut fields = Map::new();
        fields.insert("Authorization".into(), json!(format!("Bearer {token}")));
        gateway.auth_type = Some(AuthType::Bearer);
        gateway.auth_value = Some(cipher().encrypt(&Plaintext(fields)));
    }
    gateway
}

/// The first content item's text.
fn text(result: &rmcp::model::CallToolResult) -> String {
    let value = serde_json::to_value(result).unwrap();
    value["content"][0]["text"].as_str().unwrap().to_owned()
}

fn args(value: Value) -> Map<String, Value> {
    let Value::Object(map) = value else {
        panic!("arguments are an object")
    };
    map
}

/// `greet` with `who: Ada` answers `greeting`, `uri` reads `content`, and a ping answers.
async fn prompt_and_resource(
    peers: &Peers,
    gw: &Gateway,
    (greeting, uri, content): (&str, &str, &str),
) {
    let prompt = peers
        .get_prompt(gw, "greet", args(json!({"who": "Ada"})))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&prompt.messages[0]).unwrap()["content"]["text"],
        greeting
    );
    let read = peers.read_resource(gw, uri).await.unwrap();
    assert_eq!(
        serde_json::to_value(&read.contents[0]).unwrap()["text"],
        content
    );
    peers.ping(gw).await.unwrap();
}

#[tokio::test]
async fn discovery_lists_every_page_and_calls_reuse_one_session() {
    let peer = McpPeer::start(5, None).await;
    let peers = peers();
    let gw = gateway(&peer.url(), Transport::StreamableHttp, None);
    let found = peers.discover(&gw).await.unwrap();
    // Five tools on three pages of two; three prompts and resources on two pages each.
    let tools: Vec<String> = found.tools.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(tools, ["tool-0", "tool-1", "tool-2", "tool-3", "tool-4"]);
    assert_eq!(found.prompts.len(), 3);
    let uris: Vec<&str> = found.resources.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(uris, ["peer://a", "peer://b", "peer://c"]);
    assert_eq!(found.capabilities["tools"]["listChanged"], true);

    let result = peers
        .call_tool(&gw, "tool-3", args(json!({"x": "y"})))
        .await
        .unwrap();
    assert_eq!(text(&result), r#"tool-3 ran with {"x":"y"}"#);
    prompt_and_resource(
        &peers,
        &gw,
        ("greet Ada", "peer://b", "content of peer://b"),
    )
    .await;
    assert_eq!(
        peer.calls()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["tool-3", "prompt:greet", "read:peer://b"]
    );
    assert_eq!(peer.sessions(), 1, "discovery's session served every call");

    // An MCP error from the peer is a protocol error naming it, and the session stays.
    let refused = peers.call_tool(&gw, "fail", Map::new()).await.unwrap_err();
    assert!(
        matches!(&refused, PeerError::Protocol(m) if m.contains("refuses")),
        "{refused:?}"
    );
    peers.call_tool(&gw, "tool-0", Map::new()).await.unwrap();
    assert_eq!(peer.sessions(), 1);

    // Forgotten: the next call connects again.
    peers.forget(gw.id.unwrap()).await;
    peers.call_tool(&gw, "tool-1", Map::new()).await.unwrap();
    assert_eq!(peer.sessions(), 2);
}

#[tokio::test]
async fn the_bearer_is_sent_exactly_and_a_wrong_one_is_auth_failed() {
    let token = "peer-token-4f9a2c";
    let peer = McpPeer::start(1, Some(token)).await;
    let peers = peers();
    let good = gateway(&peer.url(), Transport::StreamableHttp, Some(token));
    peers.discover(&good).await.unwrap();
    peers.call_tool(&good, "tool-0", Map::new()).await.unwrap();
    let seen = peer.authorizations();
    assert!(!seen.is_empty());
    let expected = format!("Bearer {token}");
    assert!(
        seen.iter().all(|a| a.as_deref() == Some(expected.as_str())),
        "{seen:?}"
    );

    let wrong = gateway(
        &peer.url(),
        Transport::StreamableHttp,
        Some("not-the-token"),
    );
    let error = peers.discover(&wrong).await.unwrap_err();
    assert!(matches!(error, PeerError::AuthFailed(401)), "{error:?}");
    assert!(!error.to_string().contains("not-the-token"));
    let error = peers
        .call_tool(&wrong, "tool-0", Map::new())
        .await
        .unwrap_err();
    assert!(matches!(error, PeerError::AuthFailed(401)), "{error:?}");
    assert_eq!(peer.calls().len(), 1, "only the good call ran");
}

#[tokio::test]
async fn a_peer_down_is_unreachable_then_fails_at_once_and_works_again_when_back() {
    let mut peer = McpPeer::start(1, None).await;
    let backoff = Duration::from_millis(800);
    let policy = CircuitPolicy {
        threshold: 3,
        backoff,
        max_backoff: Duration::from_secs(5),
    };
    let peers = Peers::with_circuit(&loopback(), cipher(), policy);
    let gw = gateway(&peer.url(), Transport::StreamableHttp, None);
    peers.discover(&gw).await.unwrap();
    peers.call_tool(&gw, "tool-0", Map::new()).await.unwrap();

    peer.down();
    for attempt in 0..3 {
        let error = peers
            .call_tool(&gw, "tool-0", Map::new())
            .await
            .unwrap_err();
        assert!(
            matches!(error, PeerError::Unreachable(_)),
            "attempt {attempt}: {error:?}"
        );
    }
    let started = Instant::now();
    let error = peers
        .call_tool(&gw, "tool-0", Map::new())
        .await
        .unwrap_err();
    assert!(matches!(error, PeerError::CircuitOpen(_)), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "failed fast, not after a timeout: {:?}",
        started.elapsed()
    );
    assert!(error.to_string().contains("next attempt in"));

    peer.up().await;
    tokio::time::sleep(backoff).await;
    let result = peers
        .call_tool(&gw, "tool-0", args(json!({"x": "back"})))
        .await
        .unwrap();
    assert_eq!(text(&result), r#"tool-0 ran with {"x":"back"}"#);
    peers.call_tool(&gw, "tool-0", Map::new()).await.unwrap();
}

#[tokio::test]
async fn list_changed_from_the_peer_reaches_list_changes() {
    let peer = McpPeer::start(1, None).await;
    let peers = peers();
    let mut changes = peers.list_changes();
    let gw = gateway(&peer.url(), Transport::StreamableHttp, None);
    peers.discover(&gw).await.unwrap();
    // The session's notification stream opens beside the requests.
    tokio::time::sleep(Duration::from_millis(300)).await;
    peer.tools_changed().await;
    let heard = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("a change within 5 s")
        .unwrap();
    assert_eq!(heard, gw.id.unwrap());
}

#[tokio::test]
async fn the_legacy_sse_transport_discovers_and_calls_our_own_sse_endpoint() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let token = app.admin_token().await;
    let alpha = seed(&app, &token, "http://127.0.0.1:9").await;
    let peers = peers();
    let gw = gateway(
        &app.url(&format!("/servers/{alpha}/sse")),
        Transport::Sse,
        Some(&token),
    );
    let found = peers.discover(&gw).await.unwrap();
    let tools: Vec<String> = found.tools.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(tools, ["echo"]);
    assert_eq!(found.prompts[0].name, "greet");
    assert_eq!(found.resources.len(), 2, "templates are not resources");
    prompt_and_resource(&peers, &gw, ("Hello Ada!", "docs://readme", "# Read me")).await;

    let wrong = gateway(&gw.url.clone().unwrap(), Transport::Sse, Some("wrong"));
    let error = peers.discover(&wrong).await.unwrap_err();
    assert!(matches!(error, PeerError::AuthFailed(401)), "{error:?}");
}

#[tokio::test]
async fn private_peers_are_refused_unless_allowed() {
    let peer = McpPeer::start(1, None).await;
    let strict = Peers::new(&Settings::default(), cipher());
    let gw = gateway(&peer.url(), Transport::StreamableHttp, None);
    let error = strict.discover(&gw).await.unwrap_err();
    assert!(matches!(error, PeerError::Refused(_)), "{error:?}");
    let by_name = gateway(
        &format!("http://localhost:{}/mcp", peer.addr.port()),
        Transport::StreamableHttp,
        None,
    );
    let error = strict.discover(&by_name).await.unwrap_err();
    assert!(matches!(error, PeerError::Refused(_)), "{error:?}");
    assert_eq!(peer.sessions(), 0);
}

/// End to end: a gateway entity, discovered by its lifecycle, its tool linked into a
/// virtual server and called through our MCP endpoint by an rmcp client: the peer
/// receives the call under its own name, with the gateway's token.
#[tokio::test]
async fn a_federated_tool_is_called_through_a_virtual_server_with_the_peers_token() {
    on_each_backend(|db| async move {
        let peer_token = "peer-secret-e2e-77";
        let mut peer = McpPeer::start(2, Some(peer_token)).await;
        let app = TestApp::spawn_with(db, |s| s.allow_private_networks = true).await;
        let token = app.admin_token().await;
        let body = json!({"name": "Peer One", "url": peer.url(), "transport": "STREAMABLEHTTP",
                          "auth": {"type": "bearer", "token": peer_token},
                          "passthrough_headers": ["X-Tenant", "Authorization"]});
        let created = create(&app, &token, "/gateways", body).await;
        let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
        let stored: Gateway = app.store.get_entity(id).await.unwrap().unwrap();
        assert!(stored.auth_value.is_some(), "the token is stored encrypted");

        // The gateway's lifecycle connects it once it is created and stores what the peer
        // offers (a discovery of our own here would race it).
        let mut counts = (0, 0, 0);
        for _ in 0..100 {
            let health = app.store.gateway_health(id).await.unwrap();
            counts = (health.tools, health.prompts, health.resources);
            if health.status == app::federation::PeerStatus::Reachable && counts == (2, 3, 3) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(counts, (2, 3, 3));
        let server = json!({"name": "fed", "tool_ids": ["peer-one-tool-1"],
                            "prompt_ids": ["peer-one-greet"], "resource_ids": ["peer://a"]});
        create(&app, &token, "/servers", server).await;

        // The caller's X-Tenant goes along (listed); its Authorization (our token) never does.
        let mut headers = std::collections::HashMap::new();
        headers.insert(
            HeaderName::from_static("x-tenant"),
            HeaderValue::from_static("acme"),
        );
        let config = StreamableHttpClientTransportConfig::with_uri(app.url("/servers/fed/mcp"))
            .auth_header(&token)
            .custom_headers(headers);
        let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
        let tools = client.list_all_tools().await.unwrap();
        assert_eq!(tools[0].name, "peer-one-tool-1");
        let params =
            CallToolRequestParams::new("peer-one-tool-1").with_arguments(args(json!({"x": "hi"})));
        let result = client.call_tool(params).await.unwrap();
        assert_eq!(text(&result), r#"tool-1 ran with {"x":"hi"}"#);
        assert_eq!(peer.calls(), [("tool-1".to_owned(), json!({"x": "hi"}))]);
        assert!(
            peer.tenants().contains(&"acme".to_owned()),
            "passed through"
        );
        let expected = format!("Bearer {peer_token}");
        let seen = peer.authorizations();
        assert!(
            seen.iter().all(|a| a.as_deref() == Some(expected.as_str())),
            "{seen:?}"
        );
        let prompt = client
            .get_prompt(
                GetPromptRequestParams::new("peer-one-greet")
                    .with_arguments(args(json!({"who": "Ada"}))),
            )
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(&prompt.messages[0]).unwrap()["content"]["text"],
            "greet Ada"
        );
        let read = client
            .read_resource(ReadResourceRequestParams::new("peer://a"))
            .await
            .unwrap();
        assert_eq!(
            serde_json::to_value(&read.contents[0]).unwrap()["text"],
            "content of peer://a"
        );

        // The peer down: an error result naming the gateway, not a protocol failure.
        peer.down();
        let params = CallToolRequestParams::new("peer-one-tool-1");
        let result = client.call_tool(params).await.unwrap();
        assert_eq!(result.is_error, Some(true));
        let said = text(&result);
        assert!(
            said.starts_with("gateway `Peer One`: unreachable"),
            "{said}"
        );
        assert!(!said.contains(peer_token));
        client.cancel().await.unwrap();
    })
    .await;
}
