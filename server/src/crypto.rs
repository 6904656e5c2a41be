//! Credential encryption, byte-compatible with ContextForge's `encode_auth`/`decode_auth`.
//!
//! key = SHA-256(secret); blob = nonce(12) ‖ AES-256-GCM ciphertext ‖ tag(16); text =
//! URL-safe base64 without padding. Decoding is lenient like Python's: padding and the
//! standard alphabet are accepted. The plaintext is a compact JSON object of strings
//! (headers or query parameters), e.g. `{"Authorization":"Bearer …"}`.

use std::fmt;

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, KeyInit},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::entities::headers::SensitiveHeaders;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Hashed in front of the key for its fingerprint, so the fingerprint is not the plain
/// SHA-256 of the key (nor of anything else we hash), only a name for it.
const FINGERPRINT_DOMAIN: &[u8] = b"mcpgateway key fingerprint v1\0";
/// Bytes of that hash kept: 64 bits tell keys apart and say nothing about the key.
const FINGERPRINT_BYTES: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("not base64 text")]
    NotBase64,
    #[error("too short to be an encrypted value ({0} bytes, at least 28 needed)")]
    TooShort(usize),
    #[error("cannot be decrypted with this key (wrong key, or the value was altered)")]
    WrongKey,
    #[error("decrypts to something other than a JSON object of strings")]
    NotAnObject,
}

/// Decrypted credential fields: header or parameter names → values. Its `Debug` never
/// shows the values.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Plaintext(pub Map<String, Value>);

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.0.keys().map(|k| format!("{k}=<redacted>")))
            .finish()
    }
}

/// An AES-256-GCM key derived from `AUTH_ENCRYPTION_SECRET`, with the rules for which
/// header names it protects (the gateway's key seals what the configuration calls
/// sensitive; see [`crate::entities::headers`]).
#[derive(Clone)]
pub struct Cipher {
    cipher: Aes256Gcm,
    fingerprint: String,
    sensitive: SensitiveHeaders,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cipher({})", self.fingerprint)
    }
}

/// The SHA-256 of `bytes` as lower-case hex (file digests in audit rows, token hashes).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Cipher {
    pub fn new(secret: &SecretString) -> Cipher {
        let key = Sha256::digest(secret.expose_secret().as_bytes());
        let fingerprint = fingerprint_of(&key);
        Cipher {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key)),
            fingerprint,
            sensitive: SensitiveHeaders::default(),
        }
    }

    /// The same key, sealing the headers `sensitive` names (the default rules otherwise).
    pub fn with_sensitive_headers(mut self, sensitive: SensitiveHeaders) -> Cipher {
        self.sensitive = sensitive;
        self
    }

    /// Which tool headers this key seals into envelopes.
    pub fn sensitive_headers(&self) -> &SensitiveHeaders {
        &self.sensitive
    }

    /// A short, one-way name for the key (16 hex digits), never the key: for audit rows
    /// ("which key"), the database's key check and messages naming keys. The same on
    /// every backend, being a function of the secret alone.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Encrypts a credential object under a fresh random nonce.
    pub fn encrypt(&self, plaintext: &Plaintext) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        self.encrypt_with_nonce(plaintext, nonce)
    }

    fn encrypt_with_nonce(&self, plaintext: &Plaintext, nonce: [u8; NONCE_LEN]) -> String {
        let json = serde_json::to_vec(&plaintext.0).expect("a JSON map always serialises");
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), json.as_slice())
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(blob)
    }

    /// Decrypts a blob written by this key (ours or ContextForge's).
    pub fn decrypt(&self, blob: &str) -> Result<Plaintext, CryptoError> {
        let bytes = decode_lenient(blob)?;
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let json = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| CryptoError::WrongKey)?;
        match serde_json::from_slice::<Value>(&json) {
            Ok(Value::Object(map)) if map.values().all(Value::is_string) => Ok(Plaintext(map)),
            _ => Err(CryptoError::NotAnObject),
        }
    }
}

/// SHA-256 over the domain tag and the derived key, truncated, as lower-case hex.
fn fingerprint_of(key: &[u8]) -> String {
    let mut hash = Sha256::new();
    hash.update(FINGERPRINT_DOMAIN);
    hash.update(key);
    hex::encode(&hash.finalize()[..FINGERPRINT_BYTES])
}

