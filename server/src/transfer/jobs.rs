//! Import jobs: an upload is checked, stored and queued; a worker in some gateway process
//! claims it and runs the import (one transaction), reporting progress as it goes.
//!
//! The job row is the truth every process reads. While a job runs here, its live
//! progress is also kept in memory ([`Live`]) so status and events answer at once; on
//! PostgreSQL the runner writes progress to the row every second (its heartbeat) and
//! reads back cancel requests made through other replicas. On SQLite the import's
//! transaction holds the only write lock, so progress stays in memory until the end.
//!
//! Every process is a runner with an id and a heartbeat in `import_runners`, stamped
//! every second. A running job is only ever ended by another process when its runner is
//! gone: no heartbeat for the runner timeout, judged only by a process whose own
//! heartbeats have landed steadily for that long (after a database restart, or on SQLite
//! behind a long write lock, nobody's could). A job's final write is retried; one still
//! owed is written by the worker's sweep, which also ends this runner's own jobs it has
//! lost track of.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use app::jobs::{
    ConflictStrategy, Counts, JobCreated, JobFile, JobProgress, JobResults, JobState, JobStatus,
    count_results,
};
use app::{
    federation::FirstConnection,
    model::EntityKind,
    validation::{Code, FieldError, Problems},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use super::{
    import::{
        EntityResult, ImportError, ImportOptions, ImportPreview, ImportReport, Observer, check,
        check_file_key, import, preview,
    },
    input::Input,
    selection::Include,
    spool::{Spool, sha256_hex},
};
use crate::{
    crypto::{Cipher, Plaintext},
    federation::health,
    store::{
        Store, StoreFailure,
        jobs::{ClaimedJob, Finish, JobRow, NewJob, Payload, RESULTS_PAGE},
    },
};

/// How often a process stamps its runner heartbeat, a running job writes its progress
/// (PostgreSQL), and a worker looks for work.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// The longest pause between two of this process's heartbeats that still counts as steady.
const STEADY_GAP: Duration = Duration::from_secs(3);
/// How often the worker writes final statuses still owed and looks for abandoned jobs.
const SWEEP: Duration = Duration::from_secs(5);
/// Pauses between tries of a job's final write before it is left to the sweep.
const FINISH_BACKOFF: [Duration; 5] = [
    Duration::from_millis(100),
    Duration::from_millis(300),
    Duration::from_millis(900),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// What a caller asks to import.
pub struct JobRequest {
    /// The file: usually a mapped spool of the upload (or the part of it that is the file).
    pub input: Input,
    pub file_name: Option<String>,
    pub strategy: ConflictStrategy,
    pub dry_run: bool,
    pub include: Option<String>,
    /// Only these entities of the file (type and key), e.g. the wizard's ticked rows.
    pub selected: Option<Vec<(EntityKind, String)>>,
    /// The secret the file's credentials were encrypted with, when not this gateway's.
    pub source_secret: Option<SecretString>,
    /// Leave out (with a warning) a server's links to entities that exist nowhere.
    pub allow_missing_links: bool,
}

impl JobRequest {
    /// The import options the request asks for (`source` decrypts its credentials).
    fn options<'a>(&self, source: Option<&'a Cipher>) -> Result<ImportOptions<'a>, SubmitError> {
        Ok(ImportOptions {
            strategy: self.strategy,
            dry_run: self.dry_run,
            include: parse_include(self.include.as_deref())?,
            picked: self.selected.clone().map(|s| s.into_iter().collect()),
            source,
            observer: None,
            allow_missing_links: self.allow_missing_links,
        })
    }
}

impl JobRequest {
    /// A file encrypted under another key than the one that would decrypt it: one
    /// problem at `/source_secret`, not one per credential.
    fn check_key(&self, source: Option<&Cipher>, target: &Cipher) -> Result<(), SubmitError> {
        check_file_key(self.input.bytes(), source, target)
            .map_err(|e| SubmitError::Invalid(vec![e].into()))
    }
}

