//! Finding things in JSON text without parsing it: where a string or a value ends, and a
//! top-level field of a file read without walking the entities before it is found. The
//! text is assumed to be JSON; on anything else the answers are merely useless (never a
//! panic), and the real parse that follows reports the problem.

/// The index just after the JSON string starting at `start` (its opening quote), or the
/// end of `doc` when it is not closed.
pub fn string_end(doc: &[u8], start: usize) -> usize {
    let mut at = start + 1;
    while let Some(n) = doc
        .get(at..)
        .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
    {
        at += n;
        if doc[at] == b'"' {
            return at + 1;
        }
        // A backslash escapes the byte after it (`\"`, `\\`, or the start of `\uXXXX`).
        at += 2;
    }
    doc.len()
}

/// The index just after the JSON value starting at `start` (no leading whitespace).
fn value_end(doc: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut at = start;
    while at < doc.len() {
        match doc[at] {
            b'"' => {
                at = string_end(doc, at);
                if depth == 0 {
                    return at;
                }
                continue;
            }
            b'{' | b'[' => depth += 1,
            // The end of the enclosing object or array: a number or literal ends here.
            b'}' | b']' if depth == 0 => return at,
            b'}' | b']' if depth == 1 => return at + 1,
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => return at,
            b if depth == 0 && b.is_ascii_whitespace() => return at,
            _ => {}
        }
        at += 1;
    }
    doc.len()
}

fn skip_whitespace(doc: &[u8], mut at: usize) -> usize {
    while doc.get(at).is_some_and(u8::is_ascii_whitespace) {
        at += 1;
    }
    at
}

/// The string value of the top-level field `name` of the JSON object `doc`, if it has
/// one. The fields before it are skipped, not parsed: a file's envelope, written before
/// its entities, is found at once however large the file.
pub fn top_level_string(doc: &[u8], name: &str) -> Option<String> {
    let mut at = skip_whitespace(doc, 0);
    if doc.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    loop {
        at = skip_whitespace(doc, at);
        if doc.get(at) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(doc, at);
        let key: Option<String> = serde_json::from_slice(&doc[at..key_end]).ok();
        at = skip_whitespace(doc, key_end);
        if doc.get(at) != Some(&b':') {
            return None;
        }
        at = skip_whitespace(doc, at + 1);
        let end = value_end(doc, at);
        if key.as_deref() == Some(name) {
            return serde_json::from_slice(&doc[at..end]).ok();
        }
        at = skip_whitespace(doc, end);
        if doc.get(at) != Some(&b',') {
            return None;
        }
        at += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_top_level_string_is_found_before_after_or_between_nested_values() {
        let doc =
            br#" { "a" : {"x": ["}", "\"", {"fp": "no"}]}, "fp":"k1\"2" , "b": [1, {}], "c": 7 } "#;
        assert_eq!(top_level_string(doc, "fp").as_deref(), Some("k1\"2"));
        assert_eq!(
            top_level_string(doc, "x"),
            None,
            "nested fields are not top-level"
        );
        assert_eq!(top_level_string(doc, "c"), None, "not a string");
        assert_eq!(
            top_level_string(br#"{"a": 1, "fp": "last"}"#, "fp").as_deref(),
            Some("last")
        );
        assert_eq!(
            top_level_string(br#"{"a": true,"fp":"x"}"#, "fp").as_deref(),
            Some("x")
        );
        for broken in [
            &b""[..],
            b"[]",
            b"{",
            br#"{"fp" "x"}"#,
            br#"{"a": "#,
            br#"{"a": 1 "fp": "x"}"#,
        ] {
            assert_eq!(top_level_string(broken, "fp"), None);
        }
    }
}
