//! The on-disk layout of an index folder (format 3) and its manifest.
//!
//! ```text
//! DIR/index.json          manifest (IndexManifest): sizes and SHA-256 of every file
//! DIR/vectors.f32         count x dim f32 little endian, row = slot: the one fp32 copy, mapped
//! DIR/vectors.i8          count x dim i8 (only when quantized; scales in the manifest): mapped,
//!                         what an int8 index's graph walk reads
//! DIR/graph.adj           the HNSW graph, flat u32 neighbour blocks (see `adjacency`), mapped
//! DIR/passages.bin        passage records in slot order (see `passages`)
//! DIR/passages.idx        count + 1 u64 LE offsets into passages.bin
//! DIR/ids.idx             count x (u64 LE id hash, u32 LE slot), sorted by hash then slot
//! DIR/languages.u16       per slot, u16 LE position of its language in the manifest's codes
//! ```

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::adjacency::ADJACENCY_FILE;
use crate::corpus::hex;
use crate::error::IndexError;

pub const MANIFEST_FILE: &str = "index.json";
pub const VECTORS_FILE: &str = "vectors.f32";
pub const VECTORS_I8_FILE: &str = "vectors.i8";
pub const PASSAGES_FILE: &str = "passages.bin";
pub const PASSAGES_IDX_FILE: &str = "passages.idx";
pub const IDS_FILE: &str = "ids.idx";
pub const LANGUAGES_FILE: &str = "languages.u16";
/// Bytes per `ids.idx` entry.
pub(crate) const ID_ENTRY: usize = 12;
/// Bumped whenever the folder layout or a file format changes. Version 2 kept hnsw_rs's own
/// dump (`graph.hnsw.graph` + `graph.hnsw.data`) instead of `graph.adj`; `xling index upgrade`
/// converts such a folder.
pub const FORMAT_VERSION: u32 = 3;

// Every file is little endian and read in place through the map.
#[cfg(target_endian = "big")]
compile_error!("index files are little endian and mapped in place");

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
    /// Passages per ISO 639-1 language; its sorted keys are what `languages.u16` numbers.
    pub languages: BTreeMap<String, usize>,
    /// Wall time spent embedding the passages (0 when embeddings were given).
    pub encode_seconds: f64,
    /// Wall time of the graph build (HNSW insertions, then `graph.adj` written).
    pub build_seconds: f64,
    /// RFC 3339 UTC time of the build.
    pub created: String,
    /// SHA-256 of the corpus the passages came from.
    pub corpus_sha256: String,
    /// Present when the graph walks int8 rows (`vectors.i8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<Quantization>,
    /// Bumped by a live index each time it replaces the folder's data (0 for a fresh build).
    #[serde(default)]
    pub generation: u64,
    /// Size and SHA-256 of each data file, by name: load checks the sizes (fast), `xling index
    /// verify` the hashes (hashing 1.5 GB would break the 10 s startup budget).
    pub files: BTreeMap<String, FileEntry>,
}

/// One data file's size and digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub bytes: u64,
    pub sha256: String,
}

