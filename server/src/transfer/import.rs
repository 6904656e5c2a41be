//! Import: validate the whole file, then apply it in dependency order inside one
//! transaction — all of it or none of it. A dry run is the same import, rolled back.

use std::collections::{HashMap, HashSet};

pub use app::jobs::{Action, ConflictStrategy, EntityResult, FieldChange, ImportPreview};
use app::jobs::{PreviewItem, count_results};
use app::{
    entities::Entity,
    model::EntityKind,
    transfer::{EntitySet, parse_file},
    validation::FieldError,
};
use serde::Serialize;
use serde_json::{Value, json};

use super::{input::Input, selection::Include};
use crate::{
    crypto::Cipher,
    store::{
        Store,
        audit::NewAuditEntry,
        entities::{BATCH_ROWS, EntityError, StoreTx},
    },
};

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
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the file has {} problem(s)", .0.len())]
    Invalid(Vec<FieldError>),
    #[error("conflict: {0} (strategy fail: nothing was imported)")]
    Conflict(String),
    #[error("cancelled: nothing was imported")]
    Cancelled,
    #[error(transparent)]
    Store(#[from] EntityError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
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
        if self.skipped_by_selection == 0 && skipped == 0 {
            format!("{verb}: {}", parts.join(", "))
        } else {
            format!(
                "{verb} {} ({skipped} items skipped)",
                if parts.is_empty() {
                    "nothing".into()
                } else {
                    parts.join(", ")
                }
            )
        }
    }

    /// Per type: "Would update 3 existing tools, create 12 new tools" and the other outcomes.
    pub fn plan_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for kind in EntityKind::ALL {
            let phrases: Vec<String> = [
                (Action::Updated, "update", " existing"),
                (Action::Created, "create", " new"),
                (Action::Renamed, "rename", ""),
                (Action::Skipped, "skip", " existing"),
                (Action::Unchanged, "leave", " unchanged"),
            ]
            .iter()
            .filter_map(|(action, verb, adjective)| {
                let n = self.count(kind, *action);
                (n > 0).then(|| {
                    format!(
                        "{verb} {n}{adjective} {}",
                        if n == 1 {
                            kind.singular()
                        } else {
                            kind.plural()
                        }
                    )
                })
            })
            .collect();
            if !phrases.is_empty() {
                let lead = if self.dry_run { "Would " } else { "" };
                let mut line = format!("{lead}{}", phrases.join(", "));
                if !self.dry_run {
                    line = capitalise(
                        &line
                            .replace("update ", "updated ")
                            .replace("create ", "created ")
                            .replace("rename ", "renamed ")
                            .replace("skip ", "skipped ")
                            .replace("leave ", "left "),
                    );
                }
                lines.push(line);
            }
        }
        lines
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn plural(n: usize, kind: EntityKind) -> String {
    format!(
        "{n} {}",
        if n == 1 {
            kind.singular()
        } else {
            kind.plural()
        }
    )
}

/// A file that passed every check, ready to apply.
struct Prepared {
    set: EntitySet,
    skipped_by_selection: usize,
    warnings: Vec<FieldError>,
    rekeyed: bool,
}

/// Everything that can refuse a file before a transaction starts: the format and every
/// entity, the selection, the credentials (decryptable with the source key) and the
/// references (in the file or in the target).
async fn prepare(
    store: &Store,
    target: &Cipher,
    bytes: &[u8],
    options: &ImportOptions<'_>,
) -> Result<Prepared, ImportError> {
    let file = parse_file(bytes).map_err(ImportError::Invalid)?;
    let mut warnings = file.warnings;
    let (mut set, skipped_by_selection) = select(file.entities, options);
    let source = options.source.unwrap_or(target);
    rekey(&mut set, source, target)?;
    check_references(store, &set, &mut warnings).await?;
    Ok(Prepared {
        set,
        skipped_by_selection,
        warnings,
        rekeyed: source.fingerprint() != target.fingerprint(),
    })
}

/// Runs every check of [`import`] without opening a transaction; the warnings if the
/// file would be accepted.
pub async fn check(
    store: &Store,
    target: &Cipher,
    input: impl Into<Input>,
    options: &ImportOptions<'_>,
) -> Result<Vec<FieldError>, ImportError> {
    let input = input.into();
    Ok(prepare(store, target, input.bytes(), options)
        .await?
        .warnings)
}

