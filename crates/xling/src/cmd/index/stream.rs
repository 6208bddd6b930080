//! The streaming build behind `xling index build --out`: corpus rows in chunks, each chunk's
//! vectors from one of three places (an older index's unchanged rows with `--reuse`, a `.npy`
//! file with `--embeddings`, else the encoder), appended to an [`IndexWriter`] with a
//! checkpoint every N rows, so a killed build continues with `--resume`.
//!
//! Memory is bounded by the chunk: token ids and vectors exist for one chunk being encoded and
//! one being tokenized (a thread tokenizes chunk i+1 in parallel while the encoder runs chunk
//! i). The corpus itself is loaded whole (`Corpus::load` validates ids across the file and
//! hashes it for the manifest); its texts are the one part that grows with the corpus.

use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use anyhow::{ensure, Context};
use rayon::prelude::*;
use xling_encoder::{Encoder, Mode, TextTokenizer, Tokens};
use xling_index::{Corpus, Index, IndexManifest, IndexWriter, Passage, WriterSpec};

use super::npy::NpyRows;
use super::Progress;

/// Where the vectors of rows that are not reused come from.
pub enum Vectors {
    Encoder { encoder: Encoder, batch_size: usize },
    File(NpyRows),
}

/// How the build streams.
pub struct StreamOptions {
    /// Rows per chunk (tokenized together, then encoded in length-sorted batches).
    pub chunk: usize,
    /// Rows between checkpoints (rounded up to whole chunks).
    pub checkpoint_every: usize,
    /// Continue the partial build beside `out` instead of starting over.
    pub resume: bool,
    /// An older index whose unchanged (id, text) rows give their vectors.
    pub reuse: Option<PathBuf>,
    /// Stop (after a checkpoint) once this many rows are durable, without finishing: how the
    /// tests and the benchmark interrupt a build at a known point.
    pub stop_after: Option<usize>,
    pub overwrite: bool,
}

/// What a streaming build did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Summary {
    /// Rows durable in the partial folder before this run (resume point).
    pub resumed_at: usize,
    /// Rows this run wrote, by where their vectors came from.
    pub encoded: usize,
    pub reused: usize,
    pub from_file: usize,
    pub encode_seconds: f64,
    /// `None` when `stop_after` stopped the build before `finish`.
    pub manifest: Option<IndexManifest>,
}

/// Checks that the partial build's first and last written rows hold this corpus's ids.
fn check_resume(writer: &IndexWriter, passages: &[Passage], out: &Path) -> anyhow::Result<()> {
    let rows = writer.rows();
    ensure!(
        rows <= passages.len(),
        "the partial build of {} holds {rows} rows but the corpus has {}: another corpus; \
         start over without --resume",
        out.display(),
        passages.len()
    );
    for row in [0, rows / 2, rows.saturating_sub(1)] {
        if row >= rows {
            continue;
        }
        let id = writer.passage_id(row);
        ensure!(
            id.as_deref() == Some(passages[row].id.as_str()),
            "the partial build of {} has id {id:?} at row {row} where the corpus has {:?}: \
             another corpus; start over without --resume",
            out.display(),
            passages[row].id
        );
    }
    Ok(())
}

/// One chunk ready for the encoder: vectors known so far, and the rows still to encode.
struct Prepared {
    /// `rows x dim`, zeros where `todo` will fill in.
    vectors: Vec<f32>,
    /// (row within the chunk, its tokens), for the rows neither reused nor from the file.
    todo: Vec<(usize, Tokens)>,
    reused: usize,
}

