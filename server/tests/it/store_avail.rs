//! The store stays available. (a) A full disk costs the writes made while it is full,
//! each answered in words (507, a job `failed` with `storage_full`), `/ready` says 503
//! meanwhile, and once space returns every write, sign-in and import works again in
//! the same process: no pooled connection is left inside a transaction SQLite already
//! rolled back. (b) While another transaction holds the write lock (as a running import
//! does), reads with a token answer 200 (the token's last use is bookkept in the
//! background), writes answer 503 with `Retry-After` within the configured lock wait,
//! and a CLI import says the gateway is busy importing.
//!
//! The disk-full story needs a small file system of its own: a tmpfs, else an ext4 image
//! on a loop device; where neither can be mounted it says so on stderr and skips.

use std::{
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use app::jobs::JobState;
use sqlx::{Connection, Executor};
use tempfile::TempDir;

use crate::common::{
    ADMIN_EMAIL, ADMIN_PASSWORD, TestApp, TestDb,
    harness::{Api, cli},
    on_each_backend,
};

/// An export file of `n` tools, each with a description long enough that the import
/// writes several megabytes.
fn tools_file(prefix: &str, n: usize) -> Vec<u8> {
    let mut s = String::from(
        r#"{"version":"2025-11-25","exported_at":"2026-12-04T00:00:00Z","entities":{"tools":["#,
    );
    let words = "a tool that stands in for a real one while the disk fills up ".repeat(4);
    for i in 0..n {
        let sep = if i > 0 { "," } else { "" };
        let _ = write!(
            s,
            r#"{sep}{{"name":"{prefix}-{i:05}","url":"https://full.example.com/t/{i}","description":"{words}{i}"}}"#
        );
    }
    s.push_str("]}}");
    s.into_bytes()
}

/// A file system of `size_mb` MiB mounted on a fresh directory, unmounted when dropped.
struct SmallFs {
    mount: TempDir,
    /// The ext4 image behind a loop mount (kept until the unmount).
    _image: Option<TempDir>,
}

impl SmallFs {
    /// A tmpfs, else an ext4 image on a loop device; `None` after saying on stderr why
    /// neither could be mounted (written past the test harness's capture, so a skip is
    /// never silent).
    fn mount(size_mb: u32) -> Option<SmallFs> {
        let mount = tempfile::tempdir().unwrap();
        let target = mount.path().to_str().unwrap().to_owned();
        let tmpfs = run(Command::new("mount").args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size_mb}m"),
            "tmpfs",
            &target,
        ]));
        let Err(tmpfs_error) = tmpfs else {
            return Some(SmallFs {
                mount,
                _image: None,
            });
        };
        let image_dir = tempfile::tempdir().unwrap();
        let image = image_dir.path().join("fs.img");
        let looped = std::fs::File::create(&image)
            .and_then(|f| f.set_len(u64::from(size_mb) << 20))
            .map_err(|e| e.to_string())
            .and_then(|()| run(Command::new("mkfs.ext4").arg("-q").arg("-F").arg(&image)))
            .and_then(|()| {
                run(Command::new("mount")
                    .arg("-o")
                    .arg("loop")
                    .arg(&image)
                    .arg(&target))
            });
        match looped {
            Ok(()) => Some(SmallFs {
                mount,
                _image: Some(image_dir),
            }),
            Err(loop_error) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED disk-full test: cannot mount a small file system \
                     (tmpfs: {tmpfs_error}; ext4 loop image: {loop_error})"
                );
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.mount.path()
    }

    /// Writes a file until the file system refuses another byte; its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        for chunk in [1 << 20, 4096, 1] {
            let block = vec![0x5a_u8; chunk];
            while file.write_all(&block).is_ok() {}
        }
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.mount.path())
            .status();
    }
}