/// The options a job keeps in its row (never the secret itself).
#[derive(Debug, Serialize, Deserialize)]
struct StoredOptions {
    conflict_strategy: ConflictStrategy,
    dry_run: bool,
    include: Option<String>,
    #[serde(default)]
    selected: Option<Vec<(EntityKind, String)>>,
    #[serde(default)]
    warnings: Vec<FieldError>,
    #[serde(default)]
    allow_missing_links: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the file has {} problem(s)", .0.total)]
    Invalid(Problems),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<ImportError> for SubmitError {
    /// Every refusal of a file is a list of problems; only the database is something else.
    fn from(e: ImportError) -> SubmitError {
        match e {
            ImportError::Invalid(errors) => SubmitError::Invalid(errors),
            ImportError::Conflict(conflicts) => SubmitError::Invalid(conflicts.into()),
            ImportError::Database(e) => SubmitError::Database(e),
            ImportError::Store(e) => {
                SubmitError::Invalid(vec![refusal(Code::Refused, e.to_string())].into())
            }
            other => {
                SubmitError::Invalid(vec![refusal(other_code(&other), other.to_string())].into())
            }
        }
    }
}

fn other_code(e: &ImportError) -> Code {
    match e {
        ImportError::Cancelled => Code::Cancelled,
        _ => Code::Refused,
    }
}

/// Progress of a job running in this process.
#[derive(Default)]
pub struct Live {
    processed: AtomicU64,
    total: AtomicU64,
    /// Outcomes so far, per type (the results themselves are the report's, at the end).
    counts: Mutex<Counts>,
    cancel: AtomicBool,
    changed: Option<watch::Sender<u64>>,
}

impl Live {
    fn new() -> Live {
        Live {
            changed: Some(watch::channel(0).0),
            ..Default::default()
        }
    }

    fn progress(&self) -> (u64, u64) {
        (
            self.processed.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    fn counts(&self) -> Counts {
        self.counts.lock().expect("counts lock").clone()
    }

    fn notify(&self) {
        if let Some(tx) = &self.changed {
            tx.send_modify(|n| *n += 1);
        }
    }
}

impl Observer for Live {
    fn started(&self, total: usize) {
        self.total.store(total as u64, Ordering::Relaxed);
        self.notify();
    }

    fn applied(&self, result: &EntityResult) {
        self.counts
            .lock()
            .expect("counts lock")
            .of(result.kind)
            .add(result.action);
        self.processed.fetch_add(1, Ordering::Relaxed);
        self.notify();
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

/// The job service: submit, watch, cancel and run import jobs.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    cipher: Arc<Cipher>,
    /// This process, as recorded in the rows it claims and in `import_runners`.
    runner: String,
    /// A runner silent this long is gone.
    runner_timeout: Duration,
    pulse: Mutex<Pulse>,
    /// Jobs running here, or ended here with their final write still owed.
    live: Mutex<HashMap<Uuid, Arc<Live>>>,
    /// Final writes not yet done (failing ones are tried again by the sweep).
    owed: Mutex<HashMap<Uuid, Arc<Finish>>>,
    wake: Notify,
}

/// This process's own heartbeats: since when they have landed without a gap.
#[derive(Default)]
struct Pulse {
    steady_since: Option<Instant>,
    last: Option<Instant>,
}

impl Pulse {
    fn beat(&mut self, at: Instant) {
        if self.last.is_none_or(|last| at - last > STEADY_GAP) {
            self.steady_since = Some(at);
        }
        self.last = Some(at);
    }

    /// Whether this process's heartbeats have landed steadily for `span` up to `at`: then
    /// the database (and on SQLite its write lock) let every live runner stamp its own,
    /// and a runner silent for `span` is gone rather than unheard.
    fn steady_for(&self, span: Duration, at: Instant) -> bool {
        match (self.steady_since, self.last) {
            (Some(since), Some(last)) => at - since >= span && at - last <= STEADY_GAP,
            _ => false,
        }
    }
}

/// The background tasks of a serving process; [`Background::stop`] ends them.
pub struct Background {
    jobs: Jobs,
    pulse: tokio::task::JoinHandle<()>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// Stops the tasks (a running import's transaction rolls back), records this
    /// runner's running jobs as interrupted and leaves `import_runners`.
    pub async fn stop(self) {
        if let Some(worker) = self.worker {
            worker.abort();
            let _ = worker.await;
        }
        self.pulse.abort();
        let _ = self.pulse.await;
        self.jobs.leave().await;
    }
}

impl Jobs {
    /// `runner_timeout`: how long a runner may be silent before it counts as gone.
    pub fn new(store: Store, cipher: Arc<Cipher>, runner_timeout: Duration) -> Jobs {
        Jobs {
            inner: Arc::new(Inner {
                store,
                cipher,
                runner: Uuid::new_v4().to_string(),
                runner_timeout,
                pulse: Mutex::new(Pulse::default()),
                live: Mutex::new(HashMap::new()),
                owed: Mutex::new(HashMap::new()),
                wake: Notify::new(),
            }),
        }
    }

    /// Checks the file completely (format, entities, selection, credentials, references)
    /// and queues it. Nothing is queued for a file that would be refused.
    pub async fn submit(
        &self,
        request: JobRequest,
        actor: &str,
    ) -> Result<JobCreated, SubmitError> {
        let source = request.source_secret.as_ref().map(Cipher::new);
        let options = request.options(source.as_ref())?;
        request.check_key(source.as_ref(), &self.inner.cipher)?;
        let store = &self.inner.store;
        let warnings = check(store, &self.inner.cipher, &request.input, &options)
            .await
            .map_err(SubmitError::from)?;
        let sealed = request.source_secret.as_ref().map(|s| {
            use secrecy::ExposeSecret;
            let mut plain = Plaintext::default();
            plain.0.insert(
                "source_secret".into(),
                Value::String(s.expose_secret().into()),
            );
            self.inner.cipher.encrypt(&plain)
        });
        let id = Uuid::new_v4();
        let stored = StoredOptions {
            conflict_strategy: request.strategy,
            dry_run: request.dry_run,
            include: request.include.clone(),
            selected: request.selected.clone(),
            warnings,
            allow_missing_links: request.allow_missing_links,
        };
        let sha256 = digest(&request.input).await?;
        store
            .insert_job(NewJob {
                id,
                created_by: actor,
                options: serde_json::to_value(&stored).unwrap_or_default(),
                file_name: request.file_name.as_deref(),
                file_sha256: &sha256,
                payload: &request.input,
                sealed_source_secret: sealed,
            })
            .await?;
        tracing::info!(job.id = %id, job.actor = actor, file.size = request.input.len(), "import job queued");
        self.inner.wake.notify_one();
        Ok(JobCreated {
            job_id: id,
            status: JobState::Queued,
            status_url: format!("/admin/import/status/{id}"),
            events_url: format!("/admin/import/status/{id}/events"),
        })
    }

    /// What the import of `request` would do, without queuing it (the wizard's preview).
    pub async fn preview(&self, request: JobRequest) -> Result<ImportPreview, SubmitError> {
        let source = request.source_secret.as_ref().map(Cipher::new);
        let options = request.options(source.as_ref())?;
        request.check_key(source.as_ref(), &self.inner.cipher)?;
        let store = &self.inner.store;
        Ok(preview(store, &self.inner.cipher, &request.input, &options).await?)
    }

    /// The job as stored, with this process's live progress when it runs here.
    pub async fn status(&self, id: Uuid) -> sqlx::Result<Option<JobStatus>> {
        let Some(row) = self.inner.store.job(id).await? else {
            return Ok(None);
        };
        let live = self.live(id);
        Ok(Some(to_status(row, live.as_deref())))
    }

    pub async fn list(&self, limit: i64) -> sqlx::Result<Vec<JobStatus>> {
        let rows = self.inner.store.jobs(limit).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let live = self.live(row.id);
                to_status(row, live.as_deref())
            })
            .collect())
    }

