//! `mcpgateway diff FILE`: what importing the file would change here, field by field.

use std::{path::PathBuf, process::ExitCode};

use app::wire;
use clap::Args;
use secrecy::ExposeSecret;

use super::{Output, remote::Remote};
use crate::{
    auth::bootstrap,
    config::Settings,
    crypto::Cipher,
    transfer::{
        import::{Action, ConflictStrategy, ImportOptions, ImportReport, import},
        selection::Include,
    },
};

#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    pub target: super::Target,
    /// The export file to compare with this gateway.
    pub file: PathBuf,
    /// Only these entities (names or globs per type) plus what they need.
    #[arg(long, value_name = "SPEC", value_parser = Include::parse)]
    pub include: Option<Include>,
    /// The secret the file's credentials were encrypted with (default: this gateway's).
    #[arg(
        long,
        value_name = "OLD",
        env = "MCPGATEWAY_SOURCE_SECRET",
        hide_env_values = true
    )]
    pub source_secret: Option<String>,
    /// Read the --source-secret from this file instead (its first line).
    #[arg(long, value_name = "PATH")]
    pub source_secret_file: Option<PathBuf>,
    /// Exit 0 when nothing would change, 2 when something would, 1 on error (for CI drift checks).
    #[arg(long)]
    pub exit_code: bool,
    /// Output format: the plan lines, or the plan as JSON.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// What a refused file did not become (a diff imports nothing either way).
const COMPARED: &str = "nothing was compared";

/// Runs a dry-run import and prints each difference; credentials only as `<changed>`.
pub async fn run(opts: Opts, settings: &Settings) -> anyhow::Result<ExitCode> {
    let bytes = super::validate::read_input(&opts.file)?;
    let store = super::open_existing_store(settings).await?;
    let target = Cipher::new(&bootstrap::encryption_secret(settings, &store).await?)
        .with_sensitive_headers(settings.sensitive_header_rules());
    let source = super::secret(
        opts.source_secret.clone(),
        opts.source_secret_file.as_deref(),
    )?
    .map(|s| Cipher::new(&s));
    let options = ImportOptions {
        strategy: ConflictStrategy::Update,
        dry_run: true,
        include: opts.include.clone(),
        picked: None,
        source: source.as_ref(),
        observer: None,
        allow_missing_links: false,
    };
    let comparing = comparing(&opts.file);
    let result = import(&store, &target, &bytes, &options, &super::cli_actor(None)).await;
    drop(comparing);
    store.close().await;
    let report = super::import::explain(result, &opts.file, COMPARED)?;
    show(&report, &opts)
}

/// The same plan from a remote gateway: `POST /admin/import/preview`.
pub async fn run_remote(opts: Opts, remote: &Remote) -> anyhow::Result<ExitCode> {
    let options = wire::ImportOptions {
        dry_run: wire::Flag(true),
        include: opts.include.as_ref().map(|i| i.describe().join(",")),
        source_secret: super::secret(
            opts.source_secret.clone(),
            opts.source_secret_file.as_deref(),
        )?
        .map(|s| s.expose_secret().to_owned()),
        ..Default::default()
    };
    let comparing = comparing(&opts.file);
    let preview = remote.preview(&opts.file, &options).await;
    drop(comparing);
    let preview = preview.map_err(|e| super::import::refused(e, &opts.file, COMPARED))?;
    show(&super::remote::report_of_preview(preview), &opts)
}

/// A spinner on a terminal while the file is compared with the gateway (a dry-run import).
fn comparing(file: &std::path::Path) -> Option<super::progress::Progress> {
    super::progress::Progress::spinner("comparing", file.display().to_string())
}

/// Prints the plan (or its JSON) and answers the exit code `--exit-code` asks for.
fn show(report: &ImportReport, opts: &Opts) -> anyhow::Result<ExitCode> {
    if opts.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_plan(report);
    }
    let drift = report
        .results
        .iter()
        .any(|r| matches!(r.action, Action::Created | Action::Updated));
    Ok(if opts.exit_code && drift {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_plan(report: &ImportReport) {
    let mut unchanged = 0;
    for r in &report.results {
        match r.action {
            Action::Created => println!("+ {} {} (new)", r.kind.singular(), r.name),
            Action::Updated => {
                println!("~ {} {}", r.kind.singular(), r.name);
                for c in &r.changes {
                    println!(
                        "    {}: {} → {}",
                        c.field,
                        short(&c.before),
                        short(&c.after)
                    );
                }
            }
            _ => unchanged += 1,
        }
    }
    println!("= {unchanged} unchanged");
}

/// A value on one line, cut at 80 characters.
fn short(value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::String(s) if s.starts_with('<') && s.ends_with('>') => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(79).collect::<String>())
    } else {
        text
    }
}
