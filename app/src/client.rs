//! The browser's side of the REST API of `server/src/http/transfer.rs`: JSON and file
//! uploads, downloads with byte progress, saving a file, and following a job's events.
//!
//! Only the hydrated app calls these (from event handlers); the server build compiles
//! the same signatures, answering [`ClientError::browser_only`].

use crate::validation::FieldError;

/// Why a call failed, in words a user can act on, with every field error the server named.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientError {
    pub message: String,
    pub details: Vec<FieldError>,
}

impl ClientError {
    pub(crate) fn new(message: impl Into<String>) -> ClientError {
        ClientError {
            message: message.into(),
            details: Vec::new(),
        }
    }

    #[cfg_attr(
        feature = "hydrate",
        expect(dead_code, reason = "the browser build calls the real client instead")
    )]
    pub(crate) fn browser_only() -> ClientError {
        ClientError::new("only available in the browser")
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A file to upload as the multipart field `file`, with the other form fields.
pub struct Upload {
    pub file_name: String,
    pub bytes: Vec<u8>,
    pub fields: Vec<(&'static str, String)>,
}

/// A downloaded file: the name the server gave it and its bytes.
pub struct Download {
    pub file_name: String,
    pub bytes: Vec<u8>,
}

// One implementation per build, with the same public functions.
#[cfg_attr(feature = "hydrate", path = "client/browser.rs")]
#[cfg_attr(not(feature = "hydrate"), path = "client/server.rs")]
mod imp;

pub use imp::{download, follow_job, get_json, post_empty, post_file, post_json, read_file, save};

/// "1.2 MB", "34 KB", "512 B".
pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{} KB", n >> 10),
        n => format!("{n} B"),
    }
}
