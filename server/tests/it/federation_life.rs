//! Federation's lifecycle, health and replicas (issue #17): a peer gateway's health in
//! the REST entity, `/metrics` and the audit log; the lease that lets one replica at a
//! time check a gateway.

use std::time::Duration;

use app::{
    entities::Gateway,
    federation::{GatewayHealth, PeerStatus},
};
use serde_json::{Value, json};
use server::{
    federation::{
        health::{self, Contact, Counts},
        lease,
    },
    invoke::metrics::Metrics,
};

use rmcp::{
    ServiceExt,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};

use crate::common::{
    TestApp, TestDb,
    harness::{self, Api, api_for, cli, serve},
    mcp_peer::McpPeer,
    on_each_backend,
};

/// A gateway stored through REST; inactive, so that no replica contacts it by itself.
async fn quiet_gateway(api: &Api, name: &str) -> Gateway {
    let (status, body) = api
        .send(api.post("/gateways").json(&json!({
            "name": name, "url": "http://127.0.0.1:9/mcp", "transport": "STREAMABLEHTTP",
            "is_active": false, "auth": {"type": "bearer", "token": "peer-token-not-shown"},
        })))
        .await;
    assert_eq!(status, 201, "{body}");
    serde_json::from_value(body).unwrap()
}

async fn health_over_rest(api: &Api, id: uuid::Uuid) -> GatewayHealth {
    let (status, body) = api.send(api.get(&format!("/gateways/{id}"))).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body["health"].clone()).expect("a gateway shows its health")
}

