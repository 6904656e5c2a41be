//! The MCP methods, answered from the store for the scope the request's path named.

use std::borrow::Cow;

use app::entities::{prompt::Prompt, resource::Resource, tool::Tool};
use axum::http::request::Parts;
use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
        CompletionInfo, GetPromptRequestParams, GetPromptResponse, ListPromptsResult,
        ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
        ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, Reference, ServerConfig,
    },
    service::{NotificationContext, RequestContext},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    catalog::{self, BadCursor, Scope},
    forward, notify,
    render::{self, RenderError},
};
use crate::{
    hot::Seen,
    http::AppState,
    invoke::{InvokeError, ToolOutcome},
};

/// One MCP session's handler; every request reads its scope from its own HTTP request,
/// so a session sees what the store holds now, never a copy taken at `initialize`.
#[derive(Clone)]
pub struct Gateway {
    pub(super) state: AppState,
}

/// The revisions served: those with an `initialize` handshake, 2025-11-25 and older.
pub fn protocol_versions() -> &'static [ProtocolVersion] {
    ProtocolVersion::known_up_to(&ProtocolVersion::V_2025_11_25)
}

/// The scope the door (`super::admit`) resolved for this request.
pub(super) fn scope_of(context: &RequestContext<RoleServer>) -> Result<Scope, McpError> {
    context
        .extensions
        .get::<Parts>()
        .and_then(|parts| parts.extensions.get::<Scope>())
        .cloned()
        .ok_or_else(|| McpError::internal_error("internal error", None))
}

/// A store failure: logged here, answered without its text.
#[expect(clippy::needless_pass_by_value, reason = "used as `map_err(internal)`")]
pub(super) fn internal(error: anyhow::Error) -> McpError {
    if let Some(bad) = error.downcast_ref::<BadCursor>() {
        return McpError::invalid_params(bad.to_string(), None);
    }
    tracing::error!(error.detail = ?error, "MCP request failed");
    McpError::internal_error("internal error", None)
}

impl Gateway {
    /// The prompt named `name` in the request's scope; an unknown one is invalid params.
    async fn prompt(
        &self,
        context: &RequestContext<RoleServer>,
        name: &str,
    ) -> Result<Prompt, McpError> {
        let scope = scope_of(context)?;
        // Boxed, as `list_page`'s read (see `impl Gateway` below).
        Box::pin(catalog::find::<Prompt>(&self.state.store, &scope, name))
            .await
            .map_err(internal)?
            .ok_or_else(|| McpError::invalid_params(format!("no prompt {name:?}"), None))
    }
}

/// Builds an rmcp result from the JSON the MCP schema gives it.
fn wire<T: DeserializeOwned>(value: Value) -> Result<T, McpError> {
    serde_json::from_value(value).map_err(|e| internal(anyhow::Error::new(e)))
}

fn cursor(request: &Option<PaginatedRequestParams>) -> Option<&str> {
    request.as_ref().and_then(|r| r.cursor.as_deref())
}

/// `{field: [...], nextCursor?}` for one page of `E`, each shown by `show`.
async fn list_page<E: app::entities::Entity>(
    gateway: &Gateway,
    context: &RequestContext<RoleServer>,
    request: &Option<PaginatedRequestParams>,
    field: &str,
    show: impl Fn(&E) -> Option<Value>,
) -> Result<Value, McpError> {
    let scope = scope_of(context)?;
    // Boxed: see the `impl Gateway` of the boxed requests below.
    let (page, next) = Box::pin(catalog::page::<E>(
        &gateway.state.store,
        &scope,
        cursor(request),
    ))
    .await
    .map_err(internal)?;
    let items: Vec<Value> = page.iter().filter_map(show).collect();
    let mut out = json!({ field: items });
    if let Some(next) = next {
        out["nextCursor"] = json!(next);
    }
    Ok(out)
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        let info = json!({
            "protocolVersion": ProtocolVersion::V_2025_11_25,
            "capabilities": {
                "tools": {"listChanged": true},
                "prompts": {"listChanged": true},
                "resources": {"listChanged": true, "subscribe": false},
                "logging": {},
                "completions": {},
            },
            "serverInfo": {"name": "mcpgateway", "version": env!("CARGO_PKG_VERSION")},
        });
        serde_json::from_value(info).expect("a valid initialize result")
    }

    /// From now on the session hears of changes to its lists (see [`super::notify`]).
    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let scope = context
            .extensions
            .get::<Parts>()
            .and_then(|parts| parts.extensions.get::<Scope>())
            .cloned();
        if let Some(scope) = scope {
            notify::watch(self.state.store.clone(), scope, context.peer);
        }
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(protocol_versions())
    }

    // Deprecated by SEP-2577 for 2026-07-28; the revisions served here still have it.
    #[expect(
        deprecated,
        reason = "SetLevelRequestParams is deprecated for a later protocol revision that this gateway does not serve yet"
    )]
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        // The gateway sends no log notifications: any level is accepted.
        Ok(())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let show = |t: &Tool| Some(catalog::tool_json(t));
        wire(list_page(self, &context, &request, "tools", show).await?)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        Box::pin(self.call_tool_boxed(request, context)).await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let show = |p: &Prompt| Some(catalog::prompt_json(p));
        wire(list_page(self, &context, &request, "prompts", show).await?)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        Box::pin(self.get_prompt_boxed(request, context)).await
    }

    /// A prompt argument's values from its input schema's `enum`: those starting with
    /// what was typed (ignoring case), at most [`CompletionInfo::MAX_VALUES`]. A resource
    /// template's variables have no stored values to offer.
    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let Reference::Prompt(reference) = &request.r#ref else {
            return wire(json!({"completion": {"values": []}}));
        };
        let prompt = self.prompt(&context, &reference.name).await?;
        let typed = request.argument.value.to_lowercase();
        let matching: Vec<&str> = prompt
            .input_schema
            .get("properties")
            .and_then(|p| p.get(&request.argument.name))
            .and_then(|a| a.get("enum"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|v| v.to_lowercase().starts_with(&typed))
            .collect();
        let values = &matching[..matching.len().min(CompletionInfo::MAX_VALUES)];
        wire(json!({"completion": {
            "values": values,
            "total": matching.len(),
            "hasMore": matching.len() > values.len(),
        }}))
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let show = |r: &Resource| (!catalog::is_template(r)).then(|| catalog::resource_json(r));
        wire(list_page(self, &context, &request, "resources", show).await?)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let show = |r: &Resource| catalog::is_template(r).then(|| catalog::resource_json(r));
        wire(list_page(self, &context, &request, "resourceTemplates", show).await?)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        Box::pin(self.read_resource_boxed(request, context)).await
    }
}

