//! Federated tools, prompts and resources in the store: rows of the usual tables whose
//! `gateway_id` names the peer gateway that offered them (see the
//! `add_federation_gateway` migration): deleting the gateway deletes them.

use std::collections::{HashMap, HashSet};

use app::{entities::Entity, model::EntityKind};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{
    Store,
    entities::{DocRow, StoreTx, federable, hydrate_all, in_list, with_tx},
    with_pool,
};

/// The types discovery stores.
const FEDERABLE: [EntityKind; 3] = [EntityKind::Tool, EntityKind::Prompt, EntityKind::Resource];

/// Ids per `DELETE … IN (…)`.
const IN_CHUNK: usize = 1000;

impl StoreTx {
    /// The entity with this id, read on the transaction (no links: not for servers).
    pub async fn entity_by_id<E: Entity>(&mut self, id: Uuid) -> sqlx::Result<Option<E>> {
        debug_assert!(E::KIND != EntityKind::Server);
        let sql = AssertSqlSafe(format!(
            "SELECT id, doc FROM {} WHERE id = $1",
            E::KIND.plural()
        ));
        let row: Option<DocRow<E>> = with_tx!(self, |conn| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await)?;
        Ok(hydrate_all(row.into_iter().collect(), HashMap::new()).pop())
    }

    /// Every entity of `E` discovered from the gateway `gateway_id` (placeholders too).
    pub async fn federated<E: Entity>(&mut self, gateway_id: Uuid) -> sqlx::Result<Vec<E>> {
        debug_assert!(federable(E::KIND));
        let sql = AssertSqlSafe(format!(
            "SELECT id, doc FROM {} WHERE gateway_id = $1 ORDER BY key",
            E::KIND.plural()
        ));
        let rows: Vec<DocRow<E>> = with_tx!(self, |conn| sqlx::query_as(sql)
            .bind(gateway_id)
            .fetch_all(&mut *conn)
            .await)?;
        Ok(hydrate_all(rows, HashMap::new()))
    }

    /// The (type, key) of every tool, prompt and resource discovered on a peer gateway,
    /// read on this transaction.
    pub async fn discovered_keys(&mut self) -> sqlx::Result<HashSet<(EntityKind, String)>> {
        let mut found = HashSet::new();
        for kind in FEDERABLE {
            let sql = AssertSqlSafe(format!(
                "SELECT key FROM {} WHERE gateway_id IS NOT NULL",
                kind.plural()
            ));
            let keys: Vec<String> = with_tx!(self, |conn| sqlx::query_scalar(sql)
                .fetch_all(&mut *conn)
                .await)?;
            found.extend(keys.into_iter().map(|key| (kind, key)));
        }
        Ok(found)
    }

    /// Deletes the entities of `kind` with these ids; servers' links to them go with
    /// them (the link tables' cascades).
    pub async fn delete_ids(&mut self, kind: EntityKind, ids: &[Uuid]) -> sqlx::Result<()> {
        for chunk in ids.chunks(IN_CHUNK) {
            let sql = AssertSqlSafe(format!(
                "DELETE FROM {} WHERE id IN {}",
                kind.plural(),
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
}

impl Store {
    /// Every gateway's key (its name).
    pub async fn gateway_keys(&self) -> sqlx::Result<Vec<String>> {
        with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT key FROM gateways ORDER BY key"
        )
        .fetch_all(pool)
        .await)
    }

    /// The keys of the tools, prompts and resources discovered from the gateway `id`, by
    /// type: what deleting the gateway removes, for the change feed.
    pub async fn federated_keys(&self, id: Uuid) -> sqlx::Result<Vec<(EntityKind, Vec<String>)>> {
        let mut found = Vec::new();
        for kind in FEDERABLE {
            let sql = AssertSqlSafe(format!(
                "SELECT key FROM {} WHERE gateway_id = $1 ORDER BY key",
                kind.plural()
            ));
            let keys: Vec<String> = with_pool!(self, |pool| sqlx::query_scalar(sql)
                .bind(id)
                .fetch_all(pool)
                .await)?;
            found.push((kind, keys));
        }
        Ok(found)
    }
}
