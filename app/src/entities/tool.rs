//! Tools: REST endpoints an MCP client can call through the gateway.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    Entity,
    auth::AuthInput,
    auth_value_blob, check_credentials,
    common::{
        AuthType, JsonObject, Tag, Timestamp, Visibility, check_schema, check_tags,
        check_tool_name, check_url, default_object_schema, default_true, required,
    },
    entity_common, entity_credentials, entity_key,
    keys::key_field,
    limits::{self, check_chars, check_json_size, check_opt},
    looks_like_blob,
};
use crate::{
    model::EntityKind,
    validation::{Code, Errors, join},
};

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum IntegrationType {
    #[default]
    #[serde(alias = "rest")]
    REST,
    #[serde(alias = "mcp")]
    MCP,
    #[serde(alias = "a2a")]
    A2A,
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum RequestType {
    #[default]
    #[serde(alias = "get")]
    Get,
    #[serde(alias = "post")]
    Post,
    #[serde(alias = "put")]
    Put,
    #[serde(alias = "delete")]
    Delete,
    #[serde(alias = "patch")]
    Patch,
    #[serde(rename = "SSE", alias = "sse")]
    Sse,
    #[serde(rename = "STREAMABLEHTTP", alias = "streamablehttp")]
    StreamableHttp,
    #[serde(rename = "STDIO", alias = "stdio")]
    Stdio,
}

/// The value ContextForge puts in place of a header it will not show.
pub const MASK: &str = "*****";

/// ContextForge's envelope for a sensitive header value:
/// `{"_mcpgateway_encrypted_header_value_v1": "<blob of {\"data\": value}>"}`.
pub const HEADER_ENVELOPE: &str = "_mcpgateway_encrypted_header_value_v1";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Tool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub name: Option<String>,
    #[serde(rename = "displayName", default)]
    pub display_name: Option<String>,
    pub url: Option<String>,
    #[serde(default)]
    pub integration_type: IntegrationType,
    #[serde(default)]
    pub request_type: RequestType,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_description: Option<String>,
    #[serde(default)]
    pub headers: Map<String, Value>,
    #[serde(default = "default_object_schema")]
    pub input_schema: JsonObject,
    #[serde(default)]
    pub output_schema: Option<JsonObject>,
    #[serde(default)]
    pub annotations: JsonObject,
    #[serde(default)]
    pub jsonpath_filter: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub rate_limit: Option<u32>,
    #[serde(default)]
    pub timeout: Option<u32>,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_type: Option<AuthType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_value: Option<String>,
    /// Set when discovered on a peer gateway (`None`: local); see [`super::federation`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<super::Origin>,
    /// Plaintext credentials on create/update; encrypted by the server, never stored or shown.
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub auth: Option<AuthInput>,
}

impl Entity for Tool {
    const KIND: EntityKind = EntityKind::Tool;
    entity_common!();
    entity_credentials!();

    fn blobs_mut(&mut self) -> Vec<(String, &mut String)> {
        let mut blobs = auth_value_blob(&mut self.auth_value);
        for (name, value) in self.headers.iter_mut() {
            if let Some(Value::String(blob)) = value.get_mut(HEADER_ENVELOPE) {
                blobs.push((join("/headers", name), blob));
            }
        }
        blobs
    }

    fn headers_mut(&mut self) -> Option<&mut Map<String, Value>> {
        Some(&mut self.headers)
    }

    fn federation(&self) -> Option<&super::Origin> {
        self.federation.as_ref()
    }
    fn set_federation(&mut self, origin: Option<super::Origin>) {
        self.federation = origin;
    }
    entity_key!(name);
    fn summary(&self) -> String {
        format!(
            "{} {}",
            serde_json::to_value(self.request_type)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            self.url.as_deref().unwrap_or_default()
        )
    }

    fn validate(&mut self, base: &str, errors: &mut Errors) {
        let pointer = join(base, "name");
        if let Some(name) = key_field(&mut self.name, &pointer, errors) {
            check_tool_name(name, &pointer, errors);
        }
        self.check_text(base, errors);
        if let Some(url) = required(&self.url, &join(base, "url"), errors) {
            check_url(
                url,
                &["http", "https", "ws", "wss"],
                &join(base, "url"),
                errors,
            );
        }
        if self.integration_type == IntegrationType::REST
            && matches!(
                self.request_type,
                RequestType::Sse | RequestType::StreamableHttp | RequestType::Stdio
            )
        {
            errors.add(
                join(base, "request_type"),
                Code::InvalidEnum,
                "a REST tool's request_type must be GET, POST, PUT, DELETE or PATCH",
            );
        }
        self.check_headers(&join(base, "headers"), errors);
        check_schema(&self.input_schema, &join(base, "input_schema"), errors);
        for (field, object) in [
            ("input_schema", Some(&self.input_schema)),
            ("output_schema", self.output_schema.as_ref()),
            ("annotations", Some(&self.annotations)),
        ] {
            if let Some(object) = object {
                check_json_size(object, &join(base, field), errors);
            }
        }
        check_tags(&mut self.tags, &join(base, "tags"), errors);
        check_credentials(
            self.auth_type,
            self.auth_value.as_deref(),
            self.auth.as_ref(),
            base,
            errors,
        );
    }
}

/// `{"_mcpgateway_encrypted_header_value_v1": "<blob>"}` and nothing else.
pub fn is_envelope(value: &Value) -> bool {
    value.as_object().is_some_and(|m| {
        m.len() == 1
            && m.get(HEADER_ENVELOPE)
                .and_then(Value::as_str)
                .is_some_and(looks_like_blob)
    })
}

impl Tool {
    /// The free-text fields' limits.
    fn check_text(&self, base: &str, errors: &mut Errors) {
        for (field, value, max) in [
            ("displayName", &self.display_name, limits::SHORT_TEXT),
            ("description", &self.description, limits::DESCRIPTION),
            (
                "original_description",
                &self.original_description,
                limits::DESCRIPTION,
            ),
            (
                "jsonpath_filter",
                &self.jsonpath_filter,
                limits::JSONPATH_FILTER,
            ),
        ] {
            check_opt(value, max, &join(base, field), errors);
        }
    }

    /// Plain headers: string values; ContextForge's `*****` masks mean "no value given"
    /// and are dropped with a warning rather than stored.
    fn check_headers(&mut self, pointer: &str, errors: &mut Errors) {
        let masked: Vec<String> = self
            .headers
            .iter()
            .filter(|(_, v)| v.as_str() == Some(MASK))
            .map(|(k, _)| k.clone())
            .collect();
        for name in masked {
            self.headers.shift_remove(&name);
            errors.warn(
                join(pointer, &name),
                Code::MaskedValue,
                format!("header `{name}` holds the mask \"{MASK}\", not a value: left out"),
            );
        }
        for (name, value) in &self.headers {
            if let Some(text) = value.as_str() {
                check_chars(text, limits::HEADER_VALUE, &join(pointer, name), errors);
            }
            if !value.is_string() && !is_envelope(value) {
                errors.add(
                    join(pointer, name),
                    Code::InvalidType,
                    format!("must be a string, or an encrypted envelope {{\"{HEADER_ENVELOPE}\": \"<blob>\"}}"),
                );
            }
            if !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                || name.is_empty()
                || name.len() > limits::HEADER_NAME
            {
                errors.add(
                    join(pointer, name),
                    Code::InvalidName,
                    format!(
                        "header names are 1-{} letters, digits, '-' and '_'",
                        limits::HEADER_NAME
                    ),
                );
            }
        }
    }
}
