//! First start: the first admin account and the encryption secret.

use std::{
    fs,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use secrecy::{ExposeSecret, SecretString};

use crate::{config::Settings, crypto::Cipher, store::Store};

use super::{
    key_check::{self, SecretSource},
    password, random_token,
};

/// Creates the first admin when the database has no user. Returns the generated
/// password when one had to be made up (to be shown once, never logged).
pub async fn ensure_admin(
    store: &Store,
    settings: &Settings,
) -> anyhow::Result<Option<SecretString>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match &settings.admin_password {
        Some(p) => (p.expose_secret().to_owned(), false),
        None => (random_token("")[..24].to_owned(), true),
    };
    let hash = password::hash(&password).await?;
    let user = store
        .insert_user(&settings.admin_email, &hash, true)
        .await?;
    tracing::info!(user.email = %user.email, "created the first admin user {}", user.email);
    Ok(generated.then(|| SecretString::from(password)))
}

/// The encryption secret, checked against the key the database's credentials are
/// encrypted with (see [`key_check::verify`]): the configured one, else the one
/// generated on a previous start, else a new one written (mode 0600) to the key file,
/// unless the database already holds credentials, which a new key could not decrypt.
pub async fn encryption_secret(settings: &Settings, store: &Store) -> anyhow::Result<SecretString> {
    let key_file = key_file_for(store);
    let (secret, source) = match configured_secret(settings, &key_file)? {
        Some(found) => found,
        None => {
            key_check::ensure_no_credentials(store, &key_file).await?;
            (generate_secret(&key_file)?, SecretSource::KeyFile(key_file))
        }
    };
    key_check::verify(store, &Cipher::new(&secret), &source).await?;
    Ok(secret)
}

/// The configured secret, else the one in `key_file` from a previous start.
fn configured_secret(
    settings: &Settings,
    key_file: &Path,
) -> anyhow::Result<Option<(SecretString, SecretSource)>> {
    if let Some(secret) = &settings.auth_encryption_secret {
        return Ok(Some((secret.clone(), SecretSource::Setting)));
    }
    if !key_file.exists() {
        return Ok(None);
    }
    let secret = fs::read_to_string(key_file)?.trim().to_owned();
    anyhow::ensure!(
        secret.chars().count() >= crate::config::MIN_SECRET_LEN,
        "{} holds a secret shorter than {} characters",
        key_file.display(),
        crate::config::MIN_SECRET_LEN
    );
    Ok(Some((
        SecretString::from(secret),
        SecretSource::KeyFile(key_file.to_path_buf()),
    )))
}

/// A new random secret, written to `key_file` (which must not exist yet).
fn generate_secret(key_file: &Path) -> anyhow::Result<SecretString> {
    let secret = random_token("");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(key_file)?;
    writeln!(file, "{secret}")?;
    tracing::warn!(
        key_file = %key_file.display(),
        "AUTH_ENCRYPTION_SECRET is unset: generated one and stored it in {} (mode 0600); \
         keep that file, or set AUTH_ENCRYPTION_SECRET, to decrypt stored credentials",
        key_file.display()
    );
    Ok(SecretString::from(secret))
}

/// Where the generated secret lives: beside the SQLite file, else in the working directory.
pub fn key_file_for(store: &Store) -> PathBuf {
    let dir = store
        .sqlite_file()
        .and_then(|f| f.parent().map(Path::to_path_buf))
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    dir.join("mcpgateway.secret")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_generated_secret_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("mcpgateway.secret");
        let settings = Settings::default();
        assert!(configured_secret(&settings, &key_file).unwrap().is_none());
        let first = generate_secret(&key_file).unwrap();
        assert!(first.expose_secret().len() >= 32);
        let mode = fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, source) = configured_secret(&settings, &key_file).unwrap().unwrap();
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert_eq!(source, SecretSource::KeyFile(key_file.clone()));
        assert!(generate_secret(&key_file).is_err(), "never overwritten");
    }
}
