//! Every Prometheus metric xling exports: names, help, buckets and the helpers that record
//! them, in one place. Names carry the `xling_` prefix and their unit.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tonic::Code;
use xling_batcher::{BatchStats, DropReason, Observer};

pub const REQUESTS: &str = "xling_requests_total";
pub const REQUEST_DURATION: &str = "xling_request_duration_seconds";
pub const QUEUE_WAIT: &str = "xling_queue_wait_seconds";
pub const TOKENIZE_DURATION: &str = "xling_tokenize_duration_seconds";
pub const ENCODE_DURATION: &str = "xling_encode_duration_seconds";
pub const SEARCH_DURATION: &str = "xling_search_duration_seconds";
pub const BATCH_SIZE: &str = "xling_batch_size";
pub const BATCH_TOKENS: &str = "xling_batch_tokens";
pub const BATCHES_SPLIT: &str = "xling_batches_split_total";
pub const QUERY_TOKENS: &str = "xling_query_tokens";
pub const QUEUE_DEPTH: &str = "xling_queue_depth";
pub const QUEUE_CAPACITY: &str = "xling_queue_capacity";
pub const IN_FLIGHT: &str = "xling_in_flight_requests";
pub const REJECTED: &str = "xling_rejected_total";
pub const EXPIRED: &str = "xling_expired_total";
pub const CANCELLED: &str = "xling_cancelled_total";
pub const ENCODER_FAILURES: &str = "xling_encoder_failures_total";
pub const INDEX_PASSAGES: &str = "xling_index_passages";
pub const INDEX_BYTES: &str = "xling_index_bytes";
pub const BATCH_MAX_WAIT: &str = "xling_batch_max_wait_seconds";
pub const ADMISSION_WAIT_RATIO: &str = "xling_admission_wait_ratio";
pub const BUILD_INFO: &str = "xling_build_info";
pub const ENCODER_BUSY: &str = "xling_encoder_busy_seconds";
pub const DEVICE_BUSY: &str = "xling_sim_device_busy_seconds";
pub const INDEX_GENERATION: &str = "xling_index_generation";
pub const INDEX_PENDING_LOG: &str = "xling_index_pending_log_records";
pub const INDEX_DELTA: &str = "xling_index_delta_passages";
pub const INDEX_TOMBSTONES: &str = "xling_index_tombstones";
pub const INDEX_COMPACTIONS: &str = "xling_index_compactions_total";
pub const INDEX_COMPACTION_FAILURES: &str = "xling_index_compaction_failures_total";
pub const PASSAGES_WRITTEN: &str = "xling_passages_written_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static STARTED: OnceLock<SystemTime> = OnceLock::new();

