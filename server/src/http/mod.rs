//! The HTTP front door: one axum router for the REST API, the auth endpoints and the
//! server-rendered admin UI.
//!
//! [`app`] builds the router from an [`AppState`]; [`launch_with_listener`] serves it
//! on a bound listener until a shutdown future resolves (tests bind port 0).

mod auth;
mod client;
mod entities;
mod extract;
mod headers;
mod health;
pub mod limit;
mod openapi;
mod outbound;
mod serve;
mod site;
mod trace;
mod transfer;
mod ui;

use std::{future::Future, sync::Arc, time::Duration};

use axum::{Router, extract::FromRef, middleware, routing::get};
use leptos::config::LeptosOptions;
use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::{
    auth::usage::TokenUse,
    config::Settings,
    crypto::Cipher,
    federation::lifecycle::{Federation, Lifecycle},
    store::Store,
    transfer::jobs::Jobs,
};

pub(crate) use auth::same_origin;
pub use auth::{PUBLIC_PATHS, SESSION_COOKIE};
pub use ui::ui_paths;

/// What every handler may reach. Cloned by every extractor and middleware of every
/// request, so one reference count ([`Shared`]'s fields are reached through `Deref`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What an [`AppState`] holds.
pub struct Shared {
    pub store: Store,
    pub settings: Arc<Settings>,
    /// Encrypts and decrypts stored credentials (from `AUTH_ENCRYPTION_SECRET`).
    pub cipher: Arc<Cipher>,
    /// Import jobs: submitted here, run by this process's worker or another replica's.
    pub jobs: Jobs,
    /// MCP sessions (`/mcp`, `/servers/{id}/mcp`), ended on shutdown.
    pub mcp: crate::mcp::McpSessions,
    pub leptos: LeptosOptions,
    /// Sign-in attempts per client IP and per account.
    pub login_limits: Arc<limit::LoginLimits>,
    /// Permits for streamed exports (`concurrent_exports`); a request waits for one.
    pub exports: Arc<tokio::sync::Semaphore>,
    /// API token uses, written to the store in the background (never by a request).
    pub token_use: Arc<TokenUse>,
    /// Calls tools' upstreams (MCP `tools/call`, `verify`) and counts the calls.
    pub invoker: crate::invoke::Invoker,
    /// Sessions with peer gateways (federation): discovery and forwarded calls.
    pub peers: crate::federation::peer::Peers,
    /// Tokens, servers and tools as MCP requests read them, kept while unchanged.
    pub hot: Arc<crate::hot::HotPath>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

impl AppState {
    #[expect(
        clippy::needless_pass_by_value,
        reason = "the caller's copy of the secret is zeroized when this returns"
    )]
    pub fn new(store: Store, settings: Settings, encryption_secret: SecretString) -> AppState {
        let leptos = LeptosOptions::builder()
            .output_name(settings.output_name.clone())
            .site_root(settings.site_root.to_string_lossy().into_owned())
            .site_pkg_dir(settings.site_pkg_dir.clone())
            .build();
        let cipher = Arc::new(
            Cipher::new(&encryption_secret)
                .with_sensitive_headers(settings.sensitive_header_rules()),
        );
        let login_limits = Arc::new(limit::LoginLimits::new(
            settings.login_attempts_per_ip,
            settings.login_attempts_per_account,
        ));
        AppState(Arc::new(Shared {
            login_limits,
            exports: Arc::new(tokio::sync::Semaphore::new(usize::from(
                settings.concurrent_exports.max(1),
            ))),
            jobs: Jobs::new(
                store.clone(),
                cipher.clone(),
                Duration::from_secs(settings.job_runner_timeout_secs.into()),
            ),
            token_use: Arc::default(),
            mcp: crate::mcp::McpSessions::new(&settings),
            invoker: crate::invoke::Invoker::new(cipher.clone(), &settings),
            peers: crate::federation::peer::Peers::new(&settings, cipher.clone()),
            hot: Arc::new(crate::hot::HotPath::new(store.clone())),
            store,
            settings: Arc::new(settings),
            cipher,
            leptos,
        }))
    }
}

/// The whole router. Credentials are checked before routing, so an unknown path
/// answers 401 to a caller without them and reveals nothing.
pub fn app(state: AppState) -> Router {
    let max_upload =
        usize::try_from(state.settings.max_upload_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
    let api = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .merge(auth::routes())
        .merge(entities::routes())
        .merge(transfer::routes(max_upload))
        .merge(outbound::routes())
        .merge(openapi::routes())
        .merge(crate::mcp::routes(&state));
    ui::routes(api, &state)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_auth,
        ))
        .layer(middleware::from_fn(headers::security_headers))
        .layer(trace::layer())
        .with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` resolves; in-flight requests finish.
pub async fn launch_with_listener(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let store = state.store.clone();
    let token_use = state.token_use.clone();
    let flusher = token_use.clone().spawn_flusher(store.clone());
    let background = state.jobs.start(state.settings.import_workers > 0);
    let federation = Lifecycle::start(Federation::new(
        store.clone(),
        state.peers.clone(),
        state.invoker.metrics().clone(),
    ));
    let limits = serve::Limits::from_settings(&state.settings);
    let mcp_streams = state.mcp.shutdown.clone();
    let shutdown = async move {
        shutdown.await;
        mcp_streams.cancel();
    };
    serve::serve(listener, app(state), limits, shutdown).await;
    // Its leases are given up, for another replica to take over at once.
    federation.stop().await;
    // A running import's transaction rolls back; its job is recorded as interrupted.
    background.stop().await;
    flusher.abort();
    token_use.flush(&store).await;
    store.close().await;
    Ok(())
}
