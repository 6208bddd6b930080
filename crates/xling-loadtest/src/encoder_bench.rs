//! The raw encoder alone (no gRPC, no queue): latency and throughput per batch size and
//! sequence length. This is the ceiling the service is measured against.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use xling_encoder::{Device, Encoder, EncoderOptions, Mode, Tokens};

use crate::LoadtestError;

/// Real multilingual text, so the synthetic inputs are made of ordinary vocabulary ids.
const SAMPLE: &str = "Die Panther verteidigten ihren Titel nicht. The Panthers' defense gave up \
    just 308 points. Los Panthers terminaron la temporada con un récord de 15-1. \
    Пантеры закончили сезон. パンサーズはシーズンを終えた。";

#[derive(Debug, Clone)]
pub struct EncoderBench {
    pub model: PathBuf,
    pub device: Device,
    /// ONNX Runtime intra-op threads; 0 = ONNX Runtime's default.
    pub intra_threads: usize,
    pub batch_sizes: Vec<usize>,
    /// Exact token counts per sequence, special tokens included.
    pub seq_lens: Vec<usize>,
    pub iters: usize,
    pub warmup: usize,
    /// Query texts to also encode one at a time, unpadded, as a lone client's queries run in
    /// the service: the baseline of the low-load overhead. Empty: skipped.
    pub queries: Vec<String>,
    /// Batch sizes at which to also encode `queries` in consecutive batches, once in their own
    /// order and once sorted by token length: the sorted peak is the ceiling a length-aware
    /// batcher can reach on this load. Empty: skipped.
    pub query_batches: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchRow {
    pub batch: usize,
    pub seq: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub mean_ms: f64,
    pub sequences_per_s: f64,
    pub tokens_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub model_id: String,
    pub precision: String,
    pub device: String,
    pub intra_threads: usize,
    pub iters: usize,
    pub rows: Vec<BenchRow>,
    /// Batch 1 over `queries`, each alone at its own length (`seq`: their mean token count,
    /// rounded); `iters` passes over the set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lone_queries: Option<BenchRow>,
    /// `queries` in consecutive batches (see `EncoderBench::query_batches`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_batch_rows: Vec<QueryBatchRow>,
}

/// All of `queries` in batches of `row.batch`; `row.seq` is the mean padded tokens per query,
/// `row.sequences_per_s` the queries encoded per second of encoder time over whole passes.
#[derive(Debug, Clone, Serialize)]
pub struct QueryBatchRow {
    /// "arrival" (the data file's order) or "sorted" (by token length).
    pub order: &'static str,
    #[serde(flatten)]
    pub row: BenchRow,
}

impl EncoderBench {
    /// Loads the model and measures every (batch, seq) point; `on_row` sees each row as it lands.
    pub fn run(&self, mut on_row: impl FnMut(&BenchRow)) -> Result<BenchResult, LoadtestError> {
        let fail = |reason: String| LoadtestError::Bench { reason };
        if self.iters == 0 || self.batch_sizes.contains(&0) || self.seq_lens.iter().any(|&s| s < 2)
        {
            return Err(fail(
                "iters and batch sizes must be >= 1, sequence lengths >= 2".into(),
            ));
        }
        let options = EncoderOptions {
            device: self.device,
            intra_threads: self.intra_threads,
        };
        let mut encoder = Encoder::load(&self.model, &options)?;
        let max_length = encoder.manifest().max_length;
        if let Some(too_long) = self.seq_lens.iter().find(|&&s| s > max_length) {
            return Err(fail(format!(
                "sequence length {too_long} exceeds the model's max_length {max_length}"
            )));
        }
        let sample = encoder.tokenizer().tokenize(SAMPLE, Mode::Passage)?;
        let mut rows = Vec::new();
        for &seq in &self.seq_lens {
            let tokens = sample
                .stretched(seq)
                .ok_or_else(|| fail("the tokenizer gave too few tokens for the sample".into()))?;
            for &batch in &self.batch_sizes {
                let inputs: Vec<&Tokens> = vec![&tokens; batch];
                for _ in 0..self.warmup {
                    encoder.encode(&inputs)?;
                }
                let mut times = Vec::with_capacity(self.iters);
                for _ in 0..self.iters {
                    let t = Instant::now();
                    let out = encoder.encode(&inputs)?;
                    times.push(t.elapsed().as_secs_f64());
                    if out.len() != batch {
                        return Err(fail(format!(
                            "{} embeddings for a batch of {batch}",
                            out.len()
                        )));
                    }
                }
                let row = row(batch, seq, &mut times);
                on_row(&row);
                rows.push(row);
            }
        }
        let lone_queries = self.lone_queries(&mut encoder)?;
        let query_batch_rows = self.query_batches(&mut encoder)?;
        Ok(BenchResult {
            model_id: encoder.manifest().id.clone(),
            precision: encoder.manifest().precision.clone(),
            device: self.device.to_string(),
            intra_threads: self.intra_threads,
            iters: self.iters,
            rows,
            lone_queries,
            query_batch_rows,
        })
    }

