//! API tokens: stored as SHA-256 hashes; the plaintext is shown once, at creation.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, now, with_pool};

/// A token as listed: never its plaintext, never its hash.
#[derive(Clone, Debug, sqlx::FromRow, serde::Serialize)]
pub struct ApiToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The servers whose MCP endpoints alone it reaches (a JSON array of names); `None`
    /// for a token without that limit.
    #[serde(skip)]
    pub servers: Option<String>,
}

impl ApiToken {
    pub fn is_active(&self, at: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > at)
    }

    /// The server names a scoped token is limited to; `None` when it is not scoped.
    pub fn server_scope(&self) -> Option<Vec<String>> {
        // Written only by `insert_token`, always a JSON array; anything else reaches nothing.
        self.servers
            .as_deref()
            .map(|s| serde_json::from_str(s).unwrap_or_default())
    }
}

macro_rules! token_columns {
    () => {
        "id, user_id, name, created_at, expires_at, last_used_at, revoked_at, servers"
    };
}

impl Store {
    pub async fn insert_token(
        &self,
        user_id: Uuid,
        name: &str,
        token_hash: &str,
        expires_at: Option<DateTime<Utc>>,
        servers: Option<&[String]>,
    ) -> sqlx::Result<ApiToken> {
        let token = ApiToken {
            id: Uuid::new_v4(),
            user_id,
            name: name.to_owned(),
            created_at: now(),
            expires_at,
            last_used_at: None,
            revoked_at: None,
            servers: servers.map(|s| serde_json::Value::from(s.to_vec()).to_string()),
        };
        let sql = "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at, expires_at, servers) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        with_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(token.id)
                .bind(token.user_id)
                .bind(&token.name)
                .bind(token_hash)
                .bind(token.created_at)
                .bind(token.expires_at)
                .bind(&token.servers)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(token)
    }

    /// The token with this hash, revoked or expired ones included (the caller decides).
    pub async fn token_by_hash(&self, token_hash: &str) -> sqlx::Result<Option<ApiToken>> {
        let sql = concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE token_hash = $1"
        );
        with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(token_hash)
            .fetch_optional(pool)
            .await)
    }

    /// Records that token `id` was used at `at` (a later recorded use is kept).
    pub async fn touch_token(&self, id: Uuid, at: DateTime<Utc>) -> sqlx::Result<()> {
        let sql = "UPDATE api_tokens SET last_used_at = $1 \
                   WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(at)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn tokens_of(&self, user_id: Uuid) -> sqlx::Result<Vec<ApiToken>> {
        let sql = concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE user_id = $1 ORDER BY created_at, name"
        );
        with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(user_id)
            .fetch_all(pool)
            .await)
    }

    pub async fn count_active_tokens(&self) -> sqlx::Result<i64> {
        let sql = "SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)";
        with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(now())
            .fetch_one(pool)
            .await)
    }

    /// Revokes the user's token named `name_or_id`; false when there is none.
    pub async fn revoke_token(&self, user_id: Uuid, name_or_id: &str) -> sqlx::Result<bool> {
        let id = Uuid::parse_str(name_or_id).ok();
        let sql = "UPDATE api_tokens SET revoked_at = $1 \
                   WHERE user_id = $2 AND revoked_at IS NULL AND (name = $3 OR id = $4)";
        let done = with_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(now())
                .bind(user_id)
                .bind(name_or_id)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        if done > 0 {
            // Refused from the next request on: cached grants are read again.
            crate::entities::changes::tokens_changed(self);
        }
        Ok(done > 0)
    }
}
