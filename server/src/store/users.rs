//! Accounts that can sign in to the UI and own API tokens.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Store, now, with_pool};

/// A stored account. Holds the password hash, so it is never serialised.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: DateTime<Utc>,
}

macro_rules! user_columns {
    () => {
        "id, email, password_hash, is_admin, created_at"
    };
}

impl Store {
    /// Creates an account; the email is stored lower-cased.
    pub async fn insert_user(
        &self,
        email: &str,
        password_hash: &str,
        is_admin: bool,
    ) -> sqlx::Result<User> {
        let user = User {
            id: Uuid::new_v4(),
            email: email.trim().to_lowercase(),
            password_hash: password_hash.to_owned(),
            is_admin,
            created_at: now(),
        };
        let sql = "INSERT INTO users (id, email, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5)";
        with_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(user.id)
                .bind(&user.email)
                .bind(&user.password_hash)
                .bind(user.is_admin)
                .bind(user.created_at)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(user)
    }

    pub async fn user_by_email(&self, email: &str) -> sqlx::Result<Option<User>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE email = $1");
        let email = email.trim().to_lowercase();
        with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(&email)
            .fetch_optional(pool)
            .await)
    }

    pub async fn user_by_id(&self, id: Uuid) -> sqlx::Result<Option<User>> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
        with_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)
    }

    pub async fn count_users(&self) -> sqlx::Result<i64> {
        with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM users"
        )
        .fetch_one(pool)
        .await)
    }
}
