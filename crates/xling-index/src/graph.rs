//! The HNSW graph as hnsw_rs builds it, turned into the flat `graph.adj` the search walks
//! (see `adjacency`); and the reload of an older (format 2) folder's hnsw_rs dump, for
//! `Index::upgrade`.
//!
//! What hnsw_rs forces (0.3.5): `parallel_insert_slice` copies every point into its own
//! `Vec`, so building holds one in-RAM copy of the walk's rows (1.5 GB of fp32 at 1M x 384,
//! 384 MB of int8) besides its graph (about 1.5 KB a point); both are dropped once
//! `graph.adj` is written. Nothing of hnsw_rs is read at serve time.

use std::path::Path;

use hnsw_rs::hnsw::Hnsw;
use hnsw_rs::hnswio::{HnswIo, ReloadOptions};

use crate::adjacency::AdjacencyBuilder;
use crate::distance::{DotI8, UnitDot};
use crate::error::IndexError;

/// hnsw_rs caps the number of layers at 16.
const MAX_LAYERS: usize = 16;
/// Points per `parallel_insert_slice` call: big enough to keep all threads busy, small enough
/// for a progress report every few seconds.
const INSERT_CHUNK: usize = 1024;

/// A graph over fp32 unit rows or over their int8 quantization.
pub(crate) enum Graph<'a> {
    F32(Hnsw<'a, f32, UnitDot>),
    I8(Hnsw<'a, i8, DotI8>),
}

/// Graph construction settings.
pub(crate) struct GraphSpec {
    pub m: usize,
    pub ef_construction: usize,
    pub threads: usize,
}

impl Graph<'_> {
    /// Builds a graph over `rows` (count x dim, `T` f32 or i8) with parallel inserts in
    /// chunks; `progress(done, total)` after each chunk.
    pub(crate) fn build_f32(
        rows: &[f32],
        dim: usize,
        spec: &GraphSpec,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Graph<'static>, IndexError> {
        build(rows, dim, spec, UnitDot, progress).map(Graph::F32)
    }

    pub(crate) fn build_i8(
        rows: &[i8],
        dim: usize,
        spec: &GraphSpec,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Graph<'static>, IndexError> {
        build(rows, dim, spec, DotI8, progress).map(Graph::I8)
    }

    /// The graph's neighbour lists as a flat [`AdjacencyBuilder`] (slots = insertion ids).
    pub(crate) fn to_adjacency(&self) -> Result<AdjacencyBuilder, String> {
        match self {
            Graph::F32(g) => flatten(g),
            Graph::I8(g) => flatten(g),
        }
    }

    pub(crate) fn points(&self) -> usize {
        match self {
            Graph::F32(g) => g.get_nb_point(),
            Graph::I8(g) => g.get_nb_point(),
        }
    }
}

/// Copies every point's neighbour ids, layer by layer; hnsw_rs keeps up to 2m on layer 0
/// and m above.
fn flatten<T, D>(graph: &Hnsw<'_, T, D>) -> Result<AdjacencyBuilder, String>
where
    T: Clone + Send + Sync,
    D: hnsw_rs::anndists::dist::Distance<T> + Send + Sync,
{
    let m = graph.get_max_nb_connection() as usize;
    let count = graph.get_nb_point();
    let mut flat = AdjacencyBuilder::new(count, 2 * m, m);
    let mut seen = 0;
    for point in graph.get_point_indexation() {
        let level = point.get_point_id().0 as usize;
        let mut layers = point.get_neighborhood_id();
        layers.truncate(level + 1);
        let ids = layers
            .into_iter()
            .map(|mut layer| {
                // Closest first, so a cut (never expected) keeps the best links.
                layer.sort_by(|a, b| a.distance.total_cmp(&b.distance));
                layer.into_iter().map(|n| n.d_id as u32).collect()
            })
            .collect();
        flat.set(point.get_origin_id() as u32, ids)?;
        seen += 1;
    }
    if seen != count {
        return Err(format!("{seen} points iterated, {count} inserted"));
    }
    Ok(flat)
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

/// Reads a format 2 folder's hnsw_rs dump (`<basename>.hnsw.*`, points mapped) and
/// flattens it; `quantized` picks the point type it was built over.
pub(crate) fn flatten_dump(
    dir: &Path,
    basename: &str,
    quantized: bool,
    count: usize,
) -> Result<AdjacencyBuilder, IndexError> {
    let graph_path = dir.join(format!("{basename}.hnsw.graph"));
    let options = ReloadOptions::default().set_mmap(true);
    let mut io = HnswIo::new_with_options(dir, basename, options);
    let flat = guarded(|| -> Result<AdjacencyBuilder, String> {
        let graph = if quantized {
            Graph::I8(io.load_hnsw::<i8, DotI8>().map_err(|e| e.to_string())?)
        } else {
            Graph::F32(io.load_hnsw::<f32, UnitDot>().map_err(|e| e.to_string())?)
        };
        if graph.points() != count {
            return Err(format!(
                "{} points, the manifest says {count}",
                graph.points()
            ));
        }
        graph.to_adjacency()
    })
    .and_then(|r| r)
    .map_err(|reason| IndexError::corrupt(&graph_path, reason))?;
    Ok(flat)
}

/// Runs hnsw_rs code that asserts or panics on bad files, turning a panic into an error text.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|payload| xling_panic::message(&*payload))
}