    /// Results `offset..offset + limit` of a job (`limit` at most
    /// [`JobResults::MAX_LIMIT`]): only the stored pages they lie in are read.
    pub async fn results(
        &self,
        id: Uuid,
        offset: u64,
        limit: u64,
    ) -> sqlx::Result<Option<JobResults>> {
        let Some(row) = self.inner.store.job(id).await? else {
            return Ok(None);
        };
        let report = read_report(&row);
        let total = results_total(&row, &report);
        let limit = limit.min(JobResults::MAX_LIMIT);
        let end = offset.saturating_add(limit).min(total);
        let mut results = Vec::new();
        if offset < end {
            let page = RESULTS_PAGE as u64;
            let (first, last) = (offset / page, (end - 1) / page);
            let pages = self
                .inner
                .store
                .job_result_pages(id, first as i64, last as i64)
                .await?;
            let skip = (offset - first * page) as usize;
            let take = (end - offset) as usize;
            results = match (pages.is_empty(), &report.results) {
                // A job finished before results were paged keeps them in its report.
                (true, Some(legacy)) => parse_results(legacy.get(), offset as usize, take),
                _ => pages
                    .iter()
                    .flat_map(|p| parse_results(p, 0, RESULTS_PAGE))
                    .skip(skip)
                    .take(take)
                    .collect(),
            };
        }
        Ok(Some(JobResults {
            job_id: id,
            offset,
            total,
            results,
        }))
    }

