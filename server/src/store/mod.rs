//! The store: one interface over SQLite (embedded default) and PostgreSQL, chosen at
//! runtime from the database URL.
//!
//! Queries are written once, with `$N` placeholders that both databases accept, and run
//! on whichever pool the URL selected through [`with_pool!`]. Where the SQL must differ,
//! a function matches on the backend explicitly. Each backend has its own migrations
//! folder (`server/migrations/{sqlite,postgres}`), applied at start.

pub mod audit;
pub mod entities;
pub mod jobs;
pub mod sessions;
pub mod tokens;
pub mod upgrades;
pub mod users;

use std::{path::PathBuf, str::FromStr, time::Duration};

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::{
    PgPool, SqlitePool,
    migrate::Migrator,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

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

impl Store {
    /// Connects (creating a SQLite file on first use) and applies pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // A page of an export (1,000 rows) fits, so the worker thread reads it
                // through without waiting for each row to be taken (the default, 50, made
                // the two threads wake each other for every row).
                .row_buffer_size(1024);
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await?;
            Store::Sqlite(pool)
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
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
