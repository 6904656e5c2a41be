//! The server's `entities::headers`, which `crypto.rs` seals tool headers with.

#[path = "../../server/src/entities/headers.rs"]
pub mod headers;
