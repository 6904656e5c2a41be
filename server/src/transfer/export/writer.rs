//! The export file written as it is read: entities parsed in pages of [`PAGE`] (servers
//! read with their links), or on SQLite the other types' records streamed and copied,
//! what was gathered handed to the sink every page or [`FLUSH_BYTES`], so memory stays
//! flat however many entities the gateway holds. The output is the pretty JSON that
//! `serde_json::to_vec_pretty` gives for an [`app::transfer::ExportFile`].

use app::{
    entities::{Entity, Gateway, Prompt, Resource, Root, Server, Tool},
    model::EntityKind,
};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{ExportOptions, Take};
use crate::store::entities::StoreTx;

/// Entities read and written per step (servers, read with their links).
const PAGE: i64 = 1000;
/// Bytes gathered before they are handed to the sink (records copied as they are read).
const FLUSH_BYTES: usize = 1 << 20;
/// Bytes of stored records the store hands over at a time: large enough that handing
/// them from the reading thread costs nothing, small enough to keep memory flat.
const CHUNK_BYTES: usize = 256 << 10;

/// What a written export holds.
#[derive(Debug, Default)]
pub struct Written {
    /// Per type (all six, in file order), how many entities.
    pub counts: Vec<(EntityKind, usize)>,
    pub bytes: u64,
    /// Selections that matched nothing, each named.
    pub warnings: Vec<String>,
}

impl Written {
    pub fn total(&self) -> usize {
        self.counts.iter().map(|(_, n)| n).sum()
    }
}

/// The file's envelope fields, written before the entities.
pub(super) struct Header<'a> {
    pub(super) exported_at: String,
    pub(super) exported_by: &'a str,
    pub(super) source_gateway: &'a str,
    /// The fingerprint of the key the credentials are encrypted with (never the key): an
    /// importer can tell which secret the file needs before trying to decrypt anything.
    pub(super) key_fingerprint: Option<String>,
}

/// Writes the file into `out`, page by page.
pub(super) struct FileWriter<'w, W> {
    out: &'w mut W,
    buffer: Vec<u8>,
    written: Written,
    /// Server key → its links, for the metadata's `dependencies`.
    servers: Vec<(String, [Vec<String>; 3])>,
    any_type: bool,
}

impl<'w, W: AsyncWrite + Unpin> FileWriter<'w, W> {
    pub(super) fn new(out: &'w mut W) -> Self {
        FileWriter {
            out,
            buffer: Vec::with_capacity(1 << 20),
            written: Written::default(),
            servers: Vec::new(),
            any_type: false,
        }
    }

    pub(super) async fn head(&mut self, header: &Header<'_>) -> anyhow::Result<()> {
        self.buffer.extend_from_slice(b"{\n");
        let fields = [
            ("version", super::FORMAT_VERSION),
            ("exported_at", header.exported_at.as_str()),
            ("exported_by", header.exported_by),
            ("source_gateway", header.source_gateway),
            ("encryption_method", "AES-256-GCM"),
        ];
        let fingerprint = header
            .key_fingerprint
            .as_deref()
            .map(|f| ("encryption_key_fingerprint", f));
        for (name, value) in fields.into_iter().chain(fingerprint) {
            self.buffer.extend_from_slice(b"  ");
            serde_json::to_writer(&mut self.buffer, name)?;
            self.buffer.extend_from_slice(b": ");
            serde_json::to_writer(&mut self.buffer, value)?;
            self.buffer.extend_from_slice(b",\n");
        }
        self.buffer.extend_from_slice(b"  \"entities\": {");
        self.flush().await
    }

    /// Every entity of type `E` the options take, in key order.
    pub(super) async fn list<E: Entity>(
        &mut self,
        snapshot: &mut StoreTx,
        options: &ExportOptions,
        take: &Take,
    ) -> anyhow::Result<()> {
        // A settled selection has applied the type filter already (and may add servers).
        if take.chosen.is_none() && !options.types.is_empty() && !options.types.contains(&E::KIND) {
            self.written.counts.push((E::KIND, 0));
            return Ok(());
        }
        let count = match E::KIND {
            EntityKind::Server => self.parsed::<E>(snapshot, options, take).await?,
            _ if !snapshot.keeps_record_text() => self.parsed::<E>(snapshot, options, take).await?,
            _ => self.copied(E::KIND, snapshot, options, take).await?,
        };
        if count > 0 {
            self.buffer.extend_from_slice(b"\n    ]");
        }
        self.written.counts.push((E::KIND, count));
        Ok(())
    }

