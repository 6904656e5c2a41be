//! Which entities an export (or a selective import) takes: types, tags, `--include`
//! names and globs, and the dependency closure.

use app::model::EntityKind;
use globset::{Glob, GlobMatcher};

/// `--include "tool:weather_api,server:ai-*,root:workspace"`: per type, names or globs.
#[derive(Clone, Debug, Default)]
pub struct Include(Vec<(EntityKind, String, GlobMatcher)>);

/// How `--include` is written, shown with every malformed spec.
pub const INCLUDE_SYNTAX: &str = "write type:pattern[,type:pattern…] with commas between items, e.g. tool:weather_api,server:ai-* (types: tool, gateway, server, prompt, resource, root)";

impl Include {
    /// Parses `type:pattern` items separated by commas (types singular or plural). A
    /// malformed item (no type, an empty pattern, `;` between items) is refused with the
    /// syntax: it would otherwise select nothing without a word.
    pub fn parse(spec: &str) -> Result<Include, String> {
        let mut items = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = |why: &str| format!("`{item}`: {why}; {INCLUDE_SYNTAX}");
            let (kind, pattern) = item
                .split_once(':')
                .ok_or_else(|| bad("no type before the pattern"))?;
            let kind = EntityKind::parse(kind.trim())
                .ok_or_else(|| bad(&format!("`{kind}` is not an entity type")))?;
            let pattern = pattern.trim();
            if pattern.is_empty() {
                return Err(bad("the pattern is empty"));
            }
            if pattern.contains(';') {
                return Err(bad("items are separated by commas, not `;`"));
            }
            let glob = Glob::new(pattern).map_err(|e| bad(&e.to_string()))?;
            items.push((kind, pattern.to_owned(), glob.compile_matcher()));
        }
        if items.is_empty() {
            return Err(format!("--include names no entity; {INCLUDE_SYNTAX}"));
        }
        Ok(Include(items))
    }

    /// The items (as `type:pattern`) that match none of `entities` (type, key, name).
    pub fn unmatched<'a>(
        &self,
        entities: impl Iterator<Item = (EntityKind, &'a str, &'a str)>,
    ) -> Vec<String> {
        let mut hit = vec![false; self.0.len()];
        for (kind, key, name) in entities {
            for (i, (k, _, glob)) in self.0.iter().enumerate() {
                hit[i] |= *k == kind && (glob.is_match(key) || glob.is_match(name));
            }
        }
        self.describe()
            .into_iter()
            .zip(hit)
            .filter(|(_, hit)| !hit)
            .map(|(item, _)| item)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when an item of `kind` names `key` or `name`.
    pub fn matches(&self, kind: EntityKind, key: &str, name: &str) -> bool {
        self.0
            .iter()
            .any(|(k, _, glob)| *k == kind && (glob.is_match(key) || glob.is_match(name)))
    }

    pub fn mentions(&self, kind: EntityKind) -> bool {
        self.0.iter().any(|(k, _, _)| *k == kind)
    }

    /// The spec as given, for the file's metadata.
    pub fn describe(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(k, p, _)| format!("{}:{p}", k.singular()))
            .collect()
    }
}

pub use app::wire::{parse_kind, parse_types};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_reads_names_and_globs_per_type() {
        let include = Include::parse("tool:weather_api, server:ai-*,roots:workspace").unwrap();
        assert!(include.matches(EntityKind::Tool, "weather_api", "weather_api"));
        assert!(!include.matches(EntityKind::Tool, "weather", "weather"));
        assert!(include.matches(EntityKind::Server, "ai-assistant", "ai-assistant"));
        assert!(include.matches(EntityKind::Root, "file:///w", "workspace"));
        assert!(!include.mentions(EntityKind::Prompt));
        assert!(Include::parse("widget:x").is_err());
        assert!(Include::parse("weather_api").is_err());
    }

    #[test]
    fn a_malformed_include_is_refused_with_the_syntax() {
        for spec in [
            "tool:weather_api;server:ai-server",
            "tool:",
            "tool: ,",
            ":x",
        ] {
            let e = Include::parse(spec).unwrap_err();
            assert!(e.contains("type:pattern"), "{spec}: {e}");
        }
        let include = Include::parse("tool:a*,server:nosuch").unwrap();
        let found = [
            (EntityKind::Tool, "abc", "abc"),
            (EntityKind::Server, "s", "s"),
        ];
        assert_eq!(include.unmatched(found.into_iter()), ["server:nosuch"]);
    }

    #[test]
    fn types_read_singular_and_plural_once_each() {
        assert_eq!(
            parse_types("tool, servers,tools").unwrap(),
            [EntityKind::Tool, EntityKind::Server]
        );
        assert!(parse_types("metrics").is_err());
    }
}
