//! The change feed: after a write commits, the keys it touched, so live MCP sessions can
//! tell their clients that a list changed. One feed per store (per pool), so a test
//! process holding several gateways keeps them apart.
//!
//! On PostgreSQL the feed reaches the other replicas on the database: each change is also
//! sent with `pg_notify` (after the commit), and a replica with listeners `LISTEN`s and
//! feeds what other replicas send into its own feed. A notification names the feed that
//! sent it, so a replica does not hear its own changes twice. On SQLite there is one
//! process, and the in-process feed is all.

use std::{
    any::Any,
    sync::{
        Arc, LazyLock, Mutex, OnceLock, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use app::model::EntityKind;
use serde::{Deserialize, Serialize};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::store::{Store, with_pool};

/// Entities of one kind written by one committed change (keys as stored). No keys means
/// any entity of the kind may have changed: a change heard from another replica whose
/// keys did not fit in a notification, or the notifications missed while this replica's
/// connection to the database was down.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub kind: EntityKind,
    pub keys: Vec<String>,
}

/// Changes a slow session may fall behind by before it is told "something changed".
const CAPACITY: usize = 256;

/// The PostgreSQL channel the replicas of one database tell each other on.
const CHANNEL: &str = "mcpgateway_changes";
/// The channel that says an API token was revoked (the payload: the sender's feed).
const TOKENS_CHANNEL: &str = "mcpgateway_tokens";
/// PostgreSQL refuses a payload of 8000 bytes or more.
const MAX_PAYLOAD: usize = 7999;
/// The listener's connection, as `pg_stat_activity` names it.
pub const LISTENER_NAME: &str = "mcpgateway-changes";
/// How often the listener looks whether its store is still in use.
const OWNER_CHECK: Duration = Duration::from_secs(2);
/// The longest [`delivered`] waits for the last notifications to be sent.
const DELIVERY_WAIT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts to reconnect the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A change as sent to the other replicas.
#[derive(Serialize, Deserialize)]
struct Notice {
    /// The feed that sent it.
    replica: Uuid,
    kind: EntityKind,
    keys: Vec<String>,
}

/// One store's feed.
struct Shared {
    sender: broadcast::Sender<Change>,
    replica: Uuid,
    /// Notifications spawned and not yet sent, awaited before the store closes.
    pending: watch::Sender<usize>,
    listening: AtomicBool,
    /// Moves on every change this feed carries, and on every token revocation made
    /// through this store or heard of: what [`Generation`] reads.
    generation: AtomicU64,
    /// On SQLite, what tells of commits by other processes on the same file.
    file: OnceLock<Option<FileVersion>>,
}

struct Feed {
    /// The pool's connect options, alive as long as the pool is.
    owner: Weak<dyn Any + Send + Sync>,
    shared: Arc<Shared>,
}

static FEEDS: LazyLock<Mutex<Vec<Feed>>> = LazyLock::new(Mutex::default);

/// The store's feed, and its pool's connect options (which live as long as the pool).
fn feed(store: &Store) -> (Arc<Shared>, Arc<dyn Any + Send + Sync>) {
    let owner: Arc<dyn Any + Send + Sync> = with_pool!(store, |pool| pool.connect_options());
    let mut feeds = FEEDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    feeds.retain(|f| f.owner.strong_count() > 0);
    if let Some(found) = feeds
        .iter()
        .find(|f| std::ptr::addr_eq(f.owner.as_ptr(), Arc::as_ptr(&owner)))
    {
        return (found.shared.clone(), owner);
    }
    let shared = Arc::new(Shared {
        sender: broadcast::channel(CAPACITY).0,
        replica: Uuid::new_v4(),
        pending: watch::channel(0).0,
        listening: AtomicBool::new(false),
        generation: AtomicU64::new(0),
        file: OnceLock::new(),
    });
    feeds.push(Feed {
        owner: Arc::downgrade(&owner),
        shared: shared.clone(),
    });
    (shared, owner)
}

/// Tells the store's listeners, and on PostgreSQL the other replicas', that these
/// entities changed (call after the commit).
pub fn publish(store: &Store, kind: EntityKind, keys: Vec<String>) {
    if keys.is_empty() {
        return;
    }
    let (shared, _) = feed(store);
    if let Store::Postgres(pool) = store {
        shared.notify_replicas(pool, kind, &keys);
    }
    shared.send(Change { kind, keys });
}

/// The changes committed through `store`, and on PostgreSQL through the other replicas
/// on its database, from now on.
pub fn subscribe(store: &Store) -> broadcast::Receiver<Change> {
    hear_replicas(store).sender.subscribe()
}

/// The store's feed, listening (on PostgreSQL) to the other replicas from now on.
fn hear_replicas(store: &Store) -> Arc<Shared> {
    let (shared, owner) = feed(store);
    if let Store::Postgres(pool) = store
        && let Ok(runtime) = tokio::runtime::Handle::try_current()
        && !shared.listening.swap(true, Ordering::SeqCst)
    {
        let options = (*pool.connect_options()).clone();
        runtime.spawn(listen(options, Arc::downgrade(&owner), shared.clone()));
    }
    shared
}

/// What moves whenever the store's data may have changed: a change on its feed
/// (committed here or, on PostgreSQL, by another replica), an API token revoked (here,
/// or heard of from another replica), and on SQLite any commit to the file by any
/// process (`PRAGMA data_version` on a connection of its own). What was read while it
/// stood still is still what the store holds. Cheap to read.
#[derive(Clone)]
pub struct Generation(Arc<Shared>);

/// One reading of a [`Generation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    feed: u64,
    file: Option<i64>,
}

