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
//! - [`encoder`]: [`Encoder`], one ONNX Runtime session (or a `sim` backend); packs a batch,
//!   runs it, pools, normalizes. Several encoders on their own threads are the service's
//!   encoder instances.
//! - [`pack`]: [`pack::Packed`], the padded input buffers an encoder reuses across batches.
//! - [`sim`]: [`EncoderKind`]; the simulated device and the null encoder that benchmarks put
//!   in the ONNX session's place.
//! - [`error`]: [`EncoderError`], the one error type of this crate.

pub mod encoder;
pub mod error;
pub mod manifest;
pub mod pack;
pub mod runtime;
pub mod sim;
pub mod tokenize;

pub use encoder::{Backend, Device, Encoder, EncoderOptions};
pub use error::EncoderError;
pub use manifest::{Manifest, Pooling};
pub use sim::{EncoderKind, SimDevice, SimSpec};
pub use tokenize::{Mode, TextTokenizer, Tokens};

/// The cache folder the setup script fills: `$XLING_HOME`, else `$HOME/.cache/xling`.
pub fn xling_home() -> std::path::PathBuf {
    if let Some(home) = std::env::var_os("XLING_HOME") {
        return home.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    std::path::Path::new(&home).join(".cache").join("xling")
}
