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
    /// Entities carrying any of these tags (all of them with `tags_all`), plus the servers
    /// that use them; no other dependency: those servers keep their whole link lists.
    pub tags: Vec<String>,
    /// Every tag of `tags` must match (default: any one).
    pub tags_all: bool,
    /// Entities named by these names or globs, plus dependencies.
    pub include: Option<Include>,
    pub include_inactive: bool,
    /// Add what selected entities need (a server's tools, prompts, resources, disabled
    /// ones too) or, with tags, the servers that use the tagged entities.
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

/// The chosen keys of `kind` missing from `list` (the enabled entities): disabled
/// entities the chosen servers link to, in key order.
fn disabled_dependencies<'c>(
    kind: EntityKind,
    list: &[Outline],
    chosen: &'c Chosen,
) -> Vec<&'c str> {
    let listed: HashSet<&str> = list.iter().map(|e| e.key.as_str()).collect();
    let mut keys: Vec<&str> = chosen
        .iter()
        .filter(|(k, key)| *k == kind && !listed.contains(key.as_str()))
        .map(|(_, key)| key.as_str())
        .collect();
    keys.sort_unstable();
    keys
}

/// What [`export`] would write, and why each entity is in it.
pub async fn preview(store: &Store, options: &ExportOptions) -> sqlx::Result<ExportPreview> {
    let mut snapshot = store.begin_snapshot().await?;
    let graph = graph(&mut snapshot, options).await?;
    // Servers' links to discovered items are no dependencies: the file names them only.
    let discovered = snapshot.discovered_keys().await?;
    snapshot.rollback().await?;
    let direct = select(
        &graph,
        &ExportOptions {
            include_dependencies: false,
            ..options.clone()
        },
    );
    let mut chosen = select(&graph, options);
    chosen.retain(|k| !discovered.contains(k));
    let warnings = unmatched(&graph, options);
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
        let disabled = disabled_dependencies(*kind, list, &chosen);
        let n = taken.len() + disabled.len();
        if n > 0 || options.types.contains(kind) {
            counts.insert(kind.plural().into(), json!(n));
        }
        for key in disabled {
            let required_by = chosen_servers
                .iter()
                .filter(|s| s.links.contains(&(*kind, key.to_owned())))
                .map(|s| s.key.clone())
                .collect();
            dependencies.push(PreviewItem {
                kind: *kind,
                name: key.to_owned(),
                required_by,
            });
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
            // A server taken for its tagged entities is required by them.
            let required_by = match kind {
                EntityKind::Server => entity
                    .links
                    .iter()
                    .filter(|link| direct.contains(*link))
                    .map(|(_, key)| key.clone())
                    .collect(),
                _ => chosen_servers
                    .iter()
                    .filter(|s| s.links.contains(&(*kind, entity.key.clone())))
                    .map(|s| s.key.clone())
                    .collect(),
            };
            dependencies.push(item(required_by));
        }
    }
    Ok(ExportPreview {
        counts,
        total: selected.len() + dependencies.len(),
        selected,
        dependencies,
        warnings,
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

/// What the writer takes of each type.
pub(super) struct Take {
    /// The keys to take; `None` takes every entity of the asked types.
    chosen: Option<Chosen>,
    /// Disabled entities taken beside the enabled ones: what exported servers link to.
    inactive_links: Chosen,
}

impl Take {
    /// True when the pages of `kind` must hold disabled entities too.
    fn inactive(&self, kind: EntityKind, options: &ExportOptions) -> bool {
        // A selection may hold disabled dependencies; so may the plain export's extras.
        options.include_inactive
            || self.chosen.is_some()
            || self.inactive_links.iter().any(|(k, _)| *k == kind)
    }

    /// True when the entity of `kind` with `key` goes into the file.
    fn takes(&self, kind: EntityKind, key: &str, active: bool, options: &ExportOptions) -> bool {
        match &self.chosen {
            Some(chosen) => chosen.contains(&(kind, key.to_owned())),
            None => {
                options.include_inactive
                    || active
                    || self.inactive_links.contains(&(kind, key.to_owned()))
            }
        }
    }
}

/// An export whose selection is settled: what can fail before the first byte is sent.
pub struct Plan {
    options: ExportOptions,
    take: Take,
    /// Selections that match nothing, each named (the export still runs).
    warnings: Vec<String>,
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
        let (mut warnings, mut inactive_links) = (Vec::new(), Chosen::new());
        let chosen = match filtered {
            true => {
                let graph = graph(&mut snapshot, options).await?;
                warnings = unmatched(&graph, options);
                Some(select(&graph, options))
            }
            false => None,
        };
        let servers_out = options.types.is_empty() || options.types.contains(&EntityKind::Server);
        if chosen.is_none()
            && !options.include_inactive
            && options.include_dependencies
            && servers_out
        {
            inactive_links = snapshot
                .inactive_links_of_active_servers()
                .await?
                .into_iter()
                .filter(|(kind, _)| options.types.is_empty() || options.types.contains(kind))
                .collect();
        }
        Ok(Plan {
            options: options.clone(),
            take: Take {
                chosen,
                inactive_links,
            },
            warnings,
            snapshot,
        })
    }

    /// Selections that match nothing, each named.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
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
        writer::all_lists(&mut file, &mut self.snapshot, &self.options, &self.take).await?;
        self.snapshot.rollback().await?;
        let mut written = file.finish(&self.options).await?;
        written.warnings = std::mem::take(&mut self.warnings);
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

/// The tags asked for, normalised.
fn tag_ids(options: &ExportOptions) -> HashSet<String> {
    options
        .tags
        .iter()
        .map(|t| app::entities::Tag::new(t).id)
        .collect()
}

/// True when `entity` carries the tags asked for: any of them, or all with `tags_all`.
fn tagged(entity: &Outline, tags: &HashSet<String>, all: bool) -> bool {
    match all {
        true => tags.iter().all(|t| entity.tags.contains(t)),
        false => tags.is_empty() || entity.tags.iter().any(|t| tags.contains(t)),
    }
}

/// The keys the export takes, by the rules of [`ExportOptions`].
fn select(graph: &Graph, options: &ExportOptions) -> Chosen {
    let mut chosen = Chosen::new();
    let wanted = |kind: EntityKind| options.types.is_empty() || options.types.contains(&kind);
    let tags = tag_ids(options);
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
            if by_include && tagged(entity, &tags, options.tags_all) && picked(kind, entity) {
                chosen.insert((kind, entity.key.clone()));
            }
        }
    }
    match (options.include_dependencies, tags.is_empty()) {
        (false, _) => {}
        // Tags take exactly the tagged entities and the servers using them, whatever the
        // type filter: the servers are what the tagged entities are for.
        (true, false) => add_dependents(servers(graph), &mut chosen),
        (true, true) => {
            add_dependencies(servers(graph), &mut chosen);
            // A type filter holds for dependencies too: the file has only the asked types.
            chosen.retain(|(kind, _)| wanted(*kind));
        }
    }
    chosen
}

