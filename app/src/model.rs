//! Types shared by the server and the browser.

use serde::{Deserialize, Serialize};

/// The six kinds of configuration a gateway holds, in the order the UI shows them.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Tool,
    Gateway,
    Server,
    Prompt,
    Resource,
    Root,
}

impl EntityKind {
    pub const ALL: [EntityKind; 6] = [
        EntityKind::Tool,
        EntityKind::Gateway,
        EntityKind::Server,
        EntityKind::Prompt,
        EntityKind::Resource,
        EntityKind::Root,
    ];

    /// The plural, lower-case name used in URLs and export files (`tools`).
    pub fn plural(self) -> &'static str {
        match self {
            EntityKind::Tool => "tools",
            EntityKind::Gateway => "gateways",
            EntityKind::Server => "servers",
            EntityKind::Prompt => "prompts",
            EntityKind::Resource => "resources",
            EntityKind::Root => "roots",
        }
    }

    /// The singular, lower-case name (`tool`).
    pub fn singular(self) -> &'static str {
        self.plural().trim_end_matches('s')
    }

    /// The title shown on a tab (`Tools`).
    pub fn title(self) -> &'static str {
        match self {
            EntityKind::Tool => "Tools",
            EntityKind::Gateway => "Gateways",
            EntityKind::Server => "Servers",
            EntityKind::Prompt => "Prompts",
            EntityKind::Resource => "Resources",
            EntityKind::Root => "Roots",
        }
    }

    /// The field of a server that lists entities of this kind (`tool_ids`).
    pub fn link_field(self) -> &'static str {
        match self {
            EntityKind::Tool => "tool_ids",
            EntityKind::Prompt => "prompt_ids",
            _ => "resource_ids",
        }
    }

    /// Parses a plural (`tools`) or singular (`tool`) name.
    pub fn parse(name: &str) -> Option<EntityKind> {
        let name = name.trim().to_ascii_lowercase();
        EntityKind::ALL
            .into_iter()
            .find(|k| k.plural() == name || k.plural().trim_end_matches('s') == name)
    }
}

/// Who is signed in, as the UI may see it (never a password or a token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionUser {
    pub email: String,
}

/// What the dashboard shows about the gateway itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayStatus {
    pub version: String,
    /// `sqlite` or `postgres`.
    pub database: String,
    pub users: i64,
    pub active_api_tokens: i64,
    /// How many entities of each type the gateway holds, in [`EntityKind::ALL`] order.
    pub counts: Vec<(EntityKind, i64)>,
}

/// Filters of an entity list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListFilter {
    pub search: Option<String>,
    pub tag: Option<String>,
    pub include_inactive: bool,
}

/// One row of an entity table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityRow {
    pub id: uuid::Uuid,
    pub kind: EntityKind,
    /// The unique key (name, or URI for resources and roots).
    pub key: String,
    pub name: String,
    pub summary: String,
    pub tags: Vec<String>,
    pub is_active: bool,
    /// The credential's type when one is set (never the credential).
    pub auth_type: Option<crate::entities::AuthType>,
    /// A peer gateway's health (gateways only).
    #[serde(default)]
    pub health: Option<crate::federation::GatewayHealth>,
}

/// One entity in full (as the API shows it, without secrets) and its dependencies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntityDetail {
    pub row: EntityRow,
    /// The entity's fields as pretty JSON, `auth_value` replaced by `auth_set`.
    pub json: String,
    /// What it uses: for servers, their tools, prompts and resources by key.
    pub uses: Vec<(EntityKind, Vec<String>)>,
    /// The servers that use it (for tools, prompts, resources).
    pub used_by: Vec<String>,
    /// A tool's input schema, for its Test dialog's form (`None` for other kinds).
    pub input_schema: Option<serde_json::Value>,
    /// `MCPGATEWAY_PUBLIC_ORIGIN` when set: the origin MCP URLs are shown under (else the
    /// browser's own).
    pub public_origin: Option<String>,
}

/// What a tool's Test call came to, through the same call path MCP clients use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToolTest {
    /// The upstream was called (or refused by the outbound guard): its result.
    Called {
        text: String,
        /// Structured content, as pretty JSON, when the answer had any.
        structured: Option<String>,
        is_error: bool,
    },
    /// The arguments do not match the input schema: every problem; the upstream was not called.
    Invalid(Vec<crate::validation::FieldError>),
    /// This gateway cannot call this tool (its integration type).
    NotCallable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_kind_parses_plural_and_singular_names() {
        for kind in EntityKind::ALL {
            assert_eq!(EntityKind::parse(kind.plural()), Some(kind));
            assert_eq!(
                EntityKind::parse(kind.plural().trim_end_matches('s')),
                Some(kind)
            );
        }
        assert_eq!(EntityKind::parse(" Tools "), Some(EntityKind::Tool));
        assert_eq!(EntityKind::parse("widgets"), None);
    }
}
