//! Applying a discovery: the store's copy of what a peer gateway offers.
//!
//! A discovered item is stored as a tool, prompt or resource like a local one, named as
//! ContextForge names it ([`federated_name`]; resources keep their URI), with its
//! [`Origin`] and its gateway's id (the row goes with the gateway). People may switch it
//! on and off and link it from servers; everything else is the peer's.

use std::collections::{HashMap, HashSet};

use app::{
    entities::{
        Entity, Gateway, JsonObject, Origin, Prompt, Resource, Timestamp, Tool, federated_name,
        gateway::Transport,
        keys::fold_key,
        same_record,
        tool::{IntegrationType, RequestType},
    },
    model::EntityKind,
    validation::Errors,
};
use serde_json::{Value, json};
use uuid::Uuid;

use super::Discovered;
use crate::{
    entities::changes,
    error::Error,
    store::{
        Store,
        entities::{StoreTx, new_entity_id},
        now,
    },
};

/// What [`apply`] did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SyncReport {
    /// The peer's tools the store holds for it now (new, changed or unchanged).
    pub tools: usize,
    pub prompts: usize,
    pub resources: usize,
    /// The gateway's items removed because the peer no longer offers them.
    pub removed: usize,
    /// Items not stored, each with why: "tool `x`: name taken by a local tool".
    pub skipped: Vec<String>,
}

/// Makes the store hold exactly what `found` offers for this gateway, in one transaction: upserts each
/// item by its federated key, removes this gateway's discovered items the peer no longer offers (their
/// server links go with them), stores the capabilities, and publishes the changes on the change feed
/// (so MCP sessions send list_changed). Items whose federated key is taken by a local entity or another
/// gateway's item are skipped and listed in the report, never overwrite.
///
/// Placeholders (an imported server's link to an item not discovered yet, see
/// [`Origin::is_placeholder`]) are filled and switched on when the peer offers the item,
/// and kept (inactive) when it does not: the link is the importer's, not the peer's.
/// The capabilities are written without a change on the feed: the gateway's lifecycle
/// listens there, and a discovery must not trigger the next one.
pub async fn apply(
    store: &Store,
    gateway_id: Uuid,
    found: &Discovered,
) -> Result<SyncReport, crate::error::Error> {
    let mut tx = store.begin().await?;
    let Some(gateway) = tx.entity_by_id::<Gateway>(gateway_id).await? else {
        tx.rollback().await?;
        return Err(Error::NotFound);
    };
    let origin = |remote: &str| Origin {
        gateway_id,
        gateway: gateway.name().to_owned(),
        remote_name: remote.to_owned(),
    };
    let mut report = SyncReport::default();
    let tools = found
        .tools
        .iter()
        .map(|t| (t.name.to_string(), tool(&gateway, origin(&t.name), t)));
    let tools = upsert(&mut tx, gateway_id, tools.collect(), &mut report).await?;
    report.tools = tools.held;
    let prompts = found
        .prompts
        .iter()
        .map(|p| (p.name.clone(), prompt(&gateway, origin(&p.name), p)));
    let prompts = upsert(&mut tx, gateway_id, prompts.collect(), &mut report).await?;
    report.prompts = prompts.held;
    let resources = found
        .resources
        .iter()
        .map(|r| (r.uri.clone(), resource(origin(&r.uri), r)));
    let resources = upsert(&mut tx, gateway_id, resources.collect(), &mut report).await?;
    report.resources = resources.held;
    if gateway.capabilities != found.capabilities {
        let mut updated = gateway.clone();
        updated.capabilities = found.capabilities.clone();
        tx.replace_doc(gateway_id, &updated).await?;
    }
    tx.commit().await?;
    for (kind, outcome) in [
        (EntityKind::Tool, tools),
        (EntityKind::Prompt, prompts),
        (EntityKind::Resource, resources),
    ] {
        changes::publish(store, kind, outcome.changed);
    }
    Ok(report)
}

/// What [`upsert`] did for one type.
struct Outcome {
    /// The peer's items of the type the store holds now.
    held: usize,
    /// Keys inserted, changed or removed: what the change feed is told.
    changed: Vec<String>,
}

/// The types discovery stores: their on/off switch, which people own.
trait Discoverable: Entity {
    fn set_active(&mut self, active: bool);
}

impl Discoverable for Tool {
    fn set_active(&mut self, active: bool) {
        self.is_active = active;
    }
}
impl Discoverable for Prompt {
    fn set_active(&mut self, active: bool) {
        self.is_active = active;
    }
}
impl Discoverable for Resource {
    fn set_active(&mut self, active: bool) {
        self.is_active = active;
    }
}

