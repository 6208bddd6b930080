//! Every serving setting, in one typed struct.
//!
//! A setting comes from (highest first) its command-line flag, its `XLING_*` environment
//! variable, the TOML file given by `--config` (keys are the flag names with underscores),
//! or its default. [`Settings`] holds what was given; [`Config`] is the resolved, validated
//! result the server runs with.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use xling_batcher::BatchConfig;
use xling_encoder::{Device, EncoderKind};
use xling_index::CompactionPolicy;

use crate::auth::{check_token, Secret};
use crate::tls::TlsFiles;

/// The batching defaults, written once in the batcher.
const D: BatchConfig = BatchConfig::DEFAULT;

/// A help text that ends with its default, as clap prints them.
fn defaulted(text: &str, default: impl std::fmt::Display) -> String {
    format!("{text} [default: {default}]")
}

/// What the operator gave, before defaults. Every field is optional so that the layers can be
/// merged field by field.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// gRPC listen address. [default: 0.0.0.0:50051]
    #[arg(long, env = "XLING_GRPC_ADDR")]
    pub grpc_addr: Option<SocketAddr>,
    /// Prometheus /metrics listen address; "off" disables it. [default: 0.0.0.0:9464]
    #[arg(long, env = "XLING_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Model folder (model.toml, ONNX graph, tokenizer.json).
    /// [default: $XLING_HOME/models/multilingual-e5-small]
    #[arg(long, env = "XLING_MODEL")]
    pub model: Option<PathBuf>,
    /// Index folder built by `xling index build`. [default: $XLING_HOME/indexes/demo]
    #[arg(long, env = "XLING_INDEX")]
    pub index: Option<PathBuf>,
    /// Inference device: cpu, cuda or cuda:N. CUDA that cannot be had fails startup. [default: cpu]
    #[arg(long, env = "XLING_DEVICE")]
    pub device: Option<String>,
    /// ONNX Runtime intra-op threads; 0 = one per physical core. [default: 0]
    #[arg(long, env = "XLING_INTRA_THREADS")]
    pub intra_threads: Option<usize>,
    /// Encoder instances: ONNX Runtime sessions, each on its own thread (and CUDA stream),
    /// each batch run by whichever is free. 0 = the device's default (cpu: 1, cuda: 3).
    /// [default: 0]
    #[arg(long, env = "XLING_ENCODER_INSTANCES")]
    pub encoder_instances: Option<usize>,
    /// Benchmarks only: `null` (no encoder: the host ceiling) or
    /// `sim:fixed_us=N,per_token_ns=N,host_us=N` (a simulated device) in place of ONNX Runtime.
    /// [default: onnx]
    #[arg(long, env = "XLING_ENCODER", hide = true)]
    pub encoder: Option<String>,
    // The batching settings' help texts print their defaults from `BatchConfig::DEFAULT`, the
    // one place they are written.
    #[arg(long, env = "XLING_MAX_BATCH_SIZE", help = defaulted(
        "Most queries encoded together.",
        D.max_batch_size,
    ))]
    pub max_batch_size: Option<usize>,
    #[arg(long, env = "XLING_MAX_WAIT_US", help = defaulted(
        "Longest time (microseconds) a batch opened on an idle encoder waits for company. 0 is \
         work-conserving batching: never wait while the encoder is idle, and batch whatever \
         queued while it was busy. Above 0, a fixed timer from the batch's first query (the old \
         rule, kept for the study); with --adaptive-wait, the cap of the adaptive wait.",
        D.max_wait.as_micros(),
    ))]
    pub max_wait_us: Option<u64>,
    #[arg(long, env = "XLING_QUEUE_CAPACITY", help = defaulted(
        "Queries admitted and not yet encoding; beyond it requests get RESOURCE_EXHAUSTED at \
         once. Bounds the wait of accepted queries under overload to about what a closed loop of \
         that many clients sees.",
        "2 x max-batch-size x encoder instances, at least 64",
    ))]
    pub queue_capacity: Option<usize>,
    #[arg(long, env = "XLING_MAX_QUEUE_WAIT_MS", help = defaulted(
        "Queue wait budget (milliseconds): a query whose predicted wait for the encoder (the \
         queries ahead and its own, by the fitted batch cost) is longer gets RESOURCE_EXHAUSTED \
         at once, so overload is refused fast instead of timing out. 0 = no budget.",
        D.max_queue_wait.as_millis(),
    ))]
    pub max_queue_wait_ms: Option<u64>,
    #[arg(long, env = "XLING_MAX_BATCH_TOKENS", help = defaulted(
        "Padded-token budget per batch (longest x count); 0 = no budget.",
        D.max_batch_tokens,
    ))]
    pub max_batch_tokens: Option<usize>,
    #[arg(long, env = "XLING_MAX_BACKGROUND_TOKENS", help = defaulted(
        "Padded-token budget of one batch of upserted passages (the live index's background \
         lane; one passage always fits): a query arriving while it runs waits for it.",
        D.max_background_tokens,
    ))]
    pub max_background_tokens: Option<usize>,
    #[arg(long, env = "XLING_ADAPTIVE_WAIT", num_args = 0..=1, default_missing_value = "true",
          help = defaulted(
        "Adaptive wait: while the encoder is busy a batch collects until it is free; on an idle \
         encoder it waits min(fixed batch cost / 2, max-wait-us), and only while most recent \
         idle starts saw the next query come within that window.",
        D.adaptive_wait,
    ))]
    pub adaptive_wait: Option<bool>,
    #[arg(long, env = "XLING_SPLIT_BY_LENGTH", num_args = 0..=1, default_missing_value = "true",
          help = defaulted(
        "Run a closed batch as length-sorted runs when the padding saved (fitted per-token \
         cost) pays for the extra runs; the run holding the oldest query goes first.",
        D.split_by_length,
    ))]
    pub split_by_length: Option<bool>,
    #[arg(long, env = "XLING_SPLIT_WINDOW", help = defaulted(
        "With the length split, plan each run from this many of the oldest queued queries (0: \
         the whole batch): fewer younger queries overtake an older one, which tightens the \
         latency tail under saturation and costs throughput (docs/batching-study.md).",
        D.split_window,
    ))]
    pub split_window: Option<usize>,
    /// Largest top_k a request may ask for. [default: 100]
    #[arg(long, env = "XLING_MAX_TOP_K")]
    pub max_top_k: Option<u32>,
    /// Most queries in one SearchBatch or texts in one Embed call. [default: 64]
    #[arg(long, env = "XLING_MAX_BATCH_QUERIES")]
    pub max_batch_queries: Option<usize>,
    /// Longest query or text in UTF-8 bytes. [default: 8192]
    #[arg(long, env = "XLING_MAX_TEXT_BYTES")]
    pub max_text_bytes: Option<usize>,
    /// Largest gRPC request message in bytes. [default: 4194304]
    #[arg(long, env = "XLING_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Most concurrent requests per client connection; beyond it a request gets
    /// RESOURCE_EXHAUSTED at once instead of waiting unseen by admission. [default: 256]
    #[arg(long, env = "XLING_MAX_CONCURRENCY_PER_CONNECTION")]
    pub max_concurrency_per_connection: Option<usize>,
    /// HNSW search breadth when a request gives none, raised to 8 per requested result.
    /// [default: 64]
    #[arg(long, env = "XLING_DEFAULT_EF")]
    pub default_ef: Option<u32>,
    /// Advanced (tests, benchmarks): candidate passages up to which the embedded index scans
    /// exactly instead of walking the graph at ef 64; 0 always walks. [default: 8192]
    #[arg(long, env = "XLING_EXACT_SUBSET_MAX", hide = true)]
    pub exact_subset_max: Option<usize>,
    /// Seconds to finish admitted requests after SIGTERM/SIGINT. [default: 30]
    #[arg(long, env = "XLING_DRAIN_TIMEOUT_S")]
    pub drain_timeout_s: Option<u64>,
    /// Log format: text or json. [default: text]
    #[arg(long, env = "XLING_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log query texts (off by default: queries can be personal data). [default: false]
    #[arg(long, env = "XLING_LOG_QUERIES", num_args = 0..=1, default_missing_value = "true")]
    pub log_queries: Option<bool>,
    /// File holding the bearer token that Retrieval RPCs must carry (`authorization: Bearer
    /// <token>`); health and reflection stay open. [default: no authentication]
    #[arg(long, env = "XLING_AUTH_TOKEN_FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// The bearer token itself; prefer the environment variable or the file, since a flag's
    /// value shows in the process list. Never logged.
    #[arg(long, env = "XLING_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<Secret>,
    /// PEM certificate chain: serve gRPC over TLS (needs --tls-key). [default: plaintext]
    #[arg(long, env = "XLING_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "XLING_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): clients must present a certificate it signed (mutual TLS).
    #[arg(long, env = "XLING_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Where the index lives: embedded (the --index folder, in this process) or qdrant (a
    /// collection built by `xling index build --to-qdrant`). [default: embedded]
    #[arg(long, env = "XLING_INDEX_BACKEND")]
    pub index_backend: Option<String>,
    /// Qdrant gRPC URL(s), comma-separated peers of one cluster (http://HOST:6334; https://
    /// for TLS, checked against the system roots or SSL_CERT_FILE).
    #[arg(long, env = "XLING_QDRANT_URL")]
    pub qdrant_url: Option<String>,
    /// Qdrant collection or alias to serve (serve an alias to reindex without downtime).
    #[arg(long, env = "XLING_QDRANT_COLLECTION")]
    pub qdrant_collection: Option<String>,
    /// Qdrant API key (its service.api_key); prefer the environment variable. Never logged.
    #[arg(long, env = "XLING_QDRANT_API_KEY", hide_env_values = true)]
    pub qdrant_api_key: Option<Secret>,
    /// Longest wait for one Qdrant call when the request's deadline is not shorter.
    /// [default: 5000]
    #[arg(long, env = "XLING_QDRANT_TIMEOUT_MS")]
    pub qdrant_timeout_ms: Option<u64>,
    /// Most passages in one Admin Upsert. [default: 256]
    #[arg(long, env = "XLING_MAX_UPSERT_PASSAGES")]
    pub max_upsert_passages: Option<usize>,
    /// Compact the live index (fold upserts and deletes into a new base) once its upserted
    /// rows plus deleted base passages reach this many; 0 = never by count. [default: 10000]
    #[arg(long, env = "XLING_COMPACT_AFTER")]
    pub compact_after: Option<usize>,
    /// ... or pass this share of the base's passages; 0 = never by share. [default: 0.1]
    #[arg(long, env = "XLING_COMPACT_SHARE")]
    pub compact_share: Option<f64>,
    /// Bearer token for the Admin RPCs (Upsert, Delete, SwapIndex) instead of auth_token.
    /// Never logged. [default: the auth_token]
    #[arg(long, env = "XLING_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
}

