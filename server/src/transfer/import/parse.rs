//! The parsing half of an import, on a thread of its own: skim the file, settle the
//! selection, then read and validate it entity by entity, re-encrypt credentials, and
//! send the entities on in batches while the other half writes the ones before.
//!
//! Memory stays flat: the file is mapped and let go behind the reader; what is held is
//! the skim (keys and links) and the batches in flight.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use app::{
    entities::Entity,
    model::EntityKind,
    transfer::{EntitySet, Head, Sink, Skim, file_text, read_file, skim},
    validation::{Code, FieldError, Problems},
};
use tokio::sync::mpsc;

use super::super::{input::Input, selection::Include};
use crate::{crypto::Cipher, store::entities::BATCH_ROWS};

/// Servers are read after what they link to: the writes follow dependency order.
pub const PASSES: [&[EntityKind]; 2] = [
    &[
        EntityKind::Tool,
        EntityKind::Gateway,
        EntityKind::Root,
        EntityKind::Prompt,
        EntityKind::Resource,
    ],
    &[EntityKind::Server],
];

/// An entity kind's place in the order the passes write: what servers link to first.
pub fn dependency_rank(kind: EntityKind) -> usize {
    PASSES
        .iter()
        .flat_map(|kinds| kinds.iter())
        .position(|k| *k == kind)
        .unwrap_or(usize::MAX)
}

/// What the parsing half needs (all owned: it runs on another thread).
pub struct Plan {
    pub input: Input,
    pub include: Option<Include>,
    pub picked: Option<HashSet<(EntityKind, String)>>,
    pub source: Cipher,
    pub target: Cipher,
    /// Set by the writing half when it stops early: no more batches are wanted.
    pub stop: Arc<AtomicBool>,
}

/// What the parsing half tells the writing half, in this order.
pub enum Message {
    /// The file has been skimmed: what it holds, and what the selection keeps.
    Skimmed(Arc<Selected>),
    /// Valid, selected entities of one type with their positions in the file.
    Batch(EntitySet, Vec<usize>),
}

/// The skim and the selection settled on it.
pub struct Selected {
    pub skim: Skim,
    /// The (type, key) pairs the selection keeps; `None` keeps all.
    pub wanted: Option<HashSet<(EntityKind, String)>>,
    /// The entities that will be applied.
    pub total: usize,
    /// Entities of the file left out by the selection.
    pub skipped: usize,
    /// `--include` items that match no entity of the file, as warnings.
    pub unmatched: Vec<FieldError>,
}

/// How the read ended: the file's head, or every problem of the file.
pub type Parsed = Result<Head, Problems>;

/// Runs the parsing half; messages go to `out` until the writing half hangs up.
pub fn parse(plan: &Plan, out: mpsc::Sender<Message>) -> Parsed {
    let input = &plan.input;
    let text = file_text(input.bytes(), &mut |offset| input.release_before(offset))
        .map_err(Problems::from)?;
    let skimmed = skim(text, &mut |offset| input.release_before(offset));
    let selected = Arc::new(select(skimmed, plan));
    let _ = out.blocking_send(Message::Skimmed(selected.clone()));
    let mut batcher = Batcher {
        plan,
        selected: &selected,
        out,
        pending: EntitySet::default(),
        positions: Vec::new(),
        kind: None,
        errors: Problems::default(),
    };
    let head = read_file(text, &selected.skim, &PASSES, &mut batcher);
    batcher.flush();
    match head {
        Err(errors) => Err(errors),
        Ok(_) if !batcher.errors.is_empty() => Err(std::mem::take(&mut batcher.errors)),
        Ok(head) => Ok(head),
    }
}

