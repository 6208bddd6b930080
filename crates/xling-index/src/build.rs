//! Building an index from embedded passages.

use std::collections::BTreeMap;
use std::time::Instant;

use hnsw_rs::hnsw::Hnsw;

use crate::corpus::Corpus;
use crate::distance::{dot, UnitDot};
use crate::error::IndexError;
use crate::index::{Index, LanguageSlots};
use crate::store::{IndexManifest, FORMAT_VERSION};

/// hnsw_rs caps the number of layers at 16.
const MAX_LAYERS: usize = 16;
/// Points per `parallel_insert_slice` call: big enough to keep all threads busy, small enough
/// for a progress report every few seconds.
const INSERT_CHUNK: usize = 1024;
/// Embeddings must be unit vectors: scores are dot products read as cosines.
const NORM_TOLERANCE: f32 = 1e-3;

/// HNSW construction parameters.
///
/// Defaults `m = 16`, `ef_construction = 200`, chosen with `cargo run --release -p xling-index
/// --example tune -- params INDEX_DIR` on the 13,014 XQuAD-R sentences embedded by
/// multilingual-e5-small, 501 held out as queries (their nearest neighbours are their own
/// translations: the cross-lingual case; 2 busy cores). Recall@10 at search ef 64 / 128:
/// m 16 with ef_construction 100 / 200 / 400: 0.953 / 0.979 / 0.990 and 0.964 / 0.990 / 0.998;
/// m 8 (200): 0.944 / 0.968; m 32 (200): 0.987 / 0.993 at 10-20% slower queries. Inserting
/// took 5.9 / 13.3 / 25.4 s for ef_construction 100 / 200 / 400, against about 520 s to embed
/// the sentences, so 200 buys +0.026 recall for 1.5% more build time.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildParams {
    /// Max links per node and layer, 2..=255 (hnsw_rs stores it in a byte).
    pub m: usize,
    /// Candidate list size while inserting, >= 1.
    pub ef_construction: usize,
    /// Insertion threads; 0 = all cores.
    pub threads: usize,
}

impl BuildParams {
    /// Checks the parameters alone, so callers can fail before spending time on encoding.
    pub fn check(&self) -> Result<(), IndexError> {
        if !(2..=255).contains(&self.m) {
            return Err(bad_param("m", self.m, "must be in 2..=255"));
        }
        if self.ef_construction == 0 {
            return Err(bad_param("ef_construction", 0, "must be at least 1"));
        }
        Ok(())
    }
}

impl Default for BuildParams {
    fn default() -> Self {
        BuildParams {
            m: 16,
            ef_construction: 200,
            threads: 0,
        }
    }
}

/// A corpus with one L2-normalized embedding per passage, in corpus order.
pub struct EmbeddedCorpus {
    pub corpus: Corpus,
    /// `corpus.len() x dim` values, row-major.
    pub embeddings: Vec<f32>,
    pub dim: usize,
    /// The `id` of the model that produced the embeddings.
    pub model_id: String,
    /// Wall time spent embedding, recorded in the manifest.
    pub encode_seconds: f64,
}

impl Index {
    /// Builds the HNSW graph over `input` with parallel inserts; `progress(done, total)` is
    /// called after each chunk. The index lives in memory until [`Index::save`].
    pub fn build(
        input: EmbeddedCorpus,
        params: &BuildParams,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Index, IndexError> {
        params.check()?;
        if input.dim == 0 {
            return Err(bad_param("dim", 0, "must be at least 1"));
        }
        let EmbeddedCorpus {
            corpus,
            embeddings,
            dim,
            model_id,
            encode_seconds,
        } = input;
        let (passages, corpus_sha256) = corpus.into_parts();
        let expected = passages.len() * dim;
        if embeddings.len() != expected {
            return Err(IndexError::EmbeddingCount {
                got: embeddings.len(),
                passages: passages.len(),
                dim,
                expected,
            });
        }
        for (p, row) in passages.iter().zip(embeddings.chunks_exact(dim)) {
            let norm = dot(row, row).sqrt();
            if norm.is_nan() || (norm - 1.0).abs() > NORM_TOLERANCE {
                return Err(IndexError::NotNormalized {
                    id: p.id.clone(),
                    norm,
                });
            }
        }

        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(params.threads)
            .build()
            .map_err(|_| IndexError::BuildParam {
                name: "threads",
                value: params.threads.to_string(),
                reason: "could not start that many threads",
            })?;
        let total = passages.len();
        let graph: Hnsw<'static, f32, UnitDot> =
            Hnsw::new(params.m, total, MAX_LAYERS, params.ef_construction, UnitDot);
        let started = Instant::now();
        let rows: Vec<(&[f32], usize)> = embeddings.chunks_exact(dim).zip(0..).collect();
        for (i, chunk) in rows.chunks(INSERT_CHUNK).enumerate() {
            pool.install(|| graph.parallel_insert_slice(&chunk.to_vec()));
            progress((i * INSERT_CHUNK + chunk.len()).min(total), total);
        }
        let build_seconds = started.elapsed().as_secs_f64();
        drop(rows);

        let languages = LanguageSlots::new(&passages);
        let manifest = IndexManifest {
            format_version: FORMAT_VERSION,
            model_id,
            dim,
            m: params.m,
            ef_construction: params.ef_construction,
            count: total,
            languages: languages.counts(),
            encode_seconds,
            build_seconds,
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            corpus_sha256,
            hnsw_basename: String::new(),
            files: BTreeMap::new(),
        };
        Ok(Index::assemble(
            None, manifest, passages, embeddings, graph, languages,
        ))
    }

    /// A new graph over this index's passages and stored embeddings with other parameters:
    /// tuning without re-encoding (what the raw embeddings file is kept for).
    pub fn rebuild(
        &self,
        params: &BuildParams,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Index, IndexError> {
        let input = EmbeddedCorpus {
            corpus: Corpus::validated(self.passages.clone(), self.manifest.corpus_sha256.clone()),
            embeddings: self.embeddings.clone(),
            dim: self.manifest.dim,
            model_id: self.manifest.model_id.clone(),
            encode_seconds: self.manifest.encode_seconds,
        };
        Index::build(input, params, progress)
    }
}

fn bad_param(name: &'static str, value: usize, reason: &'static str) -> IndexError {
    IndexError::BuildParam {
        name,
        value: value.to_string(),
        reason,
    }
}
