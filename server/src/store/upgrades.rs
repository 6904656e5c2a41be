//! The `store_upgrades` table: which one-off rewrites of stored records were done, and
//! for what state (see [`crate::entities::upgrade`]).

use super::{Store, now, with_pool};

impl Store {
    /// The state the upgrade `name` was last done for, if it ever was.
    pub async fn upgrade_state(&self, name: &str) -> sqlx::Result<Option<String>> {
        let sql = "SELECT state FROM store_upgrades WHERE name = $1";
        with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(name)
            .fetch_optional(pool)
            .await)
    }

    /// Records that the upgrade `name` is done for `state`.
    pub async fn set_upgrade_state(&self, name: &str, state: &str) -> sqlx::Result<()> {
        let sql = "INSERT INTO store_upgrades (name, state, done_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (name) DO UPDATE SET state = excluded.state, done_at = excluded.done_at";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(name)
            .bind(state)
            .bind(now())
            .execute(pool)
            .await
            .map(|_| ()))
    }
}
