//! Import in batches on every backend: thousands of generated entities land with exact
//! counts and links; batch boundaries (501 tools, a server linking across batches) hold
//! for create, re-import, update, rename and cancellation.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{SECRET, TestDb, on_each_backend};
use app::{
    entities::{Entity, Server, Tool},
    model::EntityKind,
    transfer::ExportFile,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use server::{
    crypto::Cipher,
    entities::seed,
    store::Store,
    transfer::{
        export::{ExportOptions, export_to},
        import::{
            Action, ConflictStrategy, EntityResult, ImportError, ImportOptions, ImportReport,
            Observer, import,
        },
    },
};

fn cipher() -> Cipher {
    Cipher::new(&SecretString::from(SECRET))
}

fn options(strategy: ConflictStrategy) -> ImportOptions<'static> {
    ImportOptions {
        strategy,
        ..Default::default()
    }
}

async fn run(store: &Store, bytes: &[u8], options: &ImportOptions<'_>) -> ImportReport {
    import(store, &cipher(), bytes, options, "batches@example.com")
        .await
        .unwrap()
}

async fn servers(store: &Store) -> Vec<Server> {
    store.list_entities(&Default::default()).await.unwrap().0
}

type Links = Vec<(EntityKind, Vec<String>)>;

/// Each server's key and links, sorted by key.
fn links_by_server(servers: &[Server]) -> Vec<(String, Links)> {
    let mut all: Vec<(String, Links)> = servers
        .iter()
        .map(|s| {
            let links = s
                .links()
                .into_iter()
                .map(|(k, l)| (k, l.to_vec()))
                .collect();
            (s.key().to_owned(), links)
        })
        .collect();
    all.sort();
    all
}

#[tokio::test]
async fn thousands_of_generated_entities_import_with_exact_counts_and_links() {
    on_each_backend(|db| async move {
        let store = db.store().await;
        let set = seed::scale_set(&cipher(), 3000).unwrap();
        let expected = set.counts();
        let wanted = links_by_server(&set.servers);
        let file = ExportFile {
            version: "2025-03-26".into(),
            exported_at: "2026-01-01T00:00:00Z".into(),
            exported_by: "test".into(),
            source_gateway: "test".into(),
            encryption_method: "AES-256-GCM".into(),
            entities: set,
            metadata: json!({}),
        };
        let bytes = serde_json::to_vec(&file).unwrap();

        let first = run(&store, &bytes, &options(ConflictStrategy::Update)).await;
        assert_eq!(first.results.len(), 3000);
        for (kind, n) in expected {
            assert_eq!(first.count(kind, Action::Created), n, "{kind:?}");
            assert_eq!(
                store.count_entities(kind).await.unwrap(),
                n as i64,
                "{}: {kind:?}",
                db.backend
            );
        }
        assert_eq!(expected[2], (EntityKind::Server, 300));
        let stored = links_by_server(&servers(&store).await);
        assert_eq!(stored, wanted, "every link, in order");
        let links: usize = wanted
            .iter()
            .flat_map(|(_, l)| l.iter().map(|(_, keys)| keys.len()))
            .sum();
        assert!(
            links > 2000,
            "servers link tools, prompts and resources: {links}"
        );

        let again = run(&store, &bytes, &options(ConflictStrategy::Update)).await;
        assert_eq!(again.results.len(), 3000);
        assert!(again.results.iter().all(|r| r.action == Action::Unchanged));

        // The export streams pages of 1,000: the pieces join into serde_json's pretty file.
        let mut streamed = Vec::new();
        let all = ExportOptions {
            include_dependencies: true,
            ..Default::default()
        };
        let written = export_to(&store, &all, "t", "t", &mut streamed)
            .await
            .unwrap();
        assert_eq!(written.total(), 3000);
        let value: Value = serde_json::from_slice(&streamed).unwrap();
        assert_eq!(
            serde_json::to_vec_pretty(&value).unwrap(),
            streamed,
            "byte for byte the pretty JSON of the file"
        );
        let exported: ExportFile = serde_json::from_value(value.clone()).unwrap();
        // Records copied through as stored read back as the typed export would write them.
        // (Servers are not copied: they are written from their type, with the endpoint
        // fields an export derives and an import never reads.)
        let typed = serde_json::to_value(&exported.entities).unwrap();
        for copied in ["tools", "gateways", "prompts", "resources", "roots"] {
            assert_eq!(
                serde_json::to_string_pretty(&typed[copied]).unwrap(),
                serde_json::to_string_pretty(&value["entities"][copied]).unwrap(),
                "the copied {copied} are the typed records"
            );
        }
        assert_eq!(exported.entities.counts(), expected);
        assert_eq!(links_by_server(&exported.entities.servers), wanted);
    })
    .await;
}

