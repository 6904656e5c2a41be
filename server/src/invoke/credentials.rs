//! A tool's stored credentials, decrypted in memory for one call: what goes into the
//! request's headers and query string. The values live only in this call's memory; they
//! are also kept as a list of secrets so that nothing echoed back is shown.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use app::entities::{
    common::AuthType,
    gateway::Gateway,
    tool::{HEADER_ENVELOPE, Tool},
};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::crypto::Cipher;

/// What a call sends besides its arguments. `Debug` shows names only.
#[derive(Default)]
pub struct Credentials {
    /// The tool's plain headers (not credentials: sent, never scrubbed).
    pub plain_headers: Vec<(String, String)>,
    pub headers: Vec<(String, SecretString)>,
    pub query: Vec<(String, SecretString)>,
    /// OAuth client credentials: exchanged for a token before the call.
    pub oauth: Option<ClientCredentials>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |list: &[(String, SecretString)]| -> Vec<String> {
            list.iter().map(|(n, _)| n.clone()).collect()
        };
        f.debug_struct("Credentials")
            .field("headers", &names(&self.headers))
            .field("query", &names(&self.query))
            .field("oauth", &self.oauth.is_some())
            .finish()
    }
}

/// An OAuth 2.0 client-credentials grant.
pub struct ClientCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub scopes: Option<String>,
}

/// Why stored credentials cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("the tool's stored credentials cannot be decrypted with this gateway's key ({0})")]
    Decrypt(String),
    #[error("the tool's OAuth credentials lack `{0}`")]
    Incomplete(&'static str),
}

impl Credentials {
    /// Decrypts `tool`'s `auth_value` and its header envelopes.
    pub fn of(tool: &Tool, cipher: &Cipher) -> Result<Credentials, CredentialError> {
        Credentials::stored(
            &tool.headers,
            tool.auth_type,
            tool.auth_value.as_deref(),
            cipher,
        )
    }

    /// Decrypts a peer gateway's `auth_value` and its per-parameter `auth_query_params`
    /// (ContextForge's form for `query_param` gateways).
    pub fn of_gateway(gateway: &Gateway, cipher: &Cipher) -> Result<Credentials, CredentialError> {
        let mut credentials = Credentials::stored(
            &Map::new(),
            gateway.auth_type,
            gateway.auth_value.as_deref(),
            cipher,
        )?;
        for blob in gateway.auth_query_params.iter().flatten().map(|(_, v)| v) {
            if let Value::String(blob) = blob {
                credentials.query.extend(strings(decrypt(cipher, blob)?));
            }
        }
        Ok(credentials)
    }

    /// Decrypts stored header envelopes and an `auth_value` of type `auth_type`.
    fn stored(
        headers: &Map<String, Value>,
        auth_type: Option<AuthType>,
        auth_value: Option<&str>,
        cipher: &Cipher,
    ) -> Result<Credentials, CredentialError> {
        let mut credentials = Credentials::default();
        for (name, value) in headers {
            match value {
                Value::String(plain) => credentials
                    .plain_headers
                    .push((name.clone(), plain.clone())),
                Value::Object(envelope) => {
                    if let Some(Value::String(blob)) = envelope.get(HEADER_ENVELOPE) {
                        let map = decrypt(cipher, blob)?;
                        if let Some(Value::String(data)) = map.get("data") {
                            credentials
                                .headers
                                .push((name.clone(), SecretString::from(data.clone())));
                        }
                    }
                }
                _ => {}
            }
        }
        let (Some(auth_type), Some(blob)) = (auth_type, auth_value) else {
            return Ok(credentials);
        };
        let fields = decrypt(cipher, blob)?;
        match auth_type {
            AuthType::Basic | AuthType::Bearer | AuthType::AuthHeaders => {
                credentials.headers.extend(strings(fields));
            }
            AuthType::QueryParam => credentials.query.extend(strings(fields)),
            AuthType::OAuth => credentials.oauth = Some(ClientCredentials::from_fields(fields)?),
        }
        Ok(credentials)
    }

    /// The plain and the decrypted headers (the latter marked sensitive, so they are never
    /// logged), or which stored header is not a valid HTTP header.
    pub fn header_map(&self) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        let plain = self
            .plain_headers
            .iter()
            .map(|(n, v)| (n, v.as_str(), false));
        let sealed = self
            .headers
            .iter()
            .map(|(n, v)| (n, v.expose_secret(), true));
        for (name, value, sensitive) in plain.chain(sealed) {
            let (Ok(name), Ok(mut value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                return Err(format!(
                    "the stored header `{name}` is not a valid HTTP header"
                ));
            };
            value.set_sensitive(sensitive);
            headers.insert(name, value);
        }
        Ok(headers)
    }

