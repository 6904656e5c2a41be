//! The six entity tables, through one generic implementation.
//!
//! Every table has the same layout (see the `create_entities` migration): the record is
//! stored whole as JSON in `doc`, with the columns lists filter on beside it. A server's
//! references to tools, prompts and resources live in link tables, resolved by key on
//! write and read back as keys.

use std::collections::{HashMap, HashSet};

use app::{
    entities::{Entity, Timestamp, keys::fold_key},
    model::EntityKind,
    validation::{Code, FieldError, join},
};
use sqlx::{AssertSqlSafe, QueryBuilder, types::Json};
use uuid::Uuid;

use super::{Store, now, with_pool};

#[derive(Debug, thiserror::Error)]
pub enum EntityError {
    #[error("a {} with the key `{key}` (or one differing from it only in case) already exists", kind.singular())]
    Duplicate { kind: EntityKind, key: String },
    /// The key folds like a stored one: it differs only in case, or from a row stored
    /// before keys were trimmed (names are unique regardless of case).
    #[error(
        "`{key}` is the same name as the existing {} `{existing}`: names are compared trimmed and regardless of case",
        kind.singular()
    )]
    CaseTwin {
        kind: EntityKind,
        key: String,
        existing: String,
    },
    #[error("unknown references")]
    UnknownReferences(Vec<FieldError>),
    #[error("still used by servers: {}", .0.join(", "))]
    InUse(Vec<String>),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Filters and paging for lists.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// Entities carrying this tag (by normalised id).
    pub tag: Option<String>,
    /// Case-insensitive substring of the name or key.
    pub search: Option<String>,
    pub include_inactive: bool,
    pub limit: Option<i64>,
    pub offset: i64,
}

/// The link table and its column for references from servers to `kind`.
fn link_table(kind: EntityKind) -> (&'static str, &'static str) {
    match kind {
        EntityKind::Tool => ("server_tools", "tool_id"),
        EntityKind::Prompt => ("server_prompts", "prompt_id"),
        EntityKind::Resource => ("server_resources", "resource_id"),
        other => unreachable!("servers do not link {other:?}"),
    }
}

/// A server's references by type, as keys.
type Links = Vec<(EntityKind, Vec<String>)>;

/// The types a server links to, and discovery on peer gateways stores.
pub(super) const LINKED: [EntityKind; 3] =
    [EntityKind::Tool, EntityKind::Prompt, EntityKind::Resource];

/// Rows per multi-row `INSERT`: 10 or 11 parameters each, far below SQLite's 32,766 and
/// PostgreSQL's 65,535 bind parameters.
pub const BATCH_ROWS: usize = 500;
/// Link rows (3 parameters each) per multi-row `INSERT`.
const LINK_ROWS: usize = 2000;
/// Values per `IN (…)` list.
pub(super) const IN_CHUNK: usize = 1000;

/// The id of a new entity: time-ordered (UUIDv7), so that a large import appends to the
/// id index instead of writing all over it.
pub fn new_entity_id() -> Uuid {
    Uuid::now_v7()
}

/// How a backend spells the bind parameters of an `IN (…)` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Params {
    /// `(?, ?, …)`, for SQLite: it finds each numbered parameter's name (`$7`) by scanning
    /// the statement's list of names from the front, so a list of 1,000 `$n` would cost
    /// half a million steps per query.
    Anonymous,
    /// `($1, $2, …)`, for PostgreSQL.
    Numbered,
}

/// `(?, ?, …)` or `($1, $2, …, $n)`: a list of `n` parameters, the first parameters of
/// their query.
pub(super) fn in_list(n: usize, params: Params) -> String {
    in_list_from(1, n, params)
}

/// A list of `n` parameters numbered from `first` (`($first, …)` on PostgreSQL).
fn in_list_from(first: usize, n: usize, params: Params) -> String {
    let mut list = String::with_capacity(2 + n * 6);
    list.push('(');
    for i in first..first + n {
        if i > first {
            list.push_str(", ");
        }
        match params {
            Params::Anonymous => list.push('?'),
            Params::Numbered => {
                list.push('$');
                list.push_str(&i.to_string());
            }
        }
    }
    list.push(')');
    list
}

