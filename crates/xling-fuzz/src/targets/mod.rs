//! The fuzz targets, by name.
//!
//! - [`validate`]: protobuf bytes and `grpc-timeout` values through the server's validators.
//! - [`tokenize_batch`]: texts through the tokenizer, the dynamic batcher and the real ONNX
//!   encoder of `models/mt5-tiny`.
//! - [`corpus`]: JSON Lines through the index crate's corpus loader.
//! - [`dataset`]: LAReQA/SQuAD JSON through the eval crate's dataset loader.

pub mod corpus;
pub mod dataset;
pub mod tokenize_batch;
pub mod validate;

use std::path::{Path, PathBuf};

use crate::Target;

/// Every target name, in the order the docs list them.
pub const NAMES: [&str; 4] = ["validate", "tokenize-batch", "corpus", "dataset"];

/// Builds the target called `name`; `repo` is the repository root (for the tiny model).
pub fn by_name(name: &str, repo: &Path) -> anyhow::Result<Box<dyn Target>> {
    Ok(match name {
        "validate" => Box::new(validate::Validate::new()?),
        "tokenize-batch" => Box::new(tokenize_batch::TokenizeBatch::new(
            &repo.join("models/mt5-tiny"),
        )?),
        "corpus" => Box::new(corpus::CorpusTarget::new()?),
        "dataset" => Box::new(dataset::DatasetTarget::new()?),
        _ => anyhow::bail!("unknown target {name:?}; targets: {}", NAMES.join(", ")),
    })
}

/// The repository root, from this crate's manifest folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The committed seed corpus of a target.
pub fn corpus_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name)
}

/// Writes `bytes` to `path` as a new file. Rewriting an existing file in place costs ~4 ms on
/// ext4, which flushes a truncated-and-rewritten file on close (`auto_da_alloc`).
pub(crate) fn write_fresh(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    remove_if_present(path)?;
    std::fs::write(path, bytes)
}

pub(crate) fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Splits a multi-part input on 0xFF, a byte that never occurs in UTF-8.
pub(crate) fn parts(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    input.split(|&b| b == SEPARATOR)
}

/// Joins parts with the separator [`parts`] splits on.
pub(crate) fn join(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.join(&SEPARATOR)
}

/// A multi-part input as the targets lay it out: one leading byte of settings, then the parts.
pub(crate) fn framed(settings: u8, parts: &[Vec<u8>]) -> Vec<u8> {
    let mut input = vec![settings];
    input.extend(join(parts));
    input
}

/// The settings byte of a [`framed`] input (none when it is empty) and its parts.
pub(crate) fn unframe(input: &[u8]) -> (Option<u8>, impl Iterator<Item = &[u8]>) {
    match input.split_first() {
        Some((&settings, body)) => (Some(settings), parts(body)),
        None => (None, parts(input)),
    }
}

const SEPARATOR: u8 = 0xff;
