//! The audit log: who did what, when. Callers must never put a secret in `details`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, now, with_pool};

#[derive(Clone, Debug, sqlx::FromRow, serde::Serialize)]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub target_type: Option<String>,
    pub target_name: Option<String>,
    pub details: Json<Value>,
}

/// What to record; the id and time are the store's.
#[derive(Clone, Debug, Default)]
pub struct NewAuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target_type: Option<&'a str>,
    pub target_name: Option<&'a str>,
    pub details: Value,
}

impl Store {
    pub async fn record_audit(&self, entry: NewAuditEntry<'_>) -> sqlx::Result<()> {
        let sql = "INSERT INTO audit_log (id, at, actor, action, target_type, target_name, details) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        with_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(Uuid::new_v4())
                .bind(now())
                .bind(entry.actor)
                .bind(entry.action)
                .bind(entry.target_type)
                .bind(entry.target_name)
                .bind(Json(&entry.details))
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    /// The newest entries first, optionally of one action only.
    pub async fn audit_entries(
        &self,
        action: Option<&str>,
        limit: i64,
    ) -> sqlx::Result<Vec<AuditEntry>> {
        let sql = "SELECT id, at, actor, action, target_type, target_name, details FROM audit_log \
                   WHERE ($1 IS NULL OR action = $1) ORDER BY at DESC LIMIT $2";
        with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(action)
            .bind(limit)
            .fetch_all(pool)
            .await)
    }
}