/// The keys of `kind` that the `n` servers of the parameter list link to, as (server id,
/// key), in position order.
pub(super) fn links_in_query(kind: EntityKind, n: usize, params: Params) -> String {
    let (table, column) = link_table(kind);
    format!(
        "SELECT l.server_id, t.key FROM {table} l JOIN {} t ON t.id = l.{column} \
         WHERE l.server_id IN {} ORDER BY l.server_id, l.position",
        kind.plural(),
        in_list(n, params)
    )
}

/// The SQL of a page of [`StoreTx::entities_after`]: `$1` whether inactive entities are
/// read too, `$2` the key to start after, `$3` the page's length. Two statements, not
/// `($2 IS NULL OR key > $2)`: SQLite scans the key index from its start for such an
/// `OR`, filtering every key before the page.
pub(super) fn page_query(kind: EntityKind, after: bool) -> String {
    let after_key = match after {
        true => "key > $2",
        false => "$2 IS NULL",
    };
    format!(
        "SELECT id, doc FROM {} WHERE ($1 OR is_active) AND {after_key} ORDER BY key LIMIT $3",
        kind.plural()
    )
}

/// The links of the servers `$ids` by server, each list in position order: one query
/// per linked type and chunk of ids, on executor `$exec` (a pool, or `&mut *conn`) of a
/// backend whose lists are spelled `$params`.
macro_rules! fetch_links {
    ($exec:expr, $ids:expr, $params:expr) => {{
        let mut links: HashMap<Uuid, Vec<(EntityKind, String)>> = HashMap::new();
        for kind in LINKED {
            for chunk in $ids.chunks(IN_CHUNK) {
                let sql = AssertSqlSafe(links_in_query(kind, chunk.len(), $params));
                let mut query = sqlx::query_as::<_, (Uuid, String)>(sql);
                for id in chunk {
                    query = query.bind(*id);
                }
                for (server, key) in query.fetch_all($exec).await? {
                    links.entry(server).or_default().push((kind, key));
                }
            }
        }
        links
    }};
}

/// The ids of `rows` when they are servers (whose links are read next); none otherwise.
pub(super) fn server_ids<E: Entity>(rows: &[DocRow<E>]) -> Vec<Uuid> {
    match E::KIND {
        EntityKind::Server => rows.iter().map(|r| r.id).collect(),
        _ => Vec::new(),
    }
}

/// Stored records with their ids and (for servers) their links filled in.
pub(super) fn hydrate_all<E: Entity>(
    rows: Vec<DocRow<E>>,
    mut links: HashMap<Uuid, Vec<(EntityKind, String)>>,
) -> Vec<E> {
    rows.into_iter()
        .map(|row| {
            let mut entity = row.doc.0;
            entity.set_id(Some(row.id));
            if E::KIND == EntityKind::Server {
                let mut by_kind: HashMap<EntityKind, Vec<String>> = HashMap::new();
                for (kind, key) in links.remove(&row.id).unwrap_or_default() {
                    by_kind.entry(kind).or_default().push(key);
                }
                for kind in LINKED {
                    entity.set_links(kind, by_kind.remove(&kind).unwrap_or_default());
                }
            }
            entity
        })
        .collect()
}

fn tag_index<E: Entity>(entity: &E) -> String {
    let mut index = String::from(",");
    for tag in entity.tags() {
        index.push_str(&tag.id);
        index.push(',');
    }
    index
}

/// The record as stored: no id, no links (those have columns and tables of their own).
fn stored_doc<E: Entity>(entity: &E) -> (E, Vec<(EntityKind, Vec<String>)>) {
    let mut doc = entity.clone();
    doc.set_id(None);
    let links = doc.take_links();
    (doc, links)
}

/// An open transaction on the store: several writes that land together or not at all.
pub enum StoreTx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// Runs one expression on the transaction's connection, whichever backend it is.
macro_rules! with_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            StoreTx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            StoreTx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}
pub(super) use with_tx;

impl Store {
    /// How this backend spells a parameter list.
    fn params(&self) -> Params {
        match self {
            Store::Sqlite(_) => Params::Anonymous,
            Store::Postgres(_) => Params::Numbered,
        }
    }

