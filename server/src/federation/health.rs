//! Peer gateways' health: the `gateway_health` rows (one per gateway, written by the
//! replica holding its lease, read by every replica), the audit row and metric of each
//! status change, and the health checks' schedule.

use std::{collections::HashMap, time::Duration};

use app::{
    entities::{Entity, Gateway, Timestamp, gateway::HealthCheck},
    federation::{FirstConnection, GatewayHealth, PeerStatus},
    jobs::{Action, EntityResult},
    model::EntityKind,
};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::{
    invoke::metrics::Metrics,
    store::{Store, audit::NewAuditEntry, now, with_pool},
};

/// Who the audit log names for status changes: no user made them.
pub const ACTOR: &str = "federation";
/// The audit action of a status change.
pub const STATUS_ACTION: &str = "gateway.status";
/// Health rows read per query (`IN (…)` list).
const IN_CHUNK: usize = 1000;
/// The longest pause between two attempts at an unreachable peer.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(sqlx::FromRow)]
struct HealthRow {
    gateway_id: Uuid,
    status: String,
    last_seen: Option<DateTime<Utc>>,
    last_error: Option<String>,
    checked_at: Option<DateTime<Utc>>,
    tools: i64,
    prompts: i64,
    resources: i64,
}

impl From<HealthRow> for GatewayHealth {
    fn from(row: HealthRow) -> GatewayHealth {
        let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
        GatewayHealth {
            status: PeerStatus::parse(&row.status),
            last_seen: row.last_seen.map(Timestamp),
            last_error: row.last_error,
            checked_at: row.checked_at.map(Timestamp),
            tools: count(row.tools),
            prompts: count(row.prompts),
            resources: count(row.resources),
        }
    }
}

const COLUMNS: &str =
    "gateway_id, status, last_seen, last_error, checked_at, tools, prompts, resources";

impl Store {
    /// A gateway's health; `Unknown` until a replica has contacted it.
    pub async fn gateway_health(&self, id: Uuid) -> sqlx::Result<GatewayHealth> {
        Ok(self
            .gateway_healths(&[id])
            .await?
            .remove(&id)
            .unwrap_or_default())
    }

    /// The health of each of these gateways that has been contacted.
    pub async fn gateway_healths(
        &self,
        ids: &[Uuid],
    ) -> sqlx::Result<HashMap<Uuid, GatewayHealth>> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IN_CHUNK) {
            let rows: Vec<HealthRow> = with_pool!(self, |pool| {
                let mut query = QueryBuilder::new(format!(
                    "SELECT {COLUMNS} FROM gateway_health WHERE gateway_id IN ("
                ));
                let mut list = query.separated(", ");
                for id in chunk {
                    list.push_bind(*id);
                }
                query.push(")");
                query.build_query_as().fetch_all(pool).await
            })?;
            found.extend(rows.into_iter().map(|r| (r.gateway_id, r.into())));
        }
        Ok(found)
    }

    /// Every contacted gateway's name and health, by name (for `/metrics`).
    pub async fn all_gateway_health(&self) -> sqlx::Result<Vec<(String, GatewayHealth)>> {
        #[derive(sqlx::FromRow)]
        struct Named {
            name: String,
            #[sqlx(flatten)]
            health: HealthRow,
        }
        let sql = "SELECT gateways.key AS name, gateway_health.gateway_id, status, last_seen, \
                   last_error, checked_at, tools, prompts, resources \
                   FROM gateway_health JOIN gateways ON gateways.id = gateway_health.gateway_id \
                   ORDER BY gateways.key";
        let rows: Vec<Named> = with_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.name, r.health.into()))
            .collect())
    }

    /// Stores a gateway's health (a gateway deleted meanwhile: a foreign-key error).
    async fn put_gateway_health(&self, id: Uuid, health: &GatewayHealth) -> sqlx::Result<()> {
        let sql = format!(
            "INSERT INTO gateway_health ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (gateway_id) DO UPDATE SET status = excluded.status, \
             last_seen = excluded.last_seen, last_error = excluded.last_error, \
             checked_at = excluded.checked_at, tools = excluded.tools, \
             prompts = excluded.prompts, resources = excluded.resources"
        );
        with_pool!(self, |pool| sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(health.status.as_str())
            .bind(health.last_seen.map(|t| t.0))
            .bind(health.last_error.as_deref())
            .bind(health.checked_at.map(|t| t.0))
            .bind(i64::from(health.tools))
            .bind(i64::from(health.prompts))
            .bind(i64::from(health.resources))
            .execute(pool)
            .await
            .map(drop))
    }
}

/// What one contact with a peer came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Contact {
    /// It answered; with the counts of a complete discovery, or `None` for a ping.
    Answered(Option<Counts>),
    /// It did not answer, or refused the credentials (`AuthFailed`); why, never a secret.
    Failed(PeerStatus, String),
}

/// What a discovery found (and stored).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub tools: u32,
    pub prompts: u32,
    pub resources: u32,
}

