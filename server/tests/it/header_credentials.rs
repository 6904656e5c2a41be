//! Credentials in tool headers and in URLs (issue #13, point 1), on SQLite and
//! PostgreSQL: sensitive headers are stored and exported as ContextForge's encrypted
//! envelopes and shown as `*****`, whether they come over REST, in an import file or
//! from records an older version stored in plaintext; URLs with `user:password@` are
//! refused with where credentials go; and a value sent in a credential field of the
//! wrong shape is never echoed in the 422 (point 3).

use app::entities::{
    Gateway, Tool,
    common::AuthType,
    tool::{HEADER_ENVELOPE, MASK},
};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use server::{
    crypto::Cipher,
    store::{Store, with_pool},
    transfer::import::{ImportOptions, import},
};
use uuid::Uuid;

use crate::common::{
    SECRET, TestApp, TestDb,
    harness::{Api, cli},
    on_each_backend,
};

fn cipher() -> Cipher {
    Cipher::new(&SecretString::from(SECRET))
}

/// The plaintext inside a stored header envelope.
fn opened(headers: &Map<String, Value>, name: &str) -> String {
    let blob = headers[name][HEADER_ENVELOPE]
        .as_str()
        .unwrap_or_else(|| panic!("{name} is not an envelope: {headers:?}"));
    cipher().decrypt(blob).unwrap().0["data"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Every `doc` of `table`, as the database holds it.
async fn raw_docs(store: &Store, table: &str) -> String {
    let sql = format!("SELECT CAST(doc AS TEXT) FROM {table}");
    let docs: Vec<String> = with_pool!(store, |pool| sqlx::query_scalar(sqlx::AssertSqlSafe(
        sql.clone()
    ))
    .fetch_all(pool)
    .await)
    .unwrap();
    docs.concat()
}

async fn stored_tool(store: &Store, id: &str) -> Tool {
    store
        .get_entity(id.parse::<Uuid>().unwrap())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn sensitive_headers_are_stored_and_exported_encrypted_and_shown_as_set() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        let body = json!({"name": "hdr", "url": "https://api.example.com/x", "headers": {
            "Authorization": "Bearer hdr-SENTINEL-1", "X-Api-Key": "xak-SENTINEL-2",
            "X-Auth-Token": "xat-SENTINEL-3", "Accept": "application/json"}});
        let (status, created) = api.send(api.post("/tools").json(&body)).await;
        assert_eq!(status, 201, "{created}");
        let shown = json!({"Authorization": MASK, "X-Api-Key": MASK, "X-Auth-Token": MASK, "Accept": "application/json"});
        assert_eq!(created["headers"], shown);
        let id = created["id"].as_str().unwrap().to_owned();

        let stored = stored_tool(&app.store, &id).await.headers;
        assert_eq!(opened(&stored, "Authorization"), "Bearer hdr-SENTINEL-1");
        assert_eq!(opened(&stored, "X-Api-Key"), "xak-SENTINEL-2");
        assert_eq!(opened(&stored, "X-Auth-Token"), "xat-SENTINEL-3");
        assert_eq!(stored["Accept"], "application/json", "other headers stay readable");
        assert!(!raw_docs(&app.store, "tools").await.contains("SENTINEL"));

        let (_, one) = api.send(api.get(&format!("/tools/{id}"))).await;
        let (_, list) = api.send(api.get("/tools")).await;
        assert_eq!(one["headers"], shown);
        assert_eq!(list["items"][0]["headers"], shown);
        let page = app
            .client()
            .get(app.url(&format!("/ui/tools/{id}")))
            .header("cookie", format!("mcpgw_session={}", app.session_cookie().await))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains(MASK) && !page.contains("SENTINEL"));

        // Sending back what was shown keeps the credentials; a new value replaces one.
        let patch = |body: Value| {
            app.client()
                .patch(app.url(&format!("/tools/{id}")))
                .bearer_auth(&api.token)
                .json(&body)
        };
        let (status, _) = api
            .send(patch(json!({"headers": one["headers"], "description": "d"})))
            .await;
        assert_eq!(status, 200);
        assert_eq!(stored_tool(&app.store, &id).await.headers, stored);
        let (status, patched) = api
            .send(patch(json!({"headers": {"X-Api-Key": "xak-SENTINEL-4"}})))
            .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["headers"], shown);
        let now = stored_tool(&app.store, &id).await.headers;
        assert_eq!(opened(&now, "X-Api-Key"), "xak-SENTINEL-4");
        assert_eq!(now["Authorization"], stored["Authorization"]);

        // Exports carry the envelopes; an import file's plaintext ones are sealed too.
        let export = String::from_utf8(api.export("?types=tools").await).unwrap();
        assert!(export.contains(HEADER_ENVELOPE) && !export.contains("SENTINEL"));
        let file = json!({"version": "2025-03-26", "exported_at": "2026-01-01T00:00:00Z",
            "entities": {"tools": [{"name": "from-file", "url": "https://b.example.com",
                "headers": {"Cookie": "sid=ck-SENTINEL-5", "X-Tenant": "t"}}]}});
        import(
            &app.store,
            &cipher(),
            &serde_json::to_vec(&file).unwrap(),
            &ImportOptions::default(),
            "test",
        )
        .await
        .unwrap();
        let imported: Tool = app
            .store
            .get_entity(app.store.id_by_key(app::model::EntityKind::Tool, "from-file").await.unwrap().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(opened(&imported.headers, "Cookie"), "sid=ck-SENTINEL-5");
        assert_eq!(imported.headers["X-Tenant"], "t");
        assert!(!raw_docs(&app.store, "tools").await.contains("SENTINEL"));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn urls_with_credentials_and_misshapen_credentials_are_refused_without_echo() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        let refused = [
            ("/tools", json!({"name": "t", "url": "https://user:pw-SENTINEL@api.example.com/x"}), "/url"),
            ("/gateways", json!({"name": "g", "url": "https://gw-SENTINEL@gw.example.com/sse"}), "/url"),
            ("/gateways", json!({"name": "g", "url": "https://gw.example.com/sse",
                "health_check": {"url": "https://u:hc-SENTINEL@gw.example.com/health"}}), "/health_check/url"),
            ("/tools", json!({"name": "t", "url": "https://api.example.com", "auth": "Bearer e1-SENTINEL"}), "/auth"),
            ("/tools", json!({"name": "t", "url": "https://api.example.com", "auth": {"type": "b-SENTINEL"}}), "/auth"),
            ("/tools", json!({"name": "t", "url": "https://api.example.com", "headers": "Bearer h-SENTINEL"}), "/headers"),
        ];
        for (path, body, pointer) in refused {
            let (status, answer) = api.send(api.post(path).json(&body)).await;
            assert_eq!(status, 422, "{body}: {answer}");
            let details = answer["error"]["details"].as_array().unwrap();
            let at = details[0]["pointer"].as_str().unwrap();
            assert!(at.starts_with(pointer), "{pointer}: {answer}");
            assert!(!answer.to_string().contains("SENTINEL"), "echoed: {answer}");
            if pointer.ends_with("url") {
                assert_eq!(details[0]["code"], "credentials_in_url");
                assert!(details[0]["message"].as_str().unwrap().contains("`auth`"), "{answer}");
            }
        }
        assert_eq!(raw_docs(&app.store, "tools").await, "", "nothing written");
        app.stop().await;
    })
    .await;
}

