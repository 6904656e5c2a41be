//! Exports carry each server's MCP endpoints (`mcp_endpoint`, `sse_endpoint`, relative
//! to the gateway's public URL, as ContextForge writes them); imports treat such fields
//! as derived: whatever a file holds there is never stored.

use app::model::EntityKind;
use secrecy::SecretString;
use serde_json::{Value, json};
use server::{
    crypto::Cipher,
    store::{Store, with_pool},
    transfer::{
        export::{ExportOptions, export_to},
        import::{ConflictStrategy, import},
    },
};

use crate::common::{SECRET, on_each_backend};

/// The export of everything, as the bytes a client receives.
async fn exported(store: &Store) -> Value {
    let options = ExportOptions {
        include_dependencies: true,
        ..Default::default()
    };
    let mut bytes = Vec::new();
    export_to(store, &options, "t@example.com", "http://t", &mut bytes)
        .await
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Every server of `file` has `mcp_endpoint` naming its id in `store`.
async fn assert_endpoints(store: &Store, file: &Value) {
    let servers = file["entities"]["servers"].as_array().unwrap();
    assert!(!servers.is_empty());
    for server in servers {
        let name = server["name"].as_str().unwrap();
        let id = store
            .id_by_key(EntityKind::Server, name)
            .await
            .unwrap()
            .unwrap();
        for (field, end) in [("mcp_endpoint", "mcp"), ("sse_endpoint", "sse")] {
            assert_eq!(
                server[field],
                json!(format!("/servers/{id}/{end}")),
                "{name}"
            );
        }
    }
}

async fn raw_server_docs(store: &Store) -> String {
    let docs: Vec<String> = with_pool!(store, |pool| sqlx::query_scalar(
        "SELECT CAST(doc AS TEXT) FROM servers"
    )
    .fetch_all(pool)
    .await)
    .unwrap();
    docs.concat()
}

#[tokio::test]
async fn exports_carry_each_servers_endpoint_and_imports_never_store_one() {
    on_each_backend(|db| async move {
        let source = db.store().await;
        crate::common::seed_store(&source).await;
        let mut file = exported(&source).await;
        assert_endpoints(&source, &file).await;
        let schema = app::transfer::export_file_schema();
        for field in ["mcp_endpoint", "sse_endpoint"] {
            let described = &schema["$defs"]["Server"]["properties"][field];
            assert_eq!(described["readOnly"], true, "{described}");
        }

        // A file whose endpoints (ours and ContextForge's) say something else entirely.
        for server in file["entities"]["servers"].as_array_mut().unwrap() {
            for field in [
                "mcp_endpoint",
                "sse_endpoint",
                "websocket_endpoint",
                "jsonrpc_endpoint",
            ] {
                server[field] = json!("/elsewhere/forged");
            }
        }
        let empty = db.another().await;
        let target = empty.store().await;
        let cipher = Cipher::new(&SecretString::from(SECRET));
        let options = crate::import::options(ConflictStrategy::Fail);
        let bytes = serde_json::to_vec(&file).unwrap();
        import(&target, &cipher, &bytes, &options, "i@example.com")
            .await
            .unwrap();
        assert!(!raw_server_docs(&target).await.contains("forged"));
        let again = exported(&target).await;
        assert_endpoints(&target, &again).await;
        assert!(!again.to_string().contains("forged"));
    })
    .await;
}