    /// A write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`,
    /// waiting up to the busy timeout): a deferred one that reads first cannot write
    /// after another connection has committed (`SQLITE_BUSY_SNAPSHOT`, no waiting).
    pub async fn begin(&self) -> sqlx::Result<StoreTx> {
        Ok(match self {
            Store::Sqlite(pool) => StoreTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Store::Postgres(pool) => StoreTx::Postgres(pool.begin().await?),
        })
    }
}

impl Store {
    /// A read-only transaction that sees one snapshot of every table (PostgreSQL:
    /// REPEATABLE READ; SQLite in WAL mode: the snapshot of its first read), so that
    /// reads of several tables never straddle another transaction's commit.
    pub async fn begin_snapshot(&self) -> sqlx::Result<StoreTx> {
        Ok(match self {
            Store::Sqlite(pool) => StoreTx::Sqlite(pool.begin().await?),
            Store::Postgres(pool) => StoreTx::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await?,
            ),
        })
    }
}

impl StoreTx {
    /// How this backend spells a parameter list.
    pub(super) fn params(&self) -> Params {
        match self {
            StoreTx::Sqlite(_) => Params::Anonymous,
            StoreTx::Postgres(_) => Params::Numbered,
        }
    }

    /// The disabled tools, prompts and resources that enabled servers link to: what an
    /// export of the enabled entities must carry so that its servers import anywhere
    /// (not those discovered on peers: the file links them by name, for rediscovery).
    pub async fn inactive_links_of_active_servers(
        &mut self,
    ) -> sqlx::Result<Vec<(EntityKind, String)>> {
        self.linked_keys(|kind| {
            let (table, column) = link_table(kind);
            format!(
                "SELECT DISTINCT t.key FROM {table} l JOIN {} t ON t.id = l.{column} \
                 JOIN servers s ON s.id = l.server_id WHERE s.is_active AND NOT t.is_active \
                 AND t.gateway_id IS NULL",
                kind.plural()
            )
        })
        .await
    }

    /// The keys `sql` (one `key` column) finds in each type servers link to (tools,
    /// prompts, resources), with their type, read on this transaction.
    pub(super) async fn linked_keys(
        &mut self,
        sql: impl Fn(EntityKind) -> String,
    ) -> sqlx::Result<Vec<(EntityKind, String)>> {
        let mut found = Vec::new();
        for kind in LINKED {
            let sql = AssertSqlSafe(sql(kind));
            let keys: Vec<String> = with_tx!(self, |conn| sqlx::query_scalar(sql)
                .fetch_all(&mut *conn)
                .await)?;
            found.extend(keys.into_iter().map(|key| (kind, key)));
        }
        Ok(found)
    }

    /// What selection needs of every stored entity of `kind` (inactive ones too when
    /// asked) but those discovered on peer gateways (an export leaves them out: they are
    /// rediscovered where the gateway is imported), ordered by key, read on this
    /// transaction: no record is parsed.
    pub async fn outlines(
        &mut self,
        kind: EntityKind,
        include_inactive: bool,
    ) -> sqlx::Result<Vec<Outline>> {
        let sql = AssertSqlSafe(format!(
            "SELECT id, key, name, tag_index FROM {} WHERE ($1 OR is_active){} ORDER BY key",
            kind.plural(),
            local_only(kind)
        ));
        let params = self.params();
        let (rows, mut links) = with_tx!(self, |conn| async {
            let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(sql)
                .bind(include_inactive)
                .fetch_all(&mut *conn)
                .await?;
            let ids: Vec<Uuid> = match kind {
                EntityKind::Server => rows.iter().map(|r| r.0).collect(),
                _ => Vec::new(),
            };
            let links = fetch_links!(&mut *conn, ids, params);
            Ok::<_, sqlx::Error>((rows, links))
        }
        .await)?;
        Ok(rows
            .into_iter()
            .map(|(id, key, name, tag_index)| Outline {
                links: links.remove(&id).unwrap_or_default(),
                tags: tag_index
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
                id,
                key,
                name,
            })
            .collect())
    }