/// Stores the peer's items of one type (`offered`: each with its name on the peer) and
/// removes the gateway's others; see [`apply`].
async fn upsert<E: Discoverable>(
    tx: &mut StoreTx,
    gateway_id: Uuid,
    offered: Vec<(String, E)>,
    report: &mut SyncReport,
) -> Result<Outcome, Error> {
    let wanted = checked(offered, report);
    let keys: Vec<&str> = wanted.iter().map(Entity::key).collect();
    let taken = tx.entities_by_keys::<E>(&keys).await?;
    let mine = tx.federated::<E>(gateway_id).await?;
    let at = Timestamp(now());
    let (mut inserts, mut updates, mut kept) = (Vec::new(), Vec::new(), HashSet::new());
    let mut changed = Vec::new();
    for mut entity in wanted {
        match taken.get(fold_key(E::KIND, entity.key()).as_ref()) {
            Some(stored) if stored.federation().map(|o| o.gateway_id) == Some(gateway_id) => {
                let id = stored.id().expect("stored rows have ids");
                kept.insert(id);
                // People's switch stays; a placeholder is switched on by its discovery.
                let placeholder = stored.federation().is_some_and(Origin::is_placeholder);
                entity.set_active(stored.is_active() || placeholder);
                entity.set_id(Some(id));
                let (created, _) = stored.timestamps();
                entity.set_timestamps(created.unwrap_or(at), at);
                if !same_record(&mut entity, &mut stored.clone()) {
                    changed.push(entity.key().to_owned());
                    updates.push(entity);
                }
            }
            Some(stored) => report.skipped.push(format!(
                "{} `{}`: name taken by {}",
                E::KIND.singular(),
                entity.key(),
                owner(stored)
            )),
            None => {
                entity.set_id(Some(new_entity_id()));
                entity.set_timestamps(at, at);
                changed.push(entity.key().to_owned());
                inserts.push(entity);
            }
        }
    }
    let held = kept.len() + inserts.len();
    let gone: Vec<&E> = mine
        .iter()
        .filter(|e| !kept.contains(&e.id().unwrap_or_default()))
        .filter(|e| !e.federation().is_some_and(Origin::is_placeholder))
        .collect();
    report.removed += gone.len();
    changed.extend(gone.iter().map(|e| e.key().to_owned()));
    let gone: Vec<Uuid> = gone.iter().filter_map(|e| e.id()).collect();
    tx.delete_ids(E::KIND, &gone).await?;
    tx.write_entities(updates, true).await?;
    tx.write_entities(inserts, false).await?;
    Ok(Outcome { held, changed })
}

/// The offered items that pass the rules every stored entity passes (normalised), one
/// per federated key; the others are listed in the report.
fn checked<E: Entity>(offered: Vec<(String, E)>, report: &mut SyncReport) -> Vec<E> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut wanted = Vec::with_capacity(offered.len());
    for (remote, mut entity) in offered {
        let kind = E::KIND.singular();
        let mut errors = Errors::default();
        entity.validate("", &mut errors);
        if let Some(first) = errors.list.first() {
            report.skipped.push(format!(
                "{kind} `{remote}`: {} {}",
                first.pointer, first.message
            ));
            continue;
        }
        let fold = fold_key(E::KIND, entity.key()).into_owned();
        if let Some(other) = seen.get(&fold) {
            report.skipped.push(format!(
                "{kind} `{remote}`: its name `{}` is also that of `{other}` on the same peer",
                entity.key()
            ));
            continue;
        }
        seen.insert(fold, remote);
        wanted.push(entity);
    }
    wanted
}

/// Who holds a key a discovered item wanted: "a local tool", "gateway `x`'s tool".
fn owner<E: Entity>(stored: &E) -> String {
    match stored.federation() {
        None => format!("a local {}", E::KIND.singular()),
        Some(origin) => format!("gateway `{}`'s {}", origin.gateway, E::KIND.singular()),
    }
}

/// A discovered tool as stored: called through its gateway (its URL and transport).
fn tool(gateway: &Gateway, origin: Origin, found: &rmcp::model::Tool) -> Tool {
    let annotations = found
        .annotations
        .as_ref()
        .and_then(|a| serde_json::to_value(a).ok())
        .and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default();
    Tool {
        name: Some(federated_name(gateway.name(), &found.name)),
        display_name: found.title.clone(),
        url: gateway.url.clone(),
        integration_type: IntegrationType::MCP,
        request_type: match gateway.transport {
            Transport::Sse => RequestType::Sse,
            Transport::StreamableHttp => RequestType::StreamableHttp,
        },
        description: found.description.as_deref().map(str::to_owned),
        input_schema: (*found.input_schema).clone(),
        output_schema: found.output_schema.as_deref().cloned(),
        annotations,
        is_active: true,
        federation: Some(origin),
        ..Tool::default()
    }
}

/// A discovered prompt as stored: its arguments as the input schema's properties (the
/// form `prompts/list` reads them back from); the template stays on the peer.
fn prompt(gateway: &Gateway, origin: Origin, found: &rmcp::model::Prompt) -> Prompt {
    Prompt {
        name: Some(federated_name(gateway.name(), &found.name)),
        original_name: Some(found.name.clone()),
        display_name: found.title.clone(),
        template: Some(String::new()),
        description: found.description.clone(),
        input_schema: arguments_schema(found.arguments.as_deref().unwrap_or_default()),
        is_active: true,
        federation: Some(origin),
        ..Prompt::default()
    }
}

/// `{"type": "object", "properties": {arg: {"type": "string", "description"?}}, "required": [..]}`.
fn arguments_schema(arguments: &[rmcp::model::PromptArgument]) -> JsonObject {
    let mut properties = JsonObject::new();
    let mut required = Vec::new();
    for argument in arguments {
        let mut property = json!({"type": "string"});
        if let Some(description) = &argument.description {
            property["description"] = json!(description);
        }
        properties.insert(argument.name.clone(), property);
        if argument.required == Some(true) {
            required.push(json!(argument.name));
        }
    }
    let mut schema = JsonObject::new();
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    schema
}

/// A discovered resource as stored: its URI is its key; its content stays on the peer.
fn resource(origin: Origin, found: &rmcp::model::Resource) -> Resource {
    Resource {
        name: Some(found.name.clone()),
        uri: Some(found.uri.clone()),
        description: found.description.clone(),
        mime_type: found.mime_type.clone(),
        is_active: true,
        federation: Some(origin),
        ..Resource::default()
    }
}
