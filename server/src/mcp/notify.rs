//! `notifications/*/list_changed`: each live session watches the store's change feed
//! and tells its client when a list in its scope changed: this process's writes and, on
//! PostgreSQL, the other replicas' (see [`crate::entities::changes`]).

use std::{collections::HashSet, time::Duration};

use app::{
    entities::{Entity, keys::fold_key, server::Server},
    model::EntityKind,
};
use rmcp::{Peer, RoleServer};
use tokio::sync::broadcast::error::RecvError;

use super::catalog::Scope;
use crate::{
    entities::changes::{self, Change},
    store::Store,
};

/// How often an idle watcher looks whether its session has ended.
const IDLE_CHECK: Duration = Duration::from_secs(15);

/// Watches the feed for the session of `peer` until its transport closes.
pub fn watch(store: Store, scope: Scope, peer: Peer<RoleServer>) {
    let mut feed = changes::subscribe(&store);
    tokio::spawn(async move {
        let mut scope = scope;
        while !peer.is_transport_closed() {
            let changed = match tokio::time::timeout(IDLE_CHECK, feed.recv()).await {
                Err(_) => continue,
                Ok(Err(RecvError::Closed)) => break,
                // Fell behind: some list may have changed.
                Ok(Err(RecvError::Lagged(_))) => LISTS.to_vec(),
                // Boxed: the task lives as long as its session, at the size of its largest
                // state, and a store read inline would make every idle session carry it.
                Ok(Ok(change)) => Box::pin(affected(&store, &mut scope, &change)).await,
            };
            for kind in changed {
                if Box::pin(tell(&peer, kind)).await.is_err() {
                    return;
                }
            }
        }
    });
}

const LISTS: [EntityKind; 3] = [EntityKind::Tool, EntityKind::Prompt, EntityKind::Resource];

/// The lists of `scope` that `change` alters. A change to the scope's own server
/// (its links, or whether it is active) may alter all three; it is read again.
async fn affected(store: &Store, scope: &mut Scope, change: &Change) -> Vec<EntityKind> {
    let Scope::Server(server) = scope else {
        return if LISTS.contains(&change.kind) {
            vec![change.kind]
        } else {
            Vec::new()
        };
    };
    // A change without keys may have touched any entity of its kind.
    let named = |kind: EntityKind, keys: &[String]| {
        if change.keys.is_empty() {
            return true;
        }
        let folded: HashSet<_> = keys.iter().map(|k| fold_key(kind, k)).collect();
        change
            .keys
            .iter()
            .any(|k| folded.contains(&fold_key(kind, k)))
    };
    if change.kind == EntityKind::Server {
        if !named(EntityKind::Server, &[server.key().to_owned()]) {
            return Vec::new();
        }
        if let Some(id) = server.id
            && let Ok(Some(fresh)) = store.get_entity::<Server>(id).await
        {
            *server = std::sync::Arc::new(fresh);
        }
        return LISTS.to_vec();
    }
    let linked = server
        .links()
        .into_iter()
        .any(|(kind, keys)| kind == change.kind && named(kind, keys));
    if linked {
        vec![change.kind]
    } else {
        Vec::new()
    }
}

/// Sends `kind`'s `list_changed`; an error means the session is gone.
async fn tell(peer: &Peer<RoleServer>, kind: EntityKind) -> Result<(), ()> {
    let sent = match kind {
        EntityKind::Tool => peer.notify_tool_list_changed().await,
        EntityKind::Prompt => peer.notify_prompt_list_changed().await,
        _ => peer.notify_resource_list_changed().await,
    };
    sent.map_err(drop)
}
