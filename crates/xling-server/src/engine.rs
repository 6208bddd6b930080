//! The serving core, free of transport types: tokenize, queue for a batch, encode, search.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::future::BoxFuture;
use xling_batcher::{BatchConfig, BatchError, Batcher, TimedRun};
use xling_encoder::{
    Backend as Runner, Device, Encoder, EncoderKind, EncoderOptions, Mode, SimDevice,
    TextTokenizer, Tokens,
};
use xling_index::{Backend, BackendInfo, Found, IndexError, LiveIndex, Query};

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
    /// `onnx`, or the benchmark stand-in in its place (`null`, `sim:...`).
    pub encoder: String,
    /// Encoder instances, each a session on its own thread.
    pub instances: usize,
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

impl Embedded {
    /// A client's own query embedding (validated: finite, not all zero), L2-normalized like
    /// the index's rows. It never enters the batcher: no tokens, no queue, no encoder time.
    pub fn given(values: &[f32]) -> Embedded {
        // f64: the squares of large finite f32 values would overflow in f32.
        let norm = values
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        Embedded {
            vector: values
                .iter()
                .map(|&v| (f64::from(v) / norm) as f32)
                .collect(),
            tokens: 0,
            truncated: false,
            tokenize: Duration::ZERO,
            queue_wait: Duration::ZERO,
            encode: Duration::ZERO,
            batch_size: 0,
        }
    }
}

/// What `Engine::load_parts` hands to `Engine::start`.
pub struct Parts {
    /// One per encoder instance (at least one).
    pub encoders: Vec<Encoder>,
    pub encoder_kind: EncoderKind,
    pub backend: Arc<dyn Backend>,
    pub calibration: Vec<TimedRun>,
}

/// Opens the configured index backend. The server itself knows only the embedded folder
/// ([`open_embedded`]); the `xling` binary passes one that also opens Qdrant, so that this
/// crate never links a Qdrant client.
pub type OpenBackend =
    Arc<dyn Fn(Config) -> BoxFuture<'static, anyhow::Result<Arc<dyn Backend>>> + Send + Sync>;

/// Loads `config.index` (a folder built by `xling index build`) with its write-ahead log
/// replayed on top, on a blocking thread: a live index that takes Admin writes.
pub fn open_embedded(config: Config) -> BoxFuture<'static, anyhow::Result<Arc<dyn Backend>>> {
    Box::pin(async move {
        if config.index_backend != crate::config::IndexBackend::Embedded {
            anyhow::bail!("index_backend qdrant needs the `xling` binary (this server links only the embedded index)");
        }
        let dir = config.index.clone();
        let mut policy = config.live.compaction;
        policy.exact_subset_max = config.exact_subset_max;
        let backend = tokio::task::spawn_blocking(move || LiveIndex::open(&dir, policy))
            .await?
            .with_context(|| format!("cannot load index folder {}", config.index.display()))?;
        Ok(backend as Arc<dyn Backend>)
    })
}

/// Batch shapes (rows, tokens) timed at startup, so the length split knows the per-token
/// cost across shapes that live traffic (full batches of similar queries) may never show.
/// At least 4 rows: on a CPU a run of 1-2 rows leaves intra-op threads idle and costs about
/// twice as much per token, which would make the fit see no fixed cost at all.
const CALIBRATION: [(usize, usize); 4] = [(4, 16), (4, 48), (16, 16), (16, 32)];
const CALIBRATION_TEXT: &str = "A calibration sentence, repeated to each length timed.";
/// Timed runs per shape; the fastest counts.
const CALIBRATION_RUNS: usize = 3;

