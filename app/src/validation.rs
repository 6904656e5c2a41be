//! Field-level errors located by JSON Pointer, and parsing that reports every problem
//! of a document at once. Compiled into the server and into the browser alike.

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

/// One problem with one field, e.g. `{"/entities/tools/3/url", "required", "required"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldError {
    pub pointer: String,
    /// Documented as a string: clients match on the text, and new codes may come.
    #[schemars(with = "String")]
    pub code: Code,
    pub message: String,
}

impl FieldError {
    pub fn new(pointer: impl Into<String>, code: Code, message: impl Into<String>) -> FieldError {
        FieldError {
            pointer: pointer.into(),
            code,
            message: message.into(),
        }
    }
}

/// Declares [`Code`] with each variant's wire text, written once.
macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// What is wrong with a field: a closed set, sent as its snake_case text.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Code {
            $($(#[$doc])* #[serde(rename = $text)] $variant,)*
        }

        impl Code {
            /// The text the wire carries.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }
        }
    };
}

codes! {
    Required = "required",
    Invalid = "invalid",
    InvalidType = "invalid_type",
    InvalidJson = "invalid_json",
    InvalidUtf8 = "invalid_utf8",
    InvalidName = "invalid_name",
    InvalidUrl = "invalid_url",
    InvalidUri = "invalid_uri",
    InvalidScheme = "invalid_scheme",
    InvalidSchema = "invalid_schema",
    InvalidTag = "invalid_tag",
    InvalidEnum = "invalid_enum",
    InvalidBase64 = "invalid_base64",
    InvalidMimeType = "invalid_mime_type",
    InvalidCiphertext = "invalid_ciphertext",
    CredentialsInUrl = "credentials_in_url",
    PathTraversal = "path_traversal",
    ConfusableCharacter = "confusable_character",
    InvisibleCharacter = "invisible_character",
    MixedScript = "mixed_script",
    TooLong = "too_long",
    TooDeep = "too_deep",
    TooMany = "too_many",
    TooLarge = "too_large",
    Empty = "empty",
    Truncated = "truncated",
    UnknownType = "unknown_type",
    UnknownVersion = "unknown_version",
    UnknownReference = "unknown_reference",
    Duplicate = "duplicate",
    DuplicateKey = "duplicate_key",
    DuplicateMerged = "duplicate_merged",
    MaskedValue = "masked_value",
    ExternalReference = "external_reference",
    WarningsNotListed = "warnings_not_listed",
    MatchesNothing = "matches_nothing",
    MissingLinkDropped = "missing_link_dropped",
    Conflict = "conflict",
    Conflicting = "conflicting",
    /// A field of a tool, prompt or resource discovered on a peer gateway: the peer owns it.
    Federated = "federated",
    /// A server's link to a peer's item not discovered yet, kept by a placeholder.
    PendingDiscovery = "pending_discovery",
    /// ContextForge exported a discovered prompt or resource as local; read as discovered.
    AttributedToGateway = "attributed_to_gateway",
    Undecryptable = "undecryptable",
    Refused = "refused",
    Cancelled = "cancelled",
    Interrupted = "interrupted",
    Busy = "busy",
    StorageFull = "storage_full",
    Database = "database",
    Internal = "internal",
    BadJob = "bad_job",
    SourceSecret = "source_secret",
    SourceSecretRequired = "source_secret_required",
    SourceSecretMismatch = "source_secret_mismatch",
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.message)
    }
}

/// How many problems a refusal lists; the rest are only counted (`errors_total`), so a
/// file with millions of bad entities costs a bounded answer and bounded memory.
pub const MAX_LISTED: usize = 1_000;

/// Problems of one refusal: the first [`MAX_LISTED`] in order, and how many there were.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Problems {
    pub listed: Vec<FieldError>,
    pub total: u64,
}

impl Problems {
    /// Counts `error`, and keeps it while fewer than [`MAX_LISTED`] are kept.
    pub fn push(&mut self, error: FieldError) {
        self.total += 1;
        if self.listed.len() < MAX_LISTED {
            self.listed.push(error);
        }
    }

