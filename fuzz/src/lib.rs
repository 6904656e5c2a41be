//! Invariants checked by the fuzz targets (one function per target, so a crash found by
//! libFuzzer can be replayed from a unit test or a debugger with the same checks).
//!
//! Every check panics with a message naming the broken invariant; libFuzzer records a
//! panic as a crash and saves the input under `fuzz/artifacts/<target>/`.

use std::collections::{HashMap, HashSet};

use app::{
    entities::Entity,
    model::EntityKind,
    transfer::{
        EntitySet, ParsedFile, entity_at, keep_entities, original_pointer, outline_file, parse_file,
    },
    validation::{Code, FieldError},
};
use serde_json::{Value, json};

/// `server/src/crypto.rs`, compiled alone with the server's own dependencies: the whole
/// `server` crate (axum, sqlx, leptos ssr) is not needed to fuzz the decoder.
#[path = "../../server/src/crypto.rs"]
pub mod crypto;
/// `crypto.rs` names which tool headers it seals through `crate::entities::headers`.
pub mod entities;

/// RFC 6901 syntax: empty, or `/`-separated tokens in which `~` is always `~0` or `~1`.
pub fn is_pointer(p: &str) -> bool {
    if p.is_empty() {
        return true;
    }
    if !p.starts_with('/') {
        return false;
    }
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'~' {
            if !matches!(b.get(i + 1), Some(b'0' | b'1')) {
                return false;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    true
}

/// The pointer without its last token (`/a/b` → `/a`, `/a` → ``).
pub fn parent(p: &str) -> &str {
    &p[..p.rfind('/').unwrap_or(0)]
}

/// True when some JSON object in `bytes` (valid JSON) repeats a key. Such a document
/// reads differently as a `Value` (last wins) and as borrowed members (each seen), so
/// the pointer invariants below only hold for documents without repeated keys.
pub fn has_repeated_keys(bytes: &[u8]) -> bool {
    use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    struct Check<'a>(&'a std::cell::Cell<bool>);
    impl<'de> serde::de::DeserializeSeed<'de> for Check<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Check<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(k) = map.next_key::<String>()? {
                if !seen.insert(k) {
                    self.0.set(true);
                }
                map.next_value_seed(Check(self.0))?;
            }
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Check(self.0))?.is_some() {}
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    let _ = IgnoredAny;
    let found = std::cell::Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let ok = serde::de::DeserializeSeed::deserialize(Check(&found), &mut de).is_ok();
    ok && found.get()
}

/// True when the `entities` object names a type twice, read as `parse_file` reads it
/// (borrowed raw members, so also when the document is not valid as a `Value`).
pub fn repeated_entity_types(bytes: &[u8]) -> bool {
    use serde::de::{Deserializer, MapAccess, Visitor};
    use serde_json::value::RawValue;
    struct Names(bool);
    impl<'de> serde::Deserialize<'de> for Names {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Names, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Names;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Names, A::Error> {
                    let mut seen = HashSet::new();
                    let mut repeated = false;
                    while let Some((k, _)) = map.next_entry::<String, &'de RawValue>()? {
                        repeated |= !seen.insert(k);
                    }
                    Ok(Names(repeated))
                }
            }
            d.deserialize_map(V)
        }
    }
    #[derive(serde::Deserialize)]
    struct Top<'a> {
        #[serde(borrow)]
        entities: Option<&'a RawValue>,
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    serde_json::from_str::<Top>(text)
        .ok()
        .and_then(|t| t.entities)
        .and_then(|raw| serde_json::from_str::<Names>(raw.get()).ok())
        .is_some_and(|n| n.0)
}

/// Each entity serialised, by type, leaving out those that came with plaintext `auth`
/// (never serialised: the server encrypts it into `auth_value` on import).
fn serialised(set: &EntitySet) -> Value {
    fn list<E: Entity>(items: &[E], has_auth: impl Fn(&E) -> bool) -> Value {
        Value::Array(
            items
                .iter()
                .filter(|e| !has_auth(e))
                .map(|e| serde_json::to_value(e).expect("an entity always serialises"))
                .collect(),
        )
    }
    json!({
        "tools": list(&set.tools, |t| t.auth.is_some()),
        "gateways": list(&set.gateways, |g| g.auth.is_some()),
        "servers": list(&set.servers, |_| false),
        "prompts": list(&set.prompts, |_| false),
        "resources": list(&set.resources, |_| false),
        "roots": list(&set.roots, |_| false),
    })
}

