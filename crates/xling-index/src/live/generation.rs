//! [`Generation`]: one immutable base index plus what was written since (a [`Delta`] and the
//! base slots deleted or replaced, the tombstones), searched as one.

use std::collections::BTreeMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::delta::Delta;
use super::wal::Op;
use crate::backend::{Backend, BackendInfo, EmbeddedBackend, Found, Query};
use crate::corpus::Passage;
use crate::error::IndexError;
use crate::slots::SlotSet;

/// What a generation holds beyond its base.
#[derive(Debug)]
pub(crate) struct Writes {
    pub(crate) delta: Delta,
    pub(crate) tombstones: SlotSet,
    /// Live passages per language: the base's, less tombstones, plus the delta's.
    languages: BTreeMap<String, usize>,
}

/// A base index and the writes applied on top of it since it was loaded.
pub(crate) struct Generation {
    pub(crate) base: EmbeddedBackend,
    writes: RwLock<Writes>,
}

/// How many passages one applied [`Op`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Applied {
    pub(crate) changed: usize,
}

impl Generation {
    pub(crate) fn new(base: EmbeddedBackend) -> Generation {
        let writes = Writes {
            delta: Delta::new(base.index().dim()),
            tombstones: SlotSet::new(),
            languages: base.index().language_counts(),
        };
        Generation {
            base,
            writes: RwLock::new(writes),
        }
    }

    pub(crate) fn writes(&self) -> RwLockReadGuard<'_, Writes> {
        self.writes.read().unwrap_or_else(|e| e.into_inner())
    }

    fn writes_mut(&self) -> RwLockWriteGuard<'_, Writes> {
        self.writes.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one logged write: all of it, under one write lock, so a search sees all or none.
    pub(crate) fn apply(&self, op: &Op) -> Applied {
        let index = self.base.index();
        let mut w = self.writes_mut();
        let w = &mut *w;
        let mut changed = 0;
        match op {
            Op::Upsert { passages, vectors } => {
                let dim = index.dim();
                for (passage, vector) in passages.iter().zip(vectors.chunks_exact(dim)) {
                    let replaced = match w.delta.put(passage.clone(), vector) {
                        Some(old) => Some(old.language),
                        None => bury(index, &mut w.tombstones, &passage.id),
                    };
                    if let Some(language) = replaced {
                        decrement(&mut w.languages, &language);
                    }
                    *w.languages.entry(passage.language.clone()).or_default() += 1;
                    changed += 1;
                }
            }
            Op::Delete { ids } => {
                for id in ids {
                    // An id in the delta has its base slot (if any) buried already.
                    let gone = match w.delta.remove(id) {
                        Some(old) => Some(old.language),
                        None => bury(index, &mut w.tombstones, id),
                    };
                    if let Some(language) = gone {
                        decrement(&mut w.languages, &language);
                        changed += 1;
                    }
                }
            }
        }
        Applied { changed }
    }

    /// Base hits with tombstones skipped inside the walk, merged with an exact scan of the
    /// delta. Ids never repeat: an upserted id's base slot is a tombstone.
    pub(crate) fn search(&self, q: &Query<'_>) -> Result<Vec<Found>, IndexError> {
        let index = self.base.index();
        let w = self.writes();
        let hits = index.search_filtered(q.vector, q.k, q.ef, q.languages, Some(&w.tombstones))?;
        let mut found: Vec<Found> = hits
            .into_iter()
            .filter_map(|hit| {
                Some(Found {
                    passage: index.passage(hit.slot)?,
                    score: hit.score,
                })
            })
            .collect();
        found.extend(w.delta.scan(q.vector, q.k, q.languages));
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        found.truncate(q.k);
        Ok(found)
    }

    pub(crate) fn passage(&self, id: &str) -> Option<Passage> {
        let w = self.writes();
        if let Some(p) = w.delta.get(id) {
            return Some(p.clone());
        }
        let index = self.base.index();
        let slot = index.slot_of(id).filter(|&s| !w.tombstones.contains(s))?;
        index.passage(slot)
    }

    /// The base's description, updated for the writes and stamped with `generation`.
    pub(crate) fn describe(&self, generation: u64) -> BackendInfo {
        let base = self.base.describe();
        let w = self.writes();
        BackendInfo {
            passages: base.passages - w.tombstones.len() + w.delta.len(),
            languages: w.languages.clone(),
            generation,
            bytes_in_ram: base.bytes_in_ram + w.delta.bytes() as u64,
            ..(*base).clone()
        }
    }
}

/// Tombstones the live base slot of `id`; returns its language, or `None` when the base has
/// no live passage with that id.
fn bury(index: &crate::index::Index, tombstones: &mut SlotSet, id: &str) -> Option<String> {
    let slot = index.slot_of(id)?;
    if !tombstones.insert(slot) {
        return None;
    }
    index.passage(slot).map(|p| p.language)
}

fn decrement(languages: &mut BTreeMap<String, usize>, language: &str) {
    if let Some(n) = languages.get_mut(language) {
        *n -= 1;
        if *n == 0 {
            languages.remove(language);
        }
    }
}