/// Validates `bytes` and imports them; on any problem nothing is written.
pub async fn import(
    store: &Store,
    target: &Cipher,
    input: impl Into<Input>,
    options: &ImportOptions<'_>,
    actor: &str,
) -> Result<ImportReport, ImportError> {
    let input = input.into();
    let bytes = input.bytes();
    let prepared = prepare(store, target, bytes, options).await?;
    if let Some(observer) = options.observer {
        observer.started(prepared.set.total());
    }
    let mut tx = store.begin().await?;
    let mut run = Run {
        tx: &mut tx,
        target,
        strategy: options.strategy,
        observer: options.observer,
        results: Vec::new(),
        renamed: HashMap::new(),
        last_changes: Vec::new(),
    };
    let applied = run.apply(prepared.set).await;
    let results = std::mem::take(&mut run.results);
    match applied {
        Err(e) => {
            tx.rollback().await?;
            return Err(e);
        }
        Ok(()) if options.dry_run => tx.rollback().await?,
        Ok(()) => tx.commit().await?,
    }
    let report = ImportReport {
        dry_run: options.dry_run,
        strategy: options.strategy,
        results,
        skipped_by_selection: prepared.skipped_by_selection,
        warnings: prepared.warnings,
        rekeyed: prepared.rekeyed,
    };
    if !options.dry_run {
        let source = options.source.unwrap_or(target);
        audit(store, &report, bytes, source, target, actor).await?;
    }
    Ok(report)
}

/// What [`import`] would do with `bytes`: the import itself, rolled back, plus the
/// conflicts and the dependencies it would create.
pub async fn preview(
    store: &Store,
    target: &Cipher,
    input: impl Into<Input>,
    options: &ImportOptions<'_>,
) -> Result<ImportPreview, ImportError> {
    let input = input.into();
    let bytes = input.bytes();
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
    };
    let report = import(store, target, &input, &dry, "").await?;
    let servers = parse_file(bytes)
        .map(|f| f.entities.servers)
        .unwrap_or_default();
    let dependencies = report
        .results
        .iter()
        .filter(|r| r.action == Action::Created)
        .filter_map(|r| {
            let required_by: Vec<String> = servers
                .iter()
                .filter(|s| {
                    s.links()
                        .iter()
                        .any(|(k, keys)| *k == r.kind && keys.contains(&r.name))
                })
                .map(|s| s.key().to_owned())
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
        total: report.results.len(),
        counts: count_results(&report.results),
        conflicts: report
            .results
            .iter()
            .filter(|r| r.action != Action::Created)
            .cloned()
            .collect(),
        dependencies,
        results: report.results,
        warnings: report.warnings,
    })
}

/// Keeps what `--include` names plus what the named servers need; counts the rest.
fn select(set: EntitySet, options: &ImportOptions<'_>) -> (EntitySet, usize) {
    let (include, picked) = (options.include.as_ref(), options.picked.as_ref());
    if include.is_none() && picked.is_none() {
        return (set, 0);
    }
    let total = set.total();
    let mut wanted: HashSet<(EntityKind, String)> = set
        .entries()
        .into_iter()
        .filter(|(kind, key, name)| include.is_none_or(|i| i.matches(*kind, key, name)))
        .map(|(kind, key, _)| (kind, key))
        .filter(|entry| picked.is_none_or(|p| p.contains(entry)))
        .collect();
    let needed: Vec<(EntityKind, String)> = set
        .servers
        .iter()
        .filter(|s| wanted.contains(&(EntityKind::Server, s.key().to_owned())))
        .flat_map(|s| {
            s.links()
                .into_iter()
                .flat_map(|(kind, keys)| keys.iter().map(move |k| (kind, k.clone())))
        })
        .collect();
    wanted.extend(needed);
    let chosen = set.retain_keys(&wanted);
    let skipped = total - chosen.total();
    (chosen, skipped)
}

/// Re-encrypts every credential from the source key to the target key; a blob the
/// source key cannot open is an error naming its entity.
fn rekey(set: &mut EntitySet, source: &Cipher, target: &Cipher) -> Result<(), ImportError> {
    let mut errors = Vec::new();
    rekey_list(&mut set.tools, source, target, &mut errors);
    rekey_list(&mut set.gateways, source, target, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ImportError::Invalid(errors))
    }
}