/// Installs the process-wide recorder once (later calls reuse it) and returns its handle.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    // Serialized: two servers starting at once in one process (tests) would otherwise race
    // between installing the recorder and publishing its handle.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _installing = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    // 35 geometric buckets x1.5 from 50 us reach about 30 s.
    let seconds: Vec<f64> = (0..35).map(|i| 50e-6 * 1.5f64.powi(i)).collect();
    let powers = |n: u32| (0..=n).map(|i| f64::from(1u32 << i)).collect::<Vec<_>>();
    let mut builder = PrometheusBuilder::new();
    for name in [
        REQUEST_DURATION,
        QUEUE_WAIT,
        TOKENIZE_DURATION,
        ENCODE_DURATION,
        SEARCH_DURATION,
    ] {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), &seconds)?;
    }
    builder = builder
        .set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), &powers(12))?
        .set_buckets_for_metric(Matcher::Full(BATCH_TOKENS.into()), &powers(20))?
        .set_buckets_for_metric(Matcher::Full(QUERY_TOKENS.into()), &powers(13))?;
    let handle = match builder.install_recorder() {
        Ok(handle) => handle,
        Err(e) => anyhow::bail!("cannot install the metrics recorder: {e}"),
    };
    describe();
    zero_counters();
    STARTED.get_or_init(SystemTime::now);
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    describe_counter!(REQUESTS, "RPCs answered, by method and gRPC status code.");
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Server-side RPC duration, by method."
    );
    describe_histogram!(
        QUEUE_WAIT,
        Unit::Seconds,
        "Time a query waited before its batch started encoding."
    );
    describe_histogram!(
        TOKENIZE_DURATION,
        Unit::Seconds,
        "Tokenization time per query."
    );
    describe_histogram!(ENCODE_DURATION, Unit::Seconds, "Encoder time per batch.");
    describe_histogram!(
        SEARCH_DURATION,
        Unit::Seconds,
        "Index search time per query."
    );
    describe_histogram!(BATCH_SIZE, "Queries per encoded batch.");
    describe_counter!(
        BATCHES_SPLIT,
        "Closed batches planned as several length-sorted runs to save padding (the first runs, the rest are planned again)."
    );
    describe_histogram!(
        BATCH_TOKENS,
        "Padded tokens per encoded batch (longest x count)."
    );
    describe_histogram!(QUERY_TOKENS, "Tokens per query after truncation.");
    describe_gauge!(QUEUE_DEPTH, "Queries admitted and not yet encoding.");
    describe_gauge!(
        QUEUE_CAPACITY,
        "Most queries admitted and not yet encoding (--queue-capacity)."
    );
    describe_gauge!(IN_FLIGHT, "RPCs being served.");
    describe_counter!(REJECTED, "Queries refused at admission, by reason.");
    describe_counter!(
        EXPIRED,
        "Queries dropped because their deadline passed before encoding."
    );
    describe_counter!(
        CANCELLED,
        "Queries dropped because their caller went away before encoding."
    );
    describe_counter!(ENCODER_FAILURES, "Batches the encoder failed.");
    describe_gauge!(INDEX_PASSAGES, "Passages in the served index, by language.");
    describe_gauge!(
        INDEX_BYTES,
        Unit::Bytes,
        "Index bytes by kind: ram (held) or mapped (from its files, paged in on demand)."
    );
    describe_gauge!(
        BATCH_MAX_WAIT,
        Unit::Seconds,
        "Current longest wait of a batch for more queries."
    );
    describe_gauge!(
        ADMISSION_WAIT_RATIO,
        "Learned ratio of real to predicted time from admission to a query's encoded; admission scales its wait predictions by it."
    );
    describe_gauge!(BUILD_INFO, "Build and model information; the value is 1.");
    describe_gauge!(
        ENCODER_BUSY,
        Unit::Seconds,
        "Time each encoder instance spent running batches, since start; its rate is the instance's busy share."
    );
    describe_gauge!(
        DEVICE_BUSY,
        Unit::Seconds,
        "Benchmarks with --encoder sim: the simulated device's busy time since start."
    );
    describe_gauge!(
        INDEX_GENERATION,
        "Live index generation: bumped by every acknowledged write and swap."
    );
    describe_gauge!(
        INDEX_PENDING_LOG,
        "Write-ahead log records not yet folded into the base by a compaction."
    );
    describe_gauge!(
        INDEX_DELTA,
        "Upserted passages served from the exact-scanned delta."
    );
    describe_gauge!(
        INDEX_TOMBSTONES,
        "Base passages deleted or replaced, skipped by searches until a compaction."
    );
    describe_counter!(INDEX_COMPACTIONS, "Compactions swapped in since start.");
    describe_counter!(
        INDEX_COMPACTION_FAILURES,
        "Compactions that failed since start (the writes stay in the log; retried after a pause)."
    );
    describe_counter!(
        PASSAGES_WRITTEN,
        "Passages upserted or deleted through the Admin service, by op."
    );
    describe_counter!(
        "process_cpu_seconds_total",
        Unit::Seconds,
        "User and system CPU time of the process."
    );
    describe_gauge!(
        "process_resident_memory_bytes",
        Unit::Bytes,
        "Resident set size of the process."
    );
    describe_gauge!(
        "process_start_time_seconds",
        Unit::Seconds,
        "Start time of the process since the Unix epoch."
    );
}