impl Generation {
    /// The store's generation; on PostgreSQL, listening to the other replicas from now
    /// on (when called inside a runtime).
    pub fn of(store: &Store) -> Generation {
        let shared = hear_replicas(store);
        shared.file.get_or_init(|| FileVersion::open(store));
        Generation(shared)
    }

    /// The generation now; `None` when it cannot be told (the SQLite file's version
    /// could not be read), so nothing read may be trusted.
    pub fn now(&self) -> Option<Stamp> {
        let feed = self.0.generation.load(Ordering::Acquire);
        let file = match self.0.file.get() {
            Some(Some(file)) => Some(file.version()?),
            _ => None,
        };
        Some(Stamp { feed, file })
    }
}

/// A read-only connection of its own on a SQLite file: `PRAGMA data_version` changes
/// when any other connection, in any process, commits to the file (a CLI revoking a
/// token or importing, while a gateway serves the same file).
struct FileVersion(Mutex<rusqlite::Connection>);

impl FileVersion {
    fn open(store: &Store) -> Option<FileVersion> {
        let Store::Sqlite(pool) = store else {
            return None;
        };
        let options = pool.connect_options();
        let path = options.get_filename();
        if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
            return None;
        }
        let flags =
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let opened = rusqlite::Connection::open_with_flags(path, flags)
            .and_then(|conn| conn.busy_timeout(Duration::from_millis(100)).map(|()| conn));
        match opened {
            Ok(conn) => Some(FileVersion(Mutex::new(conn))),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the SQLite file for other processes' commits");
                None
            }
        }
    }

    fn version(&self) -> Option<i64> {
        let conn = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        conn.pragma_query_value(None, "data_version", |row| row.get(0))
            .ok()
    }
}

/// Moves the store's [`Generation`], and the other replicas': an API token was revoked
/// (tokens are not entities, so no [`Change`]).
pub fn tokens_changed(store: &Store) {
    let (shared, _) = feed(store);
    shared.generation.fetch_add(1, Ordering::AcqRel);
    if let Store::Postgres(pool) = store {
        shared.send_notice(pool, TOKENS_CHANNEL, shared.replica.to_string());
    }
}

/// Waits until this store's changes have been sent to the other replicas (before the
/// store closes: a command's process must not end with a notification unsent).
pub async fn delivered(store: &Store) {
    let (shared, _) = feed(store);
    let mut pending = shared.pending.subscribe();
    // A database that does not answer must not keep a command from ending.
    let sent = tokio::time::timeout(DELIVERY_WAIT, pending.wait_for(|n| *n == 0)).await;
    if sent.is_err() {
        tracing::warn!("other replicas may not have been told of the last changes");
    }
}

