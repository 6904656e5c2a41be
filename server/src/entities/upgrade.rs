//! Stored records brought under the current credential rules: sensitive tool headers
//! kept in plaintext (by an older version, or before `sensitive_headers` named them)
//! become encrypted envelopes, and credentials in tool and gateway URLs
//! (`https://user:pass@host/…`, refused on input since) move into an encrypted `basic`
//! credential.
//!
//! SQL migrations cannot do this: the encryption key never reaches the database. So it
//! runs in Rust whenever the store is opened by the gateway or a command, and is
//! idempotent; `store_upgrades` records the sensitive-header rules it last ran under, so
//! it reads the tables again only when those rules change (once, for a store that
//! predates it). The key is asked for only when a record needs it.

use app::entities::{Entity, Gateway, Tool, auth::AuthInput, common::AuthType};
use percent_encoding::percent_decode_str;

use super::headers::{SensitiveHeaders, has_plain_sensitive, seal_plain_headers};
use crate::{
    crypto::{Cipher, Plaintext},
    store::Store,
};

/// The upgrade's name in `store_upgrades`.
const SEALED: &str = "sealed_credentials";

/// Records read and rewritten per transaction.
const PAGE: i64 = 500;

/// Seals what is stored in plaintext (see the module comment); returns how many records
/// were rewritten. `key` gives the gateway's cipher.
pub async fn seal_stored_credentials<F, K>(
    store: &Store,
    rules: &SensitiveHeaders,
    key: K,
) -> anyhow::Result<usize>
where
    K: FnOnce() -> F,
    F: Future<Output = anyhow::Result<Cipher>>,
{
    let state = rules.fingerprint();
    if store.upgrade_state(SEALED).await?.as_deref() == Some(state.as_str()) {
        return Ok(0);
    }
    let mut key = LazyCipher {
        make: Some(key),
        cipher: None,
    };
    let rewritten = upgrade_all::<Tool, _, _>(store, rules, &mut key).await?
        + upgrade_all::<Gateway, _, _>(store, rules, &mut key).await?;
    store.set_upgrade_state(SEALED, &state).await?;
    if rewritten > 0 {
        tracing::info!(
            records = rewritten,
            "encrypted the credentials {rewritten} stored records held in plaintext"
        );
    }
    Ok(rewritten)
}

/// The cipher, made on first use.
struct LazyCipher<F> {
    make: Option<F>,
    cipher: Option<Cipher>,
}

impl<F: Future<Output = anyhow::Result<Cipher>>, K: FnOnce() -> F> LazyCipher<K> {
    async fn get(&mut self) -> anyhow::Result<&Cipher> {
        if let Some(make) = self.make.take() {
            self.cipher = Some(make().await?);
        }
        Ok(self.cipher.as_ref().expect("made above"))
    }
}

/// The record types that may hold plaintext credentials: their URLs (and, through
/// [`Entity::headers_mut`], their headers).
trait Upgrade: Entity {
    /// The URLs, the one that authenticates first.
    fn urls_mut(&mut self) -> Vec<&mut String>;
}

impl Upgrade for Tool {
    fn urls_mut(&mut self) -> Vec<&mut String> {
        self.url.iter_mut().collect()
    }
}

impl Upgrade for Gateway {
    fn urls_mut(&mut self) -> Vec<&mut String> {
        let health = self.health_check.as_mut().and_then(|h| h.url.as_mut());
        self.url.iter_mut().chain(health).collect()
    }
}

