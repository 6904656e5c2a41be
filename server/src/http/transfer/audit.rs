//! `GET /admin/audit`: the audit trail.

use app::wire::{AuditFilter, AuditList, AuditRecord, invalid};
use axum::{Json, extract::State};

use crate::{
    error::{Error, Result},
    http::{AppState, extract::Query},
    store::audit::{AuditEntry, AuditQuery},
};

/// The audit trail: exports, imports, key rotations, sign-ins and entity changes, with
/// who did them (never a secret).
#[utoipa::path(get, path = "/admin/audit", tag = "audit",
    params(AuditFilter),
    responses((status = 200, description = "Entries, newest first", body = ref("#/components/schemas/AuditList"))))]
pub async fn audit(
    State(state): State<AppState>,
    Query(filter): Query<AuditFilter>,
) -> Result<Json<AuditList>> {
    let mut errors = Vec::new();
    let since = filter.since.as_deref().and_then(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| errors.push(invalid("/since", format!("not an RFC 3339 time: {e}"))))
            .ok()
    });
    let limit = filter.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        errors.push(invalid("/limit", "must be 1-1000"));
    }
    if !errors.is_empty() {
        return Err(Error::Parameters(errors));
    }
    let entries = state
        .store
        .search_audit(&AuditQuery {
            action: filter.action,
            actor: filter.user,
            since,
            limit,
        })
        .await?;
    Ok(Json(AuditList {
        entries: entries.into_iter().map(record).collect(),
    }))
}

fn record(entry: AuditEntry) -> AuditRecord {
    AuditRecord {
        id: entry.id,
        at: entry.at,
        actor: entry.actor,
        action: entry.action,
        target_type: entry.target_type,
        target_name: entry.target_name,
        details: entry.details.0,
    }
}
