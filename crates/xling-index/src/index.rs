//! The loaded index (format 3): mapped vectors, passages and graph; per-language slot lists in
//! RAM.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::adjacency::{Adjacency, ADJACENCY_FILE};
use crate::corpus::Passage;
use crate::error::IndexError;
use crate::rows::StoredRows;
use crate::store::{
    i8_rows, map_file, parent_of, place, IndexManifest, LANGUAGES_FILE, MANIFEST_FILE,
    VECTORS_I8_FILE,
};

/// Default of [`Index::set_exact_subset_max`]: when the passages a query may return (the whole
/// index, or the languages of its filter) number at most this many, an exact scan answers it.
/// Measured with `xling index bench` on 13,014 XQuAD-R sentences and 1,000 XQuAD questions
/// (multilingual-e5-small, release build, 2 busy cores): the scan costs 0.045-0.057 us a row
/// (p50 55 us for 1,234 rows, 333 us for 7,300, 747 us for 13,014), the graph p50 223 / 419 /
/// 694 us at ef 32 / 64 / 128 (recall@10 0.974 / 0.988 / 0.994). Up to about 8k rows the exact
/// answer costs no more than ef 64.
pub const DEFAULT_EXACT_SUBSET_MAX: usize = 8192;

/// Default of [`Index::set_rescore_oversample`]: an int8 walk fetches this many candidates per
/// wanted hit, rescored with the fp32 rows.
pub const DEFAULT_RESCORE_OVERSAMPLE: usize = 3;

/// A searchable passage index. `search` and `exact_search` take `&self` and are safe to call
/// from many threads at once (the files are mapped read-only; walks share nothing but a pool
/// of visited sets).
pub struct Index {
    /// Where it was loaded from or last saved to; names the index in error messages.
    pub(crate) dir: Option<PathBuf>,
    /// Where its files are (`dir`, or a scratch folder for an index built in memory).
    files_dir: PathBuf,
    pub(crate) manifest: IndexManifest,
    /// The mapped `vectors.f32` and passages.
    rows: StoredRows,
    /// The int8 rows the walk reads, when it is quantized.
    int8: Option<Int8Rows>,
    /// The mapped `graph.adj`.
    pub(crate) graph: Adjacency,
    pub(crate) languages: LanguageSlots,
    /// See [`Index::set_exact_subset_max`].
    pub(crate) exact_subset_max: usize,
    /// See [`Index::set_rescore_oversample`].
    pub(crate) rescore_oversample: usize,
    /// Keeps an in-memory build's files alive; dropped (deleted) last.
    _scratch: Option<tempfile::TempDir>,
}

/// The mapped `vectors.i8` and the per-dimension scales that quantize a query like them.
pub(crate) struct Int8Rows {
    pub(crate) scale: Vec<f32>,
    map: memmap2::Mmap,
}

impl Int8Rows {
    pub(crate) fn rows(&self) -> &[i8] {
        i8_rows(&self.map)
    }
}

/// Slots grouped by language, for cheap language filters.
pub(crate) struct LanguageSlots {
    /// Distinct codes present, sorted.
    pub(crate) codes: Vec<String>,
    /// Per slot, its language's position in `codes`.
    pub(crate) of_slot: Vec<u16>,
    /// Per language (position in `codes`), its slots in increasing order.
    pub(crate) slots: Vec<Vec<u32>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("dir", &self.dir)
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

impl LanguageSlots {
    /// From `languages.u16`, checked against the manifest's codes and counts.
    fn load(dir: &Path, manifest: &IndexManifest) -> Result<LanguageSlots, IndexError> {
        let path = dir.join(LANGUAGES_FILE);
        let bytes = std::fs::read(&path).map_err(|e| IndexError::io(&path, e))?;
        let codes: Vec<String> = manifest.languages.keys().cloned().collect();
        let mut slots = vec![Vec::new(); codes.len()];
        let mut of_slot = Vec::with_capacity(manifest.count);
        for (slot, b) in bytes.chunks_exact(2).enumerate() {
            let lang = u16::from_le_bytes([b[0], b[1]]);
            let list = slots.get_mut(lang as usize).ok_or_else(|| {
                IndexError::corrupt(&path, format!("slot {slot} has language number {lang}"))
            })?;
            list.push(slot as u32);
            of_slot.push(lang);
        }
        let languages = LanguageSlots {
            codes,
            of_slot,
            slots,
        };
        if languages.counts() != manifest.languages {
            return Err(IndexError::corrupt(
                &path,
                "language counts differ from index.json",
            ));
        }
        Ok(languages)
    }

