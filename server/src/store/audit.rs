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
        self.search_audit(&AuditQuery {
            action: action.map(str::to_owned),
            limit,
            ..Default::default()
        })
        .await
    }

    /// The newest entries first that match every given filter.
    pub async fn search_audit(&self, query: &AuditQuery) -> sqlx::Result<Vec<AuditEntry>> {
        let sql = "SELECT id, at, actor, action, target_type, target_name, details FROM audit_log \
                   WHERE ($1 IS NULL OR action = $1) AND ($2 IS NULL OR actor = $2) \
                   AND ($3 IS NULL OR at >= $3) ORDER BY at DESC LIMIT $4";
        with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(query.action.as_deref())
            .bind(query.actor.as_deref())
            .bind(query.since)
            .bind(query.limit)
            .fetch_all(pool)
            .await)
    }
}

/// Filters of [`Store::search_audit`].
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub limit: i64,
}