/// Keeps what `--include` or the picked entities name, plus what the chosen servers need.
fn select(skim: Skim, plan: &Plan) -> Selected {
    let total = skim.total();
    let (include, picked) = (plan.include.as_ref(), plan.picked.as_ref());
    if include.is_none() && picked.is_none() {
        return Selected {
            skim,
            wanted: None,
            total,
            skipped: 0,
            unmatched: Vec::new(),
        };
    }
    let unmatched = include.map_or_else(Vec::new, |i| unmatched(i, &skim));
    let mut wanted: HashSet<(EntityKind, String)> = HashSet::new();
    for kind in EntityKind::ALL {
        for key in skim.keys(kind) {
            let chosen = include.is_none_or(|i| i.matches(kind, key, skim.name(kind, key)))
                && picked.is_none_or(|p| p.contains(&(kind, key.to_owned())));
            if chosen {
                wanted.insert((kind, key.to_owned()));
            }
        }
    }
    let needed: Vec<(EntityKind, String)> = skim
        .servers()
        .iter()
        .filter(|s| wanted.contains(&(EntityKind::Server, s.key.to_string())))
        .flat_map(|s| s.links.iter())
        .flat_map(|(kind, keys)| keys.iter().map(|k| (*kind, k.clone())))
        .filter(|(kind, key)| skim.contains(*kind, key))
        .collect();
    wanted.extend(needed);
    let kept = wanted.len();
    Selected {
        skim,
        wanted: Some(wanted),
        total: kept,
        skipped: total - kept,
        unmatched,
    }
}

/// A warning per `--include` item that names nothing in the file.
fn unmatched(include: &Include, skim: &Skim) -> Vec<FieldError> {
    let entities = EntityKind::ALL.into_iter().flat_map(|kind| {
        skim.keys(kind)
            .map(move |key| (kind, key, skim.name(kind, key)))
    });
    include
        .unmatched(entities)
        .into_iter()
        .map(|item| FieldError {
            pointer: "/include".into(),
            code: Code::MatchesNothing,
            message: format!("--include `{item}` matches no entity of the file"),
        })
        .collect()
}

/// The [`Sink`] of an import: selection, re-encryption, batches.
struct Batcher<'a> {
    plan: &'a Plan,
    selected: &'a Selected,
    out: mpsc::Sender<Message>,
    pending: EntitySet,
    positions: Vec<usize>,
    kind: Option<EntityKind>,
    /// Credentials the source key cannot open.
    errors: Problems,
}

impl Batcher<'_> {
    fn flush(&mut self) {
        if self.positions.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let positions = std::mem::take(&mut self.positions);
        let stopped = self.plan.stop.load(Ordering::Relaxed);
        if stopped
            || self
                .out
                .blocking_send(Message::Batch(batch, positions))
                .is_err()
        {
            self.plan.stop.store(true, Ordering::Relaxed);
        }
    }

    fn sending(&self) -> bool {
        self.errors.is_empty() && !self.plan.stop.load(Ordering::Relaxed)
    }
}

impl Sink for Batcher<'_> {
    fn entity<E: Entity>(&mut self, index: usize, mut entity: E) {
        let wanted = self.selected.wanted.as_ref();
        if wanted.is_some_and(|w| !w.contains(&(E::KIND, entity.key().to_owned()))) {
            return;
        }
        rekey(&mut entity, index, self.plan, &mut self.errors);
        // Sensitive headers a file gives in plaintext are stored encrypted, like REST's.
        crate::entities::headers::seal_plain_headers(&self.plan.target, &mut entity);
        if !self.sending() {
            return;
        }
        if self.kind != Some(E::KIND) || self.positions.len() >= BATCH_ROWS {
            self.flush();
            self.kind = Some(E::KIND);
        }
        self.pending.list_mut::<E>().push(entity);
        self.positions.push(index);
    }

    fn read_to(&mut self, offset: usize) {
        self.plan.input.release_before(offset);
    }
}

/// Re-encrypts every credential from the source key to the target key; a blob the
/// source key cannot open is an error naming its entity.
fn rekey<E: Entity>(entity: &mut E, index: usize, plan: &Plan, errors: &mut Problems) {
    let same_key = plan.source.fingerprint() == plan.target.fingerprint();
    let (kind, key) = (E::KIND.singular(), entity.key().to_owned());
    for (pointer, blob) in entity.blobs_mut() {
        match plan.source.decrypt(blob) {
            Ok(_) if same_key => {}
            Ok(plain) => *blob = plan.target.encrypt(&plain),
            Err(e) => errors.push(FieldError {
                pointer: format!("/entities/{}/{index}{pointer}", E::KIND.plural()),
                code: Code::Undecryptable,
                message: format!("the credential of {kind} `{key}` {e}; give the exporting gateway's secret as the source secret"),
            }),
        }
    }
}
