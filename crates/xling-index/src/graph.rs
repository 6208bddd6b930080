//! The HNSW graph: built over the rows the walk uses (fp32 or int8), dumped by hnsw_rs, and
//! reloaded with its points mapped.
//!
//! What hnsw_rs forces (0.3.5):
//! - **Build**: `parallel_insert_slice` copies every point into its own `Vec`, so building
//!   holds one in-RAM copy of the walk's rows (1.5 GB of fp32 at 1M x 384, 384 MB of int8)
//!   besides the graph; the rows come from the mapped file in chunks, nothing else is copied.
//! - **Dump**: the `.hnsw.data` file holds its own copy of the points (with a small header
//!   per point), so it cannot share `vectors.f32`. Quantized, it holds the int8 rows (a
//!   quarter of the fp32 size) and `vectors.i8` is the same data in plain row order; fp32,
//!   the fp32 rows are on disk twice (`vectors.f32` and the dump). Either way only one copy
//!   is read at serve time per purpose, and both are mapped, not held.
//! - **Reload**: with `ReloadOptions::set_mmap(true)` the points stay in the mapped dump; the
//!   neighbour lists (`.hnsw.graph`, about 2 x m x 8 bytes a point at layer 0) are read into
//!   RAM. The reloaded graph borrows the `HnswIo` that owns the map: [`MappedGraph`] owns
//!   both and drops the graph first (no leak, so a swapped-out index frees its map).

use std::path::Path;

use hnsw_rs::api::AnnT;
use hnsw_rs::hnsw::{Hnsw, Neighbour};
use hnsw_rs::hnswio::{HnswIo, ReloadOptions};

use crate::distance::{DotI8, UnitDot};
use crate::error::IndexError;

/// hnsw_rs caps the number of layers at 16.
const MAX_LAYERS: usize = 16;
/// Points per `parallel_insert_slice` call: big enough to keep all threads busy, small enough
/// for a progress report every few seconds.
const INSERT_CHUNK: usize = 1024;

/// A graph over fp32 unit rows or over their int8 quantization.
pub(crate) enum Graph {
    F32(Hnsw<'static, f32, UnitDot>),
    I8(Hnsw<'static, i8, DotI8>),
}

/// Graph construction settings.
pub(crate) struct GraphSpec {
    pub m: usize,
    pub ef_construction: usize,
    pub threads: usize,
}

impl Graph {
    /// Builds a graph over `rows` (count x dim, `T` f32 or i8) with parallel inserts in
    /// chunks; `progress(done, total)` after each chunk.
    pub(crate) fn build_f32(
        rows: &[f32],
        dim: usize,
        spec: &GraphSpec,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Graph, IndexError> {
        build(rows, dim, spec, UnitDot, progress).map(Graph::F32)
    }

    pub(crate) fn build_i8(
        rows: &[i8],
        dim: usize,
        spec: &GraphSpec,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Graph, IndexError> {
        build(rows, dim, spec, DotI8, progress).map(Graph::I8)
    }

    /// Dumps the graph into `dir` as `<basename>.hnsw.{graph,data}`, replacing files a failed
    /// earlier finish may have left.
    pub(crate) fn dump(&self, dir: &Path, basename: &str) -> Result<(), IndexError> {
        for ext in ["graph", "data"] {
            let path = dir.join(format!("{basename}.hnsw.{ext}"));
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| IndexError::io(&path, e))?;
            }
        }
        let dumped = guarded(|| match self {
            Graph::F32(g) => g.file_dump(dir, basename),
            Graph::I8(g) => g.file_dump(dir, basename),
        })
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|reason| {
            IndexError::corrupt(dir.join(format!("{basename}.hnsw.graph")), reason)
        })?;
        if dumped != basename {
            // hnsw_rs picks another name when the files exist: the writer's folder is fresh.
            return Err(IndexError::corrupt(
                dir,
                format!("hnsw_rs dumped as {dumped}, not {basename}"),
            ));
        }
        Ok(())
    }

    pub(crate) fn points(&self) -> usize {
        match self {
            Graph::F32(g) => g.get_nb_point(),
            Graph::I8(g) => g.get_nb_point(),
        }
    }

    pub(crate) fn search_f32(&self, query: &[f32], k: usize, ef: usize) -> Vec<Neighbour> {
        match self {
            Graph::F32(g) => g.search(query, k, ef),
            Graph::I8(_) => Vec::new(),
        }
    }

    pub(crate) fn search_i8(&self, query: &[i8], k: usize, ef: usize) -> Vec<Neighbour> {
        match self {
            Graph::I8(g) => g.search(query, k, ef),
            Graph::F32(_) => Vec::new(),
        }
    }
}

/// A new graph with `spec`'s parameters over `rows` under `distance`, inserted in parallel.
fn build<T, D>(
    rows: &[T],
    dim: usize,
    spec: &GraphSpec,
    distance: D,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Hnsw<'static, T, D>, IndexError>
where
    T: Clone + Send + Sync,
    D: hnsw_rs::anndists::dist::Distance<T> + Send + Sync,
{
    let graph = Hnsw::new(
        spec.m,
        rows.len() / dim,
        MAX_LAYERS,
        spec.ef_construction,
        distance,
    );
    let threads = spec.threads;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|_| IndexError::BuildParam {
            name: "threads",
            value: threads.to_string(),
            reason: "could not start that many threads",
        })?;
    let total = rows.len() / dim;
    let mut done = 0;
    for chunk in rows.chunks(INSERT_CHUNK * dim) {
        let batch: Vec<(&[T], usize)> = chunk.chunks_exact(dim).zip(done..).collect();
        pool.install(|| graph.parallel_insert_slice(&batch));
        done += batch.len();
        progress(done, total);
    }
    Ok(graph)
}

/// A reloaded graph whose points live in the mapped dump, with the loader that owns the map.
pub(crate) struct MappedGraph {
    // Field order matters: `graph` borrows from `_io` and must drop first.
    pub(crate) graph: Graph,
    _io: Box<HnswIo>,
}

impl MappedGraph {
    /// Reloads `<basename>.hnsw.*` from `dir` with mapped points; `quantized` picks the type.
    pub(crate) fn load(
        dir: &Path,
        basename: &str,
        quantized: bool,
        count: usize,
    ) -> Result<MappedGraph, IndexError> {
        let graph_path = dir.join(format!("{basename}.hnsw.graph"));
        let options = ReloadOptions::default().set_mmap(true);
        let mut io = Box::new(HnswIo::new_with_options(dir, basename, options));
        // SAFETY: the graph borrows the map that `io` owns. `io` is boxed (its address never
        // changes), stored next to the graph, never touched again, and dropped after it.
        let io_ref: &'static mut HnswIo = unsafe { &mut *(io.as_mut() as *mut HnswIo) };
        let loaded = guarded(|| {
            if quantized {
                io_ref.load_hnsw::<i8, DotI8>().map(Graph::I8)
            } else {
                io_ref.load_hnsw::<f32, UnitDot>().map(Graph::F32)
            }
        })
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|reason| IndexError::corrupt(&graph_path, reason))?;
        if loaded.points() != count {
            return Err(IndexError::corrupt(
                &graph_path,
                format!("{} points, the manifest says {count}", loaded.points()),
            ));
        }
        Ok(MappedGraph {
            graph: loaded,
            _io: io,
        })
    }
}

/// Runs hnsw_rs code that asserts or panics on bad files, turning a panic into an error text.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|payload| xling_panic::message(&*payload))
}