    /// Asks a job to stop; `None` for an unknown id. A running job rolls back; one whose
    /// runner is gone is cancelled at once (its transaction died with the runner).
    pub async fn cancel(&self, id: Uuid) -> sqlx::Result<Option<JobStatus>> {
        if let Some(live) = self.live(id) {
            // Ours: the runner sees the flag before its next entity and records the end.
            // (On SQLite the row cannot be written while the import holds the lock.)
            live.cancel.store(true, Ordering::Relaxed);
        } else if self
            .inner
            .store
            .request_job_cancel(id, self.gone_before())
            .await?
            .is_none()
        {
            return Ok(None);
        }
        self.status(id).await
    }

    /// Runners with no heartbeat since this time are gone; `None` while this process
    /// cannot tell (its own heartbeats have not landed steadily for a whole timeout).
    fn gone_before(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let timeout = self.inner.runner_timeout;
        let steady = self
            .inner
            .pulse
            .lock()
            .expect("pulse lock")
            .steady_for(timeout, Instant::now());
        steady.then(|| self.inner.store.abandoned_after(timeout))
    }

    /// Progress notifications of a job running in this process.
    pub fn subscribe(&self, id: Uuid) -> Option<watch::Receiver<u64>> {
        self.live(id)
            .and_then(|l| l.changed.as_ref().map(|tx| tx.subscribe()))
    }

    /// The job's states as they change (progress moved or the state changed), from the
    /// current one to the final one; `None` when there is no such job. Bursts of entities
    /// become one state per 100 ms at most.
    pub async fn watch(
        &self,
        id: Uuid,
    ) -> sqlx::Result<Option<impl futures_util::Stream<Item = JobStatus> + use<>>> {
        let Some(first) = self.status(id).await? else {
            return Ok(None);
        };
        let states = futures_util::stream::unfold(
            (self.clone(), Some(first), None::<JobStatus>),
            move |(jobs, next, last)| async move {
                let status = match next {
                    Some(s) => s,
                    None => jobs.next_change(id, last.as_ref()?).await?,
                };
                // After the final state, the next poll ends the stream.
                let last = (!status.status.is_final()).then(|| status.clone());
                Some((status, (jobs, None, last)))
            },
        );
        Ok(Some(states))
    }

