//! A server's links to items of a peer gateway that has not been discovered yet.
//!
//! Exports leave discovered tools and prompts out and keep servers' links to them by
//! federated name (`alpha-echo`), as ContextForge does: they resolve once the gateway,
//! imported too or already here, connects. Imports never wait on the network, so at
//! import time such a link names nothing. Each becomes a placeholder: an inactive row of
//! the linked type under that name, tied to the gateway (it goes with it) with an empty
//! `remote_name` ([`Origin::is_placeholder`]), no schema and no template; discovery
//! fills and activates it (`federation::sync::apply` upserts by federated name).
//!
//! Why a placeholder row rather than a table of pending links: the link is then an
//! ordinary link row, so the server reads, lists, exports (by name) and re-imports as
//! it did, and `ON DELETE CASCADE` cleans up with the gateway; nothing else in the store
//! has to know about pending links. Inactive, it is in no MCP list and takes no call.
//!
//! A link to a name no known gateway's slug prefixes still fails as before; so do
//! resource links (a URI carries no gateway prefix to attribute it by).

use std::collections::{HashMap, HashSet};

use app::{
    entities::{
        Entity, Gateway, Origin, Prompt, Tool,
        federation::{SEPARATOR, slugify},
        gateway::Transport,
        keys::fold_key,
        tool::{IntegrationType, RequestType},
    },
    model::EntityKind,
    validation::{Code, FieldError},
};
use uuid::Uuid;

use crate::store::{
    Store,
    entities::{EntityError, StoreTx, new_entity_id},
};

/// A link to be kept by a placeholder: its type, the federated name, the gateway (key),
/// and where the file gives it.
pub type Pending = (EntityKind, String, String, String);

/// The gateways a placeholder may be tied to (those of the file and of the store), by
/// slug: a link is looked up by its own prefixes, not compared with every gateway (which
/// cost a Unicode slugification per gateway per link: an import linking to 5,000
/// gateways' items took 25 times as long).
#[derive(Debug, Default)]
pub struct GatewaySlugs(HashMap<String, String>);

impl GatewaySlugs {
    /// The slugs of `names` (gateway keys); of two names with one slug, the later in
    /// sort order.
    pub fn new(mut names: Vec<String>) -> GatewaySlugs {
        names.sort();
        names.dedup();
        let slugs = names.into_iter().map(|name| (slugify(&name), name));
        GatewaySlugs(slugs.filter(|(slug, _)| !slug.is_empty()).collect())
    }

    /// The gateway whose slug prefixes `key` (`<slug>-<rest>`), the longest when several
    /// do; `None` for resources and names no gateway prefixes.
    pub fn gateway_of(&self, kind: EntityKind, key: &str) -> Option<String> {
        if !matches!(kind, EntityKind::Tool | EntityKind::Prompt) {
            return None;
        }
        let rest_after = |at: usize| &key[at + SEPARATOR.len()..];
        key.rmatch_indices(SEPARATOR)
            .filter(|&(at, _)| !rest_after(at).is_empty())
            .find_map(|(at, _)| self.0.get(&key[..at]))
            .cloned()
    }
}

/// The gateways a placeholder may be tied to: those of the file and of the store.
pub async fn gateway_names(
    store: &Store,
    in_file: impl Iterator<Item = &str>,
) -> sqlx::Result<GatewaySlugs> {
    let mut names: Vec<String> = store.gateway_keys().await?;
    names.extend(in_file.map(str::to_owned));
    Ok(GatewaySlugs::new(names))
}

/// Writes a placeholder for each pending link whose key names nothing yet; a warning
/// for each one written.
pub async fn write(
    tx: &mut StoreTx,
    pending: Vec<Pending>,
) -> Result<Vec<FieldError>, EntityError> {
    if pending.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = pending.iter().map(|(_, _, g, _)| g.as_str()).collect();
    let gateways = tx.entities_by_keys::<Gateway>(&names).await?;
    let mut warnings = Vec::new();
    let (mut tools, mut prompts) = (Vec::new(), Vec::new());
    let mut seen = HashSet::new();
    for kind in [EntityKind::Tool, EntityKind::Prompt] {
        let keys: Vec<&str> = pending
            .iter()
            .filter(|(k, _, _, _)| *k == kind)
            .map(|(_, key, _, _)| key.as_str())
            .collect();
        let existing: HashMap<String, Uuid> = tx.ids_by_keys(kind, &keys).await?;
        for (_, key, gateway, pointer) in pending.iter().filter(|(k, _, _, _)| *k == kind) {
            let Some(gateway) = gateways.get(fold_key(EntityKind::Gateway, gateway).as_ref())
            else {
                continue;
            };
            if existing.contains_key(key) || !seen.insert((kind, key.clone())) {
                continue;
            }
            let origin = Origin {
                gateway_id: gateway.id.expect("stored gateways have ids"),
                gateway: gateway.name().to_owned(),
                remote_name: String::new(),
            };
            warnings.push(FieldError {
                pointer: pointer.clone(),
                code: Code::PendingDiscovery,
                message: format!(
                    "{} `{key}` is not discovered yet: kept as an inactive placeholder of gateway `{}`, filled when it connects",
                    kind.singular(),
                    origin.gateway
                ),
            });
            match kind {
                EntityKind::Tool => tools.push(tool(gateway, key, origin)),
                _ => prompts.push(prompt(key, origin)),
            }
        }
    }
    tx.write_entities(tools, false).await?;
    tx.write_entities(prompts, false).await?;
    Ok(warnings)
}

/// A new row's id and timestamps.
fn stamped<E: Entity>(mut entity: E) -> E {
    let now = app::entities::Timestamp(crate::store::now());
    entity.set_timestamps(now, now);
    entity.set_id(Some(new_entity_id()));
    entity
}

fn tool(gateway: &Gateway, key: &str, origin: Origin) -> Tool {
    stamped(Tool {
        name: Some(key.to_owned()),
        url: gateway.url.clone(),
        integration_type: IntegrationType::MCP,
        request_type: match gateway.transport {
            Transport::Sse => RequestType::Sse,
            Transport::StreamableHttp => RequestType::StreamableHttp,
        },
        is_active: false,
        federation: Some(origin),
        ..Tool::default()
    })
}

fn prompt(key: &str, origin: Origin) -> Prompt {
    stamped(Prompt {
        name: Some(key.to_owned()),
        template: Some(String::new()),
        is_active: false,
        federation: Some(origin),
        ..Prompt::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gateway_slug_prefixing_a_name_owns_it() {
        let gateways = GatewaySlugs::new(vec!["alpha".to_owned(), "Alpha Beta".to_owned()]);
        let of = |key| gateways.gateway_of(EntityKind::Tool, key);
        assert_eq!(of("alpha-echo").as_deref(), Some("alpha"));
        assert_eq!(of("alpha-beta-echo").as_deref(), Some("Alpha Beta"));
        assert_eq!(of("alpha-"), None);
        assert_eq!(of("alphaecho"), None);
        assert_eq!(of("gamma-echo"), None);
        assert_eq!(gateways.gateway_of(EntityKind::Resource, "alpha-x"), None);
    }
}