/// Fills a chunk's reused rows from `old` and tokenizes the rest in parallel.
fn prepare(
    passages: &[Passage],
    dim: usize,
    old: Option<&Index>,
    tokenizer: &TextTokenizer,
) -> anyhow::Result<Prepared> {
    let mut vectors = vec![0f32; passages.len() * dim];
    let mut missing = Vec::new();
    let mut reused = 0;
    for (i, p) in passages.iter().enumerate() {
        let known = old.and_then(|old| {
            let slot = old.slot_of(&p.id)?;
            let same = old.passage(slot)?.text == p.text;
            same.then(|| old.embedding(slot)).flatten()
        });
        match known {
            Some(row) => {
                vectors[i * dim..(i + 1) * dim].copy_from_slice(row);
                reused += 1;
            }
            None => missing.push(i),
        }
    }
    let todo = missing
        .into_par_iter()
        .map(|i| {
            let tokens = tokenizer
                .tokenize(&passages[i].text, Mode::Passage)
                .with_context(|| format!("cannot tokenize passage `{}`", passages[i].id))?;
            Ok((i, tokens))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Prepared {
        vectors,
        todo,
        reused,
    })
}

/// Encodes a prepared chunk's remaining rows, longest first in batches of `batch_size`.
fn encode_chunk(
    encoder: &mut Encoder,
    batch_size: usize,
    chunk: &mut Prepared,
    dim: usize,
) -> anyhow::Result<()> {
    chunk.todo.sort_by_key(|(_, t)| std::cmp::Reverse(t.len()));
    for batch in chunk.todo.chunks(batch_size) {
        let tokens: Vec<&Tokens> = batch.iter().map(|(_, t)| t).collect();
        let rows = encoder.encode(&tokens)?;
        ensure!(
            rows.len() == batch.len() && rows.iter().all(|r| r.len() == dim),
            "the encoder returned {} rows for {} passages (dim {dim})",
            rows.len(),
            batch.len()
        );
        for ((i, _), row) in batch.iter().zip(rows) {
            chunk.vectors[i * dim..(i + 1) * dim].copy_from_slice(&row);
        }
    }
    Ok(())
}

/// Runs the build: see the module doc. `spec.dim` is what every vector must have.
pub fn build(
    corpus: &Corpus,
    out: &Path,
    spec: WriterSpec,
    mut vectors: Vectors,
    options: &StreamOptions,
) -> anyhow::Result<Summary> {
    ensure!(options.chunk > 0, "the chunk size must be at least 1");
    let dim = spec.dim;
    let passages = corpus.passages();
    if let Vectors::File(file) = &vectors {
        ensure!(
            file.rows() == passages.len(),
            "the embeddings file has {} rows but the corpus has {} passages (row i must be \
             corpus line i)",
            file.rows(),
            passages.len()
        );
        ensure!(
            file.dim() == dim,
            "the embeddings file has dim {} but the index expects dim {dim}",
            file.dim()
        );
    }
    let old = match &options.reuse {
        Some(dir) => {
            let old = Index::load(dir)
                .with_context(|| format!("cannot load the --reuse index {}", dir.display()))?;
            old.check_model(&spec.model_id, dim)
                .context("--reuse needs an index built by the same model")?;
            Some(old)
        }
        None => None,
    };
    let mut writer = IndexWriter::create(out, spec, options.resume)?;
    let start = writer.rows();
    if options.resume {
        check_resume(&writer, passages, out)?;
    }
    let mut summary = Summary {
        resumed_at: start,
        ..Summary::default()
    };
    if let Vectors::File(file) = &mut vectors {
        file.skip(start)?;
    }
    let checkpoint_every = options.checkpoint_every.max(1);
    let mut progress = Progress::new("embedding", passages.len());
    progress.set(start);
    let mut since_checkpoint = 0;
    let chunks: Vec<(usize, &[Passage])> = (start..passages.len())
        .step_by(options.chunk)
        .map(|s| (s, &passages[s..(s + options.chunk).min(passages.len())]))
        .collect();

    let tokenizer = match &vectors {
        Vectors::Encoder { encoder, .. } => Some(encoder.tokenizer().clone()),
        Vectors::File(_) => None,
    };
    std::thread::scope(|scope| -> anyhow::Result<()> {
        // One chunk prepared ahead: the tokenizer pool works while the encoder runs.
        let (send, receive) = sync_channel::<anyhow::Result<Prepared>>(1);
        let old = old.as_ref();
        let chunks = &chunks;
        if let Some(tokenizer) = &tokenizer {
            scope.spawn(move || {
                for &(_, rows) in chunks {
                    if send.send(prepare(rows, dim, old, tokenizer)).is_err() {
                        return; // the consumer stopped
                    }
                }
            });
        } else {
            drop(send);
        }
        for &(s, rows) in chunks {
            let chunk = match &mut vectors {
                Vectors::File(file) => {
                    let mut values = Vec::with_capacity(rows.len() * dim);
                    file.read_unit(rows.len(), &mut values)?;
                    summary.from_file += rows.len();
                    Prepared {
                        vectors: values,
                        todo: Vec::new(),
                        reused: 0,
                    }
                }
                Vectors::Encoder {
                    encoder,
                    batch_size,
                } => {
                    let mut chunk = receive
                        .recv()
                        .context("the tokenizer thread stopped early")??;
                    let started = Instant::now();
                    encode_chunk(encoder, *batch_size, &mut chunk, dim)?;
                    summary.encode_seconds += started.elapsed().as_secs_f64();
                    summary.encoded += chunk.todo.len();
                    summary.reused += chunk.reused;
                    chunk
                }
            };
            writer.append(rows, &chunk.vectors)?;
            since_checkpoint += rows.len();
            progress.set(s + rows.len());
            let stop = options.stop_after.is_some_and(|n| writer.rows() >= n);
            if since_checkpoint >= checkpoint_every || stop {
                writer.checkpoint()?;
                since_checkpoint = 0;
            }
            if stop {
                // Dropping the receiver ends the tokenizer thread at its next send.
                return Ok(());
            }
        }
        Ok(())
    })?;
    progress.finish();
    if options.stop_after.is_some_and(|n| writer.rows() >= n) && writer.rows() < passages.len() {
        return Ok(summary);
    }
    writer.checkpoint()?;
    let mut progress = Progress::new("inserting", passages.len());
    let manifest = writer.finish(options.overwrite, &mut |done, _| progress.set(done))?;
    progress.finish();
    summary.manifest = Some(manifest);
    Ok(summary)
}
