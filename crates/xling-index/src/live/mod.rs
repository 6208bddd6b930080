//! The live index: upserts and deletes while serving, durable through kill -9, and atomic
//! swaps of the whole index (design note section 3).
//!
//! [`LiveIndex`] serves one [`Generation`] at a time: an immutable base folder plus a small
//! delta (upserted rows, exact-scanned) and tombstones (base slots deleted or replaced,
//! skipped inside the graph walk). A write is validated by the caller, appended to the
//! write-ahead log and fsynced, then applied under the generation's write lock, and only then
//! acknowledged: every search that starts after the reply sees it, and a restart replays it.
//! A swap (`SwapIndex`, or compaction folding the writes into a new base) loads the new base
//! first and then replaces the generation pointer; searches in flight finish on the old one,
//! which is freed with its last reader (peak memory: old + new).
//!
//! # Layout
//! - `wal`        — [`Wal`], [`Op`]: the length + CRC32 record log and its replay.
//! - `delta`      — the upserted rows, searched by exact scan.
//! - `generation` — base + delta + tombstones searched as one.
//! - `compaction` — folding delta and tombstones into a new base folder, in the background.

mod compaction;
mod delta;
mod generation;
mod wal;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

/// The first pause after a failed compaction, and the longest.
const COMPACTION_RETRY: Duration = Duration::from_secs(30);
const MAX_RETRY: Duration = Duration::from_secs(15 * 60);

pub use compaction::CompactionPolicy;
pub use wal::{Op, Replayed, Wal, WAL_DIR, WAL_FILE};

use crate::backend::{Backend, BackendInfo, EmbeddedBackend, Found, Query};
use crate::corpus::Passage;
use crate::error::IndexError;
use crate::index::Index;
use generation::Generation;

/// The write half of a backend (design note section 3): what `xling.v1.Admin` calls. Blocking
/// (a write waits for its fsync, a swap loads a whole index): call it from a blocking thread.
/// The caller validates passages (ids, texts, languages) and encodes them first.
pub trait Writable: Send + Sync {
    /// Adds or replaces `passages` (with their unit vectors, `dim` values each, in order),
    /// durably and all at once.
    fn upsert(&self, passages: Vec<Passage>, vectors: Vec<f32>) -> Result<Written, IndexError>;

    /// Removes the passages with these ids; unknown ids are skipped, not errors.
    fn delete(&self, ids: Vec<String>) -> Result<Written, IndexError>;

    /// Loads the index folder `dir`, checks it was built by `model_id` (of `dim`), and serves it
    /// (with its own log, if it has one) instead of the current index and log.
    fn swap(&self, dir: &Path, model_id: &str, dim: usize) -> Result<Arc<BackendInfo>, IndexError>;

    /// Counts for metrics.
    fn stats(&self) -> LiveStats;
}

/// What one acknowledged write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The served generation after the write (bumped by every write and swap).
    pub generation: u64,
    /// Passages upserted, or deleted (existing ids only).
    pub changed: usize,
}

/// The live index's state, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LiveStats {
    pub generation: u64,
    /// Records in the log not yet folded into the base.
    pub pending_log: usize,
    /// Upserted rows served from the delta.
    pub delta: usize,
    /// Base passages deleted or replaced.
    pub tombstones: usize,
    /// Compactions finished since start.
    pub compactions: u64,
    /// Compactions that failed since start (each retried after a growing pause).
    pub compaction_failures: u64,
}

/// An index folder served with writes on top (see the module docs).
pub struct LiveIndex {
    /// Itself, for the compaction thread a write starts.
    me: Weak<LiveIndex>,
    current: RwLock<Arc<Generation>>,
    writer: Mutex<Writer>,
    info: RwLock<Arc<BackendInfo>>,
    policy: CompactionPolicy,
}

/// What writes serialize on: the log, and the generation counter.
struct Writer {
    /// The served folder's log file; opened at the first write, so a read-only folder
    /// serves as long as nobody writes.
    wal_path: PathBuf,
    wal: Option<Wal>,
    /// Records in the log (replayed or appended).
    records: usize,
    generation: u64,
    compactions: u64,
    /// While a compaction builds: the writes made since its snapshot, to apply to its result.
    carry: Option<Vec<Op>>,
    /// Failures in a row, and when the next compaction may start: a compaction that fails
    /// (disk full, say) is not restarted by every following write.
    failures: u32,
    failures_total: u64,
    retry_at: Option<Instant>,
}

impl LiveIndex {
    /// Loads index folder `dir` and replays its log (`dir/wal/log`) on top.
    pub fn open(dir: &Path, policy: CompactionPolicy) -> Result<Arc<LiveIndex>, IndexError> {
        compaction::recover(dir)?;
        let (generation, records) = load_generation(dir, policy.exact_subset_max)?;
        let live = Arc::new_cyclic(|me| LiveIndex {
            me: me.clone(),
            current: RwLock::new(Arc::new(generation)),
            writer: Mutex::new(Writer {
                wal_path: Wal::path_in(dir),
                wal: None,
                records,
                generation: records as u64,
                compactions: 0,
                failures: 0,
                failures_total: 0,
                retry_at: None,
                carry: None,
            }),
            info: RwLock::new(Arc::default()),
            policy,
        });
        live.refresh(&live.writer());
        Ok(live)
    }

