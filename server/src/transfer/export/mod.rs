//! Export: the gateway's configuration as one JSON file in ContextForge's format, every
//! credential still AES-256-GCM encrypted, in a stable order so two exports diff cleanly.

use std::collections::HashSet;

use app::{
    entities::Entity,
    model::EntityKind,
    transfer::{EntitySet, ExportFile},
};
use serde_json::{Map, Value, json};

pub use app::jobs::{ExportPreview, PreviewItem};
use tokio::io::AsyncWrite;
pub use writer::Written;

mod writer;

use super::selection::Include;
use crate::store::{Store, audit::NewAuditEntry, entities::StoreTx};

/// The file's `version`: the MCP protocol revision our format follows, as ContextForge writes it.
pub const FORMAT_VERSION: &str = "2025-03-26";

/// What to export.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Types to export; empty means all six.
    pub types: Vec<EntityKind>,
    /// Entities carrying any of these tags (normalised ids), plus dependents and dependencies.
    pub tags: Vec<String>,
    /// Entities named by these names or globs, plus dependencies.
    pub include: Option<Include>,
    pub include_inactive: bool,
    /// Add what selected entities need (a server's tools, prompts, resources) and, with
    /// tags, the servers that use selected entities.
    pub include_dependencies: bool,
    /// Exactly these entities, each named by id or by key (the UI's "Export Selected").
    pub picked: Option<HashSet<(EntityKind, String)>>,
}

/// Every stored entity the options may consider (ids still set, for picking by id), read
/// on `snapshot`.
async fn everything(snapshot: &mut StoreTx, options: &ExportOptions) -> sqlx::Result<EntitySet> {
    let inactive = options.include_inactive;
    Ok(EntitySet {
        tools: snapshot.all_entities(inactive).await?,
        gateways: snapshot.all_entities(inactive).await?,
        servers: snapshot.all_entities(inactive).await?,
        prompts: snapshot.all_entities(inactive).await?,
        resources: snapshot.all_entities(inactive).await?,
        roots: snapshot.all_entities(inactive).await?,
    })
}

/// What [`export`] would write, and why each entity is in it.
pub async fn preview(store: &Store, options: &ExportOptions) -> sqlx::Result<ExportPreview> {
    let mut snapshot = store.begin_snapshot().await?;
    let everything = everything(&mut snapshot, options).await?;
    snapshot.rollback().await?;
    let direct = select(
        &everything,
        &ExportOptions {
            include_dependencies: false,
            ..options.clone()
        },
    );
    let chosen = select(&everything, options);
    let entities = everything.retain_keys(&chosen);
    let mut selected = Vec::new();
    let mut dependencies = Vec::new();
    for (kind, key) in entities.keys() {
        let required_by: Vec<String> = entities
            .servers
            .iter()
            .filter(|s| direct.contains(&(EntityKind::Server, s.key().to_owned())))
            .filter(|s| {
                s.links()
                    .iter()
                    .any(|(k, keys)| *k == kind && keys.contains(&key))
            })
            .map(|s| s.key().to_owned())
            .collect();
        if direct.contains(&(kind, key.clone())) {
            selected.push(PreviewItem {
                kind,
                name: key,
                required_by: Vec::new(),
            });
        } else {
            dependencies.push(PreviewItem {
                kind,
                name: key,
                required_by,
            });
        }
    }
    Ok(ExportPreview {
        counts: counts(&entities, options),
        total: entities.total(),
        selected,
        dependencies,
    })
}

