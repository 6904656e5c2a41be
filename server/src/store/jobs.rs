//! Import jobs in the database, so that every process answers for every job and any
//! process can run a queued one. Claiming is atomic: on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, on SQLite because it has one writer at a time.
//!
//! A job's file is stored in chunks of [`CHUNK`] bytes (`import_job_chunks`), written from
//! the caller's bytes and handed back one chunk at a time, so no step needs the whole file
//! in memory. (The `payload` column of jobs queued before chunks existed is not read.)

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use app::jobs::{Counts, EntityResult, JobState};

use super::{Store, entities::StoreTx, now, with_pool};

/// The size of one stored piece of a job's file.
pub const CHUNK: usize = 1 << 20;

/// A job as stored, without its payload.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: JobState,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub options: Json<Value>,
    pub file_name: Option<String>,
    pub file_sha256: String,
    pub file_size: i64,
    pub processed: i64,
    pub total: i64,
    pub counts: Json<Value>,
    pub report: Option<Json<Box<serde_json::value::RawValue>>>,
    pub errors: Json<Value>,
}

const COLUMNS: &str = "id, status, created_by, created_at, started_at, finished_at, options, \
                       file_name, file_sha256, file_size, processed, total, counts, report, errors";

/// The file of a job to queue: its bytes, and a way to let go of those already stored.
pub trait Payload: Sync {
    fn bytes(&self) -> &[u8];
    /// The first `offset` bytes are stored: a mapped file lets go of their pages.
    fn stored_up_to(&self, _offset: usize) {}
}

/// A job to queue.
pub struct NewJob<'a> {
    pub id: Uuid,
    pub created_by: &'a str,
    pub options: Value,
    pub file_name: Option<&'a str>,
    pub file_sha256: &'a str,
    /// The file, stored in chunks.
    pub payload: &'a dyn Payload,
    /// The source secret, encrypted with the gateway's own key.
    pub sealed_source_secret: Option<String>,
}

/// A job this process has claimed, with what it needs to run.
#[derive(Debug, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub created_by: String,
    pub options: Json<Value>,
    pub sealed_source_secret: Option<String>,
}

/// How a job ended.
pub struct Finish {
    pub status: JobState,
    pub processed: i64,
    pub total: i64,
    pub counts: Counts,
    pub report: Option<Box<serde_json::value::RawValue>>,
    pub errors: Value,
    /// Per entity, stored in pages of [`RESULTS_PAGE`] (`import_job_results`).
    pub results: Vec<EntityResult>,
}

/// How many per-entity results one row of `import_job_results` holds.
pub const RESULTS_PAGE: usize = 1_000;

impl Store {
    /// Whether the backend takes one write transaction at a time (SQLite): a running
    /// import holds the only write lock, so nothing else can write progress meanwhile.
    pub fn single_writer(&self) -> bool {
        matches!(self, Store::Sqlite(_))
    }

    /// The time before which a runner (or job) that has not stamped its heartbeat counts
    /// as gone, `timeout` after its last one, on the clock the heartbeats are stamped with.
    pub fn abandoned_after(&self, timeout: Duration) -> DateTime<Utc> {
        now() - timeout
    }