    /// The job's next different status; `None` once it cannot be read.
    async fn next_change(&self, id: Uuid, last: &JobStatus) -> Option<JobStatus> {
        let mut changes = self.subscribe(id);
        loop {
            match changes.as_mut() {
                Some(rx) => {
                    let _ = tokio::time::timeout(Duration::from_millis(500), rx.changed()).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Running in another process (or not yet here): poll.
                None => tokio::time::sleep(Duration::from_millis(250)).await,
            }
            let status = self.status(id).await.ok()??;
            if status.status != last.status || status.progress != last.progress {
                return Some(status);
            }
            if changes.is_none() {
                changes = self.subscribe(id);
            }
        }
    }

    fn live(&self, id: Uuid) -> Option<Arc<Live>> {
        self.inner.live.lock().expect("live lock").get(&id).cloned()
    }

    /// Ends what no one else will: final writes still owed, this runner's own running jobs
    /// it has lost track of, and the running jobs of runners that are gone.
    pub async fn sweep(&self) -> sqlx::Result<u64> {
        self.pay_owed().await;
        let mine = self.inner.store.running_jobs_of(&self.inner.runner).await?;
        for id in mine {
            let tracked = self.live(id).is_some()
                || self.inner.owed.lock().expect("owed lock").contains_key(&id);
            if !tracked {
                // Claimed but never run here (e.g. the claim's answer was lost).
                tracing::warn!(job.id = %id, "import job lost by its runner; marking it failed");
                self.inner
                    .store
                    .finish_job(id, &interrupted_finish())
                    .await?;
            }
        }
        let Some(gone_before) = self.gone_before() else {
            return Ok(0);
        };
        let n = self
            .inner
            .store
            .fail_abandoned_jobs(&self.inner.runner, gone_before, &interrupted_errors())
            .await?;
        if n > 0 {
            tracing::warn!(jobs.failed = n, "marked interrupted import jobs as failed");
        }
        Ok(n)
    }

    /// Tries the final writes still owed once more.
    async fn pay_owed(&self) {
        let owed: Vec<(Uuid, Arc<Finish>)> = {
            let owed = self.inner.owed.lock().expect("owed lock");
            owed.iter().map(|(id, f)| (*id, f.clone())).collect()
        };
        for (id, finish) in owed {
            match self.inner.store.finish_job(id, &finish).await {
                Ok(()) => self.paid(id),
                Err(e) => {
                    tracing::warn!(job.id = %id, error.detail = %e, "final status of an import job still not written");
                }
            }
        }
    }

    /// Starts this process's runner heartbeat and, when `worker`, the import worker.
    pub fn start(&self, worker: bool) -> Background {
        Background {
            jobs: self.clone(),
            pulse: self.spawn_pulse(),
            worker: worker.then(|| self.spawn_worker()),
        }
    }

    /// Stamps this runner's heartbeat every second, and keeps note of how steadily.
    fn spawn_pulse(&self) -> tokio::task::JoinHandle<()> {
        let jobs = self.clone();
        tokio::spawn(async move {
            // Rows of runners gone for an hour no longer decide anything (once per start).
            let long_gone = jobs.inner.store.abandoned_after(Duration::from_secs(3600));
            if let Err(e) = jobs.inner.store.forget_runners(long_gone).await {
                tracing::warn!(error.detail = %e, "cannot forget long-gone import runners");
            }
            loop {
                match jobs.inner.store.runner_heartbeat(&jobs.inner.runner).await {
                    Ok(()) => jobs
                        .inner
                        .pulse
                        .lock()
                        .expect("pulse lock")
                        .beat(Instant::now()),
                    Err(e) => tracing::warn!(error.detail = %e, "import runner heartbeat failed"),
                }
                tokio::time::sleep(HEARTBEAT).await;
            }
        })
    }

    /// Records this runner's running jobs as interrupted (their transactions are gone
    /// with the stopped worker) and leaves `import_runners`.
    async fn leave(&self) {
        self.pay_owed().await;
        let store = &self.inner.store;
        let result = async {
            for id in store.running_jobs_of(&self.inner.runner).await? {
                store.finish_job(id, &interrupted_finish()).await?;
            }
            store.leave_runner(&self.inner.runner).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(error.detail = %e, "import runner could not record its stop");
        }
    }

    /// Runs queued jobs one at a time until the process ends, sweeping between them.
    fn spawn_worker(&self) -> tokio::task::JoinHandle<()> {
        let jobs = self.clone();
        tokio::spawn(async move {
            let mut last_sweep: Option<Instant> = None;
            loop {
                if last_sweep.is_none_or(|t| t.elapsed() >= SWEEP) {
                    last_sweep = Some(Instant::now());
                    if let Err(e) = jobs.sweep().await {
                        tracing::error!(error.detail = %e, "import worker: sweep failed");
                    }
                }
                match jobs.run_next().await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => tracing::error!(error.detail = %e, "import worker: database error"),
                }
                let _ = tokio::time::timeout(HEARTBEAT, jobs.inner.wake.notified()).await;
            }
        })
    }

    /// Claims and runs the oldest queued job; false when there was none.
    pub async fn run_next(&self) -> sqlx::Result<bool> {
        let Some(job) = self.inner.store.claim_job(&self.inner.runner).await? else {
            return Ok(false);
        };
        let id = job.id;
        let live = Arc::new(Live::new());
        self.inner
            .live
            .lock()
            .expect("live lock")
            .insert(id, live.clone());
        tracing::info!(job.id = %id, "import job started");
        // With one writer at a time the import's transaction holds the lock: no progress writes.
        let heartbeat =
            (!self.inner.store.single_writer()).then(|| self.spawn_heartbeat(id, live.clone()));
        let finish = self.execute(job, &live).await;
        if let Some(h) = heartbeat {
            h.abort();
        }
        self.finish(id, finish).await;
        Ok(true)
    }

    /// Writes a job's end, trying again with backoff; a write still failing stays owed
    /// and is left to the sweep (the job stays live here until then). Owed from the first
    /// try, so that a stop in between still writes the real end.
    async fn finish(&self, id: Uuid, finish: Finish) {
        let finish = Arc::new(finish);
        self.owe(id, &finish);
        for pause in FINISH_BACKOFF.iter().map(Some).chain([None]) {
            match self.inner.store.finish_job(id, &finish).await {
                Ok(()) => return self.paid(id),
                Err(e) => {
                    tracing::warn!(job.id = %id, error.detail = %e, "writing the import job's final status failed");
                }
            }
            match pause {
                Some(pause) => tokio::time::sleep(*pause).await,
                None => return,
            }
        }
    }

    fn owe(&self, id: Uuid, finish: &Arc<Finish>) {
        let mut owed = self.inner.owed.lock().expect("owed lock");
        owed.insert(id, finish.clone());
    }

