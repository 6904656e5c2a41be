//! `mcpgateway seed [--scale N]`: fill the local gateway with the seed data set, or with
//! N generated entities.

use app::{jobs::ConflictStrategy, model::EntityKind, transfer::ExportFile};
use clap::Args;

use super::progress::Progress;
use crate::{
    auth::bootstrap,
    config::Settings,
    crypto::Cipher,
    entities::{
        Entities,
        seed::{self, SeedReport},
    },
    store::Store,
    transfer::{
        export::FORMAT_VERSION,
        import::{Action, EntityResult, ImportOptions, Observer, import},
        input::Input,
    },
};

#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    pub local: super::Local,
    /// Generate N entities spread over the six types instead (for benchmarks).
    #[arg(long, value_name = "N")]
    pub scale: Option<usize>,
}

pub async fn run(opts: Opts, settings: &Settings) -> anyhow::Result<()> {
    let store = super::open_store(settings).await?;
    let secret = bootstrap::encryption_secret(settings, &store).await?;
    let cipher = Cipher::new(&secret).with_sensitive_headers(settings.sensitive_header_rules());
    let report = match opts.scale {
        Some(n) => scale(&store, &cipher, n).await?,
        None => {
            let service = Entities {
                store: &store,
                cipher: &cipher,
                actor: "seed",
            };
            seed::seed(&service)
                .await
                .map_err(|e| anyhow::anyhow!("seeding failed: {e}"))?
        }
    };
    let mut counts = Vec::new();
    for kind in EntityKind::ALL {
        counts.push(format!(
            "{} {}",
            store.count_entities(kind).await?,
            kind.plural()
        ));
    }
    store.close().await;
    println!(
        "Seeded: {} created, {} already present. The gateway now holds {}.",
        report.created,
        report.unchanged,
        counts.join(", ")
    );
    Ok(())
}

/// `n` generated entities, written as one import (one transaction, batched statements:
/// 100,000 in seconds where one service call each took over a minute); those whose key
/// exists are left alone, as the seed data set's are.
async fn scale(store: &Store, cipher: &Cipher, n: usize) -> anyhow::Result<SeedReport> {
    let file = scale_file(cipher, n, "seed")?;
    let bar = Seeding(Progress::entities("seeding", n as u64));
    let options = ImportOptions {
        strategy: ConflictStrategy::Skip,
        observer: Some(&bar),
        ..Default::default()
    };
    let imported = import(store, cipher, Input::from(file), &options, "seed")
        .await
        .map_err(|e| anyhow::anyhow!("seeding failed: {e}"))?;
    if let Some(bar) = bar.0 {
        bar.done();
    }
    let created = imported
        .results
        .iter()
        .filter(|r| r.action == Action::Created)
        .count();
    Ok(SeedReport {
        created,
        unchanged: imported.results.len() - created,
    })
}

/// The export file of N generated entities (credentials sealed with `cipher`), written
/// by `by` (the bench, `seed --scale`).
pub(super) fn scale_file(cipher: &Cipher, n: usize, by: &str) -> anyhow::Result<Vec<u8>> {
    let entities = seed::scale_set(cipher, n).map_err(|e| anyhow::anyhow!("{e}"))?;
    let file = ExportFile {
        version: FORMAT_VERSION.into(),
        exported_at: chrono::Utc::now().to_rfc3339(),
        exported_by: by.into(),
        source_gateway: by.into(),
        encryption_method: "AES-256-GCM".into(),
        entities,
        metadata: serde_json::json!({}),
    };
    Ok(serde_json::to_vec_pretty(&file)?)
}

/// The progress bar of `seed --scale` on a terminal, moved by the import.
struct Seeding(Option<Progress>);

impl Observer for Seeding {
    fn applied(&self, _result: &EntityResult) {
        if let Some(bar) = &self.0 {
            bar.0.inc(1);
        }
    }
}
