//! The export file: its envelope, and reading one with every problem reported at once.
//!
//! Compiled into the server (CLI `validate`, import) and into the browser (the import
//! wizard), so both refuse a file with the same messages. Entities are parsed one by one
//! from borrowed raw JSON: a valid file never becomes a `serde_json::Value`, and an
//! invalid entity is re-read only to list all of its errors.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod discovered;
mod read;
mod skim;
mod walk;
pub mod wrapper;

pub use read::{Head, Sink, file_text, read_file, without_bom};
pub use skim::{Skim, SkimServer, skim};

use crate::{
    entities::{Entity, Gateway, Prompt, Resource, Root, Server, Tool},
    model::EntityKind,
    validation::{FieldError, Problems},
};

/// The whole export file, as written (and, for `schema`, as described).
#[derive(Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(
    title = "mcpgateway export file",
    description = "ContextForge-compatible configuration export; credentials are AES-256-GCM blobs"
)]
pub struct ExportFile {
    /// The MCP protocol revision the format follows (ContextForge writes its own here).
    pub version: String,
    pub exported_at: String,
    pub exported_by: String,
    pub source_gateway: String,
    /// Always "AES-256-GCM".
    pub encryption_method: String,
    pub entities: EntitySet,
    /// `entity_counts`, `dependencies` (servers_to_tools/prompts/resources) and `export_options`.
    pub metadata: serde_json::Value,
}

/// The JSON Schema of [`ExportFile`], generated from these types.
pub fn export_file_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ExportFile)).unwrap_or_default()
}

/// The entities of a file, by type, in the order the file lists them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EntitySet {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<Gateway>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Server>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<Prompt>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roots: Vec<Root>,
}

impl EntitySet {
    /// How many entities of each type, in [`EntityKind::ALL`] order.
    pub fn counts(&self) -> [(EntityKind, usize); 6] {
        [
            (EntityKind::Tool, self.tools.len()),
            (EntityKind::Gateway, self.gateways.len()),
            (EntityKind::Server, self.servers.len()),
            (EntityKind::Prompt, self.prompts.len()),
            (EntityKind::Resource, self.resources.len()),
            (EntityKind::Root, self.roots.len()),
        ]
    }

    pub fn total(&self) -> usize {
        self.counts().iter().map(|(_, n)| n).sum()
    }

    /// The list of `E`s.
    pub fn list_mut<E: Entity>(&mut self) -> &mut Vec<E> {
        let list: &mut dyn std::any::Any = match E::KIND {
            EntityKind::Tool => &mut self.tools,
            EntityKind::Gateway => &mut self.gateways,
            EntityKind::Server => &mut self.servers,
            EntityKind::Prompt => &mut self.prompts,
            EntityKind::Resource => &mut self.resources,
            EntityKind::Root => &mut self.roots,
        };
        list.downcast_mut().expect("E::KIND names the list of E")
    }

    /// Every entity's type, key and display name, in file order by type.
    pub fn entries(&self) -> Vec<(EntityKind, String, String)> {
        fn of<E: Entity>(list: &[E]) -> impl Iterator<Item = (EntityKind, String, String)> + '_ {
            list.iter()
                .map(|e| (E::KIND, e.key().to_owned(), e.name().to_owned()))
        }
        of(&self.tools)
            .chain(of(&self.gateways))
            .chain(of(&self.servers))
            .chain(of(&self.prompts))
            .chain(of(&self.resources))
            .chain(of(&self.roots))
            .collect()
    }

    /// Every entity's type and key.
    pub fn keys(&self) -> Vec<(EntityKind, String)> {
        self.entries()
            .into_iter()
            .map(|(k, key, _)| (k, key))
            .collect()
    }
}

/// A file that passed validation.
#[derive(Clone, Debug)]
pub struct ParsedFile {
    pub version: String,
    pub exported_at: Option<String>,
    pub exported_by: Option<String>,
    pub source_gateway: Option<String>,
    pub entities: EntitySet,
    /// Accepted, but worth telling: masked values left out, duplicates merged, references
    /// that the target must satisfy.
    pub warnings: Vec<FieldError>,
}

/// Reads and validates an export file; on refusal, every problem found. The entities
/// are collected: for files too large to hold, [`read_file`] hands them over one by one.
pub fn parse_file(bytes: &[u8]) -> Result<ParsedFile, Problems> {
    let text = file_text(bytes, &mut |_| {})?;
    let skim = skim(text, &mut |_| {});
    let mut entities = Collect::default();
    let head = read_file(text, &skim, &[&EntityKind::ALL], &mut entities)?;
    Ok(ParsedFile {
        version: head.version,
        exported_at: head.exported_at,
        exported_by: head.exported_by,
        source_gateway: head.source_gateway,
        entities: entities.0,
        warnings: head.warnings,
    })
}

