//! The loaded index: passages, raw embeddings, the HNSW graph and per-language slot lists.

use std::path::{Path, PathBuf};

use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::HnswIo;

use crate::corpus::Passage;
use crate::distance::UnitDot;
use crate::error::IndexError;
use crate::store::{
    read_embeddings, read_passages_file, sha256_file, write_embeddings, write_passages,
    IndexManifest, EMBEDDINGS_FILE, PASSAGES_FILE,
};

pub(crate) type Graph = Hnsw<'static, f32, UnitDot>;

/// Default of [`Index::set_exact_subset_max`]: when the passages a query may return (the whole
/// index, or the languages of its filter) number at most this many, an exact scan answers it.
/// Measured with `xling index bench` on 13,014 XQuAD-R sentences and 1,000 XQuAD questions
/// (multilingual-e5-small, release build, 2 busy cores): the scan costs 0.045-0.057 us a row
/// (p50 55 us for 1,234 rows, 333 us for 7,300, 747 us for 13,014), the graph p50 223 / 419 /
/// 694 us at ef 32 / 64 / 128 (recall@10 0.974 / 0.988 / 0.994). Up to about 8k rows the exact
/// answer costs no more than ef 64.
pub const DEFAULT_EXACT_SUBSET_MAX: usize = 8192;

/// A searchable passage index. `search` and `exact_search` take `&self` and are safe to call
/// from many threads at once (hnsw_rs searches under read locks only).
pub struct Index {
    /// Where it was loaded from or last saved to; names the index in error messages.
    pub(crate) dir: Option<PathBuf>,
    pub(crate) manifest: IndexManifest,
    pub(crate) passages: Vec<Passage>,
    /// `count x dim`, slot order.
    pub(crate) embeddings: Vec<f32>,
    pub(crate) graph: Graph,
    pub(crate) languages: LanguageSlots,
    /// Passage id -> slot.
    pub(crate) ids: std::collections::HashMap<String, u32>,
    /// See [`Index::set_exact_subset_max`].
    pub(crate) exact_subset_max: usize,
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
    pub(crate) fn new(passages: &[Passage]) -> LanguageSlots {
        let mut codes: Vec<String> = passages.iter().map(|p| p.language.clone()).collect();
        codes.sort();
        codes.dedup();
        let mut slots = vec![Vec::new(); codes.len()];
        let of_slot = passages
            .iter()
            .enumerate()
            .map(|(slot, p)| {
                let lang = codes
                    .binary_search(&p.language)
                    .expect("code collected above");
                slots[lang].push(slot as u32);
                lang as u16 // at most 184 ISO 639-1 codes exist
            })
            .collect();
        LanguageSlots {
            codes,
            of_slot,
            slots,
        }
    }

    /// Passages per language code, as the manifest records them.
    pub(crate) fn counts(&self) -> std::collections::BTreeMap<String, usize> {
        self.codes
            .iter()
            .cloned()
            .zip(self.slots.iter().map(Vec::len))
            .collect()
    }
}

impl Index {
    /// The one place an `Index` is put together, built in memory (`dir` None) or loaded.
    pub(crate) fn assemble(
        dir: Option<PathBuf>,
        manifest: IndexManifest,
        passages: Vec<Passage>,
        embeddings: Vec<f32>,
        graph: Graph,
        languages: LanguageSlots,
    ) -> Index {
        let ids = passages
            .iter()
            .enumerate()
            .map(|(slot, p)| (p.id.clone(), slot as u32))
            .collect();
        Index {
            dir,
            manifest,
            ids,
            passages,
            embeddings,
            graph,
            languages,
            exact_subset_max: DEFAULT_EXACT_SUBSET_MAX,
        }
    }

    /// Loads an index folder written by [`Index::save`], verifying every file's checksum first.
    pub fn load(dir: &Path) -> Result<Index, IndexError> {
        let manifest = IndexManifest::read(dir)?;
        for hnsw_file in manifest.hnsw_files() {
            if !manifest.files.contains_key(&hnsw_file) {
                return Err(IndexError::corrupt(
                    dir.join(crate::store::MANIFEST_FILE),
                    format!("no checksum listed for {hnsw_file}"),
                ));
            }
        }
        for (name, expected) in &manifest.files {
            let path = dir.join(name);
            let actual = sha256_file(&path)?;
            if &actual != expected {
                return Err(IndexError::corrupt(
                    &path,
                    "checksum differs from index.json (file changed, truncated or damaged)",
                ));
            }
        }
        let passages = read_passages_file(&dir.join(PASSAGES_FILE), manifest.count)?;
        let embeddings = read_embeddings(&dir.join(EMBEDDINGS_FILE), manifest.count, manifest.dim)?;
        let graph = load_graph(dir, &manifest)?;
        let languages = LanguageSlots::new(&passages);
        if languages.counts() != manifest.languages {
            return Err(IndexError::corrupt(
                dir.join(PASSAGES_FILE),
                "language counts differ from index.json",
            ));
        }
        Ok(Index::assemble(
            Some(dir.to_path_buf()),
            manifest,
            passages,
            embeddings,
            graph,
            languages,
        ))
    }

