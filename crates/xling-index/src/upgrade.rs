//! [`Index::upgrade`]: a format 2 folder (its graph in hnsw_rs's own dump) converted to the
//! current format in place, without re-encoding or re-inserting anything.

use std::path::Path;

use crate::adjacency::ADJACENCY_FILE;
use crate::error::IndexError;
use crate::graph::flatten_dump;
use crate::index::Index;
use crate::store::{sha256_file, FileEntry, IndexManifest, FORMAT_VERSION, MANIFEST_FILE};

impl Index {
    /// Converts the index folder `dir` from format 2 in place: flattens its hnsw_rs dump into
    /// `graph.adj`, replaces `index.json` (written beside and renamed: until that moment the
    /// folder is still a valid format 2 index), then deletes the dump. Returns the manifest
    /// and whether anything changed (a current folder is left as is).
    pub fn upgrade(dir: &Path) -> Result<(IndexManifest, bool), IndexError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = std::fs::read(&path).map_err(|e| IndexError::io(&path, e))?;
        let corrupt = |reason: String| IndexError::corrupt(&path, reason);
        let mut json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let found = json["format_version"].as_u64().unwrap_or(0) as u32;
        if found == FORMAT_VERSION {
            return Ok((IndexManifest::read(dir)?, false));
        }
        if found != 2 {
            return Err(IndexError::FormatVersion {
                path,
                found,
                expected: FORMAT_VERSION,
            });
        }
        let object = json
            .as_object_mut()
            .ok_or_else(|| corrupt("not an object".into()))?;
        let basename = object
            .remove("hnsw_basename")
            .and_then(|v| v.as_str().map(str::to_string))
            .ok_or_else(|| corrupt("format 2 without hnsw_basename".into()))?;
        object.insert("format_version".into(), FORMAT_VERSION.into());
        let mut manifest: IndexManifest =
            serde_json::from_value(json).map_err(|e| corrupt(e.to_string()))?;

        let quantized = manifest.quantization.is_some();
        let flat = flatten_dump(dir, &basename, quantized, manifest.count)?;
        let adjacency = dir.join(ADJACENCY_FILE);
        flat.write(&adjacency)?;
        let dump = [".hnsw.graph", ".hnsw.data"].map(|ext| format!("{basename}{ext}"));
        for name in &dump {
            manifest.files.remove(name);
        }
        let entry = FileEntry {
            bytes: std::fs::metadata(&adjacency)
                .map_err(|e| IndexError::io(&adjacency, e))?
                .len(),
            sha256: sha256_file(&adjacency)?,
        };
        manifest.files.insert(ADJACENCY_FILE.to_string(), entry);
        manifest.check_sizes(dir)?;

        let staged = dir.join(format!("{MANIFEST_FILE}.upgrade"));
        manifest.write_as(&staged)?;
        std::fs::rename(&staged, &path).map_err(|e| IndexError::io(&path, e))?;
        for name in &dump {
            let file = dir.join(name);
            std::fs::remove_file(&file).map_err(|e| IndexError::io(&file, e))?;
        }
        Ok((manifest, true))
    }
}
