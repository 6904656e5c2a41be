//! Import: every entity validated and applied in dependency order inside one
//! transaction — all of it or none of it. A dry run is the same import, rolled back.
//!
//! Two halves run at once: [`parse`] reads the file (mapped, never held whole) on a
//! thread of its own and sends valid entities in batches; [`apply`] writes each batch
//! while the next is parsed. A file with any problem is rolled back whole, with every
//! problem listed.

mod apply;
mod parse;
mod placeholders;

use std::{
    collections::HashSet,
    sync::{Arc, atomic::AtomicBool},
};

pub use app::jobs::{Action, ConflictStrategy, EntityResult, FieldChange, ImportPreview};
use app::jobs::{PreviewItem, count_results};
use app::{
    model::EntityKind,
    transfer::Head,
    validation::{Code, FieldError, Problems},
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{input::Input, selection::Include};
use crate::{
    crypto::Cipher,
    store::{Store, audit::NewAuditEntry, entities::EntityError},
};
use parse::{Message, Plan, Selected};

/// The fingerprint of the key the file says its credentials are encrypted with
/// (`encryption_key_fingerprint`, which exports carry), if it names one.
pub fn file_key(bytes: &[u8]) -> Option<String> {
    // Exports write it before the entities: found without reading them.
    super::scan::top_level_string(bytes, "encryption_key_fingerprint")
}

/// A file that names its key, checked against the key that will decrypt it (`source`,
/// else `target`) before anything else: one problem at `/source_secret` naming the key
/// the file needs, instead of one per credential. A file naming no key passes.
pub fn check_file_key(
    bytes: &[u8],
    source: Option<&Cipher>,
    target: &Cipher,
) -> Result<(), FieldError> {
    let Some(file_key) = file_key(bytes) else {
        return Ok(());
    };
    let problem = |code: Code, message: String| FieldError {
        pointer: "/source_secret".into(),
        code,
        message,
    };
    match source {
        None if file_key != target.fingerprint() => Err(problem(
            Code::SourceSecretRequired,
            format!(
                "the file's credentials are encrypted with key {file_key}, not this gateway's: \
                 give the exporting gateway's AUTH_ENCRYPTION_SECRET as the source secret"
            ),
        )),
        Some(source) if file_key != source.fingerprint() => Err(problem(
            Code::SourceSecretMismatch,
            format!(
                "the source secret is key {}, but the file's credentials are encrypted with key {file_key}",
                source.fingerprint()
            ),
        )),
        _ => Ok(()),
    }
}

#[derive(Default)]
pub struct ImportOptions<'a> {
    pub strategy: ConflictStrategy,
    pub dry_run: bool,
    pub include: Option<Include>,
    /// Only these entities (type and key) of the file, plus what the chosen servers need.
    pub picked: Option<HashSet<(EntityKind, String)>>,
    /// Decrypts the file's credentials; `None` means the file was written under the target's key.
    pub source: Option<&'a Cipher>,
    /// Told of progress, asked about cancellation (a job's progress bar and Cancel button).
    pub observer: Option<&'a dyn Observer>,
    /// A server's link to an entity neither the file nor this gateway has is left out
    /// with a warning, instead of refusing the file.
    pub allow_missing_links: bool,
}