    /// Writes the index to `dir` through a temporary sibling folder renamed into place, so a
    /// failure never leaves a half-written index; an existing `dir` is replaced only when
    /// `overwrite` is set.
    pub fn save(&mut self, dir: &Path, overwrite: bool) -> Result<(), IndexError> {
        if dir.exists() {
            let path = dir.to_path_buf();
            if !overwrite {
                return Err(IndexError::OutputExists { path });
            }
            let empty = std::fs::read_dir(dir)
                .map_err(|e| IndexError::io(dir, e))?
                .next()
                .is_none();
            if !empty && !dir.join(crate::store::MANIFEST_FILE).is_file() {
                return Err(IndexError::OutputNotIndex { path });
            }
        }
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| IndexError::io(&parent, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".xling-index-tmp-")
            .tempdir_in(&parent)
            .map_err(|e| IndexError::io(&parent, e))?;
        let manifest = self.write_files(tmp.path())?;

        if dir.exists() {
            // Move the old index aside first: rename cannot replace a non-empty folder.
            let old = tempfile::Builder::new()
                .prefix(".xling-index-old-")
                .tempdir_in(&parent)
                .map_err(|e| IndexError::io(&parent, e))?;
            let aside = old.path().join("index");
            std::fs::rename(dir, &aside).map_err(|e| IndexError::io(dir, e))?;
            if let Err(e) = std::fs::rename(tmp.path(), dir) {
                // Put the old index back; the new one is dropped with `tmp`.
                let _ = std::fs::rename(&aside, dir);
                return Err(IndexError::io(dir, e));
            }
        } else {
            std::fs::rename(tmp.path(), dir).map_err(|e| IndexError::io(dir, e))?;
        }
        let _ = tmp.keep(); // now lives at `dir`: must not be deleted on drop
        self.manifest = manifest;
        self.dir = Some(dir.to_path_buf());
        Ok(())
    }

    fn write_files(&self, dir: &Path) -> Result<IndexManifest, IndexError> {
        write_passages(&dir.join(PASSAGES_FILE), &self.passages)?;
        write_embeddings(&dir.join(EMBEDDINGS_FILE), &self.embeddings)?;
        let basename = guarded(|| self.graph.file_dump(dir, "hnsw"))
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|reason| IndexError::corrupt(dir.join("hnsw.hnsw.graph"), reason))?;
        let mut manifest = self.manifest.clone();
        manifest.hnsw_basename = basename;
        manifest.files.clear();
        let mut names = vec![PASSAGES_FILE.to_string(), EMBEDDINGS_FILE.to_string()];
        names.extend(manifest.hnsw_files());
        for name in names {
            let sha = sha256_file(&dir.join(&name))?;
            manifest.files.insert(name, sha);
        }
        manifest.write(dir)?;
        Ok(manifest)
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
        self.passages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    pub fn dim(&self) -> usize {
        self.manifest.dim
    }

    /// Sets the number of candidate passages up to which searches scan exactly instead of
    /// walking the graph (see [`DEFAULT_EXACT_SUBSET_MAX`]); 0 always walks the graph.
    pub fn set_exact_subset_max(&mut self, passages: usize) {
        self.exact_subset_max = passages;
    }

    /// Every passage, in slot order.
    pub fn passages(&self) -> &[Passage] {
        &self.passages
    }

    /// Every stored embedding, `len() x dim()` values in slot order.
    pub fn embeddings(&self) -> &[f32] {
        &self.embeddings
    }

    /// The passage in `slot` (slots come from [`crate::Hit`]); `None` when out of range.
    /// Owned: a mapped store decodes it on each call.
    pub fn passage(&self, slot: u32) -> Option<Passage> {
        self.passages.get(slot as usize).cloned()
    }

    /// The slot of the passage with this id.
    pub fn slot_of(&self, id: &str) -> Option<u32> {
        self.ids.get(id).copied()
    }

    /// Passages per language code.
    pub fn language_counts(&self) -> std::collections::BTreeMap<String, usize> {
        self.languages.counts()
    }

    /// The stored embedding of `slot`.
    pub fn embedding(&self, slot: u32) -> Option<&[f32]> {
        let dim = self.manifest.dim;
        let start = slot as usize * dim;
        self.embeddings.get(start..start + dim)
    }
}

/// Reloads the hnsw_rs dump. The loaded graph borrows its `HnswIo` (a lifetime only: without
/// mmap the data is owned), so the small `HnswIo` is leaked to make the graph `'static`.
fn load_graph(dir: &Path, manifest: &IndexManifest) -> Result<Graph, IndexError> {
    let graph_path = dir.join(&manifest.hnsw_files()[0]);
    let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, &manifest.hnsw_basename)));
    let graph: Graph = guarded(|| io.load_hnsw::<f32, UnitDot>())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|reason| IndexError::corrupt(&graph_path, reason))?;
    if graph.get_nb_point() != manifest.count {
        return Err(IndexError::corrupt(
            &graph_path,
            format!(
                "{} points, the manifest says {}",
                graph.get_nb_point(),
                manifest.count
            ),
        ));
    }
    Ok(graph)
}

/// Runs hnsw_rs code that asserts or panics on bad files, turning a panic into an error text.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|payload| xling_panic::message(&*payload))
}