    /// Queues a job: its row and its file's chunks, in one transaction.
    pub async fn insert_job(&self, job: NewJob<'_>) -> sqlx::Result<()> {
        let sql = "INSERT INTO import_jobs (id, status, created_by, created_at, options, file_name, \
                   file_sha256, file_size, sealed_source_secret) \
                   VALUES ($1, 'queued', $2, $3, $4, $5, $6, $7, $8)";
        let chunk_sql = "INSERT INTO import_job_chunks (job_id, seq, data) VALUES ($1, $2, $3)";
        let bytes = job.payload.bytes();
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(sql)
                .bind(job.id)
                .bind(job.created_by)
                .bind(now())
                .bind(Json(&job.options))
                .bind(job.file_name)
                .bind(job.file_sha256)
                .bind(bytes.len() as i64)
                .bind(&job.sealed_source_secret)
                .execute(&mut *tx)
                .await?;
            for (seq, chunk) in bytes.chunks(CHUNK).enumerate() {
                sqlx::query(chunk_sql)
                    .bind(job.id)
                    .bind(seq as i64)
                    .bind(chunk)
                    .execute(&mut *tx)
                    .await?;
                job.payload.stored_up_to((seq + 1) * CHUNK);
            }
            tx.commit().await
        })
    }

    /// One stored chunk of a job's file (`seq` from 0), or `None` past the last.
    pub async fn job_chunk(&self, id: Uuid, seq: i64) -> sqlx::Result<Option<Vec<u8>>> {
        let sql = "SELECT data FROM import_job_chunks WHERE job_id = $1 AND seq = $2";
        with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .bind(seq)
            .fetch_optional(pool)
            .await)
    }

    /// How many chunks of a job's file are stored (none once the job has ended).
    pub async fn job_chunk_count(&self, id: Uuid) -> sqlx::Result<i64> {
        let sql = "SELECT COUNT(*) FROM import_job_chunks WHERE job_id = $1";
        with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .fetch_one(pool)
            .await)
    }

    /// Takes the oldest queued job for `runner`, if any.
    pub async fn claim_job(&self, runner: &str) -> sqlx::Result<Option<ClaimedJob>> {
        let lock = match self {
            Store::Sqlite(_) => "",
            Store::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE import_jobs SET status = 'running', runner = $1, started_at = $2, heartbeat_at = $2 \
             WHERE id = (SELECT id FROM import_jobs WHERE status = 'queued' \
                         ORDER BY created_at LIMIT 1 {lock}) AND status = 'queued' \
             RETURNING id, created_by, options, sealed_source_secret"
        );
        with_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(runner)
        .bind(now())
        .fetch_optional(pool)
        .await)
    }

    /// Records progress of a running job; answers whether a cancel was asked for.
    pub async fn job_heartbeat(
        &self,
        id: Uuid,
        processed: i64,
        total: i64,
        counts: &Counts,
    ) -> sqlx::Result<bool> {
        let sql = "UPDATE import_jobs SET heartbeat_at = $2, processed = $3, total = $4, counts = $5 \
                   WHERE id = $1 RETURNING cancel_requested";
        let cancel: Option<bool> = with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .bind(now())
            .bind(processed)
            .bind(total)
            .bind(Json(counts))
            .fetch_optional(pool)
            .await)?;
        Ok(cancel.unwrap_or(false))
    }

    /// Ends a job and forgets its file (chunks) and sealed secret. Taken by reference: a
    /// write that fails is tried again with the same outcome.
    pub async fn finish_job(&self, id: Uuid, finish: &Finish) -> sqlx::Result<()> {
        let sql = "UPDATE import_jobs SET status = $2, finished_at = $3, processed = $4, total = $5, \
                   counts = $6, report = $7, errors = $8, sealed_source_secret = NULL \
                   WHERE id = $1";
        let forget = "DELETE FROM import_job_chunks WHERE job_id = $1";
        let page_sql = "INSERT INTO import_job_results (job_id, page, results) VALUES ($1, $2, $3)";
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            // A retried write starts over. Each page is written as text on its own:
            // never the whole report at once.
            sqlx::query("DELETE FROM import_job_results WHERE job_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            for (page, results) in finish.results.chunks(RESULTS_PAGE).enumerate() {
                let text =
                    serde_json::to_string(results).map_err(|e| sqlx::Error::Encode(e.into()))?;
                sqlx::query(page_sql)
                    .bind(id)
                    .bind(page as i64)
                    .bind(text)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(sql)
                .bind(id)
                .bind(finish.status.as_str())
                .bind(now())
                .bind(finish.processed)
                .bind(finish.total)
                .bind(Json(&finish.counts))
                .bind(finish.report.as_ref().map(Json))
                .bind(Json(&finish.errors))
                .execute(&mut *tx)
                .await?;
            sqlx::query(forget).bind(id).execute(&mut *tx).await?;
            tx.commit().await
        })
    }

    /// Asks a job to stop: a queued one is cancelled at once, and so is a running one whose
    /// runner is gone (no heartbeat since `gone_before`: its transaction died with it); a
    /// running one whose runner lives stops when its runner next looks. The job's status
    /// afterwards, or `None` for an unknown id. An ended job's chunks are deleted.
    pub async fn request_job_cancel(
        &self,
        id: Uuid,
        gone_before: Option<DateTime<Utc>>,
    ) -> sqlx::Result<Option<JobState>> {
        let end = format!(
            "UPDATE import_jobs SET status = 'cancelled', cancel_requested = TRUE, finished_at = $2, \
               sealed_source_secret = NULL \
             WHERE id = $1 AND (status = 'queued' OR (status = 'running' AND {}))",
            runner_gone("$3")
        );
        let ask = "UPDATE import_jobs SET cancel_requested = (status IN ('queued', 'running')) \
                   WHERE id = $1 RETURNING status";
        let forget = "DELETE FROM import_job_chunks WHERE job_id = $1";
        // Nothing is older than the epoch: without a judgement, no runner counts as gone.
        let cutoff = gone_before.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let ended = sqlx::query(sqlx::AssertSqlSafe(end.clone()))
                .bind(id)
                .bind(now())
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if ended > 0 {
                sqlx::query(forget).bind(id).execute(&mut *tx).await?;
            }
            let status: Option<String> = sqlx::query_scalar(ask)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(status.and_then(|s| JobState::parse(&s)))
        })
    }

    /// Pages `first..=last` of a job's results (each a JSON array), in order.
    pub async fn job_result_pages(
        &self,
        id: Uuid,
        first: i64,
        last: i64,
    ) -> sqlx::Result<Vec<String>> {
        let sql = "SELECT results FROM import_job_results WHERE job_id = $1 AND page >= $2 AND page <= $3 \
                   ORDER BY page";
        with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .bind(first)
            .bind(last)
            .fetch_all(pool)
            .await)
    }

    pub async fn job(&self, id: Uuid) -> sqlx::Result<Option<JobRow>> {
        let sql = format!("SELECT {COLUMNS} FROM import_jobs WHERE id = $1");
        with_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(id)
        .fetch_optional(pool)
        .await)
    }

    /// The newest jobs first.
    pub async fn jobs(&self, limit: i64) -> sqlx::Result<Vec<JobRow>> {
        let sql = format!("SELECT {COLUMNS} FROM import_jobs ORDER BY created_at DESC LIMIT $1");
        with_pool!(self, |pool| sqlx::query_as(sqlx::AssertSqlSafe(
            sql.clone()
        ))
        .bind(limit)
        .fetch_all(pool)
        .await)
    }

    /// Marks failed the running jobs of runners other than `runner` that are gone:
    /// neither the runner (in `import_runners`) nor the job has a heartbeat since
    /// `gone_before` (the runner crashed, and its transaction was rolled back with it).
    /// Their chunks go.
    pub async fn fail_abandoned_jobs(
        &self,
        runner: &str,
        gone_before: DateTime<Utc>,
        errors: &Value,
    ) -> sqlx::Result<u64> {
        let find = format!(
            "SELECT COUNT(*) FROM import_jobs WHERE status = 'running' \
             AND (runner IS NULL OR runner <> $1) AND {}",
            runner_gone("$2")
        );
        let fail = format!(
            "UPDATE import_jobs SET status = 'failed', finished_at = $1, errors = $2, \
               sealed_source_secret = NULL \
             WHERE status = 'running' AND (runner IS NULL OR runner <> $3) AND {}",
            runner_gone("$4")
        );
        with_pool!(self, |pool| {
            // Read first: a write would wait for (on SQLite) another process's import.
            let found: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(find.clone()))
                .bind(runner)
                .bind(gone_before)
                .fetch_one(pool)
                .await?;
            if found == 0 {
                return Ok(0);
            }
            let mut tx = pool.begin().await?;
            let failed = sqlx::query(sqlx::AssertSqlSafe(fail.clone()))
                .bind(now())
                .bind(Json(errors))
                .bind(runner)
                .bind(gone_before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if failed > 0 {
                sqlx::query(FORGET_ENDED).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(failed)
        })
    }

    /// The jobs `runner` holds as running.
    pub async fn running_jobs_of(&self, runner: &str) -> sqlx::Result<Vec<Uuid>> {
        let sql = "SELECT id FROM import_jobs WHERE status = 'running' AND runner = $1";
        with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(runner)
            .fetch_all(pool)
            .await)
    }

    /// Stamps `runner`'s heartbeat (registering it the first time).
    pub async fn runner_heartbeat(&self, runner: &str) -> sqlx::Result<()> {
        let sql = "INSERT INTO import_runners (id, started_at, heartbeat_at) VALUES ($1, $2, $2) \
                   ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(runner)
            .bind(now())
            .execute(pool)
            .await
            .map(drop))
    }

    /// Forgets a runner that stops.
    pub async fn leave_runner(&self, runner: &str) -> sqlx::Result<()> {
        let sql = "DELETE FROM import_runners WHERE id = $1";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(runner)
            .execute(pool)
            .await
            .map(drop))
    }

    /// Forgets the runners silent since before `before` (long gone).
    pub async fn forget_runners(&self, before: DateTime<Utc>) -> sqlx::Result<()> {
        let sql = "DELETE FROM import_runners WHERE heartbeat_at < $1";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(before)
            .execute(pool)
            .await
            .map(drop))
    }
}