/// Warms the encoder up and, when `timed` (only the length split reads the timings), times
/// the calibration shapes.
fn calibrate(encoder: &mut Encoder, timed: bool) -> anyhow::Result<Vec<TimedRun>> {
    let sample = encoder
        .tokenizer()
        .tokenize(CALIBRATION_TEXT, Mode::Passage)?;
    let max_length = encoder.manifest().max_length;
    let batches = CALIBRATION
        .iter()
        .map(|&(rows, len)| {
            let tokens = sample
                .stretched(len.min(max_length))
                .context("the tokenizer gave no content tokens for the calibration text")?;
            Ok((rows, tokens))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The first runs after loading are slow (thread pool, memory arena): warm up untimed on
    // the largest shape, and on every shape when timing them.
    let warm_up = if timed {
        &batches[..]
    } else {
        &batches[batches.len().saturating_sub(1)..]
    };
    for (rows, tokens) in warm_up {
        encoder.encode(&vec![tokens; *rows])?;
    }
    if !timed {
        return Ok(Vec::new());
    }
    // Rounds over all shapes, fastest per shape: a slow spell of a shared machine then lands
    // on every shape alike instead of skewing one (which tilts the fit's fixed cost).
    let mut fastest = vec![Duration::MAX; batches.len()];
    for _ in 0..CALIBRATION_RUNS {
        for ((rows, tokens), best) in batches.iter().zip(&mut fastest) {
            let batch = vec![tokens; *rows];
            let started = Instant::now();
            encoder.encode(&batch)?;
            *best = (*best).min(started.elapsed());
        }
    }
    let runs = batches
        .iter()
        .zip(fastest)
        .map(|((rows, tokens), run_time)| TimedRun {
            rows: *rows,
            longest: tokens.len(),
            run_time,
        })
        .collect();
    Ok(runs)
}

/// ONNX Runtime intra-op threads per instance: as given, else on a CPU the cores shared among
/// the instances (0 = ONNX Runtime's one per core, right for a single instance); on CUDA the
/// encoder crate picks 1.
fn intra_threads(device: Device, given: usize, instances: usize) -> usize {
    match (device, given) {
        (Device::Cpu, 0) if instances > 1 => {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / instances).max(1)
        }
        _ => given,
    }
}

/// The `xling_rejected_total` reason of a refused admission; `None` for errors that are not
/// admission refusals. Exhaustive, so a new refusal cannot go uncounted.
fn rejection_reason(error: &BatchError) -> Option<&'static str> {
    match error {
        BatchError::QueueFull { .. } => Some("queue_full"),
        BatchError::DeadlineUnreachable { .. } => Some("deadline_unreachable"),
        BatchError::OverBudget { .. } => Some("queue_wait_budget"),
        BatchError::DeadlineExceeded { .. } | BatchError::Closed | BatchError::Failed { .. } => {
            None
        }
    }
}

pub struct Engine {
    batcher: Batcher<Tokens, Vec<f32>>,
    tokenizer: TextTokenizer,
    backend: Arc<dyn Backend>,
    pub model: ModelInfo,
    pub batching: BatchConfig,
}