    /// Up to `limit` entities ordered by key, those after `after` only: the pages an
    /// export streams (keyset pagination: each page is one indexed range scan), all read
    /// on this transaction (one snapshot, see [`Store::begin_snapshot`]).
    pub async fn entities_after<E: Entity>(
        &mut self,
        include_inactive: bool,
        after: Option<&str>,
        limit: i64,
    ) -> sqlx::Result<Vec<E>> {
        let sql = AssertSqlSafe(page_query(E::KIND, after.is_some()));
        let params = self.params();
        let (rows, links) = with_tx!(self, |conn| async {
            let rows: Vec<DocRow<E>> = sqlx::query_as(sql)
                .bind(include_inactive)
                .bind(after)
                .bind(limit)
                .fetch_all(&mut *conn)
                .await?;
            let ids = server_ids(&rows);
            let links = fetch_links!(&mut *conn, ids, params);
            Ok::<_, sqlx::Error>((rows, links))
        }
        .await)?;
        Ok(hydrate_all(rows, links))
    }

    /// True when a record reads back as the very text its serialiser wrote (SQLite's
    /// `TEXT`). PostgreSQL's `json` column keeps the text it is given, but that text has
    /// been through `jsonb` (the type records are bound as): keys reordered, spaces added.
    pub fn keeps_record_text(&self) -> bool {
        matches!(self, StoreTx::Sqlite(_))
    }

    pub async fn commit(self) -> sqlx::Result<()> {
        match self {
            StoreTx::Sqlite(t) => t.commit().await,
            StoreTx::Postgres(t) => t.commit().await,
        }
    }

    pub async fn rollback(self) -> sqlx::Result<()> {
        match self {
            StoreTx::Sqlite(t) => t.rollback().await,
            StoreTx::Postgres(t) => t.rollback().await,
        }
    }

    /// Inserts a validated entity; sets its id and timestamps (kept when the record has them).
    pub async fn insert_entity<E: Entity>(&mut self, entity: &mut E) -> Result<Uuid, EntityError> {
        let id = new_entity_id();
        let at = Timestamp(now());
        let (created, updated) = entity.timestamps();
        entity.set_timestamps(created.unwrap_or(at), updated.unwrap_or(at));
        let mut row = entity.clone();
        row.set_id(Some(id));
        self.write_entities(vec![row], false).await?;
        entity.set_id(Some(id));
        Ok(id)
    }

    /// Replaces a stored entity (same id; `created_at` kept, `updated_at` now); false
    /// when there is none with this id.
    pub async fn update_entity<E: Entity>(
        &mut self,
        id: Uuid,
        entity: &mut E,
    ) -> Result<bool, EntityError> {
        let (created, _) = entity.timestamps();
        let at = Timestamp(now());
        entity.set_timestamps(created.unwrap_or(at), at);
        entity.set_id(Some(id));
        // Says whether the row exists and holds it (PostgreSQL's row lock; SQLite's write
        // transaction holds every row), so that the write below replaces and never inserts.
        let hold = AssertSqlSafe(format!(
            "UPDATE {} SET updated_at = updated_at WHERE id = $1",
            E::KIND.plural()
        ));
        let found = with_tx!(self, |conn| sqlx::query(hold)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map(|r| r.rows_affected()))?;
        if found == 0 {
            return Ok(false);
        }
        self.write_entities(vec![entity.clone()], true).await?;
        Ok(true)
    }

    /// Rewrites a stored record's document and credential type only: no new timestamps,
    /// the same key and links (a change of representation, such as a credential moved
    /// into its encrypted form, not an edit).
    pub async fn replace_doc<E: Entity>(&mut self, id: Uuid, entity: &E) -> sqlx::Result<()> {
        let (doc, _links) = stored_doc(entity);
        let sql = AssertSqlSafe(format!(
            "UPDATE {} SET doc = $2, auth_type = $3 WHERE id = $1",
            E::KIND.plural()
        ));
        with_tx!(self, |conn| sqlx::query(sql)
            .bind(id)
            .bind(Json(&doc))
            .bind(entity.credential().map(|c| c.0.as_str()))
            .execute(&mut *conn)
            .await
            .map(|_| ()))
    }
}

