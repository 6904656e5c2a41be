//! Export on every backend: counts, filters, dependencies, determinism, encrypted
//! credentials, and a file our own reader (and ContextForge's envelope rules) accept.

use crate::common::{SECRET, TestDb, on_each_backend};
use app::{model::EntityKind, transfer::parse_file};
use secrecy::SecretString;
use serde_json::Value;
use server::{
    crypto::Cipher,
    entities::seed,
    store::Store,
    transfer::{
        export::{ExportOptions, export},
        selection::{Include, parse_types},
    },
};

async fn seeded(db: &TestDb) -> Store {
    let store = db.store().await;
    crate::common::seed_store(&store).await;
    store
}

async fn export_json(store: &Store, options: ExportOptions) -> Value {
    let file = export(
        store,
        &options,
        "tester@example.com",
        "http://127.0.0.1:4444",
    )
    .await
    .unwrap();
    serde_json::to_value(&file).unwrap()
}

fn all() -> ExportOptions {
    ExportOptions {
        include_dependencies: true,
        ..Default::default()
    }
}

/// Entities per type in an export file.
pub(crate) fn counts(file: &Value) -> Vec<(String, usize)> {
    file["entities"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_array().unwrap().len()))
        .collect()
}

#[tokio::test]
async fn a_full_export_holds_all_49_with_encrypted_credentials_and_passes_the_envelope_rules() {
    on_each_backend(|db| async move {
        let store = seeded(&db).await;
        let file = export_json(&store, all()).await;
        let expected = [
            ("tools", 15),
            ("gateways", 3),
            ("servers", 5),
            ("prompts", 12),
            ("resources", 8),
            ("roots", 6),
        ];
        assert_eq!(
            counts(&file),
            expected.map(|(k, n)| (k.to_owned(), n)),
            "{}",
            db.backend
        );
        let keys: Vec<&str> = file
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "version",
                "exported_at",
                "exported_by",
                "source_gateway",
                "encryption_method",
                "entities",
                "metadata"
            ]
        );
        assert!(!file["version"].as_str().unwrap().is_empty());
        assert!(file["metadata"]["entity_counts"].is_object());
        assert_eq!(file["metadata"]["entity_counts"]["tools"], 15);
        assert_eq!(
            file["metadata"]["dependencies"]["servers_to_tools"]["seed-server-1"]
                .as_array()
                .unwrap()
                .len(),
            3
        );

        let text = file.to_string();
        for i in 1..=15 {
            assert!(
                !text.contains(&seed::seed_tool_secret(i)),
                "no plaintext secret in the export"
            );
        }
        assert!(!text.contains("*****"), "no masks");
        let cipher = Cipher::new(&SecretString::from(SECRET));
        let tool = &file["entities"]["tools"][6];
        assert_eq!(tool["auth_type"], "bearer");
        let plain = cipher
            .decrypt(tool["auth_value"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            plain.0["Authorization"],
            format!("Bearer {}", seed::seed_tool_secret(7))
        );
        assert!(
            file["entities"]["tools"][0].get("id").is_none(),
            "ids stay in their gateway"
        );

        let parsed = parse_file(text.as_bytes()).expect("our reader accepts our file");
        assert_eq!(parsed.entities.total(), 49);
        assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
        let audit = store.audit_entries(Some("export"), 5).await.unwrap();
        assert_eq!(audit[0].actor, "tester@example.com");
    })
    .await;
}

#[tokio::test]
async fn two_exports_differ_only_in_their_time() {
    on_each_backend(|db| async move {
        let store = seeded(&db).await;
        let mut a = export_json(&store, all()).await;
        let mut b = export_json(&store, all()).await;
        a["exported_at"] = Value::Null;
        b["exported_at"] = Value::Null;
        assert_eq!(
            serde_json::to_string_pretty(&a).unwrap(),
            serde_json::to_string_pretty(&b).unwrap()
        );
    })
    .await;
}

