//! Export: the gateway's configuration as one JSON file in ContextForge's format, every
//! credential still AES-256-GCM encrypted, in a stable order so two exports diff cleanly.

use std::collections::HashSet;

use app::{model::EntityKind, transfer::ExportFile};
use serde_json::{Map, Value, json};

pub use app::jobs::{ExportPreview, PreviewItem};
use tokio::io::AsyncWrite;
pub use writer::Written;

mod writer;

use super::selection::Include;
use crate::store::{
    Store,
    audit::NewAuditEntry,
    entities::{Outline, StoreTx},
};

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

/// Every stored entity the options may consider, as outlines (ids kept, for picking by
/// id), per type in file order, read on `snapshot`.
async fn graph(snapshot: &mut StoreTx, options: &ExportOptions) -> sqlx::Result<Graph> {
    let mut graph = Graph::new();
    for kind in EntityKind::ALL {
        graph.push((
            kind,
            snapshot.outlines(kind, options.include_inactive).await?,
        ));
    }
    Ok(graph)
}

/// The outlines of every type, in file order.
type Graph = Vec<(EntityKind, Vec<Outline>)>;

fn servers(graph: &Graph) -> &[Outline] {
    graph
        .iter()
        .find(|(kind, _)| *kind == EntityKind::Server)
        .map_or(&[], |(_, list)| list.as_slice())
}

/// What [`export`] would write, and why each entity is in it.
pub async fn preview(store: &Store, options: &ExportOptions) -> sqlx::Result<ExportPreview> {
    let mut snapshot = store.begin_snapshot().await?;
    let graph = graph(&mut snapshot, options).await?;
    snapshot.rollback().await?;
    let direct = select(
        &graph,
        &ExportOptions {
            include_dependencies: false,
            ..options.clone()
        },
    );
    let chosen = select(&graph, options);
    let chosen_servers: Vec<&Outline> = servers(&graph)
        .iter()
        .filter(|s| direct.contains(&(EntityKind::Server, s.key.clone())))
        .filter(|s| chosen.contains(&(EntityKind::Server, s.key.clone())))
        .collect();
    let (mut selected, mut dependencies) = (Vec::new(), Vec::new());
    let mut counts = Map::new();
    for (kind, list) in &graph {
        let taken: Vec<&Outline> = list
            .iter()
            .filter(|e| chosen.contains(&(*kind, e.key.clone())))
            .collect();
        if !taken.is_empty() || options.types.contains(kind) {
            counts.insert(kind.plural().into(), json!(taken.len()));
        }
        for entity in taken {
            let item = |required_by| PreviewItem {
                kind: *kind,
                name: entity.key.clone(),
                required_by,
            };
            if direct.contains(&(*kind, entity.key.clone())) {
                selected.push(item(Vec::new()));
                continue;
            }
            let required_by = chosen_servers
                .iter()
                .filter(|s| s.links.contains(&(*kind, entity.key.clone())))
                .map(|s| s.key.clone())
                .collect();
            dependencies.push(item(required_by));
        }
    }
    Ok(ExportPreview {
        counts,
        total: selected.len() + dependencies.len(),
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
            true => Some(select(&graph(&mut snapshot, options).await?, options)),
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
            key_fingerprint: store.key_check().await?,
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
fn select(graph: &Graph, options: &ExportOptions) -> Chosen {
    let mut chosen = Chosen::new();
    let wanted = |kind: EntityKind| options.types.is_empty() || options.types.contains(&kind);
    let tags: HashSet<String> = options
        .tags
        .iter()
        .map(|t| app::entities::Tag::new(t).id)
        .collect();
    let picked = |kind: EntityKind, entity: &Outline| {
        options.picked.as_ref().is_none_or(|p| {
            p.contains(&(kind, entity.key.clone())) || p.contains(&(kind, entity.id.to_string()))
        })
    };
    for (kind, list) in graph {
        let kind = *kind;
        let by_type = options
            .include
            .as_ref()
            .map_or(wanted(kind), |i| i.mentions(kind) && wanted(kind));
        for entity in list.iter().filter(|_| by_type) {
            let by_include = options
                .include
                .as_ref()
                .is_none_or(|i| i.matches(kind, &entity.key, &entity.name));
            let by_tag = tags.is_empty() || entity.tags.iter().any(|t| tags.contains(t));
            if by_include && by_tag && picked(kind, entity) {
                chosen.insert((kind, entity.key.clone()));
            }
        }
    }
    if options.include_dependencies {
        add_dependencies(servers(graph), &mut chosen, !tags.is_empty());
        // A type filter holds for dependencies too: the file has only the asked types.
        chosen.retain(|(kind, _)| wanted(*kind));
    }
    chosen
}

/// Adds, with `dependents`, the servers that use a chosen tool, prompt or resource; then
/// every chosen server's tools, prompts and resources.
fn add_dependencies(servers: &[Outline], chosen: &mut Chosen, dependents: bool) {
    if dependents {
        for server in servers {
            if server.links.iter().any(|link| chosen.contains(link)) {
                chosen.insert((EntityKind::Server, server.key.clone()));
            }
        }
    }
    for server in servers {
        if chosen.contains(&(EntityKind::Server, server.key.clone())) {
            chosen.extend(server.links.iter().cloned());
        }
    }
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
