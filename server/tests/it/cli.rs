//! The `mcpgateway` binary itself: help, tokens, refusal of bad settings, and
//! `serve` end to end with graceful shutdown.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use crate::common::{ADMIN_EMAIL, SECRET, TestApp, TestDb};

fn mcpgateway(db: &TestDb) -> Command {
    crate::common::harness::cli(db)
}

#[test]
fn help_lists_every_subcommand_with_a_line_each() {
    let db = TestDb::sqlite();
    let out = mcpgateway(&db).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for line in ["serve  ", "token  "] {
        assert!(help.contains(line), "{help}");
    }
}

#[test]
fn a_short_encryption_secret_is_refused_with_the_reason() {
    let db = TestDb::sqlite();
    let out = mcpgateway(&db)
        .env("AUTH_ENCRYPTION_SECRET", "short")
        .args(["serve", "--port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("AUTH_ENCRYPTION_SECRET: must be at least 32 characters"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_conflict_of_flags_is_a_usage_error() {
    let db = TestDb::sqlite();
    let out = mcpgateway(&db)
        .args(["serve", "--port", "not-a-port"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn a_token_created_on_the_command_line_opens_the_api() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let out = mcpgateway(&app.db)
        .args([
            "token",
            "create",
            "--email",
            ADMIN_EMAIL,
            "--name",
            "ci",
            "--expires",
            "30d",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("mcpg_"));

    let me = app
        .client()
        .get(app.url("/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    let list = mcpgateway(&app.db)
        .args(["token", "list", "--email", ADMIN_EMAIL])
        .output()
        .unwrap();
    let listing = String::from_utf8(list.stdout).unwrap();
    assert!(
        listing.contains("ci") && listing.contains("active"),
        "{listing}"
    );
    assert!(!listing.contains(&token), "a listing never shows the token");

    let revoke = mcpgateway(&app.db)
        .args(["token", "revoke", "--email", ADMIN_EMAIL, "ci"])
        .output()
        .unwrap();
    assert!(revoke.status.success());
    let me = app
        .client()
        .get(app.url("/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 401, "a revoked token is refused");
    app.stop().await;
}

#[test]
fn serve_starts_on_a_fresh_database_answers_health_and_stops_on_sigterm() {
    let db = TestDb::sqlite();
    let mut child = mcpgateway(&db)
        .env_remove("AUTH_ENCRYPTION_SECRET")
        .args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.contains("sign in as admin@example.com with password"),
        "{first}"
    );
    let ready = lines.next().unwrap().unwrap();
    let url = ready
        .split("open ")
        .nth(1)
        .unwrap()
        .trim_end_matches("/login")
        .to_owned();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        for path in ["/health", "/ready"] {
            let response = client.get(format!("{url}{path}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
        }
        let tools = client.get(format!("{url}/tools")).send().await.unwrap();
        assert_eq!(tools.status(), 401);
        ui_bundle_is_served(&client, &url).await;
    });

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    let secret_file = db
        .url
        .trim_start_matches("sqlite://")
        .replace("gateway.db", "mcpgateway.secret");
    assert!(
        std::path::Path::new(&secret_file).exists(),
        "the generated secret sits beside the database"
    );
}

/// Started outside the checkout, the gateway still serves the UI's WASM: the binary
/// carries the bundle (`server/src/http/site.rs`).
async fn ui_bundle_is_served(client: &reqwest::Client, url: &str) {
    let built = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/site/pkg/mcpgateway_bg.wasm"
    );
    if !std::path::Path::new(built).is_file() {
        eprintln!("SKIPPED: the UI bundle is not built (./scripts/dev.sh site), nothing to embed");
        return;
    }
    let wasm = client
        .get(format!("{url}/pkg/mcpgateway_bg.wasm"))
        .send()
        .await
        .unwrap();
    assert_eq!(wasm.status(), 200);
    assert_eq!(wasm.headers()["content-type"], "application/wasm");
    assert_eq!(
        wasm.bytes().await.unwrap().len() as u64,
        std::fs::metadata(built).unwrap().len()
    );
}

#[test]
fn seed_fills_49_entities_once_and_scale_generates_n() {
    let db = TestDb::sqlite();
    let first = mcpgateway(&db).arg("seed").output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first = String::from_utf8(first.stdout).unwrap();
    assert!(first.contains("49 created, 0 already present"), "{first}");
    assert!(
        first.contains("15 tools, 3 gateways, 5 servers, 12 prompts, 8 resources, 6 roots"),
        "{first}"
    );
    let again = String::from_utf8(mcpgateway(&db).arg("seed").output().unwrap().stdout).unwrap();
    assert!(
        again.contains("0 created, 49 already present"),
        "re-running changes nothing: {again}"
    );

    let scaled = TestDb::sqlite();
    let out = mcpgateway(&scaled)
        .args(["seed", "--scale", "100"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("100 created"), "{text}");
    assert!(
        text.contains("40 tools, 5 gateways, 10 servers, 20 prompts, 20 resources, 5 roots"),
        "{text}"
    );
    // Written as one import that leaves existing keys alone: a second run adds nothing.
    let again = mcpgateway(&scaled)
        .args(["seed", "--scale", "100"])
        .output()
        .unwrap();
    let again = String::from_utf8(again.stdout).unwrap();
    assert!(again.contains("0 created, 100 already present"), "{again}");
    assert!(
        again.contains("40 tools, 5 gateways, 10 servers"),
        "{again}"
    );
}

#[test]
fn no_log_line_carries_a_secret_even_at_debug_level() {
    let db = TestDb::sqlite();
    assert!(
        mcpgateway(&db)
            .arg("seed")
            .env("LOG_LEVEL", "debug")
            .output()
            .unwrap()
            .status
            .success()
    );
    let mut child = mcpgateway(&db)
        .args(["serve", "--port", "0"])
        .env("LOG_LEVEL", "debug")
        .env("MCPGATEWAY_ADMIN_PASSWORD", "admin-password-LEAKCHECK")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.split("open ").nth(1) {
            break rest.trim_end_matches("/login").to_owned();
        }
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let login = client
            .post(format!("{url}/auth/login"))
            .form(&[("email", ADMIN_EMAIL), ("password", "admin-password-LEAKCHECK")])
            .send()
            .await
            .unwrap();
        let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let origin = url.clone();
        let created = client
            .post(format!("{url}/tools"))
            .header("cookie", &cookie)
            .header("origin", &origin)
            .json(&serde_json::json!({"name": "leak", "url": "https://x.example.com", "auth": {"type": "bearer", "token": "tok-LEAKCHECK"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        for path in ["/tools", "/gateways", "/ui/tools", "/ui/gateways"] {
            let r = client.get(format!("{url}{path}")).header("cookie", &cookie).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
        }
        let wrong = client.get(format!("{url}/tools")).bearer_auth("mcpg_wrong-token-LEAKCHECK").send().await.unwrap();
        assert_eq!(wrong.status(), 401);
    });
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(log.contains("http.request"), "debug logs were written");
    for secret in ["LEAKCHECK", "seed-secret-", SECRET] {
        assert!(!log.contains(secret), "{secret} appears in the log");
    }
    let cookie_value_logged = log.contains("mcpgw_session=");
    assert!(!cookie_value_logged, "a session cookie appears in the log");
}

#[test]
fn validate_lists_every_problem_with_its_pointer_and_exits_1() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"version": "2025-03-26", "exported_at": "x", "entities": {"tools": [{"name": "a"}, {"url": "ftp://x"}]}}"#).unwrap();
    let out = mcpgateway(&db)
        .args(["validate", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    for line in [
        "/entities/tools/0/url: required",
        "/entities/tools/1/name: required",
        "/entities/tools/1/url: scheme `ftp` is not allowed",
    ] {
        assert!(stderr.contains(line), "{line} in {stderr}");
    }
    let missing = mcpgateway(&db)
        .args(["validate", "/no/such/file.json"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /no/such/file.json"));

    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/contextforge/export-seed-dataset.json"
    );
    let ok = mcpgateway(&db)
        .args(["validate", fixture])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8(ok.stdout).unwrap();
    assert!(
        stdout.contains("15 tools, 3 gateways, 5 servers, 15 prompts, 11 resources, 6 roots"),
        "{stdout}"
    );
}

#[test]
fn export_writes_the_file_and_says_what_it_holds() {
    let db = TestDb::sqlite();
    seed(&db);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all.json");
    let run = mcpgateway(&db)
        .args(["export", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stderr = String::from_utf8(run.stderr).unwrap();
    assert!(
        stderr.contains("Exported 49 total items across 6 categories"),
        "{stderr}"
    );
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(file["metadata"]["entity_counts"]["prompts"], 12);

    let piped = mcpgateway(&db)
        .args(["export", "--out", "-", "--type", "root"])
        .output()
        .unwrap();
    let file: serde_json::Value = serde_json::from_slice(&piped.stdout).unwrap();
    assert_eq!(file["entities"]["roots"].as_array().unwrap().len(), 6);
    let bad = mcpgateway(&db)
        .args(["export", "--type", "widgets"])
        .output()
        .unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown type is a usage error"
    );
    let validate = mcpgateway(&db)
        .args(["validate", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(validate.status.success());
}

#[test]
fn import_applies_a_file_reports_it_and_refuses_bad_ones_without_writing() {
    let a = TestDb::sqlite();
    seed(&a);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.json");
    assert!(
        mcpgateway(&a)
            .args(["export", "--out", file.to_str().unwrap()])
            .output()
            .unwrap()
            .status
            .success()
    );

    let b = TestDb::sqlite();
    let dry = mcpgateway(&b)
        .args(["import", file.to_str().unwrap(), "--dry-run"])
        .output()
        .unwrap();
    let dry_out = String::from_utf8(dry.stdout).unwrap();
    assert!(dry_out.contains("Would create 15 new tools"), "{dry_out}");
    assert!(
        dry_out.contains(
            "Would import: 15 tools, 3 gateways, 5 servers, 12 prompts, 8 resources, 6 roots"
        ),
        "{dry_out}"
    );

    let first = mcpgateway(&b)
        .args(["import", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let out = String::from_utf8(first.stdout).unwrap();
    assert!(
        out.contains("Imported: 15 tools, 3 gateways, 5 servers, 12 prompts, 8 resources, 6 roots"),
        "{out}"
    );
    let again = String::from_utf8(
        mcpgateway(&b)
            .args(["import", file.to_str().unwrap()])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(again.contains("Left 15 unchanged tools"), "{again}");

    let json = mcpgateway(&b)
        .args(["import", file.to_str().unwrap(), "-o", "json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["results"][0]["action"], "unchanged");

    let c = TestDb::sqlite();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"version": "2025-03-26", "exported_at": "x", "entities": {"tools": [{"name": "ok", "url": "https://x.example.com"}, {"name": "bad", "url": "gopher://x"}]}}"#).unwrap();
    let refused = mcpgateway(&c)
        .args(["import", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("/entities/tools/1/url: scheme `gopher` is not allowed")
    );
    let export = mcpgateway(&c)
        .args(["export", "--out", "-"])
        .output()
        .unwrap();
    let left: serde_json::Value = serde_json::from_slice(&export.stdout).unwrap();
    assert_eq!(left["entities"], serde_json::json!({}), "no row written");

    let usage = mcpgateway(&c)
        .args([
            "import",
            bad.to_str().unwrap(),
            "--conflict-strategy",
            "merge",
        ])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let wrong_rekey = mcpgateway(&c)
        .args([
            "import",
            file.to_str().unwrap(),
            "--rekey-secret",
            "not-the-gateway-secret-0123456789abc",
        ])
        .output()
        .unwrap();
    assert_eq!(wrong_rekey.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong_rekey.stderr)
            .contains("--rekey-secret must be this gateway's AUTH_ENCRYPTION_SECRET")
    );
}

#[test]
fn diff_shows_field_changes_hides_secrets_and_signals_drift() {
    let db = TestDb::sqlite();
    seed(&db);
    let export = mcpgateway(&db)
        .args(["export", "--out", "-"])
        .output()
        .unwrap();
    let mut file: serde_json::Value = serde_json::from_slice(&export.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let same = dir.path().join("same.json");
    std::fs::write(&same, serde_json::to_vec(&file).unwrap()).unwrap();
    let clean = mcpgateway(&db)
        .args(["diff", same.to_str().unwrap(), "--exit-code"])
        .output()
        .unwrap();
    assert_eq!(clean.status.code(), Some(0), "no drift");
    assert!(
        String::from_utf8(clean.stdout)
            .unwrap()
            .contains("= 49 unchanged")
    );

    let cipher = server::crypto::Cipher::new(&secrecy::SecretString::from(SECRET));
    let new_secret = serde_json::json!({"Authorization": "Bearer rotated-DIFFSECRET"});
    file["entities"]["tools"][6]["auth_value"] = serde_json::Value::String(cipher.encrypt(
        &server::crypto::Plaintext(new_secret.as_object().unwrap().clone()),
    ));
    file["entities"]["tools"][0]["description"] = "changed".into();
    let changed = dir.path().join("changed.json");
    std::fs::write(&changed, serde_json::to_vec(&file).unwrap()).unwrap();
    let drift = mcpgateway(&db)
        .args(["diff", changed.to_str().unwrap(), "--exit-code"])
        .output()
        .unwrap();
    assert_eq!(drift.status.code(), Some(2), "drift");
    let out = String::from_utf8(drift.stdout).unwrap();
    assert!(out.contains("~ tool seed-tool-01-basic\n    description: \"Seed REST tool #1 using basic auth\" → \"changed\""), "{out}");
    assert!(out.contains("auth_value: <secret> → <changed>"), "{out}");
    assert!(
        !out.contains("DIFFSECRET") && !out.contains("seed-secret"),
        "{out}"
    );
    let broken = mcpgateway(&db)
        .args(["diff", "/no/such.json", "--exit-code"])
        .output()
        .unwrap();
    assert_eq!(broken.status.code(), Some(1));
}

#[test]
fn rekey_re_encrypts_a_file_offline_for_another_gateway() {
    let a = TestDb::sqlite();
    seed(&a);
    let dir = tempfile::tempdir().unwrap();
    let (original, rekeyed) = (dir.path().join("a.json"), dir.path().join("b.json"));
    assert!(
        mcpgateway(&a)
            .args(["export", "--out", original.to_str().unwrap()])
            .output()
            .unwrap()
            .status
            .success()
    );
    let other = "gateway-b-secret-is-different-0123456789";
    let run = mcpgateway(&a)
        .args([
            "rekey",
            original.to_str().unwrap(),
            "--from",
            SECRET,
            "--to",
            other,
            "--out",
            rekeyed.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stderr).contains("Re-encrypted 17 credential(s)"));
    let stderr = String::from_utf8_lossy(&run.stderr).to_string();
    assert!(
        !stderr.contains(SECRET) && !stderr.contains(other),
        "keys never printed"
    );

    let b = TestDb::sqlite();
    let into_b = |file: &std::path::Path| {
        mcpgateway(&b)
            .env("AUTH_ENCRYPTION_SECRET", other)
            .args(["import", file.to_str().unwrap()])
            .output()
            .unwrap()
    };
    assert_eq!(
        into_b(&original).status.code(),
        Some(1),
        "the original needs --source-secret"
    );
    let ok = into_b(&rekeyed);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let wrong = mcpgateway(&a)
        .args([
            "rekey",
            original.to_str().unwrap(),
            "--from",
            other,
            "--to",
            SECRET,
            "--out",
            "-",
        ])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&wrong.stderr)
            .contains("/entities/tools/0/auth_value: the credential cannot be decrypted")
    );
}

#[test]
fn schema_describes_the_export_file_from_the_rust_types() {
    let db = TestDb::sqlite();
    let out = mcpgateway(&db).arg("schema").output().unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for key in ["version", "exported_at", "entities", "metadata"] {
        assert!(required.contains(&key), "{key} required");
    }
    for def in [
        "Tool", "Gateway", "Server", "Prompt", "Resource", "Root", "Tag",
    ] {
        assert!(schema["$defs"][def].is_object(), "{def} defined");
    }
    assert!(schema["$defs"]["Tool"]["properties"]["auth_value"].is_object());
    assert!(
        schema["$defs"]["Tool"]["properties"].get("auth").is_none(),
        "plaintext input is not part of the file"
    );
}

/// Runs the binary without blocking the in-process gateway it talks to.
async fn run(mut cmd: Command) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::from(std::mem::replace(&mut cmd, Command::new("true")))
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test]
async fn remote_mode_drives_a_gateway_over_rest_with_the_local_output() {
    let source = TestApp::spawn(TestDb::sqlite()).await;
    crate::common::seed_store(&source.store).await;
    let target = TestApp::spawn(TestDb::sqlite()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("remote.json");
    let path = file.to_str().unwrap();
    let remote = |app: &TestApp, token: &str, args: &[&str]| {
        // An empty database: anything written must have gone through the gateway.
        let mut cmd = mcpgateway(&TestDb::sqlite());
        cmd.env("MCPGATEWAY_URL", &app.base)
            .env("MCPGATEWAY_BEARER_TOKEN", token)
            .args(args);
        cmd
    };
    let source_token = source.admin_token().await;
    let (code, _, stderr) = run(remote(&source, &source_token, &["export", "--out", path])).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("Exported 49 total items across 6 categories")
            && stderr.contains("tools: 15"),
        "{stderr}"
    );
    let (_, _, filtered) = run(remote(
        &source,
        &source_token,
        &[
            "export",
            "--out",
            "-",
            "--type",
            "tool",
            "--tags",
            "production",
            "--no-dependencies",
        ],
    ))
    .await;
    assert!(
        filtered.contains("Exported 5 total items across 1 category"),
        "{filtered}"
    );

    // The same import locally and remotely prints the same lines.
    let local_db = TestDb::sqlite();
    let local = mcpgateway(&local_db)
        .args(["import", path])
        .output()
        .unwrap();
    let local_out = String::from_utf8(local.stdout).unwrap();
    let token = target.admin_token().await;
    let (code, dry, stderr) = run(remote(&target, &token, &["import", path, "--dry-run"])).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(dry.contains("Would create 15 new tools"), "{dry}");
    let (code, imported, stderr) = run(remote(&target, &token, &["import", path])).await;
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(imported, local_out);
    assert!(
        imported.contains(
            "Imported: 15 tools, 3 gateways, 5 servers, 12 prompts, 8 resources, 6 roots"
        ),
        "{imported}"
    );
    let (_, again, _) = run(remote(&target, &token, &["import", path, "-o", "json"])).await;
    let report: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(report["results"][0]["action"], "unchanged");
    let (code, plan, _) = run(remote(&target, &token, &["diff", path, "--exit-code"])).await;
    assert_eq!((code, plan.trim()), (Some(0), "= 49 unchanged"));

    let (_, selective, _) = run(remote(
        &target,
        &token,
        &["import", path, "--include", "server:seed-server-1"],
    ))
    .await;
    assert_eq!(
        selective.lines().last(),
        Some("Imported 3 tools, 1 server, 2 prompts, 1 resource (42 items skipped)"),
        "{selective}"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"version": "2025-03-26", "exported_at": "x", "entities": {"tools": [{"name": "new-one", "url": "https://x.example.com"}, {"name": "bad", "url": "gopher://x"}]}}"#).unwrap();
    let (code, _, stderr) = run(remote(&target, &token, &["import", bad.to_str().unwrap()])).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("/entities/tools/1/url: scheme `gopher` is not allowed"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    let api = crate::common::harness::Api::new(&target).await;
    let (_, tools) = api.send(api.get("/tools")).await;
    assert!(!tools.to_string().contains("new-one"), "no row written");

    let (code, _, stderr) = run(remote(&target, "", &["export", "--out", "-"])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("MCPGATEWAY_BEARER_TOKEN"), "{stderr}");
    let (code, _, stderr) = run(remote(&target, "mcpg_wrong", &["export", "--out", "-"])).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("401"), "{stderr}");
    let (code, _, stderr) = run(remote(&target, &token, &["seed"])).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("only export, import, diff and verify"),
        "{stderr}"
    );
    source.stop().await;
    target.stop().await;
}

/// Fills `db` with the seed data set.
fn seed(db: &TestDb) {
    let out = mcpgateway(db).arg("seed").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A seeded database and its export in a temporary directory.
fn seeded_export() -> (TestDb, tempfile::TempDir, std::path::PathBuf) {
    let db = TestDb::sqlite();
    seed(&db);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.json");
    let out = mcpgateway(&db)
        .args(["export", "--out", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (db, dir, file)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const OTHER: &str = "gateway-b-secret-is-different-0123456789";

#[test]
fn secret_flags_have_a_variable_and_a_file_and_rekey_refuses_a_short_new_secret() {
    let (db, dir, file) = seeded_export();
    let (f, rekeyed) = (file.to_str().unwrap(), dir.path().join("b.json"));
    let to_file = dir.path().join("to.secret");
    std::fs::write(&to_file, format!("{OTHER}\n")).unwrap();
    // Neither secret on the command line: one from a variable, one from a file.
    let run = mcpgateway(&db)
        .env("MCPGATEWAY_REKEY_FROM", SECRET)
        .args(["rekey", f, "--to-file", to_file.to_str().unwrap()])
        .args(["--out", rekeyed.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("Re-encrypted 17 credential(s)"));

    let short = mcpgateway(&db)
        .args([
            "rekey",
            f,
            "--from",
            SECRET,
            "--to",
            "short-secret",
            "--out",
            "-",
        ])
        .output()
        .unwrap();
    assert_eq!(short.status.code(), Some(1));
    assert!(
        stderr(&short).contains("--to: must be at least 32 characters (got 12)"),
        "{}",
        stderr(&short)
    );
    assert!(
        !stderr(&short).contains("short-secret"),
        "the secret is not echoed"
    );

    // The import's secrets: from variables and files too.
    let b = TestDb::sqlite();
    let source_file = dir.path().join("source.secret");
    std::fs::write(&source_file, SECRET).unwrap();
    let from_file = mcpgateway(&b)
        .env("AUTH_ENCRYPTION_SECRET", OTHER)
        .env("MCPGATEWAY_REKEY_SECRET", OTHER)
        .args(["import", f, "--dry-run", "--source-secret-file"])
        .arg(&source_file)
        .output()
        .unwrap();
    assert!(from_file.status.success(), "{}", stderr(&from_file));
    let wrong = mcpgateway(&b)
        .env("MCPGATEWAY_REKEY_SECRET", OTHER)
        .args(["import", f])
        .output()
        .unwrap();
    assert!(
        stderr(&wrong).contains("--rekey-secret must be this gateway's AUTH_ENCRYPTION_SECRET"),
        "MCPGATEWAY_REKEY_SECRET is read: {}",
        stderr(&wrong)
    );
    let diff = mcpgateway(&b)
        .env("AUTH_ENCRYPTION_SECRET", OTHER)
        .env("MCPGATEWAY_SOURCE_SECRET", SECRET)
        .args(["diff", f])
        .output()
        .unwrap();
    assert!(diff.status.success(), "{}", stderr(&diff));
}

#[test]
fn each_flag_shows_only_on_the_commands_it_applies_to() {
    let db = TestDb::sqlite();
    let help = |args: &[&str]| {
        let out = mcpgateway(&db).args(args).arg("--help").output().unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for offline in ["schema", "validate", "rekey"] {
        let text = help(&[offline]);
        for flag in ["--url", "--database-url", "--config"] {
            assert!(!text.contains(flag), "{offline} shows {flag}: {text}");
        }
    }
    for local in [&["seed"][..], &["serve"], &["token"], &["token", "list"]] {
        let text = help(local);
        assert!(
            text.contains("--database-url") && text.contains("--config"),
            "{local:?}: {text}"
        );
        assert!(!text.contains("--url"), "{local:?} shows --url: {text}");
    }
    for both in ["export", "import", "diff"] {
        let text = help(&[both]);
        for flag in ["--url", "--database-url", "--config"] {
            assert!(text.contains(flag), "{both} lacks {flag}: {text}");
        }
    }
    let top = help(&[]);
    assert!(!top.contains("--config") && !top.contains("--url"), "{top}");
}

#[test]
fn export_refuses_to_replace_a_file_when_piped_unless_forced() {
    let (db, dir, file) = seeded_export();
    std::fs::write(&file, "keep me").unwrap();
    let again = mcpgateway(&db)
        .args(["export", "--out", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("exists: pass --force"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    let forced = mcpgateway(&db)
        .args(["export", "--force", "--out", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("\"entities\"")
    );

    let rekeyed = dir.path().join("exists.json");
    std::fs::write(&rekeyed, "keep me").unwrap();
    let rekey = mcpgateway(&db)
        .args([
            "rekey",
            file.to_str().unwrap(),
            "--from",
            SECRET,
            "--to",
            OTHER,
            "--out",
        ])
        .arg(&rekeyed)
        .output()
        .unwrap();
    assert_eq!(rekey.status.code(), Some(1), "{}", stderr(&rekey));
    assert_eq!(std::fs::read_to_string(&rekeyed).unwrap(), "keep me");
}

#[test]
fn o_is_the_output_format_everywhere_and_import_json_reports_a_failure_too() {
    let (db, dir, file) = seeded_export();
    let f = file.to_str().unwrap();
    // `-o` is no longer a file on export or rekey: a usage error, not a file named `json`.
    let export = mcpgateway(&db)
        .args(["export", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(export.status.code(), Some(2));
    let rekey = mcpgateway(&db)
        .args(["rekey", f, "--from", SECRET, "--to", OTHER, "-o", "x.json"])
        .output()
        .unwrap();
    assert_eq!(rekey.status.code(), Some(2));
    let diff = mcpgateway(&db)
        .args(["diff", f, "-o", "json"])
        .output()
        .unwrap();
    assert!(diff.status.success(), "{}", stderr(&diff));
    let plan: serde_json::Value = serde_json::from_slice(&diff.stdout).unwrap();
    assert_eq!(plan["results"][0]["action"], "unchanged");

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"version": "2025-03-26", "exported_at": "x", "entities": {"tools": [{"name": "bad", "url": "gopher://x"}]}}"#).unwrap();
    let refused = mcpgateway(&db)
        .args(["import", bad.to_str().unwrap(), "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let failure: serde_json::Value = serde_json::from_slice(&refused.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&refused.stdout)));
    assert_eq!(failure["imported"], false);
    assert_eq!(failure["errors"][0]["pointer"], "/entities/tools/0/url");
    assert!(
        failure["message"]
            .as_str()
            .unwrap()
            .contains("nothing was imported")
    );
}

#[test]
fn a_local_export_names_its_database_or_origin_and_the_os_user_or_actor() {
    let (db, dir, file) = seeded_export();
    let head: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_ne!(
        head["source_gateway"], "http://127.0.0.1:4444",
        "no made-up port"
    );
    assert!(
        head["source_gateway"]
            .as_str()
            .unwrap()
            .starts_with("sqlite:"),
        "{head:#}"
    );
    let by = head["exported_by"].as_str().unwrap();
    assert!(by.starts_with("cli:") && by != "cli:unknown", "{by}");

    let named = dir.path().join("named.json");
    let out = mcpgateway(&db)
        .env("MCPGATEWAY_ACTOR", "release-bot")
        .env("MCPGATEWAY_PUBLIC_ORIGIN", "https://gw.example.com")
        .args(["export", "--out", named.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let head: serde_json::Value = serde_json::from_slice(&std::fs::read(&named).unwrap()).unwrap();
    assert_eq!(head["exported_by"], "release-bot");
    assert_eq!(head["source_gateway"], "https://gw.example.com");
    let flag = mcpgateway(&db)
        .args(["export", "--actor", "alice", "--out", "-"])
        .output()
        .unwrap();
    let head: serde_json::Value = serde_json::from_slice(&flag.stdout).unwrap();
    assert_eq!(head["exported_by"], "alice");
}

#[test]
fn wording_says_would_for_dry_runs_counts_in_the_singular_and_unchanged_for_reimports() {
    let (db, dir, file) = seeded_export();
    let f = file.to_str().unwrap();
    let mut changed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    changed["entities"]["tools"][0]["description"] = "changed".into();
    let changed_file = dir.path().join("changed.json");
    std::fs::write(&changed_file, serde_json::to_vec(&changed).unwrap()).unwrap();
    let rename = mcpgateway(&db)
        .args(["import", changed_file.to_str().unwrap(), "--dry-run"])
        .args(["--conflict-strategy", "rename"])
        .output()
        .unwrap();
    let out = String::from_utf8(rename.stdout).unwrap();
    assert!(
        out.contains("Would rename tool `seed-tool-01-basic` to"),
        "{out}"
    );
    assert!(!out.contains("Renamed"), "{out}");

    let again = mcpgateway(&db).args(["import", f]).output().unwrap();
    let out = String::from_utf8(again.stdout).unwrap();
    assert!(
        out.contains(
            "Unchanged: 15 tools, 3 gateways, 5 servers, 12 prompts, 8 resources, 6 roots"
        ),
        "{out}"
    );
    assert!(!out.contains("Imported"), "{out}");

    // One item skipped, one category exported.
    let mut one: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let roots = one["entities"]["roots"].as_array().unwrap()[..2].to_vec();
    one["entities"] = serde_json::json!({ "roots": roots });
    let two = dir.path().join("two.json");
    std::fs::write(&two, serde_json::to_vec(&one).unwrap()).unwrap();
    let b = TestDb::sqlite();
    let picked = mcpgateway(&b)
        .args(["import", two.to_str().unwrap(), "--include"])
        .arg(format!("root:{}", roots[0]["uri"].as_str().unwrap()))
        .output()
        .unwrap();
    let out = String::from_utf8(picked.stdout.clone()).unwrap();
    assert!(
        out.contains("(1 item skipped)"),
        "{out}: {}",
        stderr(&picked)
    );
    let export = mcpgateway(&b)
        .args(["export", "--out", "-"])
        .output()
        .unwrap();
    assert!(
        stderr(&export).contains("across 1 category"),
        "{}",
        stderr(&export)
    );

    let broken = mcpgateway(&db)
        .args(["diff", "/no/such.json"])
        .output()
        .unwrap();
    assert!(!stderr(&broken).contains("imported"), "{}", stderr(&broken));
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"version": "2025-03-26", "exported_at": "x", "entities": {"tools": [{"name": "bad", "url": "gopher://x"}]}}"#).unwrap();
    let refused = mcpgateway(&db)
        .args(["diff", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        stderr(&refused).contains("nothing was compared"),
        "{}",
        stderr(&refused)
    );
    assert!(
        !stderr(&refused).contains("imported"),
        "{}",
        stderr(&refused)
    );

    let strategy = mcpgateway(&db)
        .args(["import", f, "--strategy", "update"])
        .output()
        .unwrap();
    assert_eq!(strategy.status.code(), Some(2));
    assert!(
        stderr(&strategy).contains("--conflict-strategy"),
        "{}",
        stderr(&strategy)
    );
}

#[tokio::test]
async fn a_directory_is_named_as_one_and_token_dates_share_one_format() {
    let app = TestApp::spawn(TestDb::sqlite()).await;
    let db = &app.db;
    let dir = tempfile::tempdir().unwrap();
    for command in ["import", "validate"] {
        let out = mcpgateway(db)
            .args([command, dir.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let text = stderr(&out);
        assert!(
            text.contains("is a directory") && !text.contains("os error"),
            "{text}"
        );
    }
    let name = "a-token-name-longer-than-twenty-four-characters";
    let create = mcpgateway(db)
        .args([
            "token",
            "create",
            "--email",
            ADMIN_EMAIL,
            "--name",
            name,
            "--expires",
            "30d",
        ])
        .output()
        .unwrap();
    assert!(create.status.success(), "{}", stderr(&create));
    let list = mcpgateway(db)
        .args(["token", "list", "--email", ADMIN_EMAIL])
        .output()
        .unwrap();
    let text = String::from_utf8(list.stdout).unwrap();
    let row = text.lines().find(|l| l.starts_with(name)).unwrap();
    assert!(
        row.starts_with(&format!("{name}  ")),
        "columns apart: {text}"
    );
    assert!(!row.contains("expires"), "the date alone: {text}");
    let header = text.lines().next().unwrap();
    assert_eq!(header.find("STATE"), row.find("active"), "{text}");
    app.stop().await;
}

#[test]
fn the_literal_rekey_secret_form_answers_once_or_works_with_the_source_secret() {
    let (_a, _dir, file) = seeded_export();
    let f = file.to_str().unwrap();
    let head: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let key = server::crypto::Cipher::new(&secrecy::SecretString::from(SECRET));
    assert_eq!(head["encryption_key_fingerprint"], key.fingerprint());

    let b = TestDb::sqlite();
    let literal = mcpgateway(&b)
        .env("AUTH_ENCRYPTION_SECRET", OTHER)
        .args(["import", f, "--rekey-secret", OTHER])
        .output()
        .unwrap();
    assert_eq!(literal.status.code(), Some(1));
    let text = stderr(&literal);
    assert_eq!(
        text.lines().count(),
        1,
        "one line, not one per credential: {text}"
    );
    assert!(
        text.contains(&format!("mcpgateway import {f} --source-secret-file PATH"))
            && text.contains(key.fingerprint()),
        "{text}"
    );
    let with_source = mcpgateway(&b)
        .env("AUTH_ENCRYPTION_SECRET", OTHER)
        .env("MCPGATEWAY_SOURCE_SECRET", SECRET)
        .args(["import", f, "--rekey-secret", OTHER])
        .output()
        .unwrap();
    assert!(with_source.status.success(), "{}", stderr(&with_source));
    let wrong_source = mcpgateway(&TestDb::sqlite())
        .env("AUTH_ENCRYPTION_SECRET", OTHER)
        .args(["import", f, "--source-secret", OTHER])
        .output()
        .unwrap();
    assert_eq!(wrong_source.status.code(), Some(1));
    assert_eq!(
        stderr(&wrong_source).lines().count(),
        1,
        "{}",
        stderr(&wrong_source)
    );
}

/// The literal form against a remote gateway: the file (exported under `OTHER`) names its
/// key, so REST answers one problem at `/source_secret` and the CLI one line with the
/// command; with the source secret the same command imports.
#[tokio::test]
async fn a_remote_import_of_another_gateways_file_answers_once() {
    let a = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("other.json");
    let f = file.to_str().unwrap();
    for args in [&["seed"][..], &["export", "--out", f]] {
        let out = mcpgateway(&a)
            .env("AUTH_ENCRYPTION_SECRET", OTHER)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let key = server::crypto::Cipher::new(&secrecy::SecretString::from(OTHER));
    let target = TestApp::spawn(TestDb::sqlite()).await;

    let api = crate::common::harness::Api::new(&target).await;
    let (code, body) = api.start_import(std::fs::read(&file).unwrap(), &[]).await;
    assert_eq!(code, 422, "{body}");
    let details = body["error"]["details"].as_array().unwrap();
    assert_eq!(
        details.len(),
        1,
        "one problem, not one per credential: {body}"
    );
    assert_eq!(details[0]["pointer"], "/source_secret", "{body}");
    let message = details[0]["message"].as_str().unwrap();
    assert!(message.contains(key.fingerprint()), "{message}");

    let token = target.admin_token().await;
    let remote = |source: Option<&str>| {
        let mut cmd = mcpgateway(&TestDb::sqlite());
        cmd.env("MCPGATEWAY_URL", &target.base)
            .env("MCPGATEWAY_BEARER_TOKEN", &token)
            .args(["import", f, "--rekey-secret", SECRET]);
        if let Some(source) = source {
            cmd.env("MCPGATEWAY_SOURCE_SECRET", source);
        }
        cmd
    };
    let (code, _, text) = run(remote(None)).await;
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    let command = format!(
        "mcpgateway import {f} --url {} --source-secret-file PATH",
        target.base
    );
    assert!(
        text.contains(&command)
            && text.contains("MCPGATEWAY_SOURCE_SECRET")
            && text.contains(key.fingerprint()),
        "{text}"
    );
    let (code, out, text) = run(remote(Some(OTHER))).await;
    assert_eq!(code, Some(0), "{text}");
    assert!(out.contains("Created 15 new tools"), "{out}");
    target.stop().await;
}

#[test]
fn validate_warns_of_an_unknown_version_and_refuses_one_that_is_not_a_date() {
    let db = TestDb::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let file = |version: &str| {
        let path = dir.path().join(format!("{version}.json"));
        let text = format!(r#"{{"version": "{version}", "exported_at": "x", "entities": {{}}}}"#);
        std::fs::write(&path, text).unwrap();
        path
    };
    let old = mcpgateway(&db)
        .arg("validate")
        .arg(file("1999-01-01"))
        .output()
        .unwrap();
    assert!(old.status.success(), "{}", stderr(&old));
    assert!(
        stderr(&old)
            .contains("warning: /version: `1999-01-01` is not a version this gateway knows"),
        "{}",
        stderr(&old)
    );
    let known = mcpgateway(&db)
        .arg("validate")
        .arg(file("2025-11-25"))
        .output()
        .unwrap();
    assert!(known.status.success() && !stderr(&known).contains("warning"));
    let banana = mcpgateway(&db)
        .arg("validate")
        .arg(file("banana"))
        .output()
        .unwrap();
    assert_eq!(banana.status.code(), Some(1));
    assert!(
        stderr(&banana).contains("/version: `banana` is not a format version"),
        "{}",
        stderr(&banana)
    );
}
