//! `mcpgateway import FILE`: validate, then apply an export file to the local gateway.

use std::{path::PathBuf, process::ExitCode};

use app::{
    jobs::Action,
    model::EntityKind,
    validation::{Code, FieldError, Problems},
    verify::{VerifyReport, VerifyRequest},
    wire,
};
use clap::{Args, builder::TypedValueParser};
use secrecy::{ExposeSecret, SecretString};

use super::{
    Output,
    progress::Progress,
    remote::{self, Remote, RemoteError},
    verify,
};
use crate::{
    auth::bootstrap,
    config::Settings,
    crypto::Cipher,
    federation::lifecycle::connect_imported,
    transfer::{
        import::{
            ConflictStrategy, EntityResult, ImportError, ImportOptions, ImportReport, Observer,
            check_file_key, file_key, import,
        },
        selection::Include,
    },
};

#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    pub target: super::Target,
    /// The export file (`-` for standard input).
    pub file: PathBuf,
    /// Run the whole import and roll it back: report what would happen.
    #[arg(long)]
    pub dry_run: bool,
    /// When a name (or URI) already exists.
    #[arg(long, default_value = "update", value_parser = strategy_parser())]
    pub conflict_strategy: ConflictStrategy,
    /// Not a flag: answers with the one that is, `--conflict-strategy`.
    #[arg(long, hide = true, value_name = "STRATEGY")]
    pub strategy: Option<String>,
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
    /// Leave out, each with a warning, a server's links to entities neither the file nor
    /// this gateway has (default: such a link refuses the file, naming it).
    #[arg(long)]
    pub allow_missing_links: bool,
    /// Read the --source-secret from this file instead (its first line).
    #[arg(long, value_name = "PATH")]
    pub source_secret_file: Option<PathBuf>,
    /// The secret to re-encrypt with; must be this gateway's AUTH_ENCRYPTION_SECRET.
    #[arg(
        long,
        value_name = "NEW",
        env = "MCPGATEWAY_REKEY_SECRET",
        hide_env_values = true
    )]
    pub rekey_secret: Option<String>,
    /// Read the --rekey-secret from this file instead (its first line).
    #[arg(long, value_name = "PATH")]
    pub rekey_secret_file: Option<PathBuf>,
    /// Who imports, for the audit log (local mode; default `cli:` and the OS user).
    #[arg(long, value_name = "NAME", env = "MCPGATEWAY_ACTOR")]
    pub actor: Option<String>,
    /// Output format: the summary lines, or the full result as JSON (on failure too:
    /// the problems, each with its pointer).
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// After the import is committed, verify the credentials of the tools it wrote (as
    /// `verify` does): exit 1 when one is rejected upstream (the import stays committed).
    #[arg(long, conflicts_with = "dry_run")]
    pub verify: bool,
}

impl Opts {
    /// The source and rekey secrets, from their flags, variables or files.
    fn secrets(&self) -> anyhow::Result<(Option<SecretString>, Option<SecretString>)> {
        Ok((
            super::secret(
                self.source_secret.clone(),
                self.source_secret_file.as_deref(),
            )?,
            super::secret(self.rekey_secret.clone(), self.rekey_secret_file.as_deref())?,
        ))
    }

    /// `--strategy` is a usage error naming the flag meant.
    fn refuse_strategy(&self) -> anyhow::Result<()> {
        if self.strategy.is_some() {
            use clap::CommandFactory;
            super::Cli::command()
                .error(
                    clap::error::ErrorKind::UnknownArgument,
                    "unexpected argument '--strategy': use '--conflict-strategy skip|update|rename|fail'",
                )
                .exit();
        }
        Ok(())
    }
}

/// skip | update | rename | fail, listed in `--help`.
fn strategy_parser() -> impl clap::builder::TypedValueParser<Value = ConflictStrategy> {
    clap::builder::PossibleValuesParser::new(ConflictStrategy::ALL.map(|c| c.as_str()))
        .map(|s| s.parse::<ConflictStrategy>().expect("a listed value"))
}

