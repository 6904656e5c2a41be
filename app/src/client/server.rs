//! The server build of [`super`]: the same signatures, never called (components run
//! their event handlers only in the browser).

use serde::{Serialize, de::DeserializeOwned};

use super::{ClientError, Download, Upload};

pub async fn post_json<B: Serialize, T: DeserializeOwned>(
    _url: &str,
    _body: &B,
) -> Result<T, ClientError> {
    Err(ClientError::browser_only())
}

pub async fn get_json<T: DeserializeOwned>(_url: &str) -> Result<T, ClientError> {
    Err(ClientError::browser_only())
}

pub async fn post_empty<T: DeserializeOwned>(_url: &str) -> Result<T, ClientError> {
    Err(ClientError::browser_only())
}

pub async fn post_file<T: DeserializeOwned>(_url: &str, _upload: Upload) -> Result<T, ClientError> {
    Err(ClientError::browser_only())
}

pub async fn download<B: Serialize>(
    _url: &str,
    _body: Option<&B>,
    _progress: impl Fn(u64),
) -> Result<Download, ClientError> {
    Err(ClientError::browser_only())
}

pub async fn follow_job(
    _events_url: &str,
    _on_status: impl Fn(crate::jobs::JobStatus),
) -> Result<crate::jobs::JobStatus, ClientError> {
    Err(ClientError::browser_only())
}

pub async fn read_file(_file: web_sys::File) -> Result<Vec<u8>, ClientError> {
    Err(ClientError::browser_only())
}

pub fn save(_download: &Download) -> Result<(), ClientError> {
    Err(ClientError::browser_only())
}
