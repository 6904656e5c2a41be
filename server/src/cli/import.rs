//! `mcpgateway import FILE`: validate, then apply an export file to the local gateway.

use std::path::PathBuf;

use app::validation::Problems;
use clap::{Args, ValueEnum, builder::TypedValueParser};
use secrecy::{ExposeSecret, SecretString};

use super::remote::{self, ImportFields, Remote, RemoteError};
use crate::{
    auth::bootstrap,
    config::Settings,
    crypto::Cipher,
    transfer::{
        import::{
            ConflictStrategy, EntityResult, ImportError, ImportOptions, ImportReport, Observer,
            import,
        },
        selection::Include,
    },
};

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum Output {
    /// Summary lines.
    #[default]
    Text,
    /// The full result: per entity its type, name, action and changed fields.
    Json,
}

#[derive(Debug, Args)]
pub struct Opts {
    /// The export file (`-` for standard input).
    pub file: PathBuf,
    /// Run the whole import and roll it back: report what would happen.
    #[arg(long)]
    pub dry_run: bool,
    /// When a name (or URI) already exists.
    #[arg(long, default_value = "update", value_parser = strategy_parser())]
    pub conflict_strategy: ConflictStrategy,
    /// Only these entities (names or globs per type) plus what they need, e.g. `tool:x,server:ai-*`.
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
    /// The secret to re-encrypt with; must be this gateway's AUTH_ENCRYPTION_SECRET.
    #[arg(long, value_name = "NEW", hide_env_values = true)]
    pub rekey_secret: Option<String>,
    /// Output format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// skip | update | rename | fail, listed in `--help`.
fn strategy_parser() -> impl clap::builder::TypedValueParser<Value = ConflictStrategy> {
    clap::builder::PossibleValuesParser::new(ConflictStrategy::ALL.map(|c| c.as_str()))
        .map(|s| s.parse::<ConflictStrategy>().expect("a listed value"))
}

pub async fn run(opts: Opts, settings: &Settings) -> anyhow::Result<()> {
    let bytes = super::validate::read_input(&opts.file)?;
    let store = super::open_store(settings).await?;
    let secret = bootstrap::encryption_secret(settings, &store).await?;
    if let Some(rekey) = &opts.rekey_secret {
        anyhow::ensure!(
            rekey.as_str() == secret.expose_secret(),
            "--rekey-secret must be this gateway's AUTH_ENCRYPTION_SECRET: credentials are re-encrypted with the key the gateway decrypts with"
        );
    }
    let target = Cipher::new(&secret).with_sensitive_headers(settings.sensitive_header_rules());
    let source = opts
        .source_secret
        .map(|s| Cipher::new(&SecretString::from(s)));
    let bar = ProgressBar::on_terminal();
    let options = ImportOptions {
        strategy: opts.conflict_strategy,
        dry_run: opts.dry_run,
        include: opts.include,
        picked: None,
        source: source.as_ref(),
        observer: bar.as_ref().map(|b| b as &dyn Observer),
    };
    let result = import(&store, &target, &bytes, &options, &super::cli_actor()).await;
    if let Some(bar) = bar {
        bar.0.finish_and_clear();
    }
    store.close().await;
    let report = explain(result, &opts.file)?;
    print(&report, opts.output)
}

/// The same import on a remote gateway: `POST /admin/import`, then the job followed to its end.
pub async fn run_remote(opts: Opts, remote: &Remote) -> anyhow::Result<()> {
    let fields = ImportFields {
        conflict_strategy: opts.conflict_strategy.as_str().into(),
        dry_run: opts.dry_run,
        include: opts.include.map(|i| i.describe().join(",")),
        source_secret: opts.source_secret,
        rekey_secret: opts.rekey_secret,
    };
    let job = remote
        .submit(&opts.file, &fields)
        .await
        .map_err(|e| refused(e, &opts.file))?;
    let bar = ProgressBar::on_terminal();
    let status = remote
        .wait(&job, |processed, total| {
            if let Some(bar) = &bar {
                bar.0.set_length(total);
                bar.0.set_position(processed);
            }
        })
        .await;
    if let Some(bar) = bar {
        bar.0.finish_and_clear();
    }
    let report = match status.and_then(remote::report_of) {
        Ok(mut report) => {
            report.results = remote
                .results(&job)
                .await
                .map_err(|e| refused(e, &opts.file))?;
            report
        }
        Err(e) => return Err(refused(e, &opts.file)),
    };
    print(&report, opts.output)
}

/// The report as JSON, or the plan lines, renames and the summary line.
fn print(report: &ImportReport, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(report)?),
        Output::Text => {
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            for line in report.plan_lines() {
                println!("{line}");
            }
            for r in report.results.iter().filter(|r| r.new_name.is_some()) {
                println!(
                    "Renamed {} `{}` to `{}`",
                    r.kind.singular(),
                    r.name,
                    r.new_name.as_deref().unwrap_or_default()
                );
            }
            println!("{}", report.summary());
        }
    }
    Ok(())
}

/// A progress bar on stderr while entities are applied, only when stderr is a terminal
/// (never in pipes, logs or CI output).
struct ProgressBar(indicatif::ProgressBar);

impl ProgressBar {
    fn on_terminal() -> Option<ProgressBar> {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} importing {bar:40} {pos}/{len} entities ({per_sec}, {eta} left)",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            ProgressBar(bar)
        })
    }
}

impl Observer for ProgressBar {
    fn started(&self, total: usize) {
        self.0.set_length(total as u64);
    }

    fn applied(&self, _result: &EntityResult) {
        self.0.inc(1);
    }
}

/// The report, or every problem printed as `pointer: message` and an error saying nothing was written.
pub(crate) fn explain(
    result: Result<ImportReport, ImportError>,
    file: &std::path::Path,
) -> anyhow::Result<ImportReport> {
    match result {
        Ok(report) => Ok(report),
        Err(ImportError::Invalid(errors)) => Err(problems(&errors, file)),
        // Kept whole, so that a busy or full database is told as such (`cli::fail`).
        Err(ImportError::Database(e)) => Err(e.into()),
        Err(e) => anyhow::bail!("{e}"),
    }
}

/// A remote refusal, in the words of a local one.
pub(crate) fn refused(e: RemoteError, file: &std::path::Path) -> anyhow::Error {
    match e {
        RemoteError::Refused(errors) => problems(&errors, file),
        RemoteError::Other(e) => e,
    }
}

/// Every problem printed as `pointer: message`; the error says nothing was written.
fn problems(errors: &Problems, file: &std::path::Path) -> anyhow::Error {
    super::eprint_problems(errors);
    anyhow::anyhow!(
        "{}: {} problem(s); nothing was imported",
        file.display(),
        errors.total
    )
}