#[tokio::test]
async fn a_gateways_health_shows_in_rest_metrics_and_one_audit_row_per_change() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        let gateway = quiet_gateway(&api, "peer-health").await;
        let id = gateway.id.unwrap();
        assert_eq!(health_over_rest(&api, id).await, GatewayHealth::default(), "unknown until contacted");

        let metrics = Metrics::default();
        let found = Counts { tools: 12, prompts: 1, resources: 0 };
        let up = health::record(&app.store, &metrics, &gateway, Contact::Answered(Some(found)))
            .await
            .unwrap();
        assert_eq!(up.status, PeerStatus::Reachable);
        assert_eq!(up.describe(), "connected, 12 tools, 1 prompt discovered");
        let shown = health_over_rest(&api, id).await;
        assert_eq!(shown, up);
        assert!(shown.last_seen.is_some() && shown.checked_at.is_some());

        // A ping keeps the discovery's counts; a second answer is no change.
        let pinged = health::record(&app.store, &metrics, &gateway, Contact::Answered(None))
            .await
            .unwrap();
        let refused = Contact::Failed(PeerStatus::Unreachable, "connection refused".into());
        let down = health::record(&app.store, &metrics, &gateway, refused).await.unwrap();
        assert_eq!((down.tools, down.last_seen), (12, pinged.last_seen), "what it last found stays");
        assert_eq!(down.last_error.as_deref(), Some("connection refused"));

        let (status, list) = api
            .send(api.get("/gateways?include_inactive=true"))
            .await;
        assert_eq!(status, 200);
        let listed = &list["items"][0];
        assert_eq!(listed["health"]["status"], "unreachable", "{list}");
        assert_eq!(listed["health"]["last_error"], "connection refused");

        let audit = app.store.audit_entries(Some(health::STATUS_ACTION), 10).await.unwrap();
        let changes: Vec<(Value, Value)> = audit
            .iter()
            .rev()
            .map(|e| (e.details.0["from"].clone(), e.details.0["to"].clone()))
            .collect();
        assert_eq!(
            changes,
            [(json!("unknown"), json!("reachable")), (json!("reachable"), json!("unreachable"))],
            "one row per change, none for the repeated answer"
        );
        assert!(audit.iter().all(|e| e.target_name.as_deref() == Some("peer-health")));
        assert!(metrics.render().contains(
            r#"mcpgateway_gateway_status_changes_total{gateway="peer-health",status="unreachable"} 1"#
        ));

        let text = api
            .get("/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains(r#"mcpgateway_gateway_up{gateway="peer-health"} 0"#), "{text}");
        assert!(
            text.contains(r#"mcpgateway_gateway_status{gateway="peer-health",status="unreachable"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"mcpgateway_gateway_discovered{gateway="peer-health",kind="tools"} 12"#),
            "{text}"
        );
        assert!(!text.contains("peer-token-not-shown"));

        // Deleting the gateway takes its health (and lease) with it.
        let (status, _) = api
            .send(
                api.client
                    .delete(format!("{}/gateways/{id}", api.base))
                    .bearer_auth(&api.token),
            ).await;
        assert_eq!(status, 204);
        assert!(app.store.gateway_healths(&[id]).await.unwrap().is_empty());
        assert!(!app.store.acquire_lease(id, "a", Duration::from_secs(5)).await.unwrap());
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_lease_has_one_owner_until_it_expires_or_is_released() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        let id = quiet_gateway(&api, "peer-lease").await.id.unwrap();
        let store = &app.store;
        let ttl = lease::ttl(Duration::from_secs(1));
        assert_eq!(ttl, Duration::from_secs(3));

        assert!(store.acquire_lease(id, "replica-a", ttl).await.unwrap());
        assert!(
            !store.acquire_lease(id, "replica-b", ttl).await.unwrap(),
            "held by a"
        );
        assert!(
            store.acquire_lease(id, "replica-a", ttl).await.unwrap(),
            "a renews"
        );
        assert_eq!(
            store.lease_owner(id).await.unwrap().as_deref(),
            Some("replica-a")
        );

        // Both ask at once, many times: exactly one holds it each time.
        let short = Duration::from_millis(300);
        store.release_lease(id, "replica-a").await.unwrap();
        for _ in 0..5 {
            let (a, b) = tokio::join!(
                store.acquire_lease(id, "replica-a", short),
                store.acquire_lease(id, "replica-b", short)
            );
            assert!(a.unwrap() ^ b.unwrap(), "exactly one owner");
            let owner = store.lease_owner(id).await.unwrap().unwrap();
            tokio::time::sleep(short + Duration::from_millis(50)).await;
            let other = if owner == "replica-a" {
                "replica-b"
            } else {
                "replica-a"
            };
            assert!(
                store.acquire_lease(id, other, short).await.unwrap(),
                "taken after expiry"
            );
            store.release_lease(id, other).await.unwrap();
        }
        assert_eq!(store.lease_owner(id).await.unwrap(), None, "released");
        app.stop().await;
    })
    .await;
}

const PEER_TOKEN: &str = "peer-bearer-original-7f3a";

