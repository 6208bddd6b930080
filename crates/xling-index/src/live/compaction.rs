//! Compaction: folds a generation's delta and tombstones into a new base folder in the
//! background, then swaps it in the way `SwapIndex` does.
//!
//! 1. Snapshot the live rows (base minus tombstones, plus the delta) without blocking writes;
//!    writes from then on are also kept in the writer's carry list.
//! 2. Build a new in-memory index from them ([`Index::build`], on `threads` threads so queries
//!    keep most cores) and save it to `DIR.compacting` beside the served folder.
//! 3. Under the writer lock (writes wait): log the carried writes into
//!    `DIR.compacting/wal/log`, move `DIR` to `DIR.compacted-old`, `DIR.compacting` to `DIR`,
//!    load it, apply the carried writes and serve it. Re-applying a write the snapshot already
//!    held changes nothing (upserts and deletes set a state), so the carry list may overlap
//!    the snapshot.
//!
//! A crash at any point leaves a complete state on disk: before the first rename `DIR` with
//! its whole log; between the renames `DIR.compacting`, which [`recover`] moves into place.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::generation::Generation;
use super::wal::Wal;
use super::LiveIndex;
use crate::build::{BuildParams, EmbeddedCorpus};
use crate::corpus::{Corpus, Passage};
use crate::error::IndexError;
use crate::index::Index;

/// When a generation's writes are folded into a new base.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactionPolicy {
    /// Compact once delta rows + tombstones reach this many (0: never by count).
    pub max_changes: usize,
    /// ... or this share of the base's passages (0: never by share).
    pub max_share: f64,
    /// Threads the rebuild's graph inserts use.
    pub threads: usize,
    /// The exact-scan cutoff of every generation this live index loads (`None`: the index's
    /// default); kept here because loads happen at open, swap and compaction alike.
    pub exact_subset_max: Option<usize>,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            max_changes: 10_000,
            max_share: 0.1,
            threads: 1,
            exact_subset_max: None,
        }
    }
}

impl CompactionPolicy {
    /// Never compacts.
    pub fn never() -> CompactionPolicy {
        CompactionPolicy {
            max_changes: 0,
            max_share: 0.0,
            threads: 1,
            exact_subset_max: None,
        }
    }

    pub(crate) fn due(&self, base: usize, delta: usize, tombstones: usize) -> bool {
        let changes = delta + tombstones;
        (self.max_changes > 0 && changes >= self.max_changes)
            || (self.max_share > 0.0 && changes as f64 > self.max_share * base as f64)
    }
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

fn building(dir: &Path) -> PathBuf {
    sibling(dir, ".compacting")
}

fn replaced(dir: &Path) -> PathBuf {
    sibling(dir, ".compacted-old")
}

/// Finishes or discards a compaction a crash interrupted (see the module docs).
pub(crate) fn recover(dir: &Path) -> Result<(), IndexError> {
    let (new, old) = (building(dir), replaced(dir));
    if !dir.exists() && new.join(crate::store::MANIFEST_FILE).is_file() {
        std::fs::rename(&new, dir).map_err(|e| IndexError::io(dir, e))?;
        tracing::warn!(dir = %dir.display(), "finished a compaction interrupted between its renames");
    }
    for leftover in [new, old] {
        if leftover.exists() && dir.exists() {
            std::fs::remove_dir_all(&leftover).map_err(|e| IndexError::io(&leftover, e))?;
        }
    }
    Ok(())
}

/// Compacts `live` on a thread of its own; the writer's carry list is already started, and
/// while it is, no other compaction starts.
pub(crate) fn spawn(live: Arc<LiveIndex>) {
    let started = std::thread::Builder::new()
        .name("xling-compaction".into())
        .spawn(move || {
            let started = Instant::now();
            match run(&live) {
                Ok(true) => tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "compaction swapped in a new base"
                ),
                Ok(false) => tracing::info!("compaction dropped: the index was swapped meanwhile"),
                Err(e) => {
                    let pause = live.compaction_failed();
                    tracing::warn!(
                        error = %e,
                        retry_in_s = pause.as_secs(),
                        "compaction failed; the writes stay in the log"
                    )
                }
            }
            // `run` ended the carry list itself, under the writer lock: clearing it here
            // could end the carry list of a compaction a later write has started meanwhile.
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "cannot start a compaction thread");
    }
}

