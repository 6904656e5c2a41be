//! `mcpgateway verify`: are the stored credentials still accepted upstream? One line per
//! tool (ok, rejected, unreachable, skipped) and a summary; exit 1 when one is rejected.

use std::{process::ExitCode, sync::Arc};

use app::{
    model::EntityKind,
    verify::{Verdict, VerifyReport, VerifyRequest},
};
use clap::Args;

use super::{Output, remote::Remote};
use crate::{
    auth::bootstrap,
    config::Settings,
    crypto::Cipher,
    federation::peer::Peers,
    invoke::{
        Invoker,
        verify::{VerifyOptions, verify},
    },
    transfer::selection::{Include, parse_kind},
};

#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    pub target: super::Target,
    /// Only these types: tool, gateway (default both).
    #[arg(long = "type", value_name = "TYPES", value_delimiter = ',', value_parser = parse_kind)]
    pub types: Vec<EntityKind>,
    /// Names or globs per type, e.g. `tool:weather_*`.
    #[arg(long, value_name = "SPEC", value_parser = Include::parse)]
    pub include: Option<Include>,
    /// Who verifies, for the audit log (local mode; default `cli:` and the OS user).
    #[arg(long, value_name = "NAME", env = "MCPGATEWAY_ACTOR")]
    pub actor: Option<String>,
    /// Output format: a line per entity and the summary, or the report as JSON.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

impl Opts {
    fn request(&self) -> VerifyRequest {
        VerifyRequest {
            types: self.types.clone(),
            include: self.include.as_ref().map(|i| i.describe().join(",")),
            tools: Vec::new(),
        }
    }
}

/// Probes this database's tools with the gateway's own key and settings.
pub async fn run(opts: Opts, settings: &Settings) -> anyhow::Result<ExitCode> {
    let report = local_report(&opts.request(), opts.actor.as_deref(), settings).await?;
    show(&report, opts.output)
}

/// The report of `request` on this database (also `import --verify`'s).
pub(super) async fn local_report(
    request: &VerifyRequest,
    actor: Option<&str>,
    settings: &Settings,
) -> anyhow::Result<VerifyReport> {
    let options = VerifyOptions::from_request(request).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        anyhow::anyhow!("{}", lines.join("\n"))
    })?;
    let store = super::open_existing_store(settings).await?;
    let cipher = Cipher::new(&bootstrap::encryption_secret(settings, &store).await?)
        .with_sensitive_headers(settings.sensitive_header_rules());
    let cipher = Arc::new(cipher);
    let invoker = Invoker::new(cipher.clone(), settings);
    let peers = Peers::new(settings, cipher);
    let actor = super::cli_actor(actor);
    let report = verify(&store, &invoker, &peers, &options, &actor).await;
    store.close().await;
    report
}

/// The same through a remote gateway: `POST /admin/verify`.
pub async fn run_remote(opts: Opts, remote: &Remote) -> anyhow::Result<ExitCode> {
    let report = remote_report(&opts.request(), remote).await?;
    show(&report, opts.output)
}

/// The report of `request` on a remote gateway (also `import --url … --verify`'s).
pub(super) async fn remote_report(
    request: &VerifyRequest,
    remote: &Remote,
) -> anyhow::Result<VerifyReport> {
    remote.verify(request).await.map_err(|e| match e {
        super::remote::RemoteError::Refused(problems) => {
            super::eprint_problems(&problems);
            anyhow::anyhow!("the gateway refused the request")
        }
        other => other.into(),
    })
}

/// Prints the report; exit 1 when a credential was rejected.
fn show(report: &VerifyReport, output: Output) -> anyhow::Result<ExitCode> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print_text(report);
    }
    Ok(exit_code(report))
}

/// A line per entity, then the summary.
pub(super) fn print_text(report: &VerifyReport) {
    for r in &report.results {
        // Upper case: the line that fails the run stands out.
        let verdict = match r.verdict {
            Verdict::Rejected => "REJECTED",
            other => other.as_str(),
        };
        let status = r.status.map(|s| format!(" {s}")).unwrap_or_default();
        let detail = r
            .detail
            .as_deref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        println!(
            "{:<11} {} {}{status}{detail}",
            verdict,
            r.kind.singular(),
            r.name
        );
    }
    println!("{}", report.summary);
}

/// Success only when no credential was rejected.
pub(super) fn exit_code(report: &VerifyReport) -> ExitCode {
    if report.rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