/// Adds the servers that use a chosen tool, prompt or resource.
fn add_dependents(servers: &[Outline], chosen: &mut Chosen) {
    for server in servers {
        if server.links.iter().any(|link| chosen.contains(link)) {
            chosen.insert((EntityKind::Server, server.key.clone()));
        }
    }
}

/// Adds every chosen server's tools, prompts and resources (disabled ones too: the
/// server cannot be imported without them).
fn add_dependencies(servers: &[Outline], chosen: &mut Chosen) {
    for server in servers {
        if chosen.contains(&(EntityKind::Server, server.key.clone())) {
            chosen.extend(server.links.iter().cloned());
        }
    }
}

/// The `--include` items and tags that select nothing, each as a warning.
fn unmatched(graph: &Graph, options: &ExportOptions) -> Vec<String> {
    let state = if options.include_inactive {
        ""
    } else {
        "enabled "
    };
    let mut warnings = Vec::new();
    if let Some(include) = &options.include {
        let all = graph.iter().flat_map(|(kind, list)| {
            list.iter()
                .map(move |e| (*kind, e.key.as_str(), e.name.as_str()))
        });
        for item in include.unmatched(all) {
            warnings.push(format!("--include `{item}` matches no {state}entity"));
        }
    }
    let wanted = |kind: &EntityKind| options.types.is_empty() || options.types.contains(kind);
    for tag in &options.tags {
        let id = app::entities::Tag::new(tag).id;
        let used = graph
            .iter()
            .filter(|(kind, _)| wanted(kind))
            .any(|(_, list)| list.iter().any(|e| e.tags.contains(&id)));
        if !used {
            warnings.push(format!(
                "--tags `{tag}`: no {state}entity of the exported types has this tag"
            ));
        }
    }
    warnings
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
