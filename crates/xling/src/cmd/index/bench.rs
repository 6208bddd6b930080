//! `xling index bench`: query latency and recall@k vs exact search, per HNSW ef (prints
//! numbers; a benchmark, not a test). Queries are texts embedded here, or vectors from a `.npy`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use xling_encoder::{Device, Encoder, EncoderOptions, Mode};
use xling_index::{Hit, Index};

use super::npy::NpyRows;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// The index folder.
    dir: PathBuf,
    /// Queries, JSON Lines with a "query" string per line (as data/demo/queries.jsonl).
    #[arg(long, required_unless_present = "query_vectors")]
    queries: Option<PathBuf>,
    /// Query vectors instead of texts: a .npy of float32, shape (queries, dim), made by the
    /// index's model in query mode (no encoder is loaded).
    #[arg(long, conflicts_with = "queries")]
    query_vectors: Option<PathBuf>,
    /// Model folder that built the index. [default: $XLING_HOME/models/multilingual-e5-small]
    #[arg(long, env = "XLING_MODEL")]
    model: Option<PathBuf>,
    /// Hits per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Search breadths to measure.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    ef: Vec<usize>,
    /// Restrict every search to these ISO 639-1 languages (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    language: Vec<String>,
    /// Use at most this many queries.
    #[arg(long, default_value_t = 2000)]
    limit: usize,
    /// Candidate-set size up to which searches scan exactly (0: always the graph).
    /// [default: the library's DEFAULT_EXACT_SUBSET_MAX]
    #[arg(long)]
    exact_max: Option<usize>,
    /// Ground truth instead of an exact scan per query (at 1M that scan takes minutes per
    /// run): the exact top-k slots of each query as little-endian u32, queries x k, in query
    /// order (e.g. numpy: `gt.astype('<u4').tofile(path)`).
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Encoder device: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: Device,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let mut index = Index::load(&args.dir)?;
    if let Some(n) = args.exact_max {
        index.set_exact_subset_max(n);
    }
    let vectors = match (&args.queries, &args.query_vectors) {
        (_, Some(path)) => query_vectors(path, index.dim(), args.limit)?,
        (Some(path), None) => {
            let model_dir = args.model.clone().unwrap_or_else(|| {
                xling_encoder::xling_home().join("models/multilingual-e5-small")
            });
            embed_queries(path, &model_dir, &index, &args)?
        }
        (None, None) => anyhow::bail!("give --queries or --query-vectors"),
    };
    let filter = (!args.language.is_empty()).then_some(args.language.as_slice());

    let m = index.manifest();
    println!(
        "index {} ({} passages, m {}, ef_construction {}); {} queries, k {}, languages {}, exact up to {}",
        args.dir.display(),
        m.count,
        m.m,
        m.ef_construction,
        vectors.len(),
        args.k,
        filter.map_or("all".to_string(), |l| l.join(",")),
        args.exact_max.unwrap_or(xling_index::DEFAULT_EXACT_SUBSET_MAX)
    );
    println!(
        "{:>6}  {:>9}  {:>8}  {:>8}  {:>8}  {:>8}",
        "ef", "recall@k", "mean_us", "p50_us", "p99_us", "qps"
    );
    let truth = match &args.truth {
        Some(path) => read_truth(path, vectors.len(), args.k)?,
        None => {
            let (truth, times) = timed(&vectors, |q| index.exact_search(q, args.k, filter))?;
            print_row("exact", 1.0, &times);
            truth
                .iter()
                .map(|hits| hits.iter().map(|h| h.slot).collect())
                .collect()
        }
    };
    for &ef in &args.ef {
        let (hits, times) = timed(&vectors, |q| index.search(q, args.k, ef, filter))?;
        print_row(&ef.to_string(), recall(&truth, &hits), &times);
    }
    Ok(())
}

/// Embeds the query texts of `path` with the model in `model_dir` (query mode).
fn embed_queries(
    path: &Path,
    model_dir: &Path,
    index: &Index,
    args: &BenchArgs,
) -> anyhow::Result<Vec<Vec<f32>>> {
    let options = EncoderOptions {
        device: args.device,
        intra_threads: 0,
    };
    let mut encoder = Encoder::load(model_dir, &options)
        .with_context(|| format!("cannot load the model in {}", model_dir.display()))?;
    index.check_model(&encoder.manifest().id, encoder.manifest().dim)?;
    let texts = read_queries(path, args.limit)?;
    anyhow::ensure!(!texts.is_empty(), "{}: no queries", path.display());
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(32) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        vectors.extend(encoder.embed(&refs, Mode::Query)?);
    }
    Ok(vectors)
}

/// The first `limit` rows of a `.npy` of query vectors, unit length.
fn query_vectors(path: &Path, dim: usize, limit: usize) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut rows = NpyRows::open(path)?;
    anyhow::ensure!(
        rows.dim() == dim,
        "{} has vectors of dim {} but the index has dim {dim}",
        path.display(),
        rows.dim()
    );
    let mut values = Vec::new();
    rows.read_unit(limit, &mut values)?;
    anyhow::ensure!(!values.is_empty(), "{}: no queries", path.display());
    Ok(values.chunks(dim).map(<[f32]>::to_vec).collect())
}

fn read_queries(path: &Path, limit: usize) -> anyhow::Result<Vec<String>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut texts = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        let query = value["query"]
            .as_str()
            .with_context(|| format!("{}:{}: no \"query\" string", path.display(), i + 1))?;
        texts.push(query.to_string());
        if texts.len() == limit {
            break;
        }
    }
    Ok(texts)
}

/// Runs `search` for every query; returns the hits and each call's duration in microseconds.
fn timed(
    queries: &[Vec<f32>],
    search: impl Fn(&[f32]) -> Result<Vec<Hit>, xling_index::IndexError>,
) -> anyhow::Result<(Vec<Vec<Hit>>, Vec<f64>)> {
    let mut hits = Vec::with_capacity(queries.len());
    let mut times = Vec::with_capacity(queries.len());
    for q in queries {
        let started = Instant::now();
        hits.push(search(q)?);
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    Ok((hits, times))
}

/// The exact top-k slots of each of `queries` queries from a `--truth` file.
fn read_truth(path: &Path, queries: usize, k: usize) -> anyhow::Result<Vec<Vec<u32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let want = queries * k * 4;
    anyhow::ensure!(
        bytes.len() >= want,
        "{}: {} bytes, {queries} queries x k {k} need {want}",
        path.display(),
        bytes.len()
    );
    let slots: Vec<u32> = bytes[..want]
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    Ok(slots.chunks(k).map(<[u32]>::to_vec).collect())
}

/// Fraction of the exact top-k slots the approximate search found.
fn recall(truth: &[Vec<u32>], found: &[Vec<Hit>]) -> f64 {
    let (mut hit, mut total) = (0usize, 0usize);
    for (t, f) in truth.iter().zip(found) {
        total += t.len();
        hit += f.iter().filter(|h| t.contains(&h.slot)).count();
    }
    hit as f64 / total.max(1) as f64
}

fn print_row(ef: &str, recall: f64, times: &[f64]) {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    let pct = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    let mean = sorted.iter().sum::<f64>() / sorted.len() as f64;
    // One thread, one query at a time: queries per second is the inverse of the mean.
    println!(
        "{ef:>6}  {recall:>9.4}  {mean:>8.0}  {:>8.0}  {:>8.0}  {:>8.0}",
        pct(0.5),
        pct(0.99),
        1e6 / mean.max(1e-9)
    );
}