    /// Passages per language code, as the manifest records them.
    pub(crate) fn counts(&self) -> BTreeMap<String, usize> {
        self.codes
            .iter()
            .cloned()
            .zip(self.slots.iter().map(Vec::len))
            .collect()
    }
}

impl Index {
    /// Loads an index folder written by [`crate::IndexWriter`] or [`Index::save`]: checks every
    /// file's size against the manifest (hashes: [`Index::verify`]), maps the vectors and the
    /// passages, and reloads the graph with its points mapped.
    pub fn load(dir: &Path) -> Result<Index, IndexError> {
        Index::open(dir, None)
    }

    fn open(dir: &Path, scratch: Option<tempfile::TempDir>) -> Result<Index, IndexError> {
        let (manifest, rows) = StoredRows::open(dir)?;
        let int8 = match &manifest.quantization {
            Some(q) if q.kind == "int8" && q.scale.len() == manifest.dim => Some(Int8Rows {
                scale: q.scale.clone(),
                map: map_file(&dir.join(VECTORS_I8_FILE))?,
            }),
            Some(q) => {
                return Err(IndexError::corrupt(
                    dir.join(MANIFEST_FILE),
                    format!("quantization {} with {} scales", q.kind, q.scale.len()),
                ))
            }
            None => None,
        };
        let languages = LanguageSlots::load(dir, &manifest)?;
        let graph = Adjacency::open(&dir.join(ADJACENCY_FILE), manifest.count)?;
        Ok(Index {
            dir: scratch.is_none().then(|| dir.to_path_buf()),
            files_dir: dir.to_path_buf(),
            manifest,
            rows,
            int8,
            graph,
            languages,
            exact_subset_max: DEFAULT_EXACT_SUBSET_MAX,
            rescore_oversample: DEFAULT_RESCORE_OVERSAMPLE,
            _scratch: scratch,
        })
    }

    /// Loads an index just written into `scratch` (an in-memory build): its files live as long
    /// as the index.
    pub(crate) fn open_scratch(
        dir: &Path,
        scratch: tempfile::TempDir,
    ) -> Result<Index, IndexError> {
        Index::open(dir, Some(scratch))
    }

    /// Checks every file of an index folder against its manifest's SHA-256 (`xling index
    /// verify`); slow on a large index, which is why [`Index::load`] checks sizes only.
    pub fn verify(dir: &Path) -> Result<IndexManifest, IndexError> {
        let manifest = IndexManifest::read(dir)?;
        manifest.check_hashes(dir)?;
        Ok(manifest)
    }

    /// Writes the index to `dir` (its files linked, or copied across file systems, into a
    /// temporary sibling folder renamed into place), so a failure never leaves a half-written
    /// index; an existing `dir` is replaced only when `overwrite` is set.
    pub fn save(&mut self, dir: &Path, overwrite: bool) -> Result<(), IndexError> {
        if dir.exists() && !overwrite {
            return Err(IndexError::OutputExists {
                path: dir.to_path_buf(),
            });
        }
        let parent = parent_of(dir);
        std::fs::create_dir_all(&parent).map_err(|e| IndexError::io(&parent, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".xling-index-tmp-")
            .tempdir_in(&parent)
            .map_err(|e| IndexError::io(&parent, e))?;
        let names = self.manifest.files.keys().map(String::as_str);
        for name in names.chain([MANIFEST_FILE]) {
            let (from, to) = (self.files_dir.join(name), tmp.path().join(name));
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).map_err(|e| IndexError::io(&to, e))?;
            }
        }
        place(tmp.path(), dir, overwrite)?;
        let _ = tmp.keep(); // now lives at `dir`: must not be deleted on drop
        self.dir = Some(dir.to_path_buf());
        Ok(())
    }

