//! Tools' HTTP headers that carry credentials: which names count as sensitive, their
//! encryption into ContextForge's envelopes `{"_mcpgateway_encrypted_header_value_v1":
//! "<blob of {\"data\": value}>"}` (the form its selective export writes and our import
//! already reads), and how they are shown (`*****`).

use std::sync::Arc;

use app::entities::{
    Entity,
    tool::{HEADER_ENVELOPE, MASK, is_envelope},
};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde_json::{Map, Value};

use crate::crypto::{Cipher, Plaintext, sha256_hex};

/// Header names that always hold credentials, whatever `sensitive_headers` says.
pub const ALWAYS_SENSITIVE: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

/// The default `sensitive_headers`: case-insensitive globs over header names.
pub const DEFAULT_SENSITIVE: [&str; 8] = [
    "*token*",
    "*secret*",
    "*key*",
    "*password*",
    "*auth*",
    "*credential*",
    "*session*",
    "*cookie*",
];

/// Which header names are credentials: [`ALWAYS_SENSITIVE`] plus the configured globs.
#[derive(Clone, Debug)]
pub struct SensitiveHeaders {
    globs: Arc<GlobSet>,
    patterns: Vec<String>,
}

impl Default for SensitiveHeaders {
    fn default() -> Self {
        let defaults: Vec<String> = DEFAULT_SENSITIVE.map(str::to_owned).to_vec();
        SensitiveHeaders::new(&defaults).expect("the default globs compile")
    }
}

impl SensitiveHeaders {
    /// Compiles `patterns` (globs such as `*token*`, matched without regard to case).
    pub fn new(patterns: &[String]) -> Result<SensitiveHeaders, globset::Error> {
        let mut set = GlobSetBuilder::new();
        for pattern in patterns {
            set.add(GlobBuilder::new(pattern).case_insensitive(true).build()?);
        }
        let mut patterns: Vec<String> = patterns.iter().map(|p| p.to_ascii_lowercase()).collect();
        patterns.sort();
        patterns.dedup();
        Ok(SensitiveHeaders {
            globs: Arc::new(set.build()?),
            patterns,
        })
    }

    pub fn is_sensitive(&self, name: &str) -> bool {
        ALWAYS_SENSITIVE.contains(&name.to_ascii_lowercase().as_str()) || self.globs.is_match(name)
    }

    /// Names the rule set (for "stored rows were sealed under these rules"); equal sets of
    /// patterns give equal fingerprints.
    pub fn fingerprint(&self) -> String {
        let always = ALWAYS_SENSITIVE.join(",");
        sha256_hex(format!("{always}|{}", self.patterns.join(",")).as_bytes())[..16].to_owned()
    }
}

/// The envelope of one header value, encrypted with `cipher`.
fn envelope(cipher: &Cipher, value: String) -> Value {
    let mut data = Map::new();
    data.insert("data".into(), Value::String(value));
    let mut envelope = Map::new();
    envelope.insert(
        HEADER_ENVELOPE.into(),
        Value::String(cipher.encrypt(&Plaintext(data))),
    );
    Value::Object(envelope)
}

/// Encrypts every sensitive header (by `cipher`'s rules) still in plaintext into an
/// envelope; returns how many there were. Envelopes are left as they are.
pub fn seal_plain_headers<E: Entity>(cipher: &Cipher, entity: &mut E) -> usize {
    let Some(headers) = entity.headers_mut() else {
        return 0;
    };
    let mut sealed = 0;
    for (name, value) in headers.iter_mut() {
        if let Value::String(plain) = value
            && cipher.sensitive_headers().is_sensitive(name)
        {
            *value = envelope(cipher, std::mem::take(plain));
            sealed += 1;
        }
    }
    sealed
}

/// True when some sensitive header of `entity` is still in plaintext.
pub fn has_plain_sensitive<E: Entity>(sensitive: &SensitiveHeaders, entity: &mut E) -> bool {
    entity.headers_mut().is_some_and(|headers| {
        headers
            .iter()
            .any(|(name, value)| value.is_string() && sensitive.is_sensitive(name))
    })
}

/// A record's `headers` as shown: every envelope replaced by the mask `*****`.
pub fn mask_headers(record: &mut Map<String, Value>) {
    if let Some(Value::Object(headers)) = record.get_mut("headers") {
        for value in headers.values_mut() {
            if is_envelope(value) {
                *value = Value::String(MASK.into());
            }
        }
    }
}

/// True when a patch sends the mask where an envelope is stored: "keep it" (a client
/// echoing what it was shown must not turn a credential into `*****`).
pub fn keeps_envelope(stored: Option<&Value>, patch: &Value) -> bool {
    patch.as_str() == Some(MASK) && stored.is_some_and(is_envelope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::entities::Tool;
    use secrecy::SecretString;
    use serde_json::json;

    fn cipher() -> Cipher {
        Cipher::new(&SecretString::from("headers-test-secret-0123456789abcdef"))
    }

    #[test]
    fn fixed_names_and_default_globs_are_sensitive_without_regard_to_case() {
        let rules = SensitiveHeaders::default();
        for name in [
            "Authorization",
            "PROXY-AUTHORIZATION",
            "Cookie",
            "X-Api-Key",
            "X-Auth-Token",
            "client_secret",
            "X-Session-Id",
        ] {
            assert!(rules.is_sensitive(name), "{name}");
        }
        for name in ["Accept", "Content-Type", "X-Tenant", "X-Request-Id"] {
            assert!(!rules.is_sensitive(name), "{name}");
        }
        let custom = SensitiveHeaders::new(&["x-tenant".into()]).unwrap();
        assert!(custom.is_sensitive("X-Tenant") && custom.is_sensitive("Authorization"));
        assert!(
            !custom.is_sensitive("X-Auth-Token"),
            "the list replaces the default globs"
        );
        assert_ne!(custom.fingerprint(), rules.fingerprint());
        assert_eq!(
            SensitiveHeaders::new(&["B".into(), "a".into()])
                .unwrap()
                .fingerprint(),
            SensitiveHeaders::new(&["a".into(), "b".into()])
                .unwrap()
                .fingerprint()
        );
    }

    #[test]
    fn sensitive_values_become_envelopes_of_data_and_show_as_the_mask() {
        let c = cipher();
        let mut tool = Tool {
            headers: json!({"Authorization": "Bearer s3cr3t", "Accept": "application/json"})
                .as_object()
                .unwrap()
                .clone(),
            ..Tool::default()
        };
        assert!(has_plain_sensitive(c.sensitive_headers(), &mut tool));
        assert_eq!(seal_plain_headers(&c, &mut tool), 1);
        assert_eq!(seal_plain_headers(&c, &mut tool), 0, "idempotent");
        assert!(!has_plain_sensitive(c.sensitive_headers(), &mut tool));
        let blob = tool.headers["Authorization"][HEADER_ENVELOPE]
            .as_str()
            .unwrap();
        assert_eq!(
            c.decrypt(blob).unwrap().0,
            *json!({"data": "Bearer s3cr3t"}).as_object().unwrap()
        );
        assert_eq!(tool.headers["Accept"], "application/json");
        let Value::Object(mut shown) = serde_json::to_value(&tool).unwrap() else {
            unreachable!()
        };
        mask_headers(&mut shown);
        assert_eq!(
            shown["headers"],
            json!({"Authorization": MASK, "Accept": "application/json"})
        );
        assert!(keeps_envelope(
            tool.headers.get("Authorization"),
            &json!(MASK)
        ));
        assert!(!keeps_envelope(tool.headers.get("Accept"), &json!(MASK)));
    }
}