macro_rules! merge_fields {
    ($high:ident, $low:ident, $($field:ident),+ $(,)?) => {
        Settings { $($field: $high.$field.or($low.$field)),+ }
    };
}

impl Settings {
    /// Reads a TOML file of settings; unknown keys are errors that name the key.
    pub fn from_file(path: &Path) -> Result<Settings, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))
    }

    /// `self` wins where both give a value.
    pub fn over(self, low: Settings) -> Settings {
        let high = self;
        merge_fields!(
            high,
            low,
            grpc_addr,
            metrics_addr,
            model,
            index,
            device,
            intra_threads,
            encoder_instances,
            encoder,
            max_batch_size,
            max_wait_us,
            queue_capacity,
            max_queue_wait_ms,
            max_batch_tokens,
            max_background_tokens,
            adaptive_wait,
            split_by_length,
            split_window,
            max_top_k,
            max_batch_queries,
            max_text_bytes,
            max_message_bytes,
            max_concurrency_per_connection,
            default_ef,
            exact_subset_max,
            drain_timeout_s,
            log_format,
            log_queries,
            auth_token_file,
            auth_token,
            tls_cert,
            tls_key,
            tls_client_ca,
            index_backend,
            qdrant_url,
            qdrant_collection,
            qdrant_api_key,
            qdrant_timeout_ms,
            max_upsert_passages,
            compact_after,
            compact_share,
            admin_token,
        )
    }

    /// Fills defaults and validates; the error names the bad setting.
    pub fn resolve(self) -> Result<Config, String> {
        let home = xling_encoder::xling_home();
        let device = match self.device.as_deref() {
            None => Device::Cpu,
            Some(s) => s.parse().map_err(|e| format!("device: {e}"))?,
        };
        let metrics_addr = match self.metrics_addr.as_deref() {
            None => Some(SocketAddr::from(([0, 0, 0, 0], 9464))),
            Some("off") => None,
            Some(s) => Some(
                s.parse()
                    .map_err(|e| format!("metrics_addr = {s:?}: {e}"))?,
            ),
        };
        let encoder = match self.encoder.as_deref() {
            None => EncoderKind::Onnx,
            Some(s) => s.parse().map_err(|e| format!("encoder: {e}"))?,
        };
        let max_batch_size = self.max_batch_size.unwrap_or(D.max_batch_size);
        let encoder_instances = match self.encoder_instances.unwrap_or(0) {
            0 => default_instances(device),
            n @ 1..=MAX_INSTANCES => n,
            n => {
                return Err(format!(
                    "encoder_instances = {n} is outside 0..={MAX_INSTANCES}"
                ))
            }
        };
        let log_format = match self.log_format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(format!("log_format = {other:?}; expected text or json")),
        };
        let auth_token = auth_token(self.auth_token, self.auth_token_file.as_deref())?;
        let tls = TlsFiles::from_settings(self.tls_cert, self.tls_key, self.tls_client_ca)?;
        let index_backend = index_backend(
            self.index_backend.as_deref(),
            self.qdrant_url,
            self.qdrant_collection,
            self.qdrant_api_key,
            self.qdrant_timeout_ms,
        )?;
        let config = Config {
            grpc_addr: self
                .grpc_addr
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 50051))),
            metrics_addr,
            model: self
                .model
                .unwrap_or_else(|| home.join("models/multilingual-e5-small")),
            index: self.index.unwrap_or_else(|| home.join("indexes/demo")),
            device,
            intra_threads: self.intra_threads.unwrap_or(0),
            encoder_instances,
            encoder,
            batching: BatchConfig {
                max_batch_size,
                max_wait: self.max_wait_us.map_or(D.max_wait, Duration::from_micros),
                queue_capacity: self.queue_capacity.unwrap_or_else(|| {
                    BatchConfig::queue_capacity_for(max_batch_size, encoder_instances)
                }),
                max_queue_wait: self
                    .max_queue_wait_ms
                    .map_or(D.max_queue_wait, Duration::from_millis),
                max_batch_tokens: self.max_batch_tokens.unwrap_or(D.max_batch_tokens),
                max_background_tokens: self
                    .max_background_tokens
                    .unwrap_or(D.max_background_tokens),
                adaptive_wait: self.adaptive_wait.unwrap_or(D.adaptive_wait),
                split_by_length: self.split_by_length.unwrap_or(D.split_by_length),
                split_window: self.split_window.unwrap_or(D.split_window),
            },
            limits: Limits {
                max_top_k: self.max_top_k.unwrap_or(100),
                max_batch_queries: self.max_batch_queries.unwrap_or(64),
                max_text_bytes: self.max_text_bytes.unwrap_or(8192),
                max_message_bytes: self.max_message_bytes.unwrap_or(4 << 20),
                max_concurrency_per_connection: self.max_concurrency_per_connection.unwrap_or(256),
                default_ef: self.default_ef.unwrap_or(64),
            },
            drain_timeout: Duration::from_secs(self.drain_timeout_s.unwrap_or(30)),
            log_format,
            log_queries: self.log_queries.unwrap_or(false),
            auth_token,
            tls,
            index_backend,
            exact_subset_max: self.exact_subset_max,
            live: LiveConfig {
                max_upsert_passages: self.max_upsert_passages.unwrap_or(256),
                compaction: CompactionPolicy {
                    max_changes: self.compact_after.unwrap_or(10_000),
                    max_share: self.compact_share.unwrap_or(0.1),
                    ..CompactionPolicy::default()
                },
                admin_token: match self.admin_token {
                    Some(token) => {
                        check_token(token.expose())
                            .map_err(|reason| format!("admin_token {reason}"))?;
                        Some(token)
                    }
                    None => None,
                },
            },
        };
        config.validate()?;
        Ok(config)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Request limits; requests beyond them get INVALID_ARGUMENT or RESOURCE_EXHAUSTED.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_top_k: u32,
    pub max_batch_queries: usize,
    pub max_text_bytes: usize,
    pub max_message_bytes: usize,
    pub max_concurrency_per_connection: usize,
    pub default_ef: u32,
}

