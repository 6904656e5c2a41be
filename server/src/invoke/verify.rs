//! `verify`: for each REST tool with credentials, an authenticated `HEAD` (or `OPTIONS`
//! where `HEAD` is not allowed) on its URL, judged by the status: 401/403 rejected, any
//! other answer ok, none unreachable; for each peer gateway, MCP `initialize` with its
//! stored credentials, judged the same way. One audit row per run, names and counts only.

use std::{collections::HashSet, time::Duration};

use app::{
    entities::{Entity, Gateway, Tool, keys::fold_key, tool::IntegrationType, tool::is_envelope},
    model::EntityKind,
    validation::{Code, FieldError},
    verify::{EntityVerdict, Verdict, VerifyReport, VerifyRequest},
};
use futures_util::{StreamExt, stream};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{Credentials, Failure, Invoker};
use crate::{
    federation::peer::{PeerError, Peers},
    store::{Store, audit::NewAuditEntry, entities::ListQuery},
    transfer::selection::Include,
};

/// Upstreams probed at once.
const PARALLEL: usize = 8;
/// The longest a probe waits for its answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// Entities read from the store per page.
const PAGE: i64 = 500;

/// A checked [`VerifyRequest`].
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    pub types: Vec<EntityKind>,
    pub include: Option<Include>,
    /// Only these tools (folded keys), active or not, and only those with credentials.
    pub tools: Option<HashSet<String>>,
}

impl VerifyOptions {
    /// The request's types (tools and gateways only) and include spec, every problem named.
    pub fn from_request(request: &VerifyRequest) -> Result<VerifyOptions, Vec<FieldError>> {
        let mut errors = Vec::new();
        for (i, kind) in request.types.iter().enumerate() {
            if !matches!(kind, EntityKind::Tool | EntityKind::Gateway) {
                errors.push(FieldError {
                    pointer: format!("/types/{i}"),
                    code: Code::InvalidEnum,
                    message: format!(
                        "only tools and gateways have credentials to verify, not {}",
                        kind.plural()
                    ),
                });
            }
        }
        let include = match request.include.as_deref().map(Include::parse) {
            Some(Err(message)) => {
                errors.push(FieldError {
                    pointer: "/include".into(),
                    code: Code::Invalid,
                    message,
                });
                None
            }
            Some(Ok(include)) => Some(include),
            None => None,
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let tools = (!request.tools.is_empty()).then(|| {
            request
                .tools
                .iter()
                .map(|k| fold_key(EntityKind::Tool, k).into_owned())
                .collect()
        });
        Ok(VerifyOptions {
            types: request.types.clone(),
            include,
            tools,
        })
    }

    fn wants(&self, kind: EntityKind) -> bool {
        self.types.is_empty() || self.types.contains(&kind)
    }

    fn selects(&self, kind: EntityKind, key: &str, name: &str) -> bool {
        let named = match (&self.tools, kind) {
            (Some(tools), EntityKind::Tool) => tools.contains(fold_key(kind, key).as_ref()),
            _ => true,
        };
        named
            && self
                .include
                .as_ref()
                .is_none_or(|include| include.matches(kind, key, name))
    }

    /// Named tools are verified whether active or not: an import writes inactive ones too.
    fn include_inactive(&self, kind: EntityKind) -> bool {
        kind == EntityKind::Tool && self.tools.is_some()
    }
}

/// Verifies the selected tools and gateways and records the run in the audit log.
pub async fn verify(
    store: &Store,
    invoker: &Invoker,
    peers: &Peers,
    options: &VerifyOptions,
    actor: &str,
) -> anyhow::Result<VerifyReport> {
    let mut results = Vec::new();
    if options.wants(EntityKind::Tool) {
        let mut tools: Vec<Tool> = selected(store, options).await?;
        if options.tools.is_some() {
            tools.retain(has_credentials);
        }
        results.extend(
            stream::iter(tools)
                .map(|tool| async move { invoker.verify_tool(&tool).await })
                .buffer_unordered(PARALLEL)
                .collect::<Vec<_>>()
                .await,
        );
    }
    if options.wants(EntityKind::Gateway) {
        let gateways: Vec<Gateway> = selected(store, options).await?;
        results.extend(
            stream::iter(gateways)
                .map(|gateway| async move { verify_gateway(peers, &gateway).await })
                .buffer_unordered(PARALLEL)
                .collect::<Vec<_>>()
                .await,
        );
    }
    let report = VerifyReport::new(results);
    let rejected: Vec<&str> = report
        .results
        .iter()
        .filter(|r| r.verdict == Verdict::Rejected)
        .map(|r| r.name.as_str())
        .collect();
    store
        .record_audit(NewAuditEntry {
            actor,
            action: "verify",
            target_type: None,
            target_name: None,
            details: json!({"summary": report.summary, "rejected": rejected}),
        })
        .await?;
    Ok(report)
}

/// The entities of `E` the options select (active ones unless named), read page by page.
async fn selected<E: Entity>(store: &Store, options: &VerifyOptions) -> anyhow::Result<Vec<E>> {
    let mut chosen = Vec::new();
    let mut offset = 0;
    loop {
        let query = ListQuery {
            limit: Some(PAGE),
            offset,
            include_inactive: options.include_inactive(E::KIND),
            ..ListQuery::default()
        };
        let (page, _) = store.list_entities::<E>(&query).await?;
        let len = page.len() as i64;
        chosen.extend(
            page.into_iter()
                .filter(|e| options.selects(E::KIND, e.key(), e.name())),
        );
        if len < PAGE {
            return Ok(chosen);
        }
        offset += PAGE;
    }
}

/// A peer gateway's verdict: `initialize` (and its lists) with the stored credentials;
/// 401/403 rejected, no answer unreachable.
async fn verify_gateway(peers: &Peers, gateway: &Gateway) -> EntityVerdict {
    let verdict = |verdict, status: Option<u16>, detail: String| EntityVerdict {
        kind: EntityKind::Gateway,
        name: gateway.key().to_owned(),
        verdict,
        status,
        detail: Some(detail),
    };
    match tokio::time::timeout(PROBE_TIMEOUT, peers.discover(gateway)).await {
        Err(_) => verdict(
            Verdict::Unreachable,
            None,
            format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
        ),
        Ok(Ok(found)) => verdict(
            Verdict::Ok,
            None,
            format!("initialize: {} tools offered", found.tools.len()),
        ),
        Ok(Err(e @ PeerError::AuthFailed(status))) => {
            verdict(Verdict::Rejected, Some(status), e.to_string())
        }
        Ok(Err(e)) => verdict(Verdict::Unreachable, None, e.to_string()),
    }
}

/// True when the tool stores credentials: `auth_value` or an encrypted header.
fn has_credentials(tool: &Tool) -> bool {
    (tool.auth_type.is_some() && tool.auth_value.is_some())
        || tool.headers.values().any(is_envelope)
}

impl Invoker {
    /// One tool's verdict (counted in the metrics): skipped without credentials or when
    /// not a REST tool.
    pub async fn verify_tool(&self, tool: &Tool) -> EntityVerdict {
        let verdict = self.judge(tool).await;
        self.inner
            .metrics
            .record_verification(&verdict.name, verdict.verdict.as_str());
        verdict
    }