/// Returns whether the new base was swapped in (false: the served index changed meanwhile).
/// Whatever happens, the carry list ends under the writer lock before this returns.
fn run(live: &LiveIndex) -> Result<bool, IndexError> {
    let generation = live.generation();
    let built = build(live, &generation);
    let mut writer = live.writer();
    let carry = writer.carry.take().unwrap_or_default();
    let (dir, new) = match built {
        Ok(Some(paths)) => paths,
        Ok(None) => return Ok(false),
        Err(e) => return Err(e),
    };
    if !Arc::ptr_eq(&generation, &live.generation()) {
        drop(writer);
        let _ = std::fs::remove_dir_all(&new);
        return Ok(false);
    }
    let mut wal = Wal::open(&Wal::path_in(&new), 0)?;
    for op in &carry {
        wal.append(op)?;
    }
    drop(wal);
    let old = replaced(&dir);
    if let Err(e) = std::fs::rename(&dir, &old) {
        let _ = std::fs::remove_dir_all(&new); // a failed compaction leaves no copy behind
        return Err(IndexError::io(&dir, e));
    }
    if let Err(e) = std::fs::rename(&new, &dir) {
        let _ = std::fs::rename(&old, &dir);
        return Err(IndexError::io(&dir, e));
    }
    let compacted = Generation::new(super::load_base(&dir, live.policy.exact_subset_max)?);
    for op in &carry {
        compacted.apply(op);
    }
    live.install(&mut writer, compacted, Wal::path_in(&dir), carry.len());
    drop(writer);
    if let Err(e) = std::fs::remove_dir_all(&old) {
        tracing::warn!(path = %old.display(), error = %e, "cannot remove the replaced index folder");
    }
    // Counted only once the replaced folder is gone, so a caller that sees the count also
    // sees the disk tidy.
    let mut writer = live.writer();
    writer.compactions += 1;
    writer.failures = 0;
    writer.retry_at = None;
    Ok(true)
}

/// Snapshots `generation` and saves its live rows as a new index beside the served folder;
/// returns the served folder and the new one (None: nothing to compact).
fn build(
    live: &LiveIndex,
    generation: &Generation,
) -> Result<Option<(PathBuf, PathBuf)>, IndexError> {
    let base = generation.base.index();
    let Some(dir) = base.dir.clone() else {
        return Ok(None); // an in-memory index has no folder to compact into
    };
    let (passages, embeddings) = snapshot(generation);
    if passages.is_empty() {
        return Ok(None); // an index cannot be empty; the log keeps the deletes
    }
    let manifest = base.manifest();
    let input = EmbeddedCorpus {
        corpus: Corpus::from_passages(passages)?,
        embeddings,
        dim: manifest.dim,
        model_id: manifest.model_id.clone(),
        encode_seconds: manifest.encode_seconds,
    };
    let params = BuildParams {
        m: manifest.m,
        ef_construction: manifest.ef_construction,
        threads: live.policy.threads,
    };
    let mut built = Index::build(input, &params, &mut |_, _| {})?;
    let new = building(&dir);
    built.save(&new, true)?;
    Ok(Some((dir, new)))
}

/// The live rows of `generation`: base passages not tombstoned, then the delta.
fn snapshot(generation: &Generation) -> (Vec<Passage>, Vec<f32>) {
    let base = generation.base.index();
    let w = generation.writes();
    let mut passages = Vec::new();
    let mut embeddings = Vec::new();
    for slot in 0..base.len() as u32 {
        if w.tombstones.contains(slot) {
            continue;
        }
        if let (Some(p), Some(v)) = (base.passage(slot), base.embedding(slot)) {
            passages.push(p);
            embeddings.extend_from_slice(v);
        }
    }
    for (p, v) in w.delta.rows() {
        passages.push(p.clone());
        embeddings.extend_from_slice(v);
    }
    (passages, embeddings)
}
