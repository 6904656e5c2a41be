//! Import jobs in the database, so that every process answers for every job and any
//! process can run a queued one. Claiming is atomic: on PostgreSQL with
//! `FOR UPDATE SKIP LOCKED`, on SQLite because it has one writer at a time.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Store, now, with_pool};

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
    pub report: Option<Json<Value>>,
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
    pub payload: &'a [u8],
    /// The source secret, encrypted with the gateway's own key.
    pub sealed_source_secret: Option<String>,
}

/// A job this process has claimed, with what it needs to run.
#[derive(Debug, sqlx::FromRow)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub created_by: String,
    pub options: Json<Value>,
    pub payload: Vec<u8>,
    pub sealed_source_secret: Option<String>,
}

/// How a job ended.
pub struct Finish<'a> {
    pub status: &'a str,
    pub processed: i64,
    pub total: i64,
    pub counts: Value,
    pub report: Option<Value>,
    pub errors: Value,
}

impl Store {
    pub async fn insert_job(&self, job: NewJob<'_>) -> sqlx::Result<()> {
        let sql = "INSERT INTO import_jobs (id, status, created_by, created_at, options, file_name, \
                   file_sha256, file_size, payload, sealed_source_secret) \
                   VALUES ($1, 'queued', $2, $3, $4, $5, $6, $7, $8, $9)";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(job.id)
            .bind(job.created_by)
            .bind(now())
            .bind(Json(&job.options))
            .bind(job.file_name)
            .bind(job.file_sha256)
            .bind(job.payload.len() as i64)
            .bind(job.payload)
            .bind(job.sealed_source_secret)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
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

    /// Ends a job and forgets its payload and sealed secret.
    pub async fn finish_job(&self, id: Uuid, finish: Finish<'_>) -> sqlx::Result<()> {
        let sql = "UPDATE import_jobs SET status = $2, finished_at = $3, processed = $4, total = $5, \
                   counts = $6, report = $7, errors = $8, payload = NULL, sealed_source_secret = NULL \
                   WHERE id = $1";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(finish.status)
            .bind(now())
            .bind(finish.processed)
            .bind(finish.total)
            .bind(Json(&finish.counts))
            .bind(finish.report.as_ref().map(Json))
            .bind(Json(&finish.errors))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
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
        with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(id)
            .bind(now())
            .fetch_optional(pool)
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
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(now())
            .bind(Json(errors))
            .bind(runner)
            .bind(now() - silence)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
    }
}