/// Polls `probe` every 100 ms until `done` holds (at most 30 s): what it returned last.
async fn eventually<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    what: &str,
    mut probe: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let value = probe().await;
        if done(&value) {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {value:?} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A gateway for `peer` created over REST, checked every second.
async fn peer_gateway(api: &Api, name: &str, url: &str, token: &str) -> uuid::Uuid {
    let (status, body) = api
        .send(api.post("/gateways").json(&json!({
            "name": name, "url": url, "transport": "STREAMABLEHTTP",
            "auth": {"type": "bearer", "token": token},
            "health_check": {"interval": 1, "timeout": 2, "retries": 0},
        })))
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().parse().unwrap()
}

/// The names GET /tools lists (active tools, at most 1000).
async fn tool_names(api: &Api) -> Vec<String> {
    let (status, body) = api.send(api.get("/tools?limit=1000")).await;
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<String> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn status_of(health: &GatewayHealth) -> PeerStatus {
    health.status
}

#[tokio::test]
async fn a_peer_created_over_rest_is_connected_health_checked_and_its_tools_go_with_it() {
    on_each_backend(|db| async move {
        let mut peer = McpPeer::start(3, Some(PEER_TOKEN)).await;
        let app = TestApp::spawn_with(db, |s| s.allow_private_networks = true).await;
        let api = Api::new(&app).await;
        let id = peer_gateway(&api, "Peer A", &peer.url(), PEER_TOKEN).await;
        let federated = ["peer-a-tool-0", "peer-a-tool-1", "peer-a-tool-2"];
        eventually(
            "the peer's tools in GET /tools",
            || tool_names(&api),
            |names| federated.iter().all(|f| names.iter().any(|n| n == f)),
        )
        .await;
        let health = eventually(
            "reachable",
            || health_over_rest(&api, id),
            |h| h.status == PeerStatus::Reachable,
        )
        .await;
        assert_eq!((health.tools, health.prompts, health.resources), (3, 3, 3));
        assert_eq!(health.last_error, None);
        assert_eq!(peer.sessions(), 1, "one replica, one session");

        // The peer goes down: unreachable, with why; then back: reachable again.
        peer.down();
        let down = eventually(
            "unreachable",
            || health_over_rest(&api, id),
            |h| status_of(h) == PeerStatus::Unreachable,
        )
        .await;
        assert!(down.last_error.is_some(), "{down:?}");
        assert_eq!(down.tools, 3, "what it offered stays known");
        peer.up().await;
        eventually(
            "reachable again",
            || health_over_rest(&api, id),
            |h| h.status == PeerStatus::Reachable && h.checked_at > down.checked_at,
        )
        .await;

        // `list_changed` from the peer: discovered again (a new session), no status change.
        let sessions = eventually(
            "rediscovered after coming back",
            || async { peer.sessions() },
            |n| *n >= 1,
        )
        .await;
        peer.tools_changed().await;
        eventually(
            "rediscovered on list_changed",
            || async { peer.sessions() },
            |n| *n > sessions,
        )
        .await;

        let audit = app
            .store
            .audit_entries(Some(health::STATUS_ACTION), 10)
            .await
            .unwrap();
        let changes: Vec<(String, String)> = audit
            .iter()
            .rev()
            .map(|e| {
                (
                    e.details.0["from"].to_string(),
                    e.details.0["to"].to_string(),
                )
            })
            .collect();
        let expected = [
            ("unknown", "reachable"),
            ("reachable", "unreachable"),
            ("unreachable", "reachable"),
        ]
        .map(|(a, b)| (format!("\"{a}\""), format!("\"{b}\"")));
        assert_eq!(changes, expected, "one audit row per status change");
        let rows = serde_json::to_string(&audit).unwrap();
        assert!(!rows.contains(PEER_TOKEN));

        // Deleted: its discovered tools go with it.
        let (status, _) = api
            .send(
                api.client
                    .delete(format!("{}/gateways/{id}", api.base))
                    .bearer_auth(&api.token),
            )
            .await;
        assert_eq!(status, 204);
        let names = tool_names(&api).await;
        assert!(names.iter().all(|n| !n.starts_with("peer-a-")), "{names:?}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_wrong_token_is_auth_failed_and_verify_rejects_it() {
    let db = crate::common::TestDb::sqlite();
    let peer = McpPeer::start(1, Some(PEER_TOKEN)).await;
    let app = TestApp::spawn_with(db, |s| s.allow_private_networks = true).await;
    let api = Api::new(&app).await;
    let id = peer_gateway(&api, "peer-wrong", &peer.url(), "not-the-token-9c1e").await;
    let health = eventually(
        "auth_failed",
        || health_over_rest(&api, id),
        |h| h.status == PeerStatus::AuthFailed,
    )
    .await;
    assert!(
        health.last_error.as_deref().unwrap().contains("401"),
        "{health:?}"
    );
    assert!(
        !health
            .last_error
            .as_deref()
            .unwrap()
            .contains("not-the-token")
    );
    assert!(tool_names(&api).await.is_empty(), "nothing discovered");

    // verify: initialize with the stored credentials; rejected, named.
    let (status, report) = api
        .send(
            api.post("/admin/verify")
                .json(&json!({"types": ["gateway"]})),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["rejected"], 1, "{report}");
    assert_eq!(report["results"][0]["verdict"], "rejected");
    assert_eq!(report["results"][0]["status"], 401);
    assert_eq!(
        report["summary"],
        "Verified 1 gateway: 0 ok, 1 rejected (peer-wrong: 401)"
    );
    // The CLI says the same and exits 1; with the right token, ok.
    let out = tokio::task::spawn_blocking({
        let mut cmd = cli(&app.db);
        cmd.env("MCPGATEWAY_ALLOW_PRIVATE_NETWORKS", "true")
            .args(["verify", "--type", "gateway"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("REJECTED    gateway peer-wrong 401"),
        "{stdout}"
    );
    assert!(!stdout.contains("not-the-token"));
    let (status, _) = api
        .send(
            api.client
                .patch(format!("{}/gateways/{id}", api.base))
                .bearer_auth(&api.token)
                .json(&json!({"auth": {"type": "bearer", "token": PEER_TOKEN}})),
        )
        .await;
    assert_eq!(status, 200);
    // The update reconnects at once: reachable, its tool discovered.
    eventually(
        "reachable after the fix",
        || health_over_rest(&api, id),
        |h| h.status == PeerStatus::Reachable,
    )
    .await;
    let (_, report) = api
        .send(
            api.post("/admin/verify")
                .json(&json!({"types": ["gateway"]})),
        )
        .await;
    assert_eq!(report["summary"], "Verified 1 gateway: 1 ok", "{report}");
    app.stop().await;
}

/// The key gateway B encrypts with (A, in-process, uses the tests' `SECRET`).
const KEY_B: &str = "gateway-b-key-0123456789abcdef-BBBB";

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_exported_peer_is_connected_by_the_importing_gateway_and_called_with_the_original_token()
{
    let mut peer = McpPeer::start(1, Some(PEER_TOKEN)).await;
    // A (key SECRET): a peer that needs a bearer token, one that is down, and a virtual
    // server using the peer's tool.
    let a = TestApp::spawn_with(TestDb::sqlite(), |s| s.allow_private_networks = true).await;
    let api_a = Api::new(&a).await;
    peer_gateway(&api_a, "Peer X", &peer.url(), PEER_TOKEN).await;
    let down = format!("http://127.0.0.1:{}/mcp", closed_port());
    peer_gateway(&api_a, "Peer Down", &down, "tok-down-1").await;
    eventually(
        "A discovered the peer",
        || tool_names(&api_a),
        |n| n.iter().any(|n| n == "peer-x-tool-0"),
    )
    .await;
    let (status, body) = api_a
        .send(
            api_a
                .post("/servers")
                .json(&json!({"name": "story", "tool_ids": ["peer-x-tool-0"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let file = api_a.export("").await;
    let text = String::from_utf8(file.clone()).unwrap();
    assert!(!text.contains(PEER_TOKEN), "credentials leave encrypted");

    // B (key B), another process on its own database: the import stores the gateways in
    // its transaction, connects after the commit and reports each first connection.
    let db_b = TestDb::sqlite();
    let (_b, url_b) = serve(
        &db_b,
        &[
            ("AUTH_ENCRYPTION_SECRET", KEY_B),
            ("MCPGATEWAY_ALLOW_PRIVATE_NETWORKS", "true"),
        ],
    );
    let api_b = api_for(&db_b, url_b.clone()).await;
    let (status, job) = api_b
        .start_import(file.clone(), &[("source_secret", crate::common::SECRET)])
        .await;
    assert_eq!(status, 202, "{job}");
    let done = api_b.finished(job["job_id"].as_str().unwrap()).await;
    assert_eq!(done.status, app::jobs::JobState::Completed, "{done:?}");
    let mut reported: Vec<(String, PeerStatus, String)> = done
        .gateways
        .iter()
        .map(|g| (g.name.clone(), g.status, g.message.clone()))
        .collect();
    reported.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(reported.len(), 2, "{reported:?}");
    assert_eq!(
        reported[1],
        (
            "Peer X".into(),
            PeerStatus::Reachable,
            "connected, 1 tool, 3 prompts, 3 resources discovered".into()
        )
    );
    assert_eq!(
        (&reported[0].0, reported[0].1),
        (&"Peer Down".to_owned(), PeerStatus::Unreachable)
    );
    assert!(reported[0].2.starts_with("unreachable: "), "{reported:?}");

    // A call of the federated tool through B's virtual server reaches the peer with the
    // original token, decrypted from B's re-encrypted copy.
    let mcp_token = api_b.token.clone();
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("{url_b}/servers/story/mcp"))
            .auth_header(mcp_token);
    let client =
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .expect("MCP initialize");
    let before = peer.authorizations().len();
    let call =
        serde_json::from_value(json!({"name": "peer-x-tool-0", "arguments": {"x": "hi"}})).unwrap();
    let result = client.call_tool(call).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(peer.calls().last().unwrap().0, "tool-0");
    let sent = peer.authorizations()[before..].to_vec();
    assert!(!sent.is_empty());
    assert!(
        sent.iter()
            .all(|a| a.as_deref() == Some(&format!("Bearer {PEER_TOKEN}"))),
        "{sent:?}"
    );
    client.cancel().await.ok();

    // The CLI's import (no gateway running there) connects too, and says so.
    let db_c = TestDb::sqlite();
    let path = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(path.path(), &file).unwrap();
    let out = tokio::task::spawn_blocking({
        let mut cmd = cli(&db_c);
        cmd.env("AUTH_ENCRYPTION_SECRET", KEY_B)
            .env("MCPGATEWAY_SOURCE_SECRET", crate::common::SECRET)
            .env("MCPGATEWAY_ALLOW_PRIVATE_NETWORKS", "true")
            .arg("import")
            .arg(path.path());
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Gateway `Peer X`: connected, 1 tool, 3 prompts, 3 resources discovered"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Gateway `Peer Down`: unreachable: "),
        "{stdout}"
    );
    assert!(!stdout.contains(PEER_TOKEN));
    peer.down();
    a.stop().await;
}

#[tokio::test]
async fn two_replicas_on_postgres_have_one_lease_owner_and_the_other_takes_over() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let peer = McpPeer::start(1, None).await;
    // Replica 1: a `serve` process, killed later without a chance to give its lease up.
    let (mut first, url) = serve(&db, &[("MCPGATEWAY_ALLOW_PRIVATE_NETWORKS", "true")]);
    let api = api_for(&db, url).await;
    let id = peer_gateway(&api, "peer-ha", &peer.url(), "unused").await;
    let store = db.store().await;
    let owner = eventually(
        "replica 1 holds the lease",
        || store.lease_owner(id),
        |o| matches!(o, Ok(Some(_))),
    )
    .await
    .unwrap()
    .unwrap();
    eventually(
        "reachable",
        || store.gateway_health(id),
        |h| matches!(h, Ok(h) if h.status == PeerStatus::Reachable),
    )
    .await
    .unwrap();

    // Replica 2, in this process: it serves, but the lease stays with replica 1; the peer
    // sees one session only, for several check intervals.
    let second = TestApp::spawn_with(db.alias(), |s| s.allow_private_networks = true).await;
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            store.lease_owner(id).await.unwrap().as_deref(),
            Some(owner.as_str())
        );
    }
    assert_eq!(peer.sessions(), 1, "only the owner connects");

    // Replica 2 serves calls all the same: a federated tool in a virtual server, called
    // through replica 2's endpoint, reaches the peer (on replica 2's own pooled session).
    let (status, body) = api
        .send(
            api.post("/servers")
                .json(&json!({"name": "ha", "tool_ids": ["peer-ha-tool-0"]})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let token = second.admin_token().await;
    let config = StreamableHttpClientTransportConfig::with_uri(second.url("/servers/ha/mcp"))
        .auth_header(token);
    let client =
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .expect("MCP initialize on replica 2");
    let call = serde_json::from_value(json!({"name": "peer-ha-tool-0", "arguments": {"x": "hi"}}))
        .unwrap();
    let result = client.call_tool(call).await.unwrap();
    assert_ne!(result.is_error, Some(true), "{result:?}");
    assert_eq!(peer.calls().last().unwrap().0, "tool-0");
    client.cancel().await.ok();
    assert_eq!(
        store.lease_owner(id).await.unwrap().as_deref(),
        Some(owner.as_str()),
        "serving a call takes no lease"
    );
    let sessions = peer.sessions();
    let checked = store.gateway_health(id).await.unwrap().checked_at;

    // Replica 1 dies: after its lease expires, replica 2 takes over and checks on.
    harness::kill9(&mut first);
    let taken = eventually(
        "replica 2 takes the lease",
        || store.lease_owner(id),
        |o| matches!(o, Ok(Some(o)) if *o != owner),
    )
    .await;
    assert!(taken.is_ok());
    eventually(
        "replica 2 checks",
        || store.gateway_health(id),
        |h| matches!(h, Ok(h) if h.status == PeerStatus::Reachable && h.checked_at > checked),
    )
    .await
    .unwrap();
    assert_eq!(
        peer.sessions(),
        sessions + 1,
        "the new owner connected once"
    );
    store.close().await;
    second.stop().await;
}

/// An import of many gateways that do not answer: the CLI lists the first twenty, counts
/// the rest by status, logs none of rmcp's client errors, and links a server to an item of
/// one of them that is not discovered yet (a placeholder found by the gateway's slug).
#[tokio::test]
async fn a_cli_import_of_many_unanswering_gateways_lists_twenty_and_counts_the_rest() {
    const GATEWAYS: usize = 45;
    let gateways: Vec<Value> = (0..GATEWAYS)
        .map(|i| {
            json!({"name": format!("gw-{i:02}"), "transport": "STREAMABLEHTTP",
                   "url": format!("http://127.0.0.1:9/g{i}/mcp")})
        })
        .collect();
    let file = json!({"version": "2025-03-26", "exported_at": "2026-12-05T00:00:00Z", "entities": {
        "gateways": gateways,
        "servers": [{"name": "srv", "tool_ids": ["gw-07-echo"]}],
    }});
    let db = TestDb::sqlite();
    let path = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(path.path(), serde_json::to_vec(&file).unwrap()).unwrap();
    let out = tokio::task::spawn_blocking({
        let mut cmd = cli(&db);
        cmd.env("MCPGATEWAY_ALLOW_PRIVATE_NETWORKS", "true")
            .env_remove("RUST_LOG")
            .arg("import")
            .arg(path.path());
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout} {stderr}");
    let listed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("Gateway `"))
        .collect();
    assert_eq!(listed.len(), 20, "{stdout}");
    assert!(listed[0].starts_with("Gateway `gw-00`: "), "{stdout}");
    let rest = stdout
        .lines()
        .find(|l| l.starts_with("… and 25 more gateways: "))
        .unwrap_or_else(|| panic!("no count of the rest: {stdout}"));
    let counted: usize = rest["… and 25 more gateways: ".len()..]
        .split(" (")
        .next()
        .unwrap()
        .split(", ")
        .map(|part| part.split(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(counted, 25, "{rest}");
    assert!(!stderr.contains("rmcp::transport::worker"), "{stderr}");

    let store = db.store().await;
    let echo = store
        .id_by_key(app::model::EntityKind::Tool, "gw-07-echo")
        .await
        .unwrap()
        .expect("a placeholder of gw-07's echo");
    let echo: app::entities::Tool = store.get_entity(echo).await.unwrap().unwrap();
    assert_eq!(echo.federation.unwrap().gateway, "gw-07");
}