/// Scalar quantization of the walk's vectors: `value ~= scale[d] * q`, `q` in -127..=127, per
/// dimension `d` (symmetric: see the `quant` module for why there is no offset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantization {
    /// Always `int8`.
    pub kind: String,
    pub scale: Vec<f32>,
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
        if version.format_version == 2 {
            return Err(IndexError::NeedsUpgrade {
                dir: dir.to_path_buf(),
            });
        }
        if version.format_version != FORMAT_VERSION {
            return Err(IndexError::FormatVersion {
                path,
                found: version.format_version,
                expected: FORMAT_VERSION,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| IndexError::corrupt(&path, e.to_string()))
    }

    /// Writes `index.json` and syncs it: it is the last file of a build, the one that makes
    /// the folder an index.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), IndexError> {
        self.write_as(&dir.join(MANIFEST_FILE))
    }

    /// Writes the manifest to `path` and syncs it.
    pub(crate) fn write_as(&self, path: &Path) -> Result<(), IndexError> {
        let json = serde_json::to_vec_pretty(self).expect("the manifest always serializes");
        write_synced(path, &json)
    }

    /// Every data file of the folder with the size its header fields imply (`None`: any size).
    pub(crate) fn expected_files(&self) -> Vec<(String, Option<u64>)> {
        let (count, dim) = (self.count as u64, self.dim as u64);
        let mut files = vec![
            (VECTORS_FILE.to_string(), Some(count * dim * 4)),
            (PASSAGES_FILE.to_string(), None),
            (PASSAGES_IDX_FILE.to_string(), Some((count + 1) * 8)),
            (IDS_FILE.to_string(), Some(count * ID_ENTRY as u64)),
            (LANGUAGES_FILE.to_string(), Some(count * 2)),
        ];
        if self.quantization.is_some() {
            files.push((VECTORS_I8_FILE.to_string(), Some(count * dim)));
        }
        files.push((ADJACENCY_FILE.to_string(), None));
        files
    }

    /// Checks every file's size against the manifest (and the header fields): no hashing.
    pub(crate) fn check_sizes(&self, dir: &Path) -> Result<(), IndexError> {
        for (name, implied) in self.expected_files() {
            let path = dir.join(&name);
            let Some(entry) = self.files.get(&name) else {
                return Err(IndexError::corrupt(
                    dir.join(MANIFEST_FILE),
                    format!("{name} is not listed"),
                ));
            };
            let actual = std::fs::metadata(&path)
                .map_err(|e| IndexError::io(&path, e))?
                .len();
            if actual != entry.bytes || implied.is_some_and(|n| n != actual) {
                return Err(IndexError::corrupt(
                    &path,
                    format!(
                        "{actual} bytes, index.json says {} (file changed, truncated or damaged)",
                        entry.bytes
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks every file's SHA-256 against the manifest (`xling index verify`).
    pub(crate) fn check_hashes(&self, dir: &Path) -> Result<(), IndexError> {
        self.check_sizes(dir)?;
        for (name, entry) in &self.files {
            let path = dir.join(name);
            if sha256_file(&path)? != entry.sha256 {
                return Err(IndexError::corrupt(
                    &path,
                    "SHA-256 differs from index.json (file changed or damaged)",
                ));
            }
        }
        Ok(())
    }

    /// Lists size and SHA-256 of every expected file in `dir`.
    pub(crate) fn record_files(&mut self, dir: &Path) -> Result<(), IndexError> {
        self.files.clear();
        for (name, _) in self.expected_files() {
            let path = dir.join(&name);
            let bytes = std::fs::metadata(&path)
                .map_err(|e| IndexError::io(&path, e))?
                .len();
            let sha256 = sha256_file(&path)?;
            self.files.insert(name, FileEntry { bytes, sha256 });
        }
        Ok(())
    }
}

/// Writes a whole file and syncs it to disk.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let io = |e| IndexError::io(path, e);
    let mut file = std::fs::File::create(path).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)
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

/// Maps a whole file read-only.
pub(crate) fn map_file(path: &Path) -> Result<memmap2::Mmap, IndexError> {
    let file = std::fs::File::open(path).map_err(|e| IndexError::io(path, e))?;
    // SAFETY: index files are immutable once renamed into place (builds write a new folder,
    // swaps replace whole folders), so the mapped bytes do not change under the reader.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| IndexError::io(path, e))
}

/// The mapped bytes of `vectors.f32` as f32 values (little endian, checked at compile time).
pub(crate) fn f32_rows(map: &[u8]) -> &[f32] {
    // A map starts on a page boundary; checked anyway, since the cast below relies on it.
    assert_eq!(
        map.as_ptr().align_offset(4),
        0,
        "mapped files are page aligned"
    );
    // SAFETY: aligned (above), any bit pattern is an f32, length rounded down to whole values.
    unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<f32>(), map.len() / 4) }
}

/// The mapped bytes of `vectors.i8` as i8 values.
pub(crate) fn i8_rows(map: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment; any bit pattern is an i8.
    unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<i8>(), map.len()) }
}

/// Moves the finished folder `from` to `dir`, replacing an existing index there only with
/// `overwrite`; never replaces a non-empty folder that is not an index.
pub(crate) fn place(from: &Path, dir: &Path, overwrite: bool) -> Result<(), IndexError> {
    if dir.exists() {
        let path = dir.to_path_buf();
        if !overwrite {
            return Err(IndexError::OutputExists { path });
        }
        let empty = std::fs::read_dir(dir)
            .map_err(|e| IndexError::io(dir, e))?
            .next()
            .is_none();
        if !empty && !dir.join(MANIFEST_FILE).is_file() {
            return Err(IndexError::OutputNotIndex { path });
        }
        // Move the old index aside first: rename cannot replace a non-empty folder.
        let parent = parent_of(dir);
        let old = tempfile::Builder::new()
            .prefix(".xling-index-old-")
            .tempdir_in(&parent)
            .map_err(|e| IndexError::io(&parent, e))?;
        let aside = old.path().join("index");
        std::fs::rename(dir, &aside).map_err(|e| IndexError::io(dir, e))?;
        if let Err(e) = std::fs::rename(from, dir) {
            let _ = std::fs::rename(&aside, dir); // put the old index back
            return Err(IndexError::io(dir, e));
        }
        // `old` (with the previous index) is deleted on drop.
        return Ok(());
    }
    std::fs::rename(from, dir).map_err(|e| IndexError::io(dir, e))
}

/// The folder `dir` lives in (`.` for a bare name).
pub(crate) fn parent_of(dir: &Path) -> std::path::PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    }
}
