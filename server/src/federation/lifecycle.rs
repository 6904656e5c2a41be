//! The federation lifecycle, one per `serve` process: every active gateway is watched by
//! a task of its own that, while this replica holds the gateway's lease, connects to the
//! peer (`peers.discover` → `sync::apply` → health), then pings it on its `health_check`
//! settings, with backoff while it is unreachable. The change feed starts, restarts and
//! stops the tasks (a gateway created, imported, updated, activated, deactivated,
//! deleted); a peer's `list_changed` makes its task discover again. A periodic rescan
//! picks up what other replicas wrote, and leases held by a replica that stopped.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use app::{
    entities::{Entity, Gateway, gateway::HealthCheck},
    federation::{FirstConnection, PeerStatus},
    model::EntityKind,
};
use tokio::{
    sync::{Notify, Semaphore, broadcast::error::RecvError},
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    health::{self, Contact, Counts, backoff, settings_of},
    lease,
    peer::{PeerError, Peers},
    sync,
};
use crate::{
    entities::changes::{self, Change},
    invoke::metrics::Metrics,
    store::{Store, entities::ListQuery},
};

/// How often every replica looks for gateways it is not watching yet (written through
/// another replica) and for leases that lapsed.
const RESCAN: Duration = Duration::from_secs(10);
/// A discovery lists every page of three lists: it may take a few check timeouts.
const DISCOVERY_TIMEOUTS: u32 = 3;
/// The pause between the retries of one failed check.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Peers contacted at once by checks and discoveries (federated calls are not counted).
/// Each contact holds a connection and, while a name resolves, a blocking thread: with
/// 5,000 unreachable gateways all checked at once, the lookups and lease writes starved
/// the process (an export over REST took minutes).
const CONTACTS_AT_ONCE: usize = 32;

/// What the lifecycle and a one-off connection need. Cheap to clone.
#[derive(Clone)]
pub struct Federation {
    pub store: Store,
    pub peers: Peers,
    pub metrics: Metrics,
    /// This process's name on the leases it holds.
    owner: Arc<str>,
    /// A permit per peer contact in progress ([`CONTACTS_AT_ONCE`]).
    contacts: Arc<Semaphore>,
}

impl Federation {
    pub fn new(store: Store, peers: Peers, metrics: Metrics) -> Federation {
        let owner = format!("{}:{}", std::process::id(), Uuid::new_v4().simple());
        Federation {
            store,
            peers,
            metrics,
            owner: owner.into(),
            contacts: Arc::new(Semaphore::new(CONTACTS_AT_ONCE)),
        }
    }

    /// The name this process holds leases under.
    pub fn owner(&self) -> &str {
        &self.owner
    }
}

/// The running lifecycle; [`Lifecycle::stop`] ends it and gives its leases up.
pub struct Lifecycle {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Lifecycle {
    /// Watches every active gateway from now on.
    pub fn start(federation: Federation) -> Lifecycle {
        let cancel = CancellationToken::new();
        // Subscribed before the first scan, so that no change falls in between.
        let feed = changes::subscribe(&federation.store);
        let listed = federation.peers.list_changes();
        let supervisor = Supervisor {
            federation,
            cancel: cancel.clone(),
            watched: HashMap::new(),
        };
        let task = tokio::spawn(supervisor.run(feed, listed));
        Lifecycle { cancel, task }
    }

