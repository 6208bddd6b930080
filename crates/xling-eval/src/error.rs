//! [`EvalError`], the one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while loading data, retrieving or reporting.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not LAReQA/SQuAD JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Dataset { path: PathBuf, message: String },
    #[error("no LAReQA files (*.json with a language code in the name) in {dir}")]
    NoFiles { dir: PathBuf },
    #[error("language {language:?} was asked for but {dir} has no file for it (found: {found})")]
    MissingLanguage {
        language: String,
        dir: PathBuf,
        found: String,
    },
    #[error("invalid option: {message}")]
    Options { message: String },
    #[error(
        "the index returned passage id {id:?}, which is not a candidate of this dataset; \
         serve an index built from `xling eval --write-corpus` on the same data and languages"
    )]
    UnknownPassage { id: String },
    #[error("cannot connect to {addr}: {message}")]
    Connect { addr: String, message: String },
    #[error("{rpc} failed: {status}")]
    Rpc {
        rpc: &'static str,
        status: Box<tonic::Status>,
    },
    #[error("encoder: {0}")]
    Encoder(#[from] xling_encoder::EncoderError),
    #[error("index: {0}")]
    Index(#[from] xling_index::IndexError),
}