/// The three largest request futures (a tool call, a prompt, a resource: each may call a
/// federated peer), boxed: rmcp's per-session task holds the largest one inline, so
/// unboxed they cost every idle session about 10 KiB (README, Performance).
impl Gateway {
    /// Calls the tool's upstream with its stored credentials. What the upstream answered,
    /// failures included, is a tool result (`isError`) the caller's model can read; an
    /// unknown tool is a protocol error, as the MCP spec says.
    async fn call_tool_boxed(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let scope = scope_of(&context)?;
        let seen = context
            .extensions
            .get::<Parts>()
            .and_then(|parts| parts.extensions.get::<Seen>().copied())
            .unwrap_or_else(|| self.state.hot.seen());
        let tool = (self.state.hot.tool(seen, &scope, &request.name))
            .await
            .map_err(internal)?
            .ok_or_else(|| {
                McpError::invalid_params(format!("unknown tool {:?}", request.name), None)
            })?;
        let arguments = request.arguments.unwrap_or_default();
        if let Some(origin) = &tool.federation {
            let headers = context
                .extensions
                .get::<Parts>()
                .map(|parts| parts.headers.clone())
                .unwrap_or_default();
            let result = forward::call_tool(&self.state, origin, arguments, &headers).await?;
            return Ok(CallToolResponse::Complete(result));
        }
        let outcome = match self.state.invoker.call_tool(&tool, arguments).await {
            Ok(outcome) => outcome,
            Err(e) => refusal(e),
        };
        let mut result = json!({
            "content": [{"type": "text", "text": outcome.text}],
            "isError": outcome.is_error,
        });
        if let Some(structured) = outcome.structured {
            result["structuredContent"] = structured;
        }
        Ok(CallToolResponse::Complete(wire(result)?))
    }

    async fn get_prompt_boxed(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let prompt = self.prompt(&context, &request.name).await?;
        let arguments = request.arguments.unwrap_or_default();
        if let Some(origin) = &prompt.federation {
            let result = forward::get_prompt(&self.state, origin, arguments).await?;
            return Ok(GetPromptResponse::Complete(result));
        }
        let text = render::render(&prompt, &arguments).map_err(|e| match e {
            RenderError::Missing(_) => McpError::invalid_params(e.to_string(), None),
            RenderError::Template(_) => McpError::internal_error(e.to_string(), None),
        })?;
        let mut result = json!({
            "messages": [{"role": "user", "content": {"type": "text", "text": text}}],
        });
        if let Some(description) = &prompt.description {
            result["description"] = json!(description);
        }
        Ok(GetPromptResponse::Complete(wire(result)?))
    }

    async fn read_resource_boxed(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let scope = scope_of(&context)?;
        let resource = catalog::find::<Resource>(&self.state.store, &scope, &request.uri)
            .await
            .map_err(internal)?
            .filter(|r| !catalog::is_template(r))
            .ok_or_else(|| {
                McpError::resource_not_found(
                    format!("no resource {:?}", request.uri),
                    Some(json!({"uri": request.uri})),
                )
            })?;
        if let Some(origin) = &resource.federation {
            let result = forward::read_resource(&self.state, origin).await?;
            return Ok(ReadResourceResponse::Complete(result));
        }
        let result = json!({"contents": [catalog::contents_json(&resource)]});
        Ok(ReadResourceResponse::Complete(wire(result)?))
    }
}

/// A call the invoker refused, as a tool error naming every problem (MCP asks input
/// errors to reach the model, so it can correct its arguments).
fn refusal(error: InvokeError) -> ToolOutcome {
    let text = match error {
        InvokeError::InvalidArguments(problems) => {
            let listed: Vec<String> = problems
                .iter()
                .map(|p| format!("{}: {}", p.pointer, p.message))
                .collect();
            format!("invalid arguments: {}", listed.join("; "))
        }
        InvokeError::NotCallable(why) => why,
    };
    ToolOutcome {
        text,
        structured: None,
        is_error: true,
    }
}