/// Base64 as Python's `urlsafe_b64decode` accepts it, checked for the minimum length.
/// Needs no key, so validators can run it anywhere.
pub fn decode_lenient(blob: &str) -> Result<Vec<u8>, CryptoError> {
    let normalised: String = blob
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let bytes = URL_SAFE_NO_PAD
        .decode(normalised)
        .map_err(|_| CryptoError::NotBase64)?;
    if bytes.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::TooShort(bytes.len()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TV_SECRET: &str = "Hs7Pk2Lm9Qw4Er8Ty1Ui6Op3As5Df0Gh2Jk7Lz9Xc4Vb";
    const TV_NONCE: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    const TV1: &str =
        "AAECAwQFBgcICQoLAHPA-jhlHD_c_5ze_EED9MBV2PUQrPuEV3UMaXW4uu79FXpVoHejTFaKz6Ui_Moicg";
    const TV2: &str =
        "AAECAwQFBgcICQoLAHPZog1dOmD-4ISIrwwG59hbuMhcivuYFnoaKH6o6K_ti41fs1O-sTVsrzu40f9yaQ3cSA";

    fn cipher(secret: &str) -> Cipher {
        Cipher::new(&SecretString::from(secret))
    }

    fn plaintext(json: &str) -> Plaintext {
        match serde_json::from_str(json).unwrap() {
            Value::Object(map) => Plaintext(map),
            _ => unreachable!(),
        }
    }

    #[test]
    fn contextforge_test_vectors_decrypt_and_re_encrypt_byte_for_byte() {
        let c = cipher(TV_SECRET);
        let one = plaintext(r#"{"Authorization":"Bearer abc123"}"#);
        let two = plaintext(r#"{"X-API-Key":"k1","X-Tenant":"acme"}"#);
        assert_eq!(c.decrypt(TV1).unwrap(), one);
        assert_eq!(c.decrypt(TV2).unwrap(), two);
        assert_eq!(c.encrypt_with_nonce(&one, TV_NONCE), TV1);
        assert_eq!(c.encrypt_with_nonce(&two, TV_NONCE), TV2);
    }

    #[test]
    fn round_trip_uses_a_fresh_nonce_each_time() {
        let c = cipher("a-secret-that-is-long-enough-for-tests-000");
        let p = plaintext(r#"{"Authorization":"Basic dXNlcjpwYXNz"}"#);
        let a = c.encrypt(&p);
        let b = c.encrypt(&p);
        assert_ne!(a, b);
        assert_eq!(c.decrypt(&a).unwrap(), p);
        assert_eq!(c.decrypt(&b).unwrap(), p);
    }

    #[test]
    fn a_wrong_key_is_refused() {
        assert_eq!(
            cipher("another-secret-entirely-0123456789abcdef").decrypt(TV1),
            Err(CryptoError::WrongKey)
        );
    }

    #[test]
    fn a_tampered_tag_or_body_is_refused() {
        let c = cipher(TV_SECRET);
        let mut bytes = decode_lenient(TV1).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            c.decrypt(&URL_SAFE_NO_PAD.encode(&bytes)),
            Err(CryptoError::WrongKey)
        );
        let mut bytes = decode_lenient(TV1).unwrap();
        bytes[14] ^= 0x80;
        assert_eq!(
            c.decrypt(&URL_SAFE_NO_PAD.encode(&bytes)),
            Err(CryptoError::WrongKey)
        );
    }

    #[test]
    fn short_and_non_base64_blobs_are_refused_before_decryption() {
        let c = cipher(TV_SECRET);
        assert_eq!(c.decrypt("AAECAwQF"), Err(CryptoError::TooShort(6)));
        assert_eq!(c.decrypt("not base64 at all!"), Err(CryptoError::NotBase64));
        assert_eq!(c.decrypt(""), Err(CryptoError::TooShort(0)));
    }

    #[test]
    fn decoding_is_lenient_like_python() {
        let c = cipher(TV_SECRET);
        let standard = TV1.replace('-', "+").replace('_', "/");
        let padded = format!("{TV1}==");
        assert!(c.decrypt(&standard).is_ok());
        assert!(c.decrypt(&padded).is_ok());
    }

    #[test]
    fn the_contextforge_fixture_gateway_credentials_decrypt() {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/contextforge/export-seed-dataset.json"
        );
        let text = std::fs::read_to_string(file).expect("fixtures/contextforge in the repository");
        let export: Value = serde_json::from_str(&text).unwrap();
        let c = cipher("cfpeer-enc-K3p8Vn2Rq7Lx5Zt1Mw9Bc4Hy6Jd0Gs3F");
        let blobs: Vec<&str> = export["entities"]["gateways"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|g| g["auth_value"].as_str())
            .collect();
        assert!(!blobs.is_empty());
        for blob in blobs {
            assert!(!c.decrypt(blob).unwrap().0.is_empty());
        }
    }

    #[test]
    fn the_fingerprint_is_a_domain_separated_hash_of_the_key_not_of_the_secret() {
        let c = cipher(TV_SECRET);
        // Pinned: exports and databases of other builds carry it.
        assert_eq!(c.fingerprint(), "95ef5e31067849a7");
        let key = Sha256::digest(TV_SECRET.as_bytes());
        let plain_hashes = [
            sha256_hex(&key),
            sha256_hex(TV_SECRET.as_bytes()),
            hex::encode(key),
        ];
        for hash in plain_hashes {
            assert!(!hash.starts_with(c.fingerprint()), "{hash}");
        }
        assert_ne!(
            c.fingerprint(),
            cipher("another-secret-entirely-0123456789abcdef").fingerprint()
        );
        assert_eq!(format!("{c:?}"), format!("Cipher({})", c.fingerprint()));
    }

    #[test]
    fn debug_output_never_shows_values() {
        let p = plaintext(r#"{"Authorization":"Bearer top-secret"}"#);
        let shown = format!("{p:?}");
        assert!(
            shown.contains("Authorization") && !shown.contains("top-secret"),
            "{shown}"
        );
    }
}