impl StoreTx {
    /// The stored entities with these keys or keys folding the same (names differing
    /// only in case: see [`fold_key`]), links included, by folded key, seen from inside
    /// the transaction: one query per chunk of keys (plus one per linked type for servers).
    pub async fn entities_by_keys<E: Entity>(
        &mut self,
        keys: &[&str],
    ) -> sqlx::Result<HashMap<String, E>> {
        let mut found = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(IN_CHUNK) {
            // By `key` too: a row stored before `key_fold` existed may have none.
            let sql = AssertSqlSafe(format!(
                "SELECT id, doc FROM {} WHERE key_fold IN {} OR key IN {}",
                E::KIND.plural(),
                in_list(chunk.len(), self.params()),
                in_list_from(chunk.len() + 1, chunk.len(), self.params())
            ));
            let params = self.params();
            let (rows, links): (Vec<DocRow<E>>, _) = with_tx!(self, |conn| async {
                let mut query = sqlx::query_as(sql);
                for key in chunk {
                    query = query.bind(fold_key(E::KIND, key).into_owned());
                }
                for key in chunk {
                    query = query.bind(*key);
                }
                let rows: Vec<DocRow<E>> = query.fetch_all(&mut *conn).await?;
                let ids = server_ids(&rows);
                let links = fetch_links!(&mut *conn, ids, params);
                Ok::<_, sqlx::Error>((rows, links))
            }
            .await)?;
            found.extend(
                hydrate_all(rows, links)
                    .into_iter()
                    .map(|e| (fold_key(E::KIND, e.key()).into_owned(), e)),
            );
        }
        Ok(found)
    }

    /// The ids of the entities of `kind` with these keys, by key (keys naming nothing are absent).
    pub async fn ids_by_keys(
        &mut self,
        kind: EntityKind,
        keys: &[&str],
    ) -> sqlx::Result<HashMap<String, Uuid>> {
        let mut found = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(IN_CHUNK) {
            let sql = AssertSqlSafe(keys_query(kind, chunk.len(), self.params()));
            let rows: Vec<(String, Uuid)> = with_tx!(self, |conn| {
                let mut query = sqlx::query_as(sql);
                for key in chunk {
                    query = query.bind(*key);
                }
                query.fetch_all(&mut *conn).await
            })?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// Writes entities with multi-row `INSERT`s of [`BATCH_ROWS`] rows: new rows, or with
    /// `replace` new versions of stored rows with the same ids (`created_at` column kept).
    /// Each entity must carry its id and timestamps. A server's links are written from
    /// its lists (replacing the stored ones with `replace`); keys naming nothing are
    /// skipped (callers check them beforehand).
    pub async fn write_entities<E: Entity>(
        &mut self,
        entities: Vec<E>,
        replace: bool,
    ) -> Result<(), EntityError> {
        // The record as stored: no id, no links (those have columns and tables of their own).
        let stored: Vec<(Uuid, E, Links)> = entities
            .into_iter()
            .map(|mut doc| {
                let id = doc.id().expect("ids are set before writing");
                doc.set_id(None);
                let links = doc.take_links();
                (id, doc, links)
            })
            .collect();
        let head = format!("INSERT INTO {} ({}) ", E::KIND.plural(), columns(E::KIND));
        let tail = if replace {
            replace_tail(E::KIND)
        } else {
            String::new()
        };
        for chunk in stored.chunks(BATCH_ROWS) {
            let done = with_tx!(self, |conn| {
                let mut insert = QueryBuilder::new(head.as_str());
                insert.push_values(chunk, |mut row, (id, doc, _)| {
                    let (created, updated) = doc.timestamps();
                    row.push_bind(*id)
                        .push_bind(doc.key())
                        .push_bind(doc.name())
                        .push_bind(doc.is_active())
                        .push_bind(tag_index(doc))
                        .push_bind(doc.credential().map(|c| c.0.as_str()))
                        .push_bind(created.map(|t| t.0))
                        .push_bind(updated.map(|t| t.0))
                        .push_bind(Json(doc))
                        .push_bind(fold_key(E::KIND, doc.key()).into_owned());
                    if federable(E::KIND) {
                        row.push_bind(doc.federation().map(|o| o.gateway_id));
                    }
                });
                insert.push(&tail);
                insert.build().execute(&mut *conn).await.map(drop)
            });
            // A unique violation here means a concurrent writer took one of the keys.
            done.map_err(|e| duplicate_or(e, E::KIND, chunk[0].1.key()))?;
        }
        if E::KIND == EntityKind::Server {
            self.write_links(&stored, replace).await?;
        }
        Ok(())
    }

    /// Deletes the rows of `table` whose `column` is one of `ids`, a chunk at a time.
    pub(super) async fn delete_in(
        &mut self,
        table: &str,
        column: &str,
        ids: &[Uuid],
    ) -> sqlx::Result<()> {
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE {column} IN {}",
                in_list(chunk.len(), self.params())
            ));
            with_tx!(self, |conn| {
                let mut query = sqlx::query(sql);
                for id in chunk {
                    query = query.bind(*id);
                }
                query.execute(&mut *conn).await.map(drop)
            })?;
        }
        Ok(())
    }

    /// The link rows of `servers`, in multi-row `INSERT`s.
    async fn write_links<E: Entity>(
        &mut self,
        servers: &[(Uuid, E, Links)],
        replace: bool,
    ) -> Result<(), EntityError> {
        let server_ids: Vec<Uuid> = servers.iter().map(|s| s.0).collect();
        for kind in LINKED {
            let (table, column) = link_table(kind);
            if replace {
                self.delete_in(table, "server_id", &server_ids).await?;
            }
            let lists: Vec<(Uuid, &[String])> = servers
                .iter()
                .flat_map(|(id, _, links)| {
                    links
                        .iter()
                        .filter(|(k, _)| *k == kind)
                        .map(move |(_, keys)| (*id, keys.as_slice()))
                })
                .collect();
            let keys: HashSet<&str> = lists
                .iter()
                .flat_map(|(_, keys)| keys.iter().map(String::as_str))
                .collect();
            if keys.is_empty() {
                continue;
            }
            let keys: Vec<&str> = keys.into_iter().collect();
            let ids = self.ids_by_keys(kind, &keys).await?;
            let rows: Vec<(Uuid, Uuid, i32)> = lists
                .iter()
                .flat_map(|(server, keys)| {
                    keys.iter().enumerate().filter_map(|(position, key)| {
                        ids.get(key).map(|id| (*server, *id, position as i32))
                    })
                })
                .collect();
            let head = format!("INSERT INTO {table} (server_id, {column}, position) ");
            for chunk in rows.chunks(LINK_ROWS) {
                with_tx!(self, |conn| {
                    let mut insert = QueryBuilder::new(head.as_str());
                    insert.push_values(chunk, |mut row, (server, id, position)| {
                        row.push_bind(*server).push_bind(*id).push_bind(*position);
                    });
                    insert.build().execute(&mut *conn).await.map(drop)
                })?;
            }
        }
        Ok(())
    }
}

