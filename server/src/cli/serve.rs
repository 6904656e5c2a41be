//! `mcpgateway serve`: the gateway server.

use clap::Args;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::{
    auth::bootstrap,
    config::Settings,
    http::{self, AppState},
};

#[derive(Debug, Args)]
pub struct Opts {
    /// Address to listen on (env HOST; default 127.0.0.1).
    #[arg(long)]
    pub host: Option<String>,
    /// Port to listen on (env PORT; default 4444; 0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let store = super::open_store(&settings).await?;
    let secret = bootstrap::encryption_secret(&settings, &store).await?;
    if let Some(password) = bootstrap::ensure_admin(&store, &settings).await? {
        // Shown once on the terminal, deliberately not through the logs.
        println!(
            "First start: sign in as {} with password {} (set MCPGATEWAY_ADMIN_PASSWORD to choose it).",
            settings.admin_email,
            password.expose_secret()
        );
    }
    let listener = TcpListener::bind((settings.host.as_str(), settings.port))
        .await
        .map_err(|e| {
            anyhow::anyhow!("cannot listen on {}:{}: {e}", settings.host, settings.port)
        })?;
    let address = listener.local_addr()?;
    tracing::info!(
        http.address = %address,
        database = %settings.database_url_redacted(),
        "mcpgateway listening on http://{address} (database {})",
        store.backend_name()
    );
    println!("mcpgateway is ready: open http://{address}/login");
    let state = AppState::new(store, settings, secret);
    http::launch_with_listener(state, listener, shutdown_signal()).await?;
    tracing::info!("mcpgateway stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