/// The live index's settings: Admin request limits, compaction, the admin token.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub max_upsert_passages: usize,
    pub compaction: CompactionPolicy,
    /// Admin RPCs need this token when set, else the auth_token.
    pub admin_token: Option<Secret>,
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub model: PathBuf,
    pub index: PathBuf,
    pub device: Device,
    pub intra_threads: usize,
    /// Resolved: at least 1.
    pub encoder_instances: usize,
    pub encoder: EncoderKind,
    pub batching: BatchConfig,
    pub limits: Limits,
    pub drain_timeout: Duration,
    pub log_format: LogFormat,
    pub log_queries: bool,
    /// Bearer token the Retrieval RPCs require; `None` = no authentication.
    pub auth_token: Option<Secret>,
    /// TLS on the gRPC port; `None` = plaintext.
    pub tls: Option<TlsFiles>,
    pub index_backend: IndexBackend,
    /// The embedded index's exact-scan cutoff (`Index::set_exact_subset_max`); `None` keeps
    /// its default.
    pub exact_subset_max: Option<usize>,
    pub live: LiveConfig,
}

/// Where the index lives.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexBackend {
    /// The `index` folder, loaded into this process.
    Embedded,
    /// A Qdrant collection (crate `xling-qdrant`, linked by the `xling` binary).
    Qdrant(QdrantTarget),
}