    /// Fails with a clear message when the index was built by another model or dimension.
    pub fn check_model(&self, model_id: &str, dim: usize) -> Result<(), IndexError> {
        if self.manifest.model_id == model_id && self.manifest.dim == dim {
            return Ok(());
        }
        Err(IndexError::ModelMismatch {
            dir: self
                .dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("<memory>")),
            index_model: self.manifest.model_id.clone(),
            index_dim: self.manifest.dim,
            model: model_id.to_string(),
            dim,
        })
    }

    pub fn manifest(&self) -> &IndexManifest {
        &self.manifest
    }

    pub fn len(&self) -> usize {
        self.manifest.count
    }

    pub fn is_empty(&self) -> bool {
        self.manifest.count == 0
    }

    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// Sets the number of candidate passages up to which searches scan exactly instead of
    /// walking the graph at ef 64 (see [`DEFAULT_EXACT_SUBSET_MAX`]); a walk that needs a
    /// larger ef (a small language's filter) raises it in proportion (see [`Index::plan`]).
    /// 0 always walks the graph, `usize::MAX` always scans.
    pub fn set_exact_subset_max(&mut self, passages: usize) {
        self.exact_subset_max = passages;
    }

    /// Sets how many candidates per wanted hit an int8 walk fetches for fp32 rescoring
    /// (see [`DEFAULT_RESCORE_OVERSAMPLE`]; at least 1). No effect on an fp32 index.
    pub fn set_rescore_oversample(&mut self, factor: usize) {
        self.rescore_oversample = factor.max(1);
    }

    /// Every stored embedding, `len() x dim()` values in slot order (mapped, not in RAM).
    pub fn embeddings(&self) -> &[f32] {
        self.rows.embeddings()
    }

    /// Every passage in slot order, each decoded from the mapped store as it is reached.
    pub fn passages_iter(&self) -> impl Iterator<Item = Passage> + '_ {
        (0..self.len() as u32).filter_map(move |slot| self.passage(slot))
    }

    /// The passage in `slot` (slots come from [`crate::Hit`]); `None` when out of range.
    /// Owned: decoded from the mapped store on each call.
    pub fn passage(&self, slot: u32) -> Option<Passage> {
        self.rows.passage(slot)
    }

    /// The slot of the passage with this id (binary search of `ids.idx` on the map).
    pub fn slot_of(&self, id: &str) -> Option<u32> {
        self.rows.slot_of(id)
    }

    /// Passages per language code.
    pub fn language_counts(&self) -> BTreeMap<String, usize> {
        self.languages.counts()
    }

    /// The stored embedding of `slot`.
    pub fn embedding(&self, slot: u32) -> Option<&[f32]> {
        self.rows.embedding(slot)
    }

    /// The int8 rows and scales of a quantized index.
    pub(crate) fn int8(&self) -> Option<&Int8Rows> {
        self.int8.as_ref()
    }

    /// Bytes this index holds in RAM: the per-slot language tables (2 + 4 bytes a passage).
    /// Not counted: the walks' visited sets (2 bytes a passage per concurrent walk, kept for
    /// reuse), which grow with the load after this figure is reported at load time.
    pub fn bytes_in_ram(&self) -> u64 {
        self.len() as u64 * 6
    }

    /// Bytes mapped from its files (resident only as far as the page cache keeps them): the
    /// vectors, passages and graph, and the int8 rows of a quantized index.
    pub fn bytes_mapped(&self) -> u64 {
        let int8 = self.int8.as_ref().map_or(0, |q| q.map.len() as u64);
        self.rows.mapped_bytes() + self.graph.mapped_bytes() + int8
    }
}
