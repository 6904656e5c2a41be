//! axum's extractors with our error envelope: a bad query string or path
//! answers like every other refusal (`{"error": {code, message, details}}`), not with
//! axum's plain-text rejection.

use app::validation::Code;
use axum::extract::{
    FromRequestParts,
    rejection::{PathRejection, QueryRejection},
};

use crate::error::{Error, FieldError};

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Error))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Error))]
pub struct Path<T>(pub T);

fn parameter(message: String) -> Error {
    Error::Parameters(vec![FieldError {
        pointer: String::new(),
        code: Code::Invalid,
        message,
    }])
}

impl From<QueryRejection> for Error {
    fn from(rejection: QueryRejection) -> Error {
        parameter(rejection.body_text())
    }
}

impl From<PathRejection> for Error {
    fn from(_: PathRejection) -> Error {
        Error::NotFound
    }
}