#[derive(Debug, Clone, PartialEq)]
pub struct QdrantTarget {
    pub urls: Vec<String>,
    pub collection: String,
    pub api_key: Option<Secret>,
    pub timeout: Duration,
}

fn index_backend(
    kind: Option<&str>,
    url: Option<String>,
    collection: Option<String>,
    api_key: Option<Secret>,
    timeout_ms: Option<u64>,
) -> Result<IndexBackend, String> {
    match kind.unwrap_or("embedded") {
        "embedded" => {
            if url.is_some() || collection.is_some() {
                return Err(
                    "qdrant_url / qdrant_collection need index_backend = \"qdrant\"".into(),
                );
            }
            Ok(IndexBackend::Embedded)
        }
        "qdrant" => {
            let urls: Vec<String> = url
                .ok_or("index_backend qdrant needs qdrant_url (http://HOST:6334)")?
                .split(',')
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .collect();
            if let Some(bad) = urls
                .iter()
                .find(|u| !u.starts_with("http://") && !u.starts_with("https://"))
            {
                return Err(format!(
                    "qdrant_url {bad:?}: expected http://HOST:PORT or https://HOST:PORT (the gRPC port, 6334 by default)"
                ));
            }
            if urls.is_empty() {
                return Err("qdrant_url is empty".into());
            }
            let collection = collection
                .filter(|c| !c.is_empty())
                .ok_or("index_backend qdrant needs qdrant_collection (a collection or alias)")?;
            let timeout_ms = timeout_ms.unwrap_or(5000);
            if timeout_ms == 0 {
                return Err("qdrant_timeout_ms must be at least 1".into());
            }
            Ok(IndexBackend::Qdrant(QdrantTarget {
                urls,
                collection,
                api_key,
                timeout: Duration::from_millis(timeout_ms),
            }))
        }
        other => Err(format!(
            "index_backend = {other:?}; expected embedded or qdrant"
        )),
    }
}