/// A [`Sink`] that keeps every entity.
#[derive(Default)]
struct Collect(EntitySet);

impl Sink for Collect {
    fn entity<E: Entity>(&mut self, _index: usize, entity: E) {
        self.0.list_mut::<E>().push(entity);
    }
}

/// Object members in file order, as borrowed raw values.
mod members {
    use serde::{
        Deserialize, Deserializer,
        de::{MapAccess, Visitor},
    };
    use serde_json::value::RawValue;

    pub struct Pairs<'a>(pub Vec<(String, &'a RawValue)>);

    impl<'de: 'a, 'a> Deserialize<'de> for Pairs<'a> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Pairs<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut pairs = Vec::new();
                    while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                        pairs.push((k, v));
                    }
                    Ok(Pairs(pairs))
                }
            }
            d.deserialize_map(V)
        }
    }
}

/// One entity of a file as the import wizard lists it, valid or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutlineRow {
    pub kind: EntityKind,
    /// Its position in the file's list of its type.
    pub index: usize,
    /// Its key (name, or URI for resources and roots) when the file gives one.
    pub key: String,
}

impl OutlineRow {
    /// `/entities/tools/3`: the prefix of every error pointer inside this entity.
    pub fn pointer(&self) -> String {
        format!("/entities/{}/{}", self.kind.plural(), self.index)
    }

    /// True when `pointer` points into this entity.
    pub fn owns(&self, pointer: &str) -> bool {
        entity_at(pointer) == Some((self.kind, self.index))
    }
}

/// The entity a pointer points into: `/entities/tools/3/url` → (tool, 3).
pub fn entity_at(pointer: &str) -> Option<(EntityKind, usize)> {
    let mut parts = pointer.split('/').skip(1);
    if parts.next() != Some("entities") {
        return None;
    }
    let plural = parts.next()?;
    let kind = EntityKind::ALL.into_iter().find(|k| k.plural() == plural)?;
    let index = parts.next()?.parse().ok()?;
    Some((kind, index))
}

/// The file as a JSON document and its entities as rows, even when some entities are
/// invalid ([`parse_file`] says which); `None` when it is not an object of entity lists.
pub fn outline_file(bytes: &[u8]) -> Option<(Value, Vec<OutlineRow>)> {
    let text = std::str::from_utf8(without_bom(bytes)).ok()?;
    let members = serde_json::from_str::<members::Pairs>(text).ok()?;
    // A member the import does not read (metadata holding a number beyond f64, a lone
    // surrogate escape, …) may not fit a `Value`: it is left out, as the import ignores it.
    let document = Value::Object(
        members
            .0
            .into_iter()
            .filter_map(|(name, raw)| Some((name, serde_json::from_str(raw.get()).ok()?)))
            .collect(),
    );
    let entities = document.get("entities")?.as_object()?;
    let mut rows = Vec::new();
    for kind in EntityKind::ALL {
        let Some(list) = entities.get(kind.plural()).and_then(Value::as_array) else {
            continue;
        };
        let field = if matches!(kind, EntityKind::Resource | EntityKind::Root) {
            "uri"
        } else {
            "name"
        };
        rows.extend(list.iter().enumerate().map(|(index, item)| {
            OutlineRow {
                kind,
                index,
                key: item
                    .get(field)
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("#{index}"), str::to_owned),
            }
        }));
    }
    Some((document, rows))
}

/// The document with only the entities `keep` lists (by type and position), and for each
/// type the original position of every kept entity (to map pointers back).
pub fn keep_entities(
    document: &Value,
    keep: &dyn Fn(EntityKind, usize) -> bool,
) -> (Vec<u8>, HashMap<EntityKind, Vec<usize>>) {
    let mut out = document.clone();
    let mut positions = HashMap::new();
    if let Some(entities) = out.get_mut("entities").and_then(Value::as_object_mut) {
        for kind in EntityKind::ALL {
            let Some(list) = entities
                .get_mut(kind.plural())
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            let kept: Vec<usize> = (0..list.len()).filter(|i| keep(kind, *i)).collect();
            let items = std::mem::take(list);
            *list = items
                .into_iter()
                .enumerate()
                .filter(|(i, _)| keep(kind, *i))
                .map(|(_, v)| v)
                .collect();
            positions.insert(kind, kept);
        }
    }
    (serde_json::to_vec(&out).unwrap_or_default(), positions)
}