pub async fn run(opts: Opts, settings: &Settings) -> anyhow::Result<ExitCode> {
    opts.refuse_strategy()?;
    let after = After::of(&opts);
    let report = local(opts, settings).await;
    let actor = after.actor.clone();
    let verified = after
        .verified(&report, |request| async move {
            verify::local_report(&request, actor.as_deref(), settings).await
        })
        .await;
    after.print(report, verified)
}

/// What is done once the import is over: `--verify`, and the output.
struct After {
    verify: bool,
    actor: Option<String>,
    output: Output,
    file: PathBuf,
}

impl After {
    fn of(opts: &Opts) -> After {
        After {
            verify: opts.verify,
            actor: opts.actor.clone(),
            output: opts.output,
            file: opts.file.clone(),
        }
    }

    /// `--verify` after a committed import: the tools it wrote (created, updated, renamed
    /// or found unchanged), each with its name on this gateway.
    fn verify_request(&self, report: &anyhow::Result<ImportReport>) -> Option<VerifyRequest> {
        let report = report.as_ref().ok().filter(|r| self.verify && !r.dry_run)?;
        let tools = report
            .results
            .iter()
            .filter(|r| r.kind == EntityKind::Tool && r.action != Action::Skipped)
            .map(|r| r.new_name.clone().unwrap_or_else(|| r.name.clone()))
            .collect();
        Some(VerifyRequest {
            types: vec![EntityKind::Tool],
            include: None,
            tools,
        })
    }

    /// `check` run on the [`After::verify_request`]; an import that wrote no tool has
    /// nothing to verify (an empty list would ask for every tool).
    async fn verified<F>(
        &self,
        report: &anyhow::Result<ImportReport>,
        check: impl FnOnce(VerifyRequest) -> F,
    ) -> Option<anyhow::Result<VerifyReport>>
    where
        F: Future<Output = anyhow::Result<VerifyReport>>,
    {
        let request = self.verify_request(report)?;
        if request.tools.is_empty() {
            return Some(Ok(VerifyReport {
                summary: "Verified nothing: the import wrote no tools".into(),
                ..VerifyReport::default()
            }));
        }
        Some(check(request).await)
    }

    fn print(
        self,
        report: anyhow::Result<ImportReport>,
        verified: Option<anyhow::Result<VerifyReport>>,
    ) -> anyhow::Result<ExitCode> {
        print(report, verified, self.output, &self.file)
    }
}

async fn local(opts: Opts, settings: &Settings) -> anyhow::Result<ImportReport> {
    let (source_secret, rekey_secret) = opts.secrets()?;
    let bytes = super::validate::read_input(&opts.file)?;
    let store = super::open_store(settings).await?;
    let secret = bootstrap::encryption_secret(settings, &store).await?;
    if let Some(rekey) = &rekey_secret {
        anyhow::ensure!(
            rekey.expose_secret() == secret.expose_secret(),
            "--rekey-secret must be this gateway's AUTH_ENCRYPTION_SECRET: credentials are re-encrypted with the key the gateway decrypts with"
        );
    }
    let target = Cipher::new(&secret).with_sensitive_headers(settings.sensitive_header_rules());
    let source = source_secret.map(|s| Cipher::new(&s));
    check_key(&bytes, &opts, source.as_ref(), &target)?;
    let bar = Applied::default();
    let options = ImportOptions {
        strategy: opts.conflict_strategy,
        dry_run: opts.dry_run,
        include: opts.include.clone(),
        picked: None,
        source: source.as_ref(),
        observer: Some(&bar),
        allow_missing_links: opts.allow_missing_links,
    };
    let actor = super::cli_actor(opts.actor.as_deref());
    let mut result = import(&store, &target, &bytes, &options, &actor).await;
    bar.done();
    if let Ok(report) = result.as_mut()
        && !report.dry_run
    {
        report.gateways = connect_imported(&store, settings, &target, &report.results).await;
    }
    store.close().await;
    // A file from before fingerprints: every credential named (as for any refused
    // file), then once the command that passes the exporting gateway's secret.
    let another = matches!((&source, &result), (None, Err(ImportError::Invalid(errors)))
        if errors.iter().all(|e| e.code == "undecryptable"));
    let report = explain(result, &opts.file, IMPORTED);
    if another {
        return report.map_err(|e| e.context(another_key(&opts, None)));
    }
    report
}

