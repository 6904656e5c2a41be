//! Import on every backend: lossless round trips (same key and another key), idempotency,
//! dry runs, conflict strategies, atomicity, selection, and ContextForge's own files.

use crate::common::{SECRET, TestDb, on_each_backend};
use app::model::EntityKind;
use secrecy::SecretString;
use serde_json::Value;
use server::{
    crypto::Cipher,
    store::Store,
    transfer::{
        export::{ExportOptions, export},
        import::{Action, ConflictStrategy, ImportError, ImportOptions, ImportReport, import},
        selection::Include,
    },
};

const OTHER_SECRET: &str = "the-second-gateway-has-its-own-secret-0123";

fn cipher(secret: &str) -> Cipher {
    Cipher::new(&SecretString::from(secret))
}

async fn seeded(db: &TestDb) -> Store {
    let store = db.store().await;
    crate::common::seed_store(&store).await;
    store
}

async fn export_bytes(store: &Store) -> Vec<u8> {
    let options = ExportOptions {
        include_dependencies: true,
        ..Default::default()
    };
    serde_json::to_vec_pretty(
        &export(store, &options, "a@example.com", "http://a")
            .await
            .unwrap(),
    )
    .unwrap()
}

/// Options for a plain import with `strategy` (used by other modules too).
pub(crate) fn options(strategy: ConflictStrategy) -> ImportOptions<'static> {
    ImportOptions {
        strategy,
        dry_run: false,
        include: None,
        picked: None,
        source: None,
        observer: None,
        allow_missing_links: false,
    }
}

async fn run(
    store: &Store,
    target: &Cipher,
    bytes: &[u8],
    options: &ImportOptions<'_>,
) -> ImportReport {
    import(store, target, bytes, options, "importer@example.com")
        .await
        .unwrap()
}

/// The file without the fields that name the moment and the exporter.
fn comparable(bytes: &[u8]) -> Value {
    let mut v: Value = serde_json::from_slice(bytes).unwrap();
    for k in ["exported_at", "exported_by", "source_gateway"] {
        v[k] = Value::Null;
    }
    v
}

/// Every credential in the file, decrypted.
fn credentials(bytes: &[u8], key: &Cipher) -> Vec<String> {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    let mut out = Vec::new();
    for plural in ["tools", "gateways"] {
        for e in v["entities"][plural].as_array().into_iter().flatten() {
            if let Some(blob) = e["auth_value"].as_str() {
                out.push(format!("{}={:?}", e["name"], key.decrypt(blob).unwrap().0));
            }
        }
    }
    out
}

fn without_blobs(mut v: Value) -> Value {
    for plural in ["tools", "gateways"] {
        for e in v["entities"][plural].as_array_mut().into_iter().flatten() {
            e.as_object_mut().unwrap().remove("auth_value");
        }
    }
    v
}

#[tokio::test]
async fn a_round_trip_is_lossless_and_a_second_import_writes_nothing() {
    on_each_backend(|db| async move {
        let a = seeded(&db).await;
        let file_a = export_bytes(&a).await;
        let target_db = db.another().await;
        let b = target_db.store().await;
        let key = cipher(SECRET);

        let first = run(&b, &key, &file_a, &options(ConflictStrategy::Update)).await;
        assert_eq!(
            first.summary(),
            "Imported: 15 tools, 3 gateways, 5 servers, 12 prompts, 8 resources, 6 roots"
        );
        assert!(first.results.iter().all(|r| r.action == Action::Created));
        let file_b = export_bytes(&b).await;
        assert_eq!(
            comparable(&file_a),
            comparable(&file_b),
            "{}: B exports what A exported",
            db.backend
        );
        assert_eq!(credentials(&file_a, &key), credentials(&file_b, &key));

        let again = run(&b, &key, &file_a, &options(ConflictStrategy::Update)).await;
        assert!(
            again.results.iter().all(|r| r.action == Action::Unchanged),
            "{:?}",
            again.results
        );
        assert_eq!(
            comparable(&export_bytes(&b).await),
            comparable(&file_b),
            "nothing was written"
        );
    })
    .await;
}

