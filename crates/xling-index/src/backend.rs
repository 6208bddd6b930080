//! The seam between the serving engine and whatever holds the vectors: the [`Backend`] trait,
//! and [`EmbeddedBackend`], today's in-process HNSW [`Index`] behind it.
//!
//! Results come back resolved ([`Found`] carries the passage), so slots stay private to the
//! embedded index and a remote backend (Qdrant, in `xling-qdrant`) returns what it fetched in
//! the same round trip. `describe` is a cheap snapshot: request validation, `Info` and
//! `/metrics` read it and never the network.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use crate::corpus::Passage;
use crate::error::IndexError;
use crate::index::Index;
use crate::live::Writable;

/// One query of a [`Backend::search_batch`]: a unit vector of the index's dim.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub vector: &'a [f32],
    pub k: usize,
    /// Search breadth (HNSW `ef`); a backend raises it to `k` where it must.
    pub ef: usize,
    /// ISO 639-1 codes to keep; `None` or empty = all.
    pub languages: Option<&'a [String]>,
}

/// One result, resolved to its passage.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub passage: Passage,
    /// Cosine similarity of query and passage.
    pub score: f32,
}

/// What a backend holds, as of its last refresh.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BackendInfo {
    /// `embedded` or `qdrant`.
    pub kind: &'static str,
    /// Where: the index folder, or the Qdrant URL and collection.
    pub location: String,
    pub model_id: String,
    pub dim: usize,
    pub passages: usize,
    /// Passages per ISO 639-1 code.
    pub languages: BTreeMap<String, usize>,
    /// Bumped whenever the served data is replaced (0 for an index that never changes).
    pub generation: u64,
    /// Index bytes this process holds in RAM (graph links, language tables; 0 for a remote
    /// backend).
    pub bytes_in_ram: u64,
    /// Index bytes mapped from files (vectors, passages, ids, the graph's points): resident
    /// only as far as the page cache keeps them.
    pub bytes_mapped: u64,
}

/// A passage index the engine can search. Object safe: the server holds `Arc<dyn Backend>`.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A snapshot of what is served; cheap, never does I/O.
    fn describe(&self) -> Arc<BackendInfo>;

    /// Fails with [`IndexError::ModelMismatch`] when the index was built by another model.
    fn check_model(&self, model_id: &str, dim: usize) -> Result<(), IndexError>;

    /// The top hits of every query, in query order. `deadline`: the caller's; a remote backend
    /// gives up by then with [`IndexError::Timeout`].
    async fn search_batch(
        &self,
        queries: &[Query<'_>],
        deadline: Option<Instant>,
    ) -> Result<Vec<Vec<Found>>, IndexError>;

    /// The passages with these ids, in order; `None` where the index has no such id.
    async fn passages(&self, ids: &[String]) -> Result<Vec<Option<Passage>>, IndexError>;

    /// The write half ([`Writable`]) of a backend that takes writes; `None`: read-only.
    fn writable(self: Arc<Self>) -> Option<Arc<dyn Writable>> {
        None
    }
}

/// The in-process HNSW index as a [`Backend`]. Its searches are CPU work well under a
/// millisecond on the indexes it serves, so they run inline on the caller's task.
pub struct EmbeddedBackend {
    index: Index,
    info: Arc<BackendInfo>,
}

impl EmbeddedBackend {
    pub fn new(index: Index) -> EmbeddedBackend {
        let manifest = index.manifest();
        let info = BackendInfo {
            kind: "embedded",
            location: index
                .dir
                .as_deref()
                .map_or_else(|| "<memory>".to_string(), |d| d.display().to_string()),
            model_id: manifest.model_id.clone(),
            dim: manifest.dim,
            passages: index.len(),
            languages: manifest.languages.clone(),
            generation: 0,
            bytes_in_ram: index.bytes_in_ram(),
            bytes_mapped: index.bytes_mapped(),
        };
        EmbeddedBackend {
            index,
            info: Arc::new(info),
        }
    }

    /// Loads an index folder ([`Index::load`]) as a backend.
    pub fn load(dir: &Path) -> Result<EmbeddedBackend, IndexError> {
        Index::load(dir).map(EmbeddedBackend::new)
    }

    pub fn index(&self) -> &Index {
        &self.index
    }
}

#[async_trait::async_trait]
impl Backend for EmbeddedBackend {
    fn describe(&self) -> Arc<BackendInfo> {
        self.info.clone()
    }

    fn check_model(&self, model_id: &str, dim: usize) -> Result<(), IndexError> {
        self.index.check_model(model_id, dim)
    }

    async fn search_batch(
        &self,
        queries: &[Query<'_>],
        _deadline: Option<Instant>,
    ) -> Result<Vec<Vec<Found>>, IndexError> {
        queries
            .iter()
            .map(|q| {
                let hits = self.index.search(q.vector, q.k, q.ef, q.languages)?;
                Ok(hits
                    .into_iter()
                    .filter_map(|hit| {
                        Some(Found {
                            passage: self.index.passage(hit.slot)?,
                            score: hit.score,
                        })
                    })
                    .collect())
            })
            .collect()
    }

    async fn passages(&self, ids: &[String]) -> Result<Vec<Option<Passage>>, IndexError> {
        Ok(ids
            .iter()
            .map(|id| {
                let slot = self.index.slot_of(id)?;
                self.index.passage(slot)
            })
            .collect())
    }
}
