//! Browser sessions: a random cookie value, stored as its SHA-256 hash.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, now, with_pool};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Store {
    /// Stores a new session and drops the expired ones.
    pub async fn insert_session(
        &self,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> sqlx::Result<Session> {
        let session = Session {
            id: Uuid::new_v4(),
            user_id,
            created_at: now(),
            expires_at,
        };
        let insert = "INSERT INTO sessions (id, user_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
        let purge = "DELETE FROM sessions WHERE expires_at < $1";
        with_pool!(self, |pool| {
            sqlx::query(purge)
                .bind(session.created_at)
                .execute(pool)
                .await?;
            sqlx::query(insert)
                .bind(session.id)
                .bind(user_id)
                .bind(token_hash)
                .bind(session.created_at)
                .bind(expires_at)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(session)
    }

    pub async fn session_by_hash(&self, token_hash: &str) -> sqlx::Result<Option<Session>> {
        let sql = "SELECT id, user_id, created_at, expires_at FROM sessions WHERE token_hash = $1";
        with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(token_hash)
            .fetch_optional(pool)
            .await)
    }

    pub async fn delete_session(&self, token_hash: &str) -> sqlx::Result<()> {
        let sql = "DELETE FROM sessions WHERE token_hash = $1";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(token_hash)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }
}
