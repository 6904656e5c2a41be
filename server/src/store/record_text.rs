//! Stored records read as the text the store holds, for an export to copy through.
//!
//! On SQLite one thread of our own steps a single statement over the whole table, straight
//! from the connection's handle (sqlx's `lock_handle`), and hands the records over in
//! chunks of a few hundred KB: the reader (SQLite's page reads and stepping) and the
//! export (re-indenting, writing) run on two cores. sqlx's row stream instead moves
//! every row from its worker thread to the reading task through a channel: a wake-up of
//! each thread per row (736,000 futex calls for an export of 100,000 entities, over half
//! of its run time) and two copies of every record on the way. One statement per table,
//! not one per chunk, also spares SQLite a new scan of the key index for every chunk.

use std::collections::HashMap;

use app::{entities::Entity, model::EntityKind};
use futures_util::{StreamExt, TryStreamExt, stream::BoxStream};
use sqlx::{AssertSqlSafe, sqlite::LockedSqliteHandle, types::Json};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::entities::{
    DocRow, IN_CHUNK, LINKED, Params, StoreTx, hydrate_all, links_in_query, page_query, server_ids,
};

/// Chunks read ahead of the one being written: enough to keep the reader busy while the
/// writer works, few enough to keep memory flat.
const CHUNKS_AHEAD: usize = 2;

/// One stored record, borrowed from the chunk it was read into.
#[derive(Clone, Copy, Debug)]
pub struct RecordText<'r> {
    pub key: &'r str,
    pub is_active: bool,
    /// The record as stored: on SQLite the compact JSON its type's serialiser wrote (no
    /// id, no links), on PostgreSQL the text of its `json` column.
    pub doc: &'r [u8],
}

/// Records read in one go, in key order: their keys and texts one after the other.
#[derive(Debug, Default)]
pub struct RecordChunk {
    text: Vec<u8>,
    /// Per record: where its key ends and its doc ends in `text`, and its state.
    ends: Vec<(usize, usize, bool)>,
}

impl RecordChunk {
    fn with_capacity(bytes: usize) -> Self {
        RecordChunk {
            text: Vec::with_capacity(bytes + bytes / 8),
            ends: Vec::new(),
        }
    }

    fn push(&mut self, key: &str, is_active: bool, doc: &[u8]) {
        self.text.extend_from_slice(key.as_bytes());
        let key_end = self.text.len();
        self.text.extend_from_slice(doc);
        self.ends.push((key_end, self.text.len(), is_active));
    }

    fn bytes(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The records, in key order.
    pub fn iter(&self) -> impl Iterator<Item = RecordText<'_>> {
        let starts = std::iter::once(0).chain(self.ends.iter().map(|(_, end, _)| *end));
        starts
            .zip(&self.ends)
            .map(|(start, &(key_end, end, is_active))| RecordText {
                // A chunk holds whole keys, copied from `&str`s: the boundary is valid.
                key: std::str::from_utf8(&self.text[start..key_end]).unwrap_or_default(),
                is_active,
                doc: &self.text[key_end..end],
            })
    }
}

/// The SQL of [`StoreTx::records`]: `$1` whether inactive records are read too.
fn records_query(kind: EntityKind) -> String {
    format!(
        "SELECT key, is_active, CAST(doc AS TEXT) AS doc FROM {} WHERE ($1 OR is_active){} ORDER BY key",
        kind.plural(),
        super::entities::local_only(kind)
    )
}

/// The stored records of one type, read in chunks on a transaction's snapshot: see
/// [`StoreTx::records`].
pub struct Records<'t> {
    source: Source<'t>,
    chunk_bytes: usize,
}

enum Source<'t> {
    // Fields drop in order: the reader thread is stopped and joined before the handle
    // goes back to sqlx.
    Sqlite {
        reader: SqliteReader,
        _handle: LockedSqliteHandle<'t>,
    },
    Postgres(BoxStream<'t, sqlx::Result<(String, bool, String)>>),
}