/// Builds the export in memory and records it in the audit log: the streamed file, read
/// back (for tests and callers that want the typed file).
pub async fn export(
    store: &Store,
    options: &ExportOptions,
    exported_by: &str,
    source_gateway: &str,
) -> anyhow::Result<ExportFile> {
    let mut bytes = Vec::new();
    export_to(store, options, exported_by, source_gateway, &mut bytes).await?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Writes the export into `out` as it reads the store, and records it in the audit log.
pub async fn export_to<W: AsyncWrite + Unpin>(
    store: &Store,
    options: &ExportOptions,
    exported_by: &str,
    source_gateway: &str,
    out: &mut W,
) -> anyhow::Result<Written> {
    let plan = Plan::new(store, options).await?;
    plan.write(store, exported_by, source_gateway, out).await
}

/// An export whose selection is settled: what can fail before the first byte is sent.
pub struct Plan {
    options: ExportOptions,
    /// The keys to take; `None` takes every entity of the asked types.
    chosen: Option<Chosen>,
    /// One snapshot for the selection and every page: an import committing meanwhile is
    /// in the file entirely or not at all (never its servers without their tools). It
    /// holds one pooled connection until the file is written.
    snapshot: StoreTx,
}

impl Plan {
    /// Settles the selection: tags, names and picks need the dependency graph, read once
    /// and dropped before the file is written; a plain export needs nothing.
    pub async fn new(store: &Store, options: &ExportOptions) -> sqlx::Result<Plan> {
        let mut snapshot = store.begin_snapshot().await?;
        let filtered =
            !options.tags.is_empty() || options.include.is_some() || options.picked.is_some();
        let chosen = match filtered {
            true => Some(select(&everything(&mut snapshot, options).await?, options)),
            false => None,
        };
        Ok(Plan {
            options: options.clone(),
            chosen,
            snapshot,
        })
    }

    /// Writes the file page by page, then the audit row.
    pub async fn write<W: AsyncWrite + Unpin>(
        mut self,
        store: &Store,
        exported_by: &str,
        source_gateway: &str,
        out: &mut W,
    ) -> anyhow::Result<Written> {
        let header = writer::Header {
            exported_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            exported_by,
            source_gateway,
        };
        let mut file = writer::FileWriter::new(out);
        file.head(&header).await?;
        writer::all_lists(
            &mut file,
            &mut self.snapshot,
            &self.options,
            self.chosen.as_ref(),
        )
        .await?;
        self.snapshot.rollback().await?;
        let written = file.finish(&self.options).await?;
        let counts: Map<String, Value> = written
            .counts
            .iter()
            .filter(|(kind, n)| *n > 0 || self.options.types.contains(kind))
            .map(|(kind, n)| (kind.plural().to_owned(), json!(n)))
            .collect();
        let entry = NewAuditEntry {
            actor: exported_by,
            action: "export",
            details: json!({ "entity_counts": counts, "export_options": export_options(&self.options) }),
            ..Default::default()
        };
        store.record_audit(entry).await?;
        Ok(written)
    }
}

type Chosen = HashSet<(EntityKind, String)>;

/// The keys the export takes, by the rules of [`ExportOptions`].
fn select(all: &EntitySet, options: &ExportOptions) -> Chosen {
    let mut chosen = Chosen::new();
    let wanted = |kind: EntityKind| options.types.is_empty() || options.types.contains(&kind);
    let tags: HashSet<String> = options
        .tags
        .iter()
        .map(|t| app::entities::Tag::new(t).id)
        .collect();
    let picked = |kind: EntityKind, key: &str, id: Option<uuid::Uuid>| {
        options.picked.as_ref().is_none_or(|p| {
            p.contains(&(kind, key.to_owned()))
                || id.is_some_and(|id| p.contains(&(kind, id.to_string())))
        })
    };
    let mut consider = |kind: EntityKind, entity: Candidate<'_>| {
        let (key, name) = (entity.key, entity.name);
        let by_include = options
            .include
            .as_ref()
            .is_none_or(|i| i.matches(kind, key, name));
        let by_type = options
            .include
            .as_ref()
            .map_or(wanted(kind), |i| i.mentions(kind) && wanted(kind));
        let by_tag = tags.is_empty() || entity.tags.iter().any(|t| tags.contains(&t.id));
        if by_type && by_include && by_tag && picked(kind, key, entity.id) {
            chosen.insert((kind, key.to_owned()));
        }
    };
    visit(&all.tools, &mut consider);
    visit(&all.gateways, &mut consider);
    visit(&all.servers, &mut consider);
    visit(&all.prompts, &mut consider);
    visit(&all.resources, &mut consider);
    visit(&all.roots, &mut consider);
    if options.include_dependencies {
        add_dependencies(all, &mut chosen, !tags.is_empty());
        // A type filter holds for dependencies too: the file has only the asked types.
        chosen.retain(|(kind, _)| wanted(*kind));
    }
    chosen
}

/// What selection looks at in an entity.
struct Candidate<'a> {
    key: &'a str,
    name: &'a str,
    id: Option<uuid::Uuid>,
    tags: &'a [app::entities::Tag],
}

fn visit<E: Entity>(list: &[E], consider: &mut impl FnMut(EntityKind, Candidate<'_>)) {
    for e in list {
        let candidate = Candidate {
            key: e.key(),
            name: e.name(),
            id: e.id(),
            tags: e.tags(),
        };
        consider(E::KIND, candidate);
    }
}

/// Adds, with `dependents`, the servers that use a chosen tool, prompt or resource; then
/// every chosen server's tools, prompts and resources.
fn add_dependencies(all: &EntitySet, chosen: &mut Chosen, dependents: bool) {
    if dependents {
        for server in &all.servers {
            let uses_chosen = server
                .links()
                .iter()
                .any(|(kind, keys)| keys.iter().any(|k| chosen.contains(&(*kind, k.clone()))));
            if uses_chosen {
                chosen.insert((EntityKind::Server, server.key().to_owned()));
            }
        }
    }
    for server in &all.servers {
        if chosen.contains(&(EntityKind::Server, server.key().to_owned())) {
            for (kind, keys) in server.links() {
                chosen.extend(keys.iter().map(|k| (kind, k.clone())));
            }
        }
    }
}

/// Per type present (or asked for), how many entities.
fn counts(entities: &EntitySet, options: &ExportOptions) -> Map<String, Value> {
    let mut counts = Map::new();
    for (kind, n) in entities.counts() {
        if n > 0 || options.types.contains(&kind) {
            counts.insert(kind.plural().into(), json!(n));
        }
    }
    counts
}

/// The options as the file's metadata records them.
fn export_options(options: &ExportOptions) -> Value {
    let types: Vec<&str> = if options.types.is_empty() {
        EntityKind::ALL.to_vec()
    } else {
        options.types.clone()
    }
    .into_iter()
    .map(EntityKind::plural)
    .collect();
    json!({
        "include_inactive": options.include_inactive,
        "include_dependencies": options.include_dependencies,
        "selected_types": types,
        "filter_tags": options.tags,
        "include": options.include.as_ref().map(Include::describe).unwrap_or_default(),
    })
}
