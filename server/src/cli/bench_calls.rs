//! `mcpgateway bench --calls`: a REST tool on a loopback upstream, called directly (a
//! plain HTTP client) and through the gateway's tool-call engine ([`Invoker`], with
//! schema check, credentials, guard and metrics), at concurrency 1 and 64: calls per
//! second, p50 and p99 latency, the latency the engine adds, and the process's RSS.
//! (Through the MCP endpoint is the MCP layer's own measurement.)

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use app::entities::tool::{RequestType, Tool};
use axum::{Json, Router, routing::post};
use secrecy::SecretString;
use serde_json::{Map, Value, json};

use crate::{config::Settings, crypto::Cipher, invoke::Invoker};

/// Latencies of one run, sorted.
pub(super) struct Run {
    latencies: Vec<Duration>,
    failures: usize,
}

impl Run {
    /// `| path | concurrency | calls/s | p50 | p99 | failures |`
    pub(super) fn row(&self, path: &str, concurrency: usize, span: Duration) -> String {
        format!(
            "| {path} | {concurrency} | {:.0} | {:.2} ms | {:.2} ms | {} |",
            self.latencies.len() as f64 / span.as_secs_f64(),
            ms(self.quantile(0.5)),
            ms(self.quantile(0.99)),
            self.failures
        )
    }

    /// The row of what `by` adds to `base`'s p50 and p99.
    pub(super) fn added(&self, by: &str, concurrency: usize, base: &Run) -> String {
        format!(
            "| added by {by} | {concurrency} | | {:.2} ms | {:.2} ms | |",
            ms(self.quantile(0.5).saturating_sub(base.quantile(0.5))),
            ms(self.quantile(0.99).saturating_sub(base.quantile(0.99)))
        )
    }

    pub(super) fn quantile(&self, q: f64) -> Duration {
        let last = self.latencies.len().saturating_sub(1);
        self.latencies
            .get((last as f64 * q).round() as usize)
            .copied()
            .unwrap_or_default()
    }
}

pub async fn run(seconds: u64) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/echo", listener.local_addr()?);
    let upstream = Router::new().route(
        "/echo",
        post(|Json(body): Json<Value>| async move { Json(json!({"echo": body})) }),
    );
    tokio::spawn(async move { axum::serve(listener, upstream).await });
    let settings = Settings {
        allow_private_networks: true,
        upstream_concurrency: 256,
        ..Settings::default()
    };
    let cipher = Cipher::new(&SecretString::from("bench-calls-secret-0123456789abcdef"));
    let invoker = Invoker::new(Arc::new(cipher), &settings);
    let mut schema = Map::new();
    schema.insert("type".into(), json!("object"));
    schema.insert(
        "properties".into(),
        json!({"city": {"type": "string"}, "days": {"type": "integer"}}),
    );
    let tool = Arc::new(Tool {
        name: Some("bench-echo".into()),
        url: Some(url.clone()),
        request_type: RequestType::Post,
        input_schema: schema,
        ..Tool::default()
    });
    let arguments: Map<String, Value> = json!({"city": "Oslo", "days": 3})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let direct = reqwest::Client::new();
    let span = Duration::from_secs(seconds.max(1));
    println!("| path | concurrency | calls/s | p50 | p99 | failures |");
    println!("|---|---:|---:|---:|---:|---:|");
    for concurrency in [1, 64] {
        let (client, url, args) = (direct.clone(), url.clone(), arguments.clone());
        let plain = measure(concurrency, span, move || {
            let request = client.post(&url).json(&args).send();
            async move {
                match request.await {
                    Ok(r) => r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        let (invoker, tool, args) = (invoker.clone(), tool.clone(), arguments.clone());
        let engine = measure(concurrency, span, move || {
            let (invoker, tool, args) = (invoker.clone(), tool.clone(), args.clone());
            async move {
                invoker
                    .call_tool(&tool, args)
                    .await
                    .is_ok_and(|o| !o.is_error)
            }
        })
        .await;
        for (path, run) in [("direct", &plain), ("gateway engine", &engine)] {
            println!("{}", run.row(path, concurrency, span));
        }
        println!("{}", engine.added("the engine", concurrency, &plain));
    }
    println!(
        "RSS {} KiB (peak {} KiB)",
        status_kib("VmRSS:"),
        status_kib("VmHWM:")
    );
    Ok(())
}

/// Runs `concurrency` loops of `call` for `span`; every latency, sorted.
pub(super) async fn measure<F, Fut>(concurrency: usize, span: Duration, call: F) -> Run
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let until = Instant::now() + span;
    let loops: Vec<_> = (0..concurrency)
        .map(|_| {
            let call = call.clone();
            tokio::spawn(async move {
                let (mut latencies, mut failures) = (Vec::new(), 0);
                while Instant::now() < until {
                    let started = Instant::now();
                    if call().await {
                        latencies.push(started.elapsed());
                    } else {
                        failures += 1;
                    }
                }
                (latencies, failures)
            })
        })
        .collect();
    let mut run = Run {
        latencies: Vec::new(),
        failures: 0,
    };
    for done in loops {
        if let Ok((latencies, failures)) = done.await {
            run.latencies.extend(latencies);
            run.failures += failures;
        }
    }
    run.latencies.sort();
    run
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A `/proc/self/status` field in KiB (0 where there is none).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
