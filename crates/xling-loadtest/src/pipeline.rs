//! `xling bench pipeline`: the real service (`xling serve`: tonic, tokenization, the batcher,
//! the encoder instances, the index search) driven by this crate's load generator, once per
//! instance count. The encoder is the model in ONNX Runtime, or for the pipeline alone a
//! simulated device or none (`--encoder sim:...` / `null`, see `xling_encoder::sim`).
//!
//! Per instance count: closed-loop saturation (throughput, p50/p99), then optionally open loop
//! at half that rate (p99 at 50% load). Around each point the server's `/metrics` and its CPU
//! time (`/proc/PID/stat`) are read, giving server cores, requests/s per core, mean batch,
//! padded length per row, each instance's busy share and, with the simulated device, the
//! device's busy share (device time over wall time).

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use xling_proto::v1::retrieval_client::RetrievalClient;
use xling_proto::v1::InfoRequest;

use crate::runner::{self, CancellationToken};
use crate::scrape::Scrape;
use crate::{report, GhzConfig, LoadtestError, Report, RunSpec};

/// How long a server may take to load its model (and warm up on a GPU).
const STARTUP_LIMIT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct PipelineBench {
    /// The `xling` binary to serve with.
    pub binary: PathBuf,
    pub model: PathBuf,
    pub index: PathBuf,
    pub device: String,
    pub intra_threads: usize,
    /// `onnx`, `null` or `sim:...`.
    pub encoder: String,
    pub instances: Vec<usize>,
    /// More `xling serve` flags (batching settings).
    pub serve_args: Vec<String>,
    /// A ghz data file of Search requests.
    pub data_file: PathBuf,
    pub concurrency: u32,
    pub connections: u32,
    pub duration: Duration,
    pub warmup: Duration,
    /// Also run open loop at half the saturated rate.
    pub half_load: bool,
    /// Server logs go here (`serve-<instances>.log`), else nowhere.
    pub log_dir: Option<PathBuf>,
}

/// One measured point.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    pub instances: usize,
    /// `saturated` (closed loop) or `half` (open loop at half the saturated rate).
    pub load: &'static str,
    pub concurrency: u32,
    pub target_rps: Option<u32>,
    pub ok_rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_ms: f64,
    pub errors: u64,
    /// Server CPU time over wall time.
    pub server_cores: f64,
    pub rps_per_core: f64,
    pub mean_batch: f64,
    /// Padded tokens per row of the batches run: the shape the raw encoder is compared at.
    pub padded_len: f64,
    /// Each instance's time running batches over wall time.
    pub instance_busy: Vec<f64>,
    /// The simulated device's busy time over wall time (`sim` only).
    pub device_busy: Option<f64>,
}

impl PipelineBench {
    /// Measures every instance count; `on_point` sees each point as it lands.
    pub async fn run(&self, mut on_point: impl FnMut(&Point)) -> Result<Vec<Point>, LoadtestError> {
        if self.instances.is_empty() || self.instances.contains(&0) || self.concurrency == 0 {
            return Err(bench_error("instances must be >= 1 and concurrency >= 1"));
        }
        let mut points = vec![];
        for &instances in &self.instances {
            let mut server = Server::start(self, instances)?;
            let result = match server.wait_ready().await {
                Ok(()) => self.measure(&server, instances, &mut on_point).await,
                Err(e) => Err(e),
            };
            drop(server);
            points.extend(result?);
        }
        Ok(points)
    }

    async fn measure(
        &self,
        server: &Server,
        instances: usize,
        on_point: &mut impl FnMut(&Point),
    ) -> Result<Vec<Point>, LoadtestError> {
        self.load(server, None, self.warmup).await?;
        let saturated = self.point(server, instances, None).await?;
        on_point(&saturated);
        let mut points = vec![saturated];
        if self.half_load {
            let rate = ((points[0].ok_rps / 2.0).round() as u32).max(1);
            let half = self.point(server, instances, Some(rate)).await?;
            on_point(&half);
            points.push(half);
        }
        Ok(points)
    }