/// Records one contact with `gateway`: its health row, and when the status changed, an
/// audit row and the status-change metric. Returns the health now stored.
pub async fn record(
    store: &Store,
    metrics: &Metrics,
    gateway: &Gateway,
    contact: Contact,
) -> sqlx::Result<GatewayHealth> {
    let id = gateway.id.expect("a stored gateway has an id");
    let before = store.gateway_health(id).await?;
    let at = Timestamp(now());
    let mut health = GatewayHealth {
        checked_at: Some(at),
        ..before.clone()
    };
    match contact {
        Contact::Answered(counts) => {
            health.status = PeerStatus::Reachable;
            health.last_seen = Some(at);
            health.last_error = None;
            if let Some(c) = counts {
                (health.tools, health.prompts, health.resources) =
                    (c.tools, c.prompts, c.resources);
            }
        }
        Contact::Failed(status, why) => {
            health.status = status;
            health.last_error = Some(why);
        }
    }
    store.put_gateway_health(id, &health).await?;
    if health.status != before.status {
        changed(store, metrics, gateway, &before, &health).await?;
    }
    Ok(health)
}

/// The audit row, log line and metric of a status change.
async fn changed(
    store: &Store,
    metrics: &Metrics,
    gateway: &Gateway,
    before: &GatewayHealth,
    after: &GatewayHealth,
) -> sqlx::Result<()> {
    let name = gateway.key();
    tracing::info!(
        gateway.name = name,
        gateway.status = after.status.as_str(),
        gateway.error = after.last_error.as_deref().unwrap_or_default(),
        "gateway {name}: {} → {}",
        before.status.as_str(),
        after.status.as_str()
    );
    metrics.record_gateway_status(name, after.status.as_str());
    store
        .record_audit(NewAuditEntry {
            actor: ACTOR,
            action: STATUS_ACTION,
            target_type: Some("gateways"),
            target_name: Some(name),
            details: json!({
                "id": gateway.id,
                "from": before.status,
                "to": after.status,
                "error": after.last_error,
            }),
        })
        .await
}

/// How long an import waits, after its commit, for the first connection to the gateways
/// it wrote.
pub const FIRST_CONNECTION_WAIT: Duration = Duration::from_secs(10);
/// How often that wait looks at the health rows.
const FIRST_CONNECTION_POLL: Duration = Duration::from_millis(200);

/// How the first connection to each of these gateways went: each one's health once it
/// was checked after `since` (by whichever replica holds its lease), waiting at most
/// `budget` in all. Inactive gateways are not connected; unknown ids are left out.
pub async fn first_connections(
    store: &Store,
    gateways: &[Uuid],
    since: DateTime<Utc>,
    budget: Duration,
) -> Vec<FirstConnection> {
    let mut named = Vec::with_capacity(gateways.len());
    for id in gateways {
        if let Ok(Some(gateway)) = store.get_entity::<Gateway>(*id).await {
            named.push((*id, gateway.key().to_owned(), gateway.is_active));
        }
    }
    let fresh =
        |h: Option<&GatewayHealth>| h.and_then(|h| h.checked_at).is_some_and(|t| t.0 >= since);
    let deadline = tokio::time::Instant::now() + budget;
    let mut healths = loop {
        let healths = store
            .gateway_healths(&named.iter().map(|(id, ..)| *id).collect::<Vec<_>>())
            .await
            .unwrap_or_default();
        let done = (named.iter()).all(|(id, _, active)| !active || fresh(healths.get(id)));
        if done || tokio::time::Instant::now() >= deadline {
            break healths;
        }
        tokio::time::sleep(FIRST_CONNECTION_POLL).await;
    };
    named
        .into_iter()
        .map(|(id, name, active)| {
            let health = healths.remove(&id);
            let (status, message) = match health {
                _ if !active => (PeerStatus::Unknown, "inactive: not connected".to_owned()),
                Some(h) if fresh(Some(&h)) => (h.status, h.describe()),
                Some(h) if h.status != PeerStatus::Unknown => (
                    h.status,
                    format!(
                        "not checked since the import yet (before: {})",
                        h.describe()
                    ),
                ),
                // `budget` is what was left of the wait: the whole wait is what was given.
                _ => (
                    PeerStatus::Unknown,
                    format!("not connected within {} s", FIRST_CONNECTION_WAIT.as_secs()),
                ),
            };
            FirstConnection {
                name,
                status,
                message,
            }
        })
        .collect()
}

/// The ids of the gateways an import created or changed (by their stored keys).
pub async fn written_gateways(store: &Store, results: &[EntityResult]) -> Vec<Uuid> {
    let mut ids = Vec::new();
    for r in results.iter().filter(|r| {
        r.kind == EntityKind::Gateway
            && matches!(
                r.action,
                Action::Created | Action::Updated | Action::Renamed
            )
    }) {
        let key = r.new_name.as_deref().unwrap_or(&r.name);
        if let Ok(Some(id)) = store.id_by_key(EntityKind::Gateway, key).await {
            ids.push(id);
        }
    }
    ids
}

/// A gateway's check settings, with ContextForge's defaults when it has none.
pub fn settings_of(gateway: &Gateway) -> HealthCheck {
    gateway.health_check.clone().unwrap_or(HealthCheck {
        url: None,
        interval: 30,
        timeout: 10,
        retries: 3,
    })
}

/// The pause before the next attempt after `failures` failed checks in a row: the
/// interval, doubled per failure beyond the first, at most 8 intervals or 5 minutes.
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(3);
    (interval * factor).min(MAX_BACKOFF.max(interval))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_interval_and_stops_at_eight_intervals() {
        let s = Duration::from_secs;
        let waits: Vec<u64> = (0..6).map(|n| backoff(s(1), n).as_secs()).collect();
        assert_eq!(waits, [1, 1, 2, 4, 8, 8]);
        assert_eq!(backoff(s(60), 10), s(300), "at most five minutes");
        assert_eq!(
            backoff(s(600), 10),
            s(600),
            "never shorter than the interval"
        );
    }
}
