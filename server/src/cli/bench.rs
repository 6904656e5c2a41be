//! `mcpgateway bench [--entities 1000,10000]`: how long import, re-import, dry run and
//! export take for N generated entities, beside a floor: the typed parse of the same
//! file plus the same rows inserted with multi-row `VALUES` in one transaction.
//!
//! The file is generated here; each operation is then measured in a fresh child process
//! of this binary (so that its peak RSS is its own, not what earlier ones left with the
//! allocator), on temporary SQLite files, or with `--database-url postgres://…` on
//! databases it creates on that server and drops afterwards. The user's database is
//! never opened.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::Context;
use app::{entities::Entity, transfer::ExportFile};
use clap::Args;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sqlx::{Connection, Executor, PgConnection};

use crate::{
    crypto::Cipher,
    store::Store,
    transfer::{
        export::{ExportOptions, export_to},
        import::{Action, ConflictStrategy, ImportOptions, import},
        input::Input,
    },
};

#[derive(Debug, Args)]
pub struct Opts {
    /// Entity counts to measure (repeatable, or a comma-separated list).
    #[arg(long = "entities", value_name = "N", value_delimiter = ',', default_values_t = [1000, 10000])]
    pub entities: Vec<usize>,
    /// Measure one operation on this generated file in this process, on the database
    /// `--database-url`, and print its row as a JSON line (used by the parent run).
    #[arg(long, hide = true, value_name = "FILE", requires = "op")]
    pub child: Option<PathBuf>,
    /// The operation a child measures.
    #[arg(long, hide = true, value_enum)]
    pub op: Option<Operation>,
    /// A PostgreSQL server to create the temporary databases on (postgres://…).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Measure tool calls instead: a loopback upstream called directly, through the
    /// tool-call engine and through a gateway's MCP endpoint, at concurrency 1 and 64;
    /// then 1,000 idle MCP sessions.
    #[arg(long)]
    pub calls: bool,
    /// Measure federation instead: discovery of a loopback peer's 1,000 tools, and a tool
    /// call direct to the peer vs forwarded through the gateway, at concurrency 1 and 64.
    #[arg(long, conflicts_with = "calls")]
    pub federated: bool,
    /// With `--calls` or `--federated`: seconds per measurement.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
}

/// The measured operations, in the order they run (each on what the one before left).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Operation {
    Floor,
    DryRun,
    Import,
    ReImport,
    Export,
    ExportRest,
}

impl Operation {
    const ALL: [Operation; 6] = [
        Operation::Floor,
        Operation::DryRun,
        Operation::Import,
        Operation::ReImport,
        Operation::Export,
        Operation::ExportRest,
    ];

    fn name(self) -> &'static str {
        match self {
            Operation::Floor => "floor",
            Operation::DryRun => "dry-run",
            Operation::Import => "import",
            Operation::ReImport => "re-import",
            Operation::Export => "export",
            Operation::ExportRest => "export-rest",
        }
    }
}

/// The throw-away key of the generated credentials.
const SECRET: &str = "mcpgateway-bench-throwaway-secret";

/// One measured operation.
#[derive(Debug, Serialize, Deserialize)]
struct Row {
    operation: String,
    n: usize,
    seconds: f64,
    peak_rss_kib: u64,
}