/// Event counters exist from the start, so dashboards show 0 rather than "no data" and
/// `rate()` sees the first event.
fn zero_counters() {
    for reason in ["queue_full", "deadline_unreachable", "queue_wait_budget"] {
        counter!(REJECTED, "reason" => reason).absolute(0);
    }
    for op in ["upsert", "delete"] {
        counter!(PASSAGES_WRITTEN, "op" => op).absolute(0);
    }
    for name in [
        EXPIRED,
        CANCELLED,
        ENCODER_FAILURES,
        BATCHES_SPLIT,
        INDEX_COMPACTIONS,
        INDEX_COMPACTION_FAILURES,
    ] {
        counter!(name).absolute(0);
    }
}

/// The Prometheus text exposition, with process figures and `sample`'s gauges refreshed first.
pub fn render(handle: &PrometheusHandle, sample: &(dyn Fn() + Send + Sync)) -> String {
    record_process();
    sample();
    handle.render()
}

/// Sets the queue depth gauge. Besides the batcher's own updates, the server sets it at every
/// scrape from the queue itself: event updates from concurrent submits can land out of order,
/// and queries dropped unencoded (expired, cancelled) leave the queue without an event.
pub fn queue_depth(depth: usize) {
    gauge!(QUEUE_DEPTH).set(depth as f64);
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves; also runs the exporter's
/// periodic upkeep so histograms do not grow without bound. `sample` runs before each render.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    sample: Arc<dyn Fn() + Send + Sync>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = handle.clone();
    let upkeep_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (handle, sample) = (handle.clone(), sample.clone());
            async move { render(&handle, sample.as_ref()) }
        }),
    );
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    upkeep_task.abort();
    result
}

pub fn local_addr_text(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "off".into(), |a| a.to_string())
}

/// The queue capacity, so that alerts and dashboards read the depth against it.
pub fn queue_capacity(capacity: usize) {
    gauge!(QUEUE_CAPACITY).set(capacity as f64);
}

pub fn build_info(model_id: &str, device: &str) {
    let labels = [
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("model_id", model_id.to_string()),
        ("device", device.to_string()),
    ];
    gauge!(BUILD_INFO, &labels).set(1.0);
}

pub fn index_passages(languages: &std::collections::BTreeMap<String, usize>) {
    for (language, count) in languages {
        gauge!(INDEX_PASSAGES, "language" => language.clone()).set(*count as f64);
    }
}

/// The index's memory: `kind="ram"` held, `kind="mapped"` mapped from its files.
pub fn index_bytes(in_ram: u64, mapped: u64) {
    gauge!(INDEX_BYTES, "kind" => "ram").set(in_ram as f64);
    gauge!(INDEX_BYTES, "kind" => "mapped").set(mapped as f64);
}

/// The live index's state, sampled at each scrape.
pub fn live_index(stats: &xling_index::LiveStats) {
    gauge!(INDEX_GENERATION).set(stats.generation as f64);
    gauge!(INDEX_PENDING_LOG).set(stats.pending_log as f64);
    gauge!(INDEX_DELTA).set(stats.delta as f64);
    gauge!(INDEX_TOMBSTONES).set(stats.tombstones as f64);
    counter!(INDEX_COMPACTIONS).absolute(stats.compactions);
    counter!(INDEX_COMPACTION_FAILURES).absolute(stats.compaction_failures);
}

/// Passages an acknowledged Upsert (`op` "upsert") or Delete ("delete") changed.
pub fn passages_written(op: &'static str, passages: usize) {
    counter!(PASSAGES_WRITTEN, "op" => op).increment(passages as u64);
}