    /// The entities of `E` built from their records and links (servers: their links
    /// live in tables of their own); how many were written.
    async fn parsed<E: Entity>(
        &mut self,
        snapshot: &mut StoreTx,
        options: &ExportOptions,
        take: &Take,
    ) -> anyhow::Result<usize> {
        let (mut count, mut after) = (0, None::<String>);
        loop {
            let page: Vec<E> = snapshot
                .export_page(take.inactive(E::KIND, options), after.as_deref(), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key().to_owned());
            let full = page.len() as i64 == PAGE;
            for mut entity in page {
                // Discovered on a peer: rediscovered where the gateway is imported.
                if entity.federation().is_some()
                    || !take.takes(E::KIND, entity.key(), entity.is_active(), options)
                {
                    continue;
                }
                crate::mcp::derive_endpoints(&mut entity);
                entity.set_id(None);
                self.open_item(E::KIND, count);
                pretty_at(&mut self.buffer, &entity, 6)?;
                self.note_links(&entity);
                count += 1;
            }
            self.flush().await?;
            if !full {
                break;
            }
        }
        Ok(count)
    }

    /// The entities of `kind` copied from the text the store holds: a record without
    /// links, where the store keeps the text as written ([`StoreTx::keeps_record_text`]),
    /// is exactly what the export writes, only compact (the same serialiser wrote it,
    /// without its id), so it is re-indented, not parsed and serialised again. The store
    /// reads the next chunk meanwhile. How many were written.
    async fn copied(
        &mut self,
        kind: EntityKind,
        snapshot: &mut StoreTx,
        options: &ExportOptions,
        take: &Take,
    ) -> anyhow::Result<usize> {
        let mut count = 0;
        let mut records = snapshot
            .records(kind, take.inactive(kind, options), CHUNK_BYTES)
            .await?;
        while let Some(chunk) = records.next().await? {
            for stored in chunk.iter() {
                if take.takes(kind, stored.key, stored.is_active, options) {
                    self.open_item(kind, count);
                    reindent(&mut self.buffer, stored.doc, 6);
                    count += 1;
                }
            }
            if self.buffer.len() >= FLUSH_BYTES {
                self.flush().await?;
            }
        }
        drop(records);
        self.flush().await?;
        Ok(count)
    }

    /// Before an entity at depth 3: the separator, and its type's list opened before the
    /// first.
    fn open_item(&mut self, kind: EntityKind, index: usize) {
        if index == 0 {
            self.buffer
                .extend_from_slice(if self.any_type { b",\n    " } else { b"\n    " });
            // A type's plural is a plain lower-case word: nothing to escape.
            self.buffer.push(b'"');
            self.buffer.extend_from_slice(kind.plural().as_bytes());
            self.buffer.extend_from_slice(b"\": [");
            self.any_type = true;
        }
        self.buffer.extend_from_slice(if index == 0 {
            b"\n      "
        } else {
            b",\n      "
        });
    }

    fn note_links<E: Entity>(&mut self, entity: &E) {
        if E::KIND != EntityKind::Server {
            return;
        }
        let mut links: [Vec<String>; 3] = Default::default();
        for (kind, keys) in entity.links() {
            let slot = match kind {
                EntityKind::Tool => 0,
                EntityKind::Prompt => 1,
                _ => 2,
            };
            links[slot] = keys.to_vec();
        }
        self.servers.push((entity.key().to_owned(), links));
    }

    /// Closes the entities, writes the metadata and the end of the file.
    pub(super) async fn finish(mut self, options: &ExportOptions) -> anyhow::Result<Written> {
        self.buffer
            .extend_from_slice(if self.any_type { b"\n  },\n" } else { b"},\n" });
        self.buffer.extend_from_slice(b"  \"metadata\": ");
        let metadata = self.metadata(options);
        pretty_at(&mut self.buffer, &metadata, 2)?;
        self.buffer.extend_from_slice(b"\n}");
        self.flush().await?;
        self.out.flush().await?;
        Ok(self.written)
    }

    fn metadata(&mut self, options: &ExportOptions) -> Value {
        let mut counts = Map::new();
        for (kind, n) in &self.written.counts {
            if *n > 0 || options.types.contains(kind) {
                counts.insert(kind.plural().into(), json!(n));
            }
        }
        let dependencies = if options.include_dependencies {
            let servers = std::mem::take(&mut self.servers);
            let map = |slot: usize| -> Map<String, Value> {
                servers
                    .iter()
                    .map(|(key, links)| (key.clone(), json!(links[slot])))
                    .collect()
            };
            json!({
                "servers_to_tools": map(0),
                "servers_to_prompts": map(1),
                "servers_to_resources": map(2),
            })
        } else {
            json!({})
        };
        json!({
            "entity_counts": counts,
            "dependencies": dependencies,
            "export_options": super::export_options(options),
        })
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        self.out.write_all(&self.buffer).await?;
        self.written.bytes += self.buffer.len() as u64;
        self.buffer.clear();
        Ok(())
    }
}

/// `value` as pretty JSON nested `indent` spaces deep (JSON strings hold no raw newline,
/// so every newline of the output starts a line of the document).
fn pretty_at(buffer: &mut Vec<u8>, value: &impl Serialize, indent: usize) -> anyhow::Result<()> {
    let start = buffer.len();
    serde_json::to_writer_pretty(&mut *buffer, value)?;
    let lines = buffer[start..].iter().filter(|b| **b == b'\n').count();
    if lines == 0 {
        return Ok(());
    }
    let pretty = buffer.split_off(start);
    buffer.reserve(pretty.len() + lines * indent);
    for part in pretty.split(|b| *b == b'\n').enumerate() {
        if part.0 > 0 {
            buffer.push(b'\n');
            buffer.extend(std::iter::repeat_n(b' ', indent));
        }
        buffer.extend_from_slice(part.1);
    }
    Ok(())
}

