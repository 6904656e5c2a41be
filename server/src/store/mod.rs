//! The store: one interface over SQLite (embedded default) and PostgreSQL, chosen at
//! runtime from the database URL.
//!
//! Queries are written once, with `$N` placeholders that both databases accept, and run
//! on whichever pool the URL selected through [`with_pool!`]. Where the SQL must differ,
//! a function matches on the backend explicitly. Each backend has its own migrations
//! folder (`server/migrations/{sqlite,postgres}`), applied at start.

pub mod audit;
pub mod entities;
pub mod failure;
pub mod federation;
pub mod jobs;
pub mod key_check;
pub mod sessions;
pub mod tokens;
pub mod upgrades;
pub mod users;

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::Duration,
};

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::{
    Connection, PgPool, SqliteConnection, SqlitePool,
    migrate::Migrator,
    pool::PoolConnectionMetadata,
    postgres::{PgConnectOptions, PgConnection, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use failure::StoreFailure;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// A connection pool to the gateway's database.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs one expression against whichever pool the store holds. The expression is
/// compiled for both backends, so it may only use SQL and types both accept. Exported
/// for the integration tests' raw SQL.
#[macro_export]
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub use crate::with_pool;

/// The current time as stored: microsecond precision, UTC.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// How long a write waits for a lock another transaction holds (an import's) before it
/// gives up with [`StoreFailure::Busy`], unless configured (`db_lock_wait_ms`).
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(5);

/// The least free space on the SQLite file's file system at which `/ready` answers 200:
/// below it a write that grows the file or its WAL fails with `SQLITE_FULL`.
pub const MIN_FREE_BYTES: u64 = 1 << 20;

/// Why the store cannot take writes now (`/ready` answers 503 with it).
#[derive(Debug, thiserror::Error)]
pub enum NotWritable {
    #[error("the database does not answer, or its migrations are not all applied")]
    NotMigrated,
    #[error(
        "the database's disk is full ({free} bytes free; at least {MIN_FREE_BYTES} are needed)"
    )]
    DiskFull { free: u64 },
    #[error("the database is read-only")]
    ReadOnly,
}

impl Store {
    /// Connects (creating a SQLite file on first use) and applies pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        Store::connect_with(url, DEFAULT_LOCK_WAIT).await
    }

    /// [`Store::connect`], with writes waiting at most `lock_wait` for another
    /// transaction's lock (SQLite's busy timeout, PostgreSQL's `lock_timeout`).
    pub async fn connect_with(url: &str, lock_wait: Duration) -> anyhow::Result<Store> {
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(lock_wait)
                // A page of an export (1,000 rows) fits, so the worker thread reads it
                // through without waiting for each row to be taken (the default, 50, made
                // the two threads wake each other for every row).
                .row_buffer_size(1024);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .after_release(|conn, meta| Box::pin(sqlite_reusable(conn, meta)))
                .connect_with(options)
                .await?;
            Store::Sqlite(pool)
        } else {
            let options = PgConnectOptions::from_str(url)?.options([(
                "lock_timeout",
                format!("{}ms", lock_wait.as_millis().max(1)),
            )]);
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .after_release(|conn, meta| Box::pin(postgres_reusable(conn, meta)))
                .connect_with(options)
                .await?;
            Store::Postgres(pool)
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(pool) => SQLITE_MIGRATIONS.run(pool).await?,
            Store::Postgres(pool) => POSTGRES_MIGRATIONS.run(pool).await?,
        }
        Ok(())
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// The SQLite file, when the store is one.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match self {
            Store::Sqlite(pool) => Some(pool.connect_options().get_filename().to_path_buf()),
            Store::Postgres(_) => None,
        }
    }

    /// Whether the store can take writes now: it answers, is migrated, is not read-only
    /// and (SQLite) its file system has room. A store that is only busy is writable.
    pub async fn writable(&self) -> Result<(), NotWritable> {
        if !self.is_ready().await {
            return Err(NotWritable::NotMigrated);
        }
        match self {
            Store::Sqlite(pool) => sqlite_room(pool.connect_options().get_filename()),
            Store::Postgres(pool) => {
                let sql =
                    "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'";
                match sqlx::query_scalar::<_, bool>(sql).fetch_one(pool).await {
                    Ok(false) => Ok(()),
                    Ok(true) => Err(NotWritable::ReadOnly),
                    Err(_) => Err(NotWritable::NotMigrated),
                }
            }
        }
    }

    /// True when the database answers and every migration this build knows is applied.
    pub async fn is_ready(&self) -> bool {
        let expected = match self {
            Store::Sqlite(_) => SQLITE_MIGRATIONS.iter().count(),
            Store::Postgres(_) => POSTGRES_MIGRATIONS.iter().count(),
        } as i64;
        let applied: Result<i64, sqlx::Error> = with_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await
        });
        matches!(applied, Ok(n) if n >= expected)
    }

    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await)
    }
}

