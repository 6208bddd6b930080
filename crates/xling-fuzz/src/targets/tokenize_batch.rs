//! `tokenize-batch`: texts through the real path of a query before search: the model's
//! [`TextTokenizer`], the dynamic [`Batcher`], and the real ONNX encoder of `models/mt5-tiny`
//! on ONNX Runtime (CPU).
//!
//! Invariant: no panic; every text tokenizes, to at least one and at most `max_length` ids
//! (exactly `max_length` when it says it was truncated); every submitted item gets exactly one
//! answer, an embedding of the model's dimension, finite and L2-normalized; equal token ids get
//! equal embeddings whatever batch and padding they ran in; no batch is larger than
//! `max_batch_size`, or over the token budget unless it holds a single item.
//!
//! Input layout: `[mode][text][0xFF][text]...`; bit 0 of `mode` picks query or passage, texts
//! are decoded lossily (0xFF never occurs in UTF-8). The batching settings rotate through
//! [`configs`] every [`INPUTS_PER_BATCHER`] inputs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::Rng;
use xling_batcher::{BatchConfig, BatchStats, Batcher, Observer};
use xling_encoder::{Device, Encoder, EncoderOptions, Mode, TextTokenizer, Tokens};

use crate::targets::{framed, unframe};
use crate::text::text;
use crate::{Outcome, Target};

/// Items per input at most (the server's default `max_batch_queries` is 64).
const MAX_ITEMS: usize = 128;
/// A rotation of batching settings; a fresh batcher (and encoder) starts each time.
const INPUTS_PER_BATCHER: u64 = 500;
/// An item still unanswered after this long counts as lost.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
/// Padding may change the last bits of an embedding, nothing more.
const SAME_IDS_TOLERANCE: f32 = 1e-4;

/// Batching settings from "one at a time" to large adaptive batches and tight token budgets
/// (below the model's 512 tokens, so that one long text must run alone).
pub fn configs() -> Vec<BatchConfig> {
    let config = |size, wait_us, tokens, adaptive, split| BatchConfig {
        max_batch_size: size,
        max_wait: Duration::from_micros(wait_us),
        queue_capacity: 1024,
        // No budget: every item submitted must be answered, refusals are failures here.
        max_queue_wait: Duration::ZERO,
        max_batch_tokens: tokens,
        max_background_tokens: BatchConfig::DEFAULT.max_background_tokens,
        adaptive_wait: adaptive,
        split_by_length: split,
        split_window: 0,
    };
    vec![
        config(4, 200, 0, false, false),
        config(8, 1_000, 256, false, true),
        config(1, 0, 0, false, true),
        config(16, 0, 0, false, true),
        config(32, 2_000, 0, true, true),
        config(3, 50, 1_024, false, false),
    ]
}

/// Keeps every batch's statistics: the batcher reports them through its observer hook.
#[derive(Default)]
struct Batches(Mutex<Vec<BatchStats>>);

impl Observer for Batches {
    fn batch_done(&self, stats: BatchStats) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(stats);
    }
}

struct Running {
    batcher: Batcher<Tokens, Vec<f32>>,
    config: BatchConfig,
    batches: Arc<Batches>,
    inputs: u64,
}

pub struct TokenizeBatch {
    model: PathBuf,
    runtime: tokio::runtime::Runtime,
    tokenizer: TextTokenizer,
    max_length: usize,
    dim: usize,
    running: Option<Running>,
    started: usize,
}

impl TokenizeBatch {
    /// Loads the model once to learn its tokenizer and shape; batchers load their own copy.
    pub fn new(model: &Path) -> anyhow::Result<TokenizeBatch> {
        let encoder = load(model)?;
        let manifest = encoder.manifest();
        Ok(TokenizeBatch {
            model: model.to_path_buf(),
            runtime: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()?,
            tokenizer: encoder.tokenizer().clone(),
            max_length: manifest.max_length,
            dim: manifest.dim,
            running: None,
            started: 0,
        })
    }

    /// Starts a batcher with the next settings when there is none or it has served its turn;
    /// counts the input about to run on it.
    fn rotate_batcher(&mut self) -> Result<(), String> {
        if self
            .running
            .as_ref()
            .is_none_or(|r| r.inputs >= INPUTS_PER_BATCHER)
        {
            if let Some(old) = self.running.take() {
                self.runtime.block_on(old.batcher.shutdown());
            }
            let all = configs();
            let config = all[self.started % all.len()].clone();
            self.started += 1;
            let mut encoder = load(&self.model).map_err(|e| format!("{e:#}"))?;
            let batches = Arc::new(Batches::default());
            let _context = self.runtime.enter();
            let batcher = Batcher::start(config.clone(), batches.clone(), move |batch| {
                encoder.encode(batch).map_err(|e| e.to_string())
            });
            self.running = Some(Running {
                batcher,
                config,
                batches,
                inputs: 0,
            });
        }
        if let Some(running) = self.running.as_mut() {
            running.inputs += 1;
        }
        Ok(())
    }