/// Runs a command; its stderr as the error when it fails.
fn run(cmd: &mut Command) -> Result<(), String> {
    match cmd.output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Leaves the SQLite file's WAL with room for a few small writes only: a later
/// transaction larger than that must grow it, which a full disk refuses.
async fn shrink_wal(db: &TestDb) {
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .unwrap();
    // About 100 KB of frames, then checkpointed so that the next writer starts over
    // them instead of appending.
    conn.execute(
        "CREATE TABLE wal_room (b BLOB); INSERT INTO wal_room VALUES (zeroblob(98304)); \
         DROP TABLE wal_room;",
    )
    .await
    .unwrap();
    conn.execute("PRAGMA wal_checkpoint(RESTART)")
        .await
        .unwrap();
    conn.close().await.unwrap();
}

async fn ready(api: &Api) -> (u16, serde_json::Value) {
    api.send(api.client.get(format!("{}/ready", api.base)))
        .await
}

/// Signs in with the login form (303 with a cookie when it worked).
async fn sign_in(api: &Api) -> reqwest::Response {
    api.client
        .post(format!("{}/auth/login", api.base))
        .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_full_disk_costs_one_failed_write_and_the_store_heals_without_a_restart() {
    let Some(fs) = SmallFs::mount(32) else {
        return;
    };
    // Arrange: an import queued by a gateway that runs no jobs, on a file system that
    // is then filled, leaving the WAL room for small writes only. (The queuing gateway
    // keeps running: SQLite's shared-memory file must outlive the fill, as it does in a
    // gateway that runs on while its disk fills.)
    let db = TestDb::sqlite_at(&fs.path().join("gateway.db"));
    let queuer = TestApp::spawn_with(db, |s| s.import_workers = 0).await;
    let mut api = Api::new(&queuer).await;
    let (code, created) = api
        .start_import(tools_file("full", 4000), &[("conflict_strategy", "update")])
        .await;
    assert_eq!(code, 202, "{created}");
    let job = created["job_id"].as_str().unwrap().to_owned();
    shrink_wal(&queuer.db).await;
    let filler = fs.fill();

    // Act: a replica that runs the job on the full disk.
    let app = queuer.replica(|_| {}).await;
    api.base = app.base.clone();
    let status = api.finished(&job).await;

    // Assert: the job failed in words, /ready says the store cannot write, and a
    // submission is refused with 507, not 500.
    assert_eq!(status.status, JobState::Failed, "{:?}", status.errors);
    assert_eq!(status.errors[0].code, "storage_full", "{:?}", status.errors);
    let (code, body) = ready(&api).await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("disk is full"),
        "{body}"
    );
    let (code, body) = api
        .start_import(
            tools_file("again", 2000),
            &[("conflict_strategy", "update")],
        )
        .await;
    assert_eq!(code, 507, "{body}");
    assert_eq!(body["error"]["code"], "storage_full", "{body}");

    // Space returns: without a restart, /ready says 200 and every write works at once.
    std::fs::remove_file(filler).unwrap();
    let (code, body) = ready(&api).await;
    assert_eq!(code, 200, "{body}");
    for i in 0..24 {
        let started = Instant::now();
        let (code, body) = api
            .send(api.post("/tools").json(&serde_json::json!({
                "name": format!("after-{i}"),
                "url": "https://after.example.com",
            })))
            .await;
        assert_eq!(code, 201, "write {i} after space returned: {body}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "write {i} waited {:?}",
            started.elapsed()
        );
        if i % 8 == 0 {
            assert_eq!(sign_in(&api).await.status(), 303, "sign-in {i}");
        }
    }
    let (code, created) = api
        .start_import(tools_file("full", 4000), &[("conflict_strategy", "update")])
        .await;
    assert_eq!(code, 202, "{created}");
    let status = api.finished(created["job_id"].as_str().unwrap()).await;
    assert_eq!(status.status, JobState::Completed, "{:?}", status.errors);
    assert_eq!(
        app.store
            .count_entities(app::model::EntityKind::Tool)
            .await
            .unwrap(),
        4000 + 24
    );
    app.stop().await;
    queuer.stop().await;
}

/// Holds the write lock of the tables a write needs, as a running import does.
enum LockHolder {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl LockHolder {
    async fn hold(db: &TestDb) -> LockHolder {
        if db.backend == "sqlite" {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            conn.execute("BEGIN IMMEDIATE").await.unwrap();
            LockHolder::Sqlite(conn)
        } else {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            // EXCLUSIVE lets reads through and stops every write, like the rows an import holds.
            conn.execute(
                "BEGIN; LOCK TABLE tools, api_tokens, sessions, audit_log IN EXCLUSIVE MODE",
            )
            .await
            .unwrap();
            LockHolder::Postgres(conn)
        }
    }

    async fn release(self) {
        match self {
            LockHolder::Sqlite(mut c) => {
                c.execute("ROLLBACK").await.unwrap();
                c.close().await.unwrap();
            }
            LockHolder::Postgres(mut c) => {
                c.execute("ROLLBACK").await.unwrap();
                c.close().await.unwrap();
            }
        }
    }
}

#[tokio::test]
async fn a_held_write_lock_fails_no_read_and_refuses_writes_with_503_in_bounded_time() {
    on_each_backend(|db| async move {
        let backend = db.backend;
        let app = TestApp::spawn_with(db, |s| s.db_lock_wait_ms = 300).await;
        // A token never used yet: its first use is bookkeeping to write.
        let api = Api::new(&app).await;
        let holder = LockHolder::hold(&app.db).await;

        // A read with a token answers at once.
        let started = Instant::now();
        let (code, body) = api.send(api.get("/tools")).await;
        assert_eq!(code, 200, "{backend}: {body}");
        assert!(started.elapsed() < Duration::from_secs(2), "{backend}");

        // A write is refused within the lock wait, told when to come back.
        let started = Instant::now();
        let response = api
            .post("/tools")
            .json(&serde_json::json!({"name": "blocked", "url": "https://x.example.com"}))
            .send()
            .await
            .unwrap();
        let waited = started.elapsed();
        assert_eq!(response.status(), 503, "{backend}");
        assert_eq!(response.headers()["retry-after"], "5", "{backend}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "busy", "{backend}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("busy importing"),
            "{backend}: {body}"
        );
        assert!(
            waited < Duration::from_secs(3),
            "{backend}: waited {waited:?}"
        );

        // Signing in writes a session: refused the same way, never 500.
        let login = sign_in(&api).await;
        assert_eq!(login.status(), 503, "{backend}");
        assert!(login.headers().contains_key("retry-after"), "{backend}");

        // /ready: a busy store is still a ready one.
        assert_eq!(ready(&api).await.0, 200, "{backend}");

        // A CLI import says the gateway is busy importing, not the driver's words.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tools.json");
        std::fs::write(&file, tools_file("cli", 3)).unwrap();
        let out = cli(&app.db)
            .env("MCPGATEWAY_DB_LOCK_WAIT_MS", "300")
            .arg("import")
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{backend}: {stderr}");
        assert!(stderr.contains("busy importing"), "{backend}: {stderr}");
        assert!(
            !stderr.contains("database is locked") && !stderr.contains("lock timeout"),
            "{backend}: {stderr}"
        );

        // Released: writes go through, and the token's use was bookkept after all.
        holder.release().await;
        let (code, body) = api
            .send(
                api.post("/tools")
                    .json(&serde_json::json!({"name": "after", "url": "https://x.example.com"})),
            )
            .await;
        assert_eq!(code, 201, "{backend}: {body}");
        // (Written in the background; at the latest when the gateway stops.)
        let db = app.stop_keeping_db().await;
        let store = db.store().await;
        let admin = store.user_by_email(ADMIN_EMAIL).await.unwrap().unwrap();
        let tokens = store.tokens_of(admin.id).await.unwrap();
        assert!(
            tokens.iter().all(|t| t.last_used_at.is_some()),
            "{backend}: {tokens:?}"
        );
    })
    .await;
}