/// 501 tools (two batches of 500 and 1) and a server linking tools of both batches.
fn boundary_file(description: impl Fn(usize) -> String) -> Vec<u8> {
    let tools: Vec<Value> = (0..501)
        .map(|i| {
            json!({"name": format!("t{i:03}"), "url": "https://x.example.com", "description": description(i)})
        })
        .collect();
    serde_json::to_vec(&json!({
        "version": "1",
        "exported_at": "x",
        "entities": {
            "tools": tools,
            "servers": [{"name": "s", "tool_ids": ["t500", "t000", "t499", "t250"]}],
        }
    }))
    .unwrap()
}

/// Counts what it is told; cancels after `cancel_after` results.
struct Counter {
    applied: AtomicUsize,
    cancel_after: usize,
}

impl Observer for Counter {
    fn applied(&self, _result: &EntityResult) {
        self.applied.fetch_add(1, Ordering::Relaxed);
    }
    fn cancelled(&self) -> bool {
        self.applied.load(Ordering::Relaxed) >= self.cancel_after
    }
}

#[tokio::test]
async fn a_server_linking_across_a_batch_boundary_and_every_strategy() {
    on_each_backend(|db: TestDb| async move {
        let store = db.store().await;
        let original = boundary_file(|_| "d".into());
        let counter = Counter {
            applied: AtomicUsize::new(0),
            cancel_after: usize::MAX,
        };
        let watched = ImportOptions {
            observer: Some(&counter),
            ..options(ConflictStrategy::Update)
        };
        let first = run(&store, &original, &watched).await;
        assert_eq!(first.count(EntityKind::Tool, Action::Created), 501);
        assert_eq!(first.count(EntityKind::Server, Action::Created), 1);
        assert_eq!(
            counter.applied.load(Ordering::Relaxed),
            502,
            "one per entity"
        );
        assert_eq!(
            servers(&store).await[0].tool_ids,
            ["t500", "t000", "t499", "t250"]
        );

        let again = run(&store, &original, &options(ConflictStrategy::Update)).await;
        assert!(again.results.iter().all(|r| r.action == Action::Unchanged));

        // Cancelled after the first batch: nothing of it stays.
        let changed = boundary_file(|i| format!("changed {i}"));
        let cancelling = Counter {
            applied: AtomicUsize::new(0),
            cancel_after: 1,
        };
        let cancelled = import(
            &store,
            &cipher(),
            &changed,
            &ImportOptions {
                observer: Some(&cancelling),
                ..options(ConflictStrategy::Update)
            },
            "x",
        )
        .await
        .unwrap_err();
        assert!(matches!(cancelled, ImportError::Cancelled), "{cancelled}");
        assert_eq!(
            cancelling.applied.load(Ordering::Relaxed),
            500,
            "one batch ran"
        );
        let tools: Vec<Tool> = store.list_entities(&Default::default()).await.unwrap().0;
        assert!(tools.iter().all(|t| t.description.as_deref() == Some("d")));

        // Update: one tool in each batch.
        let two = boundary_file(|i| {
            if i == 0 || i == 500 {
                "new".into()
            } else {
                "d".into()
            }
        });
        let update = run(&store, &two, &options(ConflictStrategy::Update)).await;
        assert_eq!(update.count(EntityKind::Tool, Action::Updated), 2);
        assert_eq!(update.count(EntityKind::Tool, Action::Unchanged), 499);
        let t500 = update.results.iter().find(|r| r.name == "t500").unwrap();
        assert_eq!(t500.changed_fields, ["description"]);
        assert_eq!(t500.changes[0].after, json!("new"));
        assert_eq!(
            servers(&store).await[0].tool_ids,
            ["t500", "t000", "t499", "t250"]
        );

        // Rename, twice: every tool gets -imported, then -imported-2; the server follows.
        for (round, suffix) in [(1, "-imported"), (2, "-imported-2")] {
            let renamed = boundary_file(move |i| format!("round {round} {i}"));
            let report = run(&store, &renamed, &options(ConflictStrategy::Rename)).await;
            assert_eq!(report.count(EntityKind::Tool, Action::Renamed), 501);
            let t500 = report.results.iter().find(|r| r.name == "t500").unwrap();
            assert_eq!(
                t500.new_name.as_deref(),
                Some(format!("t500{suffix}").as_str())
            );
            let server = report
                .results
                .iter()
                .find(|r| r.kind == EntityKind::Server)
                .unwrap();
            assert_eq!(server.action, Action::Renamed, "its links differ");
            assert_eq!(
                server.new_name.as_deref(),
                Some(format!("s{suffix}").as_str())
            );
            let stored = servers(&store).await;
            let follower = stored
                .iter()
                .find(|s| s.key() == format!("s{suffix}"))
                .unwrap();
            let expected: Vec<String> = ["t500", "t000", "t499", "t250"]
                .iter()
                .map(|t| format!("{t}{suffix}"))
                .collect();
            assert_eq!(follower.tool_ids, expected);
        }
        assert_eq!(store.count_entities(EntityKind::Tool).await.unwrap(), 1503);
        assert_eq!(
            servers(&store)
                .await
                .iter()
                .find(|s| s.key() == "s")
                .unwrap()
                .tool_ids,
            ["t500", "t000", "t499", "t250"],
            "the original server keeps its links"
        );
    })
    .await;
}
