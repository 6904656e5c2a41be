//! Federation: peer gateways contacted, their tools, prompts and resources discovered
//! and served here, calls to them forwarded.

pub mod peer;

/// What a peer offered at its last complete discovery.
#[derive(Clone, Debug, Default)]
pub struct Discovered {
    /// The capabilities the peer reported at `initialize` (stored in the gateway's `capabilities`).
    pub capabilities: serde_json::Map<String, serde_json::Value>,
    pub tools: Vec<rmcp::model::Tool>,
    pub prompts: Vec<rmcp::model::Prompt>,
    pub resources: Vec<rmcp::model::Resource>,
}