#[tokio::test]
async fn another_key_needs_the_source_secret_and_then_re_encrypts() {
    on_each_backend(|db| async move {
        let a = seeded(&db).await;
        let file_a = export_bytes(&a).await;
        let target_db = db.another().await;
        let b = target_db.store().await;
        let (key_a, key_b) = (cipher(SECRET), cipher(OTHER_SECRET));

        let refused = import(&b, &key_b, &file_a, &options(ConflictStrategy::Update), "x")
            .await
            .unwrap_err();
        let ImportError::Invalid(errors) = refused else {
            panic!("{refused}")
        };
        assert_eq!(
            errors.len(),
            17,
            "every credential is named: 15 tools + 2 gateways"
        );
        assert!(
            errors[0].pointer.ends_with("/auth_value")
                && errors[0]
                    .message
                    .contains("the exporting gateway's secret as the source secret")
                && !errors[0].message.contains("--source-secret"),
            "front-door neutral: REST has a source_secret field, the CLI a flag"
        );
        assert_eq!(
            b.count_entities(EntityKind::Tool).await.unwrap(),
            0,
            "nothing written"
        );

        let with_source = ImportOptions {
            source: Some(&key_a),
            ..options(ConflictStrategy::Update)
        };
        let report = run(&b, &key_b, &file_a, &with_source).await;
        assert!(report.rekeyed);
        let file_b = export_bytes(&b).await;
        assert_eq!(
            credentials(&file_a, &key_a),
            credentials(&file_b, &key_b),
            "same plaintext under key B"
        );
        assert_eq!(
            without_blobs(comparable(&file_a)),
            without_blobs(comparable(&file_b))
        );
        let audit = b.audit_entries(Some("rekey"), 5).await.unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].details.0["source_key"], key_a.fingerprint());
        assert!(
            !audit[0].details.0.to_string().contains(SECRET)
                && !audit[0].details.0.to_string().contains(OTHER_SECRET)
        );
    })
    .await;
}

#[tokio::test]
async fn a_dry_run_reports_the_plan_and_changes_nothing() {
    on_each_backend(|db| async move {
        let a = seeded(&db).await;
        let key = cipher(SECRET);
        let mut file: Value = serde_json::from_slice(&export_bytes(&a).await).unwrap();
        for i in 0..3 {
            file["entities"]["tools"][i]["description"] = Value::String(format!("changed {i}"));
        }
        let bytes = serde_json::to_vec(&file).unwrap();
        let dry = ImportOptions {
            dry_run: true,
            ..options(ConflictStrategy::Update)
        };
        let before = export_bytes(&a).await;
        let report = run(&a, &key, &bytes, &dry).await;
        assert_eq!(
            report.plan_lines()[0],
            "Would update 3 existing tools, leave 12 unchanged tools"
        );
        assert_eq!(
            report
                .results
                .iter()
                .find(|r| r.action == Action::Updated)
                .unwrap()
                .changed_fields,
            ["description"]
        );
        assert_eq!(
            comparable(&export_bytes(&a).await),
            comparable(&before),
            "a dry run writes nothing"
        );
    })
    .await;
}

