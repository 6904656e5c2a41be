//! Federation (issue #17): peer gateways' tools, prompts and resources, discovered,
//! stored beside local ones and served through our virtual servers.
//!
//! - [`sync`]: makes the store hold what a peer offered at its last discovery.
//! - [`owned`]: what people may change of a discovered item (whether it is active).
//! - [`lifecycle`], [`health`], [`lease`]: peers connected and checked by one replica at a
//!   time, their health shown everywhere.
//! - [`peer`]: sessions with the peers (discovery, forwarded calls, circuit breaking).

pub mod health;
pub mod lease;
pub mod lifecycle;
pub mod owned;
pub mod peer;
pub mod sync;

/// What a peer offered at its last complete discovery.
#[derive(Clone, Debug, Default)]
pub struct Discovered {
    /// The capabilities the peer reported at `initialize` (stored in the gateway's `capabilities`).
    pub capabilities: serde_json::Map<String, serde_json::Value>,
    pub tools: Vec<rmcp::model::Tool>,
    pub prompts: Vec<rmcp::model::Prompt>,
    pub resources: Vec<rmcp::model::Resource>,
}
