//! Field types shared by the six entity types, each parsed and checked at the edge.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::validation::{Code, Errors, join};

/// A JSON object (schemas, annotations, capabilities), key order kept.
pub type JsonObject = Map<String, Value>;

/// Who may see an entity.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    #[default]
    Public,
    Team,
    Private,
}

/// How a tool or gateway authenticates to its upstream. The secret part is always the
/// encrypted `auth_value` beside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    Basic,
    Bearer,
    #[serde(rename = "authheaders", alias = "auth_headers", alias = "api_key")]
    AuthHeaders,
    QueryParam,
    #[serde(rename = "oauth")]
    OAuth,
}

impl AuthType {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Basic => "basic",
            AuthType::Bearer => "bearer",
            AuthType::AuthHeaders => "authheaders",
            AuthType::QueryParam => "query_param",
            AuthType::OAuth => "oauth",
        }
    }
}

/// A tag: `id` is the normalised form (lower-case, `-` for spaces and `_`), `label` the
/// original. Read from `{"id","label"}` objects or plain strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tag {
    pub id: String,
    pub label: String,
}

impl Tag {
    pub fn new(label: &str) -> Tag {
        let label = label.trim().to_owned();
        let id = label.to_lowercase().replace([' ', '_'], "-");
        Tag { id, label }
    }

    /// The tag rules: 2–100 characters of `a-z 0-9 - : .`, starting and ending with a
    /// letter or digit.
    pub fn check(&self, pointer: &str, errors: &mut Errors) {
        let id = &self.id;
        let edge_ok =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let body_ok = id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-:.".contains(c));
        if !(2..=100).contains(&id.chars().count())
            || !body_ok
            || !edge_ok(id.chars().next())
            || !edge_ok(id.chars().last())
        {
            errors.add(
                pointer,
                Code::InvalidTag,
                format!("tag `{}` must be 2-100 characters of a-z, 0-9, '-', ':' or '.', starting and ending with a letter or digit", self.label),
            );
        }
    }
}

impl Serialize for Tag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("label", &self.label)?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Tag, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Object {
                id: Option<String>,
                label: Option<String>,
            },
        }
        match Raw::deserialize(d)? {
            Raw::Text(label) => Ok(Tag::new(&label)),
            Raw::Object {
                label: Some(label), ..
            } => Ok(Tag::new(&label)),
            Raw::Object {
                id: Some(id),
                label: None,
            } => Ok(Tag::new(&id)),
            Raw::Object { .. } => Err(serde::de::Error::custom("a tag needs a label or an id")),
        }
    }
}

impl schemars::JsonSchema for Tag {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Tag".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A tag: written as {\"id\", \"label\"}; read from that or a plain string",
            "oneOf": [
                {"type": "string"},
                {"type": "object", "properties": {"id": {"type": "string"}, "label": {"type": "string"}}}
            ]
        })
    }
}

/// Checks a list of tags and drops duplicates (by normalised id).
pub fn check_tags(tags: &mut Vec<Tag>, pointer: &str, errors: &mut Errors) {
    for (i, tag) in tags.iter().enumerate() {
        tag.check(&join(pointer, &i.to_string()), errors);
    }
    let mut seen = std::collections::HashSet::new();
    tags.retain(|t| seen.insert(t.id.clone()));
}

/// A timestamp read leniently (RFC 3339, or naive ISO 8601 taken as UTC, as ContextForge
/// writes on SQLite) and written as RFC 3339 UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Timestamp(pub DateTime<Utc>);

impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "description": "ISO 8601; naive values are taken as UTC"})
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        use chrono::Datelike;
        let text = String::deserialize(d)?;
        let time = DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| {
                NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
            })
            .map_err(|_| {
                serde::de::Error::custom(format!("`{text}` is not an ISO 8601 timestamp"))
            })?;
        // Written back as RFC 3339, which has four-digit years only: a year outside
        // 0000-9999 in UTC (`-0001-…`, or `9999-12-31T23:00:00-05:00`) would not read again.
        if !(0..=9999).contains(&time.year()) {
            return Err(serde::de::Error::custom(format!(
                "`{text}` is out of range: the year in UTC must be 0000 to 9999"
            )));
        }
        Ok(Timestamp(time))
    }
}