impl Engine {
    /// Loads the model (blocking: call from a blocking thread), checks that it and the opened
    /// index belong together, and warms the encoder up (timing a few batch shapes for the split).
    pub fn load_parts(config: &Config, backend: Arc<dyn Backend>) -> anyhow::Result<Parts> {
        let instances = config.encoder_instances.max(1);
        let options = EncoderOptions {
            device: config.device,
            intra_threads: intra_threads(config.device, config.intra_threads, instances),
        };
        let runner = match &config.encoder {
            EncoderKind::Onnx => Runner::Onnx,
            EncoderKind::Null => Runner::Null,
            // One device for all instances, as one GPU serves every session.
            EncoderKind::Simulated(spec) => Runner::Simulated(SimDevice::start(
                *spec,
                Some(Arc::new(metrics::device_busy)),
            )),
        };
        let mut encoders = (0..instances)
            .map(|_| {
                Encoder::load_backend(&config.model, &options, runner.clone())
                    .with_context(|| format!("cannot load model folder {}", config.model.display()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let manifest = encoders[0].manifest();
        backend.check_model(&manifest.id, manifest.dim)?;
        let started = Instant::now();
        // The first instance is timed for the split; the others only warm up.
        let calibration = calibrate(&mut encoders[0], config.batching.split_by_length)
            .context("model warm-up failed")?;
        for encoder in &mut encoders[1..] {
            calibrate(encoder, false).context("model warm-up failed")?;
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            instances,
            encoder = %config.encoder,
            runs = ?calibration
                .iter()
                .map(|r| format!("{}x{}: {:.1} ms", r.rows, r.longest, r.run_time.as_secs_f64() * 1e3))
                .collect::<Vec<_>>(),
            "encoder warmed up"
        );
        Ok(Parts {
            encoders,
            encoder_kind: config.encoder.clone(),
            backend,
            calibration,
        })
    }

    /// Starts the batcher around the loaded encoders (needs a tokio runtime).
    pub fn start(parts: Parts, batching: BatchConfig) -> Engine {
        let Parts {
            encoders,
            encoder_kind,
            backend,
            calibration,
        } = parts;
        let first = &encoders[0];
        let manifest = first.manifest();
        let model = ModelInfo {
            id: manifest.id.clone(),
            dim: manifest.dim,
            max_length: manifest.max_length,
            device: first.device().to_string(),
            encoder: encoder_kind.to_string(),
            instances: encoders.len(),
        };
        let tokenizer = first.tokenizer().clone();
        metrics::build_info(&model.id, &model.device);
        metrics::queue_capacity(batching.queue_capacity);
        let index = backend.describe();
        metrics::index_passages(&index.languages);
        metrics::index_bytes(index.bytes_in_ram, index.bytes_mapped);
        let processes: Vec<_> = encoders
            .into_iter()
            .map(|mut encoder| {
                move |batch: &[&Tokens]| encoder.encode(batch).map_err(|e| e.to_string())
            })
            .collect();
        let batcher =
            Batcher::start_pool(batching.clone(), Arc::new(metrics::BatchMetrics), processes);
        batcher.calibrate(&calibration);
        Engine {
            batcher,
            tokenizer,
            backend,
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
        // Admission first: a refused query costs no tokenizing.
        let slot = self.batcher.reserve(deadline).inspect_err(|e| {
            if let Some(reason) = rejection_reason(e) {
                metrics::rejected(reason);
            }
        })?;
        let tokenizing = Instant::now();
        let tokens = self
            .tokenizer
            .tokenize(text, mode)
            .map_err(|e| ServerError::Encoder {
                reason: e.to_string(),
            })?;
        let tokenize = tokenizing.elapsed();
        let (count, truncated) = (tokens.len(), tokens.truncated);
        metrics::query_admitted(count, tokenize);
        let ticket = slot.submit(tokens, count)?;
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

    /// Embeds passages for an upsert in the batcher's background lane: they are encoded only
    /// in batches formed while no query waits, so Search latency holds under a write stream.
    pub async fn embed_passages(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ServerError> {
        let tickets = texts
            .iter()
            .map(|text| {
                let tokens = self.tokenizer.tokenize(text, Mode::Passage).map_err(|e| {
                    ServerError::Encoder {
                        reason: e.to_string(),
                    }
                })?;
                let count = tokens.len();
                Ok(self.batcher.submit_background(tokens, count)?)
            })
            .collect::<Result<Vec<_>, ServerError>>()?;
        let done = futures::future::try_join_all(tickets).await?;
        Ok(done.into_iter().map(|d| d.output).collect())
    }

    /// Searches the index for every query in one backend call (one Qdrant batch query);
    /// returns the hits per query and the time the call took.
    pub async fn search(
        &self,
        queries: &[Query<'_>],
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(Vec<Vec<Found>>, Duration), ServerError> {
        let started = Instant::now();
        let found = self
            .backend
            .search_batch(queries, deadline.map(tokio::time::Instant::into_std))
            .await?;
        if found.len() != queries.len() {
            // Callers pair results with queries by position: a short answer must not pass.
            return Err(IndexError::Remote {
                backend: self.backend.describe().kind.to_string(),
                reason: format!("{} result lists for {} queries", found.len(), queries.len()),
            }
            .into());
        }
        let elapsed = started.elapsed();
        for _ in queries {
            metrics::query_searched(elapsed);
        }
        Ok((found, elapsed))
    }

    /// What the index holds (a snapshot the backend keeps; no I/O).
    pub fn index_info(&self) -> Arc<BackendInfo> {
        self.backend.describe()
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Queries admitted and not yet encoding.
    pub fn queue_depth(&self) -> usize {
        self.batcher.depth()
    }

    /// Stops admitting and answers everything already admitted.
    pub async fn drain(&self) {
        self.batcher.shutdown().await;
    }
}
