//! The key check: the database records the fingerprint of the key its credentials are
//! encrypted with, and a process whose key differs is refused before it reads or writes
//! any. Without it, a restart with another `AUTH_ENCRYPTION_SECRET` starts silently,
//! every update of a credentialed entity fails, new credentials land under the new key
//! and the database ends up holding two keys' ciphertext.

use std::{fmt, path::PathBuf};

use crate::{
    crypto::Cipher,
    store::{Store, key_check::StoredCredential},
};

/// Where the process's secret came from, to say which one to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `AUTH_ENCRYPTION_SECRET` (environment or settings file).
    Setting,
    /// The file generated on an earlier start.
    KeyFile(PathBuf),
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Setting => f.write_str("AUTH_ENCRYPTION_SECRET"),
            SecretSource::KeyFile(path) => write!(f, "the secret in {}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyCheckError {
    #[error(
        "{source_of} does not match the key this database's credentials are encrypted with: \
         its key fingerprint is {configured}, the stored credentials' is {stored}. \
         Start with the secret they were written with (nothing was changed)"
    )]
    Mismatch {
        source_of: SecretSource,
        configured: String,
        stored: String,
    },
    #[error(
        "{source_of} (key fingerprint {configured}) does not decrypt the credentials this \
         database holds ({pointer} of {kind} `{key}` fails: {reason}); they were written \
         under another key, before key fingerprints were recorded. Start with the secret \
         they were written with (nothing was changed)"
    )]
    Undecryptable {
        source_of: SecretSource,
        configured: String,
        kind: &'static str,
        key: String,
        pointer: String,
        reason: crate::crypto::CryptoError,
    },
    #[error(
        "AUTH_ENCRYPTION_SECRET is unset and there is no key file {key_file}, but this \
         database holds credentials encrypted under {stored}; set AUTH_ENCRYPTION_SECRET \
         to the secret they were written with (a new key would not decrypt them, so none \
         was generated)"
    )]
    NoSecret { key_file: String, stored: String },
    #[error("cannot check the encryption key against the database: {0}")]
    Database(#[from] sqlx::Error),
}

/// Checks `cipher` against the recorded key fingerprint and records it when nothing
/// stored depends on another key.
///
/// - recorded and equal: fine;
/// - recorded, different, and a credential is stored: refused, naming both fingerprints;
/// - not recorded yet (a database from before the check) and a credential is stored:
///   the key must decrypt it before its fingerprint is recorded;
/// - no credential stored: this key is recorded (in place of any earlier one, which
///   no stored value needs), so the first credential written is under a recorded key.
pub async fn verify(
    store: &Store,
    cipher: &Cipher,
    source_of: &SecretSource,
) -> Result<(), KeyCheckError> {
    let ours = cipher.fingerprint();
    let recorded = store.key_check().await?;
    if recorded.as_deref() == Some(ours) {
        return Ok(());
    }
    let mismatch = |stored: String| KeyCheckError::Mismatch {
        source_of: source_of.clone(),
        configured: ours.to_owned(),
        stored,
    };
    if let Some(found) = store.first_credential().await? {
        if let Some(stored) = recorded {
            return Err(mismatch(stored));
        }
        if let Err(reason) = cipher.decrypt(&found.blob) {
            return Err(undecryptable(source_of, ours, found, reason));
        }
    }
    let now_recorded = store.claim_key_check(ours, recorded.as_deref()).await?;
    if now_recorded != ours {
        // Another process recorded its key between our read and our write.
        return Err(mismatch(now_recorded));
    }
    tracing::info!(
        key.fingerprint = ours,
        "recorded the encryption key's fingerprint {ours}"
    );
    Ok(())
}

fn undecryptable(
    source_of: &SecretSource,
    ours: &str,
    found: StoredCredential,
    reason: crate::crypto::CryptoError,
) -> KeyCheckError {
    KeyCheckError::Undecryptable {
        source_of: source_of.clone(),
        configured: ours.to_owned(),
        kind: found.kind.singular(),
        key: found.key,
        pointer: found.pointer,
        reason,
    }
}

/// Refuses to make up a new key while the database holds credentials: they would stay
/// encrypted under a key nobody has, and new ones would be written under another.
pub async fn ensure_no_credentials(
    store: &Store,
    key_file: &std::path::Path,
) -> Result<(), KeyCheckError> {
    if store.first_credential().await?.is_none() {
        return Ok(());
    }
    let stored = match store.key_check().await? {
        Some(fingerprint) => format!("the key with fingerprint {fingerprint}"),
        None => "a key whose fingerprint was not recorded".to_owned(),
    };
    Err(KeyCheckError::NoSecret {
        key_file: key_file.display().to_string(),
        stored,
    })
}