    fn generation(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refresh(&self, writer: &Writer) {
        let info = Arc::new(self.generation().describe(writer.generation));
        *self.info.write().unwrap_or_else(|e| e.into_inner()) = info;
    }

    /// Logs `op` durably, applies it, and starts a compaction when the writes pass the policy.
    fn write(&self, op: Op) -> Result<Written, IndexError> {
        let mut writer = self.writer();
        if writer.wal.is_none() {
            writer.wal = Some(Wal::open(&writer.wal_path, writer.records)?);
        }
        writer.wal.as_mut().expect("opened above").append(&op)?;
        writer.records += 1;
        writer.generation += 1;
        let applied = self.generation().apply(&op);
        if let Some(carry) = writer.carry.as_mut() {
            carry.push(op);
        }
        self.refresh(&writer);
        let written = Written {
            generation: writer.generation,
            changed: applied.changed,
        };
        let start =
            writer.carry.is_none() && writer.retry_at.is_none_or(|t| Instant::now() >= t) && {
                let generation = self.generation();
                let w = generation.writes();
                self.policy.due(
                    generation.base.index().len(),
                    w.delta.len(),
                    w.tombstones.len(),
                )
            };
        if start {
            writer.carry = Some(Vec::new());
            drop(writer);
            if let Some(me) = self.me.upgrade() {
                compaction::spawn(me);
            }
        }
        Ok(written)
    }

    /// Counts a failed compaction and returns the pause before the next may start: 30 s,
    /// doubling with each failure in a row, at most 15 minutes.
    fn compaction_failed(&self) -> Duration {
        let mut writer = self.writer();
        writer.failures += 1;
        writer.failures_total += 1;
        let pause = (COMPACTION_RETRY * 2u32.pow(writer.failures.min(16) - 1)).min(MAX_RETRY);
        writer.retry_at = Some(Instant::now() + pause);
        pause
    }

    /// Installs `generation` (whose folder's log holds `records` records) as the served one.
    fn install(
        &self,
        writer: &mut Writer,
        generation: Generation,
        wal_path: PathBuf,
        records: usize,
    ) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(generation);
        writer.wal_path = wal_path;
        writer.wal = None;
        writer.records = records;
        writer.generation += 1;
        self.refresh(writer);
    }
}

/// Loads `dir` and replays its log onto it; returns the generation and the log's record count.
/// The folder's index as a backend, with the configured exact-scan cutoff.
fn load_base(dir: &Path, exact_subset_max: Option<usize>) -> Result<EmbeddedBackend, IndexError> {
    let mut index = Index::load(dir)?;
    if let Some(max) = exact_subset_max {
        index.set_exact_subset_max(max);
    }
    Ok(EmbeddedBackend::new(index))
}

fn load_generation(
    dir: &Path,
    exact_subset_max: Option<usize>,
) -> Result<(Generation, usize), IndexError> {
    let started = Instant::now();
    let generation = Generation::new(load_base(dir, exact_subset_max)?);
    let log = Wal::path_in(dir);
    let Replayed { ops, .. } = Wal::replay(&log)?;
    let dim = generation.base.index().dim();
    for op in &ops {
        if let Op::Upsert { passages, vectors } = op {
            if vectors.len() != passages.len() * dim {
                return Err(IndexError::corrupt(
                    &log,
                    format!(
                        "an upsert of {} passages holds {} vector values, the index has dim {dim}",
                        passages.len(),
                        vectors.len()
                    ),
                ));
            }
        }
        generation.apply(op);
    }
    tracing::info!(
        dir = %dir.display(),
        replayed = ops.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "index loaded with its write-ahead log"
    );
    Ok((generation, ops.len()))
}

impl Writable for LiveIndex {
    fn upsert(&self, passages: Vec<Passage>, vectors: Vec<f32>) -> Result<Written, IndexError> {
        let dim = self.generation().base.index().dim();
        IndexError::check_embedding_count(passages.len(), vectors.len(), dim)?;
        self.write(Op::Upsert { passages, vectors })
    }

    fn delete(&self, ids: Vec<String>) -> Result<Written, IndexError> {
        self.write(Op::Delete { ids })
    }

    fn swap(&self, dir: &Path, model_id: &str, dim: usize) -> Result<Arc<BackendInfo>, IndexError> {
        // Load and check before taking the writer: writes go on meanwhile, on the old index.
        let (generation, records) = load_generation(dir, self.policy.exact_subset_max)?;
        generation.base.check_model(model_id, dim)?;
        let mut writer = self.writer();
        // A compaction building meanwhile was for the replaced index: it sees the swap and
        // drops its result.
        self.install(&mut writer, generation, Wal::path_in(dir), records);
        Ok(self.describe())
    }

    fn stats(&self) -> LiveStats {
        let writer = self.writer();
        let generation = self.generation();
        let w = generation.writes();
        LiveStats {
            generation: writer.generation,
            pending_log: writer.records,
            delta: w.delta.len(),
            tombstones: w.tombstones.len(),
            compactions: writer.compactions,
            compaction_failures: writer.failures_total,
        }
    }
}

#[async_trait::async_trait]
impl Backend for LiveIndex {
    fn describe(&self) -> Arc<BackendInfo> {
        self.info.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn check_model(&self, model_id: &str, dim: usize) -> Result<(), IndexError> {
        self.generation().base.check_model(model_id, dim)
    }

    async fn search_batch(
        &self,
        queries: &[Query<'_>],
        _deadline: Option<Instant>,
    ) -> Result<Vec<Vec<Found>>, IndexError> {
        // One generation for the whole batch, held until it is answered.
        let generation = self.generation();
        queries.iter().map(|q| generation.search(q)).collect()
    }

    async fn passages(&self, ids: &[String]) -> Result<Vec<Option<Passage>>, IndexError> {
        let generation = self.generation();
        Ok(ids.iter().map(|id| generation.passage(id)).collect())
    }

    fn writable(self: Arc<Self>) -> Option<Arc<dyn Writable>> {
        Some(self)
    }
}
