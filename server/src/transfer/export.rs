//! Export: the gateway's configuration as one JSON file in ContextForge's format, every
//! credential still AES-256-GCM encrypted, in a stable order so two exports diff cleanly.

use std::collections::HashSet;

use app::{
    entities::{Entity, Server},
    model::EntityKind,
    transfer::{EntitySet, ExportFile},
};
use serde_json::{Map, Value, json};

pub use app::jobs::{ExportPreview, PreviewItem};

use super::selection::Include;
use crate::store::{Store, audit::NewAuditEntry};

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

/// Every stored entity the options may consider (ids still set, for picking by id).
/// All six types are read in one snapshot: an import committing meanwhile is in the
/// export entirely or not at all (never its servers without their tools).
async fn everything(store: &Store, options: &ExportOptions) -> sqlx::Result<EntitySet> {
    let inactive = options.include_inactive;
    let mut tx = store.begin_snapshot().await?;
    let set = EntitySet {
        tools: tx.all_entities(inactive).await?,
        gateways: tx.all_entities(inactive).await?,
        servers: tx.all_entities(inactive).await?,
        prompts: tx.all_entities(inactive).await?,
        resources: tx.all_entities(inactive).await?,
        roots: tx.all_entities(inactive).await?,
    };
    tx.rollback().await?;
    Ok(set)
}

/// What [`export`] would write, and why each entity is in it.
pub async fn preview(store: &Store, options: &ExportOptions) -> sqlx::Result<ExportPreview> {
    let everything = everything(store, options).await?;
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

/// Builds the export and records it in the audit log.
pub async fn export(
    store: &Store,
    options: &ExportOptions,
    exported_by: &str,
    source_gateway: &str,
) -> anyhow::Result<ExportFile> {
    let everything = everything(store, options).await?;
    let chosen = select(&everything, options);
    let mut entities = everything.retain_keys(&chosen);
    entities.clear_ids();
    let metadata = metadata(&entities, options);
    let file = ExportFile {
        version: FORMAT_VERSION.into(),
        exported_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        exported_by: exported_by.into(),
        source_gateway: source_gateway.into(),
        encryption_method: "AES-256-GCM".into(),
        entities,
        metadata,
    };
    let entry = NewAuditEntry {
        actor: exported_by,
        action: "export",
        details: json!({ "entity_counts": file.metadata["entity_counts"], "export_options": file.metadata["export_options"] }),
        ..Default::default()
    };
    store.record_audit(entry).await?;
    Ok(file)
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

fn metadata(entities: &EntitySet, options: &ExportOptions) -> Value {
    let counts = counts(entities, options);
    let dependencies = if options.include_dependencies {
        let map = |f: fn(&Server) -> &Vec<String>| -> Map<String, Value> {
            entities
                .servers
                .iter()
                .map(|s| (s.key().to_owned(), json!(f(s))))
                .collect()
        };
        json!({
            "servers_to_tools": map(|s| &s.tool_ids),
            "servers_to_prompts": map(|s| &s.prompt_ids),
            "servers_to_resources": map(|s| &s.resource_ids),
        })
    } else {
        json!({})
    };
    let types: Vec<&str> = if options.types.is_empty() {
        EntityKind::ALL.to_vec()
    } else {
        options.types.clone()
    }
    .into_iter()
    .map(EntityKind::plural)
    .collect();
    json!({
        "entity_counts": counts,
        "dependencies": dependencies,
        "export_options": {
            "include_inactive": options.include_inactive,
            "include_dependencies": options.include_dependencies,
            "selected_types": types,
            "filter_tags": options.tags,
            "include": options.include.as_ref().map(Include::describe).unwrap_or_default(),
        },
    })
}
