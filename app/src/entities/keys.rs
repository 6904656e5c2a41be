//! Entity keys (names, or URIs for resources and roots): the one normal form every
//! writer stores and every reader compares, the rules that keep look-alikes out, and the
//! `..` check of paths read the way a file system would read them.
//!
//! A key is stored trimmed and in Unicode NFC, so that `"greeting "` and a decomposed
//! `"gréeting"` are the same key as `"greeting"` and the composed one. Names are unique
//! regardless of case (as ContextForge's slugs are): [`fold_key`] is the form the store's
//! unique index holds. URIs keep their case: `file:///Data` and `file:///data` are two
//! directories. Invisible characters and letters mixing scripts are refused outright,
//! since no normal form makes `grеeting` (Cyrillic `е`) look different from `greeting`.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;
use unicode_security::{GeneralSecurityProfile, MixedScript};

use super::common::check_name;
use crate::{
    model::EntityKind,
    validation::{Code, Errors, join},
};

/// `key` trimmed and in NFC; borrowed when it already is (every plain ASCII key).
pub fn normalise_key(key: &str) -> Cow<'_, str> {
    let trimmed = key.trim();
    if trimmed.is_ascii() {
        return if trimmed.len() == key.len() {
            Cow::Borrowed(key)
        } else {
            Cow::Owned(trimmed.to_owned())
        };
    }
    match unicode_normalization::is_nfc_quick(trimmed.chars()) {
        unicode_normalization::IsNormalized::Yes if trimmed.len() == key.len() => {
            Cow::Borrowed(key)
        }
        _ => Cow::Owned(trimmed.nfc().collect()),
    }
}

/// Normalises an optional key in place (see [`normalise_key`]).
pub fn normalise_in_place(key: &mut Option<String>) {
    if let Some(k) = key
        && let Cow::Owned(normal) = normalise_key(k)
    {
        *k = normal;
    }
}

/// Normalises a key field in place and checks it ([`check_key`]); reports `required`
/// when it is absent. The normalised key, for the type's own rules.
pub fn key_field<'a>(
    key: &'a mut Option<String>,
    pointer: &str,
    errors: &mut Errors,
) -> Option<&'a str> {
    normalise_in_place(key);
    let Some(key) = key.as_deref() else {
        errors.add(pointer, Code::Required, "required");
        return None;
    };
    check_key(key, pointer, errors);
    Some(key)
}

/// The key of a type keyed by its name (not tools, whose names have rules of their own):
/// normalised, checked for look-alikes, then held to the name rules.
pub fn name_key(name: &mut Option<String>, base: &str, errors: &mut Errors) {
    let pointer = join(base, "name");
    if let Some(name) = key_field(name, &pointer, errors) {
        check_name(name, &pointer, errors);
    }
}

/// True for the kinds keyed by a name, whose keys are unique regardless of case.
pub fn folds_case(kind: EntityKind) -> bool {
    !matches!(kind, EntityKind::Resource | EntityKind::Root)
}

/// The form two keys of `kind` are compared in for uniqueness: the normal form, and
/// lower-cased for names (`Greeting` and `greeting` are one prompt).
pub fn fold_key(kind: EntityKind, key: &str) -> Cow<'_, str> {
    let normal = normalise_key(key);
    if !folds_case(kind) || !normal.chars().any(char::is_uppercase) {
        return normal;
    }
    Cow::Owned(normal.to_lowercase())
}

/// The look-alike rules for a key already normalised: no invisible or format
/// characters, no letters outside those Unicode recommends for identifiers (UTS #39),
/// and letters of one script only (digits, spaces and punctuation belong to all).
pub fn check_key(key: &str, pointer: &str, errors: &mut Errors) {
    if key.is_ascii() {
        return;
    }
    if let Some((at, c)) = key.chars().enumerate().find(|(_, c)| is_invisible(*c)) {
        errors.add(
            pointer,
            Code::InvisibleCharacter,
            format!(
                "must not contain invisible, space-like or format characters: U+{:04X} at character {}",
                c as u32,
                at + 1
            ),
        );
    } else if let Some(c) = key
        .chars()
        .find(|c| c.is_alphanumeric() && !c.identifier_allowed())
    {
        errors.add(
            pointer,
            Code::ConfusableCharacter,
            format!(
                "`{c}` (U+{:04X}) is not a letter or digit Unicode recommends for identifiers (UTS #39); write it with a recommended one",
                c as u32
            ),
        );
    } else if words(key).any(|word| !word.is_single_script()) {
        errors.add(
            pointer,
            Code::MixedScript,
            "mixes letters of different scripts in one word (such as Latin and Cyrillic), which makes it a look-alike of another name; write each word in one script",
        );
    }
}

