//! `verify`: are the stored credentials still accepted upstream? The request and report
//! of `POST /admin/verify`, also what `mcpgateway verify -o json` prints.

use serde::{Deserialize, Serialize};

use crate::model::EntityKind;

/// What to verify. Empty `types`: tools and gateways.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    #[serde(default)]
    pub types: Vec<EntityKind>,
    /// Names or globs per type, `tool:weather_*,gateway:peer-1` (as `export --include`).
    #[serde(default)]
    pub include: Option<String>,
    /// Exactly these tools (keys), active or not, of those that store credentials: what
    /// `import --verify` checks after the import (the tools it wrote).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
}

/// How one entity's credentials fared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The upstream accepted the request (any answer but 401 and 403).
    Ok,
    /// The upstream answered 401 or 403.
    Rejected,
    /// No answer: refused target, connection failure, timeout, no OAuth token.
    Unreachable,
    /// Not checked (no credentials, not a REST tool, a peer gateway).
    Skipped,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Rejected => "rejected",
            Verdict::Unreachable => "unreachable",
            Verdict::Skipped => "skipped",
        }
    }
}

/// One entity's result; `detail` never holds a secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EntityVerdict {
    #[serde(rename = "type")]
    pub kind: EntityKind,
    pub name: String,
    pub verdict: Verdict,
    /// The upstream's status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why skipped or unreachable, or which method answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Every result, in name order, and the summary line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VerifyReport {
    pub results: Vec<EntityVerdict>,
    /// E.g. "Verified 15 tools: 14 ok, 1 rejected (seed-tool-04-basic: 401)".
    pub summary: String,
    /// How many were rejected: the CLI exits non-zero when this is not 0.
    pub rejected: usize,
}

impl VerifyReport {
    /// The report of `results`, with its summary line.
    pub fn new(mut results: Vec<EntityVerdict>) -> VerifyReport {
        results.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
        let rejected = results
            .iter()
            .filter(|r| r.verdict == Verdict::Rejected)
            .count();
        let summary = [EntityKind::Tool, EntityKind::Gateway]
            .into_iter()
            .filter_map(|kind| summary_of(kind, &results))
            .collect::<Vec<_>>()
            .join("; ");
        VerifyReport {
            summary: if summary.is_empty() {
                "Verified nothing: no tools or gateways selected".into()
            } else {
                summary
            },
            results,
            rejected,
        }
    }
}

/// "Verified 15 tools: 14 ok, 1 rejected (seed-tool-04-basic: 401)" for one kind.
fn summary_of(kind: EntityKind, results: &[EntityVerdict]) -> Option<String> {
    let of_kind: Vec<&EntityVerdict> = results.iter().filter(|r| r.kind == kind).collect();
    if of_kind.is_empty() {
        return None;
    }
    let count = |v: Verdict| of_kind.iter().filter(|r| r.verdict == v).count();
    let named = |v: Verdict| -> String {
        of_kind
            .iter()
            .filter(|r| r.verdict == v)
            .map(|r| match r.status {
                Some(status) => format!("{}: {status}", r.name),
                None => r.name.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut parts = vec![format!("{} ok", count(Verdict::Ok))];
    if count(Verdict::Rejected) > 0 {
        parts.push(format!(
            "{} rejected ({})",
            count(Verdict::Rejected),
            named(Verdict::Rejected)
        ));
    }
    if count(Verdict::Unreachable) > 0 {
        parts.push(format!(
            "{} unreachable ({})",
            count(Verdict::Unreachable),
            named(Verdict::Unreachable)
        ));
    }
    if count(Verdict::Skipped) > 0 {
        parts.push(format!("{} skipped", count(Verdict::Skipped)));
    }
    let noun = if of_kind.len() == 1 {
        kind.singular()
    } else {
        kind.plural()
    };
    Some(format!(
        "Verified {} {noun}: {}",
        of_kind.len(),
        parts.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(name: &str, verdict: Verdict, status: Option<u16>) -> EntityVerdict {
        EntityVerdict {
            kind: EntityKind::Tool,
            name: name.into(),
            verdict,
            status,
            detail: None,
        }
    }

    #[test]
    fn the_summary_names_each_rejected_tool_and_its_status() {
        let report = VerifyReport::new(vec![
            verdict("seed-tool-04-basic", Verdict::Rejected, Some(401)),
            verdict("a", Verdict::Ok, Some(200)),
            verdict("b", Verdict::Skipped, None),
        ]);
        assert_eq!(
            report.summary,
            "Verified 3 tools: 1 ok, 1 rejected (seed-tool-04-basic: 401), 1 skipped"
        );
        assert_eq!(report.rejected, 1);
        assert_eq!(report.results[0].name, "a");
    }
}
