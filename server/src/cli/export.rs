//! `mcpgateway export`: write the gateway's configuration to a JSON file.

use std::{io::Write, path::PathBuf};

use app::model::EntityKind;
use clap::Args;

use super::remote::{Remote, RemoteError};
use crate::{
    config::Settings,
    transfer::{
        export::{ExportOptions, export_to},
        selection::{Include, parse_kind},
    },
};

#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    pub target: super::Target,
    /// Output file; `-` for stdout (default: config-YYYYMMDD.json).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace the output file when it exists (without it: asked on a terminal, refused otherwise).
    #[arg(long)]
    pub force: bool,
    /// Who exports, for `exported_by` and the audit log (local mode; default `cli:` and the OS user).
    #[arg(long, value_name = "NAME", env = "MCPGATEWAY_ACTOR")]
    pub actor: Option<String>,
    /// Only these types, e.g. `tool,server` (singular or plural).
    #[arg(long = "type", value_name = "TYPES", value_delimiter = ',', value_parser = parse_kind)]
    pub types: Vec<EntityKind>,
    /// Entities with ANY of these tags, plus the servers that use them (even with
    /// `--type tool`; they keep all their links: a link to an entity outside the file must
    /// exist where the file is imported, or pass `import --allow-missing-links`).
    #[arg(long, value_name = "TAGS", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// With `--tags`: take only entities carrying ALL the tags, not any one of them.
    #[arg(long, requires = "tags")]
    pub tags_all: bool,
    /// Names or globs per type, comma-separated, e.g. `tool:weather_api,server:ai-*`
    /// (plus what the servers need). An item that matches nothing is a warning.
    #[arg(long, value_name = "SPEC", value_parser = Include::parse)]
    pub include: Option<Include>,
    /// Include disabled entities too.
    #[arg(long)]
    pub include_inactive: bool,
    /// Do not add dependencies or dependents of the selected entities (with `--tags`:
    /// the tagged entities alone).
    #[arg(long)]
    pub no_dependencies: bool,
}

pub async fn run(opts: Opts, settings: &Settings) -> anyhow::Result<()> {
    let out = out_path(opts.out);
    super::may_write(&out, opts.force)?;
    let store = super::open_existing_store(settings).await?;
    let options = ExportOptions {
        types: dedup(opts.types),
        tags: tags(opts.tags),
        tags_all: opts.tags_all,
        include: opts.include,
        include_inactive: opts.include_inactive,
        include_dependencies: !opts.no_dependencies,
        picked: None,
    };
    let actor = super::cli_actor(opts.actor.as_deref());
    let source = source_gateway(settings);
    let spinner = exporting(&out);
    let written = if out.as_os_str() == "-" {
        use tokio::io::AsyncWriteExt;
        let mut stdout = tokio::io::stdout();
        let written = export_to(&store, &options, &actor, &source, &mut stdout).await;
        stdout.write_all(b"\n").await?;
        stdout.flush().await?;
        written
    } else {
        let file = tokio::fs::File::create(&out)
            .await
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
        let mut file = tokio::io::BufWriter::new(file);
        export_to(&store, &options, &actor, &source, &mut file).await
    };
    if let Some(spinner) = spinner {
        spinner.done();
    }
    store.close().await;
    let written = written?;
    for warning in &written.warnings {
        eprintln!("warning: {warning}");
    }
    print_summary(&written.counts, &out);
    Ok(())
}

/// The same export from a remote gateway: `GET /admin/export`, streamed to the file.
pub async fn run_remote(opts: Opts, remote: &Remote) -> anyhow::Result<()> {
    let mut query = vec![
        ("include_inactive", opts.include_inactive.to_string()),
        ("include_dependencies", (!opts.no_dependencies).to_string()),
    ];
    let types = dedup(opts.types);
    if !types.is_empty() {
        let names: Vec<&str> = types.iter().map(|k| k.plural()).collect();
        query.push(("types", names.join(",")));
    }
    let tags = tags(opts.tags);
    if !tags.is_empty() {
        query.push(("tags", tags.join(",")));
    }
    if opts.tags_all {
        query.push(("tags_all", "true".into()));
    }
    if let Some(include) = &opts.include {
        query.push(("include", include.describe().join(",")));
    }
    let out = out_path(opts.out);
    super::may_write(&out, opts.force)?;
    let spinner = exporting(&out);
    let bytes = if out.as_os_str() == "-" {
        let mut buffer = Vec::new();
        remote.export(&query, &mut buffer).await.map_err(refused)?;
        std::io::stdout().write_all(&buffer)?;
        buffer
    } else {
        let mut file = tokio::fs::File::create(&out)
            .await
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
        remote.export(&query, &mut file).await.map_err(refused)?;
        std::fs::read(&out)?
    };
    drop(spinner);
    print_summary(&counts_of(&bytes)?, &out);
    Ok(())
}

/// A spinner on a terminal while the export is written (its length is known at the end).
fn exporting(out: &std::path::Path) -> Option<super::progress::Progress> {
    super::progress::Progress::spinner("exporting", format!("to {}", out.display()))
}

/// Where a local export comes from: the gateway's public origin when configured, else
/// the database it was read from. Not `http://HOST:PORT` from the settings: the export
/// does not know which port a running `serve` listens on (`--port` is not a setting).
fn source_gateway(settings: &Settings) -> String {
    settings
        .public_origin
        .clone()
        .unwrap_or_else(|| settings.database_url_redacted())
}

/// A refused remote request: each problem as `pointer: message`.
fn refused(e: RemoteError) -> anyhow::Error {
    match e {
        RemoteError::Refused(errors) => {
            super::eprint_problems(&errors);
            anyhow::anyhow!(
                "the gateway refused the export: {} problem(s)",
                errors.total
            )
        }
        RemoteError::Other(e) => e,
    }
}

/// Entities per type in an export file, read without building them.
fn counts_of(bytes: &[u8]) -> anyhow::Result<Vec<(EntityKind, usize)>> {
    #[derive(serde::Deserialize)]
    struct Outline {
        #[serde(default)]
        entities: std::collections::HashMap<String, Vec<serde::de::IgnoredAny>>,
    }
    let outline: Outline = serde_json::from_slice(bytes)
        .map_err(|e| anyhow::anyhow!("the gateway sent a file that is not an export: {e}"))?;
    Ok(EntityKind::ALL
        .into_iter()
        .map(|k| (k, outline.entities.get(k.plural()).map_or(0, Vec::len)))
        .collect())
}

/// "Exported 49 total items across 6 categories", the counts per type, and where.
fn print_summary(counts: &[(EntityKind, usize)], out: &std::path::Path) {
    let total: usize = counts.iter().map(|(_, n)| n).sum();
    let categories = counts.iter().filter(|(_, n)| *n > 0).count();
    let noun = if categories == 1 {
        "category"
    } else {
        "categories"
    };
    eprintln!("Exported {total} total items across {categories} {noun}");
    for (kind, n) in counts.iter().filter(|(_, n)| *n > 0) {
        eprintln!("  {}: {n}", kind.plural());
    }
    if out.as_os_str() != "-" {
        eprintln!("Wrote {}", out.display());
    }
}

fn out_path(out: Option<PathBuf>) -> PathBuf {
    out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "config-{}.json",
            chrono::Utc::now().format("%Y%m%d")
        ))
    })
}

fn tags(tags: Vec<String>) -> Vec<String> {
    tags.into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

fn dedup(kinds: Vec<EntityKind>) -> Vec<EntityKind> {
    let mut out = Vec::new();
    for k in kinds {
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}
