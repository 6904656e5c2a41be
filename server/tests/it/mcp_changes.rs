//! `notifications/*/list_changed`: a session hears, after the commit, of REST writes and
//! imports that change its server's lists, and of nothing else.

use std::time::Duration;

use app::model::EntityKind;
use rmcp::{
    ClientHandler, RoleClient, ServiceExt,
    service::{NotificationContext, RunningService},
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use secrecy::SecretString;
use serde_json::{Value, json};
use server::{
    crypto::Cipher,
    entities::changes::LISTENER_NAME,
    store::Store,
    transfer::{
        export::{ExportOptions, export_to},
        import::{ConflictStrategy, import},
    },
};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::mcp::{create, seed};
use crate::common::{SECRET, TestApp, TestDb, on_each_backend};

/// A client that records each `list_changed` it is sent.
struct Listener(UnboundedSender<&'static str>);

impl ClientHandler for Listener {
    async fn on_tool_list_changed(&self, _: NotificationContext<RoleClient>) {
        let _ = self.0.send("tools");
    }
    async fn on_prompt_list_changed(&self, _: NotificationContext<RoleClient>) {
        let _ = self.0.send("prompts");
    }
    async fn on_resource_list_changed(&self, _: NotificationContext<RoleClient>) {
        let _ = self.0.send("resources");
    }
}

async fn listen(
    app: &TestApp,
    path: &str,
    token: &str,
) -> (
    RunningService<RoleClient, Listener>,
    UnboundedReceiver<&'static str>,
) {
    let (tx, rx) = unbounded_channel();
    let config = StreamableHttpClientTransportConfig::with_uri(app.url(path)).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    let client = Listener(tx).serve(transport).await.expect("MCP initialize");
    // A request answered means the session runs; the notification stream opens beside it.
    client.list_all_tools().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    (client, rx)
}

/// The notifications received within `wait`.
async fn heard(rx: &mut UnboundedReceiver<&'static str>, wait: Duration) -> Vec<&'static str> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(n)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        got.push(n);
    }
    got
}

/// The gateway's export with a new tool `fresh` added to server `alpha`.
async fn file_adding_fresh_to_alpha(app: &TestApp) -> Vec<u8> {
    let mut bytes = Vec::new();
    export_to(&app.store, &ExportOptions::default(), "t", "t", &mut bytes)
        .await
        .unwrap();
    let mut file: Value = serde_json::from_slice(&bytes).unwrap();
    let tools = file["entities"]["tools"].as_array_mut().unwrap();
    let mut fresh = tools[0].clone();
    fresh["name"] = json!("fresh");
    fresh["is_active"] = json!(true);
    tools.push(fresh);
    for server in file["entities"]["servers"].as_array_mut().unwrap() {
        if server["name"] == "alpha" {
            server["tool_ids"]
                .as_array_mut()
                .unwrap()
                .push(json!("fresh"));
        }
    }
    serde_json::to_vec(&file).unwrap()
}

#[tokio::test]
async fn sessions_hear_list_changed_for_their_servers_changes_only() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let token = app.admin_token().await;
        seed(&app, &token, "http://127.0.0.1:9").await;
        let gamma = json!({"name": "gamma", "tool_ids": ["hidden"]});
        create(&app, &token, "/servers", gamma).await;
        let (alpha, mut alpha_rx) = listen(&app, "/servers/alpha/mcp", &token).await;
        let (gamma, mut gamma_rx) = listen(&app, "/servers/gamma/mcp", &token).await;

        set_echo_active(&app, &token, false).await;
        assert_eq!(
            heard(&mut alpha_rx, Duration::from_secs(3)).await,
            ["tools"]
        );
        let tools = alpha.list_all_tools().await.unwrap();
        assert!(tools.is_empty(), "{tools:?}");

        let file = file_adding_fresh_to_alpha(&app).await;
        let options = crate::import::options(ConflictStrategy::Update);
        let cipher = Cipher::new(&SecretString::from(SECRET));
        import(&app.store, &cipher, &file, &options, "i@example.com")
            .await
            .unwrap();
        let after_import = heard(&mut alpha_rx, Duration::from_secs(3)).await;
        assert!(after_import.contains(&"tools"), "{after_import:?}");
        let tools = alpha.list_all_tools().await.unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, ["fresh"]);

        assert_eq!(
            heard(&mut gamma_rx, Duration::from_millis(500)).await,
            Vec::<&str>::new()
        );
        alpha.cancel().await.unwrap();
        gamma.cancel().await.unwrap();
        app.stop().await;
    })
    .await;
}