/// Pages through every record of `E`, rewriting those that need it.
async fn upgrade_all<E, F, K>(
    store: &Store,
    rules: &SensitiveHeaders,
    key: &mut LazyCipher<K>,
) -> anyhow::Result<usize>
where
    E: Upgrade,
    K: FnOnce() -> F,
    F: Future<Output = anyhow::Result<Cipher>>,
{
    let (mut after, mut rewritten) = (None::<String>, 0);
    loop {
        let mut read = store.begin_snapshot().await?;
        let page: Vec<E> = read.entities_after(true, after.as_deref(), PAGE).await?;
        read.rollback().await?;
        let full = page.len() as i64 == PAGE;
        after = page.last().map(|e| e.key().to_owned());
        let stale: Vec<E> = page
            .into_iter()
            .filter_map(|mut e| needs_upgrade(&mut e, rules).then_some(e))
            .collect();
        if !stale.is_empty() {
            // The key first: checking it may write (the key check), which must not wait
            // for this process's own write transaction.
            let cipher = key.get().await?;
            let mut tx = store.begin().await?;
            let keys: Vec<&str> = stale.iter().map(|e| e.key()).collect();
            // Read again under the write lock: an edit made meanwhile is kept.
            for mut entity in tx.entities_by_keys::<E>(&keys).await?.into_values() {
                if needs_upgrade(&mut entity, rules) {
                    upgrade(&mut entity, cipher);
                    let id = entity.id().expect("stored records have ids");
                    tx.replace_doc(id, &entity).await?;
                    rewritten += 1;
                }
            }
            tx.commit().await?;
        }
        if !full {
            return Ok(rewritten);
        }
    }
}

fn needs_upgrade<E: Upgrade>(entity: &mut E, rules: &SensitiveHeaders) -> bool {
    has_plain_sensitive(rules, entity) || entity.urls_mut().iter().any(|u| userinfo(u).is_some())
}

/// Seals plaintext sensitive headers, and moves URL credentials into a `basic`
/// credential (dropped, with a warning, when the record has a credential of its own,
/// which is the one a client sends).
fn upgrade<E: Upgrade>(entity: &mut E, cipher: &Cipher) {
    seal_plain_headers(cipher, entity);
    let taken: Vec<(String, String)> = entity
        .urls_mut()
        .into_iter()
        .filter_map(take_userinfo)
        .collect();
    let Some((username, password)) = taken.into_iter().next() else {
        return;
    };
    let (kind, key) = (E::KIND.singular(), entity.key().to_owned());
    if entity.credential().is_some() {
        tracing::warn!(
            entity.kind = kind,
            entity.key = %key,
            "{kind} {key}: dropped the credentials written in its URL; it has `auth` of its own"
        );
        return;
    }
    let basic = AuthInput::Basic { username, password };
    let blob = cipher.encrypt(&Plaintext(basic.plaintext()));
    entity.set_credential(Some((AuthType::Basic, blob)));
    tracing::info!(
        entity.kind = kind,
        entity.key = %key,
        "{kind} {key}: moved the credentials written in its URL into an encrypted basic credential"
    );
}

/// The `user:password` part of a URL's authority, if it has one.
fn userinfo(url: &str) -> Option<(&str, &str)> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, _) = authority.rsplit_once('@')?;
    Some(userinfo.split_once(':').unwrap_or((userinfo, "")))
}

/// Takes `user:password@` out of `url`; the user and password, percent-decoded.
fn take_userinfo(url: &mut String) -> Option<(String, String)> {
    let (user, password) = userinfo(url)?;
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    let taken = (decode(user), decode(password));
    let (scheme, rest) = url.split_once("://").expect("userinfo found one");
    let at = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host_start = rest[..at].rfind('@').expect("userinfo found one") + 1;
    *url = format!("{scheme}://{}", &rest[host_start..]);
    Some(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_taken_out_of_the_authority_only() {
        let mut url = "https://us%40r:p%3Ass@api.example.com:8443/a@b?q=1".to_owned();
        assert_eq!(
            take_userinfo(&mut url),
            Some(("us@r".into(), "p:ss".into()))
        );
        assert_eq!(url, "https://api.example.com:8443/a@b?q=1");
        assert_eq!(take_userinfo(&mut url), None, "nothing left");
        let mut token_only = "wss://t0ken@h.example.com".to_owned();
        assert_eq!(
            take_userinfo(&mut token_only),
            Some(("t0ken".into(), String::new()))
        );
        assert_eq!(token_only, "wss://h.example.com");
    }
}
