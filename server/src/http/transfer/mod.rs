//! Export and import over REST: thin adapters over [`crate::transfer`], their request
//! and response shapes those of [`app::wire`].
//!
//! - [`export`]: `GET /admin/export`, `POST /admin/export/selective` (the file, as a
//!   download), `GET|POST /admin/export/preview` (what an export would hold).
//! - [`import`]: `POST /admin/import` (multipart or JSON: 202 and a durable job),
//!   `POST /admin/import/preview`.
//! - [`jobs`]: `GET /admin/import/status/{id}`, `…/events` (SSE), `…/results`,
//!   `POST /admin/import/{id}/cancel`, `GET /admin/import/jobs`.
//! - [`audit`]: `GET /admin/audit`.

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};

use super::AppState;

pub mod audit;
pub mod export;
pub mod import;
pub mod jobs;

pub fn routes(max_upload_bytes: usize) -> Router<AppState> {
    // Multipart bodies are limited by this layer as a whole; a JSON body is counted as it
    // is spooled, against the same number (`import::upload_limit`).
    let uploads = Router::new()
        .route("/admin/import", post(import::start_import))
        .route("/admin/import/preview", post(import::preview_import))
        .layer(DefaultBodyLimit::max(max_upload_bytes));
    Router::new()
        .route("/admin/export", get(export::export_all))
        .route("/admin/export/selective", post(export::export_selected))
        .route(
            "/admin/export/preview",
            get(export::preview_export_query).post(export::preview_export_selected),
        )
        .route("/admin/import/status/{id}", get(jobs::job_status))
        .route("/admin/import/status/{id}/events", get(jobs::job_events))
        .route("/admin/import/status/{id}/results", get(jobs::job_results))
        .route("/admin/import/{id}/cancel", post(jobs::cancel_job))
        .route("/admin/import/jobs", get(jobs::list_jobs))
        .route("/admin/audit", get(audit::audit))
        .merge(uploads)
}