/// Sets `echo` active or not through `app`'s REST API.
async fn set_echo_active(app: &TestApp, token: &str, active: bool) {
    let echo = app
        .store
        .id_by_key(EntityKind::Tool, "echo")
        .await
        .unwrap()
        .unwrap();
    let response = app
        .client()
        .patch(app.url(&format!("/tools/{echo}")))
        .bearer_auth(token)
        .json(&json!({"is_active": active}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// The process id of a connection listening for changes on `store`'s database that is
/// not one of `known`, once there is one (waited for up to 10 s). Every replica listens
/// (its federation lifecycle subscribes to the feed), all under one application name.
async fn new_listener(store: &Store, known: &[i32]) -> i32 {
    let Store::Postgres(pool) = store else {
        panic!("PostgreSQL only")
    };
    for _ in 0..100 {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(LISTENER_NAME)
        .fetch_all(pool)
        .await
        .unwrap();
        if let Some(pid) = pids.into_iter().find(|p| !known.contains(p)) {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no new connection listens for changes");
}

#[tokio::test]
async fn a_session_on_one_replica_hears_list_changed_for_a_write_on_another() {
    let Some(db) = TestDb::postgres().await else {
        eprintln!(
            "SKIPPED: list_changed across replicas needs PostgreSQL (set TEST_DATABASE_URL); \
             SQLite serves from one process"
        );
        return;
    };
    let a = TestApp::spawn(db).await;
    let a_listener = new_listener(&a.store, &[]).await;
    let b = a.replica(|_| {}).await;
    let token = a.admin_token().await;
    seed(&a, &token, "http://127.0.0.1:9").await;
    let (alpha, mut rx) = listen(&b, "/servers/alpha/mcp", &token).await;
    let first = new_listener(&b.store, &[a_listener]).await;

    set_echo_active(&a, &token, false).await;
    assert_eq!(heard(&mut rx, Duration::from_secs(5)).await, ["tools"]);
    let tools = alpha.list_all_tools().await.unwrap();
    assert!(tools.is_empty(), "{tools:?}");

    // The listening connection is cut: B listens again and tells its sessions that
    // their lists may have changed (notifications may have been missed meanwhile).
    let Store::Postgres(pool) = &a.store else {
        unreachable!()
    };
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(first)
        .execute(pool)
        .await
        .unwrap();
    let after_cut = heard(&mut rx, Duration::from_secs(5)).await;
    assert!(after_cut.contains(&"tools"), "{after_cut:?}");
    // B listens again on a new connection (A's was never cut).
    new_listener(&b.store, &[a_listener, first]).await;

    set_echo_active(&a, &token, true).await;
    assert_eq!(heard(&mut rx, Duration::from_secs(5)).await, ["tools"]);
    let tools = alpha.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 1, "{tools:?}");

    // `mcpgateway import` in a process of its own: its change reaches B before it exits.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fresh.json");
    std::fs::write(&file, file_adding_fresh_to_alpha(&a).await).unwrap();
    let mut cli = crate::common::harness::cli(&a.db);
    cli.arg("import").arg(&file);
    let imported = tokio::task::spawn_blocking(move || cli.output().unwrap())
        .await
        .unwrap();
    assert!(imported.status.success(), "{imported:?}");
    let after_import = heard(&mut rx, Duration::from_secs(5)).await;
    assert!(after_import.contains(&"tools"), "{after_import:?}");
    let tools = alpha.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), 2, "{tools:?}");
    alpha.cancel().await.unwrap();
    b.stop().await;
    a.stop().await;
}
