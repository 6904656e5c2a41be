//! A peer gateway's health, as the REST API, the UI and an import's report show it
//! (federation, issue #17). Written by the replica that holds the gateway's lease; read by all.

use serde::{Deserialize, Serialize};

use crate::entities::Timestamp;

/// How the last contact with a peer gateway went.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PeerStatus {
    /// Not contacted yet (new, inactive, or no replica has checked it).
    #[default]
    Unknown,
    /// `initialize` (or `ping`) answered.
    Reachable,
    /// No answer: connection refused, DNS, TLS, timeout, refused by the outbound policy,
    /// or an answer that is not MCP.
    Unreachable,
    /// The peer answered 401 or 403 to the stored credentials.
    AuthFailed,
}

impl PeerStatus {
    pub const ALL: [PeerStatus; 4] = [
        PeerStatus::Unknown,
        PeerStatus::Reachable,
        PeerStatus::Unreachable,
        PeerStatus::AuthFailed,
    ];

    /// The wire name (`auth_failed`), also the store's and the metrics' label.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerStatus::Unknown => "unknown",
            PeerStatus::Reachable => "reachable",
            PeerStatus::Unreachable => "unreachable",
            PeerStatus::AuthFailed => "auth_failed",
        }
    }

    /// The wire name back; an unknown one is `Unknown` (a row written by a newer build).
    pub fn parse(name: &str) -> PeerStatus {
        PeerStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == name)
            .unwrap_or_default()
    }

    /// What the UI's badge says.
    pub fn label(self) -> &'static str {
        match self {
            PeerStatus::Unknown => "unknown",
            PeerStatus::Reachable => "reachable",
            PeerStatus::Unreachable => "unreachable",
            PeerStatus::AuthFailed => "auth failed",
        }
    }
}

/// A peer gateway's health: `health` in the REST gateway entity.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GatewayHealth {
    pub status: PeerStatus,
    /// The last time the peer answered.
    pub last_seen: Option<Timestamp>,
    /// Why the last contact failed (never a credential); `None` once it answers again.
    pub last_error: Option<String>,
    /// The last time it was contacted, answered or not.
    pub checked_at: Option<Timestamp>,
    /// What its last complete discovery found.
    pub tools: u32,
    pub prompts: u32,
    pub resources: u32,
}

impl GatewayHealth {
    /// One line: `connected, 12 tools discovered` / `unreachable: connection refused`.
    pub fn describe(&self) -> String {
        let error = self.last_error.as_deref().unwrap_or("no answer");
        match self.status {
            PeerStatus::Reachable => {
                let mut found = vec![plural(self.tools, "tool")];
                if self.prompts > 0 {
                    found.push(plural(self.prompts, "prompt"));
                }
                if self.resources > 0 {
                    found.push(plural(self.resources, "resource"));
                }
                format!("connected, {} discovered", found.join(", "))
            }
            PeerStatus::Unreachable => format!("unreachable: {error}"),
            PeerStatus::AuthFailed => format!("auth failed: {error}"),
            PeerStatus::Unknown => "not connected yet".into(),
        }
    }
}

fn plural(n: u32, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// How an import's first connection to one gateway it wrote went (after the commit; the
/// import itself never waits on the network).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FirstConnection {
    /// The gateway's name as stored.
    pub name: String,
    pub status: PeerStatus,
    /// `connected, 12 tools discovered`, `unreachable: connection refused`, or
    /// `not connected within 10 s` when the connection had not ended by then (or, with
    /// many gateways, not begun: at most 32 are contacted at once).
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_describe_themselves() {
        for status in PeerStatus::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, serde_json::json!(status.as_str()));
            assert_eq!(PeerStatus::parse(status.as_str()), status);
        }
        let health = GatewayHealth {
            status: PeerStatus::Reachable,
            tools: 12,
            ..GatewayHealth::default()
        };
        assert_eq!(health.describe(), "connected, 12 tools discovered");
        let down = GatewayHealth {
            status: PeerStatus::Unreachable,
            last_error: Some("connection refused".into()),
            ..GatewayHealth::default()
        };
        assert_eq!(down.describe(), "unreachable: connection refused");
    }
}