fn rekey_list<E: Entity>(
    list: &mut [E],
    source: &Cipher,
    target: &Cipher,
    errors: &mut Vec<FieldError>,
) {
    let same_key = source.fingerprint() == target.fingerprint();
    for (i, entity) in list.iter_mut().enumerate() {
        let (kind, key) = (E::KIND.singular(), entity.key().to_owned());
        for (pointer, blob) in entity.blobs_mut() {
            match source.decrypt(blob) {
                Ok(_) if same_key => {}
                Ok(plain) => *blob = target.encrypt(&plain),
                Err(e) => errors.push(FieldError {
                    pointer: format!("/entities/{}/{i}{pointer}", E::KIND.plural()),
                    code: "undecryptable".into(),
                    message: format!("the credential of {kind} `{key}` {e}; pass the exporting gateway's secret with --source-secret"),
                }),
            }
        }
    }
}

/// Every server reference must name an entity in the file or in the target.
async fn check_references(
    store: &Store,
    set: &EntitySet,
    warnings: &mut Vec<FieldError>,
) -> Result<(), ImportError> {
    let in_file: HashSet<(EntityKind, &str)> = set
        .tools
        .iter()
        .map(|e| (EntityKind::Tool, e.key()))
        .chain(set.prompts.iter().map(|e| (EntityKind::Prompt, e.key())))
        .chain(
            set.resources
                .iter()
                .map(|e| (EntityKind::Resource, e.key())),
        )
        .collect();
    // What the file lacks must be in the target: one query per type and chunk of keys.
    let mut in_target: HashSet<(EntityKind, String)> = HashSet::new();
    for kind in [EntityKind::Tool, EntityKind::Prompt, EntityKind::Resource] {
        let outside: HashSet<&str> = set
            .servers
            .iter()
            .flat_map(|s| s.links())
            .filter(|(k, _)| *k == kind)
            .flat_map(|(_, keys)| keys.iter().map(String::as_str))
            .filter(|key| !in_file.contains(&(kind, *key)))
            .collect();
        if !outside.is_empty() {
            let outside: Vec<&str> = outside.into_iter().collect();
            let found = store.existing_keys(kind, &outside).await?;
            in_target.extend(found.into_iter().map(|key| (kind, key)));
        }
    }
    let mut errors = Vec::new();
    for (i, server) in set.servers.iter().enumerate() {
        for (kind, keys) in server.links() {
            let field = match kind {
                EntityKind::Tool => "tool_ids",
                EntityKind::Prompt => "prompt_ids",
                _ => "resource_ids",
            };
            for (j, key) in keys.iter().enumerate() {
                if in_file.contains(&(kind, key.as_str()))
                    || in_target.contains(&(kind, key.clone()))
                {
                    continue;
                }
                errors.push(FieldError {
                    pointer: format!("/entities/servers/{i}/{field}/{j}"),
                    code: "unknown_reference".into(),
                    message: format!(
                        "no {} `{key}` in the file or in this gateway",
                        kind.singular()
                    ),
                });
            }
        }
    }
    warnings.retain(|w| w.code != "external_reference");
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ImportError::Invalid(errors))
    }
}

struct Run<'t> {
    tx: &'t mut StoreTx,
    target: &'t Cipher,
    strategy: ConflictStrategy,
    observer: Option<&'t dyn Observer>,
    results: Vec<EntityResult>,
    /// Keys given a new name by the rename strategy, so servers follow them.
    renamed: HashMap<(EntityKind, String), String>,
    /// The field changes of the entity being recorded.
    last_changes: Vec<FieldChange>,
}

