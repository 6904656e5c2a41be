//! Property tests of the credential decoder (`server::crypto`), the quick companion of the
//! `decrypt` cargo-fuzz target: any text is refused without panicking, encrypt→decrypt is
//! the identity under every spelling Python's decoder accepts, and a changed blob is
//! refused, never decrypted to other plaintext.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use proptest::prelude::*;
use secrecy::SecretString;
use serde_json::{Map, Value};
use server::crypto::{Cipher, CryptoError, Plaintext, decode_lenient};

fn cipher() -> Cipher {
    Cipher::new(&SecretString::from(
        "proptest-secret-0123456789abcdefghijkl",
    ))
}

fn credentials() -> impl Strategy<Value = Plaintext> {
    prop::collection::btree_map("[A-Za-z0-9_-]{0,16}", ".{0,40}", 0..5).prop_map(|m| {
        Plaintext(
            m.into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect::<Map<_, _>>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_refused_without_panicking(text in ".{0,120}") {
        let c = cipher();
        let result = c.decrypt(&text);
        match decode_lenient(&text) {
            Err(e) => prop_assert_eq!(result, Err(e)),
            Ok(bytes) => {
                prop_assert!(bytes.len() >= 28);
                prop_assert_eq!(result, Err(CryptoError::WrongKey));
            }
        }
    }

    #[test]
    fn base64_looking_text_is_refused_without_panicking(text in "[A-Za-z0-9_+/=-]{0,120}") {
        let result = cipher().decrypt(&text);
        prop_assert!(matches!(
            result,
            Err(CryptoError::NotBase64 | CryptoError::TooShort(_) | CryptoError::WrongKey)
        ), "{:?}", result);
    }

    #[test]
    fn any_bytes_as_a_blob_are_refused(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        let expected = if bytes.len() < 28 {
            CryptoError::TooShort(bytes.len())
        } else {
            CryptoError::WrongKey
        };
        prop_assert_eq!(cipher().decrypt(&URL_SAFE_NO_PAD.encode(&bytes)), Err(expected));
    }

    #[test]
    fn encrypt_then_decrypt_is_the_identity(plain in credentials()) {
        let c = cipher();
        let blob = c.encrypt(&plain);
        prop_assert_eq!(c.decrypt(&blob), Ok(plain.clone()));
        // Python's urlsafe_b64decode also reads padding, the standard alphabet and spaces.
        let standard = blob.replace('-', "+").replace('_', "/");
        let padded = format!(" {standard}{}\n", "=".repeat((4 - blob.len() % 4) % 4));
        prop_assert_eq!(c.decrypt(&padded), Ok(plain));
    }

    #[test]
    fn a_changed_blob_is_refused_never_misread(
        plain in credentials(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..=255,
        cut in 1usize..8,
    ) {
        let c = cipher();
        let bytes = decode_lenient(&c.encrypt(&plain)).unwrap();
        let mut flipped = bytes.clone();
        flipped[at.index(bytes.len())] ^= mask;
        let short = &bytes[..bytes.len() - cut];
        let mut longer = bytes.clone();
        longer.push(mask);
        for changed in [&flipped[..], short, &longer] {
            let result = c.decrypt(&URL_SAFE_NO_PAD.encode(changed));
            prop_assert!(
                matches!(result, Err(CryptoError::WrongKey | CryptoError::TooShort(_))),
                "{:?}", result
            );
        }
        let other = Cipher::new(&SecretString::from("another-secret-entirely-0123456789"));
        prop_assert_eq!(other.decrypt(&URL_SAFE_NO_PAD.encode(&bytes)), Err(CryptoError::WrongKey));
    }

    #[test]
    fn objects_with_other_values_decrypt_to_not_an_object(n in any::<i64>()) {
        let c = cipher();
        let mut map = Map::new();
        map.insert("Authorization".into(), Value::from(n));
        prop_assert_eq!(c.decrypt(&c.encrypt(&Plaintext(map))), Err(CryptoError::NotAnObject));
    }
}
