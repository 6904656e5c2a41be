//! How long each free-text field may be. Every limit is refused the same way: `too_long`
//! at the field's pointer, the message naming the limit. The largest (resource content)
//! stays under the REST API's 2 MB body limit, so whatever an import stores can also be
//! edited over REST.

use serde_json::Value;

use crate::validation::{Code, Errors, join};

/// Descriptions (every type) and a tool's `original_description`, in characters.
pub const DESCRIPTION: usize = 10_000;
/// Display names (`displayName`, `display_name`, `custom_name`, `original_name`) and
/// MIME types, in characters.
pub const SHORT_TEXT: usize = 255;
/// A server's `icon` (a URL), in characters.
pub const ICON: usize = 2048;
/// A tool's `jsonpath_filter`, in characters.
pub const JSONPATH_FILTER: usize = 4096;
/// One tool header value, in characters (what common HTTP servers accept per header).
pub const HEADER_VALUE: usize = 8192;
/// A header's name (tool headers, gateway passthrough headers), in characters.
pub const HEADER_NAME: usize = 256;
/// A resource's text `content`, in bytes of UTF-8 (1 MiB).
pub const CONTENT_BYTES: usize = 1 << 20;
/// A resource's base64 `blob`, in characters: 1 MiB once decoded.
pub const BLOB_CHARS: usize = (1_usize << 20).div_ceil(3) * 4;
/// A JSON object field (schemas, annotations, capabilities): its strings, keys and
/// numbers together, in bytes (256 KiB).
pub const JSON_OBJECT_BYTES: usize = 256 << 10;

/// The `description` every type has: at most [`DESCRIPTION`] characters.
pub fn check_description(description: &Option<String>, base: &str, errors: &mut Errors) {
    check_opt(description, DESCRIPTION, &join(base, "description"), errors);
}

/// Refuses `text` longer than `max` characters.
pub fn check_chars(text: &str, max: usize, pointer: &str, errors: &mut Errors) {
    // Bytes bound characters from above: only long texts are counted.
    if text.len() > max && text.chars().count() > max {
        errors.add(
            pointer,
            Code::TooLong,
            format!("must be at most {} characters", thousands(max)),
        );
    }
}

/// Refuses an optional text longer than `max` characters.
pub fn check_opt(text: &Option<String>, max: usize, pointer: &str, errors: &mut Errors) {
    if let Some(text) = text {
        check_chars(text, max, pointer, errors);
    }
}

/// Refuses `text` longer than `max` bytes of UTF-8.
pub fn check_bytes(text: &str, max: usize, pointer: &str, errors: &mut Errors) {
    if text.len() > max {
        errors.add(
            pointer,
            Code::TooLong,
            format!("must be at most {} bytes", thousands(max)),
        );
    }
}

/// Refuses a JSON object whose text (strings, keys, numbers) exceeds
/// [`JSON_OBJECT_BYTES`]; the walk stops as soon as it is over.
pub fn check_json_size(map: &serde_json::Map<String, Value>, pointer: &str, errors: &mut Errors) {
    fn size(v: &Value, budget: &mut usize) -> bool {
        let own = match v {
            Value::String(s) => s.len(),
            Value::Number(_) | Value::Bool(_) | Value::Null => 8,
            Value::Array(a) => return a.iter().all(|v| size(v, budget)),
            Value::Object(m) => {
                return m.iter().all(|(k, v)| {
                    *budget = budget.saturating_sub(k.len());
                    *budget > 0 && size(v, budget)
                });
            }
        };
        *budget = budget.saturating_sub(own);
        *budget > 0
    }
    let mut budget = JSON_OBJECT_BYTES;
    let fits = map.iter().all(|(k, v)| {
        budget = budget.saturating_sub(k.len());
        budget > 0 && size(v, &mut budget)
    });
    if !fits {
        errors.add(
            pointer,
            Code::TooLong,
            format!(
                "must be at most {} bytes of text (strings, keys and numbers)",
                thousands(JSON_OBJECT_BYTES)
            ),
        );
    }
}

/// `10000` as `10,000`, as the messages and the README write limits.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_one_past_and_name_the_limit() {
        let mut errors = Errors::default();
        check_chars(&"é".repeat(DESCRIPTION), DESCRIPTION, "/a", &mut errors);
        assert!(errors.is_empty(), "characters, not bytes");
        check_chars(&"d".repeat(DESCRIPTION + 1), DESCRIPTION, "/b", &mut errors);
        check_bytes(
            &"c".repeat(CONTENT_BYTES + 1),
            CONTENT_BYTES,
            "/c",
            &mut errors,
        );
        let big: serde_json::Map<String, Value> =
            [("x".to_owned(), Value::String("s".repeat(JSON_OBJECT_BYTES)))]
                .into_iter()
                .collect();
        check_json_size(&big, "/d", &mut errors);
        let pointers: Vec<_> = errors.list.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/b", "/c", "/d"]);
        assert!(errors.list.iter().all(|e| e.code == "too_long"));
        assert_eq!(errors.list[0].message, "must be at most 10,000 characters");
        assert_eq!(errors.list[1].message, "must be at most 1,048,576 bytes");
        assert_eq!(BLOB_CHARS, 1_398_104);
    }
}
