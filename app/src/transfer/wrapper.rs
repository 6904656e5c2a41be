//! ContextForge's import body, `{"import_data": {…the file…}, …options}`, taken apart
//! without copying the file: where `import_data` lies in the body, and the other members
//! (each kept only if small, and only the first [`MAX_OPTIONS`]).

use serde::{Deserialize, Deserializer, de};
use serde_json::{Map, Value, value::RawValue};

use super::walk::span;
use crate::{
    validation::{Code, FieldError, escape},
    wire::invalid,
};

/// The largest option of an import request (any field but the file), in bytes. Options
/// are a strategy, a flag, a pattern, secrets and a selection of names; a larger one is
/// refused naming it (400) before it is kept, so no option costs memory in proportion to
/// the body.
pub const MAX_OPTION_BYTES: usize = 64 * 1024;
/// The most option fields (any but the file) an import request may have.
pub const MAX_OPTIONS: usize = 32;
/// How much of an option's name is kept (to name it in an error).
const NAME_CHARS: usize = 100;

pub fn option_too_large(name: &str, size: usize) -> FieldError {
    FieldError {
        pointer: format!("/{}", escape(name)),
        code: Code::TooLarge,
        message: format!(
            "is {size} bytes; an option may be at most {} KiB",
            MAX_OPTION_BYTES / 1024
        ),
    }
}

pub fn too_many() -> FieldError {
    invalid(
        "/",
        format!("more than {MAX_OPTIONS} option fields: send the file and the options it needs"),
    )
}

/// A wrapper body taken apart: where the file is, and the other members as JSON.
#[derive(Debug)]
pub struct Wrapped {
    pub data: std::ops::Range<usize>,
    /// In order; a repeated name keeps its first place and its last value.
    pub options: Map<String, Value>,
    /// Options too large to keep, or past the first [`MAX_OPTIONS`]: only named.
    pub refused: Vec<FieldError>,
}

/// `bytes` as ContextForge's wrapper, or `None` when it is not one (the body is the file).
pub fn parse_wrapper(bytes: &[u8]) -> Option<Wrapped> {
    // First pass: nothing but `import_data` is kept, so a body that is the file itself
    // costs no memory to rule out.
    let data = serde_json::from_slice::<ImportData>(bytes).ok()?.0?;
    let data = span(bytes, data);
    // Second pass (a wrapper): the options, each parsed only if it is small.
    let mut options = Map::new();
    let mut refused = Vec::new();
    if let Ok(Options { members, more }) = serde_json::from_slice::<Options>(bytes) {
        for (name, raw) in members {
            let size = raw.get().len();
            if size > MAX_OPTION_BYTES {
                refused.push(option_too_large(&name, size));
            } else {
                options.insert(name, serde_json::from_str(raw.get()).unwrap_or(Value::Null));
            }
        }
        if more > 0 {
            refused.push(too_many());
        }
    }
    Some(Wrapped {
        data,
        options,
        refused,
    })
}

/// A JSON object's `import_data` member, borrowed (the last one when repeated); every
/// other member is skipped.
struct ImportData<'a>(Option<&'a RawValue>);

/// A JSON object's members other than `import_data`, in order, values borrowed: the
/// first [`MAX_OPTIONS`] (names cut to [`NAME_CHARS`]), and how many more there were.
struct Options<'a> {
    members: Vec<(String, &'a RawValue)>,
    more: usize,
}

impl<'de> Deserialize<'de> for ImportData<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor(ImportData(None)))
    }
}

impl<'de> Deserialize<'de> for Options<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor(Options {
            members: Vec::new(),
            more: 0,
        }))
    }
}

/// Visits a JSON object's members into `T` (one of the two above).
struct MembersVisitor<T>(T);

impl<'de> de::Visitor<'de> for MembersVisitor<ImportData<'de>> {
    type Value = ImportData<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: de::MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(name) = map.next_key_seed(ShortName)? {
            if name == "import_data" {
                self.0.0 = Some(map.next_value()?);
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(self.0)
    }
}

impl<'de> de::Visitor<'de> for MembersVisitor<Options<'de>> {
    type Value = Options<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: de::MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(name) = map.next_key_seed(ShortName)? {
            let value: &'de RawValue = map.next_value()?;
            let options = &mut self.0;
            if name == "import_data" {
                continue;
            }
            if options.members.len() < MAX_OPTIONS {
                options.members.push((name, value));
            } else {
                options.more += 1;
            }
        }
        Ok(self.0)
    }
}

/// A member name, cut to its first [`NAME_CHARS`] characters (a name may be megabytes).
struct ShortName;

impl<'de> de::DeserializeSeed<'de> for ShortName {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<String, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl de::Visitor<'_> for ShortName {
    type Value = String;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<String, E> {
        Ok(name.chars().take(NAME_CHARS).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scalar_or_a_repeated_import_data_is_still_its_value() {
        let body = br#"{"import_data": 1, "import_data": [ 7 ]}"#;
        let data = parse_wrapper(body).unwrap().data;
        assert_eq!(&body[data], b"[ 7 ]");
        let body = br#"{"import_data":-12.5}"#;
        let data = parse_wrapper(body).unwrap().data;
        assert_eq!(&body[data], b"-12.5");
    }

    #[test]
    fn a_body_that_is_not_a_wrapper_is_not_taken_apart() {
        for body in [
            &br#"{"version": "2025-03-26", "entities": {"tools": []}}"#[..],
            br#"[{"import_data": {}}]"#,
            br#"{"import_data": {}, "broken": "#,
            b"",
        ] {
            assert!(parse_wrapper(body).is_none());
        }
    }

    #[test]
    fn wrapper_options_too_many_or_too_long_named_are_bounded() {
        let many: String = (0..40).map(|i| format!(r#", "o{i}": 1"#)).collect();
        let wrapped =
            parse_wrapper(format!(r#"{{"import_data": {{}}{many}}}"#).as_bytes()).unwrap();
        assert_eq!(wrapped.options.len(), MAX_OPTIONS);
        assert_eq!(wrapped.refused, [too_many()]);
        let long_name = format!(r#"{{"import_data": {{}}, "{}": 1}}"#, "n".repeat(1 << 20));
        let wrapped = parse_wrapper(long_name.as_bytes()).unwrap();
        assert_eq!(wrapped.options.keys().next().unwrap().len(), NAME_CHARS);
    }

    #[test]
    fn wrapper_options_are_the_body_less_the_file_with_last_values() {
        let body =
            br#"{"conflict_strategy": "skip", "import_data": {}, "conflict_strategy": "fail"}"#;
        let options = parse_wrapper(body).unwrap().options;
        // As the whole body parsed into a map (what the wrapper used to be), less the file.
        let mut before: Map<String, Value> = serde_json::from_slice(body).unwrap();
        before.shift_remove("import_data");
        assert_eq!(options, before);
        assert_eq!(options["conflict_strategy"], "fail", "the last value");
    }
}
