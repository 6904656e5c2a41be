//! What every MCP request reads before it reaches the upstream, kept in memory: what a
//! bearer token grants, the active server a path names, and the tool a `tools/call`
//! names in its scope. Without it one `tools/call` ran nine SQL statements (token, user,
//! server, its three link lists, and a snapshot transaction for the tool).
//!
//! An entry is used only while the store's [`Generation`] has not moved since it was
//! read (any entity change committed by this process or, on PostgreSQL, heard from
//! another replica; any token revoked through this process) and for at most
//! [`FRESH_FOR`]: the bound for what no feed reports (a token revoked on another
//! replica, a change made by another process on the same SQLite file). Only what was
//! found is kept, so unknown tokens or names cannot crowd out the rest, and the caches
//! are bounded.

use std::{
    future::Future,
    hash::Hash,
    sync::Arc,
    time::{Duration, Instant},
};

use app::{
    entities::{keys::fold_key, server::Server, tool::Tool},
    model::EntityKind,
};
use quick_cache::sync::Cache;
use uuid::Uuid;

use crate::{
    auth::{self, TokenGrant},
    entities::changes::{Generation, Stamp},
    mcp::Scope,
    store::{Store, now},
};

/// The longest an entry is used without being read again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// Entries per cache.
const CAPACITY: usize = 4096;

/// A value and when it was read.
#[derive(Clone)]
struct Entry<V> {
    value: V,
    generation: Stamp,
    read_at: Instant,
}

/// The store's generation when a request came in, read once (on SQLite that asks the
/// file) for all of the request's reads; kept in the request's extensions.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    generation: Option<Stamp>,
    at: Instant,
}

/// The caches of one gateway (one store).
pub struct HotPath {
    store: Store,
    generation: Generation,
    /// By the token's SHA-256.
    tokens: Cache<String, Entry<TokenGrant>>,
    /// By the id or name the path gave.
    servers: Cache<String, Entry<Arc<Server>>>,
    /// By the scope's server id (none for the gateway's own endpoint) and folded name.
    tools: Cache<(Option<Uuid>, String), Entry<Arc<Tool>>>,
}

impl HotPath {
    /// Caches over `store`; on PostgreSQL it listens to the other replicas from now on
    /// (when made inside a runtime, as the gateway's state is).
    pub fn new(store: Store) -> HotPath {
        HotPath {
            generation: Generation::of(&store),
            store,
            tokens: Cache::new(CAPACITY),
            servers: Cache::new(CAPACITY),
            tools: Cache::new(CAPACITY),
        }
    }

    /// The store's generation now, for the reads of one request.
    pub fn seen(&self) -> Seen {
        Seen {
            generation: self.generation.now(),
            at: Instant::now(),
        }
    }

    /// What the bearer token `token` grants, if it is valid now.
    pub async fn token(&self, seen: Seen, token: &str) -> sqlx::Result<Option<TokenGrant>> {
        let hash = auth::token_hash(token);
        let grant = self
            .read(seen, &self.tokens, hash, |hash| async move {
                auth::token_grant(&self.store, &hash).await
            })
            .await?;
        Ok(grant.filter(|g| g.is_valid(now())))
    }

    /// The active server with this id, or else this name.
    pub async fn server(&self, seen: Seen, id: &str) -> sqlx::Result<Option<Arc<Server>>> {
        self.read(seen, &self.servers, id.to_owned(), |id| async move {
            let found = find_server(&self.store, &id).await?;
            Ok(found.filter(|s| s.is_active).map(Arc::new))
        })
        .await
    }

    /// The active tool named `name` in `scope`.
    pub async fn tool(
        &self,
        seen: Seen,
        scope: &Scope,
        name: &str,
    ) -> anyhow::Result<Option<Arc<Tool>>> {
        let server = match scope {
            Scope::Gateway => None,
            Scope::Server(server) => server.id,
        };
        let key = (server, fold_key(EntityKind::Tool, name).into_owned());
        self.read(seen, &self.tools, key, |_| async move {
            let found = crate::mcp::find::<Tool>(&self.store, scope, name).await?;
            Ok(found.map(Arc::new))
        })
        .await
    }

    /// The fresh entry at `key`, or what `load` finds (kept when found). Of the requests
    /// that find no fresh entry at once, one loads and the others wait for what it
    /// keeps: at 64 calls in flight an expired entry was otherwise read 64 times.
    async fn read<K, V, E, F, Fut>(
        &self,
        seen: Seen,
        cache: &Cache<K, Entry<V>>,
        key: K,
        load: F,
    ) -> Result<Option<V>, E>
    where
        K: Eq + Hash + Clone,
        V: Clone,
        F: FnOnce(K) -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        let Some(generation) = seen.generation else {
            return load(key).await;
        };
        let fresh = |entry: &Entry<V>| {
            entry.generation == generation
                && seen.at.saturating_duration_since(entry.read_at) < FRESH_FOR
        };
        cache.remove_if(&key, |entry| !fresh(entry));
        let guard = match cache.get_value_or_guard_async(&key).await {
            Ok(entry) if fresh(&entry) => return Ok(Some(entry.value)),
            // Kept by a request that came in before a change this one has seen.
            Ok(_) => None,
            Err(guard) => Some(guard),
        };
        let found = load(key.clone()).await?;
        if let Some(value) = &found {
            // Stamped as of this request's start: a change committed since makes it stale.
            let entry = Entry {
                value: value.clone(),
                generation,
                read_at: seen.at,
            };
            match guard {
                Some(guard) => {
                    let _ = guard.insert(entry);
                }
                None => cache.insert(key, entry),
            }
        }
        Ok(found)
    }
}

/// The server with this id, or else with this name.
async fn find_server(store: &Store, id: &str) -> sqlx::Result<Option<Server>> {
    if let Ok(uuid) = Uuid::parse_str(id)
        && let Some(server) = store.get_entity::<Server>(uuid).await?
    {
        return Ok(Some(server));
    }
    let mut tx = store.begin_snapshot().await?;
    let found = tx.entities_by_keys::<Server>(&[id]).await?;
    tx.rollback().await?;
    Ok(found.into_values().next())
}
