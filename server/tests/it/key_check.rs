//! The key check: a database records the fingerprint of the key its credentials are
//! encrypted with, and `serve` and every command that touches credentials refuse another
//! key (naming both fingerprints, exit 1, nothing written) instead of mixing keys; with
//! no secret at all, no key is made up while credentials exist. On SQLite and PostgreSQL.

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::Duration,
};

use app::model::EntityKind;
use secrecy::SecretString;
use server::{crypto::Cipher, store::Store};

use crate::common::{SECRET, TestDb, harness, on_each_backend, seed_store};

/// Another valid secret: the one a restart got wrong.
const OTHER: &str = "a-different-encryption-secret-0123456789";
/// The secret of the ContextForge fixture's credentials.
const FIXTURE_SECRET: &str = "cfpeer-enc-K3p8Vn2Rq7Lx5Zt1Mw9Bc4Hy6Jd0Gs3F";
const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/contextforge/export-seed-dataset.json"
);
/// An export file without any credential.
const PROMPTS_ONLY: &str = r#"{"version": "2025-11-25", "exported_at": "2026-01-01T00:00:00Z",
  "exported_by": "test", "source_gateway": "https://a.example.com", "encryption_method": "AES-256-GCM",
  "entities": {"prompts": [{"name": "hello", "template": "Hello {{ name }}"}]}, "metadata": {}}"#;

fn fingerprint(secret: &str) -> String {
    Cipher::new(&SecretString::from(secret))
        .fingerprint()
        .to_owned()
}

/// Runs the command to its end; a command still running after 30 s (a `serve` that
/// started) is killed and reported as such.
fn finish(mut cmd: Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid]).status();
            panic!("still running after 30 s: it started instead of refusing");
        }
    }
}

fn cli(db: &TestDb, secret: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = harness::cli(db);
    match secret {
        Some(secret) => cmd.env("AUTH_ENCRYPTION_SECRET", secret),
        None => cmd.env_remove("AUTH_ENCRYPTION_SECRET"),
    };
    cmd.args(args);
    cmd
}