    fn tokenize(&self, text: &str, mode: Mode) -> Result<Tokens, String> {
        let tokens = self
            .tokenizer
            .tokenize(text, mode)
            .map_err(|e| format!("tokenizer failed on {text:?}: {e}"))?;
        let n = tokens.len();
        if n == 0 || n > self.max_length || (tokens.truncated && n != self.max_length) {
            return Err(format!(
                "{n} tokens (truncated: {}, max {}) for {text:?}",
                tokens.truncated, self.max_length
            ));
        }
        Ok(tokens)
    }
}

/// The invariant on one answer: the model's dimension, finite, unit length.
pub fn check_embedding(vector: &[f32], dim: usize) -> Result<(), String> {
    if vector.len() != dim {
        return Err(format!("embedding of dim {}, not {dim}", vector.len()));
    }
    if let Some(x) = vector.iter().find(|x| !x.is_finite()) {
        return Err(format!("non-finite value {x} in an embedding"));
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if (norm - 1.0).abs() > 1e-3 {
        return Err(format!("embedding norm {norm}, not 1"));
    }
    Ok(())
}

fn load(model: &Path) -> anyhow::Result<Encoder> {
    // One intra-op thread: the fuzzer shares its machine, and batch size is what matters here.
    let options = EncoderOptions {
        device: Device::Cpu,
        intra_threads: 1,
    };
    Encoder::load(model, &options).map_err(|e| {
        anyhow::anyhow!("{e} (ONNX Runtime: set ORT_DYLIB_PATH or run scripts/setup.sh)")
    })
}

impl Target for TokenizeBatch {
    fn name(&self) -> &'static str {
        "tokenize-batch"
    }

    fn generate(&mut self, rng: &mut StdRng, _seeds: &[Vec<u8>]) -> Vec<u8> {
        let n = match rng.gen_range(0..8) {
            0 => rng.gen_range(20..MAX_ITEMS),
            _ => rng.gen_range(1..8),
        };
        let texts: Vec<Vec<u8>> = (0..n).map(|_| text(rng).into_bytes()).collect();
        framed(rng.gen(), &texts)
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        &[
            b"\xff",
            b"\xff\xff",
            b"</s>",
            b"\xe2\x96\x81",
            b"\xf0\x9f",
            b"\xcc\x81",
            b"\0",
        ]
    }

    fn check(&mut self, input: &[u8]) -> Result<Outcome, String> {
        let (settings, texts) = unframe(input);
        let mode = match settings {
            Some(m) if m & 1 == 1 => Mode::Passage,
            _ => Mode::Query,
        };
        let texts: Vec<String> = texts
            .take(MAX_ITEMS)
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect();
        let tokens = texts
            .iter()
            .map(|t| self.tokenize(t, mode))
            .collect::<Result<Vec<_>, _>>()?;
        self.rotate_batcher()?;
        let running = self.running.as_ref().expect("rotate_batcher started one");
        let (batcher, config, batches) = (&running.batcher, &running.config, &running.batches);
        let _context = self.runtime.enter();
        let tickets = tokens
            .iter()
            .map(|t| batcher.submit(t.clone(), t.len(), None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("submit refused with an empty queue: {e}"))?;
        let answers = self.runtime.block_on(async {
            let all = futures::future::join_all(tickets);
            tokio::time::timeout(ANSWER_TIMEOUT, all).await
        });
        let answers = answers
            .map_err(|_| format!("not every item was answered within {ANSWER_TIMEOUT:?}"))?;
        let mut by_ids: HashMap<&[i64], &[f32]> = HashMap::new();
        for (i, (answer, tokens)) in answers.iter().zip(&tokens).enumerate() {
            let done = answer
                .as_ref()
                .map_err(|e| format!("item {i} ({} tokens) failed: {e}", tokens.len()))?;
            check_embedding(&done.output, self.dim).map_err(|e| format!("item {i}: {e}"))?;
            if !(1..=config.max_batch_size).contains(&done.batch_size) {
                return Err(format!("item {i} ran in a batch of {}", done.batch_size));
            }
            let first = *by_ids.entry(&tokens.ids).or_insert(&done.output);
            let diff = first
                .iter()
                .zip(&done.output)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            if diff > SAME_IDS_TOLERANCE {
                return Err(format!(
                    "item {i}: same token ids, embeddings differ by {diff}"
                ));
            }
        }
        let stats = std::mem::take(&mut *batches.0.lock().unwrap_or_else(|e| e.into_inner()));
        for batch in stats {
            let over_budget = config.max_batch_tokens > 0
                && batch.padded_tokens > config.max_batch_tokens
                && batch.size > 1;
            if batch.failed || batch.size > config.max_batch_size || over_budget {
                return Err(format!("batch {batch:?} under {config:?}"));
            }
        }
        Ok(Outcome::Accepted)
    }
}
