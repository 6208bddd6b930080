//! [`StoredRows`]: an index folder's passages and fp32 vectors, mapped, without its graph.
//! [`crate::Index`] serves from them; a build that reuses an older index's vectors
//! (`xling index build --reuse`) needs nothing else, so it does not pay for the graph's
//! neighbour lists in RAM.

use std::path::Path;

use memmap2::Mmap;

use crate::corpus::Passage;
use crate::error::IndexError;
use crate::passages::PassageStore;
use crate::store::{f32_rows, map_file, IndexManifest, VECTORS_FILE};

/// The mapped `vectors.f32` and passage store of an index folder.
pub struct StoredRows {
    dim: usize,
    /// `vectors.f32`: `count x dim`, slot order.
    vectors: Mmap,
    store: PassageStore,
}

impl StoredRows {
    /// Reads the manifest, checks every file's size against it (hashes: `Index::verify`) and
    /// maps the vectors and the passages; returns the manifest with them.
    pub fn open(dir: &Path) -> Result<(IndexManifest, StoredRows), IndexError> {
        let manifest = IndexManifest::read(dir)?;
        manifest.check_sizes(dir)?;
        let rows = StoredRows {
            dim: manifest.dim,
            vectors: map_file(&dir.join(VECTORS_FILE))?,
            store: PassageStore::open(dir, manifest.count)?,
        };
        Ok((manifest, rows))
    }

    /// Every stored embedding, `count x dim` values in slot order (mapped, not in RAM).
    pub fn embeddings(&self) -> &[f32] {
        f32_rows(&self.vectors)
    }

    /// The stored embedding of `slot`; `None` when out of range.
    pub fn embedding(&self, slot: u32) -> Option<&[f32]> {
        let start = slot as usize * self.dim;
        self.embeddings().get(start..start + self.dim)
    }

    /// The passage in `slot`, decoded from the mapped store; `None` when out of range.
    pub fn passage(&self, slot: u32) -> Option<Passage> {
        self.store.passage(slot)
    }

    /// The slot of the passage with this id (binary search of `ids.idx` on the map).
    pub fn slot_of(&self, id: &str) -> Option<u32> {
        self.store.slot_of(id)
    }

    /// Bytes mapped from `vectors.f32` and the passage files.
    pub(crate) fn mapped_bytes(&self) -> u64 {
        self.vectors.len() as u64 + self.store.mapped_bytes()
    }
}