#[tokio::test]
async fn strategies_skip_rename_and_fail_and_fail_leaves_no_row() {
    on_each_backend(|db| async move {
        let a = seeded(&db).await;
        let key = cipher(SECRET);
        let mut file: Value = serde_json::from_slice(&export_bytes(&a).await).unwrap();
        file["entities"]["tools"][0]["description"] = Value::String("differs".into());
        file["entities"]["prompts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"name": "brand-new", "template": "t"}));
        let bytes = serde_json::to_vec(&file).unwrap();

        let skip = run(&a, &key, &bytes, &options(ConflictStrategy::Skip)).await;
        assert_eq!(skip.count(EntityKind::Tool, Action::Skipped), 1);
        assert_eq!(skip.count(EntityKind::Prompt, Action::Created), 1);

        file["entities"]["prompts"][12]["name"] = Value::String("brand-new-2".into());
        let bytes = serde_json::to_vec(&file).unwrap();
        let fail = import(&a, &key, &bytes, &options(ConflictStrategy::Fail), "x")
            .await
            .unwrap_err();
        assert!(
            matches!(fail, ImportError::Conflict(ref c)
                if c.len() == 1 && c[0].pointer == "/entities/tools/0"
                    && c[0].message.contains("seed-tool-01-basic")),
            "{fail}"
        );
        let (prompts, _) = a
            .list_entities::<app::entities::Prompt>(&Default::default())
            .await
            .unwrap();
        assert!(
            !prompts
                .iter()
                .any(|p| p.name.as_deref() == Some("brand-new-2")),
            "fail rolls back everything"
        );

        let rename = run(&a, &key, &bytes, &options(ConflictStrategy::Rename)).await;
        let renamed = rename
            .results
            .iter()
            .find(|r| r.action == Action::Renamed)
            .unwrap();
        assert_eq!(
            renamed.new_name.as_deref(),
            Some("seed-tool-01-basic-imported")
        );
        let (servers, _) = a
            .list_entities::<app::entities::Server>(&Default::default())
            .await
            .unwrap();
        let s1 = servers
            .iter()
            .find(|s| s.name.as_deref() == Some("seed-server-1"))
            .unwrap();
        assert_eq!(
            s1.tool_ids[0], "seed-tool-01-basic",
            "unchanged servers keep their links"
        );
    })
    .await;
}

#[tokio::test]
async fn invalid_files_and_dangling_references_write_no_row() {
    on_each_backend(|db| async move {
        let store = db.store().await;
        let key = cipher(SECRET);
        let dangling = br#"{"version": "1", "exported_at": "x", "entities": {
            "tools": [{"name": "t1", "url": "https://x.example.com"}],
            "servers": [{"name": "s", "tool_ids": ["t1", "missing"]}]}}"#;
        let err = import(
            &store,
            &key,
            dangling,
            &options(ConflictStrategy::Update),
            "x",
        )
        .await
        .unwrap_err();
        let ImportError::Invalid(errors) = err else {
            panic!()
        };
        assert_eq!(errors[0].pointer, "/entities/servers/0/tool_ids/1");
        for kind in EntityKind::ALL {
            assert_eq!(store.count_entities(kind).await.unwrap(), 0);
        }
    })
    .await;
}

#[tokio::test]
async fn include_imports_the_named_entities_and_what_they_need() {
    on_each_backend(|db| async move {
        let a = seeded(&db).await;
        let bytes = export_bytes(&a).await;
        let target_db = db.another().await;
        let b = target_db.store().await;
        let key = cipher(SECRET);
        let selective = ImportOptions {
            include: Some(Include::parse("tool:seed-tool-15-apikey,server:seed-server-4").unwrap()),
            ..options(ConflictStrategy::Update)
        };
        let report = run(&b, &key, &bytes, &selective).await;
        assert_eq!(
            report.summary(),
            "Imported 4 tools, 1 server, 2 resources (42 items skipped)"
        );
        assert_eq!(b.count_entities(EntityKind::Tool).await.unwrap(), 4);
        assert_eq!(
            b.count_entities(EntityKind::Gateway).await.unwrap(),
            0,
            "types not named are skipped"
        );
    })
    .await;
}

#[tokio::test]
async fn contextforge_files_import_with_their_secret() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/contextforge/export-seed-dataset.json"
    );
    let bytes = std::fs::read(path).unwrap();
    let source = cipher("cfpeer-enc-K3p8Vn2Rq7Lx5Zt1Mw9Bc4Hy6Jd0Gs3F");
    let key = cipher(SECRET);
    let opts = ImportOptions {
        source: Some(&source),
        ..options(ConflictStrategy::Update)
    };
    let report = run(&store, &key, &bytes, &opts).await;
    let counts: Vec<i64> = futures_counts(&store).await;
    // The three discovered `greet` prompts are three (federation_store tests them).
    assert_eq!(counts, [15, 3, 5, 15, 11, 6]);
    assert!(report.warnings.iter().any(|w| w.code == "masked_value"));
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.code == "attributed_to_gateway")
    );
    let (gateways, _) = store
        .list_entities::<app::entities::Gateway>(&Default::default())
        .await
        .unwrap();
    let with_auth: Vec<_> = gateways
        .iter()
        .filter_map(|g| g.auth_value.as_deref())
        .collect();
    assert_eq!(with_auth.len(), 2);
    for blob in with_auth {
        assert!(
            !key.decrypt(blob).unwrap().0.is_empty(),
            "re-encrypted under this gateway's key"
        );
    }
}

async fn futures_counts(store: &Store) -> Vec<i64> {
    let mut out = Vec::new();
    for kind in EntityKind::ALL {
        out.push(store.count_entities(kind).await.unwrap());
    }
    out
}