    /// Stops every task; the leases this replica held are released (another replica
    /// takes over at its next check, not only once they expire).
    pub async fn stop(self) {
        self.cancel.cancel();
        if let Err(e) = self.task.await {
            tracing::warn!(error.detail = %e, "the federation lifecycle ended badly");
        }
    }
}

/// One watched gateway's task.
struct Watch {
    key: String,
    signal: Arc<Signal>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// How the supervisor tells a task to discover again now.
#[derive(Default)]
struct Signal {
    rediscover: AtomicBool,
    wake: Notify,
}

impl Signal {
    fn rediscover(&self) {
        self.rediscover.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

struct Supervisor {
    federation: Federation,
    cancel: CancellationToken,
    watched: HashMap<Uuid, Watch>,
}

impl Supervisor {
    async fn run(
        mut self,
        mut feed: tokio::sync::broadcast::Receiver<Change>,
        mut listed: tokio::sync::broadcast::Receiver<Uuid>,
    ) {
        let mut rescan = tokio::time::interval(RESCAN);
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => break,
                _ = rescan.tick() => self.rescan().await,
                change = feed.recv() => match change {
                    // No keys: some gateways changed (another replica's write, heard late).
                    Ok(Change { kind: EntityKind::Gateway, keys }) if keys.is_empty() => {
                        self.rescan().await;
                        self.watched.values().for_each(|w| w.signal.rediscover());
                    }
                    Ok(Change { kind: EntityKind::Gateway, keys }) => {
                        for key in keys {
                            self.changed(&key).await;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => self.rescan().await,
                    Err(RecvError::Closed) => feed = changes::subscribe(&self.federation.store),
                },
                id = listed.recv() => match id {
                    Ok(id) => {
                        if let Some(watch) = self.watched.get(&id) {
                            watch.signal.rediscover();
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        self.watched.values().for_each(|w| w.signal.rediscover());
                    }
                    Err(RecvError::Closed) => listed = self.federation.peers.list_changes(),
                },
            }
        }
        let watched = std::mem::take(&mut self.watched);
        for watch in watched.values() {
            watch.cancel.cancel();
        }
        for (_, watch) in watched {
            let _ = watch.task.await;
        }
    }

    /// Watches every active gateway not watched yet; forgets the tasks that ended.
    async fn rescan(&mut self) {
        self.watched.retain(|_, w| !w.task.is_finished());
        // Peers are few (each is a gateway someone registered): one list.
        let active = ListQuery::default();
        let gateways = match self
            .federation
            .store
            .list_entities::<Gateway>(&active)
            .await
        {
            Ok((gateways, _)) => gateways,
            Err(e) => {
                tracing::warn!(error.detail = %e, "federation: cannot list the gateways");
                return;
            }
        };
        for gateway in gateways {
            if let Some(id) = gateway.id.filter(|id| !self.watched.contains_key(id)) {
                self.watch(id, gateway.key().to_owned());
            }
        }
    }

    /// A gateway with this key was written: (re)connect it when active, else stop.
    async fn changed(&mut self, key: &str) {
        let found = match self
            .federation
            .store
            .id_by_key(EntityKind::Gateway, key)
            .await
        {
            Ok(Some(id)) => self.federation.store.get_entity::<Gateway>(id).await,
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        let gateway = match found {
            Ok(gateway) => gateway,
            Err(e) => {
                tracing::warn!(error.detail = %e, "federation: cannot read gateway {key}");
                return;
            }
        };
        match gateway {
            Some(gateway) if gateway.is_active => {
                let id = gateway.id.expect("a stored gateway has an id");
                match self.watched.get_mut(&id) {
                    Some(watch) if !watch.task.is_finished() => {
                        watch.key = key.to_owned();
                        watch.signal.rediscover();
                    }
                    _ => self.watch(id, key.to_owned()),
                }
            }
            Some(gateway) => {
                let id = gateway.id.expect("a stored gateway has an id");
                self.unwatch(id).await;
            }
            None => {
                // Deleted, or renamed away from this key: the task watching it by id.
                let gone: Vec<Uuid> = (self.watched.iter())
                    .filter(|(_, w)| w.key == key)
                    .map(|(id, _)| *id)
                    .collect();
                for id in gone {
                    self.unwatch(id).await;
                }
            }
        }
    }

    fn watch(&mut self, id: Uuid, key: String) {
        let signal = Arc::new(Signal::default());
        let cancel = self.cancel.child_token();
        let task = tokio::spawn(watch(
            self.federation.clone(),
            id,
            signal.clone(),
            cancel.clone(),
        ));
        self.watched.insert(
            id,
            Watch {
                key,
                signal,
                cancel,
                task,
            },
        );
    }

    /// Stops watching a gateway deactivated or deleted, and closes its session.
    async fn unwatch(&mut self, id: Uuid) {
        if let Some(watch) = self.watched.remove(&id) {
            watch.cancel.cancel();
            let _ = watch.task.await;
        }
        self.federation.peers.forget(id).await;
    }
}

/// What one attempt at a peer came to.
enum Attempt {
    Contact(Contact),
    /// The peer failed too often lately; the next try is allowed after this long.
    CircuitOpen(Duration),
}

/// One gateway's task: while this replica holds the lease, connect, then check; renew
/// the lease every interval; end when the gateway is gone or inactive, or on cancel.
async fn watch(federation: Federation, id: Uuid, signal: Arc<Signal>, cancel: CancellationToken) {
    let store = &federation.store;
    let mut discovered = false;
    let mut failures = 0u32;
    let mut next_attempt = Instant::now();
    let mut held = false;
    loop {
        let gateway = match store.get_entity::<Gateway>(id).await {
            Ok(Some(g)) if g.is_active => g,
            Ok(_) => {
                // Deleted or deactivated through another replica: its session goes too.
                federation.peers.forget(id).await;
                break;
            }
            Err(e) => {
                tracing::warn!(error.detail = %e, gateway.id = %id, "federation: cannot read a gateway");
                if pause(&cancel, &signal, Duration::from_secs(5)).await {
                    break;
                }
                continue;
            }
        };
        let check = settings_of(&gateway);
        let interval = Duration::from_secs(check.interval.max(1).into());
        held = match store
            .acquire_lease(id, federation.owner(), lease::ttl(interval))
            .await
        {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error.detail = %e, gateway.id = %id, "federation: lease not renewed");
                false
            }
        };
        if signal.rediscover.swap(false, Ordering::SeqCst) || !held {
            // Changed settings, `list_changed`, or (not held) another replica's discovery
            // since: ours is stale, and the next attempt due at once.
            discovered = false;
            next_attempt = next_attempt.min(Instant::now());
        }
        if held && Instant::now() >= next_attempt {
            let attempt = tokio::select! {
                () = cancel.cancelled() => break,
                a = attempt(&federation, &gateway, &check, discovered) => a,
            };
            match attempt {
                Attempt::Contact(contact) => {
                    let answered = matches!(contact, Contact::Answered(_));
                    if let Err(e) =
                        health::record(store, &federation.metrics, &gateway, contact).await
                    {
                        tracing::warn!(error.detail = %e, gateway.name = gateway.key(), "federation: health not recorded");
                    }
                    if answered {
                        (discovered, failures) = (true, 0);
                        next_attempt = Instant::now() + interval;
                    } else {
                        (discovered, failures) = (false, failures + 1);
                        next_attempt = Instant::now() + backoff(interval, failures);
                    }
                }
                Attempt::CircuitOpen(wait) => {
                    discovered = false;
                    next_attempt = Instant::now() + wait.max(Duration::from_millis(100));
                }
            }
        }
        // Wake for the next attempt, or to renew the lease well before it lapses.
        let wait = if held {
            next_attempt
                .saturating_duration_since(Instant::now())
                .min(interval)
        } else {
            interval
        };
        if pause(&cancel, &signal, wait).await {
            break;
        }
    }
    if held && let Err(e) = store.release_lease(id, federation.owner()).await {
        tracing::warn!(error.detail = %e, gateway.id = %id, "federation: lease not released");
    }
}

/// Sleeps `wait`, or until woken; true when cancelled.
async fn pause(cancel: &CancellationToken, signal: &Signal, wait: Duration) -> bool {
    tokio::select! {
        () = cancel.cancelled() => true,
        () = tokio::time::sleep(wait) => false,
        () = signal.wake.notified() => false,
    }
}

/// A discovery when the peer's lists are not known (first contact, after a failure, a
/// change or `list_changed`), else a ping.
async fn attempt(
    federation: &Federation,
    gateway: &Gateway,
    check: &HealthCheck,
    discovered: bool,
) -> Attempt {
    let timeout = Duration::from_secs(check.timeout.max(1).into());
    // The semaphore is never closed.
    let Ok(_contact) = federation.contacts.acquire().await else {
        return Attempt::CircuitOpen(RETRY_PAUSE);
    };
    if discovered {
        ping(federation, gateway, check, timeout).await
    } else {
        discover(federation, gateway, timeout * DISCOVERY_TIMEOUTS).await
    }
}

/// `initialize` and every list, stored by `sync::apply`.
async fn discover(federation: &Federation, gateway: &Gateway, timeout: Duration) -> Attempt {
    let found = match tokio::time::timeout(timeout, federation.peers.discover(gateway)).await {
        Err(_) => return failed(&PeerError::Timeout(timeout)),
        Ok(Err(e)) => return failed(&e),
        Ok(Ok(found)) => found,
    };
    let id = gateway.id.expect("a stored gateway has an id");
    match sync::apply(&federation.store, id, &found).await {
        Ok(report) => {
            for skipped in &report.skipped {
                tracing::warn!(gateway.name = gateway.key(), "federation: {skipped}");
            }
            let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            Attempt::Contact(Contact::Answered(Some(Counts {
                tools: count(found.tools.len()),
                prompts: count(found.prompts.len()),
                resources: count(found.resources.len()),
            })))
        }
        Err(e) => {
            tracing::warn!(error.detail = %e, gateway.name = gateway.key(), "federation: discovery not stored");
            Attempt::Contact(Contact::Failed(
                PeerStatus::Unreachable,
                "what the peer offers could not be stored; retrying".into(),
            ))
        }
    }
}

/// MCP `ping`, retried `retries` times; credentials rejected are not retried.
async fn ping(
    federation: &Federation,
    gateway: &Gateway,
    check: &HealthCheck,
    timeout: Duration,
) -> Attempt {
    let mut last = None;
    for attempt in 0..=check.retries {
        if attempt > 0 {
            tokio::time::sleep(RETRY_PAUSE.min(timeout)).await;
        }
        let error = match tokio::time::timeout(timeout, federation.peers.ping(gateway)).await {
            Ok(Ok(_)) => return Attempt::Contact(Contact::Answered(None)),
            Ok(Err(e @ (PeerError::AuthFailed(_) | PeerError::Refused(_)))) => return failed(&e),
            Ok(Err(PeerError::CircuitOpen(wait))) if last.is_none() => {
                return Attempt::CircuitOpen(wait);
            }
            // The retries themselves opened the circuit: the last real error stands.
            Ok(Err(PeerError::CircuitOpen(_))) => break,
            Ok(Err(e)) => e,
            Err(_) => PeerError::Timeout(timeout),
        };
        last = Some(error);
    }
    last.map_or(Attempt::CircuitOpen(RETRY_PAUSE), |e| failed(&e))
}

/// A peer error as a health contact; never holds a credential (the peer client's
/// messages do not).
fn failed(error: &PeerError) -> Attempt {
    let (status, why) = match error {
        PeerError::CircuitOpen(wait) => return Attempt::CircuitOpen(*wait),
        PeerError::AuthFailed(_) => (PeerStatus::AuthFailed, error.to_string()),
        PeerError::Unreachable(why) => (PeerStatus::Unreachable, why.clone()),
        other => (PeerStatus::Unreachable, other.to_string()),
    };
    Attempt::Contact(Contact::Failed(status, why))
}

/// Connects each of these gateways once, now, where no replica is watching it (the CLI's
/// import, which runs without a lifecycle): under a lease of its own, so that a running
/// replica's lifecycle and this connection never both discover one gateway; a gateway
/// whose lease another process holds is left to it, and its result waited for. At most
/// `budget` in all.
pub async fn connect_once(
    federation: &Federation,
    gateways: &[Uuid],
    budget: Duration,
) -> Vec<FirstConnection> {
    let since = crate::store::now();
    let started = Instant::now();
    let connect = gateways.iter().map(|id| async move {
        // Taken first: a gateway whose turn does not come within `budget` is left to the
        // serving replicas' checks, its lease untouched.
        let Ok(_contact) = federation.contacts.acquire().await else {
            return;
        };
        let Ok(Some(gateway)) = federation.store.get_entity::<Gateway>(*id).await else {
            return;
        };
        if !gateway.is_active {
            return;
        }
        let owner = federation.owner();
        if !matches!(
            federation.store.acquire_lease(*id, owner, budget).await,
            Ok(true)
        ) {
            return;
        }
        let contact = tokio::time::timeout(budget, discover(federation, &gateway, budget)).await;
        let contact = match contact {
            Ok(Attempt::Contact(c)) => c,
            Ok(Attempt::CircuitOpen(_)) | Err(_) => Contact::Failed(
                PeerStatus::Unreachable,
                format!("no answer within {} s", budget.as_secs()),
            ),
        };
        if let Err(e) =
            health::record(&federation.store, &federation.metrics, &gateway, contact).await
        {
            tracing::warn!(error.detail = %e, "federation: health not recorded");
        }
        let _ = federation.store.release_lease(*id, owner).await;
    });
    let _ = tokio::time::timeout(budget, futures_util::future::join_all(connect)).await;
    // What another process's lifecycle found, in the time left.
    let left = budget.saturating_sub(started.elapsed());
    health::first_connections(&federation.store, gateways, since, left).await
}

/// The CLI's import, after its commit: connects the gateways it wrote (see
/// [`connect_once`]) with the importing gateway's key and outbound settings.
pub async fn connect_imported(
    store: &Store,
    settings: &crate::config::Settings,
    cipher: &crate::crypto::Cipher,
    results: &[app::jobs::EntityResult],
) -> Vec<FirstConnection> {
    let written = health::written_gateways(store, results).await;
    if written.is_empty() {
        return Vec::new();
    }
    let peers = Peers::new(settings, Arc::new(cipher.clone()));
    let federation = Federation::new(store.clone(), peers.clone(), Metrics::default());
    let connected = connect_once(&federation, &written, health::FIRST_CONNECTION_WAIT).await;
    for id in written {
        peers.forget(id).await;
    }
    connected
}
