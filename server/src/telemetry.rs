//! Logging: human-readable on a terminal, JSON lines with `LOG_FORMAT=json`.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// rmcp's client logs an error for every peer connection that fails, which federation
/// already records as the gateway's health (and logs once per change): an import of
/// 5,000 unreachable gateways printed hundreds of these lines. Its service loop logs four
/// info lines per MCP session (initialized, the client's `initialized`, input ended,
/// finished) beside the request lines the gateway writes itself; its warnings stay.
const QUIETED: &str = "rmcp::transport::worker=off,rmcp::service=warn";

/// Installs the global subscriber. `RUST_LOG` wins over `level` when set.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("{level},{QUIETED}")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Human => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    // A second init (tests, repeated CLI calls in one process) keeps the first subscriber.
    let _ = result;
}