impl Run<'_> {
    /// Dependency order: what servers link to comes first.
    async fn apply(&mut self, set: EntitySet) -> Result<(), ImportError> {
        self.all(set.tools).await?;
        self.all(set.gateways).await?;
        self.all(set.roots).await?;
        self.all(set.prompts).await?;
        self.all(set.resources).await?;
        let mut servers = set.servers;
        for server in &mut servers {
            for (kind, keys) in server.take_links() {
                let keys = keys
                    .into_iter()
                    .map(|k| self.renamed.get(&(kind, k.clone())).cloned().unwrap_or(k))
                    .collect();
                server.set_links(kind, keys);
            }
        }
        self.all(servers).await
    }

    /// Applies a list in batches of [`BATCH_ROWS`]: one query reads the stored versions,
    /// multi-row statements write the batch; cancellation is asked before each batch.
    async fn all<E: Entity>(&mut self, list: Vec<E>) -> Result<(), ImportError> {
        // A renamed entity never takes a key the file gives another entity of its type.
        let mut taken: HashSet<String> = list.iter().map(|e| e.key().to_owned()).collect();
        let mut list = list.into_iter();
        loop {
            let batch: Vec<E> = list.by_ref().take(BATCH_ROWS).collect();
            if batch.is_empty() {
                return Ok(());
            }
            if self.observer.is_some_and(|o| o.cancelled()) {
                return Err(ImportError::Cancelled);
            }
            let first = self.results.len();
            self.batch(batch, &mut taken).await?;
            if let Some(observer) = self.observer {
                self.results[first..]
                    .iter()
                    .for_each(|r| observer.applied(r));
            }
        }
    }

    async fn batch<E: Entity>(
        &mut self,
        batch: Vec<E>,
        taken: &mut HashSet<String>,
    ) -> Result<(), ImportError> {
        let keys: Vec<&str> = batch.iter().map(|e| e.key()).collect();
        let mut stored = self.tx.entities_by_keys::<E>(&keys).await?;
        let (mut inserts, mut updates, mut renames) = (Vec::new(), Vec::new(), Vec::new());
        for mut entity in batch {
            let key = entity.key().to_owned();
            let Some(existing) = stored.remove(&key) else {
                stamp_new(&mut entity);
                inserts.push(entity);
                self.record::<E>(key, Action::Created, Vec::new());
                continue;
            };
            keep_equal_credentials(&mut entity, &existing, self.target);
            let changes = changes(&entity, &existing);
            let changed: Vec<String> = changes.iter().map(|c| c.field.clone()).collect();
            let action = match (changed.is_empty(), self.strategy) {
                (true, _) => Action::Unchanged,
                (false, ConflictStrategy::Skip) => Action::Skipped,
                (false, ConflictStrategy::Fail) => {
                    return Err(ImportError::Conflict(format!(
                        "{} `{key}` already exists and differs in {}",
                        E::KIND.singular(),
                        changed.join(", ")
                    )));
                }
                (false, ConflictStrategy::Update) => {
                    let (created, _) = existing.timestamps();
                    let now = app::entities::Timestamp(crate::store::now());
                    entity.set_timestamps(created.unwrap_or(now), now);
                    entity.set_id(existing.id());
                    updates.push(entity);
                    Action::Updated
                }
                (false, ConflictStrategy::Rename) => {
                    stamp_new(&mut entity);
                    renames.push((self.results.len(), inserts.len()));
                    inserts.push(entity);
                    Action::Renamed
                }
            };
            self.last_changes = changes;
            self.record::<E>(key, action, changed);
        }
        if !renames.is_empty() {
            let keys: Vec<String> = renames
                .iter()
                .map(|(result, _)| self.results[*result].name.clone())
                .collect();
            let new_keys = self.free_keys(E::KIND, &keys, taken).await?;
            for ((result, insert), new_key) in renames.into_iter().zip(new_keys) {
                rename(&mut inserts[insert], &new_key);
                let old_key = self.results[result].name.clone();
                self.renamed.insert((E::KIND, old_key), new_key.clone());
                self.results[result].new_name = Some(new_key);
            }
        }
        self.tx.write_entities(&inserts, false).await?;
        self.tx.write_entities(&updates, true).await?;
        Ok(())
    }

    /// For each key, the first of `KEY-imported`, `KEY-imported-2`, … that neither the
    /// target nor `taken` holds (and adds it to `taken`): one query per round of suffixes.
    async fn free_keys(
        &mut self,
        kind: EntityKind,
        keys: &[String],
        taken: &mut HashSet<String>,
    ) -> Result<Vec<String>, ImportError> {
        let candidate = |key: &str, n: usize| match n {
            1 => format!("{key}-imported"),
            n => format!("{key}-imported-{n}"),
        };
        let mut free: Vec<Option<String>> = vec![None; keys.len()];
        let mut suffix = vec![1; keys.len()];
        loop {
            let open: Vec<usize> = (0..keys.len()).filter(|i| free[*i].is_none()).collect();
            if open.is_empty() {
                return Ok(free.into_iter().flatten().collect());
            }
            let candidates: Vec<String> = open
                .iter()
                .map(|i| candidate(&keys[*i], suffix[*i]))
                .collect();
            let refs: Vec<&str> = candidates.iter().map(String::as_str).collect();
            let stored = self.tx.ids_by_keys(kind, &refs).await?;
            for (i, name) in open.into_iter().zip(candidates) {
                if stored.contains_key(&name) || taken.contains(&name) {
                    suffix[i] += 1;
                } else {
                    taken.insert(name.clone());
                    free[i] = Some(name);
                }
            }
        }
    }

    fn record<E: Entity>(&mut self, name: String, action: Action, changed_fields: Vec<String>) {
        let changes = std::mem::take(&mut self.last_changes);
        self.results.push(EntityResult {
            kind: E::KIND,
            name,
            action,
            new_name: None,
            changed_fields,
            changes,
        });
    }
}

