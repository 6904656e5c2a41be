//! Import jobs in the database, so that every process answers for every job and any
//! process can run a queued one. Claiming is atomic: on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, on SQLite because it has one writer at a time.
//!
//! A job's file is stored in chunks of [`CHUNK`] bytes (`import_job_chunks`), written from
//! and read back into spool files, so no step holds the whole file in memory. Jobs queued
//! before chunks existed carry it in `import_jobs.payload`, which is still read.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use app::jobs::EntityResult;

use super::{Store, now, with_pool};
use crate::transfer::{input::Input, spool::Spool};

/// The size of one stored piece of a job's file.
pub const CHUNK: usize = 1 << 20;

/// A job as stored, without its payload.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub status: String,
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

/// A job to queue.
pub struct NewJob<'a> {
    pub id: Uuid,
    pub created_by: &'a str,
    pub options: Value,
    pub file_name: Option<&'a str>,
    pub file_sha256: &'a str,
    /// The file, stored in chunks; a mapped file's pages are let go as they are written.
    pub payload: &'a Input,
    /// The source secret, encrypted with the gateway's own key.
    pub sealed_source_secret: Option<String>,
}

/// A job this process has claimed, with what it needs to run.
#[derive(Debug, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub created_by: String,
    pub options: Json<Value>,
    /// The file of a job queued before chunks existed (`None` for newer jobs).
    #[sqlx(rename = "payload")]
    pub legacy_payload: Option<Vec<u8>>,
    pub sealed_source_secret: Option<String>,
}

/// How a job ended.
pub struct Finish<'a> {
    pub status: &'a str,
    pub processed: i64,
    pub total: i64,
    pub counts: Value,
    pub report: Option<Box<serde_json::value::RawValue>>,
    pub errors: Value,
    /// Per entity, stored in pages of [`RESULTS_PAGE`] (`import_job_results`).
    pub results: Vec<EntityResult>,
}

/// How many per-entity results one row of `import_job_results` holds.
pub const RESULTS_PAGE: usize = 1_000;

impl Store {
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
                job.payload.release_before((seq + 1) * CHUNK);
            }
            tx.commit().await
        })
    }

    /// The file of a claimed job, spooled from its chunks (in order) and mapped; a job
    /// queued before chunks existed hands over its `payload` column (`legacy`).
    pub async fn job_payload(&self, id: Uuid, legacy: Option<Vec<u8>>) -> sqlx::Result<Input> {
        let mut spool = Spool::new()?;
        let mut chunks = 0;
        while let Some(data) = self.job_chunk(id, chunks).await? {
            spool.write(&data).await?;
            chunks += 1;
        }
        match legacy {
            Some(payload) if chunks == 0 => Ok(Input::from(payload)),
            _ => Ok(spool.finish().await?),
        }
    }

    /// One stored chunk of a job's file (`seq` from 0), or `None` past the last.
    async fn job_chunk(&self, id: Uuid, seq: i64) -> sqlx::Result<Option<Vec<u8>>> {
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
             RETURNING id, created_by, options, payload, sealed_source_secret"
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
        counts: &Value,
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

    /// Ends a job and forgets its file (chunks and payload) and sealed secret.
    pub async fn finish_job(&self, id: Uuid, finish: Finish<'_>) -> sqlx::Result<()> {
        let sql = "UPDATE import_jobs SET status = $2, finished_at = $3, processed = $4, total = $5, \
                   counts = $6, report = $7, errors = $8, payload = NULL, sealed_source_secret = NULL \
                   WHERE id = $1";
        let forget = "DELETE FROM import_job_chunks WHERE job_id = $1";
        let page_sql = "INSERT INTO import_job_results (job_id, page, results) VALUES ($1, $2, $3)";
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            // Each page is written as text on its own: never the whole report at once.
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
                .bind(finish.status)
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

    /// Asks a job to stop: a queued one is cancelled at once, a running one when its
    /// runner next looks. The job's status afterwards, or `None` for an unknown id.
    pub async fn request_job_cancel(&self, id: Uuid) -> sqlx::Result<Option<String>> {
        let sql = "UPDATE import_jobs SET \
                     cancel_requested = (status IN ('queued', 'running')), \
                     finished_at = CASE WHEN status = 'queued' THEN $2 ELSE finished_at END, \
                     payload = CASE WHEN status = 'queued' THEN NULL ELSE payload END, \
                     sealed_source_secret = CASE WHEN status = 'queued' THEN NULL ELSE sealed_source_secret END, \
                     status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END \
                   WHERE id = $1 RETURNING status";
        let forget = "DELETE FROM import_job_chunks WHERE job_id = $1";
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let status: Option<String> = sqlx::query_scalar(sql)
                .bind(id)
                .bind(now())
                .fetch_optional(&mut *tx)
                .await?;
            // A running job keeps its file until its runner records the end.
            if status.as_deref() == Some("cancelled") {
                sqlx::query(forget).bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(status)
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

    /// Marks failed the running jobs whose runner went silent for longer than `silence`
    /// (it crashed: its transaction was rolled back with it), except `runner`'s own.
    pub async fn fail_abandoned_jobs(
        &self,
        runner: &str,
        silence: Duration,
        errors: &Value,
    ) -> sqlx::Result<u64> {
        let sql = "UPDATE import_jobs SET status = 'failed', finished_at = $1, errors = $2, \
                   payload = NULL, sealed_source_secret = NULL \
                   WHERE status = 'running' AND (runner IS NULL OR runner <> $3) AND heartbeat_at < $4";
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let failed = sqlx::query(sql)
                .bind(now())
                .bind(Json(errors))
                .bind(runner)
                .bind(now() - silence)
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
}

/// Deletes the chunks of every job that has ended.
const FORGET_ENDED: &str = "DELETE FROM import_job_chunks WHERE EXISTS (SELECT 1 FROM import_jobs \
     WHERE import_jobs.id = import_job_chunks.job_id \
     AND import_jobs.status IN ('completed', 'failed', 'cancelled'))";
