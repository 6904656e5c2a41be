//! The `mcpgateway` command line: one binary, one subcommand per file.

mod bench;
mod bench_calls;
mod bench_federation;
mod bench_mcp;
mod diff;
mod export;
mod import;
mod progress;
mod rekey;
mod remote;
mod schema;
mod seed;
mod serve;
mod token;
mod validate;
mod verify;

use std::{path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

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
    #[command(subcommand)]
    pub command: Command,
}

/// Where a command that works on the database finds its settings and the database:
/// only those commands take these flags.
#[derive(Clone, Debug, Default, Args)]
pub struct Local {
    /// TOML settings file (default: ./mcpgateway.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://FILE (default sqlite://mcpgateway.db) or postgres://…
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
}

/// The local database, or a remote gateway (`export`, `import`, `diff`).
#[derive(Clone, Debug, Default, Args)]
pub struct Target {
    #[command(flatten)]
    pub local: Local,
    /// Drive a remote gateway through its REST API instead of a database; the API
    /// token comes from MCPGATEWAY_BEARER_TOKEN.
    #[arg(long, value_name = "URL", env = "MCPGATEWAY_URL")]
    pub url: Option<String>,
}

/// How a command prints its result: the same `-o json|text` on every command that has one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Lines for people.
    #[default]
    Text,
    /// The full result as JSON on stdout (on failure too, where the command has one).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: REST API and admin UI on HOST:PORT.
    Serve(serve::Opts),
    /// Create, list and revoke API tokens (for the REST API and remote CLI use).
    Token(token::Opts),
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
    /// Check that stored credentials are accepted upstream: an authenticated HEAD (or
    /// OPTIONS) per REST tool; exit 1 when one is rejected (401/403).
    Verify(verify::Opts),
}

/// Parses the command line, runs the subcommand, and turns its outcome into an exit code.
pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    crate::federation::peer::install_default_tls_provider();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(&anyhow::anyhow!("cannot start the async runtime: {e}")),
    };
    let outcome = runtime.block_on(run(cli));
    // Work still running was abandoned (a peer contact past the import's wait): its name
    // lookups run on blocking threads that cannot be cancelled, and dropping the runtime
    // would wait for each (a minute and more with thousands of unreachable gateways).
    runtime.shutdown_timeout(SHUTDOWN_WAIT);
    match outcome {
        Ok(code) => code,
        Err(e) => fail(&e),
    }
}

/// How long the CLI waits, once its command is done, for abandoned work to end.
const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Prints the error; a busy or full database in its own words, not the driver's.
fn fail(error: &anyhow::Error) -> ExitCode {
    match crate::store::StoreFailure::in_chain(error) {
        Some(failure) => eprintln!("error: {failure}"),
        None => eprintln!("error: {error:#}"),
    }
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Offline commands: no settings, no database.
    match cli.command {
        Command::Validate(opts) => return validate::run(opts).map(|()| ExitCode::SUCCESS),
        Command::Rekey(opts) => return rekey::run(opts).map(|()| ExitCode::SUCCESS),
        Command::Schema => return schema::run().map(|()| ExitCode::SUCCESS),
        Command::Bench(opts) => return bench::run(opts).await.map(|()| ExitCode::SUCCESS),
        _ => {}
    }
    let (local, url) = cli.command.target();
    if let Some(url) = url {
        return run_remote(cli.command, &url).await;
    }
    refuse_remote_env(&cli.command)?;
    let mut overrides = Overrides {
        database_url: local.database_url,
        ..Default::default()
    };
    if let Command::Serve(opts) = &cli.command {
        overrides.host = opts.host.clone();
        overrides.port = opts.port;
    }
    let settings = Settings::load(local.config, &overrides)?;
    // One-shot commands speak through their own output; their logs start at warnings.
    let quiet = !matches!(cli.command, Command::Serve(_)) && settings.log_level == "info";
    telemetry::init(
        settings.log_format,
        if quiet { "warn" } else { &settings.log_level },
    );
    let done = match cli.command {
        Command::Serve(_) => serve::run(settings).await,
        Command::Token(opts) => token::run(opts.command, &settings).await,
        Command::Seed(opts) => seed::run(opts, &settings).await,
        Command::Export(opts) => export::run(opts, &settings).await,
        Command::Import(opts) => return import::run(opts, &settings).await,
        Command::Diff(opts) => return diff::run(opts, &settings).await,
        Command::Verify(opts) => return verify::run(opts, &settings).await,
        Command::Validate(_) | Command::Rekey(_) | Command::Schema | Command::Bench(_) => {
            unreachable!("offline commands return above")
        }
    };
    done.map(|()| ExitCode::SUCCESS)
}

