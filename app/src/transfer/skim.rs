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

use super::walk::{List, Walker, span, walk};
use crate::{
    entities::keys::{fold_key, normalise_key},
    model::EntityKind,
};

/// A server as the skim saw it: its key and its references by type.
#[derive(Clone, Debug, Default)]
pub struct SkimServer {
    pub key: Box<str>,
    pub links: Vec<(EntityKind, Vec<String>)>,
}

/// What the skim learnt of one type's list; each key is held once, in its normal form
/// (trimmed, NFC), as validation leaves it.
#[derive(Clone, Debug, Default)]
struct KindSkim {
    /// How often each key occurs.
    counts: HashMap<Box<str>, u32>,
    /// How often each folded key occurs (see [`fold_key`]), for the keys that fold to
    /// another text (`Greeting`): `greeting` and `Greeting` are one key twice.
    folded: HashMap<Box<str>, u32>,
    /// A resource's or root's display name, by key.
    names: HashMap<Box<str>, Box<str>>,
}

/// What the skim learnt of a file (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct Skim {
    kinds: [KindSkim; 6],
    /// Every server with a key, in file order.
    servers: Vec<SkimServer>,
    /// Every gateway's key, in file order (ContextForge's discovered prompts are
    /// attributed to gateways by position: see `super::discovered`).
    gateways: Vec<Box<str>>,
}

impl Skim {
    fn of(&self, kind: EntityKind) -> &KindSkim {
        &self.kinds[slot(kind)]
    }

    /// How many entities of `kind` have this key, or one that folds to the same
    /// (differs only in case, for names).
    pub fn count(&self, kind: EntityKind, key: &str) -> u32 {
        let skim = self.of(kind);
        let fold = fold_key(kind, key);
        skim.counts.get(&*fold).copied().unwrap_or(0)
            + skim.folded.get(&*fold).copied().unwrap_or(0)
    }

    /// True when an entity of `kind` has exactly this key (in its normal form).
    pub fn contains(&self, kind: EntityKind, key: &str) -> bool {
        self.of(kind).counts.contains_key(&*normalise_key(key))
    }

    /// The distinct keys of `kind`.
    pub fn keys(&self, kind: EntityKind) -> impl Iterator<Item = &str> {
        self.of(kind).counts.keys().map(|k| &**k)
    }

    /// The name lists and `--include` match: a resource's or root's name, else the key.
    pub fn name<'a>(&'a self, kind: EntityKind, key: &'a str) -> &'a str {
        self.of(kind).names.get(key).map_or(key, |n| &**n)
    }

    pub fn servers(&self) -> &[SkimServer] {
        &self.servers
    }

    /// The gateways' keys in file order.
    pub fn gateways(&self) -> &[Box<str>] {
        &self.gateways
    }

    /// Distinct keys over all types: the entities an import of the whole file applies.
    pub fn total(&self) -> usize {
        self.kinds.iter().map(|k| k.counts.len()).sum()
    }
}

fn slot(kind: EntityKind) -> usize {
    EntityKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap_or_default()
}

/// Skims the file's `text` (see [`file_text`](super::file_text)); `read_to` is told how
/// far it has read (about every MiB). A file that is not valid JSON gives what was read
/// before the error.
pub fn skim(text: &str, read_to: &mut dyn FnMut(usize)) -> Skim {
    let mut skimmer = Skimmer {
        text,
        skim: Skim::default(),
        read_to,
        reported: 0,
    };
    let _ = walk(text, &mut skimmer);
    (skimmer.read_to)(text.len());
    skimmer.skim
}

struct Skimmer<'a> {
    text: &'a str,
    skim: Skim,
    read_to: &'a mut dyn FnMut(usize),
    reported: usize,
}

impl Skimmer<'_> {
    fn add(&mut self, kind: EntityKind, entity: Lenient) {
        let by_uri = matches!(kind, EntityKind::Resource | EntityKind::Root);
        let (key, name) = if by_uri {
            (entity.uri, entity.name)
        } else {
            (entity.name, None)
        };
        let Some(key) = key.map(normal) else {
            return;
        };
        let skim = &mut self.skim.kinds[slot(kind)];
        bump(&mut skim.counts, &key);
        if let std::borrow::Cow::Owned(fold) = fold_key(kind, &key) {
            bump(&mut skim.folded, &fold);
        }
        if let Some(name) = name {
            skim.names.insert(key.clone(), name.into_boxed_str());
        }
        if kind == EntityKind::Gateway {
            self.skim.gateways.push(key.clone());
        }
        if kind == EntityKind::Server {
            let keys = |list: Option<Vec<String>>| -> Vec<String> {
                list.unwrap_or_default()
                    .into_iter()
                    .map(|k| normal(k).into())
                    .collect()
            };
            let links = vec![
                (EntityKind::Tool, keys(entity.tool_ids)),
                (EntityKind::Prompt, keys(entity.prompt_ids)),
                (EntityKind::Resource, keys(entity.resource_ids)),
            ];
            self.skim.servers.push(SkimServer { key, links });
        }
    }
}

/// A key in the normal form validation gives it.
fn normal(key: String) -> Box<str> {
    match normalise_key(&key) {
        std::borrow::Cow::Borrowed(_) => key.into_boxed_str(),
        std::borrow::Cow::Owned(normal) => normal.into_boxed_str(),
    }
}

fn bump(counts: &mut HashMap<Box<str>, u32>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.into(), 1);
        }
    }
}

/// The offset at which [`Skimmer`] and the reader tell how far they have read.
pub(crate) const REPORT_EVERY: usize = 1 << 20;

impl<'de> Walker<'de> for Skimmer<'_> {
    fn item(&mut self, list: List, _index: usize, raw: &'de RawValue) {
        // A member given twice fails the derive; as a `Value` the last one counts, as
        // it does for the validating parse of such an entity.
        let lenient = serde_json::from_str::<Lenient>(raw.get())
            .or_else(|_| serde_json::from_value(serde_json::from_str(raw.get())?));
        if let Ok(lenient) = lenient {
            self.add(list.kind, lenient);
        }
        let offset = span(self.text, raw).end;
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
        let skim = skim(std::str::from_utf8(bytes).unwrap(), &mut |_| {});
        assert_eq!(skim.count(EntityKind::Tool, "a"), 2);
        assert_eq!(
            skim.keys(EntityKind::Tool).count(),
            1,
            "7 and 3 have no key"
        );
        let server = &skim.servers()[0];
        assert_eq!(
            server.links[0],
            (EntityKind::Tool, vec!["a".into(), "b".into()])
        );
        assert!(server.links[1].1.is_empty(), "a string is no list: absent");
        assert_eq!(skim.name(EntityKind::Root, "file:///r"), "R");
        assert_eq!(skim.name(EntityKind::Tool, "a"), "a");
        assert!(skim.contains(EntityKind::Root, "file:///r"));
        assert_eq!(skim.total(), 3);
    }

    #[test]
    fn a_broken_file_skims_what_came_before_the_break() {
        let skim = skim(
            r#"{"entities": {"tools": [{"name": "a"}, {"name": "#,
            &mut |_| {},
        );
        assert!(skim.contains(EntityKind::Tool, "a"));
    }
}
