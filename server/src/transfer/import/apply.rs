//! The writing half of an import: batches from the parsing half applied inside the
//! import's one transaction — one query reads the stored versions of a batch, multi-row
//! statements write it.

use std::{
    collections::{HashMap, HashSet},
    sync::atomic::{AtomicBool, Ordering},
};

use app::{
    entities::{Entity, Gateway, keys::fold_key, same_record},
    jobs::{Action, ConflictStrategy, EntityResult, FieldChange},
    model::EntityKind,
    transfer::EntitySet,
    validation::{Code, FieldError, Problems},
};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{
    ImportError, Observer,
    parse::{Message, Selected},
    placeholders,
};
use crate::{crypto::Cipher, store::entities::StoreTx};

/// What a run found, at its end.
pub struct Finished {
    pub results: Vec<EntityResult>,
    /// Links that name nothing (the file is refused).
    pub errors: Problems,
    /// With `fail`: the entities that exist and differ.
    pub conflicts: Vec<FieldError>,
    /// Links left out by `--allow-missing-links`, as warnings.
    pub dropped: Vec<FieldError>,
}

/// What a server's links may name besides the file's entities.
#[derive(Clone, Copy)]
pub struct Links<'t> {
    /// Keys the servers name that the file lacks, found in the target.
    pub in_target: &'t HashSet<(EntityKind, String)>,
    /// Links to nothing left out instead of refused (`--allow-missing-links`).
    pub drop_missing_links: bool,
    /// The gateways (file and target) whose items servers may link before discovery.
    pub gateways: &'t placeholders::GatewaySlugs,
}

pub struct Run<'t> {
    /// `None` checks only: batches are not written.
    tx: Option<&'t mut StoreTx>,
    target: &'t Cipher,
    strategy: ConflictStrategy,
    observer: Option<&'t dyn Observer>,
    selected: &'t Selected,
    /// Keys the servers name that the file lacks, found in the target.
    in_target: &'t HashSet<(EntityKind, String)>,
    results: Vec<EntityResult>,
    /// Problems found while applying: references that name nothing.
    errors: Problems,
    /// With `fail`: every entity that exists and differs (the import goes on to find
    /// them all, and is rolled back).
    conflicts: Vec<FieldError>,
    /// Links to nothing left out instead of refused (`--allow-missing-links`).
    drop_missing_links: bool,
    /// Each link so left out.
    dropped: Vec<FieldError>,
    /// Keys given a new name by the rename strategy, so servers follow them.
    renamed: HashMap<(EntityKind, String), String>,
    /// New keys chosen by the rename strategy so far.
    taken: HashSet<(EntityKind, String)>,
    /// The field changes of the entity being recorded.
    last_changes: Vec<FieldChange>,
    /// The gateways (file and target) whose items servers may link before discovery.
    gateways: &'t placeholders::GatewaySlugs,
    /// Links of the servers being applied kept by placeholders (see [`placeholders`]).
    pending: Vec<placeholders::Pending>,
}