/// The token from the setting or the file (one of them at most); a trailing newline in the
/// file is not part of the token.
fn auth_token(given: Option<Secret>, file: Option<&Path>) -> Result<Option<Secret>, String> {
    let token = match (given, file) {
        (Some(_), Some(_)) => {
            return Err("give auth_token or auth_token_file, not both".into());
        }
        (Some(token), None) => token,
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| format!("auth_token_file {}: {e}", path.display()))?
            .trim_end_matches(['\r', '\n'])
            .parse()
            .unwrap_or_else(|never| match never {}),
        (None, None) => return Ok(None),
    };
    check_token(token.expose()).map_err(|reason| match file {
        Some(path) => format!("auth_token_file {}: the token {reason}", path.display()),
        None => format!("auth_token {reason}"),
    })?;
    Ok(Some(token))
}

/// Most encoder instances: each holds a session (its weights and arena) of its own.
const MAX_INSTANCES: usize = 16;

/// Encoder instances when none are asked for. CPU: 1, since one session already uses every
/// core. CUDA: 3, the fewest that kept the simulated device at least 0.9 busy in both runs
/// (docs/batching-study.md, "Encoder pipeline"): one instance's host work overlaps the others'
/// runs on the GPU. To be confirmed on a GPU (issue 17).
fn default_instances(device: Device) -> usize {
    match device {
        Device::Cpu => 1,
        Device::Cuda(_) => 3,
    }
}

