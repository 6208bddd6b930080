//! The streaming build behind `xling index build --out DIR`: corpus rows in chunks, each
//! chunk's vectors from an older index's unchanged rows (`--reuse`), a `.npy` file
//! (`--embeddings`) or the encoder, appended to an [`IndexWriter`] with a checkpoint every N
//! rows, so that a killed build continues with `--resume`.
//!
//! Memory is bounded by the chunk, not the corpus: token ids and vectors exist for the chunk
//! being encoded and the one a thread tokenizes meanwhile (a rendezvous channel: the thread
//! waits with at most one chunk ready). The corpus texts are loaded whole (`Corpus::load`
//! checks ids across the file and hashes it for the manifest): they are the one part that
//! grows with the corpus. The `--reuse` index is mapped ([`StoredRows`]: vectors, passages and
//! id table, not its graph). The written rows live in `DIR.partial/` until `finish` builds the
//! graph over them mapped.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{ensure, Context};
use xling_encoder::Encoder;
use xling_index::{Corpus, IndexManifest, IndexWriter, Passage, StoredRows, WriterSpec};

use super::encode::{encode, prepare, Chunk, EncodeStats};
use super::npy::NpyRows;
use super::Progress;

/// The streaming build's flags (`index build --out`).
#[derive(clap::Args)]
pub struct StreamArgs {
    /// Continue the build a killed or stopped run left in `OUT.partial/`, from its last
    /// checkpoint (same corpus, model and --quantize; without one it starts over).
    #[arg(long, env = "XLING_INDEX_RESUME", requires = "out")]
    pub resume: bool,
    /// An older index folder built by the same model: passages whose id, text and title are
    /// unchanged take their stored vectors from it instead of being encoded.
    #[arg(
        long,
        value_name = "DIR",
        env = "XLING_INDEX_REUSE",
        requires = "out",
        conflicts_with = "embeddings"
    )]
    pub reuse: Option<PathBuf>,
    /// Rows between checkpoints (rounded up to whole chunks): what a killed build loses at
    /// most; each checkpoint syncs the written files.
    #[arg(long, env = "XLING_INDEX_CHECKPOINT_EVERY", default_value_t = 10_000)]
    pub checkpoint_every: usize,
    /// Rows per chunk: tokenized together while the previous chunk is encoded.
    #[arg(long, hide = true, default_value_t = 4096)]
    pub chunk_size: usize,
    /// Stop, after a checkpoint, once at least this many rows are durable (exit 0; finish
    /// with --resume): how tests interrupt a build at a known point.
    #[arg(long, hide = true, requires = "out")]
    pub stop_after: Option<usize>,
}

/// Where the vectors of rows that are not reused come from.
pub enum Vectors {
    // Boxed: the encoder is large beside a file reader, and there is one `Vectors` per build.
    Encoder {
        encoder: Box<Encoder>,
        batch_size: usize,
    },
    File(NpyRows),
}

/// What a streaming build did.
pub struct Summary {
    /// Rows durable in `DIR.partial/` before this run (where `--resume` continued).
    pub resumed_at: usize,
    /// Rows this run wrote, by where their vectors came from.
    pub encoded: usize,
    pub reused: usize,
    pub from_file: usize,
    /// What encoding cost (nothing when nothing was encoded).
    pub stats: EncodeStats,
    /// Rows durable when `--stop-after` stopped the build; `None` when it finished.
    pub stopped_at: Option<usize>,
    pub manifest: Option<IndexManifest>,
}

