//! The serving core, free of transport types: tokenize, queue for a batch, encode, search.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use xling_batcher::{BatchConfig, BatchError, Batcher};
use xling_encoder::{Encoder, EncoderOptions, Mode, TextTokenizer, Tokens};
use xling_index::{Hit, Index};

use crate::config::Config;
use crate::error::ServerError;
use crate::metrics;

/// What the served model is.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    pub id: String,
    pub dim: usize,
    pub max_length: usize,
    pub device: String,
}

/// One text embedded, and where its time went.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub vector: Vec<f32>,
    pub tokens: usize,
    pub truncated: bool,
    pub tokenize: Duration,
    pub queue_wait: Duration,
    pub encode: Duration,
    pub batch_size: usize,
}

pub struct Engine {
    batcher: Batcher<Tokens, Vec<f32>>,
    tokenizer: TextTokenizer,
    index: Arc<Index>,
    pub model: ModelInfo,
    pub batching: BatchConfig,
}

impl Engine {
    /// Loads the model and index (blocking: call from a blocking thread), checks that they
    /// belong together and warms the encoder up.
    pub fn load_parts(config: &Config) -> anyhow::Result<(Encoder, Index)> {
        let options = EncoderOptions {
            device: config.device,
            intra_threads: config.intra_threads,
        };
        let mut encoder = Encoder::load(&config.model, &options)
            .with_context(|| format!("cannot load model folder {}", config.model.display()))?;
        let index = Index::load(&config.index)
            .with_context(|| format!("cannot load index folder {}", config.index.display()))?;
        let manifest = encoder.manifest();
        index.check_model(&manifest.id, manifest.dim)?;
        let started = Instant::now();
        encoder
            .embed(
                &[
                    "warm-up",
                    "a longer warm-up text, so that the graph sees two lengths",
                ],
                Mode::Query,
            )
            .context("model warm-up failed")?;
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "encoder warmed up"
        );
        Ok((encoder, index))
    }

    /// Starts the batcher around `encoder` (needs a tokio runtime).
    pub fn start(encoder: Encoder, index: Index, batching: BatchConfig) -> Engine {
        let manifest = encoder.manifest();
        let model = ModelInfo {
            id: manifest.id.clone(),
            dim: manifest.dim,
            max_length: manifest.max_length,
            device: encoder.device().to_string(),
        };
        let tokenizer = encoder.tokenizer().clone();
        metrics::build_info(&model.id, &model.device);
        metrics::index_passages(&index.manifest().languages);
        let mut encoder = encoder;
        let batcher = Batcher::start(
            batching.clone(),
            Arc::new(metrics::BatchMetrics),
            move |batch: &[&Tokens]| encoder.encode(batch).map_err(|e| e.to_string()),
        );
        Engine {
            batcher,
            tokenizer,
            index: Arc::new(index),
            model,
            batching,
        }
    }

    /// Embeds one text through the dynamic batcher. `deadline` is the caller's: a query still
    /// queued when it passes is dropped unencoded.
    pub async fn embed(
        &self,
        text: &str,
        mode: Mode,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Embedded, ServerError> {
        let started = Instant::now();
        let tokens = self
            .tokenizer
            .tokenize(text, mode)
            .map_err(|e| ServerError::Encoder {
                reason: e.to_string(),
            })?;
        let tokenize = started.elapsed();
        let (count, truncated) = (tokens.len(), tokens.truncated);
        metrics::query_admitted(count, tokenize);
        let ticket = self
            .batcher
            .submit(tokens, count, deadline)
            .inspect_err(|e| match e {
                BatchError::QueueFull { .. } => metrics::rejected("queue_full"),
                BatchError::DeadlineUnreachable { .. } => metrics::rejected("deadline_unreachable"),
                _ => {}
            })?;
        // Answer DEADLINE_EXCEEDED ourselves when the deadline passes while queued or encoding;
        // the batcher counts the dropped query as expired when its batch closes.
        let done = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, ticket)
                .await
                .map_err(|_| ServerError::DeadlineExceeded {
                    waited_ms: started.elapsed().as_millis() as u64,
                })??,
            None => ticket.await?,
        };
        metrics::query_encoded(done.queue_wait);
        Ok(Embedded {
            vector: done.output,
            tokens: count,
            truncated,
            tokenize,
            queue_wait: done.queue_wait,
            encode: done.run_time,
            batch_size: done.batch_size,
        })
    }

    /// Searches the index; returns the hits and the time it took.
    pub fn search(
        &self,
        vector: &[f32],
        top_k: usize,
        ef: usize,
        languages: Option<&[String]>,
    ) -> Result<(Vec<Hit>, Duration), ServerError> {
        let started = Instant::now();
        let hits = self.index.search(vector, top_k, ef, languages)?;
        let elapsed = started.elapsed();
        metrics::query_searched(elapsed);
        Ok((hits, elapsed))
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn index_languages(&self) -> &BTreeMap<String, usize> {
        &self.index.manifest().languages
    }

    /// Queries admitted and not yet encoding.
    pub fn queue_depth(&self) -> usize {
        self.batcher.depth()
    }

    pub fn current_wait(&self) -> Duration {
        self.batcher.current_wait()
    }

    /// Stops admitting and answers everything already admitted.
    pub async fn drain(&self) {
        self.batcher.shutdown().await;
    }
}