/// Room for writes beside the SQLite file: its file system is writable and has at least
/// [`MIN_FREE_BYTES`] free. SQLite cannot say so itself: a write that fits in the pages
/// its WAL already holds succeeds on a full disk, and a rolled-back probe writes nothing.
fn sqlite_room(file: &Path) -> Result<(), NotWritable> {
    use rustix::{
        fs::{Access, StatVfsMountFlags, access, statvfs},
        io::Errno,
    };
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // An in-memory database, or a file system that cannot be asked: nothing to report.
    let Ok(fs) = statvfs(dir) else { return Ok(()) };
    let denied = matches!(
        access(file, Access::WRITE_OK),
        Err(Errno::ACCESS | Errno::ROFS)
    );
    if fs.f_flag.contains(StatVfsMountFlags::RDONLY) || denied {
        return Err(NotWritable::ReadOnly);
    }
    let free = fs.f_bavail.saturating_mul(fs.f_frsize);
    if free < MIN_FREE_BYTES {
        return Err(NotWritable::DiskFull { free });
    }
    Ok(())
}

/// Whether a SQLite connection may go back to the pool: only when neither sqlx nor
/// SQLite has a transaction open on it. SQLite rolls a transaction back by itself on
/// some errors (`SQLITE_FULL` among them); sqlx's own rollback then fails ("no
/// transaction is active") and its count stays at one, so the connection would refuse
/// the next `BEGIN IMMEDIATE` and turn a plain `BEGIN` into a savepoint that never
/// commits — holding the write lock for good. Such a connection is closed instead.
async fn sqlite_reusable(
    conn: &mut SqliteConnection,
    _: PoolConnectionMetadata,
) -> sqlx::Result<bool> {
    // Taking the handle waits for the commands queued before it, among them the rollback
    // of a transaction dropped on the way here.
    let mut handle = conn.lock_handle().await?;
    #[expect(
        unsafe_code,
        reason = "sqlx does not say whether SQLite is in a transaction"
    )]
    // SAFETY: the handle is locked for this thread; sqlite3_get_autocommit only reads it.
    let autocommit =
        unsafe { libsqlite3_sys::sqlite3_get_autocommit(handle.as_raw_handle().as_ptr()) } != 0;
    drop(handle);
    let reusable = autocommit && !conn.is_in_transaction();
    if !reusable {
        tracing::warn!("closing a database connection left inside a transaction");
    }
    Ok(reusable)
}

/// The same rule on PostgreSQL: a connection sqlx still counts inside a transaction is closed.
async fn postgres_reusable(
    conn: &mut PgConnection,
    _: PoolConnectionMetadata,
) -> sqlx::Result<bool> {
    let reusable = !conn.is_in_transaction();
    if !reusable {
        tracing::warn!("closing a database connection left inside a transaction");
    }
    Ok(reusable)
}