/// Names of tools: `^[A-Za-z0-9_][A-Za-z0-9._/-]*$`, at most 128 characters.
pub fn check_tool_name(name: &str, pointer: &str, errors: &mut Errors) {
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
    if name.is_empty() {
        errors.add(pointer, Code::Required, "must not be empty");
    } else if name.chars().count() > 128 || !first_ok || !rest_ok {
        errors.add(
            pointer,
            Code::InvalidName,
            "must be at most 128 characters of letters, digits, '_', '.', '-' or '/', starting with a letter, digit or '_'",
        );
    }
}

/// Names of gateways, servers, prompts, resources and roots: letters, digits, space and
/// `_ . -` (plus `( ) : , /` for display names written by people), at most 255.
pub fn check_name(name: &str, pointer: &str, errors: &mut Errors) {
    if name.trim().is_empty() {
        errors.add(pointer, Code::Required, "must not be empty");
    } else if name.chars().count() > 255 {
        errors.add(pointer, Code::TooLong, "must be at most 255 characters");
    } else if name
        .chars()
        .any(|c| c.is_control() || "<>\"'`\\".contains(c))
    {
        errors.add(
            pointer,
            Code::InvalidName,
            "must not contain control characters or any of < > \" ' ` \\",
        );
    }
}

/// Why a URL with `user:password@` is refused, and where credentials go instead.
pub const CREDENTIALS_IN_URL: &str = "must not contain credentials (user:password@): URLs are shown and exported as they are; \
     send credentials in `auth` (e.g. {\"type\": \"basic\", \"username\": …, \"password\": …}), which is stored encrypted";