/// A new row's id, and its timestamps unless the record has them.
fn stamp_new<E: Entity>(entity: &mut E) {
    let now = app::entities::Timestamp(crate::store::now());
    let (created, updated) = entity.timestamps();
    entity.set_timestamps(created.unwrap_or(now), updated.unwrap_or(now));
    entity.set_id(Some(uuid::Uuid::new_v4()));
}

/// When an imported credential decrypts to the stored one, keep the stored blob (a
/// re-encryption alone is no change).
fn keep_equal_credentials<E: Entity>(entity: &mut E, existing: &E, target: &Cipher) {
    let mut entity_blobs = entity.blobs_mut();
    if entity_blobs.is_empty() {
        return;
    }
    let mut existing = existing.clone();
    let stored: HashMap<String, &mut String> = existing.blobs_mut().into_iter().collect();
    for (pointer, blob) in &mut entity_blobs {
        let Some(old) = stored.get(pointer.as_str()) else {
            continue;
        };
        if **blob != **old
            && matches!((target.decrypt(blob), target.decrypt(old)), (Ok(a), Ok(b)) if a == b)
        {
            **blob = (**old).clone();
        }
    }
}

/// The top-level fields that differ, ignoring ids and timestamps; credentials are
/// never shown, only said to have changed.
fn changes<E: Entity>(new: &E, old: &E) -> Vec<FieldChange> {
    let comparable = |e: &E| match serde_json::to_value(e) {
        Ok(Value::Object(mut m)) => {
            for k in ["id", "created_at", "updated_at"] {
                m.remove(k);
            }
            m
        }
        _ => serde_json::Map::new(),
    };
    let (after, before) = (comparable(new), comparable(old));
    let mut fields: Vec<&String> = after.keys().chain(before.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter(|f| after.get(*f) != before.get(*f))
        .map(|f| {
            let secret = matches!(f.as_str(), "auth_value" | "auth_query_params");
            let shown = |v: Option<&Value>| match v {
                Some(_) if secret => Value::String("<secret>".into()),
                v => v.cloned().unwrap_or(Value::Null),
            };
            let mut after_value = shown(after.get(f));
            if secret && after.contains_key(f) {
                after_value = Value::String("<changed>".into());
            }
            FieldChange {
                field: f.clone(),
                before: shown(before.get(f)),
                after: after_value,
            }
        })
        .collect()
}

/// Gives an entity a new key (its name, or its URI for resources and roots).
fn rename<E: Entity>(entity: &mut E, new_key: &str) {
    let field = if matches!(E::KIND, EntityKind::Resource | EntityKind::Root) {
        "uri"
    } else {
        "name"
    };
    let mut value = serde_json::to_value(&*entity).unwrap_or(Value::Null);
    value[field] = Value::String(new_key.to_owned());
    if let Ok(renamed) = serde_json::from_value::<E>(value) {
        *entity = renamed;
    }
}

async fn audit(
    store: &Store,
    report: &ImportReport,
    bytes: &[u8],
    source: &Cipher,
    target: &Cipher,
    actor: &str,
) -> sqlx::Result<()> {
    let digest = crate::crypto::sha256_hex(bytes);
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