/// A file that names its key (`encryption_key_fingerprint`) is checked against the
/// secret it will be decrypted with before anything else: a file from another gateway
/// without its secret gets one line saying what to run, not an error per credential.
fn check_key(
    bytes: &crate::transfer::input::Input,
    opts: &Opts,
    source: Option<&Cipher>,
    target: &Cipher,
) -> anyhow::Result<()> {
    match check_file_key(bytes.bytes(), source, target) {
        Err(e) if e.code == Code::SourceSecretRequired => {
            Err(another_key(opts, file_key(bytes.bytes()).as_deref()))
        }
        Err(e) => anyhow::bail!(
            "{}: {}; nothing was imported",
            opts.file.display(),
            e.message
        ),
        Ok(()) => Ok(()),
    }
}

/// One line: the file needs the exporting gateway's secret, and the command that passes it.
fn another_key(opts: &Opts, file_key: Option<&str>) -> anyhow::Error {
    let key = file_key.map(|k| format!(" (key {k})")).unwrap_or_default();
    let dry_run = if opts.dry_run { " --dry-run" } else { "" };
    let url = opts
        .target
        .url
        .as_ref()
        .map(|u| format!(" --url {u}"))
        .unwrap_or_default();
    anyhow::anyhow!(
        "{file} was encrypted with another gateway's key{key}; nothing was imported. Run: \
         mcpgateway import {file}{url}{dry_run} --source-secret-file PATH  (PATH holding the exporting \
         gateway's AUTH_ENCRYPTION_SECRET; or set MCPGATEWAY_SOURCE_SECRET)",
        file = opts.file.display()
    )
}

/// The same import on a remote gateway: `POST /admin/import`, then the job followed to its end.
pub async fn run_remote(opts: Opts, remote: &Remote) -> anyhow::Result<ExitCode> {
    opts.refuse_strategy()?;
    let after = After::of(&opts);
    let report = on_remote(opts, remote).await;
    let verified = after
        .verified(&report, |request| async move {
            verify::remote_report(&request, remote).await
        })
        .await;
    after.print(report, verified)
}

async fn on_remote(opts: Opts, remote: &Remote) -> anyhow::Result<ImportReport> {
    let (source_secret, rekey_secret) = opts.secrets()?;
    let expose = |s: Option<SecretString>| s.map(|s| s.expose_secret().to_owned());
    let options = wire::ImportOptions {
        conflict_strategy: opts.conflict_strategy,
        dry_run: wire::Flag(opts.dry_run),
        include: opts.include.as_ref().map(|i| i.describe().join(",")),
        selected_entities: None,
        source_secret: expose(source_secret),
        rekey_secret: expose(rekey_secret),
        allow_missing_links: wire::Flag(opts.allow_missing_links),
    };
    let upload = upload_bar(&opts.file);
    let sent = upload.as_ref().map(|u| u.0.clone());
    let job = remote
        .submit(&opts.file, &options, move |bytes| {
            if let Some(sent) = &sent {
                sent.inc(bytes);
            }
        })
        .await;
    if let Some(upload) = upload {
        upload.done();
    }
    let job = job.map_err(|e| refused_remote(e, &opts))?;
    let bar = Applied::default();
    let status = remote
        .wait(&job, |processed, total| {
            // Until the gateway has checked the file the total is unknown: a spinner, not "0/0".
            if total > 0 {
                bar.started(total as usize);
                bar.at(processed);
            }
        })
        .await;
    bar.done();
    let mut report = status
        .and_then(remote::report_of)
        .map_err(|e| refused(e, &opts.file, IMPORTED))?;
    report.results = remote
        .results(&job)
        .await
        .map_err(|e| refused(e, &opts.file, IMPORTED))?;
    Ok(report)
}