/// Writes a record as an older version did: straight to the store, nothing sealed.
async fn stored_as_before<E: app::entities::Entity>(store: &Store, record: Value) {
    let mut entity: E = serde_json::from_value(record).unwrap();
    store.insert_entity(&mut entity).await.unwrap();
}

#[tokio::test]
async fn plaintext_stored_before_is_encrypted_when_the_store_is_opened_and_again_when_the_rules_change()
 {
    on_each_backend(|db: TestDb| async move {
        let store = db.store().await;
        stored_as_before::<Tool>(&store, json!({"name": "old-tool",
            "url": "https://us%40r:url-SENTINEL-1@api.example.com/x",
            "headers": {"Authorization": "Bearer old-SENTINEL-2", "X-Tenant": "tenant-SENTINEL-3", "Accept": "a"}})).await;
        let own_auth = cipher().encrypt(&server::crypto::Plaintext(
            json!({"Authorization": "Bearer kept"}).as_object().unwrap().clone(),
        ));
        stored_as_before::<Gateway>(&store, json!({"name": "old-gw",
            "url": "https://gw:gw-SENTINEL-4@gw.example.com/sse",
            "health_check": {"url": "https://gw:gw-SENTINEL-4@gw.example.com/health"},
            "auth_type": "bearer", "auth_value": own_auth})).await;
        assert!(raw_docs(&store, "tools").await.contains("SENTINEL"), "the scan can see");

        // Any command opening the store seals first; `export` writes no plaintext.
        let out = cli(&db).args(["export", "--out", "-"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let exported = String::from_utf8(out.stdout).unwrap();
        assert!(exported.contains("old-tool") && exported.contains(HEADER_ENVELOPE));
        let sealed = |text: &str| !text.contains("SENTINEL-1") && !text.contains("SENTINEL-2") && !text.contains("SENTINEL-4");
        assert!(sealed(&exported), "{exported}");
        let docs = raw_docs(&store, "tools").await + &raw_docs(&store, "gateways").await;
        assert!(sealed(&docs), "{docs}");
        assert!(docs.contains("tenant-SENTINEL-3"), "X-Tenant is not sensitive by default");

        let tool: Tool = store.get_entity(store.id_by_key(app::model::EntityKind::Tool, "old-tool").await.unwrap().unwrap()).await.unwrap().unwrap();
        assert_eq!(tool.url.as_deref(), Some("https://api.example.com/x"));
        assert_eq!(tool.auth_type, Some(AuthType::Basic), "the URL's credentials moved into auth");
        assert_eq!(
            cipher().decrypt(tool.auth_value.as_deref().unwrap()).unwrap().0["Authorization"],
            format!("Basic {}", base64_of("us@r:url-SENTINEL-1"))
        );
        assert_eq!(opened(&tool.headers, "Authorization"), "Bearer old-SENTINEL-2");
        let gateway: Gateway = store.get_entity(store.id_by_key(app::model::EntityKind::Gateway, "old-gw").await.unwrap().unwrap()).await.unwrap().unwrap();
        assert_eq!(gateway.url.as_deref(), Some("https://gw.example.com/sse"));
        assert_eq!(gateway.health_check.unwrap().url.as_deref(), Some("https://gw.example.com/health"));
        assert_eq!(
            cipher().decrypt(gateway.auth_value.as_deref().unwrap()).unwrap().0["Authorization"],
            "Bearer kept",
            "a record's own credential wins over its URL's"
        );
        let first = store.upgrade_state("sealed_credentials").await.unwrap();
        assert!(first.is_some());

        // Naming X-Tenant sensitive seals it at the next open.
        let out = cli(&db)
            .args(["export", "--out", "-"])
            .env("MCPGATEWAY_SENSITIVE_HEADERS", "x-tenant")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!String::from_utf8(out.stdout).unwrap().contains("SENTINEL"));
        assert!(!raw_docs(&store, "tools").await.contains("SENTINEL"));
        let tool: Tool = store.get_entity(tool.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(opened(&tool.headers, "X-Tenant"), "tenant-SENTINEL-3");
        assert_ne!(store.upgrade_state("sealed_credentials").await.unwrap(), first);
        store.close().await;
    })
    .await;
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
