//! Export and import over REST against a real server on a loopback port, on every
//! backend: the seed's curl sequence, durable jobs (restart, a second replica), SSE,
//! cancel, previews, audit, OpenAPI, and every refusal (400/401/413/415/422).

use std::time::Duration;

use app::jobs::JobState;
use futures_util::StreamExt;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};
use server::entities::seed;

use crate::common::{
    SECRET, TestApp, TestDb,
    harness::{Api, read_events},
    on_each_backend,
};

async fn seed_app(app: &TestApp) {
    crate::common::seed_store(&app.store).await;
}

/// An export file of `n` tools named `bulk-tool-00000`….
fn bulk_tools(n: usize) -> Vec<u8> {
    let tools: Vec<Value> = (0..n)
        .map(|i| {
            json!({
                "name": format!("bulk-tool-{i:05}"),
                "url": format!("https://api.example.com/tools/{i}"),
                "integration_type": "REST",
                "request_type": "POST",
                "tags": ["bulk"],
            })
        })
        .collect();
    serde_json::to_vec(&json!({
        "version": "2025-03-26",
        "exported_at": "2026-11-26T00:00:00Z",
        "exported_by": "test",
        "source_gateway": "http://test",
        "encryption_method": "AES-256-GCM",
        "entities": { "tools": tools },
        "metadata": { "entity_counts": { "tools": n } },
    }))
    .unwrap()
}

