//! Integration tests of the `server` crate, linked into one binary (one link of the
//! whole server instead of one per file keeps a cold build small and quick).
//! Each module is a story over one capability; `common` makes a fresh database per test.

mod common;

mod cli;
mod connections;
mod crash;
mod crypto_props;
mod entities_rest;
mod export;
mod federation_life;
mod federation_peer;
mod federation_store;
mod header_credentials;
mod hostile;
mod import;
mod import_batches;
mod in_process;
mod input_rules;
mod invoke;
mod job_runners;
mod key_check;
mod load;
mod login;
mod login_limits;
mod mcp;
mod mcp_changes;
mod mcp_endpoints;
mod mcp_hot;
mod mcp_sessions;
mod mcp_sse;
mod memory;
mod progress;
mod route_table;
mod secrets_scan;
mod security_headers;
mod store_avail;
mod store_story;
mod test_databases;
mod transfer_rest;
mod transfer_selection;
mod verify;
