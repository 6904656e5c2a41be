//! Test support: a fresh database per test (SQLite always, PostgreSQL when
//! `TEST_DATABASE_URL` is set), and a real server on a loopback port.

pub mod harness;
pub mod mcp_peer;
pub mod upstream;

use std::{future::Future, time::Duration};

use secrecy::SecretString;
use server::{
    auth::{self, bootstrap},
    config::Settings,
    http::{self, AppState},
    store::Store,
};
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct-horse-battery";
pub const SECRET: &str = "test-encryption-secret-0123456789abcdef";

/// A database made for one test; the SQLite file, or the PostgreSQL database, lives as
/// long as this value.
pub struct TestDb {
    pub url: String,
    pub backend: &'static str,
    _dir: Option<TempDir>,
    _database: Option<DropDatabase>,
}

/// Drops a PostgreSQL test database when its test is done with it, passed or failed
/// (`Drop` runs while a panic unwinds), so the test cluster does not fill up.
struct DropDatabase {
    admin_url: String,
    name: String,
}

impl Drop for DropDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // A thread with a runtime of its own: the test's runtime may be single-threaded
        // and is blocked in this `drop`. `FORCE` ends the connections still open, e.g.
        // those of a server the test stopped but did not wait for.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&admin_url).await?;
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await?;
                conn.close().await?;
                anyhow::Ok(())
            })
        })
        .join();
        // Never a panic here: it would abort a test that is already unwinding.
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("test database {} not dropped: {e:#}", self.name),
            Err(_) => eprintln!("test database {} not dropped: panicked", self.name),
        }
    }
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
        TestDb {
            url,
            backend: "sqlite",
            _dir: Some(dir),
            _database: None,
        }
    }

    /// A SQLite database in the file `path` (whose directory the caller keeps).
    pub fn sqlite_at(path: &std::path::Path) -> TestDb {
        TestDb {
            url: format!("sqlite://{}", path.display()),
            backend: "sqlite",
            _dir: None,
            _database: None,
        }
    }

    /// A new, empty database on the server `TEST_DATABASE_URL` points at.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("TEST_REQUIRE_POSTGRES").is_none(),
                "TEST_REQUIRE_POSTGRES is set but TEST_DATABASE_URL is not"
            );
            return None;
        };
        let name = format!("mcpgw_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&admin_url)
            .await
            .expect("connect to TEST_DATABASE_URL");
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        let base = admin_url.split('?').next().unwrap_or(&admin_url);
        let (server, _) = base
            .rsplit_once('/')
            .expect("TEST_DATABASE_URL has a database path");
        Some(TestDb {
            url: format!("{server}/{name}"),
            backend: "postgres",
            _dir: None,
            _database: Some(DropDatabase { admin_url, name }),
        })
    }

    /// The same database, left in place when this value is dropped (for a replica or
    /// a process that shares it).
    pub fn alias(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            backend: self.backend,
            _dir: None,
            _database: None,
        }
    }

    /// A second, empty database on the same backend (an import target).
    pub async fn another(&self) -> TestDb {
        match self.backend {
            "sqlite" => TestDb::sqlite(),
            _ => TestDb::postgres().await.expect("postgres configured"),
        }
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.url).await.expect("open test store")
    }
}

/// Fills `store` with the 49-entity seed data set, credentials under [`SECRET`].
pub async fn seed_store(store: &Store) {
    let cipher = server::crypto::Cipher::new(&SecretString::from(SECRET));
    let service = server::entities::Entities {
        store,
        cipher: &cipher,
        actor: "test",
    };
    server::entities::seed::seed(&service)
        .await
        .expect("seed data set");
}

/// Runs `story` once on SQLite and once on PostgreSQL (when configured).
pub async fn on_each_backend<F, Fut>(story: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()>,
{
    story(TestDb::sqlite()).await;
    if let Some(db) = TestDb::postgres().await {
        story(db).await;
    }
}

pub fn settings_for(db: &TestDb) -> Settings {
    Settings {
        database_url: db.url.clone(),
        admin_email: ADMIN_EMAIL.into(),
        admin_password: Some(SecretString::from(ADMIN_PASSWORD)),
        auth_encryption_secret: Some(SecretString::from(SECRET)),
        port: 0,
        ..Settings::default()
    }
}

/// What a gateway on `db` serves with (settings adjusted by `configure`), its admin made.
pub async fn state_for(db: &TestDb, configure: impl FnOnce(&mut Settings)) -> AppState {
    let mut settings = settings_for(db);
    configure(&mut settings);
    let store = Store::connect_with(&db.url, settings.lock_wait())
        .await
        .expect("open test store");
    bootstrap::ensure_admin(&store, &settings)
        .await
        .expect("bootstrap admin");
    AppState::new(store, settings, SecretString::from(SECRET))
}

/// A gateway serving on `127.0.0.1:<random port>`, stopped when dropped.
pub struct TestApp {
    pub base: String,
    pub store: Store,
    pub db: TestDb,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(db: TestDb) -> TestApp {
        TestApp::spawn_with(db, |_| {}).await
    }

    /// A gateway whose settings `configure` adjusts first.
    pub async fn spawn_with(db: TestDb, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let state = state_for(&db, configure).await;
        let store = state.store.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(http::launch_with_listener(state, listener, async {
            let _ = rx.await;
        }));
        TestApp {
            base,
            store,
            db,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A client that neither follows redirects nor keeps cookies.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// A fresh API token for the admin.
    pub async fn admin_token(&self) -> String {
        let name = format!("test-{}", uuid::Uuid::new_v4().simple());
        auth::create_api_token(&self.store, ADMIN_EMAIL, &name, None)
            .await
            .expect("token")
            .1
    }

    /// Signs in through the login form; returns the session cookie's value.
    pub async fn session_cookie(&self) -> String {
        let response = self
            .client()
            .post(self.url("/auth/login"))
            .form(&[("email", ADMIN_EMAIL), ("password", ADMIN_PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "login answers a redirect");
        let set_cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        let pair = set_cookie.split(';').next().unwrap();
        pair.split_once('=').unwrap().1.to_owned()
    }

    /// Stops the server and hands back its database (to start another on it).
    pub async fn stop_keeping_db(mut self) -> TestDb {
        let db = std::mem::replace(
            &mut self.db,
            TestDb {
                url: String::new(),
                backend: "stopped",
                _dir: None,
                _database: None,
            },
        );
        self.stop().await;
        db
    }

    /// A second server on the same database (another replica).
    pub async fn replica(&self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        let db = TestDb {
            url: self.db.url.clone(),
            backend: self.db.backend,
            _dir: None,
            _database: None,
        };
        TestApp::spawn_with(db, configure).await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
