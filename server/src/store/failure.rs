//! What a database error says about the store itself, as opposed to the request: the
//! write lock could not be had within the bounded wait (an import holds it), or the
//! database's disk is full. The HTTP layer answers these 503 and 507, the CLI says them
//! in words; every other database error stays an internal one.

use sqlx::error::DatabaseError;

/// A database error that is the store's condition, not a bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreFailure {
    /// SQLite `BUSY`/`LOCKED` after the busy timeout, a PostgreSQL lock timeout or
    /// deadlock, or no pooled connection free in time.
    #[error(
        "the gateway is busy importing: another import holds the database's write lock; \
         try again when it has finished"
    )]
    Busy,
    /// `SQLITE_FULL`, PostgreSQL `disk_full`.
    #[error("the database's disk is full: nothing was written; free some space and try again")]
    Full,
}

/// SQLite's primary result codes (the low byte of an extended code).
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_FULL: i64 = 13;

impl StoreFailure {
    /// The store condition `error` reports, if it reports one.
    pub fn of(error: &sqlx::Error) -> Option<StoreFailure> {
        match error {
            sqlx::Error::PoolTimedOut => Some(StoreFailure::Busy),
            sqlx::Error::Database(db) => of_database(db.as_ref()),
            _ => None,
        }
    }

    /// The store condition anywhere in an `anyhow` chain (a `sqlx::Error` given context).
    pub fn in_chain(error: &anyhow::Error) -> Option<StoreFailure> {
        error
            .chain()
            .find_map(|cause| cause.downcast_ref::<sqlx::Error>())
            .and_then(StoreFailure::of)
    }
}

fn of_database(db: &dyn DatabaseError) -> Option<StoreFailure> {
    let code = db.code()?;
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // SQLite reports extended codes (SQLITE_BUSY_SNAPSHOT is 517): the low byte is the class.
        return match code.parse::<i64>().ok()? & 0xff {
            SQLITE_BUSY | SQLITE_LOCKED => Some(StoreFailure::Busy),
            SQLITE_FULL => Some(StoreFailure::Full),
            _ => None,
        };
    }
    match code.as_ref() {
        // lock_not_available (lock_timeout), deadlock_detected
        "55P03" | "40P01" => Some(StoreFailure::Busy),
        // disk_full
        "53100" => Some(StoreFailure::Full),
        _ => None,
    }
}
