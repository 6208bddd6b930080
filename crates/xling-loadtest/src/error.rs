//! The one error type of this crate.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {reason}")]
    ConfigFile { path: PathBuf, reason: String },
    /// A setting (from the file or a flag) that is malformed or that xling loadtest cannot honour.
    #[error("invalid option {key:?}: {reason}")]
    Option { key: String, reason: String },
    #[error("invalid call data: {reason}")]
    Data { reason: String },
    #[error("cannot connect to {host}: {reason}")]
    Connect { host: String, reason: String },
    #[error("XQuAD-R data {path}: {reason}")]
    Xquad { path: PathBuf, reason: String },
    #[error("encoder benchmark: {reason}")]
    Bench { reason: String },
    #[error(transparent)]
    Encoder(#[from] xling_encoder::EncoderError),
}

impl LoadtestError {
    pub(crate) fn option(key: &str, reason: impl Into<String>) -> LoadtestError {
        LoadtestError::Option {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}
