//! Who is calling: passwords (argon2), API tokens and browser sessions.
//!
//! Tokens and session cookies are 256 random bits; only their SHA-256 is stored, so a
//! leaked database yields no usable credential. Argon2 runs on the blocking pool.

pub mod bootstrap;
pub mod key_check;
pub mod password;
pub mod usage;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use uuid::Uuid;

use crate::store::{Store, now, tokens::ApiToken};

/// The prefix that makes our tokens recognisable to secret scanners.
pub const TOKEN_PREFIX: &str = "mcpg_";

/// The caller of a request, as authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub email: String,
    pub via: AuthMethod,
    /// For a token limited to named servers' MCP endpoints: their names.
    pub servers: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Bearer,
    Session,
}

/// A new random credential: `prefix` + 43 URL-safe characters.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a token or session cookie.
pub fn token_hash(token: &str) -> String {
    crate::crypto::sha256_hex(token.as_bytes())
}

/// Issues an API token for `email`; the plaintext is returned once and never stored.
pub async fn create_api_token(
    store: &Store,
    email: &str,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
) -> anyhow::Result<(ApiToken, String)> {
    create_scoped_api_token(store, email, name, expires_at, None).await
}

/// Issues an API token for `email` that reaches only the MCP endpoints of `servers`
/// (when given: names of existing servers, checked by the caller).
pub async fn create_scoped_api_token(
    store: &Store,
    email: &str,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
    servers: Option<&[String]>,
) -> anyhow::Result<(ApiToken, String)> {
    let user = store
        .user_by_email(email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user with email {email}"))?;
    let plaintext = random_token(TOKEN_PREFIX);
    let token = store
        .insert_token(user.id, name, &token_hash(&plaintext), expires_at, servers)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => {
                anyhow::anyhow!("{email} already has a token named {name:?}; pick another --name")
            }
            other => other.into(),
        })?;
    Ok((token, plaintext))
}

/// The principal a bearer token stands for, if it is valid now.
pub async fn principal_for_token(store: &Store, token: &str) -> sqlx::Result<Option<Principal>> {
    Ok(token_principal(store, token)
        .await?
        .map(|(principal, _)| principal))
}

/// The principal a bearer token stands for and the token's id, if it is valid now. Only
/// reads: the use is the caller's to note ([`usage::TokenUse`]), off the request path.
pub async fn token_principal(
    store: &Store,
    token: &str,
) -> sqlx::Result<Option<(Principal, Uuid)>> {
    Ok(token_grant(store, &token_hash(token))
        .await?
        .map(|grant| (grant.principal, grant.token_id)))
}

/// What a valid API token grants, as the request path keeps it ([`crate::hot`]).
#[derive(Clone, Debug)]
pub struct TokenGrant {
    pub principal: Principal,
    pub token_id: Uuid,
    /// When it stops being valid, if it does by itself (checked at each use).
    pub expires_at: Option<DateTime<Utc>>,
}

impl TokenGrant {
    pub fn is_valid(&self, at: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|e| e > at)
    }
}

/// What the token with this hash grants, if it is valid now.
pub async fn token_grant(store: &Store, hash: &str) -> sqlx::Result<Option<TokenGrant>> {
    let Some(row) = store.token_by_hash(hash).await? else {
        return Ok(None);
    };
    if !row.is_active(now()) {
        return Ok(None);
    }
    let user = store.user_by_id(row.user_id).await?;
    Ok(user.map(|u| TokenGrant {
        principal: Principal {
            user_id: u.id,
            email: u.email,
            via: AuthMethod::Bearer,
            servers: row.server_scope(),
        },
        token_id: row.id,
        expires_at: row.expires_at,
    }))
}

/// The principal a session cookie stands for, if the session is live.
pub async fn principal_for_session(store: &Store, cookie: &str) -> sqlx::Result<Option<Principal>> {
    let Some(session) = store.session_by_hash(&token_hash(cookie)).await? else {
        return Ok(None);
    };
    if session.expires_at <= now() {
        return Ok(None);
    }
    let user = store.user_by_id(session.user_id).await?;
    Ok(user.map(|u| Principal {
        user_id: u.id,
        email: u.email,
        via: AuthMethod::Session,
        servers: None,
    }))
}

/// Checks a password and opens a session; returns the cookie value.
pub async fn login(
    store: &Store,
    email: &str,
    password: &str,
    ttl: Duration,
) -> anyhow::Result<Option<(Principal, String)>> {
    let user = store.user_by_email(email).await?;
    // Verify against a fixed hash when the user is unknown, so timing does not tell.
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !password::verify(password, hash).await? {
        return Ok(None);
    }
    let Some(user) = user else { return Ok(None) };
    let cookie = random_token("");
    store
        .insert_session(user.id, &token_hash(&cookie), now() + ttl)
        .await?;
    Ok(Some((
        Principal {
            user_id: user.id,
            email: user.email,
            via: AuthMethod::Session,
            servers: None,
        },
        cookie,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_prefixed() {
        let a = random_token(TOKEN_PREFIX);
        let b = random_token(TOKEN_PREFIX);
        assert_ne!(a, b);
        assert!(a.starts_with("mcpg_"));
        assert_eq!(a.len(), 5 + 43);
    }

    #[test]
    fn token_hash_is_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