    /// Appends `other` (its unlisted problems are counted, not listed).
    pub fn append(&mut self, other: Problems) {
        let unlisted = other.total.saturating_sub(other.listed.len() as u64);
        other.listed.into_iter().for_each(|e| self.push(e));
        self.total += unlisted;
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// How many were found but not listed.
    pub fn unlisted(&self) -> u64 {
        self.total.saturating_sub(self.listed.len() as u64)
    }
}

impl std::ops::Deref for Problems {
    type Target = [FieldError];

    fn deref(&self) -> &[FieldError] {
        &self.listed
    }
}

impl From<Vec<FieldError>> for Problems {
    fn from(errors: Vec<FieldError>) -> Problems {
        let mut problems = Problems::default();
        errors.into_iter().for_each(|e| problems.push(e));
        problems
    }
}

impl Extend<FieldError> for Problems {
    fn extend<I: IntoIterator<Item = FieldError>>(&mut self, errors: I) {
        errors.into_iter().for_each(|e| self.push(e));
    }
}

/// Collects [`FieldError`]s, and warnings (accepted, but worth saying), below a base pointer.
#[derive(Debug, Default)]
pub struct Errors {
    pub list: Vec<FieldError>,
    pub warnings: Vec<FieldError>,
}

impl Errors {
    pub fn warn(&mut self, pointer: impl Into<String>, code: Code, message: impl Into<String>) {
        self.warnings.push(FieldError::new(pointer, code, message));
    }

    pub fn add(&mut self, pointer: impl Into<String>, code: Code, message: impl Into<String>) {
        self.list.push(FieldError::new(pointer, code, message));
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn into_result<T>(self, value: T) -> Result<T, Vec<FieldError>> {
        if self.list.is_empty() {
            Ok(value)
        } else {
            Err(self.list)
        }
    }
}

/// Escapes one reference token (`~` → `~0`, `/` → `~1`).
pub fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// `base` + `/` + escaped `token`.
pub fn join(base: &str, token: &str) -> String {
    format!("{base}/{}", escape(token))
}

/// Deserialises `value` into `T`. On failure, every type error is reported (each found
/// by removing the offending field and trying again), each with its pointer under `base`.
/// Types meant for this keep required fields `Option` and check presence in validation,
/// so a removed field never hides the rest.
pub fn parse_all<T: DeserializeOwned>(value: Value, base: &str) -> Result<T, Vec<FieldError>> {
    match parse_partial(value, base) {
        (Some(parsed), errors) if errors.is_empty() => Ok(parsed),
        (_, errors) => Err(errors),
    }
}

/// Like [`parse_all`], but also returns what parsed once the bad fields were left out,
/// so that further checks can run on the rest and report their problems too.
pub fn parse_partial<T: DeserializeOwned>(
    mut value: Value,
    base: &str,
) -> (Option<T>, Vec<FieldError>) {
    let mut errors = Vec::new();
    // Array elements removed so far, by array (original positions): later pointers into
    // the same array are shifted back to the positions the document gives.
    let mut removed: Vec<(Vec<String>, usize)> = Vec::new();
    for _ in 0..64 {
        match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(parsed) => return (Some(parsed), errors),
            Err(e) => {
                let tokens = path_tokens(e.path());
                let original = original_tokens(&tokens, &removed);
                let mut message = tidy_message(&e.inner().to_string());
                if holds_credential(&tokens) {
                    message = without_value(&message);
                }
                errors.push(FieldError {
                    pointer: original.iter().fold(base.to_owned(), |p, t| join(&p, t)),
                    code: Code::InvalidType,
                    message,
                });
                match remove_at(&mut value, &tokens) {
                    Removed::Nothing => return (None, errors),
                    Removed::Field => {}
                    Removed::Element => {
                        if let Some((index, array)) = original.split_last()
                            && let Ok(index) = index.parse()
                        {
                            removed.push((array.to_vec(), index));
                        }
                    }
                }
            }
        }
    }
    (None, errors)
}

/// The path in the document as given, for a path into it after `removed` elements went.
fn original_tokens(tokens: &[String], removed: &[(Vec<String>, usize)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    for token in tokens {
        let mut gone: Vec<usize> = removed
            .iter()
            .filter(|(array, _)| *array == out)
            .map(|(_, i)| *i)
            .collect();
        let token = match token.parse::<usize>() {
            Ok(mut index) if !gone.is_empty() => {
                gone.sort_unstable();
                for g in gone {
                    if g <= index {
                        index += 1;
                    }
                }
                index.to_string()
            }
            _ => token.clone(),
        };
        out.push(token);
    }
    out
}

fn path_tokens(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => Some(key.clone()),
            Segment::Unknown => None,
        })
        .collect()
}

