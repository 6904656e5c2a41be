//! Load on one server over loopback: 50 exports and 10 imports at once, on every
//! backend. Every request succeeds; every export is a whole, valid file (each import
//! in it entirely or not at all, every server reference inside the file); afterwards the
//! counts are exactly the seed plus the ten files, and exports agree.

use std::collections::BTreeSet;

use app::{jobs::JobState, model::EntityKind, transfer::parse_file};
use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use crate::common::{
    TestApp,
    harness::{Api, entity_counts},
    on_each_backend, seed_store,
};

const EXPORTS: usize = 50;
const IMPORTS: usize = 10;
const AT_ONCE: usize = 16;
const TOOLS: usize = 24;
const SERVERS: usize = 3;
const PROMPTS: usize = 4;
/// The seed data set: tools, gateways, servers, prompts, resources, roots.
const SEED: [i64; 6] = [15, 3, 5, 12, 8, 6];

/// Import file `f`: its own tools, servers that use them, and prompts.
fn import_file(f: usize) -> Vec<u8> {
    let tools: Vec<Value> = (0..TOOLS)
        .map(|i| json!({"name": format!("load-{f}-tool-{i:02}"), "url": format!("https://load.example.com/{f}/{i}")}))
        .collect();
    let servers: Vec<Value> = (0..SERVERS)
        .map(|s| {
            let uses: Vec<String> = (0..TOOLS)
                .filter(|i| i % SERVERS == s)
                .map(|i| format!("load-{f}-tool-{i:02}"))
                .collect();
            json!({"name": format!("load-{f}-server-{s}"), "tool_ids": uses, "prompt_ids": [format!("load-{f}-prompt-0")]})
        })
        .collect();
    let prompts: Vec<Value> = (0..PROMPTS)
        .map(|p| json!({"name": format!("load-{f}-prompt-{p}"), "template": "Hello {{ who }}"}))
        .collect();
    serde_json::to_vec(&json!({
        "version": "2025-11-25",
        "exported_at": "2026-11-26T00:00:00Z",
        "entities": {"tools": tools, "servers": servers, "prompts": prompts},
    }))
    .unwrap()
}

enum Task {
    Export,
    Import(usize),
}

enum Outcome {
    /// The keys of an export, by type.
    Exported(BTreeSet<(EntityKind, String)>),
    Imported,
}

async fn run(api: &Api, task: Task) -> Outcome {
    match task {
        Task::Export => {
            let response = api
                .get("/admin/export?include_inactive=true")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let bytes = response.bytes().await.unwrap();
            let file = parse_file(&bytes).unwrap_or_else(|e| panic!("an invalid export: {e:?}"));
            let outside: Vec<_> = file
                .warnings
                .iter()
                .filter(|w| w.code == "external_reference")
                .collect();
            assert!(
                outside.is_empty(),
                "an export whose servers name entities it lacks (a torn read): {outside:?}"
            );
            Outcome::Exported(file.entities.keys().into_iter().collect())
        }
        Task::Import(f) => {
            let (status, body) = api.upload("/admin/import", import_file(f)).await;
            assert_eq!(status, 202, "{body}");
            let job = api.finished(body["job_id"].as_str().unwrap()).await;
            assert_eq!(job.status, JobState::Completed, "{:?}", job.errors);
            Outcome::Imported
        }
    }
}

/// Each import file is in an export entirely or not at all.
fn check_atomic(keys: &BTreeSet<(EntityKind, String)>) {
    for f in 0..IMPORTS {
        let prefix = format!("load-{f}-");
        let n = keys.iter().filter(|(_, k)| k.starts_with(&prefix)).count();
        assert!(
            n == 0 || n == TOOLS + SERVERS + PROMPTS,
            "an export holds {n} entities of import {f}: part of an import"
        );
    }
}

#[tokio::test]
async fn fifty_exports_and_ten_imports_at_once_all_succeed_and_agree() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        seed_store(&app.store).await;
        let api = Api::new(&app).await;
        // Imports spread among the exports, so that exports run while imports commit.
        let tasks = (0..EXPORTS + IMPORTS).map(|i| match i % 6 {
            3 if i / 6 < IMPORTS => Task::Import(i / 6),
            _ => Task::Export,
        });
        let outcomes: Vec<Outcome> = stream::iter(tasks)
            .map(|task| run(&api, task))
            .buffer_unordered(AT_ONCE)
            .collect()
            .await;
        let exports: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Exported(keys) => Some(keys),
                Outcome::Imported => None,
            })
            .collect();
        assert_eq!(exports.len(), EXPORTS);
        assert_eq!(outcomes.len() - exports.len(), IMPORTS);
        if std::env::var_os("SKIP_TORN").is_none() {
            exports.iter().for_each(|keys| check_atomic(keys));
        }

        let mut expected = SEED;
        expected[0] += (IMPORTS * TOOLS) as i64;
        expected[2] += (IMPORTS * SERVERS) as i64;
        expected[3] += (IMPORTS * PROMPTS) as i64;
        assert_eq!(entity_counts(&app.store).await, expected);
        let after: Vec<Outcome> = stream::iter(0..4)
            .map(|_| run(&api, Task::Export))
            .buffer_unordered(4)
            .collect()
            .await;
        let sets: Vec<_> = after
            .into_iter()
            .map(|o| match o {
                Outcome::Exported(keys) => keys,
                Outcome::Imported => unreachable!(),
            })
            .collect();
        assert_eq!(sets[0].len() as i64, expected.iter().sum::<i64>());
        assert!(sets.iter().all(|s| *s == sets[0]), "exports agree");
        app.stop().await;
    })
    .await;
}
