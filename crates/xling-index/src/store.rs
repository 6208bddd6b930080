//! The on-disk layout of an index folder and its manifest.
//!
//! ```text
//! DIR/index.json          manifest (IndexManifest), with a SHA-256 per data file
//! DIR/passages.jsonl      passages in slot order (id, text, language, title)
//! DIR/embeddings.f32      count x dim f32 little endian, slot order (exact search, reproducibility)
//! DIR/<hnsw>.hnsw.graph   hnsw_rs dump (graph); <hnsw> is `hnsw_basename` in the manifest
//! DIR/<hnsw>.hnsw.data    hnsw_rs dump (vectors)
//! ```

use std::collections::BTreeMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::corpus::{hex, read_passages, Passage};
use crate::error::IndexError;

pub const MANIFEST_FILE: &str = "index.json";
pub const PASSAGES_FILE: &str = "passages.jsonl";
pub const EMBEDDINGS_FILE: &str = "embeddings.f32";
/// Bumped whenever the folder layout or a file format changes.
pub const FORMAT_VERSION: u32 = 1;

/// `index.json`: what was built, from what, with which parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexManifest {
    pub format_version: u32,
    /// `id` from the model's `model.toml`; queries must be embedded by the same model.
    pub model_id: String,
    pub dim: usize,
    /// HNSW max links per node and layer.
    pub m: usize,
    pub ef_construction: usize,
    pub count: usize,
    /// Passages per ISO 639-1 language.
    pub languages: BTreeMap<String, usize>,
    /// Wall time spent embedding the passages (0 when embeddings were given).
    pub encode_seconds: f64,
    /// Wall time of the HNSW insertions.
    pub build_seconds: f64,
    /// RFC 3339 UTC time of the build.
    pub created: String,
    /// SHA-256 of the corpus the passages came from.
    pub corpus_sha256: String,
    /// Base name of the hnsw_rs dump files (`<name>.hnsw.graph`, `<name>.hnsw.data`).
    pub hnsw_basename: String,
    /// SHA-256 of each data file, by file name: checked on load, because hnsw_rs panics on
    /// damaged dumps instead of returning an error.
    pub files: BTreeMap<String, String>,
}

impl IndexManifest {
    pub(crate) fn read(dir: &Path) -> Result<IndexManifest, IndexError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&path).map_err(|e| IndexError::io(&path, e))?;
        // Check the version alone first so an old or newer layout gets the precise message.
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let version: Version = serde_json::from_slice(&bytes)
            .map_err(|e| IndexError::corrupt(&path, e.to_string()))?;
        if version.format_version != FORMAT_VERSION {
            return Err(IndexError::FormatVersion {
                path,
                found: version.format_version,
                expected: FORMAT_VERSION,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| IndexError::corrupt(&path, e.to_string()))
    }

    pub(crate) fn write(&self, dir: &Path) -> Result<(), IndexError> {
        let path = dir.join(MANIFEST_FILE);
        let json = serde_json::to_vec_pretty(self).expect("the manifest always serializes");
        std::fs::write(&path, json).map_err(|e| IndexError::io(&path, e))
    }

    /// Names of the hnsw_rs dump files.
    pub(crate) fn hnsw_files(&self) -> [String; 2] {
        [
            format!("{}.hnsw.graph", self.hnsw_basename),
            format!("{}.hnsw.data", self.hnsw_basename),
        ]
    }
}

pub(crate) fn write_passages(path: &Path, passages: &[Passage]) -> Result<(), IndexError> {
    let io = |e| IndexError::io(path, e);
    let mut out = BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for p in passages {
        serde_json::to_writer(&mut out, p).map_err(|e| IndexError::io(path, e.into()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    out.flush().map_err(io)
}

pub(crate) fn read_passages_file(path: &Path, count: usize) -> Result<Vec<Passage>, IndexError> {
    let file = std::fs::File::open(path).map_err(|e| IndexError::io(path, e))?;
    let passages = read_passages(BufReader::new(file), path).map_err(|e| match e {
        IndexError::Io { .. } | IndexError::MissingFile { .. } => e,
        other => IndexError::corrupt(path, other.to_string()),
    })?;
    if passages.len() != count {
        return Err(IndexError::corrupt(
            path,
            format!("{} passages, the manifest says {count}", passages.len()),
        ));
    }
    Ok(passages)
}

pub(crate) fn write_embeddings(path: &Path, values: &[f32]) -> Result<(), IndexError> {
    let io = |e| IndexError::io(path, e);
    let mut out = BufWriter::new(std::fs::File::create(path).map_err(io)?);
    for v in values {
        out.write_all(&v.to_le_bytes()).map_err(io)?;
    }
    out.flush().map_err(io)
}

pub(crate) fn read_embeddings(
    path: &Path,
    count: usize,
    dim: usize,
) -> Result<Vec<f32>, IndexError> {
    let bytes = std::fs::read(path).map_err(|e| IndexError::io(path, e))?;
    // Checked: count and dim come from index.json, which no checksum covers.
    let expected = count.checked_mul(dim).and_then(|n| n.checked_mul(4));
    if expected != Some(bytes.len()) {
        return Err(IndexError::corrupt(
            path,
            format!("{} bytes, expected {count} x {dim} f32", bytes.len()),
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Hex SHA-256 of a file's contents.
pub(crate) fn sha256_file(path: &Path) -> Result<String, IndexError> {
    let io = |e| IndexError::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}