    /// Every secret value, and the parts a Basic header encodes, for scrubbing text
    /// that goes back to a caller.
    pub fn secrets(&self) -> Vec<String> {
        let mut secrets = Vec::new();
        for (_, value) in self.headers.iter().chain(&self.query) {
            let value = value.expose_secret();
            secrets.push(value.to_owned());
            if let Some((_, token)) = value.split_once(' ') {
                secrets.push(token.to_owned());
                if let Some(pass) = basic_password(token) {
                    secrets.push(pass);
                }
            }
        }
        if let Some(oauth) = &self.oauth {
            secrets.push(oauth.client_secret.expose_secret().to_owned());
        }
        secrets.retain(|s| s.len() >= 4);
        secrets
    }
}

/// The password inside a Basic credential's base64, when it is one.
fn basic_password(token: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.split_once(':').map(|(_, pass)| pass.to_owned())
}

fn decrypt(cipher: &Cipher, blob: &str) -> Result<Map<String, Value>, CredentialError> {
    cipher
        .decrypt(blob)
        .map(|p| p.0)
        .map_err(|e| CredentialError::Decrypt(e.to_string()))
}

fn strings(fields: Map<String, Value>) -> impl Iterator<Item = (String, SecretString)> {
    fields.into_iter().filter_map(|(k, v)| match v {
        Value::String(s) => Some((k, SecretString::from(s))),
        _ => None,
    })
}

impl ClientCredentials {
    fn from_fields(mut fields: Map<String, Value>) -> Result<ClientCredentials, CredentialError> {
        let mut take = |name: &'static str| match fields.remove(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            _ => Err(CredentialError::Incomplete(name)),
        };
        Ok(ClientCredentials {
            token_url: take("token_url")?,
            client_id: take("client_id")?,
            client_secret: SecretString::from(take("client_secret")?),
            scopes: take("scopes").ok(),
        })
    }

    /// The cache key: one token per client at one token endpoint (and scope set).
    fn cache_key(&self) -> String {
        format!(
            "{}\u{0}{}\u{0}{}",
            self.token_url,
            self.client_id,
            self.scopes.as_deref().unwrap_or_default()
        )
    }
}

/// A fetched access token and when it stops being used.
struct CachedToken {
    token: SecretString,
    until: Instant,
}

/// OAuth access tokens, kept until shortly before they expire.
#[derive(Clone, Default)]
pub struct TokenCache(Arc<Mutex<HashMap<String, CachedToken>>>);

/// Why no token was had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token endpoint answered {0}")]
    Status(reqwest::StatusCode),
    #[error("the token endpoint's answer is not JSON with an access_token (or over 64 KiB)")]
    NoToken,
    #[error("the token endpoint could not be reached")]
    Unreachable(#[source] reqwest::Error),
}

/// Tokens without `expires_in` are used for this long.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// The largest token endpoint answer read (a token is a few KiB at most).
const MAX_TOKEN_ANSWER: usize = 64 * 1024;
/// Tokens are renewed this long before they expire, so none expires in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

impl TokenCache {
    /// A valid access token for `grant`: the cached one, or a fresh one from its
    /// `token_url` (the cache's lock is held while fetching, so concurrent calls fetch once).
    pub async fn token(
        &self,
        client: &reqwest::Client,
        grant: &ClientCredentials,
    ) -> Result<SecretString, TokenError> {
        let key = grant.cache_key();
        let mut cache = self.0.lock().await;
        if let Some(cached) = cache.get(&key)
            && cached.until > Instant::now()
        {
            return Ok(cached.token.clone());
        }
        let (token, lifetime) = fetch_token(client, grant).await?;
        cache.retain(|_, t| t.until > Instant::now());
        cache.insert(
            key,
            CachedToken {
                token: token.clone(),
                until: Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN),
            },
        );
        Ok(token)
    }
}

async fn fetch_token(
    client: &reqwest::Client,
    grant: &ClientCredentials,
) -> Result<(SecretString, Duration), TokenError> {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(scopes) = &grant.scopes {
        form.push(("scope", scopes));
    }
    let response = client
        .post(&grant.token_url)
        .basic_auth(&grant.client_id, Some(grant.client_secret.expose_secret()))
        .form(&form)
        .send()
        .await
        .map_err(TokenError::Unreachable)?;
    if !response.status().is_success() {
        return Err(TokenError::Status(response.status()));
    }
    #[derive(serde::Deserialize)]
    struct Answer {
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(TokenError::Unreachable)? {
        if body.len() + chunk.len() > MAX_TOKEN_ANSWER {
            return Err(TokenError::NoToken);
        }
        body.extend_from_slice(&chunk);
    }
    let answer: Answer = serde_json::from_slice(&body).map_err(|_| TokenError::NoToken)?;
    let token = answer
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or(TokenError::NoToken)?;
    let lifetime = answer
        .expires_in
        .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
    Ok((SecretString::from(token), lifetime))
}
