//! When each API token was last used: noted in memory by every request that presents
//! it, written to the store in the background at most once per [`FLUSH_EVERY`].
//!
//! This is bookkeeping, so it never delays or fails the request: written in the
//! request, it made every read a write, and a read then waited for an import's write
//! lock and failed with it. A write that cannot be made now is tried again next round.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::{Store, now};

/// How often noted uses are written: `last_used_at` is at most this stale.
pub const FLUSH_EVERY: Duration = Duration::from_secs(30);

/// Uses noted since the last write, one entry per token (the latest use).
#[derive(Default)]
pub struct TokenUse {
    pending: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

impl TokenUse {
    /// Notes that token `id` was used now.
    pub fn record(&self, id: Uuid) {
        self.pending
            .lock()
            .expect("token use lock")
            .insert(id, now());
    }

    /// Writes the noted uses; those the store refuses now stay for the next round.
    pub async fn flush(&self, store: &Store) {
        let batch: Vec<_> = std::mem::take(&mut *self.pending.lock().expect("token use lock"))
            .into_iter()
            .collect();
        let mut rest = batch.into_iter();
        while let Some((id, at)) = rest.next() {
            if let Err(e) = store.touch_token(id, at).await {
                tracing::info!(error.detail = %e, "token last-use times not written yet; retrying later");
                let mut pending = self.pending.lock().expect("token use lock");
                for (id, at) in std::iter::once((id, at)).chain(rest) {
                    // A use noted meanwhile is newer than the one that failed.
                    pending.entry(id).or_insert(at);
                }
                return;
            }
        }
    }

    /// Writes noted uses every [`FLUSH_EVERY`] until aborted (then call [`TokenUse::flush`]).
    pub fn spawn_flusher(self: std::sync::Arc<Self>, store: Store) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_EVERY).await;
                self.flush(&store).await;
            }
        })
    }
}