/// Compact JSON `doc` into `buffer` as serde_json's pretty printer writes it, nested
/// `indent` spaces deep (see [`pretty_at`]): the same text, with a line per value and a
/// space after each colon. Strings are copied as they are, escapes included (compact and
/// pretty output escape alike); whitespace between tokens is dropped.
fn reindent(buffer: &mut Vec<u8>, doc: &[u8], indent: usize) {
    fn newline(buffer: &mut Vec<u8>, spaces: usize) {
        buffer.push(b'\n');
        buffer.resize(buffer.len() + spaces, b' ');
    }
    let next_token = |from: usize| doc[from..].iter().position(|b| !b.is_ascii_whitespace());
    buffer.reserve(doc.len() + doc.len() / 4);
    let mut depth = indent;
    let mut i = 0;
    while i < doc.len() {
        let byte = doc[i];
        match byte {
            b'{' | b'[' => {
                let close = if byte == b'{' { b'}' } else { b']' };
                let after = next_token(i + 1).map(|n| i + 1 + n);
                if let Some(end) = after.filter(|at| doc[*at] == close) {
                    buffer.extend_from_slice(&[byte, close]);
                    i = end;
                } else {
                    buffer.push(byte);
                    depth += 2;
                    newline(buffer, depth);
                }
            }
            b'}' | b']' => {
                depth -= 2;
                newline(buffer, depth);
                buffer.push(byte);
            }
            b',' => {
                buffer.push(b',');
                newline(buffer, depth);
            }
            b':' => buffer.extend_from_slice(b": "),
            b'"' => {
                let end = crate::transfer::scan::string_end(doc, i);
                buffer.extend_from_slice(&doc[i..end]);
                i = end;
                continue;
            }
            b if b.is_ascii_whitespace() => {}
            other => buffer.push(other),
        }
        i += 1;
    }
}

/// The six lists in file order.
pub(super) async fn all_lists<W: AsyncWrite + Unpin>(
    file: &mut FileWriter<'_, W>,
    snapshot: &mut StoreTx,
    options: &ExportOptions,
    take: &Take,
) -> anyhow::Result<()> {
    file.list::<Tool>(snapshot, options, take).await?;
    file.list::<Gateway>(snapshot, options, take).await?;
    file.list::<Server>(snapshot, options, take).await?;
    file.list::<Prompt>(snapshot, options, take).await?;
    file.list::<Resource>(snapshot, options, take).await?;
    file.list::<Root>(snapshot, options, take).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The re-indented compact text is what the typed export would write.
    #[test]
    fn reindented_compact_json_is_the_pretty_json() {
        let values = [
            json!({"a": [1, {"b": "x\ny"}], "c": {}, "d": [], "e": [[], {}, [{}]]}),
            json!({"quote\"d": "back\\slash\\", "ctl": "\u{1}\t", "uni": "é☃😀", "": ""}),
            json!({"n": [0, -1.5, 1e300, 18446744073709551615u64, true, false, null]}),
            json!({"s": "ends with backslash \\", "t": ",:{}[]\"", "u": " spaced  out "}),
            json!([]),
            json!("plain"),
        ];
        for value in values {
            let compact = serde_json::to_vec(&value).unwrap();
            for indent in [0, 6] {
                let (mut copied, mut typed) = (b"x".to_vec(), b"x".to_vec());
                reindent(&mut copied, &compact, indent);
                pretty_at(&mut typed, &value, indent).unwrap();
                assert_eq!(
                    String::from_utf8(copied).unwrap(),
                    String::from_utf8(typed).unwrap()
                );
            }
        }
    }

    /// Whitespace between tokens (a record written by hand, or by another tool) goes.
    #[test]
    fn whitespace_between_tokens_is_dropped() {
        let mut copied = Vec::new();
        reindent(
            &mut copied,
            b" { \"a\" : [ 1 , { } ] ,\n\"b\":\" x \" } ",
            0,
        );
        let expected = serde_json::to_vec_pretty(&json!({"a": [1, {}], "b": " x "})).unwrap();
        assert_eq!(copied, expected);
    }

    #[test]
    fn nested_pretty_json_matches_serde_json() {
        let value = json!({"a": [1, {"b": "x\ny"}], "c": {}});
        let mut nested = b"{\n  \"k\": ".to_vec();
        pretty_at(&mut nested, &value, 2).unwrap();
        nested.extend_from_slice(b"\n}");
        let expected = serde_json::to_vec_pretty(&json!({ "k": value })).unwrap();
        assert_eq!(
            String::from_utf8(nested).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}
