//! Building an index from embedded passages in memory (tests, small folds, rebuilds), through
//! the streaming [`IndexWriter`].

use crate::corpus::{Corpus, Passage};
use crate::error::IndexError;
use crate::index::Index;
use crate::writer::{IndexWriter, Quantize, WriterSpec};

/// Rows per append when [`Index::rebuild`] copies an index.
const REBUILD_CHUNK: usize = 4096;

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
    /// Builds an index over `input` in a scratch folder through the same [`IndexWriter`] a
    /// streaming build uses (so there is one format 3 writer), and maps it back;
    /// `progress(done, total)` is called after each chunk of graph inserts. The files live
    /// until the index drops or [`Index::save`] links them into a folder.
    pub fn build(
        input: EmbeddedCorpus,
        params: &BuildParams,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Index, IndexError> {
        let EmbeddedCorpus {
            corpus,
            embeddings,
            dim,
            model_id,
            encode_seconds,
        } = input;
        let spec = WriterSpec {
            model_id,
            dim,
            params: params.clone(),
            quantize: Quantize::None,
            corpus_sha256: corpus.sha256().to_string(),
        };
        Index::write_scratch(spec, encode_seconds, progress, &mut |writer| {
            writer.append(corpus.passages(), &embeddings)
        })
    }

    /// A new graph over this index's passages and stored embeddings with other parameters:
    /// tuning without re-encoding (what the raw embeddings file is kept for). Rows are copied
    /// a chunk at a time.
    pub fn rebuild(
        &self,
        params: &BuildParams,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Index, IndexError> {
        let quantize = if self.manifest.quantization.is_some() {
            Quantize::Int8
        } else {
            Quantize::None
        };
        self.rebuild_quantized(params, quantize, progress)
    }

    /// [`Index::rebuild`] with the walk's vectors quantized as `quantize` says.
    pub fn rebuild_quantized(
        &self,
        params: &BuildParams,
        quantize: Quantize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Index, IndexError> {
        let manifest = &self.manifest;
        let spec = WriterSpec {
            model_id: manifest.model_id.clone(),
            dim: manifest.dim,
            params: params.clone(),
            quantize,
            corpus_sha256: manifest.corpus_sha256.clone(),
        };
        Index::write_scratch(spec, manifest.encode_seconds, progress, &mut |writer| {
            let dim = self.dim();
            for start in (0..self.len()).step_by(REBUILD_CHUNK) {
                let end = (start + REBUILD_CHUNK).min(self.len());
                let passages: Vec<Passage> = (start..end)
                    .filter_map(|slot| self.passage(slot as u32))
                    .collect();
                writer.append(&passages, &self.embeddings()[start * dim..end * dim])?;
            }
            Ok(())
        })
    }

    /// Writes an index into a fresh scratch folder with `fill`, and loads it.
    pub(crate) fn write_scratch(
        spec: WriterSpec,
        encode_seconds: f64,
        progress: &mut dyn FnMut(usize, usize),
        fill: &mut dyn FnMut(&mut IndexWriter) -> Result<(), IndexError>,
    ) -> Result<Index, IndexError> {
        spec.params.check()?;
        let scratch = tempfile::Builder::new()
            .prefix("xling-index-")
            .tempdir()
            .map_err(|e| IndexError::io(std::env::temp_dir(), e))?;
        let dir = scratch.path().join("index");
        let mut writer = IndexWriter::create(&dir, spec, false)?;
        writer.set_encode_seconds(encode_seconds);
        fill(&mut writer)?;
        writer.finish(false, progress)?;
        Index::open_scratch(&dir, scratch)
    }
}

fn bad_param(name: &'static str, value: usize, reason: &'static str) -> IndexError {
    IndexError::BuildParam {
        name,
        value: value.to_string(),
        reason,
    }
}
