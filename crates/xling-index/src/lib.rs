//! HNSW passage index over L2-normalized embeddings, with a mapped passage store and manifest
//! (folder format 3: docs/index-design.md section 2).
//!
//! Build: stream embedded passages into an [`IndexWriter`] (bounded memory, checkpoints,
//! resume), or, small and in memory, [`Index::build`] and [`Index::save`] (the same writer
//! underneath). Serve: [`Index::load`] (sizes checked, files mapped), [`Index::check_model`],
//! then [`Index::search`] from any number of threads; [`Index::plan`] says whether a query
//! scans or walks. [`Index::exact_search`] is the brute-force ground truth for evaluation.
//!
//! # Layout
//! - `backend`  — [`Backend`], the trait the server searches through; [`EmbeddedBackend`]
//!   (this crate's [`Index`] behind it), [`Query`], [`Found`], [`BackendInfo`].
//! - `corpus`   — [`Passage`], [`Corpus`]: the JSONL loader and its validation rules.
//! - `lang`     — [`is_iso639_1`]: the ISO 639-1 code table.
//! - `distance` — [`UnitDot`]: `1 - dot` clamped at 0, the fp32 HNSW distance; [`DotI8`],
//!   the int8 walk's.
//! - `writer`   — [`IndexWriter`]: the streaming format 3 writer (append, checkpoint, resume,
//!   finish: graph over the mapped vectors, manifest, rename into place).
//! - `build`    — [`BuildParams`], [`EmbeddedCorpus`], [`Index::build`] (in memory, through
//!   the writer), [`Index::rebuild`] (new parameters, stored embeddings).
//! - `graph`    — the hnsw_rs build over fp32 or int8 rows, flattened for `adjacency` (and
//!   what hnsw_rs forces on memory); the reload of a format 2 dump for the upgrade.
//! - `adjacency` — `graph.adj`: the graph as flat u32 neighbour blocks, written once, mapped.
//! - `walk`     — the HNSW search over the mapped adjacency (greedy descent, layer-0 beam).
//! - `upgrade`  — [`Index::upgrade`]: a format 2 folder converted in place.
//! - `quant`    — per-dimension int8 scalar quantization.
//! - `passages` — the mapped passage store and id table.
//! - `rows`     — [`StoredRows`]: a folder's mapped vectors and passages without the graph
//!   (what [`Index`] serves from; `index build --reuse` reads only them).
//! - `index`    — [`Index`]: load (sizes checked, files mapped), verify (SHA-256), save,
//!   accessors, the exact-scan threshold ([`DEFAULT_EXACT_SUBSET_MAX`]).
//! - `search`   — [`Hit`], [`Index::search`] (HNSW, language filter), [`Index::exact_search`].
//! - `live`     — [`LiveIndex`]: generations of base + delta + tombstones, the write-ahead
//!   log ([`Wal`]), compaction, swaps; [`Writable`], the write half of a backend.
//! - `slots`    — [`SlotSet`]: a slot bitmap (a live index's tombstones), skipped by searches.
//! - `store`    — the format 3 folder layout and [`IndexManifest`] (`index.json`).
//! - `error`    — [`IndexError`], the crate's one error type.

mod adjacency;
mod backend;
mod build;
mod corpus;
mod distance;
mod error;
mod graph;
mod index;
mod lang;
mod live;
mod passages;
mod quant;
mod rows;
mod search;
mod slots;
mod store;
mod upgrade;
mod walk;
mod writer;

pub use adjacency::ADJACENCY_FILE;
pub use backend::{Backend, BackendInfo, EmbeddedBackend, Found, Query};
pub use build::{BuildParams, EmbeddedCorpus};
pub use corpus::{Corpus, Passage};
pub use distance::{DotI8, UnitDot};
pub use error::IndexError;
pub use index::{Index, DEFAULT_EXACT_SUBSET_MAX, DEFAULT_RESCORE_OVERSAMPLE};
pub use lang::is_iso639_1;
pub use live::{
    CompactionPolicy, LiveIndex, LiveStats, Op, Wal, Writable, Written, WAL_DIR, WAL_FILE,
};
pub use rows::StoredRows;
pub use search::{default_ef, Hit, Plan, EF_PER_RESULT};
pub use slots::SlotSet;
pub use store::{
    FileEntry, IndexManifest, Quantization, FORMAT_VERSION, IDS_FILE, LANGUAGES_FILE,
    MANIFEST_FILE, PASSAGES_FILE, PASSAGES_IDX_FILE, VECTORS_FILE, VECTORS_I8_FILE,
};
pub use writer::{IndexWriter, Quantize, WriterSpec};