/// Rewrites a pointer into a file made by [`keep_entities`] to the original file's.
pub fn original_pointer(pointer: &str, positions: &HashMap<EntityKind, Vec<usize>>) -> String {
    let mut parts = pointer.splitn(5, '/').skip(1);
    let (Some("entities"), Some(kind), Some(index)) = (parts.next(), parts.next(), parts.next())
    else {
        return pointer.to_owned();
    };
    let original = EntityKind::parse(kind)
        .and_then(|k| positions.get(&k))
        .and_then(|p| index.parse::<usize>().ok().and_then(|i| p.get(i)));
    match (original, parts.next()) {
        (Some(i), Some(rest)) => format!("/entities/{kind}/{i}/{rest}"),
        (Some(i), None) => format!("/entities/{kind}/{i}"),
        (None, _) => pointer.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../fixtures/contextforge/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (fixtures/contextforge in the repository)"))
    }

    fn refused(bytes: &[u8]) -> Vec<(String, String)> {
        parse_file(bytes)
            .unwrap_err()
            .iter()
            .map(|e| (e.pointer.clone(), e.code.to_string()))
            .collect()
    }

    #[test]
    fn contextforge_exports_parse_with_the_right_counts() {
        for name in ["export-seed-dataset.json", "export-seed-dataset-api.json"] {
            let file = parse_file(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let counts: Vec<usize> = file.entities.counts().iter().map(|(_, n)| *n).collect();
            // 15 prompts in the file, of which three discovered `greet`, one per gateway:
            // attributed to their gateways (with the three `info` resources), not merged.
            assert_eq!(counts, [15, 3, 5, 15, 11, 6], "{name}");
            let codes: Vec<&str> = file.warnings.iter().map(|w| w.code.as_str()).collect();
            assert!(!codes.contains(&"duplicate_merged"), "{name}");
            assert_eq!(
                codes
                    .iter()
                    .filter(|c| **c == "attributed_to_gateway")
                    .count(),
                6,
                "{name}"
            );
            assert!(
                codes.contains(&"masked_value"),
                "{name}: masked headers are reported"
            );
            assert!(
                file.entities
                    .tools
                    .iter()
                    .all(|t| t.headers.values().all(|v| v != "*****")),
                "{name}: no mask stored"
            );
            assert_eq!(file.version, "2025-11-25");
        }
    }

    #[test]
    fn contextforge_bad_inputs_are_refused_precisely() {
        assert_eq!(
            refused(&fixture("bad-inputs/empty-file.json")),
            [("".into(), "empty".into())]
        );
        assert_eq!(
            refused(&fixture("bad-inputs/array-top-level.json")),
            [("".into(), "invalid_type".into())]
        );
        assert_eq!(
            refused(&fixture("bad-inputs/malformed-truncated.json"))[0].1,
            "truncated"
        );
        assert_eq!(
            refused(&fixture("bad-inputs/schema-missing-version.json")),
            [("/version".into(), "required".into())]
        );
        let url = refused(&fixture("bad-inputs/schema-tool-missing-url.json"));
        assert_eq!(url.len(), 1, "{url:?}");
        assert!(
            url[0].0.starts_with("/entities/tools/")
                && url[0].0.ends_with("/url")
                && url[0].1 == "required",
            "{url:?}"
        );
        let unknown = refused(&fixture("bad-inputs/schema-unknown-entity-type.json"));
        assert!(
            unknown.iter().all(|(_, code)| code == "unknown_type") && !unknown.is_empty(),
            "{unknown:?}"
        );
        let handmade = parse_file(&fixture("bad-inputs/handmade-tools-with-auth.json"))
            .expect("the hand-made file is valid");
        assert!(!handmade.entities.tools.is_empty());
    }

    #[test]
    fn floats_read_back_exactly() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/fuzz-regressions/float-one-ulp-after-keep.json"
        );
        let bytes = std::fs::read(path).unwrap();
        let once: Value = serde_json::from_slice(&bytes).unwrap();
        let again: Value = serde_json::from_str(&once.to_string()).unwrap();
        assert_eq!(
            once, again,
            "a float written and read again is the same float"
        );
    }

    #[test]
    fn every_problem_of_a_file_is_listed_at_once() {
        let file = br#"{"version": "", "exported_at": "x", "entities": {
            "tools": [{"name": "a", "url": "ftp://x"}, {"url": "https://ok.example.com"}, 7],
            "widgets": [],
            "roots": {"uri": "file:///x"}
        }}"#;
        let errors = refused(file);
        let pointers: Vec<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/version",
                "/entities/tools/0/url",
                "/entities/tools/1/name",
                "/entities/tools/2",
                "/entities/widgets",
                "/entities/roots"
            ]
        );
    }

    #[test]
    fn duplicates_merge_when_identical_and_are_refused_when_not() {
        let same = br#"{"version": "1", "exported_at": "x", "entities": {"prompts": [
            {"name": "p", "template": "t"}, {"name": "p", "template": "t"}]}}"#;
        let file = parse_file(same).unwrap();
        assert_eq!(file.entities.prompts.len(), 1);
        assert_eq!(file.warnings[0].pointer, "/entities/prompts/1");
        let differ = br#"{"version": "1", "exported_at": "x", "entities": {"prompts": [
            {"name": "p", "template": "t"}, {"name": "p", "template": "other"}]}}"#;
        assert_eq!(
            refused(differ),
            [("/entities/prompts/1/name".into(), "duplicate".into())]
        );
    }

    #[test]
    fn server_references_outside_the_file_are_reported_for_the_target() {
        let file = br#"{"version": "1", "exported_at": "x", "entities": {
            "tools": [{"name": "t", "url": "https://x.example.com"}],
            "servers": [{"name": "s", "tool_ids": ["t", "elsewhere"]}]}}"#;
        let parsed = parse_file(file).unwrap();
        assert_eq!(parsed.warnings.len(), 1);
        assert_eq!(parsed.warnings[0].pointer, "/entities/servers/0/tool_ids/1");
    }

    #[test]
    fn hostile_shapes_are_refused_not_crashed_on() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(refused(deep.as_bytes())[0].1, "invalid_json");
        let nested = format!(
            r#"{{"version": "1", "exported_at": "x", "entities": {{"tools": [{{"name": "t", "url": "https://x.example.com", "annotations": {}1{}}}]}}}}"#,
            "{\"a\":".repeat(5000),
            "}".repeat(5000)
        );
        assert!(!refused(nested.as_bytes()).is_empty());
        let empty_object: Vec<String> = refused(b"{}").into_iter().map(|(p, _)| p).collect();
        assert_eq!(empty_object, ["/version", "/exported_at", "/entities"]);
        assert_eq!(refused(&[0xff, 0xfe, b'{'])[0].1, "invalid_utf8");
        let with_bom =
            b"\xEF\xBB\xBF{\"version\": \"1\", \"exported_at\": \"x\", \"entities\": {}}";
        assert!(parse_file(with_bom).is_ok(), "a byte-order mark is ignored");
        assert_eq!(
            refused(
                br#"{"version": "1", "exported_at": "x", "entities": {"roots": [], "roots": []}}"#
            ),
            [("/entities/roots".into(), "duplicate_key".into())]
        );
        assert_eq!(
            refused(br#"{"version": "1", "version": "2", "exported_at": "x", "entities": {}}"#),
            [("/version".into(), "duplicate_key".into())]
        );
        assert_eq!(
            refused(br#"{"version": "1", "exported_at": "x", "entities": []}"#),
            [("/entities".into(), "invalid_type".into())]
        );
    }

    #[test]
    fn an_outline_lists_invalid_entities_and_a_kept_file_maps_pointers_back() {
        let bytes = br#"{"version":"1","exported_at":"x","entities":{
            "tools":[{"name":"a","url":"https://a"},{"name":"b"},{"name":"c","url":"https://c"}],
            "roots":[{"uri":"file:///w","name":"W"}]}}"#;
        let errors = parse_file(bytes).unwrap_err();
        let (document, rows) = outline_file(bytes).unwrap();
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "c", "file:///w"]);
        assert!(
            errors.iter().all(|e| rows[1].owns(&e.pointer)),
            "{errors:?}"
        );
        assert!(!rows[0].owns(&errors[0].pointer));

        let (kept, positions) =
            keep_entities(&document, &|kind, i| !(kind == EntityKind::Tool && i == 1));
        assert!(parse_file(&kept).is_ok(), "the invalid entity is left out");
        assert_eq!(
            original_pointer("/entities/tools/1/url", &positions),
            "/entities/tools/2/url"
        );
        assert_eq!(
            original_pointer("/entities/roots/0", &positions),
            "/entities/roots/0"
        );
        assert_eq!(original_pointer("/version", &positions), "/version");
    }
}
