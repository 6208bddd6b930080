//! `xling bench pipeline`: runs `xling serve` (this binary) per encoder instance count, drives
//! it with the load generator, and prints the points and the issue-16 ratios:
//! - `sim:` encoder: the simulated device's busy share at saturation, and the fewest instances
//!   that keep it at or above `--goal-busy`;
//! - `null` encoder: the host ceiling (requests/s, per server core) against the raw encoder's
//!   best throughput on this machine (`--raw`) and against the simulated device's peak;
//! - `onnx` with `--raw`: the service against the raw encoder at the service's own mean
//!   batch and padded length (the shapes it really ran).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde_json::json;
use xling_encoder::{Device, EncoderKind, SimSpec};
use xling_loadtest::encoder_bench::{BenchRow, EncoderBench};
use xling_loadtest::pipeline::{chosen_instances, PipelineBench, Point};

#[derive(clap::Args)]
pub struct PipelineArgs {
    /// Model folder (tokenizer and, for onnx, the graph).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Index folder built with that model.
    #[arg(long)]
    index: Option<PathBuf>,
    /// cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: Device,
    /// ONNX Runtime intra-op threads per instance (0: the server's default).
    #[arg(long, default_value_t = 0)]
    intra_threads: usize,
    /// onnx, null or sim:fixed_us=N,per_token_ns=N,host_us=N.
    #[arg(long, default_value = "onnx", conflicts_with_all = ["device_sim", "null_encoder"])]
    encoder: EncoderKind,
    /// Shorthand for --encoder sim:SPEC (e.g. fixed_us=1400,per_token_ns=330).
    #[arg(long, conflicts_with = "null_encoder")]
    device_sim: Option<SimSpec>,
    /// Shorthand for --encoder null: the host ceiling.
    #[arg(long)]
    null_encoder: bool,
    /// Instance counts to measure, one server each.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    instances: Vec<usize>,
    /// Closed-loop clients (also the open-loop workers).
    #[arg(long, default_value_t = 64)]
    concurrency: u32,
    #[arg(long, default_value_t = 4)]
    connections: u32,
    /// Seconds per point.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Seconds of untimed load before the first point of each server.
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Also measure open loop at half the saturated rate (p99 at 50% load).
    #[arg(long)]
    half_load: bool,
    /// More `xling serve` flags, space-separated (e.g. "--max-batch-size 64 --max-wait-us 0").
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    serve_args: String,
    /// A ghz data file of Search requests.
    #[arg(long, default_value = "load-tests/data/queries-multilingual.json")]
    data_file: PathBuf,
    /// Also run the raw encoder (ONNX Runtime, in this process, after the servers stopped).
    #[arg(long)]
    raw: bool,
    /// Timed runs per raw shape.
    #[arg(long, default_value_t = 10)]
    raw_iters: usize,
    /// Batch size of the simulated device's peak that the null encoder's ceiling is set
    /// against (the GPU's recommended max batch).
    #[arg(long, default_value_t = 128)]
    peak_batch: usize,
    /// Busy share of the device the chosen instance count must reach.
    #[arg(long, default_value_t = 0.9)]
    goal_busy: f64,
    /// Server logs (serve-N.log) go here.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Also write points and ratios as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn run(args: PipelineArgs) -> anyhow::Result<()> {
    let kind = match (&args.device_sim, args.null_encoder) {
        (Some(spec), _) => EncoderKind::Simulated(*spec),
        (None, true) => EncoderKind::Null,
        (None, false) => args.encoder.clone(),
    };
    let home = xling_encoder::xling_home();
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| home.join("models/multilingual-e5-small"));
    let bench = PipelineBench {
        binary: std::env::current_exe().context("cannot find this binary")?,
        model: model.clone(),
        index: args
            .index
            .clone()
            .unwrap_or_else(|| home.join("indexes/demo")),
        device: args.device.to_string(),
        intra_threads: args.intra_threads,
        encoder: kind.to_string(),
        instances: args.instances.clone(),
        serve_args: args
            .serve_args
            .split_whitespace()
            .map(String::from)
            .collect(),
        data_file: args.data_file.clone(),
        concurrency: args.concurrency,
        connections: args.connections,
        duration: Duration::from_secs_f64(args.duration_s),
        warmup: Duration::from_secs_f64(args.warmup_s),
        half_load: args.half_load,
        log_dir: args.log_dir.clone(),
    };
    eprintln!(
        "pipeline benchmark: encoder {kind}, {} on {}, instances {:?}, concurrency {}, {} s a point",
        model.display(),
        args.device,
        args.instances,
        args.concurrency,
        args.duration_s
    );
    println!("{}", header());
    let runtime = tokio::runtime::Runtime::new().context("cannot start the tokio runtime")?;
    let points = runtime.block_on(bench.run(|p| println!("{}", row(p))))?;
    let raw = if args.raw {
        raw_rows(&args, &model, &points)?
    } else {
        vec![]
    };
    let ratios = ratios(&args, &kind, &points, &raw);
    for (key, value) in ratios.as_object().into_iter().flatten() {
        println!("{key}: {value}");
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&json!({
            "encoder": kind.to_string(),
            "device": args.device.to_string(),
            "model": model.display().to_string(),
            "concurrency": args.concurrency,
            "duration_s": args.duration_s,
            "serve_args": args.serve_args,
            "points": points,
            "raw": raw,
            "ratios": ratios,
        }))?;
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn header() -> String {
    format!(
        "{:>4} {:>9} {:>9} {:>8} {:>8} {:>8} {:>6} {:>6} {:>9} {:>6} {:>6}  {:<18} {:>6}",
        "inst",
        "load",
        "ok_rps",
        "p50_ms",
        "p99_ms",
        "mean_ms",
        "errors",
        "cores",
        "rps/core",
        "batch",
        "padlen",
        "instance_busy",
        "device"
    )
}

