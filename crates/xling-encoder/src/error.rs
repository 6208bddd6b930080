//! The encoder's one error type.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid model manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("cannot load tokenizer {path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("tokenization failed: {reason}")]
    Tokenize { reason: String },
    #[error(
        "ONNX Runtime library not found at {path} (run scripts/setup.sh, or set ORT_DYLIB_PATH): {reason}"
    )]
    Runtime { path: PathBuf, reason: String },
    #[error("cannot load ONNX model {path}: {reason}")]
    Session { path: PathBuf, reason: String },
    #[error("device {device} is not available: {reason}")]
    Device { device: String, reason: String },
    #[error("inference failed: {reason}")]
    Inference { reason: String },
}