    /// The job's end is written: it stops being owed and live here, and watchers look again.
    fn paid(&self, id: Uuid) {
        self.inner.owed.lock().expect("owed lock").remove(&id);
        if let Some(live) = self.inner.live.lock().expect("live lock").remove(&id) {
            live.notify();
        }
    }

    /// Writes progress every second and picks up cancel requests made elsewhere.
    fn spawn_heartbeat(&self, id: Uuid, live: Arc<Live>) -> tokio::task::JoinHandle<()> {
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                let (processed, total) = live.progress();
                let counts = live.counts();
                match store
                    .job_heartbeat(id, processed as i64, total as i64, &counts)
                    .await
                {
                    Ok(true) => live.cancel.store(true, Ordering::Relaxed),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(job.id = %id, error.detail = %e, "heartbeat failed"),
                }
            }
        })
    }

    async fn execute(&self, job: ClaimedJob, live: &Live) -> Finish {
        let input = match stored_file(&self.inner.store, job.id).await {
            Ok(input) => input,
            Err(e) => {
                tracing::error!(job.id = %job.id, error.detail = %e, "cannot read the job's stored file");
                return failed(
                    live,
                    vec![refusal(
                        Code::Internal,
                        "the stored file could not be read; nothing was imported".into(),
                    )],
                );
            }
        };
        let stored: StoredOptions = match serde_json::from_value(job.options.0) {
            Ok(o) => o,
            Err(e) => return failed(live, vec![refusal(Code::BadJob, e.to_string())]),
        };
        let source = match job.sealed_source_secret.as_deref().map(|s| self.unseal(s)) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => return failed(live, vec![e]),
        };
        let include = match parse_include(stored.include.as_deref()) {
            Ok(i) => i,
            Err(SubmitError::Invalid(e)) => return failed(live, e),
            Err(SubmitError::Database(e)) => {
                return failed(live, vec![refusal(Code::Database, e.to_string())]);
            }
        };
        let options = ImportOptions {
            strategy: stored.conflict_strategy,
            dry_run: stored.dry_run,
            include,
            picked: stored.selected.map(|s| s.into_iter().collect()),
            source: source.as_ref(),
            observer: Some(live),
            allow_missing_links: stored.allow_missing_links,
        };
        let since = crate::store::now();
        let result = import(
            &self.inner.store,
            &self.inner.cipher,
            &input,
            &options,
            &job.created_by,
        )
        .await;
        match result {
            Ok(mut report) => {
                // After the commit: this replica's federation lifecycle (or another's)
                // connects the gateways written; their first connection is waited for.
                if !report.dry_run {
                    let store = &self.inner.store;
                    let written = health::written_gateways(store, &report.results).await;
                    let wait = health::FIRST_CONNECTION_WAIT;
                    report.gateways = health::first_connections(store, &written, since, wait).await;
                }
                completed(report)
            }
            Err(ImportError::Cancelled) => Finish {
                status: JobState::Cancelled,
                counts: Counts::new(),
                ..progress_so_far(live)
            },
            Err(ImportError::Invalid(errors)) => failed(live, errors),
            Err(ImportError::Conflict(conflicts)) => failed(live, conflicts),
            Err(e) => {
                tracing::error!(job.id = %job.id, error.detail = %e, "import job failed");
                let cause = match &e {
                    ImportError::Database(e) => StoreFailure::of(e),
                    _ => None,
                };
                failed(live, vec![database_refusal(cause)])
            }
        }
    }

    fn unseal(&self, sealed: &str) -> Result<Cipher, FieldError> {
        let plain =
            self.inner.cipher.decrypt(sealed).map_err(|e| {
                refusal(Code::SourceSecret, format!("the stored source secret {e}"))
            })?;
        let secret = plain
            .0
            .get("source_secret")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(Cipher::new(&SecretString::from(secret)))
    }
}

/// A mapped file lets go of the pages the store has written.
impl Payload for Input {
    fn bytes(&self) -> &[u8] {
        Input::bytes(self)
    }

    fn stored_up_to(&self, offset: usize) {
        self.release_before(offset);
    }
}

/// The file of a queued job, spooled from its stored chunks (in order) and mapped.
pub async fn stored_file(store: &Store, id: Uuid) -> sqlx::Result<Input> {
    let mut spool = Spool::new()?;
    let mut seq = 0;
    while let Some(data) = store.job_chunk(id, seq).await? {
        spool.write(&data).await?;
        seq += 1;
    }
    Ok(spool.finish().await?)
}