    async fn point(
        &self,
        server: &Server,
        instances: usize,
        rate: Option<u32>,
    ) -> Result<Point, LoadtestError> {
        let before = Scrape::fetch(server.metrics).await?;
        let (cpu0, t0) = (server.cpu_snapshot()?, Instant::now());
        let summary = self.load(server, rate, self.duration).await?;
        let (cpu1, wall) = (server.cpu_snapshot()?, t0.elapsed().as_secs_f64());
        let after = Scrape::fetch(server.metrics).await?;
        let delta = |name: &str| after.sum(name) - before.sum(name);
        let number = |key: &str| summary[key].as_f64().unwrap_or(0.0);
        let server_cores = cpu_seconds(&cpu0, &cpu1) / wall;
        let ok_rps = number("ok_rps");
        let batches = delta("xling_batch_size_count");
        let rows = delta("xling_batch_size_sum");
        let per = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let instance_busy = (0..instances)
            .map(|i| {
                delta(&format!(
                    "xling_encoder_busy_seconds{{encoder_instance=\"{i}\"}}"
                )) / wall
            })
            .collect();
        Ok(Point {
            instances,
            load: if rate.is_some() { "half" } else { "saturated" },
            concurrency: self.concurrency,
            target_rps: rate,
            ok_rps,
            p50_ms: number("p50_ms"),
            p99_ms: number("p99_ms"),
            mean_ms: number("mean_ms"),
            errors: summary["errors"].as_u64().unwrap_or(0),
            server_cores,
            rps_per_core: per(ok_rps, server_cores),
            mean_batch: per(rows, batches),
            padded_len: per(delta("xling_batch_tokens_sum"), rows),
            instance_busy,
            device_busy: self
                .encoder
                .starts_with("sim")
                .then(|| delta("xling_sim_device_busy_seconds") / wall),
        })
    }

    /// One load run: closed loop, or open loop at `rate` requests/s; xling's flat summary.
    async fn load(
        &self,
        server: &Server,
        rate: Option<u32>,
        duration: Duration,
    ) -> Result<serde_json::Value, LoadtestError> {
        let config = GhzConfig {
            call: Some("xling.v1.Retrieval.Search".into()),
            host: Some(server.grpc.to_string()),
            insecure: Some(true),
            data_file: Some(self.data_file.display().to_string()),
            // Open loop needs workers for the requests in flight: as many as the closed loop.
            concurrency: Some(self.concurrency),
            connections: Some(self.connections),
            duration: Some(duration),
            rps: rate,
            timeout: Some(Duration::from_secs(20)),
            ..GhzConfig::default()
        };
        let spec = RunSpec::resolve(config)?;
        let outcome = runner::run(&spec, CancellationToken::new()).await?;
        let built = Report::build(&spec, &outcome);
        Ok(report::summary_json(&spec, &outcome, &built))
    }
}

fn bench_error(reason: impl Into<String>) -> LoadtestError {
    LoadtestError::Bench {
        reason: reason.into(),
    }
}

/// A free local port (bound and released; the server binds it right after).
fn free_port() -> Result<SocketAddr, LoadtestError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| bench_error(format!("no free port: {e}")))
}

/// An `xling serve` child process, killed when dropped.
struct Server {
    child: Child,
    grpc: SocketAddr,
    metrics: SocketAddr,
    log: Option<PathBuf>,
}

impl Server {
    fn start(bench: &PipelineBench, instances: usize) -> Result<Server, LoadtestError> {
        let (grpc, metrics) = (free_port()?, free_port()?);
        let log = bench
            .log_dir
            .as_ref()
            .map(|dir| dir.join(format!("serve-{instances}.log")));
        let stderr =
            match &log {
                Some(path) => Stdio::from(std::fs::File::create(path).map_err(|source| {
                    LoadtestError::Write {
                        path: path.clone(),
                        source,
                    }
                })?),
                None => Stdio::null(),
            };
        let child = Command::new(&bench.binary)
            .arg("serve")
            .args(["--grpc-addr", &grpc.to_string()])
            .args(["--metrics-addr", &metrics.to_string()])
            .arg("--model")
            .arg(&bench.model)
            .arg("--index")
            .arg(&bench.index)
            .args(["--device", &bench.device])
            .args(["--intra-threads", &bench.intra_threads.to_string()])
            .args(["--encoder", &bench.encoder])
            .args(["--encoder-instances", &instances.to_string()])
            .args(&bench.serve_args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| bench_error(format!("cannot start {}: {e}", bench.binary.display())))?;
        Ok(Server {
            child,
            grpc,
            metrics,
            log,
        })
    }