    async fn judge(&self, tool: &Tool) -> EntityVerdict {
        let verdict = |verdict, status: Option<u16>, detail: Option<String>| EntityVerdict {
            kind: EntityKind::Tool,
            name: tool.key().to_owned(),
            verdict,
            status,
            detail,
        };
        if tool.integration_type != IntegrationType::REST {
            return verdict(Verdict::Skipped, None, Some("not a REST tool".into()));
        }
        if !has_credentials(tool) {
            return verdict(Verdict::Skipped, None, Some("no credentials".into()));
        }
        let call = match self.probe_call(tool) {
            Ok(call) => call,
            Err(why) => return verdict(Verdict::Unreachable, None, Some(why)),
        };
        let probe = async {
            let status = self.probe(&call, Method::HEAD).await?;
            if matches!(
                status,
                StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
            ) {
                return Ok((self.probe(&call, Method::OPTIONS).await?, "OPTIONS"));
            }
            Ok::<_, Failure>((status, "HEAD"))
        };
        match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            Err(_) => verdict(
                Verdict::Unreachable,
                None,
                Some(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
            ),
            Ok(Err(failure)) => {
                verdict(Verdict::Unreachable, None, Some(failure.into_result().text))
            }
            Ok(Ok((status, method))) => {
                let judged = if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                    Verdict::Rejected
                } else {
                    Verdict::Ok
                };
                verdict(judged, Some(status.as_u16()), Some(method.into()))
            }
        }
    }

    /// The tool's target and credentials, without arguments.
    fn probe_call(&self, tool: &Tool) -> Result<super::Call, String> {
        let url = tool
            .url
            .as_deref()
            .and_then(|u| reqwest::Url::parse(u).ok())
            .ok_or_else(|| "the tool has no valid url".to_owned())?;
        let credentials = Credentials::of(tool, &self.inner.cipher).map_err(|e| e.to_string())?;
        Ok(super::Call {
            method: Method::HEAD,
            url,
            arguments: Default::default(),
            credentials,
            filter: None,
            structured: false,
        })
    }

    async fn probe(&self, call: &super::Call, method: Method) -> Result<StatusCode, Failure> {
        let (request, turns) = self.request(call, &method, false).await?;
        let _turn = turns
            .acquire_owned()
            .await
            .expect("upstream semaphores are never closed");
        let response = request.send().await.map_err(|e| super::failure_of(&e))?;
        Ok(response.status())
    }
}