/// Watches an import as it runs.
pub trait Observer: Send + Sync {
    /// The file is valid; this many entities will be applied.
    fn started(&self, _total: usize) {}
    /// One entity was applied (inside the still open transaction).
    fn applied(&self, _result: &EntityResult) {}
    /// Asked between entities: true rolls the whole import back.
    fn cancelled(&self) -> bool {
        false
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ImportReport {
    pub dry_run: bool,
    pub strategy: ConflictStrategy,
    pub results: Vec<EntityResult>,
    /// Entities of the file left out by `--include`.
    pub skipped_by_selection: usize,
    pub warnings: Vec<FieldError>,
    /// True when credentials were re-encrypted from another key.
    pub rekeyed: bool,
    /// How the first connection to each gateway the import wrote went, after the commit
    /// (filled by the job or the CLI; the import itself never waits on the network).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<app::federation::FirstConnection>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file has {} problem(s)", .0.total)]
    Invalid(Problems),
    /// With `fail`: every entity that exists and differs, each with its pointer.
    #[error("{} conflict(s) with conflict strategy fail: nothing was imported", .0.len())]
    Conflict(Vec<FieldError>),
    #[error("cancelled: nothing was imported")]
    Cancelled,
    #[error(transparent)]
    Store(EntityError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<EntityError> for ImportError {
    /// A database error of the entity store is one of the import's database errors (so a
    /// busy or full database is told as such, not as a refusal of the file).
    fn from(e: EntityError) -> ImportError {
        match e {
            EntityError::Database(e) => ImportError::Database(e),
            other => ImportError::Store(other),
        }
    }
}

impl ImportError {
    /// A conflict with another writer, not with one entity of the file: no pointer.
    fn concurrent(message: String) -> ImportError {
        ImportError::Conflict(vec![FieldError {
            pointer: String::new(),
            code: Code::Conflict,
            message,
        }])
    }

    /// A database refusal caused by another transaction writing the same rows at the
    /// same time (a key taken meanwhile, a deadlock, a serialisation failure) is a
    /// conflict the caller can resolve by trying again, not an internal error. (Imports
    /// take turns, so this is the safety net for writers that do not.)
    fn concurrent_as_conflict(self) -> ImportError {
        let database = match &self {
            ImportError::Store(EntityError::Duplicate { kind, key }) => {
                return ImportError::concurrent(format!(
                    "the {} `{key}` was written by someone else at the same time; try again",
                    kind.singular()
                ));
            }
            ImportError::Database(e) | ImportError::Store(EntityError::Database(e)) => e,
            _ => return self,
        };
        let code = database.as_database_error().and_then(|d| d.code());
        match code.as_deref() {
            Some("23505" | "40001" | "40P01") => ImportError::concurrent(
                "another import wrote the same entities at the same time; try again".into(),
            ),
            _ => self,
        }
    }
}

impl ImportReport {
    pub fn count(&self, kind: EntityKind, action: Action) -> usize {
        self.results
            .iter()
            .filter(|r| r.kind == kind && r.action == action)
            .count()
    }

    /// "Imported: 15 tools, …" (whole file) or "Imported 1 tool, 1 server (2 items skipped)".
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let mut skipped = self.skipped_by_selection;
        for kind in EntityKind::ALL {
            let n = self
                .results
                .iter()
                .filter(|r| r.kind == kind && r.action != Action::Skipped)
                .count();
            skipped += self.count(kind, Action::Skipped);
            if n > 0
                || (self.skipped_by_selection == 0 && self.results.iter().any(|r| r.kind == kind))
            {
                parts.push(plural(n, kind));
            }
        }
        let verb = if self.dry_run {
            "Would import"
        } else {
            "Imported"
        };
        let changed = self
            .results
            .iter()
            .any(|r| !matches!(r.action, Action::Unchanged | Action::Skipped));
        if !changed && skipped == 0 && !parts.is_empty() {
            // A re-import that changed nothing says so, not "Imported: …".
            let lead = if self.dry_run {
                "Would leave unchanged"
            } else {
                "Unchanged"
            };
            return format!("{lead}: {} (already as in the file)", parts.join(", "));
        }
        if self.skipped_by_selection == 0 && skipped == 0 {
            format!("{verb}: {}", parts.join(", "))
        } else {
            format!(
                "{verb} {} ({skipped} {} skipped)",
                if parts.is_empty() {
                    "nothing".into()
                } else {
                    parts.join(", ")
                },
                if skipped == 1 { "item" } else { "items" }
            )
        }
    }

    /// Per type: "Would update 3 existing tools, create 12 new tools" and the other outcomes.
    pub fn plan_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for kind in EntityKind::ALL {
            let phrases: Vec<String> = PLAN_ORDER
                .iter()
                .filter_map(|action| {
                    let n = self.count(kind, *action);
                    let (future, past, adjective) = plan_words(*action);
                    let verb = if self.dry_run { future } else { past };
                    (n > 0).then(|| format!("{verb} {n}{adjective} {}", kind_name(n, kind)))
                })
                .collect();
            if !phrases.is_empty() {
                let phrases = phrases.join(", ");
                lines.push(if self.dry_run {
                    format!("Would {phrases}")
                } else {
                    capitalise(&phrases)
                });
            }
        }
        lines
    }
}

/// The outcomes in the order a plan line names them.
const PLAN_ORDER: [Action; 5] = [
    Action::Updated,
    Action::Created,
    Action::Renamed,
    Action::Skipped,
    Action::Unchanged,
];

/// How a plan line names an outcome: the verb planned ("update"), the verb done
/// ("updated"), and what is said of the entities (" existing").
fn plan_words(action: Action) -> (&'static str, &'static str, &'static str) {
    match action {
        Action::Updated => ("update", "updated", " existing"),
        Action::Created => ("create", "created", " new"),
        Action::Renamed => ("rename", "renamed", ""),
        Action::Skipped => ("skip", "skipped", " existing"),
        Action::Unchanged => ("leave", "left", " unchanged"),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn plural(n: usize, kind: EntityKind) -> String {
    format!("{n} {}", kind_name(n, kind))
}

/// What `n` entities of `kind` are called: `tool` or `tools`.
fn kind_name(n: usize, kind: EntityKind) -> &'static str {
    if n == 1 {
        kind.singular()
    } else {
        kind.plural()
    }
}

/// What an accepted run of the pipeline gives.
struct Applied {
    results: Vec<EntityResult>,
    selected: Arc<Selected>,
    head: Head,
    /// Links left out by `allow_missing_links`.
    dropped: Vec<FieldError>,
}

/// Whether the pipeline writes, and whether it keeps what it wrote.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every check, no transaction.
    Check,
    /// Applied, then rolled back.
    DryRun,
    Commit,
}

/// Batches in flight between the halves (each up to `BATCH_ROWS` entities).
const IN_FLIGHT: usize = 2;

/// Runs both halves of an import (see the module documentation).
async fn pipeline(
    store: &Store,
    target: &Cipher,
    input: &Input,
    options: &ImportOptions<'_>,
    mode: Mode,
) -> Result<Applied, ImportError> {
    let stop = Arc::new(AtomicBool::new(false));
    let plan = Plan {
        input: input.clone(),
        include: options.include.clone(),
        picked: options.picked.clone(),
        source: options.source.unwrap_or(target).clone(),
        target: target.clone(),
        stop: stop.clone(),
    };
    let (sender, mut receiver) = mpsc::channel(IN_FLIGHT);
    let parser = tokio::task::spawn_blocking(move || parse::parse(&plan, sender));
    // The first message is the skim, unless the file is refused before it (not text).
    let Some(Message::Skimmed(selected)) = receiver.recv().await else {
        return Err(ImportError::Invalid(
            join(parser).await.err().unwrap_or_default(),
        ));
    };
    let in_target = external_in_target(store, &selected).await?;
    let in_file = selected.skim.keys(EntityKind::Gateway);
    let gateways = placeholders::gateway_names(store, in_file).await?;
    let mut tx = match mode {
        Mode::Check => None,
        _ => {
            let mut tx = store.begin().await?;
            // Before the first read: what an import running meanwhile writes is seen.
            tx.take_import_turn().await?;
            Some(tx)
        }
    };
    if let (Some(observer), true) = (options.observer, mode != Mode::Check) {
        observer.started(selected.total);
    }
    let mut run = apply::Run::new(
        tx.as_mut(),
        target,
        options.strategy,
        options.observer,
        &selected,
        apply::Links {
            in_target: &in_target,
            drop_missing_links: options.allow_missing_links,
            gateways: &gateways,
        },
    );
    let failure = run.apply_all(&mut receiver, &stop).await;
    let apply::Finished {
        mut results,
        errors: link_errors,
        conflicts,
        dropped,
    } = run.finish();
    let outcome = match (join(parser).await, link_errors, failure) {
        (Err(errors), _, _) => Err(ImportError::Invalid(errors)),
        (Ok(_), errors, _) if !errors.is_empty() => Err(ImportError::Invalid(errors)),
        (Ok(_), _, Some(e)) => Err(e),
        (Ok(_), _, None) if !conflicts.is_empty() => Err(ImportError::Conflict(conflicts)),
        (Ok(head), _, None) => Ok(head),
    };
    match (tx, &outcome) {
        (Some(tx), Ok(_)) if mode == Mode::Commit => tx.commit().await?,
        (Some(tx), Ok(_)) => tx.rollback().await?,
        (Some(tx), Err(_)) => {
            // SQLite may have rolled back already (it does on SQLITE_FULL): rolling back
            // again fails, and must not hide the error that ended the import. The pool
            // closes such a connection rather than reuse it (store::sqlite_reusable).
            if let Err(e) = tx.rollback().await {
                tracing::warn!(error.detail = %e, "rolling back the failed import");
            }
        }
        (None, _) => {}
    }
    // Dependency order, as the batches were written per pass: what servers link to first.
    results.sort_by_key(|r| parse::dependency_rank(r.kind));
    Ok(Applied {
        results,
        selected,
        head: outcome?,
        dropped,
    })
}

/// The parsing half's result; a panic there is a bug, raised here.
async fn join(parser: tokio::task::JoinHandle<parse::Parsed>) -> parse::Parsed {
    match parser.await {
        Ok(parsed) => parsed,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Of the keys the chosen servers name that the file lacks, those the target has:
/// one query per type and chunk of keys, before the transaction starts.
async fn external_in_target(
    store: &Store,
    selected: &Selected,
) -> Result<HashSet<(EntityKind, String)>, ImportError> {
    let skim = &selected.skim;
    let servers = skim.servers().iter().filter(|s| {
        selected
            .wanted
            .as_ref()
            .is_none_or(|w| w.contains(&(EntityKind::Server, s.key.to_string())))
    });
    let mut outside: HashSet<(EntityKind, &str)> = HashSet::new();
    for server in servers {
        for (kind, keys) in &server.links {
            let missing = keys.iter().filter(|k| !skim.contains(*kind, k));
            outside.extend(missing.map(|k| (*kind, k.as_str())));
        }
    }
    let mut found = HashSet::new();
    for kind in [EntityKind::Tool, EntityKind::Prompt, EntityKind::Resource] {
        let keys: Vec<&str> = outside
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, key)| *key)
            .collect();
        if !keys.is_empty() {
            let existing = store.existing_keys(kind, &keys).await?;
            found.extend(existing.into_iter().map(|key| (kind, key)));
        }
    }
    Ok(found)
}

/// Accepted warnings, less the references the target has been found to satisfy, plus
/// the links left out.
fn kept_warnings(applied: &mut Applied) -> Vec<FieldError> {
    let mut warnings = std::mem::take(&mut applied.head.warnings);
    warnings.retain(|w| w.code != "external_reference");
    warnings.extend(applied.selected.unmatched.iter().cloned());
    warnings.append(&mut applied.dropped);
    warnings
}

/// Runs every check of [`import`] without opening a transaction; the warnings if the
/// file would be accepted.
pub async fn check(
    store: &Store,
    target: &Cipher,
    input: impl Into<Input>,
    options: &ImportOptions<'_>,
) -> Result<Vec<FieldError>, ImportError> {
    let mut applied = pipeline(store, target, &input.into(), options, Mode::Check).await?;
    Ok(kept_warnings(&mut applied))
}

/// Validates the file and imports it; on any problem nothing is written.
pub async fn import(
    store: &Store,
    target: &Cipher,
    input: impl Into<Input>,
    options: &ImportOptions<'_>,
    actor: &str,
) -> Result<ImportReport, ImportError> {
    let input = input.into();
    let mode = if options.dry_run {
        Mode::DryRun
    } else {
        Mode::Commit
    };
    // The audit names the file by its digest, taken beside the import.
    let digest = (mode == Mode::Commit).then(|| {
        let input = input.clone();
        tokio::task::spawn_blocking(move || digest(&input))
    });
    let mut applied = pipeline(store, target, &input, options, mode)
        .await
        .map_err(ImportError::concurrent_as_conflict)?;
    if mode == Mode::Commit {
        publish_changes(store, &applied.results);
    }
    let source = options.source.unwrap_or(target);
    let warnings = kept_warnings(&mut applied);
    let report = ImportReport {
        dry_run: options.dry_run,
        strategy: options.strategy,
        results: applied.results,
        skipped_by_selection: applied.selected.skipped,
        warnings,
        rekeyed: source.fingerprint() != target.fingerprint(),
        gateways: Vec::new(),
    };
    if let Some(digest) = digest {
        let digest = digest.await.unwrap_or_default();
        audit(store, &report, &digest, source, target, actor).await?;
    }
    Ok(report)
}

/// Tells live sessions what the committed import wrote, one change per type.
fn publish_changes(store: &Store, results: &[EntityResult]) {
    for kind in EntityKind::ALL {
        let keys: Vec<String> = results
            .iter()
            .filter(|r| r.kind == kind && !matches!(r.action, Action::Unchanged | Action::Skipped))
            .flat_map(|r| std::iter::once(r.name.clone()).chain(r.new_name.clone()))
            .collect();
        crate::entities::changes::publish(store, kind, keys);
    }
}

/// The file's SHA-256, read a MiB at a time (a mapped file lets go behind).
fn digest(input: &Input) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for (i, chunk) in input.bytes().chunks(1 << 20).enumerate() {
        hasher.update(chunk);
        input.release_before((i + 1) << 20);
    }
    hex::encode(hasher.finalize())
}

/// What [`import`] would do: the import itself, rolled back, plus the conflicts and
/// the dependencies it would create.
pub async fn preview(
    store: &Store,
    target: &Cipher,
    input: impl Into<Input>,
    options: &ImportOptions<'_>,
) -> Result<ImportPreview, ImportError> {
    // With `fail`, the preview lists every conflict instead of stopping at the first.
    let strategy = match options.strategy {
        ConflictStrategy::Fail => ConflictStrategy::Skip,
        other => other,
    };
    let dry = ImportOptions {
        strategy,
        dry_run: true,
        include: options.include.clone(),
        picked: options.picked.clone(),
        source: options.source,
        observer: None,
        allow_missing_links: options.allow_missing_links,
    };
    let mut applied = pipeline(store, target, &input.into(), &dry, Mode::DryRun)
        .await
        .map_err(ImportError::concurrent_as_conflict)?;
    let warnings = kept_warnings(&mut applied);
    let servers = applied.selected.skim.servers();
    let results = applied.results;
    let dependencies = results
        .iter()
        .filter(|r| r.action == Action::Created)
        .filter_map(|r| {
            let required_by: Vec<String> = servers
                .iter()
                .filter(|s| {
                    s.links
                        .iter()
                        .any(|(k, keys)| *k == r.kind && keys.contains(&r.name))
                })
                .map(|s| s.key.to_string())
                .collect();
            (!required_by.is_empty()).then(|| PreviewItem {
                kind: r.kind,
                name: r.name.clone(),
                required_by,
            })
        })
        .collect();
    Ok(ImportPreview {
        conflict_strategy: options.strategy,
        total: results.len(),
        counts: count_results(&results),
        conflicts: results
            .iter()
            .filter(|r| r.action != Action::Created)
            .cloned()
            .collect(),
        dependencies,
        warnings,
        results,
    })
}
async fn audit(
    store: &Store,
    report: &ImportReport,
    digest: &str,
    source: &Cipher,
    target: &Cipher,
    actor: &str,
) -> sqlx::Result<()> {
    let mut counts = serde_json::Map::new();
    for kind in EntityKind::ALL {
        let by_action: serde_json::Map<String, Value> = [
            Action::Created,
            Action::Updated,
            Action::Unchanged,
            Action::Skipped,
            Action::Renamed,
        ]
        .iter()
        .map(|a| {
            (
                serde_json::to_value(a)
                    .unwrap()
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                json!(report.count(kind, *a)),
            )
        })
        .collect();
        counts.insert(kind.plural().into(), Value::Object(by_action));
    }
    let details = json!({
        "file_sha256": digest,
        "strategy": report.strategy,
        "counts": counts,
        "skipped_by_selection": report.skipped_by_selection,
        "source_key": source.fingerprint(),
        "target_key": target.fingerprint(),
    });
    store
        .record_audit(NewAuditEntry {
            actor,
            action: "import",
            details: details.clone(),
            ..Default::default()
        })
        .await?;
    if report.rekeyed {
        store
            .record_audit(NewAuditEntry {
                actor,
                action: "rekey",
                details,
                ..Default::default()
            })
            .await?;
    }
    Ok(())
}
