//! The admin UI and the types that the server and the browser share.
//!
//! This crate compiles twice: with `ssr` into the server (render pages, answer server
//! functions) and with `hydrate` into the browser's WASM (take over the server's HTML).
//! Never both in one build. Server-only code sits in [`backend`], gated once here.

pub mod api;
pub mod client;
pub mod entities;
pub mod federation;
pub mod jobs;
pub mod model;
mod pages;
pub mod transfer;
pub mod validation;
pub mod verify;
pub mod wire;

#[cfg(feature = "ssr")]
pub mod backend;

pub use pages::{App, shell};
