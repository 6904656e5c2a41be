//! Federation: tools, prompts and resources discovered on a peer gateway.
//!
//! They live in the same tables as local ones (so virtual servers link them like local
//! tools and every MCP list shows them) and carry their [`Origin`]; the peer owns them:
//! only `is_active` can be changed here.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

/// Where a discovered tool, prompt or resource came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Origin {
    /// The peer gateway's id in this store.
    pub gateway_id: Uuid,
    /// The gateway's name (shown; export links use the federated name, not this).
    pub gateway: String,
    /// The name (resources: the URI) the item has on the peer; what a forwarded call sends.
    /// Empty for a placeholder not discovered yet (an imported server's link to a
    /// federated name): a slug does not give back the name it was made from, so the
    /// peer's name is unknown until discovery, and the placeholder stays inactive.
    pub remote_name: String,
}

impl Origin {
    /// True for a placeholder that discovery has not filled yet (see `remote_name`).
    pub fn is_placeholder(&self) -> bool {
        self.remote_name.is_empty()
    }

    /// "discovered from gateway `x`; change it on the peer": why a field of a federated
    /// entity cannot be set here.
    pub fn refusal(&self) -> String {
        format!(
            "discovered from gateway `{}`; change it on the peer",
            self.gateway
        )
    }
}

/// ContextForge's separator between the gateway's slug and the item's
/// (`GATEWAY_TOOL_NAME_SEPARATOR`, default `-`).
pub const SEPARATOR: &str = "-";

/// ContextForge's federated name: `<slugify(gateway name)><sep><slugify(remote name)>`, sep `-`
/// (ContextForge's GATEWAY_TOOL_NAME_SEPARATOR default). Tools and prompts; resources keep their URI.
pub fn federated_name(gateway: &str, remote: &str) -> String {
    format!("{}{SEPARATOR}{}", slugify(gateway), slugify(remote))
}

/// ContextForge's `slugify` (`mcpgateway/utils/create_slug.py`): lower case, apostrophes
/// inside words dropped, runs of anything but letters and digits (`_` included) made one
/// `-`, ends stripped of `-`, then `æ ß ø` spelled out and the rest folded to ASCII (NFKD,
/// non-ASCII dropped).
pub fn slugify(text: &str) -> String {
    let lower: Vec<char> = text.to_lowercase().chars().collect();
    let mut slug = String::with_capacity(lower.len());
    let mut gap = false;
    for (i, &c) in lower.iter().enumerate() {
        let word = |j: Option<usize>| {
            j.and_then(|j| lower.get(j))
                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        };
        if matches!(c, '\'' | '\u{2019}') && word(i.checked_sub(1)) && word(Some(i + 1)) {
            continue;
        }
        if c.is_alphanumeric() {
            if gap && !slug.is_empty() {
                slug.push('-');
            }
            gap = false;
            slug.push(c);
        } else {
            gap = true;
        }
    }
    slug.replace('æ', "ae")
        .replace('ß', "ss")
        .replace('ø', "o")
        .nfkd()
        .filter(char::is_ascii)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_contextforge() {
        for (text, slug) in [
            ("Hello World", "hello-world"),
            ("Test-Case_123", "test-case-123"),
            ("Café & Restaurant", "cafe-restaurant"),
            ("user@example.com", "user-example-com"),
            ("Don't Stop", "dont-stop"),
            ("", ""),
            ("   ", ""),
            ("---test---", "test"),
            ("Multiple   Spaces", "multiple-spaces"),
            ("Naïve résumé", "naive-resume"),
            ("straße", "strasse"),
        ] {
            assert_eq!(slugify(text), slug, "{text}");
        }
        assert_eq!(
            federated_name("seed-gw-alpha", "greet"),
            "seed-gw-alpha-greet"
        );
        assert_eq!(
            federated_name("Alpha GW", "get_weather"),
            "alpha-gw-get-weather"
        );
    }
}