impl StoreTx {
    /// Every stored record of `kind` (inactive ones too when asked), in key order, read on
    /// this transaction's snapshot and handed over in chunks of about `chunk_bytes`.
    ///
    /// On SQLite the transaction's connection is lent to a thread that reads ahead (a
    /// bounded number of chunks) until the [`Records`] is dropped; the transaction is
    /// borrowed meanwhile. Not for servers, whose links are not in their records, nor for
    /// what peer gateways' discovery stored (exports leave that out).
    pub async fn records(
        &mut self,
        kind: EntityKind,
        include_inactive: bool,
        chunk_bytes: usize,
    ) -> anyhow::Result<Records<'_>> {
        debug_assert!(
            kind != EntityKind::Server,
            "a server's links are not in its doc"
        );
        let sql = records_query(kind);
        let source = match self {
            StoreTx::Sqlite(tx) => {
                let mut handle = tx.lock_handle().await?;
                let raw = RawConnection(handle.as_raw_handle().as_ptr());
                Source::Sqlite {
                    reader: SqliteReader::start(raw, sql, include_inactive, chunk_bytes)?,
                    _handle: handle,
                }
            }
            StoreTx::Postgres(tx) => Source::Postgres(
                sqlx::query_as::<_, (String, bool, String)>(AssertSqlSafe(sql))
                    .bind(include_inactive)
                    .fetch(&mut **tx)
                    .boxed(),
            ),
        };
        Ok(Records {
            source,
            chunk_bytes: chunk_bytes.max(1),
        })
    }
}

impl Records<'_> {
    /// The next chunk of records; `None` once every record was handed over.
    pub async fn next(&mut self) -> anyhow::Result<Option<RecordChunk>> {
        match &mut self.source {
            Source::Sqlite { reader, .. } => reader.next().await,
            Source::Postgres(rows) => {
                let mut chunk = RecordChunk::default();
                while chunk.bytes() < self.chunk_bytes {
                    let Some((key, is_active, doc)) = rows.try_next().await? else {
                        break;
                    };
                    chunk.push(&key, is_active, doc.as_bytes());
                }
                Ok((!chunk.is_empty()).then_some(chunk))
            }
        }
    }
}

/// A SQLite connection's handle, lent to the reader thread.
struct RawConnection(*mut libsqlite3_sys::sqlite3);

#[expect(
    unsafe_code,
    reason = "the handle moves to the reader thread while sqlx's lock keeps everyone else off it"
)]
// SAFETY: sqlx opens connections without SQLite's mutex (`SQLITE_OPEN_NOMUTEX`), which
// allows any thread to use a connection as long as one uses it at a time: the reader
// thread is the only user from its start until it is joined ([`SqliteReader`]'s drop),
// and the [`LockedSqliteHandle`] keeps sqlx's worker off it until then.
unsafe impl Send for RawConnection {}