/// The value at `pointer`, also under the alias a server's references may be written
/// with (`associated_tools` for `tool_ids`): `external_reference` warnings always name
/// `tool_ids`, `prompt_ids` or `resource_ids` (known, see fuzz/README.md).
fn lookup<'a>(doc: &'a Value, pointer: &str) -> Option<&'a Value> {
    doc.pointer(pointer).or_else(|| {
        let (i, kind) = ["tool", "prompt", "resource"]
            .iter()
            .find_map(|k| pointer.find(&format!("/{k}_ids")).map(|i| (i, *k)))?;
        if !pointer.starts_with("/entities/servers/") {
            return None;
        }
        let alias = format!(
            "{}/associated_{kind}s{}",
            &pointer[..i],
            &pointer[i + kind.len() + 5..]
        );
        doc.pointer(&alias)
    })
}

/// Every error or warning has a pointer of valid syntax; when the document is JSON
/// without repeated keys, the pointer or its parent (a missing required field) resolves.
fn check_pointers(what: &str, list: &[FieldError], document: Option<&Value>) {
    for e in list {
        assert!(is_pointer(&e.pointer), "{what}: bad pointer syntax {e:?}");
        if let Some(doc) = document {
            assert!(
                lookup(doc, &e.pointer).is_some() || lookup(doc, parent(&e.pointer)).is_some(),
                "{what}: pointer resolves neither itself nor its parent: {e:?}"
            );
        }
    }
}

/// `parse_file` target: never panics; a refusal locates every problem with a valid
/// pointer into the document and lists no problem twice; an accepted file's entities
/// re-serialise into a file that parses back to the same entities.
pub fn check_parse_file(bytes: &[u8]) {
    let result = parse_file(bytes);
    // A repeated key (`"tools": [..], "tools": [..]`) is read twice by `parse_file` and
    // once (last wins) as a `Value`: known, see fuzz/README.md.
    let repeated = has_repeated_keys(bytes) || repeated_entity_types(bytes);
    let document: Option<Value> = serde_json::from_slice(bytes).ok().filter(|_| !repeated);
    match result {
        Err(errors) => {
            assert!(!errors.is_empty(), "a refusal names at least one problem");
            check_pointers("error", &errors, document.as_ref());
            if repeated {
                return;
            }
            let mut seen = HashSet::new();
            for e in errors.iter() {
                assert!(
                    seen.insert((&e.pointer, &e.code, &e.message)),
                    "the same problem listed twice: {e:?}"
                );
            }
        }
        Ok(file) => {
            check_pointers("warning", &file.warnings, document.as_ref());
            if let Some(doc) = &document {
                check_warning_targets(&file, doc);
            }
            round_trip(&file);
        }
    }
}

/// Warnings point at what they name: an external reference at the key it quotes.
fn check_warning_targets(file: &ParsedFile, doc: &Value) {
    for w in &file.warnings {
        if w.code == "external_reference" {
            let quoted = w
                .message
                .strip_prefix('`')
                .and_then(|m| m.strip_suffix("` is not in the file: it must exist in the target"))
                .unwrap_or_default();
            assert_eq!(
                lookup(doc, &w.pointer).and_then(Value::as_str),
                Some(quoted),
                "an external_reference warning points at another value: {w:?}"
            );
        }
        if w.code == "masked_value" {
            assert_eq!(
                doc.pointer(&w.pointer).and_then(Value::as_str),
                Some("*****"),
                "a masked_value warning points at another value: {w:?}"
            );
        }
    }
}