    /// Waits until Info answers (the model is loaded and warmed up).
    async fn wait_ready(&mut self) -> Result<(), LoadtestError> {
        let started = Instant::now();
        let url = format!("http://{}", self.grpc);
        while started.elapsed() < STARTUP_LIMIT {
            if let Ok(mut client) = RetrievalClient::connect(url.clone()).await {
                if client.info(InfoRequest {}).await.is_ok() {
                    return Ok(());
                }
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return Err(bench_error(format!(
                    "xling serve exited during startup{}",
                    self.log_hint()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(bench_error(format!(
            "xling serve did not answer within {STARTUP_LIMIT:?}{}",
            self.log_hint()
        )))
    }

    fn log_hint(&self) -> String {
        self.log
            .as_ref()
            .map(|p| format!(" (log: {})", p.display()))
            .unwrap_or_default()
    }

    /// Nanoseconds each of the server's threads has run on a CPU so far: the first field of
    /// `/proc/PID/task/TID/schedstat` (Linux), by thread id.
    fn cpu_snapshot(&self) -> Result<HashMap<String, u64>, LoadtestError> {
        let path = PathBuf::from(format!("/proc/{}/task", self.child.id()));
        let tasks =
            std::fs::read_dir(&path).map_err(|source| LoadtestError::Read { path, source })?;
        Ok(tasks
            .filter_map(|task| {
                let task = task.ok()?;
                let text = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
                let nanos = text.split_whitespace().next()?.parse::<u64>().ok()?;
                Some((task.file_name().to_string_lossy().into_owned(), nanos))
            })
            .collect())
    }
}

/// CPU seconds between two snapshots. Threads that started meanwhile count whole; a thread
/// that ended meanwhile drops out (the loader's blocking thread, say, whose earlier work would
/// otherwise turn into a negative delta).
fn cpu_seconds(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> f64 {
    let nanos: u64 = after
        .iter()
        .map(|(tid, &n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum();
    nanos as f64 * 1e-9
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The smallest instance count whose device (simulated, or the busiest instance otherwise)
/// was busy at least `goal` of the time at saturation; else the busiest. With its busy share.
pub fn chosen_instances(points: &[Point], goal: f64) -> Option<(usize, f64)> {
    let busy = |p: &Point| {
        p.device_busy
            .unwrap_or_else(|| p.instance_busy.iter().copied().fold(0.0, f64::max))
    };
    let saturated: Vec<(usize, f64)> = points
        .iter()
        .filter(|p| p.load == "saturated")
        .map(|p| (p.instances, busy(p)))
        .collect();
    saturated
        .iter()
        .filter(|&&(_, b)| b >= goal)
        .min_by_key(|&&(n, _)| n)
        .or_else(|| saturated.iter().max_by(|a, b| a.1.total_cmp(&b.1)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(instances: usize, busy: f64) -> Point {
        Point {
            instances,
            load: "saturated",
            concurrency: 64,
            target_rps: None,
            ok_rps: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            mean_ms: 0.0,
            errors: 0,
            server_cores: 0.0,
            rps_per_core: 0.0,
            mean_batch: 0.0,
            padded_len: 0.0,
            instance_busy: vec![],
            device_busy: Some(busy),
        }
    }

    #[test]
    fn the_fewest_instances_that_reach_the_goal_are_chosen() {
        let points = [point(1, 0.7), point(2, 0.93), point(3, 0.95)];
        assert_eq!(chosen_instances(&points, 0.9), Some((2, 0.93)));
        assert_eq!(chosen_instances(&points[..1], 0.9), Some((1, 0.7)));
        assert_eq!(chosen_instances(&[], 0.9), None);
    }

    #[test]
    fn cpu_time_counts_new_threads_and_drops_ended_ones() {
        let snapshot = |pairs: &[(&str, u64)]| {
            pairs
                .iter()
                .map(|&(t, n)| (t.to_string(), n))
                .collect::<HashMap<_, _>>()
        };
        let before = snapshot(&[
            ("1", 1_000_000_000),
            ("2", 500_000_000),
            ("3", 9_000_000_000),
        ]);
        let after = snapshot(&[("1", 1_500_000_000), ("2", 500_000_000), ("4", 250_000_000)]);
        assert!((cpu_seconds(&before, &after) - 0.75).abs() < 1e-9);
    }
}