#[tokio::test]
async fn the_curl_sequence_exports_then_imports_as_a_job() {
    on_each_backend(|db| async move {
        let source = TestApp::spawn(db).await;
        seed_app(&source).await;
        let api = Api::new(&source).await;

        let response = api
            .get("/admin/export?types=tools,servers")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let disposition = response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            disposition.starts_with("attachment; filename=\"export-"),
            "{disposition}"
        );
        assert!(
            disposition.ends_with(".json\"")
                && disposition.len()
                    == "attachment; filename=\"export-YYYYMMDD-HHMMSS.json\"".len()
        );
        let typed = response.bytes().await.unwrap();
        assert_eq!(
            crate::export::counts(&serde_json::from_slice(&typed).unwrap()),
            [("tools".into(), 15), ("servers".into(), 5)]
        );

        let file = api.export("").await;
        let target = TestApp::spawn(source.db.another().await).await;
        let api_b = Api::new(&target).await;
        let response = api_b
            .post("/admin/import")
            .multipart(
                Form::new()
                    .part("file", Part::bytes(file.clone()).file_name("export.json"))
                    .text("conflict_strategy", "update"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let created: Value = response.json().await.unwrap();
        let id = created["job_id"].as_str().unwrap().to_owned();
        assert_eq!(location, format!("/admin/import/status/{id}"));
        assert_eq!(created["status_url"], location);

        let done = api_b.finished(&id).await;
        assert_eq!(done.status, JobState::Completed, "{:?}", done.errors);
        assert_eq!(done.progress.percent, 100.0);
        assert_eq!(done.progress.processed, 49);
        assert_eq!(done.counts["tools"].created, 15);
        assert_eq!(done.counts["servers"].created, 5);
        assert_eq!(done.counts["roots"].created, 6);
        assert_eq!(done.results_total, 49);
        let (code, page) = api_b
            .send(api_b.get(&format!("/admin/import/status/{id}/results?offset=40")))
            .await;
        assert_eq!(code, 200, "{page}");
        assert_eq!(page["total"], 49);
        assert_eq!(page["results"].as_array().unwrap().len(), 9);
        assert_eq!(done.file.name.as_deref(), Some("export.json"));
        assert_eq!(done.created_by, crate::common::ADMIN_EMAIL);
        assert_eq!(
            target
                .store
                .count_entities(app::model::EntityKind::Tool)
                .await
                .unwrap(),
            15
        );

        // The same file again: nothing changes, every entity says so.
        let (code, again) = api_b.start_import(file, &[]).await;
        assert_eq!(code, 202);
        let again = api_b.finished(again["job_id"].as_str().unwrap()).await;
        assert_eq!(again.counts["tools"].unchanged, 15);
        assert_eq!(again.counts["tools"].created, 0);

        let (code, jobs) = api_b.send(api_b.get("/admin/import/jobs")).await;
        assert_eq!(code, 200);
        assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2);

        let (code, audit) = api_b.send(api_b.get("/admin/audit?action=import")).await;
        assert_eq!(code, 200);
        let entries = audit["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["actor"], crate::common::ADMIN_EMAIL);
        assert_eq!(
            entries[0]["details"]["file_sha256"].as_str().unwrap().len(),
            64
        );
        let text = audit.to_string();
        assert!(!text.contains(&seed::seed_tool_secret(0)));
        assert!(!text.contains(SECRET));
        target.stop().await;
        source.stop().await;
    })
    .await;
}

/// An export file of `n` tools, each with a `pad`-byte description (a large file).
fn padded_tools(n: usize, pad: usize) -> Vec<u8> {
    let mut file: Value = serde_json::from_slice(&bulk_tools(n)).unwrap();
    for tool in file["entities"]["tools"].as_array_mut().unwrap() {
        tool["description"] = json!("d".repeat(pad));
    }
    serde_json::to_vec_pretty(&file).unwrap()
}

#[tokio::test]
async fn a_large_file_is_stored_in_chunks_read_back_whole_and_forgotten_at_the_end() {
    use server::store::jobs::CHUNK;
    on_each_backend(|db| async move {
        let file = padded_tools(1200, 2000);
        assert!(file.len() > 2 * CHUNK, "{} bytes", file.len());
        let chunks = file.len().div_ceil(CHUNK) as i64;
        let sha256 = server::crypto::sha256_hex(&file);

        // Queued on a replica that runs nothing: the file waits in chunks, not in `payload`.
        let a = TestApp::spawn_with(db, |s| s.import_workers = 0).await;
        let api_a = Api::new(&a).await;
        let (code, created) = api_a.start_import(file.clone(), &[]).await;
        assert_eq!(code, 202, "{created}");
        let multipart_id = created["job_id"].as_str().unwrap().to_owned();
        // ContextForge's wrapper around the very same bytes: the job keeps exactly them.
        let mut wrapped = b"{\n  \"conflict_strategy\": \"update\",\n  \"import_data\": ".to_vec();
        wrapped.extend_from_slice(&file);
        wrapped.extend_from_slice(b"\n}\n");
        let (code, created) = api_a
            .send(
                api_a
                    .post("/admin/import")
                    .header("content-type", "application/json")
                    .body(wrapped),
            )
            .await;
        assert_eq!(code, 202, "{created}");
        let json_id = created["job_id"].as_str().unwrap().to_owned();
        for id in [&multipart_id, &json_id] {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(a.store.job_chunk_count(uuid).await.unwrap(), chunks);
            let queued = api_a.status(id).await;
            assert_eq!(queued.status, JobState::Queued);
            assert_eq!(queued.file.size, file.len() as u64);
            assert_eq!(
                queued.file.sha256, sha256,
                "the job holds the file's own bytes"
            );
        }

        // Another replica runs them from the chunks.
        let b = a.replica(|_| {}).await;
        let api_b = Api::new(&b).await;
        let first = api_b.finished(&multipart_id).await;
        assert_eq!(first.status, JobState::Completed, "{:?}", first.errors);
        assert_eq!(first.counts["tools"].created, 1200);
        let second = api_b.finished(&json_id).await;
        assert_eq!(second.status, JobState::Completed, "{:?}", second.errors);
        assert_eq!(second.counts["tools"].unchanged, 1200);
        for id in [&multipart_id, &json_id] {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(b.store.job_chunk_count(uuid).await.unwrap(), 0, "forgotten");
        }
        b.stop().await;
        a.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_job_queued_before_a_restart_runs_after_it() {
    on_each_backend(|db| async move {
        let idle = TestApp::spawn_with(db, |s| s.import_workers = 0).await;
        let api = Api::new(&idle).await;
        let (code, created) = api.start_import(bulk_tools(25), &[]).await;
        assert_eq!(code, 202, "{created}");
        let id = created["job_id"].as_str().unwrap().to_owned();
        drop(api);
        let db = idle.stop_keeping_db().await;

        let restarted = TestApp::spawn(db).await;
        let api = Api::new(&restarted).await;
        let done = api.finished(&id).await;
        assert_eq!(done.status, JobState::Completed, "{:?}", done.errors);
        assert_eq!(done.counts["tools"].created, 25);
        restarted.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_job_answers_the_same_after_a_restart() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        let (code, created) = api.start_import(bulk_tools(20), &[]).await;
        assert_eq!(code, 202, "{created}");
        let id = created["job_id"].as_str().unwrap().to_owned();
        let before = api.finished(&id).await;
        drop(api);
        let db = app.stop_keeping_db().await;

        let restarted = TestApp::spawn(db).await;
        let api = Api::new(&restarted).await;
        let after = api.status(&id).await;
        assert_eq!(after, before);
        assert_eq!(after.counts["tools"].created, 20);
        restarted.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_job_posted_to_one_replica_is_run_by_another() {
    on_each_backend(|db| async move {
        // `a` only accepts jobs; `b` runs them. Both answer for them.
        let a = TestApp::spawn_with(db, |s| s.import_workers = 0).await;
        let api_a = Api::new(&a).await;
        let (code, created) = api_a
            .start_import(bulk_tools(30), &[("dry_run", "false")])
            .await;
        assert_eq!(code, 202, "{created}");
        let id = created["job_id"].as_str().unwrap().to_owned();

        // Follow it on `a` while nobody runs it yet.
        let events = api_a
            .get(&format!("/admin/import/status/{id}/events"))
            .send()
            .await
            .unwrap();
        assert_eq!(events.status(), 200);
        assert!(
            events.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(api_a.status(&id).await.status, JobState::Queued);

        let b = a.replica(|_| {}).await;
        let api_b = Api::new(&b).await;
        let done = api_b.finished(&id).await;
        assert_eq!(done.status, JobState::Completed, "{:?}", done.errors);
        assert_eq!(
            api_a.status(&id).await,
            done,
            "every replica answers the same"
        );

        let events = read_events(events).await;
        let (first, last) = (&events[0], events.last().unwrap());
        assert_eq!(first.0, "progress");
        assert_eq!(first.1.status, JobState::Queued);
        assert_eq!(last.0, "done");
        assert_eq!(last.1.status, JobState::Completed);
        assert_eq!(last.1.counts["tools"].created, 30);
        b.stop().await;
        a.stop().await;
    })
    .await;
}

#[tokio::test]
async fn events_follow_a_running_job_to_its_end() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        let (code, created) = api.start_import(bulk_tools(1500), &[]).await;
        assert_eq!(code, 202);
        let id = created["job_id"].as_str().unwrap();
        let response = api
            .get(&format!("/admin/import/status/{id}/events"))
            .send()
            .await
            .unwrap();
        let events = read_events(response).await;
        assert!(!events.is_empty());
        let processed: Vec<u64> = events.iter().map(|(_, s)| s.progress.processed).collect();
        assert!(
            processed.windows(2).all(|w| w[0] <= w[1]),
            "progress only grows: {processed:?}"
        );
        let (name, last) = events.last().unwrap();
        assert_eq!(name, "done");
        assert_eq!(last.status, JobState::Completed);
        assert_eq!(last.progress.percent, 100.0);
        assert!(
            events[..events.len() - 1]
                .iter()
                .all(|(n, _)| n == "progress")
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn cancel_stops_a_queued_job_and_rolls_back_a_running_one() {
    on_each_backend(|db| async move {
        let idle = TestApp::spawn_with(db, |s| s.import_workers = 0).await;
        let api = Api::new(&idle).await;
        let (_, created) = api.start_import(bulk_tools(5), &[]).await;
        let id = created["job_id"].as_str().unwrap().to_owned();
        let (code, cancelled) = api
            .send(api.post(&format!("/admin/import/{id}/cancel")))
            .await;
        assert_eq!(code, 200);
        assert_eq!(cancelled["status"], "cancelled");
        let (code, again) = api
            .send(api.post(&format!("/admin/import/{id}/cancel")))
            .await;
        assert_eq!(code, 409, "{again}");
        let (code, _) = api
            .send(api.post(&format!("/admin/import/{}/cancel", uuid::Uuid::new_v4())))
            .await;
        assert_eq!(code, 404);
        drop(api);
        let db = idle.stop_keeping_db().await;

        // A running job: cancel as soon as its first entities are in.
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        let (_, created) = api.start_import(bulk_tools(20_000), &[]).await;
        let id = created["job_id"].as_str().unwrap().to_owned();
        let response = api
            .get(&format!("/admin/import/status/{id}/events"))
            .send()
            .await
            .unwrap();
        let mut stream = response.bytes_stream();
        let mut seen = String::new();
        while !seen.contains("\"status\":\"running\"") {
            let chunk = stream.next().await.expect("events until running").unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        let (code, body) = api
            .send(api.post(&format!("/admin/import/{id}/cancel")))
            .await;
        assert_eq!(code, 200, "{body}");
        let end = api.finished(&id).await;
        assert_eq!(end.status, JobState::Cancelled);
        assert!(end.progress.processed < 20_000);
        assert_eq!(
            app.store
                .count_entities(app::model::EntityKind::Tool)
                .await
                .unwrap(),
            0,
            "rolled back"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn previews_show_dependencies_conflicts_and_write_nothing() {
    on_each_backend(|db| async move {
        let app = TestApp::spawn(db).await;
        seed_app(&app).await;
        let api = Api::new(&app).await;

        let (code, preview) = api
            .send(
                api.post("/admin/export/preview")
                    .json(&json!({"servers": ["seed-server-1"]})),
            )
            .await;
        assert_eq!(code, 200, "{preview}");
        assert_eq!(
            preview["selected"],
            json!([{"type": "server", "name": "seed-server-1"}])
        );
        let deps = preview["dependencies"].as_array().unwrap();
        assert_eq!(deps.len(), 6, "3 tools, 2 prompts, 1 resource: {deps:?}");
        assert!(
            deps.iter()
                .all(|d| d["required_by"] == json!(["seed-server-1"]))
        );
        assert_eq!(preview["total"], 7);

        // Export Selected: two tools by id, one server by name, plus the server's needs.
        let (_, tools) = api.send(api.get("/tools?limit=2")).await;
        let ids: Vec<&str> = tools["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap())
            .collect();
        let response = api
            .post("/admin/export/selective")
            .json(
                &json!({"tools": ids, "servers": ["seed-server-1"], "include_dependencies": true}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let file: Value = response.json().await.unwrap();
        let tool_names: Vec<&str> = file["entities"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        for t in tools["items"].as_array().unwrap() {
            assert!(tool_names.contains(&t["name"].as_str().unwrap()));
        }
        assert_eq!(file["entities"]["servers"].as_array().unwrap().len(), 1);
        assert!(file["entities"].get("roots").is_none());

        // Import preview, ContextForge's JSON shape: everything exists already.
        let export: Value = serde_json::from_slice(&api.export("").await).unwrap();
        let (code, plan) = api
            .send(
                api.post("/admin/import/preview")
                    .json(&json!({"import_data": export, "conflict_strategy": "SKIP"})),
            )
            .await;
        assert_eq!(code, 200, "{plan}");
        assert_eq!(plan["total"], 49);
        assert_eq!(plan["conflicts"].as_array().unwrap().len(), 49);
        assert_eq!(plan["counts"]["tools"]["unchanged"], 15);

        // Into an empty gateway: all new, and the servers' needs are listed.
        let empty = TestApp::spawn(app.db.another().await).await;
        let api_e = Api::new(&empty).await;
        let (code, plan) = api_e
            .send(
                api_e
                    .post("/admin/import/preview")
                    .json(&json!({"import_data": export})),
            )
            .await;
        assert_eq!(code, 200, "{plan}");
        assert_eq!(plan["counts"]["tools"]["created"], 15);
        assert!(plan["conflicts"].as_array().unwrap().is_empty());
        assert!(plan["dependencies"].as_array().unwrap().iter().any(|d| {
            d["required_by"]
                .as_array()
                .unwrap()
                .contains(&json!("seed-server-1"))
        }));
        assert_eq!(
            empty
                .store
                .count_entities(app::model::EntityKind::Tool)
                .await
                .unwrap(),
            0
        );
        empty.stop().await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bad_requests_are_refused_with_every_reason_and_queue_nothing() {
    let app = TestApp::spawn_with(TestDb::sqlite(), |s| s.max_upload_mb = 1).await;
    let api = Api::new(&app).await;

    let (code, body) = api
        .send(api.get("/admin/export?types=tools,widgets&format=xml&colour=red"))
        .await;
    assert_eq!(code, 400);
    let pointers: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/types", "/format", "/colour"]);

    let (code, body) = api
        .send(
            api.post("/admin/export/selective")
                .json(&json!({"widgets": ["x"], "tools": "x"})),
        )
        .await;
    assert_eq!(code, 400);
    assert_eq!(body["error"]["details"].as_array().unwrap().len(), 2);

    // 422: every problem of the file, and no job.
    let bad = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/contextforge/bad-inputs/schema-tool-missing-url.json"
    ))
    .unwrap();
    let (code, body) = api.start_import(bad, &[]).await;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["error"]["code"], "validation_failed");
    assert!(
        body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["pointer"]
                .as_str()
                .unwrap()
                .starts_with("/entities/tools/"))
    );

    let (code, body) = api
        .start_import(
            bulk_tools(1),
            &[("conflict_strategy", "merge"), ("dry_run", "perhaps")],
        )
        .await;
    assert_eq!(code, 400);
    assert_eq!(
        body["error"]["details"].as_array().unwrap().len(),
        2,
        "{body}"
    );

    let (code, body) = api
        .start_import(
            bulk_tools(1),
            &[("rekey_secret", "not-this-gateways-secret-at-all-0123456789")],
        )
        .await;
    assert_eq!(code, 400);
    assert_eq!(body["error"]["details"][0]["pointer"], "/rekey_secret");

    // 413 with the limit named; 415 for a body that is neither form nor JSON.
    let big = vec![b' '; 2 << 20];
    let (code, body) = api.start_import(big, &[]).await;
    assert_eq!(code, 413);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("1 MB"),
        "{body}"
    );
    let (code, body) = api
        .send(
            api.post("/admin/import")
                .header("content-type", "application/json")
                .body(vec![b' '; 2 << 20]),
        )
        .await;
    assert_eq!(code, 413, "a JSON body too: {body}");
    let (code, body) = api
        .send(
            api.post("/admin/import")
                .header("content-type", "text/plain")
                .body("hello"),
        )
        .await;
    assert_eq!(code, 415, "{body}");

    let (code, jobs) = api.send(api.get("/admin/import/jobs")).await;
    assert_eq!(code, 200);
    assert!(
        jobs["jobs"].as_array().unwrap().is_empty(),
        "nothing was queued"
    );
    assert_eq!(
        app.store
            .count_entities(app::model::EntityKind::Tool)
            .await
            .unwrap(),
        0
    );

    let (code, _) = api.send(api.get("/admin/import/status/not-a-uuid")).await;
    assert_eq!(code, 404);
    let (code, body) = api.send(api.get("/admin/audit?since=yesterday")).await;
    assert_eq!(code, 400);
    assert_eq!(body["error"]["details"][0]["pointer"], "/since");
    app.stop().await;
}

#[tokio::test]
async fn openapi_describes_every_operation_and_every_reference_resolves() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let client = app.client();
    let doc: Value = client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/admin/export",
        "/admin/export/selective",
        "/admin/export/preview",
        "/admin/import",
        "/admin/import/preview",
        "/admin/import/status/{id}",
        "/admin/import/status/{id}/events",
        "/admin/import/{id}/cancel",
        "/admin/import/jobs",
        "/admin/audit",
        "/tools",
        "/tools/{id}",
        "/roots/{id}",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = doc.to_string();
    let mut refs = 0;
    for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = piece.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "{name} is defined");
        refs += 1;
    }
    assert!(refs > 30);
    let docs = client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.contains("/admin/import/status/{id}/events") && html.contains("JobStatus"));
    app.stop().await;
}
