//! `mcpgateway seed [--scale N]`: fill the local gateway with the seed data set.

use app::model::EntityKind;
use clap::Args;

use crate::{
    auth::bootstrap,
    config::Settings,
    crypto::Cipher,
    entities::{Entities, seed},
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
    let service = Entities {
        store: &store,
        cipher: &cipher,
        actor: "seed",
    };
    let report = match opts.scale {
        Some(n) => {
            let bar = super::progress::Progress::entities("seeding", n as u64);
            let seeded = seed::scale(&service, n, &|| {
                if let Some(bar) = &bar {
                    bar.0.inc(1);
                }
            })
            .await;
            if let Some(bar) = bar {
                bar.done();
            }
            seeded
        }
        None => seed::seed(&service).await,
    }
    .map_err(|e| anyhow::anyhow!("seeding failed: {e}"))?;
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