    fn query_batches(&self, encoder: &mut Encoder) -> Result<Vec<QueryBatchRow>, LoadtestError> {
        if self.queries.is_empty() || self.query_batches.is_empty() {
            return Ok(Vec::new());
        }
        let arrival = self
            .queries
            .iter()
            .map(|q| encoder.tokenizer().tokenize(q, Mode::Query))
            .collect::<Result<Vec<_>, _>>()?;
        let mut sorted = arrival.clone();
        sorted.sort_by_key(Tokens::len);
        let mut rows = Vec::new();
        for &batch in &self.query_batches {
            for (order, tokens) in [("arrival", &arrival), ("sorted", &sorted)] {
                let chunks: Vec<Vec<&Tokens>> = tokens
                    .chunks(batch.max(1))
                    .map(|c| c.iter().collect())
                    .collect();
                for chunk in chunks.iter().cycle().take(self.warmup.min(chunks.len())) {
                    encoder.encode(chunk)?;
                }
                let mut times = Vec::with_capacity(self.iters * chunks.len());
                for _ in 0..self.iters {
                    for chunk in &chunks {
                        let start = Instant::now();
                        encoder.encode(chunk)?;
                        times.push(start.elapsed().as_secs_f64());
                    }
                }
                let padded: usize = chunks
                    .iter()
                    .map(|c| c.len() * c.iter().map(|t| t.len()).max().unwrap_or(0))
                    .sum();
                let per_query = padded as f64 / tokens.len() as f64;
                let total_s = times.iter().sum::<f64>();
                let mut row = row(batch, per_query.round() as usize, &mut times);
                row.sequences_per_s = (self.iters * tokens.len()) as f64 / total_s;
                row.tokens_per_s = row.sequences_per_s * per_query;
                rows.push(QueryBatchRow { order, row });
            }
        }
        Ok(rows)
    }

    fn lone_queries(&self, encoder: &mut Encoder) -> Result<Option<BenchRow>, LoadtestError> {
        if self.queries.is_empty() {
            return Ok(None);
        }
        let tokens = self
            .queries
            .iter()
            .map(|q| encoder.tokenizer().tokenize(q, Mode::Query))
            .collect::<Result<Vec<_>, _>>()?;
        for t in tokens.iter().cycle().take(self.warmup * tokens.len()) {
            encoder.encode(&[t])?;
        }
        let mut times = Vec::with_capacity(self.iters * tokens.len());
        for _ in 0..self.iters {
            for t in &tokens {
                let start = Instant::now();
                encoder.encode(&[t])?;
                times.push(start.elapsed().as_secs_f64());
            }
        }
        let mean_tokens =
            tokens.iter().map(Tokens::len).sum::<usize>() as f64 / tokens.len() as f64;
        Ok(Some(row(1, mean_tokens.round() as usize, &mut times)))
    }
}

fn row(batch: usize, seq: usize, times: &mut [f64]) -> BenchRow {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize] * 1e3;
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let sequences_per_s = batch as f64 / mean;
    BenchRow {
        batch,
        seq,
        p50_ms: at(0.5),
        p90_ms: at(0.9),
        mean_ms: mean * 1e3,
        sequences_per_s,
        tokens_per_s: sequences_per_s * seq as f64,
    }
}

/// The result as pretty JSON.
pub fn to_json(result: &BenchResult) -> String {
    // Plain numbers and strings always serialize.
    serde_json::to_string_pretty(result).unwrap_or_default() + "\n"
}

/// Header and rows as an aligned text table.
pub fn table_header() -> String {
    format!(
        "{:>6} {:>6} {:>10} {:>10} {:>12} {:>12}",
        "batch", "seq", "p50 ms", "p90 ms", "seq/s", "tokens/s"
    )
}

pub fn table_row(r: &BenchRow) -> String {
    let mut line = String::new();
    let _ = write!(
        line,
        "{:>6} {:>6} {:>10.2} {:>10.2} {:>12.1} {:>12.0}",
        r.batch, r.seq, r.p50_ms, r.p90_ms, r.sequences_per_s, r.tokens_per_s
    );
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_reports_throughput_from_mean_time() {
        let mut times = vec![0.02, 0.01, 0.03];
        let r = row(4, 16, &mut times);
        assert!((r.p50_ms - 20.0).abs() < 1e-9);
        assert!((r.sequences_per_s - 200.0).abs() < 1e-6);
        assert!((r.tokens_per_s - 3200.0).abs() < 1e-3);
    }

    /// The real encoder on the committed tiny model (needs libonnxruntime, see scripts/setup.sh).
    #[test]
    fn measures_the_committed_tiny_model() {
        let model = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/mt5-tiny");
        let bench = EncoderBench {
            model,
            device: Device::Cpu,
            intra_threads: 1,
            batch_sizes: vec![1, 2],
            seq_lens: vec![8],
            iters: 2,
            warmup: 1,
            queries: vec!["Wie hoch ist der Everest?".into(), "tango".into()],
            query_batches: vec![2],
        };
        let mut seen = 0;
        let result = bench.run(|_| seen += 1).unwrap();
        assert_eq!(seen, 2);
        assert_eq!(result.model_id, "xling/mt5-tiny-random");
        assert!(result
            .rows
            .iter()
            .all(|r| r.sequences_per_s > 0.0 && r.seq == 8));
        let lone = result.lone_queries.expect("queries were given");
        assert_eq!(lone.batch, 1);
        assert!(lone.seq >= 2 && lone.p50_ms > 0.0, "{lone:?}");
        let orders: Vec<_> = result.query_batch_rows.iter().map(|r| r.order).collect();
        assert_eq!(orders, ["arrival", "sorted"]);
        assert!(result
            .query_batch_rows
            .iter()
            .all(|r| r.row.batch == 2 && r.row.sequences_per_s > 0.0 && r.row.seq >= lone.seq));
        let too_long = EncoderBench {
            seq_lens: vec![100_000],
            ..bench
        };
        let err = too_long.run(|_| {}).unwrap_err().to_string();
        assert!(err.contains("max_length"), "{err}");
    }
}