/// The thread stepping one SQLite statement, and the chunks it hands over.
struct SqliteReader {
    chunks: mpsc::Receiver<rusqlite::Result<RecordChunk>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SqliteReader {
    fn start(
        raw: RawConnection,
        sql: String,
        include_inactive: bool,
        chunk_bytes: usize,
    ) -> std::io::Result<Self> {
        let (sender, chunks) = mpsc::channel(CHUNKS_AHEAD);
        let read = move || {
            let raw = raw;
            if let Err(e) = read_sqlite(raw.0, &sql, include_inactive, chunk_bytes, &sender) {
                // The receiver gone, nobody waits for the error either.
                let _ = sender.blocking_send(Err(e));
            }
        };
        let thread = std::thread::Builder::new()
            .name("store-reader".into())
            .spawn(read)?;
        Ok(SqliteReader {
            chunks,
            thread: Some(thread),
        })
    }

    async fn next(&mut self) -> anyhow::Result<Option<RecordChunk>> {
        match self.chunks.recv().await {
            Some(chunk) => Ok(Some(chunk?)),
            None => match self.thread.take().map(std::thread::JoinHandle::join) {
                Some(Err(_)) => anyhow::bail!("the thread reading the records panicked"),
                _ => Ok(None),
            },
        }
    }
}

impl Drop for SqliteReader {
    /// Stops the reader (its next hand-over fails) and waits for it to let go of the
    /// connection: at most the reading of one chunk.
    fn drop(&mut self) {
        self.chunks.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Steps `sql` on the connection `raw` and sends its rows in chunks of `chunk_bytes`,
/// until the last row or until the receiver is gone.
fn read_sqlite(
    raw: *mut libsqlite3_sys::sqlite3,
    sql: &str,
    include_inactive: bool,
    chunk_bytes: usize,
    sender: &mpsc::Sender<rusqlite::Result<RecordChunk>>,
) -> rusqlite::Result<()> {
    #[expect(
        unsafe_code,
        reason = "sqlx steps rows only on its worker thread, handing each over: rusqlite \
                  steps them here, on the handle sqlx lends"
    )]
    // SAFETY: see `RawConnection`: this thread is the handle's only user until it ends;
    // the rusqlite connection does not own the handle (it never closes it), finalizes its
    // statement before it is dropped, and is dropped before this thread ends.
    let conn = unsafe { rusqlite::Connection::from_handle(raw) }?;
    let mut statement = conn.prepare(sql)?;
    let mut rows = statement.query((include_inactive,))?;
    let mut chunk = RecordChunk::with_capacity(chunk_bytes);
    while let Some(row) = rows.next()? {
        chunk.push(
            row.get_ref(0)?.as_str()?,
            row.get(1)?,
            row.get_ref(2)?.as_bytes()?,
        );
        if chunk.bytes() >= chunk_bytes {
            let full = std::mem::replace(&mut chunk, RecordChunk::with_capacity(chunk_bytes));
            if sender.blocking_send(Ok(full)).is_err() {
                return Ok(());
            }
        }
    }
    if !chunk.is_empty() {
        let _ = sender.blocking_send(Ok(chunk));
    }
    Ok(())
}

impl StoreTx {
    /// [`StoreTx::entities_after`] for an export. On SQLite the page and its links are
    /// stepped on this thread, straight from the connection's handle: a page of servers
    /// comes with thousands of link rows, which sqlx's worker would hand over one by one.
    pub async fn export_page<E: Entity>(
        &mut self,
        include_inactive: bool,
        after: Option<&str>,
        limit: i64,
    ) -> anyhow::Result<Vec<E>> {
        let StoreTx::Sqlite(tx) = self else {
            return Ok(self.entities_after(include_inactive, after, limit).await?);
        };
        let mut handle = tx.lock_handle().await?;
        let raw = handle.as_raw_handle().as_ptr();
        #[expect(
            unsafe_code,
            reason = "sqlx steps rows only on its worker thread, handing each over: rusqlite \
                      steps them here, on the handle sqlx lends"
        )]
        // SAFETY: `handle` holds the connection's lock until the end of this function, so
        // neither sqlx's worker nor anyone else uses it meanwhile; the rusqlite connection
        // does not own the handle (it never closes it), finalizes its statements before
        // it is dropped, and is dropped before `handle` is.
        let conn = unsafe { rusqlite::Connection::from_handle(raw) }?;
        let page = page_sqlite::<E>(&conn, include_inactive, after, limit);
        drop(conn);
        drop(handle);
        page
    }
}

/// [`StoreTx::export_page`] on a SQLite connection this thread holds.
fn page_sqlite<E: Entity>(
    conn: &rusqlite::Connection,
    include_inactive: bool,
    after: Option<&str>,
    limit: i64,
) -> anyhow::Result<Vec<E>> {
    let mut statement = conn.prepare(&page_query(E::KIND, after.is_some()))?;
    let mut rows = statement.query((include_inactive, after, limit))?;
    let mut page = Vec::new();
    while let Some(row) = rows.next()? {
        page.push(DocRow {
            id: Uuid::from_slice(row.get_ref(0)?.as_blob()?)?,
            doc: Json(serde_json::from_slice(row.get_ref(1)?.as_bytes()?)?),
        });
    }
    let ids = server_ids(&page);
    let mut links: HashMap<Uuid, Vec<(EntityKind, String)>> = HashMap::new();
    for kind in LINKED {
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = links_in_query(kind, chunk.len(), Params::Anonymous);
            let mut statement = conn.prepare(&sql)?;
            let ids = chunk.iter().map(|id| id.as_bytes().as_slice());
            let mut rows = statement.query(rusqlite::params_from_iter(ids))?;
            while let Some(row) = rows.next()? {
                let server = Uuid::from_slice(row.get_ref(0)?.as_blob()?)?;
                let key = row.get_ref(1)?.as_str()?.to_owned();
                links.entry(server).or_default().push((kind, key));
            }
        }
    }
    Ok(hydrate_all(page, links))
}
