//! Stored records read as the text the store holds, for an export to copy through.
//!
//! On SQLite the rows are stepped on the caller's thread, straight from the connection's
//! handle (sqlx's `lock_handle`), and each record is lent to the caller where SQLite
//! holds it. sqlx's row stream instead moves every row from its worker thread to the
//! reading task through a channel: a wake-up of each thread per row (736,000 futex
//! calls for an export of 100,000 entities, over half of its run time) and two copies of
//! every record on the way.

use std::ops::ControlFlow;

use app::model::EntityKind;
use futures_util::TryStreamExt;
use sqlx::AssertSqlSafe;

use super::entities::StoreTx;

/// One stored record, borrowed from the row it was read from.
#[derive(Clone, Copy, Debug)]
pub struct RecordText<'r> {
    pub key: &'r str,
    pub is_active: bool,
    /// The record as stored: on SQLite the compact JSON its type's serialiser wrote (no
    /// id, no links), on PostgreSQL the text of its `json` column.
    pub doc: &'r [u8],
}

/// The SQL of [`StoreTx::visit_records`]: `$1` whether inactive records are read too,
/// `$2` the key to start after (none: from the first).
fn records_query(kind: EntityKind) -> String {
    format!(
        "SELECT key, is_active, CAST(doc AS TEXT) AS doc FROM {} \
         WHERE ($1 OR is_active) AND ($2 IS NULL OR key > $2){} ORDER BY key",
        kind.plural(),
        super::entities::local_only(kind)
    )
}

impl StoreTx {
    /// Lends `visit` every stored record of `kind` (inactive ones too when asked) whose
    /// key sorts after `after` (every one without it), in key order, read on this
    /// transaction's snapshot, until `visit` breaks. Returns the key of the record it
    /// broke on (to start the next call after), `None` when every record was visited.
    ///
    /// On SQLite the transaction's connection is held by this thread until the call
    /// returns: the caller takes a bounded share of the records per call (an export, a
    /// buffer's worth) and writes it out between calls. Not for servers, whose links
    /// are not in their records, nor for what peer gateways' discovery stored (exports
    /// leave that out).
    pub async fn visit_records<F>(
        &mut self,
        kind: EntityKind,
        include_inactive: bool,
        after: Option<&str>,
        mut visit: F,
    ) -> anyhow::Result<Option<String>>
    where
        F: FnMut(RecordText<'_>) -> ControlFlow<()>,
    {
        debug_assert!(
            kind != EntityKind::Server,
            "a server's links are not in its doc"
        );
        let sql = records_query(kind);
        match self {
            StoreTx::Sqlite(tx) => {
                let mut handle = tx.lock_handle().await?;
                let raw = handle.as_raw_handle().as_ptr();
                #[expect(
                    unsafe_code,
                    reason = "sqlx steps rows only on its worker thread, handing each over: \
                              rusqlite steps them here, on the handle sqlx lends"
                )]
                // SAFETY: `handle` holds the connection's lock until the end of this arm,
                // so neither sqlx's worker nor anyone else uses it meanwhile; the rusqlite
                // connection does not own the handle (it never closes it), finalizes its
                // statement before it is dropped, and is dropped before `handle` is.
                let conn = unsafe { rusqlite::Connection::from_handle(raw) }?;
                let visited = visit_sqlite(&conn, &sql, include_inactive, after, &mut visit);
                drop(conn);
                drop(handle);
                Ok(visited?)
            }
            StoreTx::Postgres(tx) => {
                let mut rows = sqlx::query_as::<_, (String, bool, String)>(AssertSqlSafe(sql))
                    .bind(include_inactive)
                    .bind(after)
                    .fetch(&mut **tx);
                while let Some((key, is_active, doc)) = rows.try_next().await? {
                    let record = RecordText {
                        key: &key,
                        is_active,
                        doc: doc.as_bytes(),
                    };
                    if visit(record).is_break() {
                        return Ok(Some(key));
                    }
                }
                Ok(None)
            }
        }
    }
}

/// [`StoreTx::visit_records`] on a SQLite connection this thread holds.
fn visit_sqlite(
    conn: &rusqlite::Connection,
    sql: &str,
    include_inactive: bool,
    after: Option<&str>,
    visit: &mut impl FnMut(RecordText<'_>) -> ControlFlow<()>,
) -> rusqlite::Result<Option<String>> {
    let mut statement = conn.prepare(sql)?;
    let mut rows = statement.query((include_inactive, after))?;
    while let Some(row) = rows.next()? {
        let record = RecordText {
            key: row.get_ref(0)?.as_str()?,
            is_active: row.get(1)?,
            doc: row.get_ref(2)?.as_bytes()?,
        };
        if visit(record).is_break() {
            return Ok(Some(record.key.to_owned()));
        }
    }
    Ok(None)
}
