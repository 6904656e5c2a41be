//! One walk over an export file's structure, in file order, with serde_json over the
//! byte slice: the envelope's members, the entity lists, and each entity as borrowed raw
//! JSON. Both passes of a read (the [`skim`](super::skim) and the validating
//! [`read`](super::read)) are walks; nothing of the file is kept by the walk itself.

use crate::validation::Code;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, value::RawValue};

use crate::{model::EntityKind, validation::FieldError};

/// The envelope members read as values; every other member is only checked for syntax.
/// (`encryption_key_fingerprint`: read to tell this project's exports, see
/// `discovered`.)
pub const ENVELOPE: [&str; 5] = [
    "version",
    "exported_at",
    "exported_by",
    "source_gateway",
    "encryption_key_fingerprint",
];

/// An entity list: its type, and its place among the members of `entities`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct List {
    pub kind: EntityKind,
    pub position: usize,
}

/// What a walk reports to.
pub trait Walker<'de> {
    /// One of the [`ENVELOPE`] members.
    fn envelope(&mut self, _name: &str, _value: Value) {}
    /// `entities` is missing or null (`required`), or not an object.
    fn entities_problem(&mut self, _error: FieldError) {}
    /// A member of `entities` that is no type, or a type given twice.
    fn type_problem(&mut self, _position: usize, _error: FieldError) {}
    /// A list that is not a list.
    fn list_problem(&mut self, _list: List, _error: FieldError) {}
    /// One element of a list (every list is walked element by element, so that a
    /// walker that skips some still knows how far it has read).
    fn item(&mut self, list: List, index: usize, raw: &'de RawValue);
}

/// Walks `text`; a syntax error (or a top level that is no object, or an envelope
/// member given twice) ends the walk with serde_json's error.
pub fn walk<'de, W: Walker<'de>>(text: &'de str, walker: &mut W) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_str(text);
    de.deserialize_any(FileVisitor { walker })?;
    de.end()
}

/// Walks one entity list, `text` being the list alone (`[` … `]`) as an earlier walk
/// found it.
pub fn walk_list<'de, W: Walker<'de>>(
    text: &'de str,
    list: List,
    walker: &mut W,
) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_str(text);
    Items { walker, list }.deserialize(&mut de)?;
    de.end()
}

pub fn problem(pointer: impl Into<String>, code: Code, message: impl Into<String>) -> FieldError {
    FieldError::new(pointer, code, message)
}

struct FileVisitor<'w, W> {
    walker: &'w mut W,
}

impl<'de, W: Walker<'de>> Visitor<'de> for FileVisitor<'_, W> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an export file object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: Vec<String> = Vec::new();
        let mut entities = false;
        while let Some(name) = map.next_key::<String>()? {
            let known = name == "entities" || ENVELOPE.contains(&name.as_str());
            if !known {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            if seen.contains(&name) {
                return Err(de::Error::custom(format!("duplicate field `{name}`")));
            }
            if name == "entities" {
                entities = true;
                map.next_value_seed(Entities {
                    walker: &mut *self.walker,
                })?;
            } else {
                let value: Value = map.next_value()?;
                self.walker.envelope(&name, value);
            }
            seen.push(name);
        }
        if !entities {
            self.walker
                .entities_problem(problem("/entities", Code::Required, "required"));
        }
        Ok(())
    }

    /// Not an object; read to its end first (nesting limited as for any value), so
    /// that a syntax error or a too deep nesting is told as such.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Nested>()?.is_some() {}
        Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
    }
}

/// The visitor methods of the scalar JSON types, each answering `self.scalar()`.
macro_rules! scalar_visits {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            self.scalar()
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            self.scalar()
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            self.scalar()
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            self.scalar()
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            self.scalar()
        }
    };
}

/// Any value, read through and forgotten like [`IgnoredAny`], but nested through
/// serde_json's recursion limit (as a `Value` would be).
struct Nested;

impl<'de> serde::Deserialize<'de> for Nested {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Nested, D::Error> {
        d.deserialize_any(NestedVisitor)
    }
}

struct NestedVisitor;

impl NestedVisitor {
    fn scalar<E>(self) -> Result<Nested, E> {
        Ok(Nested)
    }
}

impl<'de> Visitor<'de> for NestedVisitor {
    type Value = Nested;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Nested, A::Error> {
        while seq.next_element::<Nested>()?.is_some() {}
        Ok(Nested)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Nested, A::Error> {
        while map.next_entry::<IgnoredAny, Nested>()?.is_some() {}
        Ok(Nested)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Nested, E> {
        self.scalar()
    }
    scalar_visits!();
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// The `entities` member: an object of entity lists.
struct Entities<'w, W> {
    walker: &'w mut W,
}

impl<'de, W: Walker<'de>> DeserializeSeed<'de> for Entities<'_, W> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, W: Walker<'de>> Entities<'_, W> {
    fn wrong(self) {
        self.walker.entities_problem(problem(
            "/entities",
            Code::InvalidType,
            "must be an object of entity lists",
        ));
    }

    fn scalar<E>(self) -> Result<(), E> {
        self.wrong();
        Ok(())
    }
}

impl<'de, W: Walker<'de>> Visitor<'de> for Entities<'_, W> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of entity lists")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = Vec::new();
        let mut position = 0;
        while let Some(name) = map.next_key::<String>()? {
            let base = crate::validation::join("/entities", &name);
            let kind = EntityKind::ALL.into_iter().find(|k| k.plural() == name);
            let here = position;
            position += 1;
            let Some(kind) = kind else {
                self.walker.type_problem(here, problem(base, Code::UnknownType, format!("unknown entity type `{name}`; expected one of tools, gateways, servers, prompts, resources, roots")));
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            if seen.contains(&kind) {
                self.walker.type_problem(
                    here,
                    problem(
                        base,
                        Code::DuplicateKey,
                        "given twice; put every entity of a type in one list",
                    ),
                );
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            seen.push(kind);
            let list = List {
                kind,
                position: here,
            };
            map.next_value_seed(Items {
                walker: &mut *self.walker,
                list,
            })?;
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.walker
            .entities_problem(problem("/entities", Code::Required, "required"));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.wrong();
        drain_seq(seq)
    }

    scalar_visits!();
}

/// One entity list.
struct Items<'w, W> {
    walker: &'w mut W,
    list: List,
}

impl<'de, W: Walker<'de>> Items<'_, W> {
    fn wrong(self) {
        let base = crate::validation::join("/entities", self.list.kind.plural());
        self.walker.list_problem(
            self.list,
            problem(base, Code::InvalidType, "must be a list"),
        );
    }

    fn scalar<E>(self) -> Result<(), E> {
        self.wrong();
        Ok(())
    }
}

impl<'de, W: Walker<'de>> DeserializeSeed<'de> for Items<'_, W> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, W: Walker<'de>> Visitor<'de> for Items<'_, W> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of entities")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(raw) = seq.next_element::<&'de RawValue>()? {
            self.walker.item(self.list, index, raw);
            index += 1;
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.wrong();
        drain_map(map)
    }

    scalar_visits!();
}

/// The byte offsets of `raw` in `text` (which `raw` was borrowed from).
pub fn span(text: &(impl AsRef<[u8]> + ?Sized), raw: &RawValue) -> std::ops::Range<usize> {
    let text = text.as_ref();
    let start = (raw.get().as_ptr() as usize).saturating_sub(text.as_ptr() as usize);
    start..start + raw.get().len()
}
