//! An upstream's answer as a tool result: its JSON (filtered by the tool's
//! `jsonpath_filter`) or text, or for a non-2xx status a short, scrubbed excerpt.

use serde_json::Value;
use serde_json_path::JsonPath;

use super::ToolOutcome;

/// The most characters of an error answer shown to the caller.
const EXCERPT_CHARS: usize = 512;

/// What the caller gets back from a 2xx answer.
pub fn success(body: &[u8], filter: Option<&JsonPath>, structured: bool) -> ToolOutcome {
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return ToolOutcome {
            text: String::from_utf8_lossy(body).into_owned(),
            structured: None,
            is_error: false,
        };
    };
    let value = match filter {
        Some(path) => filtered(path, &json),
        None => json,
    };
    let text = match &value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let structured = structured.then(|| match value {
        Value::Object(_) => value,
        other => serde_json::json!({ "result": other }),
    });
    ToolOutcome {
        text,
        structured,
        is_error: false,
    }
}

/// ContextForge's filter: one match is the value itself, several (or none) a list.
fn filtered(path: &JsonPath, json: &Value) -> Value {
    let nodes = path.query(json).all();
    match nodes.as_slice() {
        [one] => (*one).clone(),
        many => Value::Array(many.iter().map(|v| (*v).clone()).collect()),
    }
}

/// The error result for a non-2xx answer: the status and the start of the body, with every
/// credential value the call sent replaced by `*****` (an upstream may echo them).
pub fn failure(status: reqwest::StatusCode, body: &[u8], secrets: &[String]) -> ToolOutcome {
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .take(EXCERPT_CHARS)
        .collect();
    let excerpt = scrub(text.trim(), secrets);
    let text = if excerpt.is_empty() {
        format!("upstream answered {status}")
    } else {
        format!("upstream answered {status}: {excerpt}")
    };
    ToolOutcome {
        text,
        structured: None,
        is_error: true,
    }
}

/// `text` with each of `secrets` masked, longest first (a token inside a header value).
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut secrets: Vec<&String> = secrets.iter().collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut text = text.to_owned();
    for secret in secrets {
        text = text.replace(secret.as_str(), "*****");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_filter_picks_values_like_contextforge() {
        let body = br#"{"data":[{"name":"a"},{"name":"b"}],"total":2}"#;
        let names = JsonPath::parse("$.data[*].name").unwrap();
        let out = success(body, Some(&names), false);
        assert_eq!(out.text, r#"["a","b"]"#);
        let total = JsonPath::parse("$.total").unwrap();
        let out = success(body, Some(&total), true);
        assert_eq!(out.text, "2");
        assert_eq!(out.structured, Some(json!({"result": 2})));
        let out = success(b"plain words", None, true);
        assert_eq!((out.text.as_str(), out.structured), ("plain words", None));
    }

    #[test]
    fn error_excerpts_are_bounded_and_scrubbed() {
        let body = format!("denied for Bearer tok-123456 {}", "x".repeat(5000));
        let out = failure(
            reqwest::StatusCode::UNAUTHORIZED,
            body.as_bytes(),
            &["Bearer tok-123456".into(), "tok-123456".into()],
        );
        assert!(out.is_error);
        assert!(
            out.text
                .starts_with("upstream answered 401 Unauthorized: denied for *****")
        );
        assert!(!out.text.contains("tok-123456"));
        assert!(out.text.len() < 600);
    }
}