/// The runs of letters, marks and digits: a look-alike swaps letters inside a word, while
/// a name or a path may well hold words of two scripts (`Weather Погода`, `file:///данные`).
fn words(key: &str) -> impl Iterator<Item = &str> {
    use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
    key.split(|c: char| {
        !matches!(
            c.general_category_group(),
            GeneralCategoryGroup::Letter
                | GeneralCategoryGroup::Mark
                | GeneralCategoryGroup::Number
        )
    })
}

/// Characters that show as nothing, or as a plain space: controls, format characters
/// (U+200B, U+200D, U+FEFF, bidi controls), every space but U+0020, line and paragraph
/// separators, private-use and unassigned code points, and the Hangul fillers.
fn is_invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};
    if c == ' ' {
        return false;
    }
    matches!(
        c.general_category_group(),
        GeneralCategoryGroup::Other | GeneralCategoryGroup::Separator
    ) || matches!(c, '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}')
}

/// True when `path` has a `..` segment once read as a file system or a server would read
/// it: percent-decoded (repeatedly, so `%252e%252e` counts too), `\` taken as a
/// separator, and each segment in NFKC (full-width `．．` is `..`).
pub fn has_dot_dot_segment(path: &str) -> bool {
    let mut text = Cow::Borrowed(path);
    // Each round removes one layer of encoding; a few layers are all any server undoes.
    for _ in 0..4 {
        if text.split(['/', '\\']).any(is_dot_dot) {
            return true;
        }
        let decoded = percent_encoding::percent_decode_str(&text).decode_utf8_lossy();
        if decoded == text {
            return false;
        }
        text = Cow::Owned(decoded.into_owned());
    }
    text.split(['/', '\\']).any(is_dot_dot)
}

fn is_dot_dot(segment: &str) -> bool {
    segment == ".." || (!segment.is_ascii() && segment.nfkc().eq("..".chars()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(key: &str) -> Vec<String> {
        let mut errors = Errors::default();
        check_key(&normalise_key(key), "/name", &mut errors);
        errors
            .list
            .into_iter()
            .map(|e| e.code.to_string())
            .collect()
    }

    #[test]
    fn look_alike_keys_normalise_to_one_or_are_refused() {
        // The list: each is the existing key, or refused.
        let prompt = EntityKind::Prompt;
        assert_eq!(fold_key(prompt, "greeting"), "greeting");
        assert_eq!(fold_key(prompt, "Greeting"), "greeting");
        assert_eq!(fold_key(prompt, "greeting "), "greeting");
        assert_eq!(fold_key(prompt, "greeting\u{a0}"), "greeting");
        assert_eq!(codes("greeting\u{200b}"), ["invisible_character"]);
        assert_eq!(codes("gr\u{0435}eting"), ["mixed_script"]);
        assert_eq!(codes("gree\u{2060}ting"), ["invisible_character"]);
        assert_eq!(codes("gree\u{202e}ting"), ["invisible_character"]);
        assert_eq!(codes("two\u{a0}words"), ["invisible_character"]);
        assert_eq!(codes("\u{b5}s"), ["confusable_character"]);
        assert_eq!(codes("\u{3164}"), ["invisible_character"]);
        // Decomposed and composed `é` are one key; one script, with digits, is fine.
        assert_eq!(normalise_key("cafe\u{301}"), "caf\u{e9}");
        for fine in [
            "café 2",
            "приветствие",
            "東京タワー",
            "weather_api/v2",
            "Seed Server (1)",
            "Weather Погода",
            "file:///srv/данные/x.txt",
        ] {
            assert!(codes(fine).is_empty(), "{fine}: {:?}", codes(fine));
        }
    }

    #[test]
    fn uris_keep_their_case_names_do_not() {
        assert_eq!(fold_key(EntityKind::Root, "file:///Data"), "file:///Data");
        assert_eq!(fold_key(EntityKind::Tool, "Weather_API"), "weather_api");
        assert!(matches!(
            normalise_key("plain-ascii"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn dot_dot_is_found_after_decoding() {
        for bad in [
            "file:///srv/%2e%2e/%2e%2e/etc/shadow",
            "file:///srv/..%2f..%2fetc/shadow",
            "file:///srv/%2E%2E/etc",
            "file:///srv/%252e%252e/etc",
            "file:///srv/..\\etc",
            "file:///srv/\u{ff0e}\u{ff0e}/etc",
            "file:///srv/../etc",
        ] {
            assert!(has_dot_dot_segment(bad), "{bad}");
        }
        for fine in [
            "file:///srv/a..b/c",
            "file:///srv/%2e/x",
            "file:///srv/...",
            "https://example.com/a%20b",
        ] {
            assert!(!has_dot_dot_segment(fine), "{fine}");
        }
    }
}
