//! Leases: with several replicas on one database, one at a time discovers and
//! health-checks a gateway (every replica serves its calls). A lease is a row per gateway
//! (owner, expiry), taken or renewed by one conditional upsert that both SQLite and
//! PostgreSQL run atomically; it lapses when its owner stops renewing it.

use std::time::Duration;

use uuid::Uuid;

use crate::store::{Store, now, with_pool};

/// How many renewal periods a lease outlives its last renewal: an owner that misses one
/// (a slow check, a busy database) keeps it; one that stopped loses it after this many.
pub const EXPIRY_PERIODS: u32 = 3;

impl Store {
    /// Takes gateway `gateway`'s lease for `owner` until `ttl` from now, or renews it:
    /// true when `owner` holds it now. Another owner's lease is taken only once expired.
    /// A gateway deleted meanwhile: false.
    pub async fn acquire_lease(
        &self,
        gateway: Uuid,
        owner: &str,
        ttl: Duration,
    ) -> sqlx::Result<bool> {
        let sql = "INSERT INTO gateway_leases (gateway_id, owner, expires_at) VALUES ($1, $2, $3) \
                   ON CONFLICT (gateway_id) DO UPDATE SET owner = excluded.owner, \
                   expires_at = excluded.expires_at \
                   WHERE gateway_leases.owner = excluded.owner OR gateway_leases.expires_at < $4";
        let at = now();
        let expires = at + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let taken = with_pool!(self, |pool| sqlx::query(sql)
            .bind(gateway)
            .bind(owner)
            .bind(expires)
            .bind(at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected() == 1));
        match taken {
            Err(e) if is_foreign_key_violation(&e) => Ok(false),
            other => other,
        }
    }

    /// Gives the lease up (an owner that stops), so another replica takes over at once.
    pub async fn release_lease(&self, gateway: Uuid, owner: &str) -> sqlx::Result<()> {
        let sql = "DELETE FROM gateway_leases WHERE gateway_id = $1 AND owner = $2";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(gateway)
            .bind(owner)
            .execute(pool)
            .await
            .map(drop))
    }

    /// Who holds gateway `gateway`'s lease now (`None`: nobody, or it expired).
    pub async fn lease_owner(&self, gateway: Uuid) -> sqlx::Result<Option<String>> {
        let sql = "SELECT owner FROM gateway_leases WHERE gateway_id = $1 AND expires_at >= $2";
        with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(gateway)
            .bind(now())
            .fetch_optional(pool)
            .await)
    }
}

/// The lease's duration for a gateway checked every `interval`.
pub fn ttl(interval: Duration) -> Duration {
    interval * EXPIRY_PERIODS
}

fn is_foreign_key_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.kind() == sqlx::error::ErrorKind::ForeignKeyViolation)
}