/// The columns of an entity row, in the order [`StoreTx::write_entities`] binds them.
const COLUMNS: &str =
    "id, key, name, is_active, tag_index, auth_type, created_at, updated_at, doc, key_fold";

/// ` AND gateway_id IS NULL` for the types discovery stores: a filter to local rows.
pub(super) fn local_only(kind: EntityKind) -> &'static str {
    match federable(kind) {
        true => " AND gateway_id IS NULL",
        false => "",
    }
}

/// True for the types a peer gateway's discovery stores (with a `gateway_id` column).
pub fn federable(kind: EntityKind) -> bool {
    LINKED.contains(&kind)
}

/// The columns of a row of `kind`: [`COLUMNS`], and the discovering gateway's id for
/// the types discovery stores.
fn columns(kind: EntityKind) -> String {
    match federable(kind) {
        true => format!("{COLUMNS}, gateway_id"),
        false => COLUMNS.to_owned(),
    }
}

/// What makes an entity row's `INSERT` replace the stored row with the same id: every
/// column but `id` and `created_at`.
fn replace_tail(kind: EntityKind) -> String {
    let columns = columns(kind);
    let set: Vec<String> = columns
        .split(", ")
        .filter(|c| !matches!(*c, "id" | "created_at"))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(" ON CONFLICT (id) DO UPDATE SET {}", set.join(", "))
}

/// `key, id` of the entities of `kind` whose key is one of the `n` parameters.
fn keys_query(kind: EntityKind, n: usize, params: Params) -> String {
    format!(
        "SELECT key, id FROM {} WHERE key IN {}",
        kind.plural(),
        in_list(n, params)
    )
}