fn row(p: &Point) -> String {
    let busy: Vec<String> = p.instance_busy.iter().map(|b| format!("{b:.2}")).collect();
    format!(
        "{:>4} {:>9} {:>9.1} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>6.2} {:>9.1} {:>6.1} {:>6.1}  {:<18} {:>6}",
        p.instances,
        p.load,
        p.ok_rps,
        p.p50_ms,
        p.p99_ms,
        p.mean_ms,
        p.errors,
        p.server_cores,
        p.rps_per_core,
        p.mean_batch,
        p.padded_len,
        busy.join(","),
        p.device_busy.map_or("-".into(), |b| format!("{b:.3}")),
    )
}

/// The raw encoder at the shapes the ratios need: for onnx each saturated point's mean batch
/// and padded length; for null the best of several batch sizes at the measured length.
fn raw_rows(
    args: &PipelineArgs,
    model: &std::path::Path,
    points: &[Point],
) -> anyhow::Result<Vec<BenchRow>> {
    let saturated: Vec<&Point> = points.iter().filter(|p| p.load == "saturated").collect();
    let seq = saturated
        .iter()
        .map(|p| p.padded_len.round() as usize)
        .max()
        .unwrap_or(24)
        .max(2);
    let batches: Vec<usize> = if args.null_encoder || args.device_sim.is_some() {
        vec![1, 8, 32, 64, 128]
    } else {
        let mut b: Vec<usize> = saturated
            .iter()
            .map(|p| (p.mean_batch.round() as usize).max(1))
            .collect();
        b.sort();
        b.dedup();
        b
    };
    let bench = EncoderBench {
        model: model.to_path_buf(),
        device: args.device,
        intra_threads: args.intra_threads,
        batch_sizes: batches,
        seq_lens: vec![seq],
        iters: args.raw_iters,
        warmup: 2,
        queries: vec![],
        query_batches: vec![],
    };
    eprintln!("raw encoder at seq {seq}, batches {:?}", bench.batch_sizes);
    let result = bench.run(|r| {
        eprintln!(
            "raw: batch {} seq {}: {:.1} seq/s (p50 {:.2} ms)",
            r.batch, r.seq, r.sequences_per_s, r.p50_ms
        )
    })?;
    Ok(result.rows)
}

fn ratios(
    args: &PipelineArgs,
    kind: &EncoderKind,
    points: &[Point],
    raw: &[BenchRow],
) -> serde_json::Value {
    let saturated: Vec<&Point> = points.iter().filter(|p| p.load == "saturated").collect();
    let best_raw = raw.iter().map(|r| r.sequences_per_s).fold(0.0, f64::max);
    let mut out = serde_json::Map::new();
    match kind {
        EncoderKind::Simulated(spec) => {
            if let Some((n, busy)) = chosen_instances(points, args.goal_busy) {
                out.insert("sim_device".into(), json!(spec.to_string()));
                out.insert("chosen_instances".into(), json!(n));
                out.insert("device_busy_at_chosen".into(), json!(round3(busy)));
                out.insert(
                    format!("goal_device_busy_ge_{}", args.goal_busy),
                    json!(if busy >= args.goal_busy {
                        "met"
                    } else {
                        "not met"
                    }),
                );
            }
        }
        EncoderKind::Null => {
            let best = saturated
                .iter()
                .max_by(|a, b| a.ok_rps.total_cmp(&b.ok_rps));
            if let Some(best) = best {
                out.insert("host_ceiling_rps".into(), json!(round1(best.ok_rps)));
                out.insert(
                    "host_ceiling_rps_per_core".into(),
                    json!(round1(best.rps_per_core)),
                );
                out.insert("server_cores".into(), json!(round3(best.server_cores)));
                if best_raw > 0.0 {
                    let ratio = best.ok_rps / best_raw;
                    out.insert("raw_encoder_best_seq_per_s".into(), json!(round1(best_raw)));
                    out.insert("host_ceiling_over_raw_encoder".into(), json!(round3(ratio)));
                    out.insert(
                        "goal_host_ceiling_ge_3x_encoder".into(),
                        json!(if ratio >= 3.0 { "met" } else { "not met" }),
                    );
                }
                // Against the simulated GPU: how many host cores 3x its peak would need.
                let spec = args.device_sim.unwrap_or_default();
                let padded = best.padded_len.max(1.0);
                let peak = args.peak_batch as f64
                    / spec
                        .cost((args.peak_batch as f64 * padded) as usize)
                        .as_secs_f64();
                out.insert("sim_device_for_peak".into(), json!(spec.to_string()));
                out.insert("sim_device_peak_seq_per_s".into(), json!(round1(peak)));
                if best.rps_per_core > 0.0 {
                    out.insert(
                        "host_cores_for_3x_sim_peak".into(),
                        json!(round1(3.0 * peak / best.rps_per_core)),
                    );
                }
            }
        }
        EncoderKind::Onnx => {
            for p in &saturated {
                let batch = (p.mean_batch.round() as usize).max(1);
                if let Some(r) = raw.iter().find(|r| r.batch == batch) {
                    out.insert(
                        format!("service_over_raw_instances_{}", p.instances),
                        json!(round3(p.ok_rps / r.sequences_per_s)),
                    );
                }
            }
            if let Some((n, busy)) = chosen_instances(points, args.goal_busy) {
                out.insert(
                    "busiest_instance_share_at".into(),
                    json!({"instances": n, "busy": round3(busy)}),
                );
            }
        }
    }
    serde_json::Value::Object(out)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
