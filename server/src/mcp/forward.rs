//! Federated tools, prompts and resources: their calls go to the peer they were discovered
//! on, over its pooled session (`federation::peer`), with the name they have there. What
//! goes wrong names the gateway (`gateway `x`: …`).

use app::entities::{Origin, gateway::Gateway};
use rmcp::{
    ErrorData as McpError,
    model::{CallToolResult, GetPromptResult, ReadResourceResult},
};
use serde_json::{Map, Value, json};

use super::handler::internal;
use crate::{federation::peer::PeerError, http::AppState};

/// Why a federated item cannot be reached, before or at its peer.
enum Failure {
    /// The gateway is gone, inactive, or the item not discovered yet.
    Unavailable(String),
    Peer(String, PeerError),
    Store(McpError),
}

impl Failure {
    fn text(&self) -> String {
        match self {
            Failure::Unavailable(text) => text.clone(),
            Failure::Peer(gateway, error) => format!("gateway `{gateway}`: {error}"),
            Failure::Store(error) => error.message.to_string(),
        }
    }

    /// As a JSON-RPC error (prompts and resources have no error result).
    fn into_error(self) -> McpError {
        match self {
            Failure::Store(error) => error,
            Failure::Peer(_, PeerError::Protocol(_)) => McpError::invalid_params(self.text(), None),
            other => McpError::internal_error(other.text(), None),
        }
    }
}

/// The active gateway `origin` names, and the item's name on it.
async fn target(state: &AppState, origin: &Origin) -> Result<(Gateway, String), Failure> {
    if origin.is_placeholder() {
        return Err(Failure::Unavailable(format!(
            "gateway `{}`: not discovered on the peer yet",
            origin.gateway
        )));
    }
    let gateway = state
        .store
        .get_entity::<Gateway>(origin.gateway_id)
        .await
        .map_err(|e| Failure::Store(internal(e.into())))?
        .filter(|g| g.is_active)
        .ok_or_else(|| {
            Failure::Unavailable(format!(
                "gateway `{}` is inactive or removed",
                origin.gateway
            ))
        })?;
    Ok((gateway, origin.remote_name.clone()))
}

fn gateway_name(gateway: &Gateway, origin: &Origin) -> String {
    gateway
        .name
        .clone()
        .unwrap_or_else(|| origin.gateway.clone())
}

/// The peer's result; any failure is an error result the caller's model can read.
pub async fn call_tool(
    state: &AppState,
    origin: &Origin,
    arguments: Map<String, Value>,
) -> Result<CallToolResult, McpError> {
    let outcome = match target(state, origin).await {
        Ok((gateway, name)) => state
            .peers
            .call_tool(&gateway, &name, arguments)
            .await
            .map_err(|e| Failure::Peer(gateway_name(&gateway, origin), e)),
        Err(failure) => Err(failure),
    };
    match outcome {
        Ok(result) => Ok(result),
        Err(Failure::Store(error)) => Err(error),
        Err(failure) => serde_json::from_value(json!({
            "content": [{"type": "text", "text": failure.text()}],
            "isError": true,
        }))
        .map_err(|e| internal(e.into())),
    }
}

pub async fn get_prompt(
    state: &AppState,
    origin: &Origin,
    arguments: Map<String, Value>,
) -> Result<GetPromptResult, McpError> {
    let (gateway, name) = target(state, origin).await.map_err(Failure::into_error)?;
    state
        .peers
        .get_prompt(&gateway, &name, arguments)
        .await
        .map_err(|e| Failure::Peer(gateway_name(&gateway, origin), e).into_error())
}

pub async fn read_resource(
    state: &AppState,
    origin: &Origin,
) -> Result<ReadResourceResult, McpError> {
    let (gateway, uri) = target(state, origin).await.map_err(Failure::into_error)?;
    state
        .peers
        .read_resource(&gateway, &uri)
        .await
        .map_err(|e| Failure::Peer(gateway_name(&gateway, origin), e).into_error())
}
