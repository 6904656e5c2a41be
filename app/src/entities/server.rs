//! Virtual servers: a named composition of tools, prompts and resources.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    Entity,
    common::{JsonObject, Tag, Timestamp, Visibility, check_tags, default_true},
    entity_common, entity_key,
    keys::{name_key, normalise_key},
    limits::{self, check_description, check_json_size, check_opt},
};
use crate::{
    model::EntityKind,
    validation::{Code, Errors, join},
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Server {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub icon: Option<String>,
    /// The tools it offers, by tool name (as ContextForge's full export writes them).
    #[serde(default, alias = "associated_tools")]
    pub tool_ids: Vec<String>,
    /// The prompts it offers, by name.
    #[serde(default, alias = "associated_prompts")]
    pub prompt_ids: Vec<String>,
    /// The resources it offers, by URI.
    #[serde(default, alias = "associated_resources")]
    pub resource_ids: Vec<String>,
    #[serde(default)]
    pub capabilities: JsonObject,
    /// Where the gateway that wrote the file serves this server over MCP Streamable HTTP,
    /// relative to its public URL (`/servers/{id}/mcp`). Derived, as ContextForge's
    /// `sse_endpoint` and `jsonrpc_endpoint` are: an export writes it, a read ignores
    /// whatever a file holds there (an id names a record of the gateway that wrote it).
    #[serde(
        default,
        deserialize_with = "derived",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("readOnly" = true))]
    pub mcp_endpoint: Option<String>,
    /// Where it serves the legacy HTTP+SSE transport (`/servers/{id}/sse`), as
    /// ContextForge writes it; derived like `mcp_endpoint`.
    #[serde(
        default,
        deserialize_with = "derived",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(extend("readOnly" = true))]
    pub sse_endpoint: Option<String>,
    #[serde(default = "default_true")]
    pub is_active: bool,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default)]
    pub created_at: Option<Timestamp>,
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
}

/// Reads and drops a derived field's value, whatever its type.
fn derived<'de, D: serde::Deserializer<'de>>(input: D) -> Result<Option<String>, D::Error> {
    serde::de::IgnoredAny::deserialize(input).map(|_| None)
}

impl Entity for Server {
    const KIND: EntityKind = EntityKind::Server;
    entity_common!();

    entity_key!(name);
    fn summary(&self) -> String {
        format!(
            "{} tools, {} prompts, {} resources",
            self.tool_ids.len(),
            self.prompt_ids.len(),
            self.resource_ids.len()
        )
    }

    fn links(&self) -> Vec<(EntityKind, &[String])> {
        vec![
            (EntityKind::Tool, &self.tool_ids),
            (EntityKind::Prompt, &self.prompt_ids),
            (EntityKind::Resource, &self.resource_ids),
        ]
    }
    fn take_links(&mut self) -> Vec<(EntityKind, Vec<String>)> {
        vec![
            (EntityKind::Tool, std::mem::take(&mut self.tool_ids)),
            (EntityKind::Prompt, std::mem::take(&mut self.prompt_ids)),
            (EntityKind::Resource, std::mem::take(&mut self.resource_ids)),
        ]
    }
    fn set_links(&mut self, kind: EntityKind, keys: Vec<String>) {
        match kind {
            EntityKind::Tool => self.tool_ids = keys,
            EntityKind::Prompt => self.prompt_ids = keys,
            EntityKind::Resource => self.resource_ids = keys,
            _ => {}
        }
    }

    fn validate(&mut self, base: &str, errors: &mut Errors) {
        name_key(&mut self.name, base, errors);
        check_description(&self.description, base, errors);
        check_opt(&self.icon, limits::ICON, &join(base, "icon"), errors);
        check_json_size(&self.capabilities, &join(base, "capabilities"), errors);
        for (field, list) in [
            ("tool_ids", &mut self.tool_ids),
            ("prompt_ids", &mut self.prompt_ids),
            ("resource_ids", &mut self.resource_ids),
        ] {
            for (i, r) in list.iter_mut().enumerate() {
                // References name keys in their normal form, as the keys are stored.
                if let std::borrow::Cow::Owned(normal) = normalise_key(r) {
                    *r = normal;
                }
                if r.is_empty() {
                    errors.add(
                        join(&join(base, field), &i.to_string()),
                        Code::Required,
                        "must not be empty",
                    );
                }
            }
            let mut seen = std::collections::HashSet::new();
            list.retain(|r| seen.insert(r.clone()));
        }
        check_tags(&mut self.tags, &join(base, "tags"), errors);
    }
}