/// What [`remove_at`] took out.
enum Removed {
    Nothing,
    Field,
    Element,
}

/// Removes the value at `tokens` (a field of an object, or an element of an array).
fn remove_at(value: &mut Value, tokens: &[String]) -> Removed {
    let Some((last, parents)) = tokens.split_last() else {
        return Removed::Nothing;
    };
    let mut current = value;
    for t in parents {
        current = match current {
            Value::Object(m) => match m.get_mut(t) {
                Some(v) => v,
                None => return Removed::Nothing,
            },
            Value::Array(a) => match t.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(v) => v,
                None => return Removed::Nothing,
            },
            _ => return Removed::Nothing,
        };
    }
    match current {
        Value::Object(m) => match m.shift_remove(last) {
            Some(_) => Removed::Field,
            None => Removed::Nothing,
        },
        Value::Array(a) => match last.parse::<usize>().ok().filter(|i| *i < a.len()) {
            Some(i) => {
                a.remove(i);
                Removed::Element
            }
            None => Removed::Nothing,
        },
        _ => Removed::Nothing,
    }
}

/// Fields whose values are (or hold) credentials, wherever they appear in a document.
const CREDENTIAL_FIELDS: [&str; 11] = [
    "auth",
    "auth_value",
    "auth_query_params",
    "headers",
    "password",
    "token",
    "client_secret",
    "secret",
    "source_secret",
    "rekey_secret",
    "passphrase",
];

/// True when the path runs through a credential field.
fn holds_credential(tokens: &[String]) -> bool {
    tokens
        .iter()
        .any(|t| CREDENTIAL_FIELDS.contains(&t.as_str()))
}

/// serde's message without the value it quotes (`invalid type: string "Bearer …",
/// expected …` keeps only what was wrong and what was expected): a value sent in a
/// credential field may be a secret even when it has the wrong shape.
fn without_value(message: &str) -> String {
    if message.starts_with("missing field") {
        return message.to_owned();
    }
    let what = message
        .split([':', '`', '"'])
        .next()
        .unwrap_or_default()
        .trim();
    let what = if what.is_empty() {
        "invalid value"
    } else {
        what
    };
    match message.split_once(", expected ") {
        Some((_, expected)) => format!("{what} (the value is not repeated), expected {expected}"),
        None => format!("{what} (the value is not repeated)"),
    }
}

