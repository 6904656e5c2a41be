//! What an import reports and what an import job looks like from outside: the types the
//! REST API answers with, the CLI prints and the browser's wizard reads.

use std::{collections::BTreeMap, fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{model::EntityKind, validation::FieldError};

/// What to do when an entity's key already exists in the target.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ConflictStrategy {
    /// Leave the existing entity as it is.
    Skip,
    /// Overwrite the existing entity with the file's.
    #[default]
    Update,
    /// Import under a new, unique key and say which.
    Rename,
    /// Abort the whole import.
    Fail,
}

impl ConflictStrategy {
    pub const ALL: [ConflictStrategy; 4] = [
        ConflictStrategy::Skip,
        ConflictStrategy::Update,
        ConflictStrategy::Rename,
        ConflictStrategy::Fail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConflictStrategy::Skip => "skip",
            ConflictStrategy::Update => "update",
            ConflictStrategy::Rename => "rename",
            ConflictStrategy::Fail => "fail",
        }
    }
}

impl fmt::Display for ConflictStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConflictStrategy {
    type Err = String;

    /// Case-insensitive, as ContextForge accepts it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        ConflictStrategy::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a conflict strategy: use skip, update, rename or fail")
            })
    }
}

/// What an import did (or, in a dry run, would do) with one entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    Skipped,
    Renamed,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Created,
        Action::Updated,
        Action::Unchanged,
        Action::Skipped,
        Action::Renamed,
    ];
}

/// One entity's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EntityResult {
    #[serde(rename = "type")]
    pub kind: EntityKind,
    pub name: String,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed_fields: Vec<String>,
    /// Old and new value of each changed field; credentials only as `<changed>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

/// Outcomes of one type.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct ActionCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub renamed: u64,
    pub failed: u64,
}

impl ActionCounts {
    pub fn add(&mut self, action: Action) {
        *match action {
            Action::Created => &mut self.created,
            Action::Updated => &mut self.updated,
            Action::Unchanged => &mut self.unchanged,
            Action::Skipped => &mut self.skipped,
            Action::Renamed => &mut self.renamed,
        } += 1;
    }

    pub fn total(&self) -> u64 {
        self.created + self.updated + self.unchanged + self.skipped + self.renamed + self.failed
    }
}

/// Per type, the outcomes so far. Sent as an object keyed by plural name (`"tools"`), in
/// the alphabetical order of those names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts(BTreeMap<EntityKind, ActionCounts>);

impl Counts {
    pub fn new() -> Counts {
        Counts::default()
    }

    /// The outcomes of `kind`, starting from none.
    pub fn of(&mut self, kind: EntityKind) -> &mut ActionCounts {
        self.0.entry(kind).or_default()
    }

    pub fn get(&self, kind: EntityKind) -> Option<&ActionCounts> {
        self.0.get(&kind)
    }

    /// The types with outcomes, in the order they are sent (by plural name).
    pub fn iter(&self) -> impl Iterator<Item = (EntityKind, &ActionCounts)> {
        let mut all: Vec<_> = self.0.iter().map(|(k, c)| (*k, c)).collect();
        all.sort_by_key(|(k, _)| k.plural());
        all.into_iter()
    }
}

/// `counts["tools"]`: the outcomes of a type by its plural (or singular) name.
impl std::ops::Index<&str> for Counts {
    type Output = ActionCounts;

    fn index(&self, name: &str) -> &ActionCounts {
        EntityKind::parse(name)
            .and_then(|kind| self.get(kind))
            .unwrap_or_else(|| panic!("no counts for `{name}`"))
    }
}

impl Serialize for Counts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter().map(|(kind, c)| (kind.plural(), c)))
    }
}

impl<'de> Deserialize<'de> for Counts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Counts, D::Error> {
        let by_name = BTreeMap::<String, ActionCounts>::deserialize(d)?;
        Ok(Counts(
            by_name
                .into_iter()
                .filter_map(|(name, c)| EntityKind::parse(&name).map(|kind| (kind, c)))
                .collect(),
        ))
    }
}

impl schemars::JsonSchema for Counts {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Counts".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        BTreeMap::<String, ActionCounts>::json_schema(generator)
    }
}

/// Counts the outcomes of `results` per type.
pub fn count_results<'a>(results: impl IntoIterator<Item = &'a EntityResult>) -> Counts {
    let mut counts = Counts::new();
    for r in results {
        counts.of(r.kind).add(r.action);
    }
    counts
}

/// The life of an import job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<JobState> {
        [
            JobState::Queued,
            JobState::Running,
            JobState::Completed,
            JobState::Failed,
            JobState::Cancelled,
        ]
        .into_iter()
        .find(|j| j.as_str() == s)
    }

    /// Completed, failed or cancelled: nothing more will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

