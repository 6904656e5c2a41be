//! Secrets never leave in plaintext. Credentials carrying one unique marker are created
//! over REST on `mcpgateway serve` (debug logs captured), then every path that shows or
//! moves them is exercised: entity reads, the UI's pages, exports (all, selective,
//! previews), imports (preview, job, status, SSE, jobs list, a re-keyed import with
//! `source_secret`), the audit endpoint, and the CLI's export, import, diff, validate
//! and rekey at debug level. Every response body, file, log line, audit row and the
//! database file itself is scanned for the marker, the encryption secret and the API
//! token: 0 hits. Wrong passwords run into the sign-in limit on the way (the 429 is
//! logged, never the password), and so does a password typed into the email field; URLs
//! with `user:password@` and misshapen credentials are refused without echoing them.
//! (`entities_rest::no_response_carries_a_seeded_secret` covers the seed
//! over REST on both backends; this is the whole-system sweep, SQLite.)

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Stdio},
    sync::{Arc, Mutex},
};

use app::model::EntityKind;
use serde_json::{Value, json};

use crate::common::{ADMIN_EMAIL, SECRET, TestDb, harness::cli};

/// Everything captured, by where it came from.
#[derive(Default)]
struct Captured(Vec<(String, String)>);

impl Captured {
    fn add(&mut self, source: impl Into<String>, text: impl Into<String>) {
        self.0.push((source.into(), text.into()));
    }

    fn add_bytes(&mut self, source: impl Into<String>, bytes: &[u8]) {
        self.add(source, String::from_utf8_lossy(bytes));
    }

    /// Where any of `needles` appears.
    fn hits(&self, needles: &[&str]) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|(source, text)| {
                let found: Vec<&&str> = needles.iter().filter(|n| text.contains(**n)).collect();
                (!found.is_empty()).then(|| format!("{source}: {found:?}"))
            })
            .collect()
    }
}

/// `mcpgateway serve` at debug level; its stderr (the log) collected until it stops.
struct Served {
    child: Child,
    url: String,
    log: Arc<Mutex<String>>,
    reader: std::thread::JoinHandle<()>,
}

fn serve(db: &TestDb, admin_password: &str) -> Served {
    let mut child = cli(db)
        .args(["serve", "--port", "0"])
        .env("LOG_LEVEL", "debug")
        .env("MCPGATEWAY_ADMIN_PASSWORD", admin_password)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = crate::common::harness::address(&mut lines);
    let log = Arc::new(Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        sink.lock().unwrap().push_str(&text);
    });
    Served {
        child,
        url,
        log,
        reader,
    }
}

impl Served {
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        self.child.wait().unwrap();
        self.reader.join().unwrap();
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

struct Client {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// `method path` with the token; the body, checked for a success status.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> String {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        text
    }

    async fn get(&self, path: &str) -> String {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn upload(&self, path: &str, file: Vec<u8>, fields: &[(&str, &str)]) -> String {
        let part = reqwest::multipart::Part::bytes(file).file_name("f.json");
        let mut form = reqwest::multipart::Form::new().part("file", part);
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        text
    }
}

/// Credentials of every auth type, each holding `marker`.
fn entities_with_secrets(marker: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "tools",
            json!({"name": "scan-bearer", "url": "https://a.example.com", "auth": {"type": "bearer", "token": format!("tok-{marker}")}}),
        ),
        (
            "tools",
            json!({"name": "scan-basic", "url": "https://b.example.com", "auth": {"type": "basic", "username": "u", "password": format!("pw-{marker}")}}),
        ),
        (
            "tools",
            json!({"name": "scan-query", "url": "https://c.example.com", "auth": {"type": "query_param", "params": {"api_key": format!("qp-{marker}")}}}),
        ),
        (
            "tools",
            json!({"name": "scan-oauth", "url": "https://d.example.com", "auth": {"type": "oauth", "client_id": "cid", "client_secret": format!("cs-{marker}"), "token_url": "https://idp.example.com/token"}}),
        ),
        (
            "tools",
            json!({"name": "scan-headers", "url": "https://e.example.com", "headers": {"Authorization": format!("Bearer ha-{marker}"), "X-Api-Key": format!("xk-{marker}"), "Cookie": format!("sid={marker}"), "X-Session-Token": format!("st-{marker}"), "Accept": "application/json"}}),
        ),
        (
            "gateways",
            json!({"name": "scan-gateway", "url": "https://gw.example.com/sse", "transport": "SSE", "auth": {"type": "authheaders", "headers": {"X-Api-Key": format!("hdr-{marker}")}}}),
        ),
        (
            "servers",
            json!({"name": "scan-server", "tool_ids": ["scan-bearer", "scan-basic"]}),
        ),
        (
            "prompts",
            json!({"name": "scan-prompt", "template": "hello"}),
        ),
        (
            "resources",
            json!({"name": "scan-resource", "uri": "file:///scan/resource.txt"}),
        ),
        ("roots", json!({"name": "scan-root", "uri": "file:///scan"})),
    ]
}

