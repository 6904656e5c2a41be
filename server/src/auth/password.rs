//! Password hashing with argon2id, off the async threads.

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};

/// Hashes a password into its PHC string.
pub async fn hash(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing the password failed: {e}"))
    })
    .await?
}

/// True when `password` matches `stored`. With no stored hash it still spends the time
/// of one verification and answers false.
pub async fn verify(password: &str, stored: Option<String>) -> anyhow::Result<bool> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await?
}

/// An argon2id hash of a random string nobody knows.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1Lhv8b4bW2Yjx7Fv2pr+fLMHYTyl5L3rYlI5Ty2DZcQ";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hashed_password_verifies_and_others_do_not() {
        let h = hash("correct horse battery").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(
            verify("correct horse battery", Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong", Some(h)).await.unwrap());
        assert!(!verify("anything", None).await.unwrap());
    }
}
