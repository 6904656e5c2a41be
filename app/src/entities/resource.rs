//! Resources: content addressed by URI, text or binary.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Entity,
    common::{Tag, Timestamp, Visibility, check_name, check_tags, default_true, required},
    entity_common, entity_key,
    keys::{has_dot_dot_segment, key_field},
    limits::{self, check_bytes, check_chars, check_description, check_opt},
};
use crate::{
    model::EntityKind,
    validation::{Code, Errors, join},
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Resource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub name: Option<String>,
    pub uri: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Text content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Binary content, base64 (as MCP's `blob`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    /// Set when discovered on a peer gateway (`None`: local); see [`super::federation`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<super::Origin>,
}

impl Entity for Resource {
    const KIND: EntityKind = EntityKind::Resource;
    entity_common!();

    fn federation(&self) -> Option<&super::Origin> {
        self.federation.as_ref()
    }
    fn set_federation(&mut self, origin: Option<super::Origin>) {
        self.federation = origin;
    }
    entity_key!(uri);
    fn summary(&self) -> String {
        format!(
            "{} {}",
            self.mime_type.as_deref().unwrap_or("(no type)"),
            self.key()
        )
    }

    fn validate(&mut self, base: &str, errors: &mut Errors) {
        if let Some(name) = required(&self.name, &join(base, "name"), errors) {
            check_name(name, &join(base, "name"), errors);
        }
        let pointer = join(base, "uri");
        if let Some(uri) = key_field(&mut self.uri, &pointer, errors) {
            check_resource_uri(uri, &pointer, errors);
        }
        check_description(&self.description, base, errors);
        check_opt(
            &self.mime_type,
            limits::SHORT_TEXT,
            &join(base, "mime_type"),
            errors,
        );
        if let Some(content) = &self.content {
            check_bytes(
                content,
                limits::CONTENT_BYTES,
                &join(base, "content"),
                errors,
            );
        }
        if let Some(m) = &self.mime_type
            && !is_mime_type(m)
        {
            errors.add(
                join(base, "mime_type"),
                Code::InvalidMimeType,
                format!("`{m}` is not a MIME type such as text/plain"),
            );
        }
        if self.content.is_some() && self.blob.is_some() {
            errors.add(
                join(base, "blob"),
                Code::Conflict,
                "give either text `content` or base64 `blob`, not both",
            );
        }
        if let Some(b) = &self.blob {
            use base64::Engine;
            // A blob over the limit is not decoded: its length is the whole answer.
            if b.len() > limits::BLOB_CHARS {
                check_chars(b, limits::BLOB_CHARS, &join(base, "blob"), errors);
            } else if base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .is_err()
            {
                errors.add(
                    join(base, "blob"),
                    Code::InvalidBase64,
                    "must be standard base64",
                );
            }
        }
        check_tags(&mut self.tags, &join(base, "tags"), errors);
    }
}

/// `scheme:rest`, no spaces or control characters, no `..` segments (however encoded),
/// at most 2048.
fn check_resource_uri(uri: &str, pointer: &str, errors: &mut Errors) {
    let scheme = uri.split_once(':').map(|(s, _)| s).unwrap_or_default();
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if uri.is_empty() {
        errors.add(pointer, Code::Required, "must not be empty");
    } else if !scheme_ok {
        errors.add(
            pointer,
            Code::InvalidUri,
            "must start with a scheme such as file:, https: or db:",
        );
    } else if uri.len() > 2048
        || uri
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>\"'`\\".contains(c))
    {
        errors.add(
            pointer,
            Code::InvalidUri,
            "must be at most 2048 characters, without spaces, control characters or < > \" ' ` \\",
        );
    } else if has_dot_dot_segment(uri) {
        errors.add(
            pointer,
            Code::InvalidUri,
            "must not contain '..' segments, also when percent-encoded (%2e%2e, ..%2f)",
        );
    }
}

/// `type/subtype` with optional parameters.
pub fn is_mime_type(m: &str) -> bool {
    let essence = m.split(';').next().unwrap_or_default().trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
    };
    matches!(essence.split_once('/'), Some((t, s)) if token(t) && token(s))
}
