//! Shared by the reliability stories (hostile input, secrets, load, crashes): the CLI
//! binary on a test database, an authenticated REST client, and row counts.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use app::{jobs::JobStatus, model::EntityKind};
use reqwest::multipart::{Form, Part};
use serde_json::Value;
use server::store::Store;

use super::{SECRET, TestApp, TestDb};

/// Reads `serve`'s standard output up to the line with its address: the base URL.
pub fn address(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> String {
    loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(rest) = line.split("open ").nth(1) {
            return rest.trim_end_matches("/login").to_owned();
        }
    }
}

/// `mcpgateway` on `db`, with a clean environment, in a fresh working directory.
pub fn cli(db: &TestDb) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcpgateway"));
    let dir = tempfile::tempdir().unwrap().keep();
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("AUTH_ENCRYPTION_SECRET", SECRET);
    cmd
}

/// Rows of the six entity tables, in [`EntityKind::ALL`] order.
pub async fn entity_counts(store: &Store) -> [i64; 6] {
    let mut counts = [0; 6];
    for (i, kind) in EntityKind::ALL.into_iter().enumerate() {
        counts[i] = store.count_entities(kind).await.unwrap();
    }
    counts
}

/// A bearer-token client of one running gateway.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

impl Api {
    pub async fn new(app: &TestApp) -> Api {
        Api {
            base: app.base.clone(),
            token: app.admin_token().await,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Status and body; a body that is not JSON comes back as a string.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    /// `POST path` with `file` as the multipart field `file`.
    pub async fn upload(&self, path: &str, file: Vec<u8>) -> (u16, Value) {
        let part = Part::bytes(file)
            .file_name("upload.json")
            .mime_str("application/json")
            .unwrap();
        self.send(self.post(path).multipart(Form::new().part("file", part)))
            .await
    }

    /// `GET /admin/export{query}`: the file's bytes (asserts 200).
    pub async fn export(&self, query: &str) -> Vec<u8> {
        let response = self
            .get(&format!("/admin/export{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap().to_vec()
    }

    /// `POST /admin/import` with the file and these form fields.
    pub async fn start_import(&self, file: Vec<u8>, fields: &[(&str, &str)]) -> (u16, Value) {
        let mut form = Form::new().part(
            "file",
            Part::bytes(file)
                .file_name("export.json")
                .mime_str("application/json")
                .unwrap(),
        );
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        self.send(self.post("/admin/import").multipart(form)).await
    }

    pub async fn status(&self, id: &str) -> JobStatus {
        let (code, body) = self
            .send(self.get(&format!("/admin/import/status/{id}")))
            .await;
        assert_eq!(code, 200, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// Polls the job until it has ended.
    pub async fn finished(&self, id: &str) -> JobStatus {
        self.finished_within(id, Duration::from_secs(120)).await
    }

    /// Polls the job until it has ended; panics after `within`.
    pub async fn finished_within(&self, id: &str, within: Duration) -> JobStatus {
        let deadline = Instant::now() + within;
        loop {
            let status = self.status(id).await;
            if status.status.is_final() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} still {:?}",
                status.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many import jobs the gateway has recorded.
    pub async fn job_count(&self) -> usize {
        let (code, body) = self.send(self.get("/admin/import/jobs?limit=500")).await;
        assert_eq!(code, 200, "{body}");
        body["jobs"].as_array().unwrap().len()
    }
}

/// Every SSE event (name, job status) until the stream ends (at most a minute).
pub async fn read_events(response: reqwest::Response) -> Vec<(String, JobStatus)> {
    use futures_util::StreamExt;
    let mut stream = response.bytes_stream();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, stream.next()).await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    text.split("\n\n")
        .filter_map(|block| {
            let event = block.lines().find_map(|l| l.strip_prefix("event: "))?;
            let data = block.lines().find_map(|l| l.strip_prefix("data: "))?;
            Some((event.to_owned(), serde_json::from_str(data).unwrap()))
        })
        .collect()
}

/// `kill -9` of a child process, waited for.
pub fn kill9(child: &mut Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    child.wait().unwrap();
}

/// A child process killed (and waited for) when dropped, so a failed test leaves no
/// server behind and none holds its database when the database is dropped.
pub struct KillOnDrop(Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // A child already waited for is not signalled again (std knows it has exited).
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `mcpgateway serve --port 0` on `db` with these extra environment variables; the child
/// and its base URL.
pub fn serve(db: &TestDb, env: &[(&str, &str)]) -> (KillOnDrop, String) {
    let mut child = cli(db)
        .args(["serve", "--port", "0"])
        .env("MCPGATEWAY_ADMIN_PASSWORD", super::ADMIN_PASSWORD)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = address(&mut lines);
    (KillOnDrop(child), url)
}

/// A client of the gateway at `url` with a new admin token made by the CLI.
pub async fn api_for(db: &TestDb, url: String) -> Api {
    let out = cli(db)
        .args(["token", "create", "--email", super::ADMIN_EMAIL, "--name"])
        .arg(uuid::Uuid::new_v4().simple().to_string())
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();
    Api {
        base: url,
        token,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
    }
}
