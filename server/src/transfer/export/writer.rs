//! The export file written as it is read: each type in pages of [`PAGE`] entities, each
//! page serialised and handed to the sink before the next is read, so memory stays flat
//! however many entities the gateway holds. The output is the pretty JSON that
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

/// Entities read and written per step.
const PAGE: i64 = 1000;

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
        let chosen = take.chosen.as_ref();
        if chosen.is_none() && !options.types.is_empty() && !options.types.contains(&E::KIND) {
            self.written.counts.push((E::KIND, 0));
            return Ok(());
        }
        let extra = &take.inactive_links;
        // A selection may hold disabled dependencies; so may the plain export's extras.
        let inactive = options.include_inactive
            || chosen.is_some()
            || extra.iter().any(|(kind, _)| *kind == E::KIND);
        let taken = |entity: &E| match chosen {
            Some(c) => c.contains(&(E::KIND, entity.key().to_owned())),
            None => {
                options.include_inactive
                    || entity.is_active()
                    || extra.contains(&(E::KIND, entity.key().to_owned()))
            }
        };
        let mut count = 0;
        let mut after: Option<String> = None;
        loop {
            let page: Vec<E> = snapshot
                .entities_after(inactive, after.as_deref(), PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.key().to_owned());
            let full = page.len() as i64 == PAGE;
            for mut entity in page {
                if !taken(&entity) {
                    continue;
                }
                crate::mcp::derive_endpoints(&mut entity);
                entity.set_id(None);
                self.entity(&entity, count)?;
                self.note_links(&entity);
                count += 1;
            }
            self.flush().await?;
            if !full {
                break;
            }
        }
        if count > 0 {
            self.buffer.extend_from_slice(b"\n    ]");
        }
        self.written.counts.push((E::KIND, count));
        Ok(())
    }

    /// One entity at depth 3, opening its type's list before the first.
    fn entity<E: Entity>(&mut self, entity: &E, index: usize) -> anyhow::Result<()> {
        if index == 0 {
            self.buffer
                .extend_from_slice(if self.any_type { b",\n    " } else { b"\n    " });
            serde_json::to_writer(&mut self.buffer, E::KIND.plural())?;
            self.buffer.extend_from_slice(b": [");
            self.any_type = true;
        }
        self.buffer.extend_from_slice(if index == 0 {
            b"\n      "
        } else {
            b",\n      "
        });
        pretty_at(&mut self.buffer, entity, 6)
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