/// An entity as selection sees it: its id, key, name, tag ids and (servers) links.
#[derive(Debug)]
pub struct Outline {
    pub id: Uuid,
    pub key: String,
    pub name: String,
    pub tags: Vec<String>,
    pub links: Vec<(EntityKind, String)>,
}

#[derive(sqlx::FromRow)]
pub(super) struct DocRow<E> {
    pub(super) id: Uuid,
    pub(super) doc: Json<E>,
}

impl Store {
    /// Inserts a validated entity in its own transaction; see [`StoreTx::insert_entity`].
    pub async fn insert_entity<E: Entity>(&self, entity: &mut E) -> Result<Uuid, EntityError> {
        let mut tx = self.begin().await?;
        let id = tx.insert_entity(entity).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Checks that every key an entity references exists; errors point into `base`.
    pub async fn check_links<E: Entity>(&self, entity: &E, base: &str) -> Result<(), EntityError> {
        let mut errors = Vec::new();
        for (kind, keys) in entity.links() {
            let field = kind.link_field();
            for (i, key) in keys.iter().enumerate() {
                if self.id_by_key(kind, key).await?.is_none() {
                    errors.push(FieldError {
                        pointer: join(&join(base, field), &i.to_string()),
                        code: Code::UnknownReference,
                        message: format!(
                            "no {} with the key `{key}`",
                            kind.plural().trim_end_matches('s')
                        ),
                    });
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(EntityError::UnknownReferences(errors))
        }
    }

    /// The keys of `kind` among `keys` that name a stored entity.
    pub async fn existing_keys(
        &self,
        kind: EntityKind,
        keys: &[&str],
    ) -> sqlx::Result<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in keys.chunks(IN_CHUNK) {
            let sql = AssertSqlSafe(keys_query(kind, chunk.len(), self.params()));
            let rows: Vec<(String, Uuid)> = with_pool!(self, |pool| {
                let mut query = sqlx::query_as(sql);
                for key in chunk {
                    query = query.bind(*key);
                }
                query.fetch_all(pool).await
            })?;
            found.extend(rows.into_iter().map(|(key, _)| key));
        }
        Ok(found)
    }

    /// Refuses `key` when another entity of `kind` than `id` has a key differing from it
    /// only in case (the unique index on `key_fold` refuses it too; this names the other).
    pub async fn check_case_twin(
        &self,
        kind: EntityKind,
        key: &str,
        id: Option<Uuid>,
    ) -> Result<(), EntityError> {
        let sql = AssertSqlSafe(format!(
            "SELECT key FROM {} WHERE key_fold = $1 AND key <> $2 AND id <> $3",
            kind.plural()
        ));
        let existing: Option<String> = with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(fold_key(kind, key).into_owned())
            .bind(key)
            .bind(id.unwrap_or_default())
            .fetch_optional(pool)
            .await)?;
        match existing {
            Some(existing) => Err(EntityError::CaseTwin {
                kind,
                key: key.to_owned(),
                existing,
            }),
            None => Ok(()),
        }
    }

    pub async fn id_by_key(&self, kind: EntityKind, key: &str) -> sqlx::Result<Option<Uuid>> {
        let sql = AssertSqlSafe(format!("SELECT id FROM {} WHERE key = $1", kind.plural()));
        with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(key)
            .fetch_optional(pool)
            .await)
    }

