//! `verify` (CLI local and `--url`, `POST /admin/verify`, `import --verify`) against a
//! real upstream that checks credentials, and the request's cross-environment story:
//! tools exported from gateway A (key A), imported into gateway B (key B) with A's
//! secret, called through B with the original credentials; a changed upstream password
//! makes `verify` on B reject exactly that tool and exit 1.

use std::{process::Output, sync::Arc};

use app::verify::{Verdict, VerifyReport};
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use server::{
    config::Settings,
    crypto::Cipher,
    entities::Entities,
    invoke::Invoker,
    store::{Store, entities::ListQuery},
};

use crate::common::{
    SECRET, TestApp, TestDb,
    harness::{Api, cli},
    on_each_backend,
    upstream::Upstream,
};
use crate::invoke::basic;

const KEY_A: &str = "gateway-a-key-0123456789abcdef-AAAA";
const KEY_B: &str = "gateway-b-key-0123456789abcdef-BBBB";

/// Three tools on `up`, one per header credential kind, stored under `key`; each path
/// of the upstream demands exactly its tool's credential.
async fn three_tools(store: &Store, key: &str, up: &Upstream) {
    let cipher = Cipher::new(&SecretString::from(key));
    let service = Entities {
        store,
        cipher: &cipher,
        actor: "test",
    };
    let tools = [
        (
            "story-basic",
            json!({"type": "basic", "username": "ann", "password": "pw-original"}),
        ),
        (
            "story-bearer",
            json!({"type": "bearer", "token": "tok-original"}),
        ),
        (
            "story-header",
            json!({"type": "authheaders", "headers": {"X-Api-Key": "key-original"}}),
        ),
    ];
    for (name, auth) in tools {
        let _: app::entities::Tool = service
            .create(json!({"name": name, "url": up.url(&format!("/{name}")), "auth": auth}))
            .await
            .expect("valid tool");
    }
    up.expect(
        "/story-basic",
        "authorization",
        &basic("ann", "pw-original"),
    );
    up.expect("/story-bearer", "authorization", "Bearer tok-original");
    up.expect("/story-header", "x-api-key", "key-original");
}

/// Runs the CLI off the test's runtime thread: the upstream and the gateway it calls
/// answer on that thread.
async fn run(cmd: &mut std::process::Command) -> (i32, String, String) {
    let mut cmd = std::mem::replace(cmd, std::process::Command::new("true"));
    let Output {
        status,
        stdout,
        stderr,
    } = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// `mcpgateway verify -o json` on `db` with `key`, loopback allowed.
async fn verify_cli(db: &TestDb, key: &str, extra: &[&str]) -> (i32, VerifyReport, String) {
    let (code, stdout, stderr) = run(cli(db)
        .env("AUTH_ENCRYPTION_SECRET", key)
        .env("MCPGATEWAY_ALLOW_PRIVATE_NETWORKS", "true")
        .args(["verify", "-o", "json"])
        .args(extra))
    .await;
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {stdout} stderr {stderr}"));
    (code, report, stderr)
}

fn verdict_of<'a>(report: &'a VerifyReport, name: &str) -> &'a app::verify::EntityVerdict {
    report
        .results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("{name} in {report:?}"))
}

