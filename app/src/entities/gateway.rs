//! Gateways: peer MCP servers this gateway federates.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{
    Entity,
    auth::AuthInput,
    auth_value_blob, check_credentials,
    common::{
        AuthType, JsonObject, Tag, Timestamp, Visibility, check_tags, check_url, default_true,
        required,
    },
    entity_common, entity_credentials, entity_key,
    keys::name_key,
    limits::{self, check_description, check_json_size},
    looks_like_blob,
};
use crate::{
    model::EntityKind,
    validation::{Code, Errors, join},
};

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum Transport {
    #[default]
    #[serde(rename = "SSE", alias = "sse", alias = "Sse")]
    Sse,
    #[serde(
        rename = "STREAMABLEHTTP",
        alias = "streamablehttp",
        alias = "StreamableHttp",
        alias = "streamable-http",
        alias = "STREAMABLE_HTTP"
    )]
    StreamableHttp,
}

/// How the gateway checks the peer's health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HealthCheck {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default = "default_interval")]
    pub interval: u32,
    #[serde(default = "default_timeout")]
    pub timeout: u32,
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_interval() -> u32 {
    30
}
fn default_timeout() -> u32 {
    10
}
fn default_retries() -> u32 {
    3
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Gateway {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub name: Option<String>,
    pub url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub transport: Transport,
    #[serde(default)]
    pub capabilities: JsonObject,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub passthrough_headers: Vec<String>,
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
    /// ContextForge's per-parameter blobs for `query_param` auth (read on import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_query_params: Option<Map<String, Value>>,
    #[serde(default, skip_serializing)]
    #[schemars(skip)]
    pub auth: Option<AuthInput>,
}

impl Entity for Gateway {
    const KIND: EntityKind = EntityKind::Gateway;
    entity_common!();
    entity_credentials!();

    fn blobs_mut(&mut self) -> Vec<(String, &mut String)> {
        let mut blobs = auth_value_blob(&mut self.auth_value);
        for (param, value) in self.auth_query_params.iter_mut().flatten() {
            if let Value::String(blob) = value {
                blobs.push((join("/auth_query_params", param), blob));
            }
        }
        blobs
    }

    entity_key!(name);
    fn summary(&self) -> String {
        let transport = if self.transport == Transport::Sse {
            "SSE"
        } else {
            "STREAMABLEHTTP"
        };
        format!("{transport} {}", self.url.as_deref().unwrap_or_default())
    }

    fn validate(&mut self, base: &str, errors: &mut Errors) {
        name_key(&mut self.name, base, errors);
        check_description(&self.description, base, errors);
        check_json_size(&self.capabilities, &join(base, "capabilities"), errors);
        if let Some(url) = required(&self.url, &join(base, "url"), errors) {
            check_url(
                url,
                &["http", "https", "ws", "wss"],
                &join(base, "url"),
                errors,
            );
        }
        if let Some(hc) = &self.health_check {
            if let Some(url) = &hc.url {
                check_url(
                    url,
                    &["http", "https"],
                    &join(&join(base, "health_check"), "url"),
                    errors,
                );
            }
            if hc.interval == 0 || hc.timeout == 0 {
                errors.add(
                    join(base, "health_check"),
                    Code::Invalid,
                    "interval and timeout must be at least 1 second",
                );
            }
        }
        for (i, h) in self.passthrough_headers.iter().enumerate() {
            if h.is_empty()
                || h.len() > limits::HEADER_NAME
                || !h
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                errors.add(
                    join(&join(base, "passthrough_headers"), &i.to_string()),
                    Code::InvalidName,
                    format!(
                        "header names are 1-{} letters, digits, '-' and '_'",
                        limits::HEADER_NAME
                    ),
                );
            }
        }
        check_tags(&mut self.tags, &join(base, "tags"), errors);
        for (param, value) in self.auth_query_params.iter().flatten() {
            if !value.as_str().is_some_and(looks_like_blob) {
                errors.add(
                    join(&join(base, "auth_query_params"), param),
                    Code::InvalidCiphertext,
                    "must be an encrypted value (URL-safe base64 of nonce, ciphertext and tag)",
                );
            }
        }
        check_credentials(
            self.auth_type,
            self.auth_value.as_deref(),
            self.auth.as_ref(),
            base,
            errors,
        );
    }
}
