//! The first, quick pass over a file: every entity's key and name and every server's
//! links, read leniently (a field of the wrong type is simply absent), nothing validated.
//!
//! It tells the validating pass which keys the file gives twice (only those are
//! compared), which keys the file holds (so a server's references are known), and the
//! import what a selection keeps and how many entities it will apply, before any entity
//! is applied.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer};
use serde_json::{Value, value::RawValue};

use super::walk::{List, Walker, offset_after, walk};
use crate::model::EntityKind;

/// One entity as the skim saw it.
#[derive(Clone, Debug, Default)]
pub struct SkimEntry {
    /// The name, or the URI for resources and roots; `None` when the file gives none.
    pub key: Option<String>,
    /// The display name of a resource or root (for the others the key is the name).
    pub name: Option<String>,
    /// A server's references by type (as the file writes them).
    pub links: Vec<(EntityKind, Vec<String>)>,
}

/// What the skim learnt of one type's list.
#[derive(Clone, Debug, Default)]
pub struct KindSkim {
    /// Every entity of the list, in file order.
    pub entries: Vec<SkimEntry>,
    /// How often each key occurs.
    counts: HashMap<String, u32>,
}

/// What the skim learnt of a file (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct Skim {
    kinds: [KindSkim; 6],
}

impl Skim {
    pub fn of(&self, kind: EntityKind) -> &KindSkim {
        &self.kinds[slot(kind)]
    }

    /// How many entities of `kind` have this key.
    pub fn count(&self, kind: EntityKind, key: &str) -> u32 {
        self.of(kind).counts.get(key).copied().unwrap_or(0)
    }

    pub fn contains(&self, kind: EntityKind, key: &str) -> bool {
        self.count(kind, key) > 0
    }

    /// The distinct keys of `kind`.
    pub fn keys(&self, kind: EntityKind) -> impl Iterator<Item = &str> {
        self.of(kind).counts.keys().map(String::as_str)
    }

    /// Distinct keys over all types: the entities an import of the whole file applies.
    pub fn total(&self) -> usize {
        self.kinds.iter().map(|k| k.counts.len()).sum()
    }
}

impl SkimEntry {
    /// The name lists and `--include` match: a resource's or root's name, else the key.
    pub fn name(&self) -> &str {
        self.name
            .as_deref()
            .or(self.key.as_deref())
            .unwrap_or_default()
    }
}

fn slot(kind: EntityKind) -> usize {
    EntityKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or_default()
}

/// Skims `bytes`; `read_to` is told how far it has read (about every MiB). A file
/// that is not valid JSON gives what was read before the error.
pub fn skim(bytes: &[u8], read_to: &mut dyn FnMut(usize)) -> Skim {
    let bytes = super::read::without_bom(bytes);
    let mut skimmer = Skimmer {
        bytes,
        skim: Skim::default(),
        read_to,
        reported: 0,
    };
    let _ = walk(bytes, &mut skimmer);
    (skimmer.read_to)(bytes.len());
    skimmer.skim
}

struct Skimmer<'a> {
    bytes: &'a [u8],
    skim: Skim,
    read_to: &'a mut dyn FnMut(usize),
    reported: usize,
}

/// The offset at which [`Skimmer`] and the reader tell how far they have read.
pub(crate) const REPORT_EVERY: usize = 1 << 20;

impl<'de> Walker<'de> for Skimmer<'_> {
    fn item(&mut self, list: List, _index: usize, raw: &'de RawValue) {
        // A member given twice fails the derive; as a `Value` the last one counts, as
        // it does for the validating parse of such an entity.
        let entry = serde_json::from_str::<Lenient>(raw.get())
            .or_else(|_| serde_json::from_value(serde_json::from_str(raw.get())?))
            .map(|l| l.entry(list.kind))
            .unwrap_or_default();
        let kind = &mut self.skim.kinds[slot(list.kind)];
        if let Some(key) = &entry.key {
            *kind.counts.entry(key.clone()).or_default() += 1;
        }
        kind.entries.push(entry);
        let offset = offset_after(self.bytes, raw);
        if offset >= self.reported + REPORT_EVERY {
            self.reported = offset;
            (self.read_to)(offset);
        }
    }
}

/// The fields the skim reads, each of any JSON type (the wrong type reads as absent).
#[derive(Deserialize)]
struct Lenient {
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    uri: Option<String>,
    #[serde(default, alias = "associated_tools", deserialize_with = "lenient")]
    tool_ids: Option<Vec<String>>,
    #[serde(default, alias = "associated_prompts", deserialize_with = "lenient")]
    prompt_ids: Option<Vec<String>>,
    #[serde(default, alias = "associated_resources", deserialize_with = "lenient")]
    resource_ids: Option<Vec<String>>,
}

fn lenient<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let value = Value::deserialize(d)?;
    Ok(serde_json::from_value(value).ok())
}

impl Lenient {
    fn entry(self, kind: EntityKind) -> SkimEntry {
        let by_uri = matches!(kind, EntityKind::Resource | EntityKind::Root);
        let (key, name) = if by_uri {
            (self.uri, self.name)
        } else {
            (self.name, None)
        };
        let links = if kind == EntityKind::Server {
            vec![
                (EntityKind::Tool, self.tool_ids.unwrap_or_default()),
                (EntityKind::Prompt, self.prompt_ids.unwrap_or_default()),
                (EntityKind::Resource, self.resource_ids.unwrap_or_default()),
            ]
        } else {
            Vec::new()
        };
        SkimEntry { key, name, links }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skim_counts_keys_and_reads_links_leniently() {
        let bytes = br#"{"entities": {
            "tools": [{"name": "a", "url": 5}, {"name": "a"}, {"name": 7}, 3],
            "servers": [{"name": "s", "associated_tools": ["a", "b"], "prompt_ids": "x"}],
            "roots": [{"uri": "file:///r", "name": "R"}]
        }, "version": "1"}"#;
        let skim = skim(bytes, &mut |_| {});
        assert_eq!(skim.count(EntityKind::Tool, "a"), 2);
        assert_eq!(skim.of(EntityKind::Tool).entries.len(), 4);
        let server = &skim.of(EntityKind::Server).entries[0];
        assert_eq!(
            server.links[0],
            (EntityKind::Tool, vec!["a".into(), "b".into()])
        );
        assert!(server.links[1].1.is_empty(), "a string is no list: absent");
        assert_eq!(skim.of(EntityKind::Root).entries[0].name(), "R");
        assert!(skim.contains(EntityKind::Root, "file:///r"));
        assert_eq!(skim.total(), 3);
    }

    #[test]
    fn a_broken_file_skims_what_came_before_the_break() {
        let skim = skim(
            br#"{"entities": {"tools": [{"name": "a"}, {"name": "#,
            &mut |_| {},
        );
        assert!(skim.contains(EntityKind::Tool, "a"));
    }
}
