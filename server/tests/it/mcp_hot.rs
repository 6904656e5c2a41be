//! What a `tools/call` reads (the token's grant, the server, the tool) is kept in memory
//! (`server::hot`); these stories check that no change is missed because of it: an edit,
//! a deactivation or a revocation made here is seen by the very next call, one made by
//! another process (the CLI) or another replica on the same database within the bound.

use std::time::{Duration, Instant};

use app::model::EntityKind;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use server::hot::FRESH_FOR;

use super::mcp::{connect, create};
use crate::common::{ADMIN_EMAIL, TestApp, on_each_backend, upstream::Upstream};

fn call(name: &str) -> CallToolRequestParams {
    serde_json::from_value(json!({"name": name, "arguments": {"q": "x"}})).unwrap()
}

/// `PATCH /{plural}/{id}` of the entity with this key; answers 200.
async fn patch(app: &TestApp, token: &str, kind: EntityKind, key: &str, body: Value) {
    let id = app.store.id_by_key(kind, key).await.unwrap().unwrap();
    let response = app
        .client()
        .patch(app.url(&format!("/{}/{id}", kind.plural())))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// A tool `echo` calling `up`'s `/one` with bearer `tok-1`, on server `alpha`.
async fn seed(app: &TestApp, token: &str, up: &Upstream) {
    let tool = json!({"name": "echo", "url": up.url("/one"), "request_type": "POST",
                      "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
                      "auth": {"type": "bearer", "token": "tok-1"}});
    create(app, token, "/tools", tool).await;
    create(
        app,
        token,
        "/servers",
        json!({"name": "alpha", "tool_ids": ["echo"]}),
    )
    .await;
}

/// The `Authorization` header of the last request `up` saw on `path`.
fn last_auth(up: &Upstream, path: &str) -> Option<String> {
    let seen = up.seen(path);
    seen.last()?.headers.get("authorization").cloned()
}

#[tokio::test]
async fn an_edited_or_deactivated_tool_or_server_is_seen_by_the_next_call() {
    on_each_backend(|db| async move {
        let up = Upstream::start().await;
        let app = TestApp::spawn_with(db, |s| s.allow_private_networks = true).await;
        let token = app.admin_token().await;
        seed(&app, &token, &up).await;
        let client = connect(&app, "/servers/alpha/mcp", &token).await;
        let result = client.call_tool(call("echo")).await.unwrap();
        assert_ne!(result.is_error, Some(true), "{result:?}");
        assert_eq!(last_auth(&up, "/one"), Some("Bearer tok-1".into()));

        // A new URL and a new credential: the next call uses both.
        let edit = json!({"url": up.url("/two"), "auth": {"type": "bearer", "token": "tok-2"}});
        patch(&app, &token, EntityKind::Tool, "echo", edit).await;
        client.call_tool(call("echo")).await.unwrap();
        assert_eq!(up.seen("/one").len(), 1, "the old URL is not called again");
        assert_eq!(last_auth(&up, "/two"), Some("Bearer tok-2".into()));

        // A deactivated tool is unknown at once; active again, it is called again.
        patch(
            &app,
            &token,
            EntityKind::Tool,
            "echo",
            json!({"is_active": false}),
        )
        .await;
        let unknown = client.call_tool(call("echo")).await.unwrap_err();
        assert!(unknown.to_string().contains("unknown tool"), "{unknown}");
        patch(
            &app,
            &token,
            EntityKind::Tool,
            "echo",
            json!({"is_active": true}),
        )
        .await;
        client.call_tool(call("echo")).await.unwrap();
        assert_eq!(up.seen("/two").len(), 2);

        // A tool unlinked from the server is unknown there at once.
        patch(
            &app,
            &token,
            EntityKind::Server,
            "alpha",
            json!({"tool_ids": []}),
        )
        .await;
        let unlinked = client.call_tool(call("echo")).await.unwrap_err();
        assert!(unlinked.to_string().contains("unknown tool"), "{unlinked}");

        // A deactivated server's endpoint answers 404 at once.
        patch(
            &app,
            &token,
            EntityKind::Server,
            "alpha",
            json!({"tool_ids": ["echo"]}),
        )
        .await;
        client.call_tool(call("echo")).await.unwrap();
        patch(
            &app,
            &token,
            EntityKind::Server,
            "alpha",
            json!({"is_active": false}),
        )
        .await;
        assert!(client.call_tool(call("echo")).await.is_err());
        assert_eq!(up.seen("/two").len(), 3, "no call after the server went");
        let _ = client.cancel().await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_revoked_token_is_refused_by_the_next_call_here_or_from_the_cli() {
    on_each_backend(|db| async move {
        let up = Upstream::start().await;
        let app = TestApp::spawn_with(db, |s| s.allow_private_networks = true).await;
        let admin = app.admin_token().await;
        seed(&app, &admin, &up).await;
        let user = app.store.user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
        for name in ["here", "cli"] {
            let (_, token) = server::auth::create_api_token(&app.store, ADMIN_EMAIL, name, None)
                .await
                .unwrap();
            let client = connect(&app, "/servers/alpha/mcp", &token).await;
            client.call_tool(call("echo")).await.unwrap();
            client.call_tool(call("echo")).await.unwrap();
            let revoked_at = Instant::now();
            if name == "here" {
                assert!(app.store.revoke_token(user.id, name).await.unwrap());
            } else {
                let out = crate::common::harness::cli(&app.db)
                    .args(["token", "revoke", "--email", ADMIN_EMAIL, name])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            // Here (and from another process on SQLite): the very next call. From another
            // process on PostgreSQL: as soon as its notification arrives.
            let at_once = name == "here" || app.db.backend == "sqlite";
            let refused = refused_within(&client, revoked_at, at_once).await;
            assert!(
                refused,
                "{}: the token {name:?} still works",
                app.db.backend
            );
            let _ = client.cancel().await;
        }
        app.stop().await;
    })
    .await;
}

/// Whether `client`'s calls are refused: by the next one (`at_once`), or else within
/// [`FRESH_FOR`] (and a second of slack) after `since`.
async fn refused_within(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    since: Instant,
    at_once: bool,
) -> bool {
    loop {
        if client.call_tool(call("echo")).await.is_err() {
            return true;
        }
        if at_once || since.elapsed() > FRESH_FOR + Duration::from_secs(1) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn another_replicas_edit_and_revocation_are_seen_within_the_bound() {
    on_each_backend(|db| async move {
        let up = Upstream::start().await;
        let a = TestApp::spawn_with(db, |s| s.allow_private_networks = true).await;
        let b = a.replica(|s| s.allow_private_networks = true).await;
        let token = a.admin_token().await;
        seed(&a, &token, &up).await;
        let client = connect(&b, "/servers/alpha/mcp", &token).await;
        client.call_tool(call("echo")).await.unwrap();
        client.call_tool(call("echo")).await.unwrap();

        let edited_at = Instant::now();
        patch(
            &a,
            &token,
            EntityKind::Tool,
            "echo",
            json!({"url": up.url("/two")}),
        )
        .await;
        let bound = FRESH_FOR + Duration::from_secs(1);
        while up.seen("/two").is_empty() {
            assert!(
                edited_at.elapsed() < bound,
                "{}: replica b still calls the old URL",
                a.db.backend
            );
            client.call_tool(call("echo")).await.unwrap();
        }

        let user = a.store.user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
        let name = a.store.tokens_of(user.id).await.unwrap()[0].name.clone();
        let revoked_at = Instant::now();
        assert!(a.store.revoke_token(user.id, &name).await.unwrap());
        assert!(
            refused_within(&client, revoked_at, false).await,
            "{}: replica b still takes the revoked token",
            a.db.backend
        );
        let _ = client.cancel().await;
        b.stop().await;
        a.stop().await;
    })
    .await;
}
