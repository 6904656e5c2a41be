//! What people may change of a discovered tool, prompt or resource: only whether it is
//! active (and which servers link it, which is the server's record). Everything else is
//! the peer's: a change is refused, each field named.

use app::{
    entities::Origin,
    validation::{Code, FieldError, join},
};
use serde_json::{Map, Value};

/// The fields of a discovered entity people may set here.
const OURS: [&str; 1] = ["is_active"];

/// The fields a REST or UI edit would change that are the peer's: the stored record
/// (`before`, as serialised) against the patched one (`after`). Fields sent back
/// unchanged (a client echoing the record) pass; `id` and timestamps are ours to set.
pub fn refused_edits(
    origin: &Origin,
    before: &Map<String, Value>,
    after: &Map<String, Value>,
) -> Vec<FieldError> {
    let mut fields: Vec<&String> = before.keys().chain(after.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter(|f| !OURS.contains(&f.as_str()))
        .filter(|f| !matches!(f.as_str(), "id" | "created_at" | "updated_at"))
        // A field patched to null is absent after: the same as a stored null.
        .filter(|f| before.get(*f).unwrap_or(&Value::Null) != after.get(*f).unwrap_or(&Value::Null))
        .map(|f| FieldError {
            pointer: join("", f),
            code: Code::Federated,
            message: origin.refusal(),
        })
        .collect()
}

/// The refusal of a discovered entity sent by people (REST create, an import file):
/// discovery alone writes `federation`.
pub fn refused_origin(origin: &Origin, base: &str) -> FieldError {
    FieldError {
        pointer: join(base, "federation"),
        code: Code::Federated,
        message: format!(
            "discovered from gateway `{}`: such items are written by discovery when the gateway connects, not given here",
            origin.gateway
        ),
    }
}