pub async fn run(opts: Opts) -> anyhow::Result<()> {
    if opts.calls {
        return super::bench_calls::run(opts.seconds).await;
    }
    if opts.federated {
        return super::bench_federation::run(opts.seconds).await;
    }
    let database_url = opts.database_url.clone();
    if let (Some(file), Some(op)) = (&opts.child, opts.op) {
        let [n] = opts.entities[..] else {
            anyhow::bail!("--child measures exactly one N");
        };
        let url = database_url.context("--child needs --database-url")?;
        let row = measure(op, n, file, &url).await?;
        println!("{}", serde_json::to_string(&row)?);
        return Ok(());
    }
    if let Some(url) = &database_url {
        anyhow::ensure!(
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "bench uses temporary SQLite files, or databases it creates on a PostgreSQL server (--database-url postgres://…)"
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let backend = if database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    println!(
        "backend: {backend}, {cores} CPU cores; each operation runs in a process of its own, peak RSS is its high-water mark"
    );
    println!(
        "{:<11} {:>8} {:>9} {:>11} {:>13} {:>8}",
        "operation", "N", "seconds", "entities/s", "peak RSS MiB", "× floor"
    );
    let dir = temp_dir()?;
    let cipher = Cipher::new(&SecretString::from(SECRET));
    let mut databases = Databases::new(&dir, database_url.as_deref());
    let result = async {
        for n in opts.entities.iter().copied() {
            let file = dir.join(format!("export-{n}.json"));
            std::fs::write(&file, super::seed::scale_file(&cipher, n, "bench")?)?;
            let (floor_db, db) = (databases.create().await?, databases.create().await?);
            let mut floor = f64::NAN;
            for op in Operation::ALL {
                let url = if op == Operation::Floor {
                    &floor_db
                } else {
                    &db
                };
                let r = in_child(op, n, &file, url)?;
                if op == Operation::Floor {
                    floor = r.seconds;
                }
                println!(
                    "{:<11} {:>8} {:>9.3} {:>11.0} {:>13.1} {:>8.2}",
                    r.operation,
                    r.n,
                    r.seconds,
                    r.n as f64 / r.seconds,
                    r.peak_rss_kib as f64 / 1024.0,
                    r.seconds / floor
                );
            }
            let _ = std::fs::remove_file(&file);
        }
        anyhow::Ok(())
    }
    .await;
    databases.drop_all().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn temp_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("mcpgateway-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Runs `bench --child FILE --op OP --entities N --database-url URL` and reads its row.
fn in_child(op: Operation, n: usize, file: &Path, url: &str) -> anyhow::Result<Row> {
    // clap's names for the operations are the kebab-case ones `name` gives.
    let output = Command::new(std::env::current_exe()?)
        .args([
            "bench",
            "--entities",
            &n.to_string(),
            "--op",
            op.name(),
            "--child",
        ])
        .arg(file)
        .args(["--database-url", url])
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(output.status.success(), "{} of N = {n} failed", op.name());
    let line = String::from_utf8(output.stdout)?;
    Ok(serde_json::from_str(line.trim())?)
}

/// Times one operation on the generated `file` of N entities, on the database `url`.
async fn measure(op: Operation, n: usize, file: &Path, url: &str) -> anyhow::Result<Row> {
    let store = Store::connect(url).await?;
    let cipher = Cipher::new(&SecretString::from(SECRET));
    let started = start();
    let result = operation(op, n, file, &store, &cipher).await;
    let row = row(op.name(), n, started);
    store.close().await;
    result.map(|()| row)
}

/// One operation, checked: every entity created, unchanged or exported as expected.
async fn operation(
    op: Operation,
    n: usize,
    file: &Path,
    store: &Store,
    cipher: &Cipher,
) -> anyhow::Result<()> {
    let options = |dry_run| ImportOptions {
        strategy: ConflictStrategy::Update,
        dry_run,
        ..Default::default()
    };
    let expect = |report: &crate::transfer::import::ImportReport, action: Action| {
        let all = report.results.iter().all(|r| r.action == action);
        anyhow::ensure!(
            all && report.results.len() == n,
            "expected {n} × {action:?}"
        );
        Ok(())
    };
    let dir = file.parent().context("the file's directory")?;
    match op {
        Operation::Floor => floor(store, serde_json::from_slice(&std::fs::read(file)?)?).await,
        Operation::DryRun | Operation::Import | Operation::ReImport => {
            let input = Input::open(file)?;
            let report = import(
                store,
                cipher,
                &input,
                &options(op == Operation::DryRun),
                "bench",
            )
            .await?;
            let action = if op == Operation::ReImport {
                Action::Unchanged
            } else {
                Action::Created
            };
            expect(&report, action)
        }
        Operation::Export => {
            let options = ExportOptions {
                include_dependencies: true,
                ..Default::default()
            };
            let out = tokio::fs::File::create(dir.join("export.json")).await?;
            let mut out = tokio::io::BufWriter::new(out);
            let written = export_to(store, &options, "bench", "bench", &mut out).await?;
            anyhow::ensure!(written.total() == n, "exported {n} entities");
            Ok(())
        }
        Operation::ExportRest => {
            let gateway = Gateway::start(store).await?;
            let path = dir.join("export-rest.json");
            gateway.export(&path).await?;
            gateway.stop().await;
            let total = exported_count(&path)?;
            anyhow::ensure!(total == n, "REST exported {total} of {n} entities");
            Ok(())
        }
    }
}

/// The entities an export file says it holds (its `metadata.entity_counts`).
fn exported_count(path: &Path) -> anyhow::Result<usize> {
    #[derive(Deserialize)]
    struct Counted {
        metadata: Counts,
    }
    #[derive(Deserialize)]
    struct Counts {
        entity_counts: std::collections::HashMap<String, usize>,
    }
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let counted: Counted = serde_json::from_reader(file)?;
    Ok(counted.metadata.entity_counts.values().sum())
}

/// The gateway serving `store` on a loopback port, for `GET /admin/export`.
struct Gateway {
    base: String,
    token: String,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    async fn start(store: &Store) -> anyhow::Result<Gateway> {
        let secret = SecretString::from(SECRET);
        let settings = crate::config::Settings {
            admin_password: Some(SecretString::from(format!(
                "bench-{}",
                uuid::Uuid::new_v4()
            ))),
            auth_encryption_secret: Some(secret.clone()),
            import_workers: 0,
            ..Default::default()
        };
        crate::auth::bootstrap::ensure_admin(store, &settings).await?;
        let (_, token) =
            crate::auth::create_api_token(store, &settings.admin_email, "bench", None).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let state = crate::http::AppState::new(store.clone(), settings, secret);
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(crate::http::launch_with_listener(state, listener, async {
            let _ = stop.await;
        }));
        Ok(Gateway {
            base,
            token,
            shutdown,
            task,
        })
    }

    /// Downloads the export into `path`, chunk by chunk; the bytes received.
    async fn export(&self, path: &Path) -> anyhow::Result<u64> {
        use tokio::io::AsyncWriteExt;
        let mut response = reqwest::Client::new()
            .get(format!(
                "{}/admin/export?include_dependencies=true",
                self.base
            ))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?;
        let mut out = tokio::io::BufWriter::new(tokio::fs::File::create(path).await?);
        let mut bytes = 0;
        while let Some(chunk) = response.chunk().await? {
            out.write_all(&chunk).await?;
            bytes += chunk.len() as u64;
        }
        out.flush().await?;
        Ok(bytes)
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.task.await;
    }
}

/// The least an import must do: parse the file into the entity types (above), then
/// insert its rows and links with multi-row `VALUES` in one transaction.
async fn floor(store: &Store, file: ExportFile) -> anyhow::Result<()> {
    fn ids<E: Entity>(list: &mut [E]) {
        list.iter_mut()
            .for_each(|e| e.set_id(Some(crate::store::entities::new_entity_id())));
    }
    let mut set = file.entities;
    let mut tx = store.begin().await?;
    ids(&mut set.tools);
    tx.write_entities(set.tools, false).await?;
    ids(&mut set.gateways);
    tx.write_entities(set.gateways, false).await?;
    ids(&mut set.roots);
    tx.write_entities(set.roots, false).await?;
    ids(&mut set.prompts);
    tx.write_entities(set.prompts, false).await?;
    ids(&mut set.resources);
    tx.write_entities(set.resources, false).await?;
    ids(&mut set.servers);
    tx.write_entities(set.servers, false).await?;
    tx.commit().await?;
    Ok(())
}

/// Resets the peak RSS to the current RSS (Linux ≥ 4.0) and starts the clock.
fn start() -> Instant {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    Instant::now()
}

fn row(operation: &str, n: usize, started: Instant) -> Row {
    let seconds = started.elapsed().as_secs_f64();
    let peak_rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    Row {
        operation: operation.into(),
        n,
        seconds,
        peak_rss_kib,
    }
}

/// `url` with its database replaced by `name` (query parameters kept).
fn database_url(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

/// The run's databases: SQLite files in the temporary directory, or new databases on
/// the PostgreSQL server, dropped at the end.
struct Databases {
    dir: PathBuf,
    postgres: Option<String>,
    created: Vec<String>,
}

impl Databases {
    fn new(dir: &Path, postgres: Option<&str>) -> Databases {
        Databases {
            dir: dir.to_owned(),
            postgres: postgres.map(str::to_owned),
            created: Vec::new(),
        }
    }

    /// A new, empty database: its URL.
    async fn create(&mut self) -> anyhow::Result<String> {
        let name = format!("mcpgw_bench_{}", uuid::Uuid::new_v4().simple());
        Ok(match &self.postgres {
            None => format!("sqlite://{}", self.dir.join(format!("{name}.db")).display()),
            Some(server) => {
                let mut conn = PgConnection::connect(server).await?;
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .context("bench creates its own databases (CREATEDB needed)")?;
                conn.close().await?;
                self.created.push(name.clone());
                database_url(server, &name)
            }
        })
    }

    async fn drop_all(&mut self) {
        let Some(server) = &self.postgres else {
            return;
        };
        let Ok(mut conn) = PgConnection::connect(server).await else {
            return;
        };
        for name in self.created.drain(..) {
            let sql = format!("DROP DATABASE IF EXISTS {name}");
            let _ = conn.execute(sqlx::AssertSqlSafe(sql)).await;
        }
        let _ = conn.close().await;
    }
}
