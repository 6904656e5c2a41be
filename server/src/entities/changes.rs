//! The in-process change feed: after a write commits, the keys it touched, so live MCP
//! sessions can tell their clients that a list changed. One feed per store (per pool),
//! so a test process holding several gateways keeps them apart; another replica's
//! writes are not heard (they reach its own sessions only).

use std::{
    any::Any,
    sync::{Arc, LazyLock, Mutex, Weak},
};

use app::model::EntityKind;
use tokio::sync::broadcast;

use crate::store::{Store, with_pool};

/// Entities of one kind written by one committed change (keys as stored).
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub kind: EntityKind,
    pub keys: Vec<String>,
}

/// Changes a slow session may fall behind by before it is told "something changed".
const CAPACITY: usize = 256;

struct Feed {
    /// The pool's connect options, alive as long as the pool is.
    owner: Weak<dyn Any + Send + Sync>,
    sender: broadcast::Sender<Change>,
}

static FEEDS: LazyLock<Mutex<Vec<Feed>>> = LazyLock::new(Mutex::default);

fn feed(store: &Store) -> broadcast::Sender<Change> {
    let owner: Arc<dyn Any + Send + Sync> = with_pool!(store, |pool| pool.connect_options());
    let mut feeds = FEEDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    feeds.retain(|f| f.owner.strong_count() > 0);
    if let Some(found) = feeds
        .iter()
        .find(|f| std::ptr::addr_eq(f.owner.as_ptr(), Arc::as_ptr(&owner)))
    {
        return found.sender.clone();
    }
    let sender = broadcast::channel(CAPACITY).0;
    feeds.push(Feed {
        owner: Arc::downgrade(&owner),
        sender: sender.clone(),
    });
    sender
}

/// Tells the store's listeners that these entities changed (call after the commit).
pub fn publish(store: &Store, kind: EntityKind, keys: Vec<String>) {
    if !keys.is_empty() {
        // No listener is no error: nobody needs telling.
        let _ = feed(store).send(Change { kind, keys });
    }
}

/// The changes committed through `store` from now on.
pub fn subscribe(store: &Store) -> broadcast::Receiver<Change> {
    feed(store).subscribe()
}