impl<'t> Run<'t> {
    pub fn new(
        tx: Option<&'t mut StoreTx>,
        target: &'t Cipher,
        strategy: ConflictStrategy,
        observer: Option<&'t dyn Observer>,
        selected: &'t Selected,
        links: Links<'t>,
    ) -> Run<'t> {
        let Links {
            in_target,
            drop_missing_links,
            gateways,
        } = links;
        Run {
            tx,
            target,
            strategy,
            observer,
            selected,
            in_target,
            results: Vec::new(),
            errors: Problems::default(),
            conflicts: Vec::new(),
            drop_missing_links,
            dropped: Vec::new(),
            renamed: HashMap::new(),
            taken: HashSet::new(),
            last_changes: Vec::new(),
            gateways,
            pending: Vec::new(),
        }
    }

    /// Applies every batch the parsing half sends; after a failure the rest are only
    /// received (the parsing half still lists every problem of the file) and `stop`
    /// tells it to send no more. The failure, if any.
    pub async fn apply_all(
        &mut self,
        batches: &mut mpsc::Receiver<Message>,
        stop: &AtomicBool,
    ) -> Option<ImportError> {
        let mut failure = None;
        while let Some(message) = batches.recv().await {
            let Message::Batch(set, positions) = message else {
                continue;
            };
            if failure.is_some() || !self.errors.is_empty() {
                continue;
            }
            if let Err(e) = self.apply(set, positions).await {
                failure = Some(e);
                stop.store(true, Ordering::Relaxed);
            }
        }
        failure
    }

    /// The results so far, and the problems found while applying.
    pub fn finish(self) -> Finished {
        Finished {
            results: self.results,
            errors: self.errors,
            conflicts: self.conflicts,
            dropped: self.dropped,
        }
    }

    /// One batch from the parsing half (entities of one type, with their positions in
    /// the file); cancellation is asked before it.
    pub async fn apply(
        &mut self,
        set: EntitySet,
        positions: Vec<usize>,
    ) -> Result<(), ImportError> {
        if self.observer.is_some_and(|o| o.cancelled()) {
            return Err(ImportError::Cancelled);
        }
        let first = self.results.len();
        // A batch holds one type: `positions` are its entities' places in the file.
        self.batch(set.tools, &positions).await?;
        self.batch(set.gateways, &positions).await?;
        self.batch(set.roots, &positions).await?;
        self.batch(set.prompts, &positions).await?;
        self.batch(set.resources, &positions).await?;
        if !set.servers.is_empty() {
            let servers = self.linked(set.servers, &positions);
            if !self.errors.is_empty() {
                return Ok(());
            }
            if self.tx.is_some() {
                let pending = std::mem::take(&mut self.pending);
                let made = placeholders::write(self.tx(), pending).await?;
                self.dropped.extend(made);
            }
            self.batch(servers, &positions).await?;
        }
        if let Some(observer) = self.observer {
            self.results[first..]
                .iter()
                .for_each(|r| observer.applied(r));
        }
        Ok(())
    }

    /// The servers with their links following renamed keys; a link naming neither an
    /// entity of the file nor one of the target is an error.
    fn linked(
        &mut self,
        mut servers: Vec<app::entities::Server>,
        positions: &[usize],
    ) -> Vec<app::entities::Server> {
        for (server, index) in servers.iter_mut().zip(positions) {
            for (kind, keys) in server.take_links() {
                let keys = self.check_links(kind, keys, *index);
                let keys = keys
                    .into_iter()
                    .map(|k| self.renamed.get(&(kind, k.clone())).cloned().unwrap_or(k))
                    .collect();
                server.set_links(kind, keys);
            }
        }
        servers
    }

    fn tx(&mut self) -> &mut StoreTx {
        self.tx
            .as_deref_mut()
            .expect("only a run with a transaction writes")
    }

    /// The links that name an entity of the file or of this gateway; each other one is
    /// an error, or with `--allow-missing-links` left out with a warning.
    fn check_links(&mut self, kind: EntityKind, keys: Vec<String>, index: usize) -> Vec<String> {
        let field = kind.link_field();
        let mut kept = Vec::with_capacity(keys.len());
        for (j, key) in keys.into_iter().enumerate() {
            if self.selected.skim.contains(kind, &key)
                || self.in_target.contains(&(kind, key.clone()))
            {
                kept.push(key);
                continue;
            }
            let pointer = format!("/entities/servers/{index}/{field}/{j}");
            if let Some(gateway) = self.gateways.gateway_of(kind, &key) {
                self.pending.push((kind, key.clone(), gateway, pointer));
                kept.push(key);
                continue;
            }
            let what = format!(
                "no {} `{key}` in the file or in this gateway",
                kind.singular()
            );
            if self.drop_missing_links {
                self.dropped.push(FieldError {
                    pointer,
                    code: Code::MissingLinkDropped,
                    message: format!("{what}: the link is left out (--allow-missing-links)"),
                });
            } else {
                self.errors.push(FieldError {
                    pointer,
                    code: Code::UnknownReference,
                    message: what,
                });
            }
        }
        kept
    }

    async fn batch<E: Entity>(
        &mut self,
        batch: Vec<E>,
        positions: &[usize],
    ) -> Result<(), ImportError> {
        if batch.is_empty() || self.tx.is_none() {
            return Ok(());
        }
        let batch = self.attributed(batch, positions).await?;
        let keys: Vec<&str> = batch.iter().map(|e| e.key()).collect();
        let mut stored = self.tx().entities_by_keys::<E>(&keys).await?;
        let (mut inserts, mut updates, mut renames) = (Vec::new(), Vec::new(), Vec::new());
        for (mut entity, position) in batch.into_iter().zip(positions) {
            let key = entity.key().to_owned();
            // A stored name differing only in case is the same entity (see `fold_key`).
            let Some(mut existing) = stored.remove(&*fold_key(E::KIND, &key)) else {
                stamp_new(&mut entity);
                inserts.push(entity);
                self.record::<E>(key, Action::Created, Vec::new());
                continue;
            };
            if let Some(origin) = existing.federation() {
                // The gateway's discovery owns it: a file's copy of it changes nothing,
                // and a local record may not take its place.
                let same_gateway = entity
                    .federation()
                    .is_some_and(|o| o.gateway_id == origin.gateway_id);
                if !same_gateway && self.strategy == ConflictStrategy::Update {
                    let field = if E::KIND == EntityKind::Resource {
                        "uri"
                    } else {
                        "name"
                    };
                    self.errors.push(FieldError {
                        pointer: format!("/entities/{}/{position}/{field}", E::KIND.plural()),
                        code: Code::Federated,
                        message: origin.refusal(),
                    });
                    continue;
                }
                if same_gateway {
                    self.record::<E>(key, Action::Unchanged, Vec::new());
                    continue;
                }
            }
            keep_equal_credentials(&mut entity, &mut existing, self.target);
            // Equal records need no field-by-field comparison (the common re-import).
            let changes = if same_record(&mut entity, &mut existing) {
                Vec::new()
            } else {
                changes(&entity, &existing)
            };
            let changed: Vec<String> = changes.iter().map(|c| c.field.clone()).collect();
            let action = match (changed.is_empty(), self.strategy) {
                (true, _) => Action::Unchanged,
                (false, ConflictStrategy::Skip) => Action::Skipped,
                (false, ConflictStrategy::Fail) => {
                    self.conflicts.push(FieldError {
                        pointer: format!("/entities/{}/{position}", E::KIND.plural()),
                        code: Code::Conflict,
                        message: format!(
                            "{} `{key}` already exists and differs in {}",
                            E::KIND.singular(),
                            changed.join(", ")
                        ),
                    });
                    continue;
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
            let new_keys = self.free_keys(E::KIND, &keys).await?;
            for ((result, insert), new_key) in renames.into_iter().zip(new_keys) {
                inserts[insert].set_key(new_key.clone());
                let old_key = self.results[result].name.clone();
                self.renamed.insert((E::KIND, old_key), new_key.clone());
                self.results[result].new_name = Some(new_key);
            }
        }
        self.tx().write_entities(inserts, false).await?;
        self.tx().write_entities(updates, true).await?;
        Ok(())
    }

    /// The batch with the gateways of its attributed items (see
    /// `app::transfer::discovered`) found by name, in the file or the target: written
    /// before (gateways come before prompts and resources in ContextForge's files). An
    /// item whose gateway is in neither is read as local, with a warning.
    async fn attributed<E: Entity>(
        &mut self,
        mut batch: Vec<E>,
        positions: &[usize],
    ) -> Result<Vec<E>, ImportError> {
        let names: Vec<String> = batch
            .iter()
            .filter_map(|e| e.federation().map(|o| o.gateway.clone()))
            .collect();
        if names.is_empty() {
            return Ok(batch);
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let gateways = self.tx().entities_by_keys::<Gateway>(&refs).await?;
        for (entity, position) in batch.iter_mut().zip(positions) {
            let Some(origin) = entity.federation() else {
                continue;
            };
            let found = gateways.get(fold_key(EntityKind::Gateway, &origin.gateway).as_ref());
            match found.and_then(|g| g.id.map(|id| (id, g.name().to_owned()))) {
                Some((gateway_id, gateway)) => {
                    let mut origin = origin.clone();
                    (origin.gateway_id, origin.gateway) = (gateway_id, gateway);
                    entity.set_federation(Some(origin));
                }
                None => {
                    self.dropped.push(FieldError {
                        pointer: format!("/entities/{}/{position}", E::KIND.plural()),
                        code: Code::AttributedToGateway,
                        message: format!(
                            "gateway `{}` is neither in the file nor here: imported as local",
                            origin.gateway
                        ),
                    });
                    entity.set_federation(None);
                }
            }
        }
        Ok(batch)
    }

    /// For each key, the first of `KEY-imported`, `KEY-imported-2`, … that neither the
    /// target, nor the file, nor an earlier rename holds: one query per round of suffixes.
    async fn free_keys(
        &mut self,
        kind: EntityKind,
        keys: &[String],
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
            let stored = self.tx().ids_by_keys(kind, &refs).await?;
            for (i, name) in open.into_iter().zip(candidates) {
                let in_file = self.selected.skim.contains(kind, &name);
                if stored.contains_key(&name)
                    || in_file
                    || self.taken.contains(&(kind, name.clone()))
                {
                    suffix[i] += 1;
                } else {
                    self.taken.insert((kind, name.clone()));
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
    entity.set_id(Some(crate::store::entities::new_entity_id()));
}

/// When an imported credential decrypts to the stored one, keep the stored blob (a
/// re-encryption alone is no change).
fn keep_equal_credentials<E: Entity>(entity: &mut E, existing: &mut E, target: &Cipher) {
    let mut entity_blobs = entity.blobs_mut();
    if entity_blobs.is_empty() {
        return;
    }
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

/// Headers as a change shows them: encrypted ones as `*****`, or `<changed>` when they
/// differ from `before`'s (pass the same headers twice for the old side).
fn shown_headers(headers: Option<&Value>, before: Option<&Value>) -> Value {
    let Some(Value::Object(headers)) = headers else {
        return headers.cloned().unwrap_or(Value::Null);
    };
    let shown = headers.iter().map(|(name, value)| {
        let value = if !app::entities::tool::is_envelope(value) {
            value.clone()
        } else if before.and_then(|b| b.get(name)) == Some(value) {
            Value::String(app::entities::tool::MASK.into())
        } else {
            Value::String("<changed>".into())
        };
        (name.clone(), value)
    });
    Value::Object(shown.collect())
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
            if f == "headers" {
                return FieldChange {
                    field: f.clone(),
                    before: shown_headers(before.get(f), before.get(f)),
                    after: shown_headers(after.get(f), before.get(f)),
                };
            }
            let secret = E::SECRET_FIELDS.contains(&f.as_str());
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