#[tokio::test]
async fn exported_credentials_work_on_the_importing_gateway_and_verify_names_the_one_rejected() {
    on_each_backend(|db_a: TestDb| async move {
        let up = Upstream::start().await;
        let store_a = db_a.store().await;
        three_tools(&store_a, KEY_A, &up).await;
        store_a.close().await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        let (code, _, stderr) = run(cli(&db_a)
            .env("AUTH_ENCRYPTION_SECRET", KEY_A)
            .args(["export", "--out"])
            .arg(&file))
        .await;
        assert_eq!(code, 0, "{stderr}");
        let db_b = db_a.another().await;
        // `import --verify`: the import is committed, then B's tools are verified.
        let (code, stdout, stderr) = run(cli(&db_b)
            .env("AUTH_ENCRYPTION_SECRET", KEY_B)
            .env("MCPGATEWAY_SOURCE_SECRET", KEY_A)
            .env("MCPGATEWAY_ALLOW_PRIVATE_NETWORKS", "true")
            .args(["import", "--verify"])
            .arg(&file))
        .await;
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("Verified 3 tools: 3 ok"), "{stdout}");
        // Every tool called through B's store and key: the upstream sees the originals.
        let store_b = db_b.store().await;
        let invoker = Invoker::new(
            Arc::new(Cipher::new(&SecretString::from(KEY_B))),
            &Settings {
                allow_private_networks: true,
                ..Settings::default()
            },
        );
        let (tools, _) = store_b
            .list_entities::<app::entities::Tool>(&ListQuery::default())
            .await
            .unwrap();
        assert_eq!(tools.len(), 3);
        for tool in &tools {
            let out = invoker.call_tool(tool, Map::new()).await.unwrap();
            assert!(!out.is_error, "{:?}: {}", tool.name, out.text);
        }
        let seen = |path: &str, header: &str| up.seen(path)[0].headers[header].clone();
        assert_eq!(
            seen("/story-basic", "authorization"),
            basic("ann", "pw-original")
        );
        assert_eq!(
            seen("/story-bearer", "authorization"),
            "Bearer tok-original"
        );
        assert_eq!(seen("/story-header", "x-api-key"), "key-original");
        store_b.close().await;
        // verify on B: all ok, exit 0; each probe was an authenticated HEAD.
        let (code, report, stderr) = verify_cli(&db_b, KEY_B, &[]).await;
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(report.summary, "Verified 3 tools: 3 ok");
        let heads = up.seen("/story-bearer");
        assert_eq!(heads.last().unwrap().method, "HEAD");
        assert_eq!(
            heads.last().unwrap().headers["authorization"],
            "Bearer tok-original"
        );
        // The upstream's password changes: exactly that tool is rejected, exit 1.
        up.expect("/story-basic", "authorization", &basic("ann", "pw-rotated"));
        let (code, report, _) = verify_cli(&db_b, KEY_B, &[]).await;
        assert_eq!(code, 1);
        assert_eq!(
            report.summary,
            "Verified 3 tools: 2 ok, 1 rejected (story-basic: 401)"
        );
        assert_eq!(
            verdict_of(&report, "story-basic").verdict,
            Verdict::Rejected
        );
        assert_eq!(verdict_of(&report, "story-bearer").verdict, Verdict::Ok);
        // The text output says the same, and never a credential.
        let (code, stdout, _) = run(cli(&db_b)
            .env("AUTH_ENCRYPTION_SECRET", KEY_B)
            .env("MCPGATEWAY_ALLOW_PRIVATE_NETWORKS", "true")
            .args(["verify", "--include", "tool:story-b*"]))
        .await;
        assert_eq!(code, 1);
        assert!(
            stdout.contains("Verified 2 tools: 1 ok, 1 rejected (story-basic: 401)"),
            "{stdout}"
        );
        for secret in ["pw-original", "tok-original", "key-original", "pw-rotated"] {
            assert!(!stdout.contains(secret), "{stdout}");
        }
        // One audit row per run, naming the rejected tool, holding no secret.
        let store_b = db_b.store().await;
        let rows = store_b.audit_entries(Some("verify"), 10).await.unwrap();
        assert_eq!(rows.len(), 4, "import --verify and three verify runs");
        assert_eq!(rows[0].details.0["rejected"], json!(["story-basic"]));
        assert!(!serde_json::to_string(&rows).unwrap().contains("pw-"));
    })
    .await;
}

