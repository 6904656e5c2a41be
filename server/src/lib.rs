//! mcpgateway: the control plane of an MCP gateway.
//!
//! - [`cli`]: the `mcpgateway` binary's subcommands, each a thin adapter.
//! - [`http`]: the axum router (REST API, auth, the Leptos admin UI).
//! - [`mcp`]: the MCP endpoints (per virtual server, and the gateway's own).
//! - [`store`]: SQLite or PostgreSQL behind one interface, chosen by `DATABASE_URL`.
//! - [`invoke`]: the tool-call engine (REST tools' upstreams, guarded).
//! - [`hot`]: what every MCP request reads, kept in memory while the store is unchanged.
//! - [`auth`]: passwords, API tokens, sessions, first-start bootstrap.
//! - [`config`]: layered settings; [`telemetry`]: logging; [`error`]: the HTTP error type.

pub mod alloc;
pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod entities;
pub mod error;
pub mod federation;
pub mod hot;
pub mod http;
pub mod invoke;
pub mod mcp;
pub mod store;
pub mod telemetry;
pub mod transfer;
