//! Federated tools, prompts and resources in the store: rows of the usual tables whose
//! `gateway_id` names the peer gateway that offered them (see the
//! `add_federation_gateway` migration): deleting the gateway deletes them.

use std::collections::{HashMap, HashSet};

use app::{entities::Entity, model::EntityKind};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{
    Store,
    entities::{DocRow, LINKED, StoreTx, federable, hydrate_all, with_tx},
    with_pool,
};

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
        let found = self
            .linked_keys(|kind| {
                format!(
                    "SELECT key FROM {} WHERE gateway_id IS NOT NULL",
                    kind.plural()
                )
            })
            .await?;
        Ok(found.into_iter().collect())
    }

    /// Deletes the entities of `kind` with these ids; servers' links to them go with
    /// them (the link tables' cascades).
    pub async fn delete_ids(&mut self, kind: EntityKind, ids: &[Uuid]) -> sqlx::Result<()> {
        self.delete_in(kind.plural(), "id", ids).await
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
        for kind in LINKED {
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