#[tokio::test]
async fn filters_select_types_tags_and_names_with_their_dependencies() {
    on_each_backend(|db| async move {
        let store = seeded(&db).await;
        let types = ExportOptions {
            types: parse_types("tool,roots").unwrap(),
            ..all()
        };
        assert_eq!(
            counts(&export_json(&store, types).await),
            [("tools".into(), 15), ("roots".into(), 6)]
        );

        let include = ExportOptions {
            include: Some(Include::parse("server:seed-server-1").unwrap()),
            ..all()
        };
        let file = export_json(&store, include).await;
        assert_eq!(
            counts(&file),
            [
                ("tools".into(), 3),
                ("servers".into(), 1),
                ("prompts".into(), 2),
                ("resources".into(), 1)
            ]
        );

        let bare = ExportOptions {
            include: Some(Include::parse("server:seed-server-1").unwrap()),
            include_dependencies: false,
            ..Default::default()
        };
        assert_eq!(
            counts(&export_json(&store, bare).await),
            [("servers".into(), 1)]
        );

        let glob = ExportOptions {
            include: Some(Include::parse("tool:seed-tool-0*-basic,root:Wiki").unwrap()),
            ..all()
        };
        assert_eq!(
            counts(&export_json(&store, glob).await),
            [("tools".into(), 5), ("roots".into(), 1)]
        );

        let tagged = ExportOptions {
            tags: vec!["production".into()],
            include_dependencies: false,
            types: vec![EntityKind::Tool],
            ..Default::default()
        };
        let file = export_json(&store, tagged).await;
        let names: Vec<&str> = file["entities"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "seed-tool-03-basic",
                "seed-tool-06-bearer",
                "seed-tool-09-bearer",
                "seed-tool-12-apikey",
                "seed-tool-15-apikey"
            ]
        );

        let with_dependents = ExportOptions {
            tags: vec!["production".into()],
            ..all()
        };
        let file = export_json(&store, with_dependents).await;
        assert_eq!(
            file["entities"]["servers"].as_array().unwrap().len(),
            5,
            "servers using production tools come along"
        );
        // Only the tagged tools: the servers' other tools stay out (issue #14).
        assert_eq!(
            file["entities"]["tools"].as_array().unwrap().len(),
            5,
            "no untagged tool"
        );
    })
    .await;
}

/// The records an export copies through are handed over in chunks (here one record
/// each), all read by one statement on the snapshot of the first: every record once, in
/// key order, as stored; a tool inserted after the first chunk is not among them.
#[tokio::test]
async fn records_are_handed_over_in_key_order_in_chunks_on_one_snapshot() {
    use app::entities::{Entity, Tool};
    on_each_backend(|db| async move {
        let store = seeded(&db).await;
        let (mut stored, _) = store.list_entities::<Tool>(&every()).await.unwrap();
        let mut expected: Vec<String> = stored.iter().map(|t| t.key().to_owned()).collect();
        expected.sort();
        let mut snapshot = store.begin_snapshot().await.unwrap();
        let (mut seen, mut chunks) = (Vec::<(String, Tool)>::new(), 0);
        let mut records = snapshot.records(EntityKind::Tool, true, 1).await.unwrap();
        while let Some(chunk) = records.next().await.unwrap() {
            for record in chunk.iter() {
                let tool: Tool = serde_json::from_slice(record.doc).unwrap();
                assert_eq!(tool.key(), record.key);
                assert_eq!(tool.is_active(), record.is_active);
                seen.push((record.key.to_owned(), tool));
            }
            chunks += 1;
            if chunks == 1 {
                // Committed by another connection after the snapshot's first read.
                let mut late = stored.pop().unwrap();
                late.set_id(None);
                late.set_key("zz-late-tool".into());
                store.insert_entity(&mut late).await.unwrap();
            }
        }
        drop(records);
        snapshot.rollback().await.unwrap();
        let keys: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys, expected,
            "{}: each record once, in key order",
            db.backend
        );
        assert_eq!(chunks, expected.len(), "one record per chunk");
        for (key, tool) in &seen {
            let listed = store
                .get_entity::<Tool>(
                    store
                        .id_by_key(EntityKind::Tool, key)
                        .await
                        .unwrap()
                        .unwrap(),
                )
                .await
                .unwrap()
                .unwrap();
            let mut listed = listed;
            listed.set_id(None);
            assert_eq!(
                serde_json::to_value(&listed).unwrap(),
                serde_json::to_value(tool).unwrap(),
                "{key}: the record as stored"
            );
        }
    })
    .await;
}

/// Every stored entity, disabled ones too.
fn every() -> server::store::entities::ListQuery {
    server::store::entities::ListQuery {
        include_inactive: true,
        ..Default::default()
    }
}

/// Records dropped after their first chunk (a client gone mid-export) give the
/// transaction back at once: it reads on, on the same snapshot, and ends.
#[tokio::test]
async fn records_dropped_midway_give_the_transaction_back() {
    use app::entities::Prompt;
    on_each_backend(|db| async move {
        let store = seeded(&db).await;
        let (prompts, _) = store.list_entities::<Prompt>(&every()).await.unwrap();
        let mut snapshot = store.begin_snapshot().await.unwrap();
        let mut records = snapshot.records(EntityKind::Tool, true, 1).await.unwrap();
        let first = records.next().await.unwrap().expect("a first chunk");
        assert_eq!(first.iter().count(), 1);
        drop(records);
        let mut again = snapshot
            .records(EntityKind::Prompt, true, 1 << 20)
            .await
            .unwrap();
        let all = again
            .next()
            .await
            .unwrap()
            .expect("the prompts in one chunk");
        assert_eq!(all.iter().count(), prompts.len(), "{}", db.backend);
        assert!(again.next().await.unwrap().is_none());
        drop(again);
        snapshot.rollback().await.unwrap();
    })
    .await;
}
