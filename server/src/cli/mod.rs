//! The `mcpgateway` command line: one binary, one subcommand per file.

mod bench;
mod diff;
mod export;
mod import;
mod rekey;
mod remote;
mod schema;
mod seed;
mod serve;
mod token;
mod validate;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::{
    auth::bootstrap,
    config::{Overrides, Settings},
    crypto::Cipher,
    entities::upgrade,
    store::Store,
    telemetry,
};

/// MCP gateway control plane: serve the gateway and its admin UI, manage API tokens.
#[derive(Debug, Parser)]
#[command(name = "mcpgateway", version, propagate_version = true)]
pub struct Cli {
    /// TOML settings file (default: ./mcpgateway.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://FILE (default sqlite://mcpgateway.db) or postgres://…
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Drive a remote gateway through its REST API (export, import, diff) instead of a
    /// database; the API token comes from MCPGATEWAY_BEARER_TOKEN.
    #[arg(long, global = true, value_name = "URL", env = "MCPGATEWAY_URL")]
    pub url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: REST API and admin UI on HOST:PORT.
    Serve(serve::Opts),
    /// Create, list and revoke API tokens (for the REST API and remote CLI use).
    #[command(subcommand)]
    Token(token::Command),
    /// Fill the gateway with the seed data set (49 entities), or N generated ones.
    Seed(seed::Opts),
    /// Export the configuration to a JSON file, credentials encrypted.
    Export(export::Opts),
    /// Import an export file: validate all of it, then apply it atomically.
    Import(import::Opts),
    /// Show, field by field, what importing a file would change (secrets as <changed>).
    Diff(diff::Opts),
    /// Re-encrypt an export file's credentials from one secret to another, offline.
    Rekey(rekey::Opts),
    /// Print the JSON Schema of the export file.
    Schema,
    /// Check an export file offline and list every problem (no database needed).
    Validate(validate::Opts),
    /// Measure import, re-import, dry run and export of N generated entities on
    /// temporary databases (SQLite, or new databases on --database-url postgres://…).
    Bench(bench::Opts),
}

/// Parses the command line, runs the subcommand, and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// Prints the error; a busy or full database in its own words, not the driver's.
fn fail(error: &anyhow::Error) -> ExitCode {
    match crate::store::StoreFailure::in_chain(error) {
        Some(failure) => eprintln!("error: {failure}"),
        None => eprintln!("error: {error:#}"),
    }
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut overrides = Overrides {
        database_url: cli.database_url.clone(),
        ..Default::default()
    };
    if let Command::Serve(opts) = &cli.command {
        overrides.host = opts.host.clone();
        overrides.port = opts.port;
    }
    // Offline commands: no settings, no database.
    match cli.command {
        Command::Validate(opts) => return validate::run(opts).map(|()| ExitCode::SUCCESS),
        Command::Rekey(opts) => return rekey::run(opts).map(|()| ExitCode::SUCCESS),
        Command::Schema => return schema::run().map(|()| ExitCode::SUCCESS),
        Command::Bench(opts) => {
            return bench::run(opts, cli.database_url)
                .await
                .map(|()| ExitCode::SUCCESS);
        }
        _ => {}
    }
    // `serve` is not a client: it ignores MCPGATEWAY_URL.
    let url = cli
        .url
        .clone()
        .filter(|_| !matches!(cli.command, Command::Serve(_)));
    if let Some(url) = url {
        return run_remote(cli.command, &url).await;
    }
    let settings = Settings::load(cli.config.clone(), &overrides)?;
    // One-shot commands speak through their own output; their logs start at warnings.
    let quiet = !matches!(cli.command, Command::Serve(_)) && settings.log_level == "info";
    telemetry::init(
        settings.log_format,
        if quiet { "warn" } else { &settings.log_level },
    );
    let done = match cli.command {
        Command::Serve(_) => serve::run(settings).await,
        Command::Token(cmd) => token::run(cmd, &settings).await,
        Command::Seed(opts) => seed::run(opts, &settings).await,
        Command::Export(opts) => export::run(opts, &settings).await,
        Command::Import(opts) => import::run(opts, &settings).await,
        Command::Diff(opts) => return diff::run(opts, &settings).await,
        Command::Validate(_) | Command::Rekey(_) | Command::Schema | Command::Bench(_) => {
            unreachable!("offline commands return above")
        }
    };
    done.map(|()| ExitCode::SUCCESS)
}

/// `export`, `import` and `diff` against a remote gateway; the commands that work on a
/// database only say so.
async fn run_remote(command: Command, url: &str) -> anyhow::Result<ExitCode> {
    let remote = || remote::Remote::from_env(url);
    match command {
        Command::Export(opts) => export::run_remote(opts, &remote()?).await?,
        Command::Import(opts) => import::run_remote(opts, &remote()?).await?,
        Command::Diff(opts) => return diff::run_remote(opts, &remote()?).await,
        _ => anyhow::bail!(
            "only export, import and diff drive a remote gateway: drop --url (or unset MCPGATEWAY_URL)"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens the configured database, creating and migrating it when needed, and encrypts
/// credentials older records still hold in plaintext (see [`upgrade`]).
pub(crate) async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect_with(&settings.database_url, settings.lock_wait())
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot open the database {}: {e:#}",
                settings.database_url_redacted()
            )
        })?;
    let rules = settings.sensitive_header_rules();
    let key = || async {
        let secret = bootstrap::encryption_secret(settings, &store).await?;
        Ok(Cipher::new(&secret).with_sensitive_headers(rules.clone()))
    };
    upgrade::seal_stored_credentials(&store, &rules, key).await?;
    Ok(store)
}

/// Who runs a local CLI command, for `exported_by` and the audit log.
/// Each listed problem as `pointer: message` on stderr, then how many were not listed.
pub(crate) fn eprint_problems(problems: &app::validation::Problems) {
    for e in problems.iter() {
        eprintln!("{e}");
    }
    if problems.unlisted() > 0 {
        eprintln!(
            "… and {} more problem(s) not listed ({} in all)",
            problems.unlisted(),
            problems.total
        );
    }
}

pub(crate) fn cli_actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