fn succeeds(cmd: Command) -> String {
    let out = finish(cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Asserts exit 1 and answers standard error.
fn refused(cmd: Command) -> String {
    let out = finish(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

/// Every entity document, the audit log, the users and the key check, as text: what
/// a refused command must leave as it was.
async fn snapshot(store: &Store) -> Vec<String> {
    let mut rows = Vec::new();
    for kind in EntityKind::ALL {
        let sql = format!(
            "SELECT key || ' ' || CAST(doc AS TEXT) FROM {} ORDER BY key",
            kind.plural()
        );
        let docs: Vec<String> = server::store::with_pool!(store, |pool| sqlx::query_scalar(
            sqlx::AssertSqlSafe(sql.clone())
        )
        .fetch_all(pool)
        .await
        .unwrap());
        rows.extend(docs);
    }
    for sql in [
        "SELECT CAST(COUNT(*) AS TEXT) FROM audit_log",
        "SELECT CAST(COUNT(*) AS TEXT) FROM users",
    ] {
        let count: String = server::store::with_pool!(store, |pool| sqlx::query_scalar(sql)
            .fetch_one(pool)
            .await
            .unwrap());
        rows.push(count);
    }
    rows.push(format!("{:?}", store.key_check().await.unwrap()));
    rows
}

async fn execute(store: &Store, sql: &'static str) {
    server::store::with_pool!(store, |pool| {
        sqlx::query(sql).execute(pool).await.unwrap();
    })
}

/// Where a generated key file would go: beside the SQLite file, else the working directory.
fn key_files(db: &TestDb, cmd: &Command) -> Vec<PathBuf> {
    let mut files = vec![cmd.get_current_dir().unwrap().join("mcpgateway.secret")];
    if let Some(file) = db.url.strip_prefix("sqlite://") {
        files.push(PathBuf::from(file).with_file_name("mcpgateway.secret"));
    }
    files
}

#[tokio::test]
async fn another_key_is_refused_by_serve_and_every_credential_command_naming_both_fingerprints() {
    on_each_backend(|db| async move {
        succeeds(cli(&db, Some(SECRET), &["seed"]));
        let store = db.store().await;
        assert_eq!(
            store.key_check().await.unwrap(),
            Some(fingerprint(SECRET)),
            "the first start recorded its key's fingerprint"
        );
        let before = snapshot(&store).await;
        let (ours, theirs) = (fingerprint(SECRET), fingerprint(OTHER));
        let commands: [&[&str]; 4] = [
            &["serve", "--port", "0"],
            &["seed"],
            // Decryptable with --source-secret: without the check it would be
            // re-encrypted under OTHER and written beside credentials under SECRET.
            &["import", FIXTURE, "--source-secret", FIXTURE_SECRET],
            &["diff", FIXTURE, "--source-secret", FIXTURE_SECRET],
        ];
        for args in commands {
            let stderr = refused(cli(&db, Some(OTHER), args));
            assert!(
                stderr.contains(&format!("its key fingerprint is {theirs}"))
                    && stderr.contains(&format!("the stored credentials' is {ours}"))
                    && stderr.contains("AUTH_ENCRYPTION_SECRET"),
                "{args:?}: {stderr}"
            );
            assert!(
                !stderr.contains(OTHER) && !stderr.contains(SECRET),
                "no secret in the message: {stderr}"
            );
            assert_eq!(snapshot(&store).await, before, "{args:?} wrote nothing");
        }
        // The right key still works.
        succeeds(cli(
            &db,
            Some(SECRET),
            &["diff", FIXTURE, "--source-secret", FIXTURE_SECRET],
        ));
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn without_a_secret_credentials_present_refuse_and_no_key_file_is_generated() {
    on_each_backend(|db| async move {
        succeeds(cli(&db, Some(SECRET), &["seed"]));
        let store = db.store().await;
        let before = snapshot(&store).await;
        for args in [
            &["serve", "--port", "0"][..],
            &["seed"],
            &["import", FIXTURE],
        ] {
            let cmd = cli(&db, None, args);
            let files = key_files(&db, &cmd);
            let stderr = refused(cmd);
            assert!(
                stderr.contains("AUTH_ENCRYPTION_SECRET is unset")
                    && stderr.contains(&fingerprint(SECRET))
                    && stderr.contains("none was generated"),
                "{args:?}: {stderr}"
            );
            for file in files {
                assert!(!file.exists(), "{args:?} generated {}", file.display());
            }
            assert_eq!(snapshot(&store).await, before, "{args:?} wrote nothing");
        }
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn commands_that_do_not_touch_credentials_work_with_any_key_or_none() {
    on_each_backend(|db| async move {
        succeeds(cli(&db, Some(SECRET), &["seed"]));
        let out = tempfile::tempdir().unwrap();
        let file = out.path().join("export.json");
        let file = file.to_str().unwrap();
        for secret in [Some(OTHER), None] {
            let export = cli(&db, secret, &["export", "--out", file]);
            let files = key_files(&db, &export);
            succeeds(export);
            succeeds(cli(&db, secret, &["validate", file]));
            succeeds(cli(&db, secret, &["schema"]));
            for file in files {
                assert!(!file.exists(), "generated {}", file.display());
            }
        }
        // The export is whole and still imports under the key it was written with.
        succeeds(cli(&db, Some(SECRET), &["import", file]));
    })
    .await;
}

#[tokio::test]
async fn a_database_from_before_the_check_is_verified_by_decrypting_a_credential() {
    on_each_backend(|db| async move {
        let store = db.store().await;
        seed_store(&store).await;
        assert_eq!(
            store.key_check().await.unwrap(),
            None,
            "nothing recorded yet"
        );
        let before = snapshot(&store).await;

        let stderr = refused(cli(&db, Some(OTHER), &["seed"]));
        assert!(
            stderr.contains(&format!("key fingerprint {}", fingerprint(OTHER)))
                && stderr.contains("does not decrypt the credentials")
                && stderr.contains("/auth_value of tool"),
            "{stderr}"
        );
        assert_eq!(snapshot(&store).await, before, "no fingerprint recorded");

        succeeds(cli(&db, Some(SECRET), &["seed"]));
        assert_eq!(store.key_check().await.unwrap(), Some(fingerprint(SECRET)));
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn a_new_key_is_taken_while_no_credential_is_stored_and_fixed_by_the_first() {
    on_each_backend(|db| async move {
        let dir = tempfile::tempdir().unwrap();
        let prompts = dir.path().join("prompts.json");
        std::fs::write(&prompts, PROMPTS_ONLY).unwrap();
        let prompts = prompts.to_str().unwrap();
        let store = db.store().await;

        succeeds(cli(&db, Some(SECRET), &["import", prompts]));
        assert_eq!(store.key_check().await.unwrap(), Some(fingerprint(SECRET)));
        // No credential depends on SECRET yet: another key replaces it.
        succeeds(cli(&db, Some(OTHER), &["import", prompts]));
        assert_eq!(store.key_check().await.unwrap(), Some(fingerprint(OTHER)));
        // The first credentials are written under OTHER; from then on it is fixed.
        succeeds(cli(&db, Some(OTHER), &["seed"]));
        let stderr = refused(cli(&db, Some(SECRET), &["seed"]));
        assert!(
            stderr.contains(&fingerprint(SECRET)) && stderr.contains(&fingerprint(OTHER)),
            "{stderr}"
        );
        store.close().await;
    })
    .await;
}

#[tokio::test]
async fn credentials_in_query_parameters_and_header_envelopes_are_found_and_tried() {
    on_each_backend(|db| async move {
        let cipher = Cipher::new(&SecretString::from(SECRET));
        let seal = |name: &str, value: &str| {
            let plain = serde_json::json!({ name: value });
            cipher.encrypt(&server::crypto::Plaintext(
                plain.as_object().unwrap().clone(),
            ))
        };
        // Only the credential each entity carries mentions its field; the prompt names
        // both fields in its text and carries none.
        let file = serde_json::json!({"version": "2025-03-26", "exported_at": "2026-01-01T00:00:00Z", "entities": {
            "gateways": [{"name": "qp", "url": "https://peer.example.com/mcp", "auth_type": "query_param",
                "auth_query_params": {"api_key": seal("api_key", "qp-secret-1")}}],
            "tools": [
                {"name": "a-decoy", "url": "https://api.example.com/d",
                 "description": "auth_query_params _mcpgateway_encrypted_header_value_v1"},
                {"name": "hdr", "url": "https://api.example.com/x", "headers": {
                "X-API-Key": {"_mcpgateway_encrypted_header_value_v1": seal("data", "hdr-secret-2")}}}]
        }});
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file.json");
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        succeeds(cli(&db, Some(SECRET), &["import", path.to_str().unwrap()]));

        let store = db.store().await;
        let found = store.first_credential().await.unwrap().expect("found");
        assert_eq!(
            (found.kind, found.key.as_str(), found.pointer.as_str()),
            (EntityKind::Tool, "hdr", "/headers/X-API-Key"),
            "the decoy carries no credential"
        );
        // A database from before the check: the key must decrypt what it holds.
        execute(&store, "DELETE FROM key_check").await;
        let stderr = refused(cli(&db, Some(OTHER), &["seed"]));
        assert!(
            stderr.contains("/headers/X-API-Key of tool `hdr`"),
            "{stderr}"
        );
        execute(&store, "DELETE FROM tools WHERE key = 'hdr'").await;
        let stderr = refused(cli(&db, Some(OTHER), &["seed"]));
        assert!(
            stderr.contains("/auth_query_params/api_key of gateway `qp`"),
            "{stderr}"
        );
        assert_eq!(store.key_check().await.unwrap(), None);
        store.close().await;
    })
    .await;
}