/// A status as stored (the database keeps the text).
impl TryFrom<String> for JobState {
    type Error = String;

    fn try_from(text: String) -> Result<JobState, String> {
        JobState::parse(&text).ok_or_else(|| format!("`{text}` is not a job status"))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobProgress {
    pub processed: u64,
    pub total: u64,
    /// 0 to 100.
    pub percent: f64,
}

impl JobProgress {
    pub fn new(processed: u64, total: u64) -> JobProgress {
        let percent = if total == 0 {
            0.0
        } else {
            (processed as f64 * 1000.0 / total as f64).round() / 10.0
        };
        JobProgress {
            processed,
            total,
            percent,
        }
    }
}

/// The uploaded file, as the job remembers it (never its content).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobFile {
    pub name: Option<String>,
    pub sha256: String,
    pub size: u64,
}

/// An import job, as `GET /admin/import/status/{id}` answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobStatus {
    pub job_id: uuid::Uuid,
    pub status: JobState,
    pub dry_run: bool,
    pub conflict_strategy: ConflictStrategy,
    pub progress: JobProgress,
    /// Per type: created, updated, unchanged, skipped, renamed, failed.
    pub counts: Counts,
    /// How many per-entity results the job has (0 until it has ended, and when it failed:
    /// nothing was written). They are read a page at a time, as [`JobResults`], from
    /// `GET /admin/import/status/{id}/results?offset=&limit=`: a status stays small
    /// however large the job.
    #[serde(default)]
    pub results_total: u64,
    /// Why the job failed, each problem with its field: the first 1,000.
    pub errors: Vec<FieldError>,
    /// How many problems there were in all (`errors` lists the first 1,000).
    #[serde(default)]
    pub errors_total: u64,
    pub warnings: Vec<FieldError>,
    /// One line: "Imported: 3 tools, 1 server".
    pub summary: Option<String>,
    /// Entities of the file left out by `include` or the selection.
    #[serde(default)]
    pub skipped_by_selection: u64,
    /// True when credentials were re-encrypted from the source secret's key.
    #[serde(default)]
    pub rekeyed: bool,
    /// How the first connection to each gateway the import wrote went (after the commit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<crate::federation::FirstConnection>,
    pub file: JobFile,
    pub created_by: String,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// A page of a job's per-entity results: `GET /admin/import/status/{id}/results`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobResults {
    pub job_id: uuid::Uuid,
    /// The position of the first result of this page (from 0).
    pub offset: u64,
    /// How many results the job has in all.
    pub total: u64,
    /// In dependency order (what servers link to first), at most the `limit` asked for.
    pub results: Vec<EntityResult>,
}

impl JobResults {
    /// The most results one page answers with (and the default).
    pub const MAX_LIMIT: u64 = 1_000;
}

/// The answer to `POST /admin/import`: where to follow the job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JobCreated {
    pub job_id: uuid::Uuid,
    pub status: JobState,
    pub status_url: String,
    pub events_url: String,
}

/// What an export would hold, without building it: the UI's "Export Selected" preview.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExportPreview {
    /// Per type (plural name), how many entities the export holds, dependencies included.
    pub counts: serde_json::Map<String, Value>,
    pub total: usize,
    /// The entities the request chose itself.
    pub selected: Vec<PreviewItem>,
    /// What the export adds because a chosen server needs it (or, with tags, uses it).
    pub dependencies: Vec<PreviewItem>,
    /// `include` items and tags that select nothing, each named.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// One entity of a preview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PreviewItem {
    #[serde(rename = "type")]
    pub kind: EntityKind,
    pub name: String,
    /// The servers that need this entity (for dependencies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_by: Vec<String>,
}

/// What an import would do, without doing it: the wizard's preview step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ImportPreview {
    pub conflict_strategy: ConflictStrategy,
    /// Entities the import would apply (after any selection).
    pub total: usize,
    /// Per type, what would happen.
    pub counts: Counts,
    /// Entities whose name (or URI) already exists in this gateway, with what would happen.
    pub conflicts: Vec<EntityResult>,
    /// Entities a server of the file needs that the import would create.
    pub dependencies: Vec<PreviewItem>,
    /// Per entity, what would happen.
    pub results: Vec<EntityResult>,
    pub warnings: Vec<FieldError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_sent_by_plural_name_in_alphabetical_order() {
        let mut counts = Counts::new();
        counts.of(EntityKind::Tool).created = 2;
        counts.of(EntityKind::Gateway).failed = 1;
        let text = serde_json::to_string(&counts).unwrap();
        assert!(text.starts_with(r#"{"gateways":{"#), "{text}");
        assert!(text.contains(r#"},"tools":{"created":2,"#), "{text}");
        let read: Counts = serde_json::from_str(&text).unwrap();
        assert_eq!(read, counts);
        assert_eq!(read["tools"].created, 2);
    }
}
