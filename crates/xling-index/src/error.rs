//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong loading a corpus, building, saving, loading or searching an index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: missing (is this a folder written by `xling index build`?)")]
    MissingFile { path: PathBuf },
    #[error("{path}: corrupt index file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "{path}: index format version {found}, this build reads version {expected}; rebuild the index"
    )]
    FormatVersion {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error(
        "{dir}: index format version 2 (graph in hnsw_rs's dump); run `xling index upgrade {dir}` to convert it to version 3 in place (seconds: nothing is re-encoded or re-inserted)"
    )]
    NeedsUpgrade { dir: PathBuf },
    #[error(
        "index at {dir} was built with model `{index_model}` (dim {index_dim}) but the model in use is `{model}` (dim {dim}); rebuild the index with this model"
    )]
    ModelMismatch {
        dir: PathBuf,
        index_model: String,
        index_dim: usize,
        model: String,
        dim: usize,
    },

    #[error("{path}:{line}: malformed corpus line: {reason}")]
    CorpusSyntax {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}:{line}: duplicate passage id `{id}` (first seen on line {first_line})")]
    DuplicateId {
        path: PathBuf,
        line: usize,
        id: String,
        first_line: usize,
    },
    #[error("{path}:{line}: empty passage id")]
    EmptyId { path: PathBuf, line: usize },
    #[error("{path}:{line}: passage `{id}` has empty text")]
    EmptyText {
        path: PathBuf,
        line: usize,
        id: String,
    },
    #[error("{path}:{line}: passage `{id}` has language `{code}`, not an ISO 639-1 code (two lowercase letters such as `en`, `zh`)")]
    CorpusLanguage {
        path: PathBuf,
        line: usize,
        id: String,
        code: String,
    },
    #[error("{path}: corpus has no passages")]
    EmptyCorpus { path: PathBuf },

    #[error("invalid build parameter {name} = {value}: {reason}")]
    BuildParam {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(
        "got {got} embedding values for {passages} passages of dim {dim} (expected {expected})"
    )]
    EmbeddingCount {
        got: usize,
        passages: usize,
        dim: usize,
        expected: usize,
    },
    #[error("embedding of passage `{id}` is not L2-normalized (norm {norm})")]
    NotNormalized { id: String, norm: f32 },
    #[error("{path} already exists; pass overwrite to replace it")]
    OutputExists { path: PathBuf },
    #[error("{path} is a non-empty folder without index.json; refusing to replace it")]
    OutputNotIndex { path: PathBuf },

    #[error("query vector has dim {got}, the index has dim {expected}")]
    QueryDim { got: usize, expected: usize },
    #[error("query vector contains a non-finite value")]
    QueryNotFinite,
    #[error("language filter `{code}` is not an ISO 639-1 code (two lowercase letters such as `en`, `zh`)")]
    FilterLanguage { code: String },

    /// A remote backend cannot be reached or refused the call; worth a retry elsewhere.
    #[error("{backend} index unavailable: {reason}")]
    Unavailable { backend: String, reason: String },
    /// A remote backend did not answer within the request's deadline or its own timeout.
    #[error("{backend} index did not answer within {waited_ms} ms")]
    Timeout { backend: String, waited_ms: u64 },
    /// A remote backend answered with something this build cannot use (a bug or a collection
    /// not written by `xling index build --to-qdrant`).
    #[error("{backend} index: {reason}")]
    Remote { backend: String, reason: String },
}

impl IndexError {
    /// `vectors` must hold one `dim`-wide row per passage.
    pub fn check_embedding_count(
        passages: usize,
        vectors: usize,
        dim: usize,
    ) -> Result<(), IndexError> {
        let expected = passages * dim;
        if vectors == expected {
            return Ok(());
        }
        Err(IndexError::EmbeddingCount {
            got: vectors,
            passages,
            dim,
            expected,
        })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> IndexError {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            IndexError::MissingFile { path }
        } else {
            IndexError::Io { path, source }
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> IndexError {
        IndexError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