/// Largest HNSW search breadth a request may ask for.
pub const MAX_EF: u32 = 4096;

impl Config {
    fn validate(&self) -> Result<(), String> {
        self.batching.validate()?;
        let l = &self.limits;
        let checks = [
            (
                l.max_top_k >= 1 && l.max_top_k <= 10_000,
                "max_top_k must be in 1..=10000",
            ),
            (
                l.max_batch_queries >= 1,
                "max_batch_queries must be at least 1",
            ),
            (l.max_text_bytes >= 1, "max_text_bytes must be at least 1"),
            (
                l.max_message_bytes >= 1024,
                "max_message_bytes must be at least 1024",
            ),
            (
                l.max_concurrency_per_connection >= 1,
                "max_concurrency_per_connection must be at least 1",
            ),
            (
                l.default_ef >= 1 && l.default_ef <= MAX_EF,
                "default_ef must be in 1..=4096",
            ),
            (
                self.live.max_upsert_passages >= 1,
                "max_upsert_passages must be at least 1",
            ),
            (
                (0.0..=100.0).contains(&self.live.compaction.max_share),
                "compact_share must be in 0..=100",
            ),
            (
                self.drain_timeout >= Duration::from_secs(1),
                "drain_timeout_s must be at least 1",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err(message.to_string()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve() {
        let c = Settings::default().resolve().unwrap();
        assert_eq!(c.grpc_addr.port(), 50051);
        assert_eq!(c.metrics_addr.map(|a| a.port()), Some(9464));
        assert_eq!(c.batching, BatchConfig::DEFAULT);
        assert!(c.model.ends_with("models/multilingual-e5-small"));
        assert_eq!((c.encoder_instances, &c.encoder), (1, &EncoderKind::Onnx));
        assert_eq!(c.index_backend, IndexBackend::Embedded);
    }

    #[test]
    fn the_queue_holds_two_full_batches_per_instance_and_at_least_64_unless_set() {
        let resolve = |text: &str| {
            toml::from_str::<Settings>(text)
                .unwrap()
                .resolve()
                .unwrap()
                .batching
                .queue_capacity
        };
        assert_eq!(resolve(""), 64);
        assert_eq!(resolve("max_batch_size = 16\nencoder_instances = 3"), 96);
        assert_eq!(resolve("max_batch_size = 4"), 64, "at least 64");
        assert_eq!(resolve("max_batch_size = 8\nqueue_capacity = 500"), 500);
    }

    #[test]
    fn encoder_instances_default_per_device_and_are_bounded() {
        let resolve = |device: &str, n: Option<usize>| {
            Settings {
                device: Some(device.into()),
                encoder_instances: n,
                ..Default::default()
            }
            .resolve()
        };
        assert_eq!(resolve("cuda", None).unwrap().encoder_instances, 3);
        assert_eq!(resolve("cpu", Some(3)).unwrap().encoder_instances, 3);
        assert!(resolve("cpu", Some(99))
            .unwrap_err()
            .contains("encoder_instances"));
        let file: Settings = toml::from_str("encoder_instances = 2\nencoder = \"null\"").unwrap();
        let c = file.resolve().unwrap();
        assert_eq!((c.encoder_instances, c.encoder), (2, EncoderKind::Null));
    }

    #[test]
    fn qdrant_backend_from_the_file() {
        let file: Settings = toml::from_str(
            "index_backend = \"qdrant\"\nqdrant_url = \"http://a:6334, http://b:6334\"\nqdrant_collection = \"docs\"\n",
        )
        .unwrap();
        let c = file.resolve().unwrap();
        let IndexBackend::Qdrant(target) = c.index_backend else {
            panic!("not qdrant");
        };
        assert_eq!(target.urls, ["http://a:6334", "http://b:6334"]);
        assert_eq!(target.collection, "docs");
        assert_eq!(target.timeout, Duration::from_secs(5));
    }

    #[test]
    fn higher_layer_wins_field_by_field() {
        let file: Settings = toml::from_str("max_batch_size = 8\nmax_wait_us = 500\n").unwrap();
        let cli = Settings {
            max_batch_size: Some(16),
            ..Settings::default()
        };
        let c = cli.over(file).resolve().unwrap();
        assert_eq!(c.batching.max_batch_size, 16);
        assert_eq!(c.batching.max_wait, Duration::from_micros(500));
    }

    #[test]
    fn errors_name_the_setting() {
        let err = |s: Settings| s.resolve().unwrap_err();
        assert!(err(Settings {
            max_batch_size: Some(0),
            ..Default::default()
        })
        .contains("max_batch_size"));
        assert!(err(Settings {
            device: Some("tpu".into()),
            ..Default::default()
        })
        .contains("device"));
        assert!(err(Settings {
            log_format: Some("xml".into()),
            ..Default::default()
        })
        .contains("log_format"));
        assert!(err(Settings {
            default_ef: Some(0),
            ..Default::default()
        })
        .contains("default_ef"));
        assert!(err(Settings {
            index_backend: Some("qdrant".into()),
            ..Default::default()
        })
        .contains("qdrant_url"));
        assert!(err(Settings {
            index_backend: Some("qdrant".into()),
            qdrant_url: Some("localhost:6334".into()),
            qdrant_collection: Some("docs".into()),
            ..Default::default()
        })
        .contains("http://"));
        let unknown = toml::from_str::<Settings>("max_batch_sise = 3")
            .unwrap_err()
            .to_string();
        assert!(unknown.contains("max_batch_sise"), "{unknown}");
    }
}