/// The report as JSON, or the plan lines, renames and the summary line. A failure as
/// JSON too with `-o json` (`imported: false`, the problems with their pointers), so a
/// script reading stdout always gets JSON; the error line still goes to stderr. With
/// `--verify`, one document `{"import": …, "verify": …}`, or the verify lines after the
/// import's; exit 1 when a credential was rejected (the import stays committed).
fn print(
    report: anyhow::Result<ImportReport>,
    verified: Option<anyhow::Result<VerifyReport>>,
    output: Output,
    file: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let report = match (report, output) {
        (Ok(report), _) => report,
        (Err(e), Output::Json) => {
            let errors = e
                .downcast_ref::<RefusedFile>()
                .map_or(&[][..], |p| p.errors.as_slice());
            let failure = serde_json::json!({
                "file": file.display().to_string(),
                "imported": false,
                "message": format!("{e:#}"),
                "errors": errors,
            });
            println!("{}", serde_json::to_string_pretty(&failure)?);
            return Err(e);
        }
        (Err(e), Output::Text) => return Err(e),
    };
    match (output, &verified) {
        (Output::Json, None) => println!("{}", serde_json::to_string_pretty(&report)?),
        (Output::Json, Some(verified)) => {
            let verify = verified.as_ref().ok();
            let error = verified.as_ref().err().map(|e| format!("{e:#}"));
            let both =
                serde_json::json!({"import": report, "verify": verify, "verify_error": error});
            println!("{}", serde_json::to_string_pretty(&both)?);
        }
        (Output::Text, _) => {
            print_text(&report);
            if let Some(Ok(verified)) = &verified {
                if !verified.results.is_empty() {
                    println!(
                        "The credentials of the {} tool(s) the import wrote, checked upstream:",
                        verified.results.len()
                    );
                }
                verify::print_text(verified);
            }
        }
    }
    match verified {
        None => Ok(ExitCode::SUCCESS),
        Some(Err(e)) => {
            Err(e.context("the import is committed, but its tools could not be verified"))
        }
        Some(Ok(verified)) => {
            if verified.rejected > 0 {
                let line = format!(
                    "The import is committed; {} tool(s) have credentials the upstream rejected: correct them, then run `mcpgateway verify`",
                    verified.rejected
                );
                match output {
                    Output::Text => println!("{line}"),
                    Output::Json => eprintln!("{line}"),
                }
            }
            Ok(verify::exit_code(&verified))
        }
    }
}

/// The plan lines, renames and the summary line.
fn print_text(report: &ImportReport) {
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    for line in report.plan_lines() {
        println!("{line}");
    }
    let renamed = if report.dry_run {
        "Would rename"
    } else {
        "Renamed"
    };
    for r in report.results.iter().filter(|r| r.new_name.is_some()) {
        println!(
            "{renamed} {} `{}` to `{}`",
            r.kind.singular(),
            r.name,
            r.new_name.as_deref().unwrap_or_default()
        );
    }
    println!("{}", report.summary());
    print_first_connections(&report.gateways);
}

/// Gateways whose first connection gets a line of its own; past that, the rest are counted.
const GATEWAYS_LISTED: usize = 20;