/// The condition, on an `import_jobs` row, that its runner is gone: neither the job nor
/// its runner has a heartbeat since `cutoff` (a parameter such as `$3`).
fn runner_gone(cutoff: &str) -> String {
    format!(
        "(import_jobs.heartbeat_at IS NULL OR import_jobs.heartbeat_at < {cutoff}) \
         AND NOT EXISTS (SELECT 1 FROM import_runners \
         WHERE import_runners.id = import_jobs.runner AND import_runners.heartbeat_at >= {cutoff})"
    )
}

/// The key of the PostgreSQL advisory lock every import's transaction holds ("import" in
/// ASCII): imports take turns.
const IMPORT_LOCK: i64 = 0x696d_706f_7274;

impl StoreTx {
    /// Waits until no other import's transaction is open, then holds the turn until this
    /// transaction ends. Two imports of the same keys at once on PostgreSQL would both
    /// find a key missing and the second insert would fail on the unique index (or the
    /// two would deadlock); taking turns, the second sees the first's rows and updates,
    /// skips or reports them as conflicts like any existing entity. One lock for all
    /// imports rather than one per key: a file of 300,000 keys would need 300,000 locks,
    /// beyond the server's lock table, and an import is one transaction at a time per
    /// process anyway. SQLite needs nothing: `BEGIN IMMEDIATE` already takes turns.
    ///
    /// The turn is waited for without the connection's `lock_timeout` (the bounded wait of
    /// a write behind a long import): an import behind another one is queued work, not a
    /// request to refuse. The bound applies again to every write after it.
    pub async fn take_import_turn(&mut self) -> sqlx::Result<()> {
        if let StoreTx::Postgres(tx) = self {
            sqlx::query("SET LOCAL lock_timeout = 0")
                .execute(&mut **tx)
                .await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(IMPORT_LOCK)
                .execute(&mut **tx)
                .await?;
            sqlx::query("SET LOCAL lock_timeout TO DEFAULT")
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// Deletes the chunks of every job that has ended.
const FORGET_ENDED: &str = "DELETE FROM import_job_chunks WHERE EXISTS (SELECT 1 FROM import_jobs \
     WHERE import_jobs.id = import_job_chunks.job_id \
     AND import_jobs.status IN ('completed', 'failed', 'cancelled'))";