/// The file's SHA-256, hashed off the async threads (a window at a time).
async fn digest(input: &Input) -> Result<String, SubmitError> {
    let input = input.clone();
    tokio::task::spawn_blocking(move || sha256_hex(&input))
        .await
        .map_err(|e| SubmitError::Database(sqlx::Error::Io(std::io::Error::other(e))))
}

fn parse_include(spec: Option<&str>) -> Result<Option<Include>, SubmitError> {
    spec.filter(|s| !s.trim().is_empty())
        .map(Include::parse)
        .transpose()
        .map_err(|message| {
            SubmitError::Invalid(
                vec![FieldError {
                    pointer: "/include".into(),
                    code: Code::Invalid,
                    message,
                }]
                .into(),
            )
        })
}

/// The results `skip..skip + take` of a JSON array of results (a stored page).
fn parse_results(text: &str, skip: usize, take: usize) -> Vec<EntityResult> {
    let all: Vec<&serde_json::value::RawValue> = serde_json::from_str(text).unwrap_or_default();
    all.into_iter()
        .skip(skip)
        .take(take)
        .filter_map(|r| serde_json::from_str(r.get()).ok())
        .collect()
}

/// Why an import ended on a database error: a busy or full database says so.
fn database_refusal(cause: Option<StoreFailure>) -> FieldError {
    match cause {
        Some(failure @ StoreFailure::Busy) => {
            refusal(Code::Busy, format!("{failure}; nothing was imported"))
        }
        Some(failure @ StoreFailure::Full) => refusal(Code::StorageFull, failure.to_string()),
        None => refusal(
            Code::Internal,
            "the import failed on a database error; nothing was imported".into(),
        ),
    }
}

fn refusal(code: Code, message: String) -> FieldError {
    FieldError::new("", code, message)
}

fn interrupted_errors() -> Value {
    json!([refusal(
        Code::Interrupted,
        "the gateway running this import stopped before it finished; nothing was imported".into(),
    )])
}

/// The end of a job whose runner stopped (or lost it) before it finished.
fn interrupted_finish() -> Finish {
    Finish {
        status: JobState::Failed,
        processed: 0,
        total: 0,
        counts: Counts::new(),
        report: None,
        errors: interrupted_errors(),
        results: Vec::new(),
    }
}

fn progress_so_far(live: &Live) -> Finish {
    let (processed, total) = live.progress();
    Finish {
        status: JobState::Running,
        processed: processed as i64,
        total: total as i64,
        counts: live.counts(),
        report: None,
        errors: json!([]),
        results: Vec::new(),
    }
}

/// Nothing was written: the counts say which entities failed (per type, from the
/// errors' pointers), not what was applied; `processed` says how far the run got.
/// Kept as `{"listed": […], "total": n}` (the first 1,000 problems, and the count).
fn failed(live: &Live, errors: impl Into<Problems>) -> Finish {
    let errors: Problems = errors.into();
    let (processed, total) = live.progress();
    Finish {
        status: JobState::Failed,
        processed: processed as i64,
        total: total as i64,
        counts: failed_counts(&errors),
        report: None,
        errors: serde_json::to_value(errors).unwrap_or_default(),
        results: Vec::new(),
    }
}

/// Per type, how many entities an error names (`/entities/<type>/<index>…`).
fn failed_counts(errors: &[FieldError]) -> Counts {
    let mut counts = Counts::new();
    let mut seen = std::collections::HashSet::new();
    for e in errors {
        let mut parts = e.pointer.split('/').skip(1);
        let (Some("entities"), Some(kind), Some(index)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some(kind) = EntityKind::parse(kind) else {
            continue;
        };
        if seen.insert((kind, index.to_owned())) {
            counts.of(kind).failed += 1;
        }
    }
    counts
}

fn completed(report: ImportReport) -> Finish {
    let n = report.results.len() as i64;
    Finish {
        status: JobState::Completed,
        processed: n,
        total: n,
        counts: count_results(&report.results),
        report: stored_report(&report).ok(),
        errors: json!([]),
        results: report.results,
    }
}

/// The report as the job row keeps it; the results themselves go to their own pages.
fn stored_report(report: &ImportReport) -> serde_json::Result<Box<serde_json::value::RawValue>> {
    #[derive(Serialize)]
    struct Stored<'a> {
        results_total: usize,
        warnings: &'a [FieldError],
        summary: String,
        skipped_by_selection: usize,
        rekeyed: bool,
        gateways: &'a [FirstConnection],
    }
    serde_json::value::to_raw_value(&Stored {
        results_total: report.results.len(),
        warnings: &report.warnings,
        summary: report.summary(),
        skipped_by_selection: report.skipped_by_selection,
        rekeyed: report.rekeyed,
        gateways: &report.gateways,
    })
}