    pub async fn get_entity<E: Entity>(&self, id: Uuid) -> sqlx::Result<Option<E>> {
        let sql = AssertSqlSafe(format!(
            "SELECT id, doc FROM {} WHERE id = $1",
            E::KIND.plural()
        ));
        let row: Option<DocRow<E>> = with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)?;
        Ok(self.with_links(row.into_iter().collect()).await?.pop())
    }

    /// A page of entities ordered by key, and the number matching the filters.
    pub async fn list_entities<E: Entity>(&self, query: &ListQuery) -> sqlx::Result<(Vec<E>, i64)> {
        let filter = "WHERE ($1 OR is_active) AND ($2 IS NULL OR tag_index LIKE $2 ESCAPE '\\') \
                      AND ($3 IS NULL OR lower(name) LIKE $3 ESCAPE '\\' OR lower(key) LIKE $3 ESCAPE '\\')";
        let table = E::KIND.plural();
        let list = AssertSqlSafe(format!(
            "SELECT id, doc FROM {table} {filter} ORDER BY key LIMIT $4 OFFSET $5"
        ));
        let count = AssertSqlSafe(format!("SELECT COUNT(*) FROM {table} {filter}"));
        let tag = query
            .tag
            .as_ref()
            .map(|t| format!("%,{},%", escape_like(&t.to_lowercase())));
        let search = query
            .search
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| format!("%{}%", escape_like(&s.to_lowercase())));
        let limit = query.limit.unwrap_or(i64::MAX).clamp(0, i64::MAX);
        let (rows, total): (Vec<DocRow<E>>, i64) = with_pool!(self, |pool| async {
            let rows = sqlx::query_as(list)
                .bind(query.include_inactive)
                .bind(tag.as_deref())
                .bind(search.as_deref())
                .bind(limit)
                .bind(query.offset.max(0))
                .fetch_all(pool)
                .await?;
            let total = sqlx::query_scalar(count)
                .bind(query.include_inactive)
                .bind(tag.as_deref())
                .bind(search.as_deref())
                .fetch_one(pool)
                .await?;
            Ok::<_, sqlx::Error>((rows, total))
        }
        .await)?;
        Ok((self.with_links(rows).await?, total))
    }

    /// Stored records with their ids and (for servers) their links filled in.
    async fn with_links<E: Entity>(&self, rows: Vec<DocRow<E>>) -> sqlx::Result<Vec<E>> {
        let ids = server_ids(&rows);
        let params = self.params();
        let links = with_pool!(self, |pool| async {
            Ok::<_, sqlx::Error>(fetch_links!(pool, ids, params))
        }
        .await)?;
        Ok(hydrate_all(rows, links))
    }

    /// Replaces a stored entity in its own transaction; see [`StoreTx::update_entity`].
    pub async fn update_entity<E: Entity>(
        &self,
        id: Uuid,
        entity: &mut E,
    ) -> Result<bool, EntityError> {
        let mut tx = self.begin().await?;
        let found = tx.update_entity(id, entity).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Deletes an entity. A tool, prompt or resource that servers use is refused unless
    /// `force`, which also removes it from those servers.
    pub async fn delete_entity(
        &self,
        kind: EntityKind,
        id: Uuid,
        force: bool,
    ) -> Result<bool, EntityError> {
        if matches!(
            kind,
            EntityKind::Tool | EntityKind::Prompt | EntityKind::Resource
        ) && !force
        {
            let users = self.servers_using(kind, id).await?;
            if !users.is_empty() {
                return Err(EntityError::InUse(users));
            }
        }
        let sql = AssertSqlSafe(format!("DELETE FROM {} WHERE id = $1", kind.plural()));
        let done = with_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(done > 0)
    }

    /// The names of the servers that reference entity `id` of `kind`.
    pub async fn servers_using(&self, kind: EntityKind, id: Uuid) -> sqlx::Result<Vec<String>> {
        let (table, column) = link_table(kind);
        let sql = AssertSqlSafe(format!(
            "SELECT s.key FROM {table} l JOIN servers s ON s.id = l.server_id WHERE l.{column} = $1 ORDER BY s.key"
        ));
        with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .fetch_all(pool)
            .await)
    }

    pub async fn count_entities(&self, kind: EntityKind) -> sqlx::Result<i64> {
        let sql = AssertSqlSafe(format!("SELECT COUNT(*) FROM {}", kind.plural()));
        with_pool!(self, |pool| sqlx::query_scalar(sql).fetch_one(pool).await)
    }
}

fn duplicate_or(e: sqlx::Error, kind: EntityKind, key: &str) -> EntityError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => EntityError::Duplicate {
            kind,
            key: key.to_owned(),
        },
        other => EntityError::Database(other),
    }
}

/// Escapes the LIKE wildcards so a search matches them literally (with a backslash escape).
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_lists_are_spelled_per_backend() {
        assert_eq!(in_list(3, Params::Anonymous), "(?, ?, ?)");
        assert_eq!(in_list(3, Params::Numbered), "($1, $2, $3)");
        assert_eq!(in_list(1, Params::Numbered), "($1)");
        let sql = keys_query(EntityKind::Tool, 2, Params::Anonymous);
        assert_eq!(sql, "SELECT key, id FROM tools WHERE key IN (?, ?)");
    }
}