#[tokio::test]
async fn verify_skips_what_it_cannot_check_and_reports_unreachable_upstreams() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    let up = Upstream::start().await;
    let cipher = Cipher::new(&SecretString::from(SECRET));
    let service = Entities {
        store: &store,
        cipher: &cipher,
        actor: "test",
    };
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    for body in [
        json!({"name": "no-creds", "url": up.url("/open")}),
        json!({"name": "gone", "url": format!("http://127.0.0.1:{closed}/x"),
               "auth": {"type": "bearer", "token": "tok-gone-1"}}),
        json!({"name": "no-head", "url": up.url("/status/405"),
               "auth": {"type": "bearer", "token": "tok-nohead-1"}}),
    ] {
        let _: app::entities::Tool = service.create(body).await.unwrap();
    }
    let _: app::entities::Gateway = service
        .create(json!({"name": "peer-1", "url": "http://127.0.0.1:9/mcp"}))
        .await
        .unwrap();
    store.close().await;
    let (code, report, stderr) = verify_cli(&db, SECRET, &[]).await;
    assert_eq!(code, 0, "unreachable is not rejected: {stderr}");
    assert_eq!(verdict_of(&report, "no-creds").verdict, Verdict::Skipped);
    assert_eq!(verdict_of(&report, "gone").verdict, Verdict::Unreachable);
    let no_head = verdict_of(&report, "no-head");
    assert_eq!(
        (no_head.verdict, no_head.detail.as_deref()),
        (Verdict::Ok, Some("OPTIONS")),
        "405 to HEAD: OPTIONS asked, which answered 405 too (not a rejection)"
    );
    assert_eq!(
        up.seen("/status/405")
            .iter()
            .map(|s| s.method.as_str())
            .collect::<Vec<_>>(),
        ["HEAD", "OPTIONS"]
    );
    // A peer gateway nothing listens for: `initialize` unanswered.
    let peer = verdict_of(&report, "peer-1");
    assert_eq!(peer.verdict, Verdict::Unreachable, "{peer:?}");
    assert_eq!(
        report.summary,
        "Verified 3 tools: 1 ok, 1 unreachable (gone), 1 skipped; Verified 1 gateway: 0 ok, 1 unreachable (peer-1)"
    );
    // Without the switch, a loopback upstream is unreachable (refused), never called.
    let (_, stdout, _) = run(cli(&db).args(["verify", "--type", "tool", "-o", "json"])).await;
    let report: VerifyReport = serde_json::from_str(&stdout).unwrap();
    let refused = verdict_of(&report, "no-head");
    assert_eq!(refused.verdict, Verdict::Unreachable);
    assert!(
        refused.detail.as_deref().unwrap().contains("loopback"),
        "{refused:?}"
    );
    assert_eq!(up.seen("/status/405").len(), 2, "not called again");
}