/// Runs the build (see the module docs); `spec.dim` is what every vector has.
pub fn build(
    corpus: &Corpus,
    out: &Path,
    spec: WriterSpec,
    mut vectors: Vectors,
    args: &StreamArgs,
    overwrite: bool,
) -> anyhow::Result<Summary> {
    ensure!(args.chunk_size > 0, "--chunk-size must be at least 1");
    let dim = spec.dim;
    let passages = corpus.passages();
    let total = passages.len();
    let old = args
        .reuse
        .as_deref()
        .map(|dir| reusable(dir, &spec))
        .transpose()?;
    let mut writer = IndexWriter::create(out, spec, args.resume)?;
    let start = writer.rows();
    if args.resume {
        check_resume(&writer, passages, out)?;
        if start > 0 {
            println!("resuming at row {start} of {total}");
        }
    }
    let mut summary = Summary {
        resumed_at: start,
        encoded: 0,
        reused: 0,
        from_file: 0,
        stats: EncodeStats::new(0),
        stopped_at: None,
        manifest: None,
    };
    let tokenizer = match &mut vectors {
        Vectors::Encoder { encoder, .. } => {
            summary.stats = EncodeStats::new(encoder.manifest().max_length);
            Some(encoder.tokenizer().clone())
        }
        Vectors::File(file) => {
            file.seek_row(start)?;
            None
        }
    };
    let chunk_size = args.chunk_size;
    let starts: Vec<usize> = (start..total).step_by(chunk_size).collect();
    let chunk_at = |s: usize| &passages[s..(s + chunk_size).min(total)];
    let mut progress = Progress::resumed("embedding", total, start);
    let started = Instant::now();
    let mut since_checkpoint = 0;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        // Capacity 0: the tokenizer thread holds at most one prepared chunk while the encoder
        // runs, so two chunks of token ids exist at a time.
        let (send, receive) = sync_channel::<anyhow::Result<Chunk>>(0);
        if let Some(tokenizer) = &tokenizer {
            let (old, starts) = (old.as_ref(), &starts);
            scope.spawn(move || {
                for &s in starts {
                    if send
                        .send(prepare(chunk_at(s), dim, old, tokenizer))
                        .is_err()
                    {
                        return; // the consumer stopped (an error, or --stop-after)
                    }
                }
            });
        }
        for &s in &starts {
            let rows = chunk_at(s);
            let values = match &mut vectors {
                Vectors::File(file) => {
                    let mut values = Vec::with_capacity(rows.len() * dim);
                    file.read_unit(rows.len(), &mut values)?;
                    summary.from_file += rows.len();
                    values
                }
                Vectors::Encoder {
                    encoder,
                    batch_size,
                } => {
                    let mut chunk = receive
                        .recv()
                        .context("the tokenizer thread stopped early")??;
                    let reused = chunk.reused;
                    let stats = &mut summary.stats;
                    summary.encoded += encode(encoder, *batch_size, &mut chunk, stats, &mut |n| {
                        progress.set(s + reused + n)
                    })?;
                    summary.reused += reused;
                    chunk.vectors
                }
            };
            writer.append(rows, &values)?;
            progress.set(s + rows.len());
            since_checkpoint += rows.len();
            let stop = args.stop_after.is_some_and(|n| writer.rows() >= n) && writer.rows() < total;
            if since_checkpoint >= args.checkpoint_every || stop {
                writer.checkpoint()?;
                since_checkpoint = 0;
            }
            if stop {
                summary.stopped_at = Some(writer.rows());
                // Returning drops `receive`: the tokenizer thread's next send fails and it ends.
                return Ok(());
            }
        }
        Ok(())
    })?;
    progress.finish();
    if summary.encoded > 0 {
        summary.stats.seconds = started.elapsed().as_secs_f64();
    }
    if summary.stopped_at.is_some() {
        return Ok(summary);
    }
    // All rows durable: a build killed while inserting resumes straight into `finish`.
    writer.checkpoint()?;
    writer.set_encode_seconds(summary.stats.seconds);
    // The encoder's memory is free while the graph is built.
    drop((vectors, old));
    let mut progress = Progress::new("inserting", total);
    summary.manifest = Some(writer.finish(overwrite, &mut |done, _| progress.set(done))?);
    progress.finish();
    Ok(summary)
}

/// The rows of the `--reuse` index (its graph is not loaded), refused unless the same model
/// made them.
fn reusable(dir: &Path, spec: &WriterSpec) -> anyhow::Result<StoredRows> {
    let (manifest, rows) = StoredRows::open(dir)
        .with_context(|| format!("cannot open the --reuse index {}", dir.display()))?;
    ensure!(
        manifest.model_id == spec.model_id && manifest.dim == spec.dim,
        "--reuse needs an index built by the same model: {} was built by {} (dim {}), this \
         build uses {} (dim {})",
        dir.display(),
        manifest.model_id,
        manifest.dim,
        spec.model_id,
        spec.dim
    );
    Ok(rows)
}

/// Checks that every row the partial build holds has this corpus's id in the same place.
fn check_resume(writer: &IndexWriter, passages: &[Passage], out: &Path) -> anyhow::Result<()> {
    let rows = writer.rows();
    ensure!(
        rows <= passages.len(),
        "the partial build of {} holds {rows} rows but the corpus has only {}: it was started \
         from another corpus; build without --resume",
        out.display(),
        passages.len()
    );
    for (row, p) in passages[..rows].iter().enumerate() {
        let id = writer.passage_id(row);
        ensure!(
            id.as_deref() == Some(p.id.as_str()),
            "the partial build of {} has id {id:?} at row {row} where the corpus has {:?}: it \
             was started from another corpus; build without --resume",
            out.display(),
            p.id
        );
    }
    Ok(())
}
