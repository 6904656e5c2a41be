//! Crash safety: `kill -9` in the middle of an import leaves no partial row.
//!
//! (a) `mcpgateway import` of 100,000 entities is killed three times (twice at a random
//! moment after its transaction has started writing, once before it writes),
//! on a seeded SQLite database: after each kill the tables hold exactly the seed and the
//! file is sound; a fourth run imports everything. (b) `mcpgateway serve` is killed
//! while its import job runs; restarted on the same database, it reports the job failed
//! ("interrupted"), no row of it exists, and the same import posted again completes.

use std::{
    fmt::Write as _,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use app::jobs::JobState;
use rand::Rng;
use sqlx::Connection;

use crate::common::{
    TestDb,
    harness::{self, api_for, cli, entity_counts, kill9},
    seed_store,
};

/// The seed data set: tools, gateways, servers, prompts, resources, roots.
const SEED: [i64; 6] = [15, 3, 5, 12, 8, 6];

/// An export file of `n` entities (half tools; servers each use three of them) and
/// its counts per type.
fn big_file(n: usize) -> (Vec<u8>, [i64; 6]) {
    let (tools, gateways, servers, prompts, resources) = (n / 2, n / 50, n / 10, n / 5, n / 10);
    let roots = n - tools - gateways - servers - prompts - resources;
    let mut s = String::with_capacity(n * 160);
    s.push_str(
        r#"{"version":"2025-11-25","exported_at":"2026-11-26T00:00:00Z","entities":{"tools":["#,
    );
    for i in 0..tools {
        let sep = if i > 0 { "," } else { "" };
        let _ = write!(
            s,
            r#"{sep}{{"name":"crash-tool-{i:06}","url":"https://crash.example.com/t/{i}","tags":["crash"]}}"#
        );
    }
    s.push_str(r#"],"gateways":["#);
    for i in 0..gateways {
        let sep = if i > 0 { "," } else { "" };
        let _ = write!(
            s,
            r#"{sep}{{"name":"crash-gateway-{i:06}","url":"https://crash.example.com/g/{i}/sse","transport":"SSE"}}"#
        );
    }
    s.push_str(r#"],"servers":["#);
    for i in 0..servers {
        let sep = if i > 0 { "," } else { "" };
        let t = |k: usize| format!("crash-tool-{:06}", (i * 3 + k) % tools);
        let _ = write!(
            s,
            r#"{sep}{{"name":"crash-server-{i:06}","tool_ids":["{}","{}","{}"]}}"#,
            t(0),
            t(1),
            t(2)
        );
    }
    s.push_str(r#"],"prompts":["#);
    for i in 0..prompts {
        let sep = if i > 0 { "," } else { "" };
        let _ = write!(
            s,
            r#"{sep}{{"name":"crash-prompt-{i:06}","template":"Hello {{{{ who }}}} #{i}"}}"#
        );
    }
    s.push_str(r#"],"resources":["#);
    for i in 0..resources {
        let sep = if i > 0 { "," } else { "" };
        let _ = write!(
            s,
            r#"{sep}{{"name":"crash-resource-{i:06}","uri":"file:///crash/r/{i}.txt"}}"#
        );
    }
    s.push_str(r#"],"roots":["#);
    for i in 0..roots {
        let sep = if i > 0 { "," } else { "" };
        let _ = write!(
            s,
            r#"{sep}{{"name":"crash-root-{i:06}","uri":"file:///crash/root/{i}"}}"#
        );
    }
    s.push_str("]}}");
    let counts = [tools, gateways, servers, prompts, resources, roots].map(|c| c as i64);
    (s.into_bytes(), counts)
}

fn sum(a: [i64; 6], b: [i64; 6]) -> [i64; 6] {
    std::array::from_fn(|i| a[i] + b[i])
}

fn wal_size(db_file: &Path) -> u64 {
    std::fs::metadata(db_file.with_extension("db-wal")).map_or(0, |m| m.len())
}

/// Waits until the WAL has grown by a megabyte past `base` (the import's transaction is
/// writing); false if the process ended first.
fn wait_for_writes(child: &mut Child, db_file: &Path, base: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if wal_size(db_file) > base + (1 << 20) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

async fn integrity_ok(db: &TestDb) {
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
}

#[tokio::test]
async fn a_cli_import_killed_at_random_moments_leaves_no_partial_row() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    seed_store(&store).await;
    store.close().await;
    let n = 100_000;
    let (bytes, counts) = big_file(n);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.json");
    std::fs::write(&file, &bytes).unwrap();
    let db_file = Path::new(db.url.trim_start_matches("sqlite://")).to_owned();
    let mut rng = rand::rng();
    // Twice at a random moment after the transaction has started writing, then once at a
    // random moment before it does (reading and validating), scaled to this machine.
    let mut until_writes = Duration::ZERO;
    for attempt in 0..3 {
        let base = wal_size(&db_file);
        let started = Instant::now();
        let mut child = cli(&db)
            .args(["import", file.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let when = if attempt < 2 {
            assert!(
                wait_for_writes(&mut child, &db_file, base),
                "attempt {attempt}: the import ended before it was killed"
            );
            until_writes = started.elapsed();
            // The writing takes about as long as the reading: stay well inside it.
            std::thread::sleep(until_writes.mul_f64(rng.random_range(0.0..0.4)));
            "while writing"
        } else {
            std::thread::sleep(until_writes.mul_f64(rng.random_range(0.05..0.9)));
            "before writing"
        };
        assert!(
            child.try_wait().unwrap().is_none(),
            "attempt {attempt} ({when}): the import ended before it was killed"
        );
        kill9(&mut child);
        integrity_ok(&db).await;
        let store = db.store().await;
        assert_eq!(
            entity_counts(&store).await,
            SEED,
            "attempt {attempt}, killed {when}: only the rows from before"
        );
        store.close().await;
    }
    let done = cli(&db)
        .args(["import", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let store = db.store().await;
    assert_eq!(entity_counts(&store).await, sum(SEED, counts));
    store.close().await;
}

/// `mcpgateway serve` on `db`; the restarted server fails the killed one's job once it
/// has been silent for the (shortened) runner timeout.
fn serve(db: &TestDb) -> (harness::KillOnDrop, String) {
    harness::serve(db, &[("MCPGATEWAY_JOB_RUNNER_TIMEOUT_SECS", "5")])
}

#[tokio::test]
async fn a_server_killed_during_an_import_job_reports_it_failed_after_restart() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    seed_store(&store).await;
    store.close().await;
    let (bytes, counts) = big_file(40_000);

    let (mut child, url) = serve(&db);
    let api = api_for(&db, url).await;
    let (status, body) = api.upload("/admin/import", bytes.clone()).await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let job = api.status(&id).await;
        assert!(
            !job.status.is_final(),
            "the job ended before the kill: {:?}",
            job.status
        );
        if job.status == JobState::Running {
            break;
        }
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pause = rand::rng().random_range(0..500);
    tokio::time::sleep(Duration::from_millis(pause)).await;
    assert!(child.try_wait().unwrap().is_none());
    kill9(&mut child);
    integrity_ok(&db).await;

    let (mut child, url) = serve(&db);
    let api = api_for(&db, url).await;
    // The worker marks the interrupted job failed once its runner has been silent long enough.
    let job = loop {
        let job = api.status(&id).await;
        if job.status.is_final() {
            break job;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(30),
            "still {:?}",
            job.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job.status, JobState::Failed);
    assert_eq!(job.errors[0].code, "interrupted");
    assert!(
        job.errors[0].message.contains("nothing was imported"),
        "{:?}",
        job.errors
    );
    let store = db.store().await;
    assert_eq!(entity_counts(&store).await, SEED, "no partial row");

    let (status, body) = api.upload("/admin/import", bytes).await;
    assert_eq!(status, 202, "{body}");
    let again = api.finished(body["job_id"].as_str().unwrap()).await;
    assert_eq!(again.status, JobState::Completed, "{:?}", again.errors);
    assert_eq!(entity_counts(&store).await, sum(SEED, counts));
    store.close().await;
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    child.wait().unwrap();
}