impl Command {
    /// The settings file and database flags of a command on the database, and the remote
    /// gateway of one that can drive it instead.
    fn target(&self) -> (Local, Option<String>) {
        match self {
            Command::Serve(o) => (o.local.clone(), None),
            Command::Token(o) => (o.local.clone(), None),
            Command::Seed(o) => (o.local.clone(), None),
            Command::Export(o) => (o.target.local.clone(), o.target.url.clone()),
            Command::Import(o) => (o.target.local.clone(), o.target.url.clone()),
            Command::Diff(o) => (o.target.local.clone(), o.target.url.clone()),
            Command::Verify(o) => (o.target.local.clone(), o.target.url.clone()),
            Command::Validate(_) | Command::Rekey(_) | Command::Schema | Command::Bench(_) => {
                (Local::default(), None)
            }
        }
    }
}

/// `MCPGATEWAY_URL` set for `seed` or `token` most likely means the user believes the
/// command goes to that gateway: say so rather than write to a local database.
/// `serve` is not a client: it ignores the variable.
fn refuse_remote_env(command: &Command) -> anyhow::Result<()> {
    let remote_meant = std::env::var("MCPGATEWAY_URL").is_ok_and(|u| !u.trim().is_empty());
    anyhow::ensure!(
        !remote_meant || matches!(command, Command::Serve(_)),
        "only export, import, diff and verify drive a remote gateway: unset MCPGATEWAY_URL"
    );
    Ok(())
}

/// `export`, `import` and `diff` against a remote gateway.
async fn run_remote(command: Command, url: &str) -> anyhow::Result<ExitCode> {
    let remote = remote::Remote::from_env(url)?;
    match command {
        Command::Export(opts) => export::run_remote(opts, &remote).await?,
        Command::Import(opts) => return import::run_remote(opts, &remote).await,
        Command::Diff(opts) => return diff::run_remote(opts, &remote).await,
        Command::Verify(opts) => return verify::run_remote(opts, &remote).await,
        _ => unreachable!("only export, import, diff and verify take --url"),
    }
    Ok(ExitCode::SUCCESS)
}

/// A secret from its flag or environment variable, or from `--…-file PATH` (which wins):
/// a command line is visible to every user of the machine (`ps`), a file or a variable is
/// not. The file holds the secret on its first line; the line break is not part of it.
pub(crate) fn secret(
    value: Option<String>,
    file: Option<&std::path::Path>,
) -> anyhow::Result<Option<SecretString>> {
    let Some(path) = file else {
        return Ok(value.map(SecretString::from));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read the secret file {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or_default();
    anyhow::ensure!(
        !line.is_empty(),
        "the secret file {} is empty",
        path.display()
    );
    Ok(Some(SecretString::from(line.to_owned())))
}

/// May `out` be written? A new file, or `-`, yes; an existing one with `--force`, or when
/// the user says yes on a terminal. From a script (no terminal) it is refused, never
/// silently replaced.
pub(crate) fn may_write(out: &std::path::Path, force: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if force || out.as_os_str() == "-" || !out.try_exists().unwrap_or(false) {
        return Ok(());
    }
    anyhow::ensure!(
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        "{} exists: pass --force to replace it (nothing was written)",
        out.display()
    );
    eprint!("{} exists. Replace it? [y/N] ", out.display());
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    anyhow::ensure!(
        matches!(answer.trim(), "y" | "Y" | "yes"),
        "{} left as it was",
        out.display()
    );
    Ok(())
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

/// Opens a database that must already exist, for the commands that only read (`export`,
/// `diff`): a missing SQLite file is an error naming the URL, never a new empty database
/// (an existing one is still brought up to date by the migrations).
pub(crate) async fn open_existing_store(settings: &Settings) -> anyhow::Result<Store> {
    if let Some(file) = sqlite_file(&settings.database_url)
        && !file.exists()
    {
        anyhow::bail!(
            "no database at {}: this command only reads a gateway's database and does not create one; point --database-url (or DATABASE_URL) at an existing database",
            settings.database_url_redacted()
        );
    }
    open_store(settings).await
}

/// The file a `sqlite:` URL names; `None` for other URLs and in-memory databases.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    use std::str::FromStr;
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    Some(options.get_filename().to_path_buf())
}

/// Who runs a local CLI command, for `exported_by` and the audit log: `--actor` /
/// `MCPGATEWAY_ACTOR`, else `cli:` and the operating-system user.
pub(crate) fn cli_actor(actor: Option<&str>) -> String {
    if let Some(actor) = actor.map(str::trim).filter(|a| !a.is_empty()) {
        return actor.to_owned();
    }
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| whoami::username().ok())
        .unwrap_or_else(|| "unknown".into());
    format!("cli:{user}")
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }
}