/// Reads an SSE stream to its `done` event.
async fn sse(client: &Client, path: &str) -> String {
    use futures_util::StreamExt;
    let response = client
        .http
        .get(format!("{}{path}", client.url))
        .bearer_auth(&client.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        if text.contains("event: done") && text.ends_with("\n\n") {
            break;
        }
    }
    text
}

/// Submits an import, follows it over SSE, and collects status and the jobs list.
async fn import_job(client: &Client, file: Vec<u8>, fields: &[(&str, &str)], seen: &mut Captured) {
    let created = client.upload("/admin/import", file, fields).await;
    let id = serde_json::from_str::<Value>(&created).unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    seen.add("POST /admin/import", created);
    seen.add(
        "SSE",
        sse(client, &format!("/admin/import/status/{id}/events")).await,
    );
    let status = client.get(&format!("/admin/import/status/{id}")).await;
    assert!(status.contains("\"completed\""), "{status}");
    seen.add("job status", status);
    seen.add("jobs", client.get("/admin/import/jobs").await);
}

/// Runs the CLI at debug level; stdout and stderr captured.
fn run_cli(db: &TestDb, args: &[&str], seen: &mut Captured) -> std::process::Output {
    let out = cli(db)
        .args(args)
        .env("LOG_LEVEL", "debug")
        .output()
        .unwrap();
    assert!(
        out.status.success() || args[0] == "diff",
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    seen.add_bytes(format!("{args:?} stdout"), &out.stdout);
    seen.add_bytes(format!("{args:?} stderr"), &out.stderr);
    out
}

async fn sign_in(url: &str, password: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{url}/auth/login"))
        .form(&[("email", ADMIN_EMAIL), ("password", password)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn no_secret_appears_in_any_response_file_log_audit_row_or_the_database() {
    let marker = format!("SCANMARK{}", uuid::Uuid::new_v4().simple());
    let admin_password = format!("admin-{marker}");
    let source_secret = format!("source-secret-{marker}");
    let db = TestDb::sqlite();
    let mut seen = Captured::default();
    let server = serve(&db, &admin_password);

    let token = {
        let out = cli(&db)
            .args(["token", "create", "--email", ADMIN_EMAIL, "--name", "scan"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_owned()
    };
    assert!(token.starts_with("mcpg_"));
    let client = Client {
        url: server.url.clone(),
        token: token.clone(),
        http: reqwest::Client::new(),
    };

    // Create, then read every entity: lists, one by one, and their UI pages.
    for (plural, body) in entities_with_secrets(&marker) {
        let created = client
            .call(reqwest::Method::POST, &format!("/{plural}"), Some(body))
            .await;
        seen.add(format!("POST /{plural}"), created);
    }
    let signed_in = sign_in(&server.url, &admin_password).await;
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // Refused input holding the marker where credentials are, or might be: a URL's
    // userinfo, a misshapen `auth`, and a password typed into the email field.
    let refused = [
        json!({"name": "scan-userinfo", "url": format!("https://u:{marker}@f.example.com")}),
        json!({"name": "scan-misshapen", "url": "https://f.example.com", "auth": format!("Bearer {marker}")}),
        json!({"name": "scan-misshapen", "url": "https://f.example.com", "headers": format!("Bearer {marker}")}),
    ];
    for body in refused {
        let response = client
            .http
            .post(format!("{}/tools", client.url))
            .bearer_auth(&client.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{body}");
        seen.add("refused POST /tools", response.text().await.unwrap());
    }
    let typed_in_email = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/auth/login", server.url))
        .form(&[
            ("email", format!("pw-in-email-{marker}")),
            ("password", "x".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(typed_in_email.status(), 303);
    seen.add(
        "password in the email field",
        typed_in_email.text().await.unwrap(),
    );
    // Wrong passwords until the account's limit answers 429 (logged, never the password);
    // the sign-in above succeeded, so it does not count.
    for attempt in 1..=6 {
        let wrong = sign_in(&server.url, &format!("wrong-{marker}")).await;
        let expected = if attempt <= 5 { 303 } else { 429 };
        assert_eq!(wrong.status(), expected, "attempt {attempt}");
        seen.add("refused sign-in", wrong.text().await.unwrap());
    }
    let mut pages: Vec<String> = server::http::ui_paths()
        .into_iter()
        .filter(|p| !p.contains(':') && !p.contains('{') && p.starts_with("/ui"))
        .collect();
    for kind in EntityKind::ALL {
        let plural = kind.plural();
        let list = client
            .get(&format!("/{plural}?include_inactive=true"))
            .await;
        let items: Value = serde_json::from_str(&list).unwrap();
        for item in items["items"].as_array().unwrap() {
            let id = item["id"].as_str().unwrap();
            seen.add(
                format!("GET /{plural}/{id}"),
                client.get(&format!("/{plural}/{id}")).await,
            );
            pages.push(format!("/ui/{plural}/{id}"));
        }
        seen.add(format!("GET /{plural}"), list);
    }
    let browser = reqwest::Client::new();
    for page in &pages {
        let response = browser
            .get(format!("{}{page}", server.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{page}");
        seen.add(format!("UI {page}"), response.text().await.unwrap());
    }

    // Exports and their previews.
    let export = client.get("/admin/export?include_inactive=true").await;
    assert!(export.contains("scan-gateway") && export.contains("auth_value"));
    seen.add("GET /admin/export", export.clone());
    let selection = json!({"tools": ["scan-bearer", "scan-oauth"], "gateways": ["scan-gateway"]});
    seen.add(
        "selective",
        client
            .call(
                reqwest::Method::POST,
                "/admin/export/selective",
                Some(selection.clone()),
            )
            .await,
    );
    seen.add(
        "export preview GET",
        client
            .get("/admin/export/preview?types=tools,gateways")
            .await,
    );
    seen.add(
        "export preview POST",
        client
            .call(
                reqwest::Method::POST,
                "/admin/export/preview",
                Some(selection),
            )
            .await,
    );

    // Imports: preview, a job, and a job of the file re-keyed under another secret.
    seen.add(
        "import preview",
        client
            .upload("/admin/import/preview", export.clone().into_bytes(), &[])
            .await,
    );
    import_job(&client, export.clone().into_bytes(), &[], &mut seen).await;
    let dir = tempfile::tempdir().unwrap();
    let (plain, rekeyed) = (
        dir.path().join("export.json"),
        dir.path().join("rekeyed.json"),
    );
    std::fs::write(&plain, &export).unwrap();
    let (p, r) = (plain.to_str().unwrap(), rekeyed.to_str().unwrap());
    run_cli(
        &db,
        &[
            "rekey",
            p,
            "--from",
            SECRET,
            "--to",
            &source_secret,
            "--out",
            r,
        ],
        &mut seen,
    );
    let fields = [
        ("source_secret", source_secret.as_str()),
        ("conflict_strategy", "update"),
    ];
    import_job(
        &client,
        std::fs::read(&rekeyed).unwrap(),
        &fields,
        &mut seen,
    )
    .await;
    seen.add(
        "GET /admin/audit",
        client.get("/admin/audit?limit=1000").await,
    );

    // The CLI, at debug level.
    let out_file = dir.path().join("cli-export.json");
    let o = out_file.to_str().unwrap();
    run_cli(
        &db,
        &["export", "--include-inactive", "--out", o],
        &mut seen,
    );
    seen.add_bytes("CLI export file", &std::fs::read(&out_file).unwrap());
    run_cli(&db, &["export", "--out", "-"], &mut seen);
    run_cli(&db, &["import", o, "-o", "json"], &mut seen);
    run_cli(&db, &["import", o, "--dry-run", "-o", "json"], &mut seen);
    run_cli(
        &db,
        &["import", r, "--source-secret", &source_secret, "-o", "json"],
        &mut seen,
    );
    run_cli(
        &db,
        &["diff", r, "--source-secret", &source_secret, "--json"],
        &mut seen,
    );
    run_cli(&db, &["validate", o], &mut seen);
    seen.add_bytes("rekeyed file", &std::fs::read(&rekeyed).unwrap());

    let log = server.stop();
    assert!(
        log.contains("http.request") && log.contains("DEBUG"),
        "debug logs were captured"
    );
    assert!(
        log.contains("sign-in refused: too many attempts"),
        "the 429 is logged"
    );
    assert!(
        log.contains("sign-in refused for unknown user"),
        "a refused sign-in is logged without what was typed"
    );
    assert!(
        export.contains("_mcpgateway_encrypted_header_value_v1")
            && export.contains("application/json"),
        "sensitive headers were exported encrypted, the others as they are"
    );
    seen.add("server log", log);
    let store = db.store().await;
    let audit = store.audit_entries(None, 10_000).await.unwrap();
    assert!(audit.len() > 10, "the audit trail was written");
    seen.add("audit rows", serde_json::to_string(&audit).unwrap());
    store.close().await;
    let path = db.url.trim_start_matches("sqlite://").to_owned();
    for suffix in ["", "-wal"] {
        if let Ok(bytes) = std::fs::read(format!("{path}{suffix}")) {
            seen.add_bytes(format!("database file{suffix}"), &bytes);
        }
    }

    // The scan can see: the marker is in what was captured before encryption.
    let mut control = Captured::default();
    control.add(
        "the plaintext sent",
        entities_with_secrets(&marker)[0].1.to_string(),
    );
    assert_eq!(control.hits(&[&marker]).len(), 1);
    assert!(seen.0.len() > 60, "{} captures", seen.0.len());
    let hits = seen.hits(&[&marker, SECRET, &token]);
    assert!(hits.is_empty(), "secrets in plaintext: {hits:#?}");
}