/// How the first connection to each imported gateway went: one line each for the first
/// [`GATEWAYS_LISTED`], then one line counting the rest by status (an import of 5,000
/// gateways printed 5,000 lines). `-o json` has them all.
fn print_first_connections(gateways: &[app::federation::FirstConnection]) {
    for g in gateways.iter().take(GATEWAYS_LISTED) {
        println!("Gateway `{}`: {}", g.name, g.message);
    }
    let rest = gateways.get(GATEWAYS_LISTED..).unwrap_or_default();
    if rest.is_empty() {
        return;
    }
    let counts: Vec<String> = app::federation::PeerStatus::ALL
        .iter()
        .map(|status| (status, rest.iter().filter(|g| g.status == *status).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(status, n)| format!("{n} {}", status.as_str()))
        .collect();
    println!(
        "… and {} more gateways: {} (-o json lists each)",
        rest.len(),
        counts.join(", ")
    );
}

/// A spinner while the file is checked, then a bar told of each entity applied.
struct Applied {
    checking: std::sync::Mutex<Option<Progress>>,
    bar: std::sync::OnceLock<Option<Progress>>,
}

impl Default for Applied {
    fn default() -> Self {
        let checking = Progress::spinner("importing", "checking the file");
        Applied {
            checking: std::sync::Mutex::new(checking),
            bar: std::sync::OnceLock::new(),
        }
    }
}

impl Applied {
    fn bar(&self) -> Option<&Progress> {
        self.bar.get().and_then(Option::as_ref)
    }

    fn at(&self, processed: u64) {
        if let Some(bar) = self.bar() {
            bar.0.set_position(processed);
        }
    }

    fn done(self) {
        self.stop_checking();
        if let Some(bar) = self.bar.into_inner().flatten() {
            bar.done();
        }
    }

    fn stop_checking(&self) {
        let checking = self.checking.lock().map(|mut c| c.take());
        if let Ok(Some(checking)) = checking {
            checking.done();
        }
    }
}

impl Observer for Applied {
    fn started(&self, total: usize) {
        self.bar.get_or_init(|| {
            self.stop_checking();
            Progress::entities("importing", total as u64)
        });
    }

    fn applied(&self, _result: &EntityResult) {
        if let Some(bar) = self.bar() {
            bar.0.inc(1);
        }
    }
}

/// Bytes sent of a file's size; standard input (read whole before it is sent) a spinner.
fn upload_bar(file: &std::path::Path) -> Option<Progress> {
    match std::fs::metadata(file).ok().filter(|m| m.is_file()) {
        Some(meta) => Progress::bytes("uploading", meta.len()),
        None => Progress::spinner("uploading", "standard input"),
    }
}

/// What a refused file did not become: said in the error's last words.
pub(crate) const IMPORTED: &str = "nothing was imported";

/// The report, or every problem printed as `pointer: message` and an error saying what
/// was not done (`outcome`).
pub(crate) fn explain(
    result: Result<ImportReport, ImportError>,
    file: &std::path::Path,
    outcome: &'static str,
) -> anyhow::Result<ImportReport> {
    match result {
        Ok(report) => Ok(report),
        Err(ImportError::Invalid(errors)) => Err(problems(errors, file, outcome)),
        // Kept whole, so that a busy or full database is told as such (`cli::fail`).
        Err(ImportError::Database(e)) => Err(e.into()),
        Err(ImportError::Conflict(conflicts)) => {
            for e in &conflicts {
                eprintln!("{e}");
            }
            anyhow::bail!(
                "{}: {} conflict(s) with --conflict-strategy fail; {outcome}",
                file.display(),
                conflicts.len()
            )
        }
        Err(e) => anyhow::bail!("{e}"),
    }
}

/// A remote refusal, in the words of a local one.
pub(crate) fn refused(
    e: RemoteError,
    file: &std::path::Path,
    outcome: &'static str,
) -> anyhow::Error {
    match e {
        RemoteError::Refused(errors) => problems(errors, file, outcome),
        RemoteError::Other(e) => e,
    }
}

/// The gateway's refusal of the upload; a file encrypted under another key than the
/// gateway's, sent without a source secret, as the one line with the command to run.
fn refused_remote(e: RemoteError, opts: &Opts) -> anyhow::Error {
    match e {
        RemoteError::Refused(errors)
            if errors.listed.len() == 1 && errors.listed[0].code == Code::SourceSecretRequired =>
        {
            let key = crate::transfer::input::Input::open(&opts.file)
                .ok()
                .and_then(|input| file_key(input.bytes()));
            another_key(opts, key.as_deref())
        }
        other => refused(other, &opts.file, IMPORTED),
    }
}

/// A refused file: its first problems, each with its pointer, and how many there were.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {total} problem(s); {outcome}")]
pub(crate) struct RefusedFile {
    file: String,
    errors: Vec<FieldError>,
    total: u64,
    outcome: &'static str,
}

/// Every listed problem printed as `pointer: message` (and how many more there were);
/// the error says what was not done.
fn problems(errors: Problems, file: &std::path::Path, outcome: &'static str) -> anyhow::Error {
    super::eprint_problems(&errors);
    RefusedFile {
        file: file.display().to_string(),
        total: errors.total,
        errors: errors.listed,
        outcome,
    }
    .into()
}
