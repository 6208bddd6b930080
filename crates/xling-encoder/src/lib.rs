//! Text in, L2-normalized embeddings out: a model folder's tokenizer plus its ONNX graph run by
//! ONNX Runtime (CPU, or the CUDA execution provider).
//!
//! This crate knows nothing of gRPC or batching policy: callers hand it a batch of tokenized
//! texts and get one embedding per text back.
//!
//! # Layout
//! - [`manifest`]: `model.toml`, the model folder's description, validated on load.
//! - [`tokenize`]: [`TextTokenizer`], prefixes, special tokens and truncation to `max_length`.
//! - [`runtime`]: finds and loads `libonnxruntime` once per process.
//! - [`encoder`]: [`Encoder`], one ONNX Runtime session; pads a batch, runs it, pools, normalizes.
//! - [`error`]: [`EncoderError`], the one error type of this crate.

pub mod encoder;
pub mod error;
pub mod manifest;
pub mod runtime;
pub mod tokenize;

pub use encoder::{Device, Encoder, EncoderOptions};
pub use error::EncoderError;
pub use manifest::{Manifest, Pooling};
pub use tokenize::{Mode, TextTokenizer, Tokens};

/// The cache folder the setup script fills: `$XLING_HOME`, else `$HOME/.cache/xling`.
pub fn xling_home() -> std::path::PathBuf {
    if let Some(home) = std::env::var_os("XLING_HOME") {
        return home.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    std::path::Path::new(&home).join(".cache").join("xling")
}
