//! HNSW passage index over L2-normalized embeddings, with a passage store and manifest.
//!
//! Build: load a JSON Lines [`Corpus`], embed it (elsewhere: this crate knows no model),
//! [`Index::build`] and [`Index::save`]. Serve: [`Index::load`], [`Index::check_model`], then
//! [`Index::search`] from any number of threads. [`Index::exact_search`] is the brute-force
//! ground truth for evaluation.
//!
//! # Layout
//! - `backend`  — [`Backend`], the trait the server searches through; [`EmbeddedBackend`]
//!   (this crate's [`Index`] behind it), [`Query`], [`Found`], [`BackendInfo`].
//! - `corpus`   — [`Passage`], [`Corpus`]: the JSONL loader and its validation rules.
//! - `lang`     — [`is_iso639_1`]: the ISO 639-1 code table.
//! - `distance` — [`UnitDot`]: `1 - dot` clamped at 0, the HNSW distance.
//! - `build`    — [`BuildParams`], [`EmbeddedCorpus`], [`Index::build`] (parallel inserts),
//!   [`Index::rebuild`] (new parameters, stored embeddings).
//! - `index`    — [`Index`]: load (checksummed), save (temp folder + rename), accessors, the
//!   exact-scan threshold ([`DEFAULT_EXACT_SUBSET_MAX`]).
//! - `search`   — [`Hit`], [`Index::search`] (HNSW, language filter), [`Index::exact_search`].
//! - `live`     — [`LiveIndex`]: generations of base + delta + tombstones, the write-ahead
//!   log ([`Wal`]), compaction, swaps; [`Writable`], the write half of a backend.
//! - `slots`    — [`SlotSet`]: a slot bitmap (a live index's tombstones), skipped by searches.
//! - `store`    — the folder layout and [`IndexManifest`] (`index.json`).
//! - `error`    — [`IndexError`], the crate's one error type.

mod backend;
mod build;
mod corpus;
mod distance;
mod error;
mod index;
mod lang;
mod live;
mod search;
mod slots;
mod store;

pub use backend::{Backend, BackendInfo, EmbeddedBackend, Found, Query};
pub use build::{BuildParams, EmbeddedCorpus};
pub use corpus::{Corpus, Passage};
pub use distance::UnitDot;
pub use error::IndexError;
pub use index::{Index, DEFAULT_EXACT_SUBSET_MAX};
pub use lang::is_iso639_1;
pub use live::{
    CompactionPolicy, LiveIndex, LiveStats, Op, Wal, Writable, Written, WAL_DIR, WAL_FILE,
};
pub use search::{default_ef, Hit, EF_PER_RESULT};
pub use slots::SlotSet;
pub use store::{IndexManifest, EMBEDDINGS_FILE, FORMAT_VERSION, MANIFEST_FILE, PASSAGES_FILE};
