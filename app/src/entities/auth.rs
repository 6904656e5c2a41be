//! Credentials as a client sends them in plaintext (REST create/update). The server
//! encrypts them at once into `auth_type` + `auth_value`; they are never stored, returned
//! or logged in this form.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::common::AuthType;
use crate::validation::{Code, Errors, join};

#[derive(Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthInput {
    Basic {
        username: String,
        password: String,
    },
    Bearer {
        token: String,
    },
    #[serde(rename = "authheaders")]
    AuthHeaders {
        headers: Map<String, Value>,
    },
    QueryParam {
        params: Map<String, Value>,
    },
    #[serde(rename = "oauth")]
    OAuth {
        client_id: String,
        client_secret: String,
        token_url: String,
        #[serde(default)]
        scopes: Option<String>,
    },
}

impl std::fmt::Debug for AuthInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuthInput({}, <redacted>)", self.auth_type().as_str())
    }
}

impl AuthInput {
    pub fn auth_type(&self) -> AuthType {
        match self {
            AuthInput::Basic { .. } => AuthType::Basic,
            AuthInput::Bearer { .. } => AuthType::Bearer,
            AuthInput::AuthHeaders { .. } => AuthType::AuthHeaders,
            AuthInput::QueryParam { .. } => AuthType::QueryParam,
            AuthInput::OAuth { .. } => AuthType::OAuth,
        }
    }

    pub fn check(&self, pointer: &str, errors: &mut Errors) {
        let non_empty = |v: &str, field: &str, errors: &mut Errors| {
            if v.is_empty() {
                errors.add(join(pointer, field), Code::Required, "must not be empty");
            }
        };
        match self {
            AuthInput::Basic { username, password } => {
                non_empty(username, "username", errors);
                non_empty(password, "password", errors);
                if username.contains(':') {
                    errors.add(
                        join(pointer, "username"),
                        Code::Invalid,
                        "must not contain ':'",
                    );
                }
            }
            AuthInput::Bearer { token } => non_empty(token, "token", errors),
            AuthInput::AuthHeaders { headers: map } | AuthInput::QueryParam { params: map } => {
                let field = if matches!(self, AuthInput::AuthHeaders { .. }) {
                    "headers"
                } else {
                    "params"
                };
                check_string_map(map, &join(pointer, field), errors);
            }
            AuthInput::OAuth {
                client_id,
                client_secret,
                token_url,
                ..
            } => {
                non_empty(client_id, "client_id", errors);
                non_empty(client_secret, "client_secret", errors);
                super::common::check_url(
                    token_url,
                    &["https", "http"],
                    &join(pointer, "token_url"),
                    errors,
                );
            }
        }
    }

    /// The plaintext object that gets encrypted, in ContextForge's shapes.
    pub fn plaintext(&self) -> Map<String, Value> {
        let mut map = Map::new();
        let mut put = |k: &str, v: String| {
            map.insert(k.to_owned(), Value::String(v));
        };
        match self {
            AuthInput::Basic { username, password } => put(
                "Authorization",
                format!("Basic {}", base64_encode(&format!("{username}:{password}"))),
            ),
            AuthInput::Bearer { token } => put("Authorization", format!("Bearer {token}")),
            AuthInput::AuthHeaders { headers: m } | AuthInput::QueryParam { params: m } => {
                return m.clone();
            }
            AuthInput::OAuth {
                client_id,
                client_secret,
                token_url,
                scopes,
            } => {
                put("client_id", client_id.clone());
                put("client_secret", client_secret.clone());
                put("token_url", token_url.clone());
                if let Some(s) = scopes {
                    put("scopes", s.clone());
                }
            }
        }
        map
    }
}

/// Header or parameter names of `[A-Za-z0-9_-]`, string values, at most 100 entries.
pub fn check_string_map(map: &Map<String, Value>, pointer: &str, errors: &mut Errors) {
    if map.is_empty() {
        errors.add(pointer, Code::Required, "must name at least one entry");
    }
    if map.len() > 100 {
        errors.add(pointer, Code::TooMany, "must have at most 100 entries");
    }
    for (k, v) in map {
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            errors.add(
                join(pointer, k),
                Code::InvalidName,
                "names may only contain letters, digits, '-' and '_'",
            );
        }
        if !v.is_string() {
            errors.add(join(pointer, k), Code::InvalidType, "must be a string");
        }
    }
}

/// Standard base64 with padding (for HTTP Basic credentials).
fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_shapes_match_contextforge() {
        let basic: AuthInput =
            serde_json::from_str(r#"{"type":"basic","username":"user","password":"pass"}"#)
                .unwrap();
        assert_eq!(
            serde_json::to_string(&basic.plaintext()).unwrap(),
            r#"{"Authorization":"Basic dXNlcjpwYXNz"}"#
        );
        let bearer: AuthInput =
            serde_json::from_str(r#"{"type":"bearer","token":"abc123"}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&bearer.plaintext()).unwrap(),
            r#"{"Authorization":"Bearer abc123"}"#
        );
        assert!(!format!("{bearer:?}").contains("abc123"));
    }

    #[test]
    fn base64_pads_like_the_standard() {
        assert_eq!(base64_encode("a"), "YQ==");
        assert_eq!(base64_encode("ab"), "YWI=");
        assert_eq!(base64_encode("abc"), "YWJj");
    }
}
