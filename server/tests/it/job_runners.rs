//! Import jobs that outlive trouble (issue #13, points 9, 11 and 12), on every backend:
//! a final status write that fails is retried and the job still ends (SSE `done`, chunks
//! gone); cancel ends a job whose runner is gone; a second process never fails a job
//! whose runner heartbeats, and fails it once the runner is killed; two imports of the
//! same keys at once both complete (or the second reports a conflict), never `internal`.

use std::time::{Duration, Instant};

use app::jobs::{JobState, JobStatus};
use secrecy::SecretString;
use serde_json::{Value, json};
use server::{
    crypto::Cipher,
    store::{Store, jobs::NewJob, now, with_pool},
    transfer::{
        import::{ConflictStrategy, ImportError, ImportOptions, import},
        input::Input,
    },
};

use crate::common::{
    ADMIN_EMAIL, SECRET, TestApp, TestDb,
    harness::{self, Api, api_for, kill9, read_events},
    on_each_backend,
};

/// An export file of `n` tools named `runner-tool-00000`….
fn tools(n: usize) -> Vec<u8> {
    tools_at(n, "api.example.com")
}

async fn execute(store: &Store, sql: &str) {
    with_pool!(store, |pool| sqlx::raw_sql(sqlx::AssertSqlSafe(
        sql.to_owned()
    ))
    .execute(pool)
    .await
    .map(drop))
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Makes every write that ends a job fail, as a database that refuses writes would.
async fn block_final_writes(store: &Store) {
    let sql = match store {
        Store::Sqlite(_) => {
            "CREATE TRIGGER block_final_write BEFORE UPDATE OF status ON import_jobs \
             WHEN NEW.status IN ('completed', 'failed', 'cancelled') \
             BEGIN SELECT RAISE(ABORT, 'final write refused by the test'); END"
        }
        Store::Postgres(_) => {
            "CREATE FUNCTION block_final_write() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'final write refused by the test'; END $$; \
             CREATE TRIGGER block_final_write BEFORE UPDATE ON import_jobs FOR EACH ROW \
             WHEN (NEW.status IN ('completed', 'failed', 'cancelled')) \
             EXECUTE FUNCTION block_final_write()"
        }
    };
    execute(store, sql).await;
}

async fn unblock_final_writes(store: &Store) {
    let sql = match store {
        Store::Sqlite(_) => "DROP TRIGGER block_final_write",
        Store::Postgres(_) => "DROP TRIGGER block_final_write ON import_jobs",
    };
    execute(store, sql).await;
}

/// The SSE events (name, status) of a job until the stream ends.
async fn events(api: &Api, id: &str) -> Vec<(String, JobStatus)> {
    let response = api
        .get(&format!("/admin/import/status/{id}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    read_events(response).await
}

#[tokio::test]
async fn a_job_whose_final_write_fails_still_ends_and_sse_says_done() {
    on_each_backend(|db| async move {
        let backend = db.backend;
        let app = TestApp::spawn(db).await;
        let api = Api::new(&app).await;
        block_final_writes(&app.store).await;
        let (code, created) = api.start_import(tools(50), &[]).await;
        assert_eq!(code, 202, "{created}");
        let id = created["job_id"].as_str().unwrap().to_owned();
        let uuid: uuid::Uuid = id.parse().unwrap();
        let watching = tokio::spawn({
            let (api, id) = (api.clone(), id.clone());
            async move { events(&api, &id).await }
        });
        // The import commits; its end cannot be written.
        let deadline = Instant::now() + Duration::from_secs(30);
        while app
            .store
            .count_entities(app::model::EntityKind::Tool)
            .await
            .unwrap()
            < 50
        {
            assert!(
                Instant::now() < deadline,
                "{backend}: the import never committed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Past every quick retry: the end is left to the worker's sweep.
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert_eq!(api.status(&id).await.status, JobState::Running, "{backend}");
        unblock_final_writes(&app.store).await;

        let end = api.finished_within(&id, Duration::from_secs(15)).await;
        assert_eq!(
            end.status,
            JobState::Completed,
            "{backend}: {:?}",
            end.errors
        );
        assert_eq!(end.counts["tools"].created, 50, "{backend}");
        let events = watching.await.unwrap();
        let (name, last) = events.last().expect("events");
        assert_eq!(name, "done", "{backend}");
        assert_eq!(last.status, JobState::Completed, "{backend}");
        assert_eq!(
            app.store.job_chunk_count(uuid).await.unwrap(),
            0,
            "{backend}: chunks gone"
        );
        app.stop().await;
    })
    .await;
}

/// Queues a job straight into the store and marks it running under `runner`.
async fn running_job(store: &Store, runner: &str) -> uuid::Uuid {
    let id = uuid::Uuid::new_v4();
    let file = Input::from(tools(3));
    store
        .insert_job(NewJob {
            id,
            created_by: ADMIN_EMAIL,
            options: json!({"conflict_strategy": "update", "dry_run": false, "include": null}),
            file_name: Some("tools.json"),
            file_sha256: "0",
            payload: &file,
            sealed_source_secret: None,
        })
        .await
        .unwrap();
    let claimed = store.claim_job(runner).await.unwrap().expect("queued");
    assert_eq!(claimed.id, id);
    id
}

/// Makes the job's own heartbeat an hour old (its runner has no row at all).
async fn silence(store: &Store, id: uuid::Uuid) {
    let sql = "UPDATE import_jobs SET heartbeat_at = $1 WHERE id = $2";
    with_pool!(store, |pool| sqlx::query(sql)
        .bind(now() - chrono::Duration::hours(1))
        .bind(id)
        .execute(pool)
        .await
        .map(drop))
    .unwrap();
}

#[tokio::test]
async fn cancel_ends_a_job_whose_runner_is_gone_and_deletes_its_chunks() {
    on_each_backend(|db| async move {
        let backend = db.backend;
        let app = TestApp::spawn_with(db, |s| {
            s.import_workers = 0;
            s.job_runner_timeout_secs = 5;
        })
        .await;
        let api = Api::new(&app).await;
        let id = running_job(&app.store, "a-runner-that-died").await;
        silence(&app.store, id).await;
        assert_eq!(app.store.job_chunk_count(id).await.unwrap(), 1);

        // Until this process has heard its own heartbeat for a whole timeout it cannot
        // tell; then the cancel ends the job.
        let deadline = Instant::now() + Duration::from_secs(20);
        let cancelled = loop {
            let (code, body) = api
                .send(api.post(&format!("/admin/import/{id}/cancel")))
                .await;
            assert_eq!(code, 200, "{backend}: {body}");
            if body["status"] == "cancelled" {
                break body;
            }
            assert!(
                Instant::now() < deadline,
                "{backend}: cancel never ended the job: {body}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        assert!(cancelled["finished_at"].is_string(), "{backend}");
        assert_eq!(
            app.store.job_chunk_count(id).await.unwrap(),
            0,
            "{backend}: chunks gone"
        );
        let events = events(&api, &id.to_string()).await;
        assert_eq!(events.len(), 1, "{backend}");
        assert_eq!(events[0].0, "done", "{backend}");
        assert_eq!(events[0].1.status, JobState::Cancelled, "{backend}");
        app.stop().await;
    })
    .await;
}

/// `mcpgateway serve` on `db` with a short runner timeout; the child and its base URL.
fn serve(db: &TestDb, workers: &str) -> (harness::KillOnDrop, String) {
    harness::serve(
        db,
        &[
            ("MCPGATEWAY_JOB_RUNNER_TIMEOUT_SECS", "5"),
            ("MCPGATEWAY_IMPORT_WORKERS", workers),
        ],
    )
}

/// The runners registered in `import_runners`.
async fn runners(store: &Store) -> Vec<String> {
    with_pool!(store, |pool| sqlx::query_scalar(
        "SELECT id FROM import_runners"
    )
    .fetch_all(pool)
    .await)
    .unwrap()
}

#[tokio::test]
async fn a_second_process_fails_only_jobs_whose_runner_is_really_gone() {
    on_each_backend(|db| async move {
        let backend = db.backend;
        let store = db.store().await;
        // Process A holds a running job (its worker is off, so only its heartbeat tells).
        let (mut a, _) = serve(&db, "0");
        let deadline = Instant::now() + Duration::from_secs(30);
        let runner_a = loop {
            if let [one] = runners(&store).await.as_slice() {
                break one.clone();
            }
            assert!(Instant::now() < deadline, "{backend}: A never registered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let id = running_job(&store, &runner_a).await;

        // Process B starts on the same database, runs its worker and sweeps for longer
        // than the runner timeout: A heartbeats, so its job stays running.
        let (mut b, url_b) = serve(&db, "1");
        let api_b = api_for(&db, url_b).await;
        tokio::time::sleep(Duration::from_secs(12)).await;
        let job = api_b.status(&id.to_string()).await;
        assert_eq!(job.status, JobState::Running, "{backend}: {:?}", job.errors);
        assert_eq!(store.job_chunk_count(id).await.unwrap(), 1);

        // A dies: B fails its job, without a restart.
        kill9(&mut a);
        let job = api_b
            .finished_within(&id.to_string(), Duration::from_secs(30))
            .await;
        assert_eq!(job.status, JobState::Failed, "{backend}");
        assert_eq!(job.errors[0].code, "interrupted", "{backend}");
        assert_eq!(
            store.job_chunk_count(id).await.unwrap(),
            0,
            "{backend}: chunks gone"
        );
        kill9(&mut b);
        store.close().await;
    })
    .await;
}

fn options(strategy: ConflictStrategy) -> ImportOptions<'static> {
    ImportOptions {
        strategy,
        ..Default::default()
    }
}

/// `n` tools named `runner-tool-00000`…, pointing at `host`.
fn tools_at(n: usize, host: &str) -> Vec<u8> {
    let tools: Vec<Value> = (0..n)
        .map(|i| json!({"name": format!("runner-tool-{i:05}"), "url": format!("https://{host}/t/{i}")}))
        .collect();
    serde_json::to_vec(&json!({
        "version": "2025-03-26",
        "exported_at": "2026-12-04T00:00:00Z",
        "entities": { "tools": tools },
    }))
    .unwrap()
}

#[tokio::test]
async fn two_imports_of_the_same_keys_at_once_both_complete_or_report_a_conflict() {
    on_each_backend(|db| async move {
        let backend = db.backend;
        // Two replicas (two pools on one database) import the same keys, differently.
        let (one, two) = (db.store().await, db.store().await);
        let key = Cipher::new(&SecretString::from(SECRET));
        let n = 3_000;
        let (first, second) = (
            tools_at(n, "one.example.com"),
            tools_at(n, "two.example.com"),
        );
        let update = options(ConflictStrategy::Update);
        let (a, b) = tokio::join!(
            import(&one, &key, first.as_slice(), &update, "one@example.com"),
            import(&two, &key, second.as_slice(), &update, "two@example.com"),
        );
        for (name, result) in [("first", a), ("second", b)] {
            match result {
                Ok(report) => assert_eq!(report.results.len(), n, "{backend}"),
                Err(e) => panic!("{backend}: the {name} import failed: {e:?}"),
            }
        }
        assert_eq!(
            one.count_entities(app::model::EntityKind::Tool)
                .await
                .unwrap(),
            n as i64
        );

        // With `fail`, whichever comes second finds the keys taken: a conflict.
        let fresh = db.another().await;
        let (one, two) = (fresh.store().await, fresh.store().await);
        let fail = options(ConflictStrategy::Fail);
        let (a, b) = tokio::join!(
            import(&one, &key, first.as_slice(), &fail, "one@example.com"),
            import(&two, &key, second.as_slice(), &fail, "two@example.com"),
        );
        let outcomes: Vec<String> = [a, b]
            .into_iter()
            .map(|r| match r {
                Ok(_) => "imported".to_owned(),
                Err(ImportError::Conflict(_)) => "conflict".to_owned(),
                Err(e) => format!("error: {e}"),
            })
            .collect();
        let mut sorted = outcomes.clone();
        sorted.sort();
        assert_eq!(sorted, ["conflict", "imported"], "{backend}: {outcomes:?}");
    })
    .await;
}