pub fn query_admitted(tokens: usize, tokenize: Duration) {
    histogram!(QUERY_TOKENS).record(tokens as f64);
    histogram!(TOKENIZE_DURATION).record(tokenize.as_secs_f64());
}

pub fn query_encoded(queue_wait: Duration) {
    histogram!(QUEUE_WAIT).record(queue_wait.as_secs_f64());
}

pub fn query_searched(search: Duration) {
    histogram!(SEARCH_DURATION).record(search.as_secs_f64());
}

/// One launch of the simulated device finished (called on its thread).
pub fn device_busy(cost: Duration) {
    gauge!(DEVICE_BUSY).increment(cost.as_secs_f64());
}

pub fn rejected(reason: &'static str) {
    counter!(REJECTED, "reason" => reason).increment(1);
}

/// Counts one RPC: in flight while alive; on drop it records its code and duration. A handler
/// future dropped before it finished (the client went away) counts as CANCELLED.
pub struct RequestGuard {
    method: &'static str,
    started: Instant,
    code: Code,
}

impl RequestGuard {
    pub fn start(method: &'static str) -> Self {
        gauge!(IN_FLIGHT).increment(1.0);
        RequestGuard {
            method,
            started: Instant::now(),
            code: Code::Cancelled,
        }
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn finish(&mut self, code: Code) {
        self.code = code;
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        gauge!(IN_FLIGHT).decrement(1.0);
        let code = code_name(self.code);
        counter!(REQUESTS, "method" => self.method, "code" => code).increment(1);
        histogram!(REQUEST_DURATION, "method" => self.method)
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// gRPC's canonical upper-snake names, as other gRPC exporters label codes.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Turns batcher events into metrics.
pub struct BatchMetrics;

impl Observer for BatchMetrics {
    fn batch_done(&self, stats: BatchStats) {
        histogram!(BATCH_SIZE).record(stats.size as f64);
        histogram!(BATCH_TOKENS).record(stats.padded_tokens as f64);
        histogram!(ENCODE_DURATION).record(stats.run_time.as_secs_f64());
        gauge!(ENCODER_BUSY, "encoder_instance" => stats.instance.to_string())
            .increment(stats.run_time.as_secs_f64());
        if stats.failed {
            counter!(ENCODER_FAILURES).increment(1);
        }
    }

    fn batch_split(&self, _runs: usize) {
        counter!(BATCHES_SPLIT).increment(1);
    }

    fn dropped(&self, reason: DropReason) {
        match reason {
            DropReason::Cancelled => counter!(CANCELLED).increment(1),
            DropReason::Expired => counter!(EXPIRED).increment(1),
        }
    }

    fn queue_depth(&self, depth: usize) {
        queue_depth(depth);
    }

    fn wait_chosen(&self, wait: Duration) {
        gauge!(BATCH_MAX_WAIT).set(wait.as_secs_f64());
    }

    fn wait_ratio(&self, ratio: f64) {
        gauge!(ADMISSION_WAIT_RATIO).set(ratio);
    }
}

/// CPU time, resident memory and start time from /proc (Linux), as Prometheus' client
/// libraries name them.
fn record_process() {
    // Linux reports CPU times in clock ticks of 1/100 s (USER_HZ) on every mainstream arch.
    const TICKS_PER_SECOND: f64 = 100.0;
    const PAGE_BYTES: f64 = 4096.0;
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
            f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
        });
        counter!("process_cpu_seconds_total").absolute((ticks / TICKS_PER_SECOND) as u64);
    }
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        if let Some(pages) = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<f64>().ok())
        {
            gauge!("process_resident_memory_bytes").set(pages * PAGE_BYTES);
        }
    }
    if let Some(started) = STARTED.get() {
        let since_epoch = started.duration_since(UNIX_EPOCH).unwrap_or_default();
        gauge!("process_start_time_seconds").set(since_epoch.as_secs_f64());
    }
}
