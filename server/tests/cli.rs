//! The `mcpgateway` binary itself: help, tokens, refusal of bad settings, and
//! `serve` end to end with graceful shutdown.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use common::{ADMIN_EMAIL, SECRET, TestApp, TestDb};

fn mcpgateway(db: &TestDb) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcpgateway"));
    let dir = tempfile::tempdir().unwrap().keep();
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("AUTH_ENCRYPTION_SECRET", SECRET);
    cmd
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