/// An absolute URL with one of `schemes`, a host, no userinfo, no spaces, at most 2048
/// characters.
pub fn check_url(url: &str, schemes: &[&str], pointer: &str, errors: &mut Errors) {
    if url.trim().is_empty() {
        errors.add(pointer, Code::Required, "must not be empty");
        return;
    }
    if url.len() > 2048 {
        errors.add(pointer, Code::TooLong, "must be at most 2048 characters");
        return;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        errors.add(
            pointer,
            Code::InvalidUrl,
            "must be an absolute URL such as https://host/path",
        );
        return;
    };
    if !schemes.contains(&scheme.to_ascii_lowercase().as_str()) {
        errors.add(
            pointer,
            Code::InvalidScheme,
            format!(
                "scheme `{scheme}` is not allowed; use one of {}",
                schemes.join(", ")
            ),
        );
        return;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.rsplit_once('@') {
        // Userinfo would be stored, listed and exported as typed: refused, never echoed.
        Some((_, host)) => {
            errors.add(pointer, Code::CredentialsInUrl, CREDENTIALS_IN_URL);
            host
        }
        None => authority,
    };
    if host.is_empty() && scheme != "file" {
        errors.add(pointer, Code::InvalidUrl, "must name a host");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        errors.add(
            pointer,
            Code::InvalidUrl,
            "must not contain spaces or control characters",
        );
    }
}

/// A JSON Schema given as an object must say `"type": "object"` at the top, when it says a type.
pub fn check_schema(schema: &JsonObject, pointer: &str, errors: &mut Errors) {
    match schema.get("type") {
        None => {}
        Some(Value::String(t)) if t == "object" => {}
        Some(_) => errors.add(
            join(pointer, "type"),
            Code::InvalidSchema,
            "the top-level type of an input schema must be \"object\"",
        ),
    }
    if let Some(p) = schema.get("properties")
        && !p.is_object()
    {
        errors.add(
            join(pointer, "properties"),
            Code::InvalidSchema,
            "must be an object",
        );
    }
    if depth(&Value::Object(schema.clone())) > 30 {
        errors.add(
            pointer,
            Code::TooDeep,
            "must not nest deeper than 30 levels",
        );
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A value that must be present: reports `required` when it is not.
pub fn required<'a, T>(value: &'a Option<T>, pointer: &str, errors: &mut Errors) -> Option<&'a T> {
    if value.is_none() {
        errors.add(pointer, Code::Required, "required");
    }
    value.as_ref()
}

pub fn default_true() -> bool {
    true
}

pub fn default_object_schema() -> JsonObject {
    let mut schema = JsonObject::new();
    schema.insert("type".into(), Value::String("object".into()));
    schema.insert("properties".into(), Value::Object(JsonObject::new()));
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_normalise_and_read_both_shapes() {
        let tags: Vec<Tag> =
            serde_json::from_str(r#"["Prod Env", {"id": "api", "label": "API"}, {"id": "x_y"}]"#)
                .unwrap();
        assert_eq!(
            tags[0],
            Tag {
                id: "prod-env".into(),
                label: "Prod Env".into()
            }
        );
        assert_eq!(tags[1].id, "api");
        assert_eq!(tags[2].id, "x-y");
        assert_eq!(
            serde_json::to_string(&tags[1]).unwrap(),
            r#"{"id":"api","label":"API"}"#
        );
    }

    #[test]
    fn bad_tags_are_reported_and_duplicates_dropped() {
        let mut errors = Errors::default();
        let mut tags = vec![
            Tag::new("ok"),
            Tag::new("x"),
            Tag::new("OK"),
            Tag::new("-bad"),
        ];
        check_tags(&mut tags, "/tags", &mut errors);
        let pointers: Vec<_> = errors.list.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/tags/1", "/tags/3"]);
        assert_eq!(tags.len(), 3);
    }

    #[test]
    fn urls_need_an_allowed_scheme_and_a_host() {
        let check = |u: &str| {
            let mut e = Errors::default();
            check_url(u, &["http", "https"], "/url", &mut e);
            e.list.first().map(|e| e.code.to_string())
        };
        assert_eq!(check("https://api.example.com/x"), None);
        assert_eq!(check("ftp://x"), Some("invalid_scheme".into()));
        assert_eq!(check("not a url"), Some("invalid_url".into()));
        assert_eq!(check("http:///path"), Some("invalid_url".into()));
        assert_eq!(check(""), Some("required".into()));
        assert_eq!(
            check("https://user:pa55@api.example.com/x"),
            Some("credentials_in_url".into())
        );
        assert_eq!(
            check("https://token@api.example.com"),
            Some("credentials_in_url".into())
        );
        assert_eq!(
            check("https://api.example.com/a@b"),
            None,
            "an @ in the path is no userinfo"
        );
    }

    #[test]
    fn names_follow_their_rules() {
        let mut e = Errors::default();
        check_tool_name("weather_api/v2", "/name", &mut e);
        check_name("Seed Server 1", "/name", &mut e);
        assert!(e.is_empty());
        check_tool_name("-x", "/a", &mut e);
        check_name("<script>", "/b", &mut e);
        assert_eq!(e.list.len(), 2);
    }

    #[test]
    fn timestamps_read_naive_and_offset_forms() {
        let a: Timestamp = serde_json::from_str(r#""2026-11-25T14:02:57.432106""#).unwrap();
        let b: Timestamp = serde_json::from_str(r#""2026-11-25T14:02:57.432106+00:00""#).unwrap();
        assert_eq!(a, b);
        assert!(serde_json::from_str::<Timestamp>(r#""yesterday""#).is_err());
    }

    #[test]
    fn timestamps_that_would_not_read_again_once_written_are_refused() {
        // Found with the fuzz targets' round-trip property: accepted, then written as
        // `+10000-01-01T04:00:00Z` or `-0001-01-01T00:00:00Z`, which no longer parse.
        for text in [
            "9999-12-31T23:00:00-05:00",
            "-0001-01-01T00:00:00",
            "+10000-01-01T00:00:00Z",
        ] {
            let read = serde_json::from_value::<Timestamp>(Value::String(text.into()));
            assert!(read.is_err(), "{text}: {read:?}");
        }
        for text in [
            "0000-01-01T00:00:00",
            "9999-12-31T23:59:59.999999Z",
            "0000-01-01T05:00:00+05:00",
        ] {
            let t: Timestamp = serde_json::from_value(Value::String(text.into())).unwrap();
            let again: Timestamp = serde_json::from_value(serde_json::to_value(t).unwrap())
                .unwrap_or_else(|e| panic!("{text} written as {:?}: {e}", serde_json::to_value(t)));
            assert_eq!(again, t);
        }
    }
}