/// An accepted file, written again from its parsed entities, parses to the same entities.
pub fn round_trip(file: &ParsedFile) {
    let entities = serialised(&file.entities);
    let again = json!({
        "version": file.version,
        "exported_at": file.exported_at.clone().unwrap_or_else(|| "x".into()),
        "entities": entities,
    });
    let bytes = serde_json::to_vec(&again).expect("a Value always serialises");
    let reparsed = parse_file(&bytes).unwrap_or_else(|e| {
        panic!(
            "an accepted file, written again, is refused: {e:?}\n{}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(
        serialised(&reparsed.entities),
        entities,
        "an accepted file, written again, parses to other entities"
    );
    assert!(
        reparsed
            .warnings
            .iter()
            .all(|w| w.code == "external_reference"),
        "a written file only warns about external references: {:?}",
        reparsed.warnings
    );
}

/// A deterministic choice of entities to keep, from the input.
fn chosen(bytes: &[u8]) -> impl Fn(EntityKind, usize) -> bool {
    let seed = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    move |kind, i| {
        let h = (seed ^ (kind as u64) << 40 ^ i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        !(h >> 61).is_multiple_of(3)
    }
}

/// `outline_keep` target: the wizard's outline, selection and pointer mapping agree with
/// `parse_file`.
pub fn check_outline_keep(bytes: &[u8]) {
    let parsed = parse_file(bytes);
    let Some((document, rows)) = outline_file(bytes) else {
        // Known (fuzz/README.md): a lone surrogate escape or an out-of-range number outside
        // the entities is skipped by `parse_file` but makes the document no `Value`.
        assert!(
            parsed.is_err() || serde_json::from_slice::<Value>(bytes).is_err(),
            "an accepted file has an outline"
        );
        return;
    };
    // Rows: one per list element, each owning its own pointer, which resolves.
    for row in &rows {
        let p = row.pointer();
        assert!(row.owns(&p), "{row:?} owns its pointer");
        assert_eq!(entity_at(&p), Some((row.kind, row.index)));
        assert!(document.pointer(&p).is_some(), "{row:?} is in the document");
    }
    let row_set: HashSet<(EntityKind, usize)> = rows.iter().map(|r| (r.kind, r.index)).collect();
    assert_eq!(row_set.len(), rows.len(), "rows are distinct");
    if has_repeated_keys(bytes) || repeated_entity_types(bytes) {
        return;
    }
    let problems: Vec<FieldError> = match &parsed {
        Ok(file) => file.warnings.clone(),
        Err(errors) => errors.listed.clone(),
    };
    // Every problem inside an entity belongs to a row the wizard shows.
    for e in &problems {
        if let Some(at) = entity_at(&e.pointer) {
            assert!(row_set.contains(&at), "no row owns {e:?}");
        }
    }
    if let Ok(file) = &parsed {
        assert!(
            rows.len() >= file.entities.total(),
            "every accepted entity has a row"
        );
    }

    // Keeping everything changes nothing.
    let (all, positions) = keep_entities(&document, &|_, _| true);
    match (parse_file(&all), &parsed) {
        (Ok(again), Ok(file)) => assert_eq!(again.warnings, file.warnings, "keep all: warnings"),
        // (pointer, code): a float quoted in a message may be one ulp off (known).
        (Err(again), Err(errors)) => assert_eq!(
            again
                .iter()
                .map(|e| (&e.pointer, &e.code))
                .collect::<Vec<_>>(),
            errors
                .iter()
                .map(|e| (&e.pointer, &e.code))
                .collect::<Vec<_>>(),
            "keep all: errors"
        ),
        (again, _) => panic!("keeping every entity changes the verdict: {again:?}"),
    }
    for (kind, kept) in &positions {
        assert!(kept.iter().copied().eq(0..kept.len()), "{kind:?}: identity");
    }

    // Leaving out every entity with an error gives a file that is accepted, when every
    // error is inside an entity.
    if let Err(errors) = &parsed {
        let bad: Option<HashSet<(EntityKind, usize)>> =
            errors.iter().map(|e| entity_at(&e.pointer)).collect();
        if let Some(bad) = bad {
            let (kept, positions) = keep_entities(&document, &|k, i| !bad.contains(&(k, i)));
            let result = parse_file(&kept);
            assert!(
                result.is_ok(),
                "leaving out the invalid entities {bad:?} leaves {:?}",
                result.err()
            );
            check_kept(&document, &kept, &positions, &|k, i| !bad.contains(&(k, i)));
        }
    }

    // Any selection: problems of the kept file map back into kept entities of the
    // original, and an entity's own errors are the same there as in the original.
    let keep = chosen(bytes);
    let (kept, positions) = keep_entities(&document, &keep);
    check_kept(&document, &kept, &positions, &keep);
    if let Err(kept_errors) = parse_file(&kept) {
        let original: HashSet<(String, Code)> = match &parsed {
            Err(errors) => errors
                .iter()
                .map(|e| (e.pointer.clone(), e.code.clone()))
                .collect(),
            Ok(_) => HashSet::new(),
        };
        for e in kept_errors.listed {
            let mapped = original_pointer(&e.pointer, &positions);
            if e.code != "duplicate" {
                assert!(
                    original.contains(&(mapped.clone(), e.code.clone())),
                    "the kept file reports {e:?} (at {mapped} in the original), the original does not"
                );
            }
        }
    }
}

/// A file made by `keep_entities`: positions are increasing, kept and in range, and every
/// pointer of its problems maps into a kept entity of the original.
fn check_kept(
    document: &Value,
    kept: &[u8],
    positions: &HashMap<EntityKind, Vec<usize>>,
    keep: &dyn Fn(EntityKind, usize) -> bool,
) {
    let kept_doc: Value = serde_json::from_slice(kept).expect("a kept file is JSON");
    for (kind, list) in positions {
        let original_len = document["entities"][kind.plural()]
            .as_array()
            .map_or(0, Vec::len);
        assert!(list.windows(2).all(|w| w[0] < w[1]), "positions increase");
        assert!(list.iter().all(|i| *i < original_len && keep(*kind, *i)));
        assert_eq!(
            kept_doc["entities"][kind.plural()].as_array().map(Vec::len),
            Some(list.len())
        );
        for (new, old) in list.iter().enumerate() {
            // Compared once written: without serde_json's `float_roundtrip`, a float may
            // read back one ulp off (known, fuzz/README.md).
            let original = &document["entities"][kind.plural()][*old];
            let written: Value =
                serde_json::from_slice(&serde_json::to_vec(original).expect("serialises"))
                    .expect("reads back");
            assert_eq!(
                kept_doc["entities"][kind.plural()][new],
                written,
                "{kind:?} {new} is the original's {old}"
            );
        }
    }
    let problems = match parse_file(kept) {
        Ok(file) => file.warnings,
        Err(errors) => errors.listed,
    };
    for e in problems {
        let mapped = original_pointer(&e.pointer, positions);
        assert!(is_pointer(&mapped), "{mapped}");
        if let Some((kind, i)) = entity_at(&mapped) {
            assert!(keep(kind, i), "{e:?} maps to {mapped}, an entity left out");
            assert!(
                lookup(document, &mapped).is_some() || lookup(document, parent(&mapped)).is_some(),
                "{e:?} maps to {mapped}, not in the original"
            );
        } else {
            assert_eq!(mapped, e.pointer, "pointers outside entities are kept");
        }
    }
}

/// `decrypt` target, see `fuzz_targets/decrypt.rs`.
pub mod decrypt {
    use std::sync::LazyLock;

    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use secrecy::SecretString;
    use serde_json::{Map, Value};

    use crate::crypto::{Cipher, CryptoError, Plaintext, decode_lenient};

    /// The secret of ContextForge's test vectors: the seed corpus holds blobs it decrypts.
    pub const SECRET: &str = "Hs7Pk2Lm9Qw4Er8Ty1Ui6Op3As5Df0Gh2Jk7Lz9Xc4Vb";

    static CIPHER: LazyLock<Cipher> = LazyLock::new(|| Cipher::new(&SecretString::from(SECRET)));
    static OTHER: LazyLock<Cipher> =
        LazyLock::new(|| Cipher::new(&SecretString::from("another-secret-0123456789abcdef")));

    /// Any text: `decrypt` never panics, agrees with `decode_lenient`, and whatever it
    /// accepts is a JSON object of strings that its canonical spelling decrypts to as well.
    pub fn any_text(text: &str) {
        let lenient = decode_lenient(text);
        let result = CIPHER.decrypt(text);
        match &lenient {
            Err(e) => assert_eq!(result.as_ref().err(), Some(e)),
            Ok(bytes) => {
                assert!(bytes.len() >= 28);
                assert!(matches!(
                    result,
                    Ok(_) | Err(CryptoError::WrongKey | CryptoError::NotAnObject)
                ));
            }
        }
        if let Err(CryptoError::TooShort(n)) = lenient {
            assert!(n < 28);
        }
        if let Ok(plain) = result {
            assert!(plain.0.values().all(Value::is_string));
            let canonical = URL_SAFE_NO_PAD.encode(lenient.expect("decoded"));
            assert_eq!(CIPHER.decrypt(&canonical).as_ref(), Ok(&plain));
            assert_eq!(OTHER.decrypt(text), Err(CryptoError::WrongKey));
        }
    }

    /// Any bytes as a blob: refused unless it is a real encryption (never, by chance).
    pub fn any_blob(bytes: &[u8]) {
        let text = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(
            decode_lenient(&text).ok().as_deref(),
            (bytes.len() >= 28).then_some(bytes)
        );
        match CIPHER.decrypt(&text) {
            Err(CryptoError::TooShort(n)) => assert!(n == bytes.len() && n < 28),
            Err(CryptoError::WrongKey) => assert!(bytes.len() >= 28),
            other => panic!("{} random bytes decrypt: {other:?}", bytes.len()),
        }
    }

    /// Credentials made from the input: encrypt→decrypt is the identity (under every
    /// spelling Python accepts), and any change to the blob is refused, never decrypted
    /// to other plaintext.
    pub fn round_trip(data: &[u8]) {
        let (control, body) = data.split_at(data.len().min(4));
        let text = String::from_utf8_lossy(body);
        let mut map = Map::new();
        let mut parts = text.split('\0');
        while let Some(k) = parts.next() {
            let v = parts.next().unwrap_or_default();
            map.insert(k.to_owned(), Value::String(v.to_owned()));
        }
        // One value of another type when asked: decrypts to NotAnObject.
        let other_type = control.first().is_some_and(|c| c & 0x80 != 0) && !map.is_empty();
        if other_type {
            let key = map.keys().next().cloned().unwrap_or_default();
            map.insert(key, Value::from(control.len()));
        }
        let plain = Plaintext(map);
        let blob = CIPHER.encrypt(&plain);
        let expected = if other_type {
            Err(CryptoError::NotAnObject)
        } else {
            Ok(plain.clone())
        };
        assert_eq!(CIPHER.decrypt(&blob), expected);
        let standard = blob.replace('-', "+").replace('_', "/");
        let padded = format!("  {standard}{}\n", "=".repeat((4 - blob.len() % 4) % 4));
        assert_eq!(CIPHER.decrypt(&padded), expected, "lenient spelling");
        assert_eq!(OTHER.decrypt(&blob), Err(CryptoError::WrongKey));

        // Tampering: flip bits of one byte, or cut the blob, or extend it.
        let bytes = decode_lenient(&blob).expect("our own blob decodes");
        let at = usize::from(u16::from_le_bytes([
            control.get(1).copied().unwrap_or(0),
            control.get(2).copied().unwrap_or(0),
        ])) % bytes.len();
        let mask = control.get(3).copied().unwrap_or(1).max(1);
        let mut flipped = bytes.clone();
        flipped[at] ^= mask;
        let cut = &bytes[..bytes.len() - 1 - at % bytes.len().min(8)];
        let mut longer = bytes.clone();
        longer.push(mask);
        for (what, changed) in [
            ("flipped", &flipped[..]),
            ("cut", cut),
            ("extended", &longer),
        ] {
            match CIPHER.decrypt(&URL_SAFE_NO_PAD.encode(changed)) {
                Err(CryptoError::WrongKey) => {}
                Err(CryptoError::TooShort(_)) if changed.len() < 28 => {}
                other => panic!("a {what} blob is not refused: {other:?}"),
            }
        }
    }
}