/// The report as read back. Jobs finished before results were paged hold them here
/// (`results`, left as text unless a page of them is asked for).
#[derive(Default, Deserialize)]
struct ReadReport {
    results: Option<Box<serde_json::value::RawValue>>,
    results_total: Option<u64>,
    #[serde(default)]
    warnings: Vec<FieldError>,
    summary: Option<String>,
    #[serde(default)]
    skipped_by_selection: usize,
    #[serde(default)]
    rekeyed: bool,
    #[serde(default)]
    gateways: Vec<FirstConnection>,
}

fn read_report(row: &JobRow) -> ReadReport {
    row.report
        .as_ref()
        .and_then(|r| serde_json::from_str(r.0.get()).ok())
        .unwrap_or_default()
}

/// How many results a job has: a completed job's report says (an older one: its count).
fn results_total(row: &JobRow, report: &ReadReport) -> u64 {
    match (row.status, report.results_total) {
        (_, Some(n)) => n,
        (JobState::Completed, None) => row.processed as u64,
        _ => 0,
    }
}

/// A job's `errors` column: the first problems and their count, or (jobs ended before
/// problems were counted, or interrupted) a plain list.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredErrors {
    Counted(Problems),
    Listed(Vec<FieldError>),
}

impl From<StoredErrors> for Problems {
    fn from(stored: StoredErrors) -> Problems {
        match stored {
            StoredErrors::Counted(problems) => problems,
            StoredErrors::Listed(list) => list.into(),
        }
    }
}

fn to_status(row: JobRow, live: Option<&Live>) -> JobStatus {
    let report = read_report(&row);
    let results_total = results_total(&row, &report);
    let options: StoredOptions = serde_json::from_value(row.options.0).unwrap_or(StoredOptions {
        conflict_strategy: ConflictStrategy::default(),
        dry_run: false,
        include: None,
        selected: None,
        warnings: Vec::new(),
        allow_missing_links: false,
    });
    let errors: Problems = serde_json::from_value::<StoredErrors>(row.errors.0)
        .map(Problems::from)
        .unwrap_or_default();
    let (processed, total, counts) = match live {
        Some(live) => {
            let (p, t) = live.progress();
            (p, t, live.counts())
        }
        None => (
            row.processed as u64,
            row.total as u64,
            serde_json::from_value(row.counts.0).unwrap_or_default(),
        ),
    };
    let mut warnings = report.warnings;
    if warnings.is_empty() {
        warnings = options.warnings;
    }
    JobStatus {
        job_id: row.id,
        status: row.status,
        dry_run: options.dry_run,
        conflict_strategy: options.conflict_strategy,
        progress: JobProgress::new(processed, total),
        counts,
        results_total,
        errors_total: errors.total,
        errors: errors.listed,
        warnings,
        summary: report.summary,
        skipped_by_selection: report.skipped_by_selection as u64,
        rekeyed: report.rekeyed,
        gateways: report.gateways,
        file: JobFile {
            name: row.file_name,
            sha256: row.file_sha256,
            size: row.file_size as u64,
        },
        created_by: row.created_by,
        created_at: rfc3339(row.created_at),
        started_at: row.started_at.map(rfc3339),
        finished_at: row.finished_at.map(rfc3339),
    }
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_judges_other_runners_only_after_a_whole_timeout_of_steady_heartbeats() {
        let timeout = Duration::from_secs(30);
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut pulse = Pulse::default();
        assert!(!pulse.steady_for(timeout, at(0)), "no heartbeat yet");
        for s in 0..=29 {
            pulse.beat(at(s));
        }
        assert!(
            !pulse.steady_for(timeout, at(29)),
            "29 s is not a whole timeout"
        );
        pulse.beat(at(30));
        assert!(pulse.steady_for(timeout, at(30)));
        // The database went away for 20 s (restarted): every runner was unheard meanwhile.
        assert!(!pulse.steady_for(timeout, at(50)), "silent itself");
        pulse.beat(at(50));
        assert!(!pulse.steady_for(timeout, at(50)), "the count starts again");
        for s in 51..=80 {
            pulse.beat(at(s));
        }
        assert!(pulse.steady_for(timeout, at(80)));
        // A write that waited 3 s for a lock still counts as steady; 4 s does not.
        pulse.beat(at(83));
        assert!(pulse.steady_for(timeout, at(83)));
        pulse.beat(at(87));
        assert!(!pulse.steady_for(timeout, at(87)));
    }
}
