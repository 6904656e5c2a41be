//! The one error type of the HTTP layer, and its JSON envelope.
//!
//! Every refusal answers `{"error": {"code", "message", "details"?}}` ([`ErrorEnvelope`],
//! the type the browser and the CLI read it with). Internal errors answer 500 with a
//! fixed message: their text is logged once here, never sent.

use app::wire::{ErrorBody, ErrorEnvelope};
use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::store::StoreFailure;

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub use app::validation::{Code, FieldError, Problems};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("authentication required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the request has {} invalid field(s)", .0.len())]
    Validation(Vec<FieldError>),
    /// An import file's problems (422): the first 1,000 listed, all counted
    /// (`errors_total`), so a file with millions of bad entities gets a small answer.
    #[error("the file has {} problem(s)", .0.total)]
    InvalidFile(Problems),
    /// Bad query parameters or form fields, each named (400).
    #[error("the request has {} invalid parameter(s)", .0.len())]
    Parameters(Vec<FieldError>),
    #[error("the upload is larger than the limit of {0} MB (MCPGATEWAY_MAX_UPLOAD_MB)")]
    PayloadTooLarge(u64),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many attempts (429 with `Retry-After`, in whole seconds).
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// The write lock was not had within the bounded wait (503 with `Retry-After`): an
    /// import holds it. Made from a database error by `From`, never by hand.
    #[error(
        "the gateway is busy importing (the database's write lock is held); try again in {retry_after_secs} seconds"
    )]
    Busy { retry_after_secs: u64 },
    /// The database's disk is full (507 Insufficient Storage): nothing was written, and
    /// retrying will not help until an operator frees space, so no `Retry-After`.
    #[error("{}", StoreFailure::Full)]
    StorageFull,
    #[error("internal error")]
    Internal(anyhow::Error),
    #[error("internal error")]
    Database(sqlx::Error),
}

/// What `Retry-After` says to a write refused as busy: an import holds the lock for
/// seconds (a 100 MB one about twenty), so sooner would mostly be refused again.
pub const BUSY_RETRY_AFTER_SECS: u64 = 5;

impl From<StoreFailure> for Error {
    fn from(failure: StoreFailure) -> Error {
        match failure {
            StoreFailure::Busy => Error::Busy {
                retry_after_secs: BUSY_RETRY_AFTER_SECS,
            },
            StoreFailure::Full => Error::StorageFull,
        }
    }
}

/// A database error is internal (500) unless it is the store's condition: busy or full.
impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        match StoreFailure::of(&e) {
            Some(failure) => {
                tracing::warn!(error.detail = %e, "database unavailable for writes");
                failure.into()
            }
            None => Error::Database(e),
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Error {
        match StoreFailure::in_chain(&e) {
            Some(failure) => {
                tracing::warn!(error.detail = ?e, "database unavailable for writes");
                failure.into()
            }
            None => Error::Internal(e),
        }
    }
}

impl Error {
    pub fn status_code(&self) -> StatusCode {
        match self {
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::BadRequest(_) | Error::Parameters(_) => StatusCode::BAD_REQUEST,
            Error::Validation(_) | Error::InvalidFile(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            Error::Internal(_) | Error::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `Retry-After`, in whole seconds, of a refusal that may succeed later.
    fn retry_after(&self) -> Option<u64> {
        match self {
            Error::TooManyRequests {
                retry_after_secs, ..
            }
            | Error::Busy { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Unauthorized => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::NotFound => "not_found",
            Error::Conflict(_) => "conflict",
            Error::BadRequest(_) | Error::Parameters(_) => "bad_request",
            Error::Validation(_) | Error::InvalidFile(_) => "validation_failed",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::TooManyRequests { .. } => "too_many_requests",
            Error::Busy { .. } => "busy",
            Error::StorageFull => "storage_full",
            Error::Internal(_) | Error::Database(_) => "internal",
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Error::Internal(e) => tracing::error!(error.detail = ?e, "internal error"),
            Error::Database(e) => tracing::error!(error.detail = %e, "database error"),
            _ => {}
        }
        let (status, retry_after) = (self.status_code(), self.retry_after());
        let unauthorized = matches!(self, Error::Unauthorized);
        let (code, message) = (self.code().to_owned(), self.to_string());
        let (details, errors_total) = match self {
            Error::Validation(errors) | Error::Parameters(errors) => (Some(errors), None),
            Error::InvalidFile(problems) => (Some(problems.listed), Some(problems.total)),
            _ => (None, None),
        };
        let body = ErrorEnvelope {
            error: ErrorBody {
                code,
                message,
                details,
                errors_total,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if unauthorized {
            // RFC 6750, as the MCP authorization spec asks of a 401.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="mcpgateway""#),
            );
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(error: Error) -> (StatusCode, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn internal_errors_answer_500_without_their_text() {
        let (status, body) =
            body_of(Error::Internal(anyhow::anyhow!("disk /var/db is full"))).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("/var/db"));
    }

    #[tokio::test]
    async fn busy_answers_503_with_retry_after_and_full_answers_507() {
        let busy = Error::from(StoreFailure::Busy).into_response();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(busy.headers()[header::RETRY_AFTER], "5");
        let (status, body) = body_of(StoreFailure::Full.into()).await;
        assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);
        assert_eq!(body["error"]["code"], "storage_full");
    }

    #[tokio::test]
    async fn validation_errors_list_every_field() {
        let errors = vec![
            FieldError {
                pointer: "/name".into(),
                code: Code::Required,
                message: "required".into(),
            },
            FieldError {
                pointer: "/url".into(),
                code: Code::InvalidScheme,
                message: "bad scheme".into(),
            },
        ];
        let (status, body) = body_of(Error::Validation(errors)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["details"][1]["pointer"], "/url");
    }
}