#[tokio::test]
async fn verify_through_rest_and_the_remote_cli_and_metrics_need_credentials() {
    let db = TestDb::sqlite();
    let up = Upstream::start().await;
    let app = TestApp::spawn_with(db, |s| s.allow_private_networks = true).await;
    three_tools(&app.store, SECRET, &up).await;
    up.expect("/story-bearer", "authorization", "Bearer tok-rotated");
    let api = Api::new(&app).await;
    let (status, body) = api.send(api.post("/admin/verify").json(&json!({}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["summary"],
        "Verified 3 tools: 2 ok, 1 rejected (story-bearer: 401)"
    );
    let (status, body) = api
        .send(
            api.post("/admin/verify")
                .json(&json!({"types": ["server"], "include": "nope"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let pointers: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["pointer"].as_str().unwrap())
        .collect();
    assert_eq!(pointers, ["/types/0", "/include"]);
    // The CLI against the running gateway: the same report, exit 1.
    let (code, stdout, stderr) = run(cli(&app.db)
        .env("MCPGATEWAY_BEARER_TOKEN", &api.token)
        .args(["verify", "--url", &app.base, "--type", "tool"]))
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stdout.contains("Verified 3 tools: 2 ok, 1 rejected (story-bearer: 401)"),
        "{stdout}"
    );
    let rows = app.store.audit_entries(Some("verify"), 10).await.unwrap();
    assert_eq!(rows.len(), 2, "one row per run");
    assert_eq!(rows[0].actor, crate::common::ADMIN_EMAIL);
    // /metrics: 401 without credentials, Prometheus text with them.
    let anonymous = app.client().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let (status, text) = api.send(api.get("/metrics")).await;
    assert_eq!(status, 200);
    let Value::String(text) = text else {
        panic!("{text}")
    };
    assert!(
        text.contains(
            r#"mcpgateway_tool_verifications_total{tool="story-bearer",verdict="rejected"} 2"#
        ),
        "{text}"
    );
    assert!(
        text.contains("# TYPE mcpgateway_tool_verifications_total counter"),
        "{text}"
    );
}

/// `import --verify` (local and `--url`): exactly the tools the import wrote that hold
/// credentials, active or not, are verified, not the gateway's others; `-o json` prints
/// one document; a rejected credential exits 1 with the import committed, and says so.
#[tokio::test]
async fn import_verify_checks_the_tools_the_import_wrote_in_one_document() {
    on_each_backend(|db_a: TestDb| async move {
        let up = Upstream::start().await;
        let store_a = db_a.store().await;
        three_tools(&store_a, KEY_A, &up).await;
        let cipher_a = Cipher::new(&SecretString::from(KEY_A));
        let service = Entities {
            store: &store_a,
            cipher: &cipher_a,
            actor: "test",
        };
        let _: app::entities::Tool = service
            .create(
                json!({"name": "story-off", "url": up.url("/story-off"), "is_active": false,
                           "auth": {"type": "bearer", "token": "tok-off"}}),
            )
            .await
            .unwrap();
        store_a.close().await;
        up.expect("/story-off", "authorization", "Bearer tok-off");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        let (code, _, stderr) = run(cli(&db_a)
            .env("AUTH_ENCRYPTION_SECRET", KEY_A)
            .args(["export", "--include-inactive", "--out"])
            .arg(&file))
        .await;
        assert_eq!(code, 0, "{stderr}");
        // B already holds a tool whose credentials its upstream rejects: not the import's.
        let app = TestApp::spawn_with(db_a.another().await, |s| {
            s.allow_private_networks = true;
        })
        .await;
        let cipher_b = Cipher::new(&SecretString::from(SECRET));
        let service = Entities {
            store: &app.store,
            cipher: &cipher_b,
            actor: "test",
        };
        let _: app::entities::Tool = service
            .create(json!({"name": "resident", "url": up.url("/resident"),
                           "auth": {"type": "bearer", "token": "tok-stale"}}))
            .await
            .unwrap();
        up.expect("/resident", "authorization", "Bearer tok-fresh");
        up.expect("/story-header", "x-api-key", "key-rotated");

        let import_verify = |extra: &[&str]| {
            let mut cmd = cli(&app.db);
            cmd.env("AUTH_ENCRYPTION_SECRET", SECRET)
                .env("MCPGATEWAY_SOURCE_SECRET", KEY_A)
                .env("MCPGATEWAY_ALLOW_PRIVATE_NETWORKS", "true")
                .args(["import", "--verify"])
                .args(extra)
                .arg(&file);
            cmd
        };
        let (code, stdout, stderr) = run(&mut import_verify(&["-o", "json"])).await;
        assert_eq!(code, 1, "{stdout}\n{stderr}");
        let both: Value = serde_json::from_str(&stdout).expect("one JSON document");
        assert_eq!(both["import"]["results"].as_array().unwrap().len(), 4);
        let report: VerifyReport = serde_json::from_value(both["verify"].clone()).unwrap();
        assert_eq!(
            report.summary,
            "Verified 4 tools: 3 ok, 1 rejected (story-header: 401)"
        );
        assert_eq!(verdict_of(&report, "story-off").verdict, Verdict::Ok);
        assert!(stderr.contains("The import is committed"), "{stderr}");
        let (tools, _) = app
            .store
            .list_entities::<app::entities::Tool>(&ListQuery {
                include_inactive: true,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(tools.len(), 5, "the import is committed");
        assert!(
            up.seen("/resident").is_empty(),
            "B's own tool is not probed"
        );

        // Text, again (the tools now unchanged): the verify summary after the import's.
        let (code, stdout, _) = run(&mut import_verify(&[])).await;
        assert_eq!(code, 1, "{stdout}");
        let imported = stdout.find("Unchanged").expect(&stdout);
        let verified = stdout
            .find("Verified 4 tools: 3 ok, 1 rejected (story-header: 401)")
            .expect(&stdout);
        assert!(imported < verified, "{stdout}");
        assert!(stdout.contains("The import is committed"), "{stdout}");

        // Through the gateway (`--url`): the same tools, the same verdicts.
        let api = Api::new(&app).await;
        let (code, stdout, stderr) = run(import_verify(&["-o", "json", "--url", &app.base])
            .env("MCPGATEWAY_BEARER_TOKEN", &api.token))
        .await;
        assert_eq!(code, 1, "{stdout}\n{stderr}");
        let both: Value = serde_json::from_str(&stdout).expect("one JSON document");
        assert_eq!(
            both["verify"]["summary"],
            "Verified 4 tools: 3 ok, 1 rejected (story-header: 401)"
        );
        assert!(
            up.seen("/resident").is_empty(),
            "B's own tool is not probed"
        );
        app.stop().await;
    })
    .await;
}
