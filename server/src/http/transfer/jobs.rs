//! An import job from outside: its status, its progress as Server-Sent Events, its
//! results a page at a time, cancelling it, and the recent jobs.

use std::convert::Infallible;

use app::{
    jobs::{JobResults, JobStatus},
    wire::{JobList, JobsQuery, ResultsQuery, invalid},
};
use axum::{
    Json,
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use crate::{
    error::{Error, Result},
    http::{
        AppState,
        extract::{Path, Query},
    },
};

/// An import job: status, progress, counts per type, how many results, errors (the
/// first 1,000 and their count). The per-entity results are paged: `…/results`.
#[utoipa::path(get, path = "/admin/import/status/{id}", tag = "import",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job", body = ref("#/components/schemas/JobStatus")),
        (status = 404, description = "No such job", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn job_status(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>> {
    let id = job_id(&id)?;
    Ok(Json(state.jobs.status(id).await?.ok_or(Error::NotFound)?))
}

/// A page of a finished job's per-entity results, in dependency order.
#[utoipa::path(get, path = "/admin/import/status/{id}/results", tag = "import",
    params(
        ("id" = String, Path, description = "The job id"),
        ResultsQuery,
    ),
    responses(
        (status = 200, description = "The page and the total", body = ref("#/components/schemas/JobResults")),
        (status = 400, description = "A bad parameter, named", body = ref("#/components/schemas/ErrorEnvelope")),
        (status = 404, description = "No such job", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn job_results(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ResultsQuery>,
) -> Result<Json<JobResults>> {
    let id = job_id(&id)?;
    let limit = query.limit.unwrap_or(JobResults::MAX_LIMIT);
    if !(1..=JobResults::MAX_LIMIT).contains(&limit) {
        return Err(Error::Parameters(vec![invalid("/limit", "must be 1-1000")]));
    }
    let offset = query.offset.unwrap_or(0);
    let page = state.jobs.results(id, offset, limit).await?;
    Ok(Json(page.ok_or(Error::NotFound)?))
}

/// Server-Sent Events: `progress` events as the job advances, then one `done` event.
#[utoipa::path(get, path = "/admin/import/status/{id}/events", tag = "import",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "text/event-stream of `progress` and a final `done` event, each carrying the job status as JSON", content_type = "text/event-stream"),
        (status = 404, description = "No such job", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn job_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = std::result::Result<Event, Infallible>>>> {
    let id = job_id(&id)?;
    let states = state.jobs.watch(id).await?.ok_or(Error::NotFound)?;
    let events = states.map(|status| {
        let kind = if status.status.is_final() {
            "done"
        } else {
            "progress"
        };
        Ok(Event::default()
            .event(kind)
            .json_data(&status)
            .unwrap_or_default())
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// Cancel a job: a queued one at once, a running one rolls back (nothing written).
#[utoipa::path(post, path = "/admin/import/{id}/cancel", tag = "import",
    params(("id" = String, Path, description = "The job id")),
    responses(
        (status = 200, description = "The job after the request (a running job becomes `cancelled` when its transaction has rolled back)", body = ref("#/components/schemas/JobStatus")),
        (status = 404, description = "No such job", body = ref("#/components/schemas/ErrorEnvelope")),
        (status = 409, description = "The job had already ended", body = ref("#/components/schemas/ErrorEnvelope")),
    ))]
pub async fn cancel_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobStatus>> {
    let id = job_id(&id)?;
    let before = state.jobs.status(id).await?.ok_or(Error::NotFound)?;
    if before.status.is_final() {
        return Err(Error::Conflict(format!(
            "the job has already ended ({})",
            before.status.as_str()
        )));
    }
    Ok(Json(state.jobs.cancel(id).await?.ok_or(Error::NotFound)?))
}

/// Recent import jobs, newest first (without per-entity results).
#[utoipa::path(get, path = "/admin/import/jobs", tag = "import",
    params(JobsQuery),
    responses((status = 200, description = "Jobs", body = ref("#/components/schemas/JobList"))))]
pub async fn list_jobs(
    State(state): State<AppState>,
    Query(query): Query<JobsQuery>,
) -> Result<Json<JobList>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Error::Parameters(vec![invalid("/limit", "must be 1-500")]));
    }
    Ok(Json(JobList {
        jobs: state.jobs.list(limit).await?,
    }))
}

fn job_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| Error::NotFound)
}
