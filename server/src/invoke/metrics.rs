//! Per-tool call counts, errors and latency, rendered in Prometheus' text format.
//!
//! Each [`Invoker`](super::Invoker) owns its recorder instead of installing a process-wide
//! one: two gateways in one process (the tests start many) keep separate counts.

use std::{sync::Arc, time::Duration};

use app::federation::{GatewayHealth, PeerStatus};
use metrics::{Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const CALLS: &str = "mcpgateway_tool_calls_total";
const ERRORS: &str = "mcpgateway_tool_call_errors_total";
const DURATION: &str = "mcpgateway_tool_call_duration_seconds";
const VERIFICATIONS: &str = "mcpgateway_tool_verifications_total";
const GATEWAY_CHANGES: &str = "mcpgateway_gateway_status_changes_total";
const GATEWAY_UP: &str = "mcpgateway_gateway_up";
const GATEWAY_STATUS: &str = "mcpgateway_gateway_status";
const GATEWAY_DISCOVERED: &str = "mcpgateway_gateway_discovered";
const GATEWAY_LAST_SEEN: &str = "mcpgateway_gateway_last_seen_timestamp_seconds";
/// Latency buckets, in seconds: a loopback call is milliseconds, the default timeout 60 s.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// How a call ended, the `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The upstream answered a non-2xx status.
    UpstreamStatus,
    Timeout,
    /// The target is not allowed (private address, scheme).
    Refused,
    Unreachable,
    TooLarge,
    InvalidArguments,
    NotCallable,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamStatus => "upstream_status",
            Outcome::Timeout => "timeout",
            Outcome::Refused => "refused",
            Outcome::Unreachable => "unreachable",
            Outcome::TooLarge => "too_large",
            Outcome::InvalidArguments => "invalid_arguments",
            Outcome::NotCallable => "not_callable",
        }
    }
}

#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.into()), &BUCKETS)
            .expect("the buckets are not empty")
            .build_recorder();
        recorder.describe_counter(CALLS.into(), None, "Tool calls, by tool and outcome".into());
        recorder.describe_counter(
            ERRORS.into(),
            None,
            "Tool calls that did not end well, by tool and outcome".into(),
        );
        recorder.describe_histogram(
            DURATION.into(),
            Some(Unit::Seconds),
            "Time from a tool call's start to its result, by tool".into(),
        );
        recorder.describe_counter(
            VERIFICATIONS.into(),
            None,
            "Credential checks (verify), by tool and verdict".into(),
        );
        recorder.describe_counter(
            GATEWAY_CHANGES.into(),
            None,
            "Peer gateway status changes this replica recorded, by gateway and new status".into(),
        );
        let handle = recorder.handle();
        Metrics {
            recorder: Arc::new(recorder),
            handle,
        }
    }
}

impl Metrics {
    /// Counts one call of `tool` and its latency.
    pub fn record(&self, tool: &str, outcome: Outcome, elapsed: Duration) {
        let labels = vec![
            Label::new("tool", tool.to_owned()),
            Label::new("outcome", outcome.as_str()),
        ];
        self.recorder
            .register_counter(&Key::from_parts(CALLS, labels.clone()), &METADATA)
            .increment(1);
        if outcome != Outcome::Ok {
            self.recorder
                .register_counter(&Key::from_parts(ERRORS, labels), &METADATA)
                .increment(1);
        }
        self.recorder
            .register_histogram(
                &Key::from_parts(DURATION, vec![Label::new("tool", tool.to_owned())]),
                &METADATA,
            )
            .record(elapsed.as_secs_f64());
    }

    /// Counts one `verify` probe of `tool` and its verdict.
    pub fn record_verification(&self, tool: &str, verdict: &'static str) {
        let labels = vec![
            Label::new("tool", tool.to_owned()),
            Label::new("verdict", verdict),
        ];
        self.recorder
            .register_counter(&Key::from_parts(VERIFICATIONS, labels), &METADATA)
            .increment(1);
    }

    /// Counts one status change of peer gateway `gateway` (to `status`).
    pub fn record_gateway_status(&self, gateway: &str, status: &'static str) {
        let labels = vec![
            Label::new("gateway", gateway.to_owned()),
            Label::new("status", status),
        ];
        self.recorder
            .register_counter(&Key::from_parts(GATEWAY_CHANGES, labels), &METADATA)
            .increment(1);
    }

    /// Everything recorded, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Gauges of every peer gateway's stored health (as any replica reads it), by name:
/// `mcpgateway_gateway_up`, `…_status{status}`, `…_discovered{kind}`,
/// `…_last_seen_timestamp_seconds`. Built afresh per scrape, so a deleted gateway's
/// series go with it.
pub fn render_gateways(gateways: &[(String, GatewayHealth)]) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    recorder.describe_gauge(
        GATEWAY_UP.into(),
        None,
        "1 when the peer gateway answered its last check".into(),
    );
    recorder.describe_gauge(
        GATEWAY_STATUS.into(),
        None,
        "1 for the peer gateway's current status".into(),
    );
    recorder.describe_gauge(
        GATEWAY_DISCOVERED.into(),
        None,
        "Items the peer gateway's last discovery found, by kind".into(),
    );
    recorder.describe_gauge(
        GATEWAY_LAST_SEEN.into(),
        Some(Unit::Seconds),
        "When the peer gateway last answered (Unix time)".into(),
    );
    let gauge = |name: &'static str, labels: Vec<Label>, value: f64| {
        recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
            .set(value);
    };
    for (name, health) in gateways {
        let gateway = || Label::new("gateway", name.clone());
        let up = if health.status == PeerStatus::Reachable {
            1.0
        } else {
            0.0
        };
        gauge(GATEWAY_UP, vec![gateway()], up);
        let status = Label::new("status", health.status.as_str());
        gauge(GATEWAY_STATUS, vec![gateway(), status], 1.0);
        for (kind, n) in [
            ("tools", health.tools),
            ("prompts", health.prompts),
            ("resources", health.resources),
        ] {
            gauge(
                GATEWAY_DISCOVERED,
                vec![gateway(), Label::new("kind", kind)],
                f64::from(n),
            );
        }
        if let Some(seen) = health.last_seen {
            gauge(
                GATEWAY_LAST_SEEN,
                vec![gateway()],
                seen.0.timestamp() as f64,
            );
        }
    }
    recorder.handle().render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_errors_and_latency_render_per_tool() {
        let metrics = Metrics::default();
        metrics.record("weather", Outcome::Ok, Duration::from_millis(3));
        metrics.record("weather", Outcome::Timeout, Duration::from_secs(2));
        let text = metrics.render();
        assert!(
            text.contains(r#"mcpgateway_tool_calls_total{tool="weather",outcome="ok"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"mcpgateway_tool_call_errors_total{tool="weather",outcome="timeout"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"mcpgateway_tool_call_duration_seconds_count{tool="weather"} 2"#),
            "{text}"
        );
        assert!(
            !Metrics::default().render().contains("weather"),
            "each invoker counts for itself"
        );
    }
}
