//! Types shared by the server and the browser.

use serde::{Deserialize, Serialize};

/// The six kinds of configuration a gateway holds, in the order the UI shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