/// serde's messages without the trailing position ("at line 1 column 5").
fn tidy_message(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "only deserialized: the test checks the error")]
    struct Sample {
        name: Option<String>,
        #[serde(default)]
        port: Option<u16>,
        #[serde(default)]
        tags: Vec<String>,
    }

    #[test]
    fn every_type_error_is_reported_with_its_pointer() {
        let errors = parse_all::<Sample>(
            json!({"name": 5, "port": "x", "tags": ["a", 7]}),
            "/entities/tools/3",
        )
        .unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/entities/tools/3/name",
                "/entities/tools/3/port",
                "/entities/tools/3/tags/1"
            ]
        );
        assert!(
            errors[0].message.contains("expected a string"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn errors_after_a_removed_array_element_keep_their_positions() {
        // Found by fuzzing (fuzz/ parse_file): each bad element used to be removed and the
        // next one reported at the shifted index, i.e. `/tags/1` twice and `/tags/2` never.
        let errors =
            parse_all::<Sample>(json!({"tags": ["a", 7, 8, "b", null], "port": "x"}), "/t")
                .unwrap_err();
        let pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/t/tags/1", "/t/tags/2", "/t/tags/4", "/t/port"]);
        let nested =
            parse_all::<Vec<Vec<String>>>(json!([[1, "a", 2], [3], ["b", 4]]), "").unwrap_err();
        let pointers: Vec<&str> = nested.iter().map(|e| e.pointer.as_str()).collect();
        assert_eq!(pointers, ["/0/0", "/0/2", "/1/0", "/2/1"]);
    }

    #[test]
    fn problems_list_the_first_thousand_and_count_all() {
        let one = |i: usize| FieldError {
            pointer: format!("/{i}"),
            code: Code::Invalid,
            message: "m".into(),
        };
        let mut problems: Problems = (0..1500).map(one).collect::<Vec<_>>().into();
        assert_eq!((problems.listed.len(), problems.total), (MAX_LISTED, 1500));
        assert_eq!(problems.unlisted(), 500);
        let mut more = Problems::default();
        more.extend((0..10).map(one));
        more.total += 5; // found, not listed
        let mut few = Problems::from(vec![one(7)]);
        few.append(more);
        assert_eq!((few.listed.len(), few.total), (11, 16));
        problems.append(few);
        assert_eq!((problems.listed.len(), problems.total), (MAX_LISTED, 1516));
        assert_eq!(problems[999].pointer, "/999");
    }

    #[test]
    fn errors_under_credential_fields_never_quote_the_value() {
        #[derive(Debug, Deserialize)]
        #[expect(dead_code, reason = "only deserialized: the test checks the error")]
        #[serde(tag = "type")]
        enum Auth {
            Bearer { token: String },
        }
        #[derive(Debug, Deserialize)]
        #[expect(dead_code, reason = "only deserialized: the test checks the error")]
        struct WithAuth {
            auth: Option<Auth>,
            headers: Option<std::collections::BTreeMap<String, String>>,
            name: Option<u8>,
        }
        let errors = parse_all::<WithAuth>(
            json!({"auth": "Bearer e1secret", "headers": {"X-Api-Key": 5}, "name": "visible"}),
            "",
        )
        .unwrap_err();
        let shown: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.pointer.as_str(), e.message.as_str()))
            .collect();
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert!(
            shown.iter().all(|(_, m)| !m.contains("e1secret")),
            "{shown:?}"
        );
        assert!(shown[0].1.contains("expected"), "{shown:?}");
        assert!(
            shown[2].1.contains("visible"),
            "other fields still say what they got: {shown:?}"
        );
        let variant = parse_all::<WithAuth>(json!({"auth": {"type": "hunter2"}}), "").unwrap_err();
        assert!(!variant[0].message.contains("hunter2"), "{variant:?}");
        assert!(variant[0].message.contains("Bearer"), "{variant:?}");
    }

    #[test]
    fn codes_travel_as_the_text_they_always_had() {
        let error = FieldError::new("/url", Code::InvalidScheme, "m");
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({"pointer": "/url", "code": "invalid_scheme", "message": "m"})
        );
        let read: FieldError = serde_json::from_value(
            json!({"pointer": "", "code": "missing_link_dropped", "message": ""}),
        )
        .unwrap();
        assert_eq!(read.code, Code::MissingLinkDropped);
        assert_eq!(read.code, "missing_link_dropped");
        assert_eq!(Code::StorageFull.to_string(), "storage_full");
    }

    #[test]
    fn a_valid_document_parses() {
        let s = parse_all::<Sample>(json!({"name": "a", "port": 80}), "").unwrap();
        assert_eq!(s.port, Some(80));
    }

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(join("/headers", "a/b~c"), "/headers/a~1b~0c");
    }
}