#[tokio::test]
async fn contextforge_query_params_and_header_envelopes_are_re_encrypted_too() {
    on_each_backend(|db| async move {
        let store = db.store().await;
        let (key_a, key_b) = (cipher(OTHER_SECRET), cipher(SECRET));
        let seal = |name: &str, value: &str| {
            let plain = serde_json::json!({ name: value });
            key_a.encrypt(&server::crypto::Plaintext(plain.as_object().unwrap().clone()))
        };
        let file = serde_json::json!({"version": "2025-03-26", "exported_at": "2026-01-01T00:00:00Z", "entities": {
            "gateways": [{"name": "qp", "url": "https://peer.example.com/mcp", "auth_type": "query_param",
                "auth_query_params": {"api_key": seal("api_key", "qp-secret-1")}}],
            "tools": [{"name": "hdr", "url": "https://api.example.com/x", "headers": {
                "Accept": "application/json",
                "X-API-Key": {"_mcpgateway_encrypted_header_value_v1": seal("data", "hdr-secret-2")}}}]
        }});
        let bytes = serde_json::to_vec(&file).unwrap();

        let refused = import(&store, &key_b, &bytes, &options(ConflictStrategy::Update), "x")
            .await
            .unwrap_err();
        let ImportError::Invalid(errors) = refused else {
            panic!("{refused}")
        };
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        // In file order, as every problem of a file.
        assert_eq!(
            pointers,
            [
                "/entities/gateways/0/auth_query_params/api_key",
                "/entities/tools/0/headers/X-API-Key"
            ]
        );
        assert_eq!(store.count_entities(EntityKind::Tool).await.unwrap(), 0);

        let with_source = ImportOptions {
            source: Some(&key_a),
            ..options(ConflictStrategy::Update)
        };
        assert!(run(&store, &key_b, &bytes, &with_source).await.rekeyed);
        let exported: Value = serde_json::from_slice(&export_bytes(&store).await).unwrap();
        let text = exported.to_string();
        assert!(!text.contains("qp-secret-1") && !text.contains("hdr-secret-2"));
        let query = &exported["entities"]["gateways"][0]["auth_query_params"]["api_key"];
        assert_eq!(
            key_b.decrypt(query.as_str().unwrap()).unwrap().0["api_key"],
            "qp-secret-1"
        );
        let header = &exported["entities"]["tools"][0]["headers"]["X-API-Key"]
            ["_mcpgateway_encrypted_header_value_v1"];
        assert_eq!(
            key_b.decrypt(header.as_str().unwrap()).unwrap().0["data"],
            "hdr-secret-2"
        );

        let again = run(&store, &key_b, &bytes, &with_source).await;
        assert!(
            again.results.iter().all(|r| r.action == Action::Unchanged),
            "re-encrypted but equal is no change: {:?}",
            again.results
        );
    })
    .await;
}

/// A file may list servers before the prompts and resources they link to (ContextForge
/// does): those are still written first, a renamed prompt is followed by its server, and
/// the results come in dependency order.
#[tokio::test]
async fn servers_listed_first_follow_what_they_link_to() {
    on_each_backend(|db| async move {
        let store = db.store().await;
        let key = cipher(SECRET);
        let file = |template: &str| {
            serde_json::to_vec(
                &serde_json::json!({"version": "1", "exported_at": "x", "entities": {
                    "servers": [{"name": "s", "prompt_ids": ["p"], "resource_ids": ["file:///r"]}],
                    "prompts": [{"name": "p", "template": template}],
                    "resources": [{"uri": "file:///r", "name": "r"}]
                }}),
            )
            .unwrap()
        };
        let first = run(
            &store,
            &key,
            &file("one"),
            &options(ConflictStrategy::Update),
        )
        .await;
        let kinds: Vec<EntityKind> = first.results.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [EntityKind::Prompt, EntityKind::Resource, EntityKind::Server]
        );
        let renamed = run(
            &store,
            &key,
            &file("two"),
            &options(ConflictStrategy::Rename),
        )
        .await;
        assert_eq!(renamed.count(EntityKind::Prompt, Action::Renamed), 1);
        let (servers, _) = store
            .list_entities::<app::entities::Server>(&Default::default())
            .await
            .unwrap();
        let linked: Vec<(&str, &[String])> = servers
            .iter()
            .map(|s| {
                (
                    s.name.as_deref().unwrap_or_default(),
                    s.prompt_ids.as_slice(),
                )
            })
            .collect();
        assert_eq!(
            linked,
            [
                ("s", &["p".to_owned()][..]),
                ("s-imported", &["p-imported".to_owned()][..])
            ],
            "the renamed server links the renamed prompt"
        );
    })
    .await;
}