/// One notification on its way: counted until sent, failed or dropped (a runtime that
/// shuts down drops its tasks), so that [`delivered`] never waits for a lost one.
struct Pending(Arc<Shared>);

impl Pending {
    fn new(shared: Arc<Shared>) -> Pending {
        shared.pending.send_modify(|n| *n += 1);
        Pending(shared)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.send_modify(|n| *n -= 1);
    }
}

impl Shared {
    /// Moves the generation, then tells the listeners (no listener is no error: nobody
    /// needs telling).
    fn send(&self, change: Change) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let _ = self.sender.send(change);
    }

    /// `pg_notify` of the change, its keys left out when they do not fit.
    fn notify_replicas(self: &Arc<Self>, pool: &PgPool, kind: EntityKind, keys: &[String]) {
        let mut notice = Notice {
            replica: self.replica,
            kind,
            keys: keys.to_vec(),
        };
        let mut payload = serde_json::to_string(&notice).expect("a notice serializes");
        if payload.len() > MAX_PAYLOAD {
            notice.keys.clear();
            payload = serde_json::to_string(&notice).expect("a notice serializes");
        }
        self.send_notice(pool, CHANNEL, payload);
    }

    /// `pg_notify` on `channel`, in the background (counted until sent).
    fn send_notice(self: &Arc<Self>, pool: &PgPool, channel: &'static str, payload: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(channel, "no runtime: other replicas not told of a change");
            return;
        };
        let pending = Pending::new(self.clone());
        let pool = pool.clone();
        runtime.spawn(async move {
            let _pending = pending;
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(&pool)
                .await;
            if let Err(e) = sent {
                tracing::warn!(channel, error = %e, "other replicas not told of a change");
            }
        });
    }

    /// Another replica revoked a token: what was read of tokens may be stale.
    fn heard_tokens(&self, payload: &str) {
        if payload != self.replica.to_string() {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// A notification from the database: another replica's change joins this feed.
    fn heard(&self, payload: &str) {
        match serde_json::from_str::<Notice>(payload) {
            Ok(notice) if notice.replica == self.replica => {}
            Ok(notice) => self.send(Change {
                kind: notice.kind,
                keys: notice.keys,
            }),
            Err(e) => tracing::warn!(error = %e, "an unreadable notification on {CHANNEL} ignored"),
        }
    }

    /// Anything may have changed (notifications were missed).
    fn all_changed(&self) {
        for kind in EntityKind::ALL {
            self.send(Change {
                kind,
                keys: Vec::new(),
            });
        }
    }
}

/// Hears the other replicas' changes until the store is dropped, on a connection of its
/// own, reconnecting (with a growing pause) when it is lost; after a reconnect every
/// list may have changed.
async fn listen(
    options: PgConnectOptions,
    owner: Weak<dyn Any + Send + Sync>,
    shared: Arc<Shared>,
) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options.application_name(LISTENER_NAME));
    // Closing the pool ends a wait for a notification: the store is gone, so is the listener.
    let closer = pool.clone();
    tokio::spawn(async move {
        while owner.strong_count() > 0 {
            tokio::time::sleep(OWNER_CHECK).await;
        }
        closer.close().await;
    });
    let mut backoff = Duration::from_millis(100);
    let mut connected_before = false;
    while !pool.is_closed() {
        let mut listener = match connect(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                if !pool.is_closed() {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot listen for other replicas' changes");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        if connected_before {
            shared.all_changed();
        }
        connected_before = true;
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) if notification.channel() == TOKENS_CHANNEL => {
                    shared.heard_tokens(notification.payload());
                }
                Ok(Some(notification)) => shared.heard(notification.payload()),
                // Lost and connected again: notifications may have been missed.
                Ok(None) => shared.all_changed(),
                Err(e) => {
                    if !pool.is_closed() {
                        tracing::warn!(error = %e, "lost the connection listening for other replicas' changes");
                    }
                    break;
                }
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([CHANNEL, TOKENS_CHANNEL]).await?;
    Ok(listener)
}
