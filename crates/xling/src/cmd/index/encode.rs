//! Encoding passages for `index build`, one chunk at a time: [`prepare`] copies the rows an
//! older index already holds (`--reuse`) and tokenizes the rest in parallel (rayon), then
//! [`encode`] runs them through the encoder in batches of similar length. The streaming build
//! (`stream`) does this chunk by chunk; the Qdrant path ([`encode_all`]) once over the corpus.

use anyhow::{ensure, Context};
use rayon::prelude::*;
use xling_encoder::{Encoder, Mode, TextTokenizer, Tokens};
use xling_index::{Passage, StoredRows};

/// What encoding cost, summed over chunks.
pub struct EncodeStats {
    /// Wall-clock seconds of the embedding phase (set by the caller).
    pub seconds: f64,
    /// Real tokens, and tokens including padding, over all batches.
    tokens: usize,
    padded_tokens: usize,
    truncated: usize,
    max_length: usize,
}

impl EncodeStats {
    pub fn new(max_length: usize) -> EncodeStats {
        EncodeStats {
            seconds: 0.0,
            tokens: 0,
            padded_tokens: 0,
            truncated: 0,
            max_length,
        }
    }

    /// One line; `passages` is how many were encoded.
    pub fn print(&self, passages: usize) {
        println!(
            "  encode: {:.1} s, {:.1} passages/s, {:.0} tokens/s, {:.0}% of padded tokens real, {} truncated to {} tokens",
            self.seconds,
            passages as f64 / self.seconds.max(1e-9),
            self.tokens as f64 / self.seconds.max(1e-9),
            100.0 * self.tokens as f64 / self.padded_tokens.max(1) as f64,
            self.truncated,
            self.max_length,
        );
    }
}

/// A chunk of passages on its way to the writer.
pub struct Chunk {
    /// `passages x dim`, row-major; zeros where `todo` is still to be encoded.
    pub vectors: Vec<f32>,
    /// (row within the chunk, its tokens) for the rows the encoder must compute.
    todo: Vec<(usize, Tokens)>,
    /// Rows copied from the older index.
    pub reused: usize,
}

/// Fills in the rows `old` holds with the same id, text and title (the vector depends on the
/// text only; the title is compared too so that an edited passage is never half-reused) and
/// tokenizes the others in parallel.
pub fn prepare(
    passages: &[Passage],
    dim: usize,
    old: Option<&StoredRows>,
    tokenizer: &TextTokenizer,
) -> anyhow::Result<Chunk> {
    let mut vectors = vec![0f32; passages.len() * dim];
    let mut missing = Vec::new();
    let mut reused = 0;
    for (i, p) in passages.iter().enumerate() {
        let stored = old.and_then(|old| {
            let slot = old.slot_of(&p.id)?;
            let before = old.passage(slot)?;
            (before.text == p.text && before.title == p.title)
                .then(|| old.embedding(slot))
                .flatten()
        });
        match stored {
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
    Ok(Chunk {
        vectors,
        todo,
        reused,
    })
}

/// Encodes a prepared chunk's remaining rows, longest first (batches pad only to their own
/// longest member, and a memory problem shows in the first batch); returns how many rows it
/// encoded. `progress(n)` gets the rows encoded so far after each batch. Frees the tokens.
pub fn encode(
    encoder: &mut Encoder,
    batch_size: usize,
    chunk: &mut Chunk,
    stats: &mut EncodeStats,
    progress: &mut dyn FnMut(usize),
) -> anyhow::Result<usize> {
    let dim = encoder.manifest().dim;
    let todo = std::mem::take(&mut chunk.todo);
    let mut order: Vec<&(usize, Tokens)> = todo.iter().collect();
    order.sort_by_key(|(_, t)| std::cmp::Reverse(t.len()));
    let mut done = 0;
    for batch in order.chunks(batch_size) {
        let tokens: Vec<&Tokens> = batch.iter().map(|(_, t)| t).collect();
        stats.tokens += tokens.iter().map(|t| t.len()).sum::<usize>();
        stats.truncated += tokens.iter().filter(|t| t.truncated).count();
        stats.padded_tokens += tokens.len() * tokens.iter().map(|t| t.len()).max().unwrap_or(0);
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
        done += batch.len();
        progress(done);
    }
    Ok(done)
}

/// Every passage's vector in corpus order, in memory (the Qdrant upload needs them all).
pub fn encode_all(
    encoder: &mut Encoder,
    passages: &[Passage],
    batch_size: usize,
) -> anyhow::Result<(Vec<f32>, EncodeStats)> {
    let started = std::time::Instant::now();
    let (dim, max_length) = (encoder.manifest().dim, encoder.manifest().max_length);
    let tokenizer = encoder.tokenizer().clone();
    let mut chunk = prepare(passages, dim, None, &tokenizer)?;
    let mut stats = EncodeStats::new(max_length);
    let mut progress = super::Progress::new("encoding", passages.len());
    encode(encoder, batch_size, &mut chunk, &mut stats, &mut |n| {
        progress.set(n)
    })?;
    progress.finish();
    stats.seconds = started.elapsed().as_secs_f64();
    Ok((chunk.vectors, stats))
}
