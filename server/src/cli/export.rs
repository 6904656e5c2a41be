//! `mcpgateway export`: write the gateway's configuration to a JSON file.

use std::{io::Write, path::PathBuf};

use clap::Args;

use crate::{
    config::Settings,
    transfer::{
        export::{ExportOptions, export},
        selection::{Include, parse_kind},
    },
};

#[derive(Debug, Args)]
pub struct Opts {
    /// Output file; `-` for stdout (default: config-YYYYMMDD.json).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Only these types, e.g. `tool,server` (singular or plural).
    #[arg(long = "type", value_name = "TYPES", value_delimiter = ',', value_parser = parse_kind)]
    pub types: Vec<app::model::EntityKind>,
    /// Entities with any of these tags (plus the servers using them and their dependencies).
    #[arg(long, value_name = "TAGS", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Names or globs per type, e.g. `tool:weather_api,server:ai-*` (plus dependencies).
    #[arg(long, value_name = "SPEC", value_parser = Include::parse)]
    pub include: Option<Include>,
    /// Include disabled entities too.
    #[arg(long)]
    pub include_inactive: bool,
    /// Do not add dependencies or dependents of the selected entities.
    #[arg(long)]
    pub no_dependencies: bool,
}

pub async fn run(opts: Opts, settings: &Settings) -> anyhow::Result<()> {
    let store = super::open_store(settings).await?;
    let options = ExportOptions {
        types: dedup(opts.types),
        tags: opts
            .tags
            .into_iter()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect(),
        include: opts.include,
        include_inactive: opts.include_inactive,
        include_dependencies: !opts.no_dependencies,
        picked: None,
    };
    let source = format!("http://{}:{}", settings.host, settings.port);
    let file = export(&store, &options, &super::cli_actor(), &source).await?;
    store.close().await;
    let out = opts.out.unwrap_or_else(|| {
        PathBuf::from(format!(
            "config-{}.json",
            chrono::Utc::now().format("%Y%m%d")
        ))
    });
    let json = serde_json::to_vec_pretty(&file)?;
    if out.as_os_str() == "-" {
        std::io::stdout().write_all(&json)?;
        std::io::stdout().write_all(b"\n")?;
    } else {
        std::fs::write(&out, &json)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
    }
    let counts = file.entities.counts();
    let categories = counts.iter().filter(|(_, n)| *n > 0).count();
    eprintln!(
        "Exported {} total items across {categories} categories",
        file.entities.total()
    );
    for (kind, n) in counts.iter().filter(|(_, n)| *n > 0) {
        eprintln!("  {}: {n}", kind.plural());
    }
    if out.as_os_str() != "-" {
        eprintln!("Wrote {}", out.display());
    }
    Ok(())
}

fn dedup(kinds: Vec<app::model::EntityKind>) -> Vec<app::model::EntityKind> {
    let mut out = Vec::new();
    for k in kinds {
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}
