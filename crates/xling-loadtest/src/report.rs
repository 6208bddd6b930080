//! ghz's report: the JSON document (same keys, Go durations as integer nanoseconds), the text
//! summary, and xling's flat summary JSON for sweeps.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::json;

use crate::call::go_code_name;
use crate::runner::{CallRecord, RunOutcome};
use crate::spec::{Format, RunSpec};
use crate::timefmt::rfc3339;
use crate::LoadtestError;

/// ghz's latency percentiles.
const PERCENTILES: [u32; 7] = [10, 25, 50, 75, 90, 95, 99];
const HISTOGRAM_BUCKETS: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct LatencyPoint {
    pub percentage: u32,
    /// Nanoseconds.
    pub latency: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bucket {
    /// Upper edge of the bucket in seconds.
    pub mark: f64,
    pub count: u64,
    pub frequency: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    pub timestamp: String,
    /// Nanoseconds.
    pub latency: u64,
    pub error: String,
    pub status: String,
}

/// ghz's JSON report (`-O json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "endReason")]
    pub end_reason: String,
    pub options: serde_json::Value,
    pub date: String,
    pub count: u64,
    pub total: u64,
    pub average: u64,
    pub fastest: u64,
    pub slowest: u64,
    pub rps: f64,
    #[serde(rename = "errorDistribution")]
    pub error_distribution: BTreeMap<String, u64>,
    #[serde(rename = "statusCodeDistribution")]
    pub status_code_distribution: BTreeMap<String, u64>,
    #[serde(rename = "latencyDistribution")]
    pub latency_distribution: Vec<LatencyPoint>,
    pub histogram: Vec<Bucket>,
    pub details: Vec<Detail>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The records that count: ghz drops the first `skipFirst` completions.
fn counted<'a>(spec: &RunSpec, outcome: &'a RunOutcome) -> &'a [CallRecord] {
    let skip = usize::try_from(spec.skip_first).unwrap_or(usize::MAX);
    outcome.records.get(skip..).unwrap_or(&[])
}

/// Sorted latencies in seconds of the calls that enter the statistics (OK ones, or all with
/// `count-errors`).
fn stat_latencies(
    spec: &RunSpec,
    records: &[CallRecord],
    pick: fn(&CallRecord) -> Duration,
) -> Vec<f64> {
    let mut lats: Vec<f64> = records
        .iter()
        .filter(|r| r.error.is_none() || spec.count_errors)
        .map(|r| pick(r).as_secs_f64())
        .collect();
    lats.sort_by(f64::total_cmp);
    lats
}

/// ghz's percentile: the sorted value at rank `p% * n`, 1-based when that is whole.
fn percentile(sorted: &[f64], p: u32) -> f64 {
    let ip = f64::from(p) / 100.0 * sorted.len() as f64;
    let mut index = ip as usize;
    if ip == index as f64 {
        index = index.saturating_sub(1);
    }
    sorted.get(index).copied().unwrap_or(0.0)
}

/// ghz's histogram: 10 equal buckets from fastest to slowest, plus one at the slowest value.
fn histogram(sorted: &[f64]) -> Vec<Bucket> {
    let (Some(&fastest), Some(&slowest)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    let width = (slowest - fastest) / HISTOGRAM_BUCKETS as f64;
    let mut marks: Vec<f64> = (0..HISTOGRAM_BUCKETS)
        .map(|i| fastest + width * i as f64)
        .collect();
    marks.push(slowest);
    let mut counts = vec![0u64; marks.len()];
    let mut bucket = 0;
    for &lat in sorted {
        while lat > marks[bucket] && bucket < marks.len() - 1 {
            bucket += 1;
        }
        counts[bucket] += 1;
    }
    marks
        .into_iter()
        .zip(counts)
        .map(|(mark, count)| Bucket {
            mark,
            count,
            frequency: count as f64 / sorted.len() as f64,
        })
        .collect()
}

impl Report {
    pub fn build(spec: &RunSpec, outcome: &RunOutcome) -> Report {
        let records = counted(spec, outcome);
        let mut errors = BTreeMap::new();
        let mut codes = BTreeMap::new();
        for r in records {
            *codes.entry(go_code_name(r.code).to_string()).or_insert(0) += 1;
            if let Some(e) = &r.error {
                *errors.entry(e.clone()).or_insert(0) += 1;
            }
        }
        let count = records.len() as u64;
        let sum: f64 = records.iter().map(|r| r.latency.as_secs_f64()).sum();
        let lats = stat_latencies(spec, records, |r| r.latency);
        let to_ns = |secs: f64| nanos(Duration::from_secs_f64(secs));
        let latency_distribution = if lats.is_empty() {
            Vec::new()
        } else {
            PERCENTILES
                .iter()
                .map(|&p| match percentile(&lats, p) {
                    // ghz leaves a zero entry where the latency is zero.
                    v if v > 0.0 => LatencyPoint {
                        percentage: p,
                        latency: to_ns(v),
                    },
                    _ => LatencyPoint {
                        percentage: 0,
                        latency: 0,
                    },
                })
                .collect()
        };
        Report {
            name: spec.name.clone(),
            end_reason: outcome.end_reason.as_str().into(),
            options: options_json(spec),
            date: rfc3339(SystemTime::now(), false),
            count,
            total: nanos(outcome.total),
            average: if count > 0 {
                to_ns(sum / count as f64)
            } else {
                0
            },
            fastest: lats.first().copied().map_or(0, to_ns),
            slowest: lats.last().copied().map_or(0, to_ns),
            rps: if outcome.total.is_zero() {
                0.0
            } else {
                count as f64 / outcome.total.as_secs_f64()
            },
            error_distribution: errors,
            status_code_distribution: codes,
            latency_distribution,
            histogram: histogram(&lats),
            details: records
                .iter()
                .map(|r| Detail {
                    timestamp: rfc3339(r.timestamp, true),
                    latency: nanos(r.latency),
                    error: r.error.clone().unwrap_or_default(),
                    status: go_code_name(r.code).to_string(),
                })
                .collect(),
            tags: spec.tags.clone(),
        }
    }

    /// ghz's text summary.
    pub fn summary_text(&self) -> String {
        let ms = |ns: u64| format!("{:.2} ms", ns as f64 / 1e6);
        let mut out = String::from("\nSummary:\n");
        if let Some(name) = &self.name {
            let _ = writeln!(out, "  Name:\t\t{name}");
        }
        let _ = writeln!(out, "  Count:\t{}", self.count);
        let _ = writeln!(out, "  Total:\t{:.2} s", self.total as f64 / 1e9);
        let _ = writeln!(out, "  Slowest:\t{}", ms(self.slowest));
        let _ = writeln!(out, "  Fastest:\t{}", ms(self.fastest));
        let _ = writeln!(out, "  Average:\t{}", ms(self.average));
        let _ = writeln!(out, "  Requests/sec:\t{:.2}", self.rps);
        if !self.histogram.is_empty() {
            out.push_str("\nResponse time histogram:\n");
            let max = self
                .histogram
                .iter()
                .map(|b| b.count)
                .max()
                .unwrap_or(1)
                .max(1);
            for b in &self.histogram {
                let bar = "∎".repeat((b.count * 40 / max) as usize);
                let _ = writeln!(out, "  {:.3} [{}]\t|{bar}", b.mark * 1e3, b.count);
            }
            out.push_str("\nLatency distribution:\n");
            for p in self
                .latency_distribution
                .iter()
                .filter(|p| p.percentage > 0)
            {
                let _ = writeln!(out, "  {} % in {} ", p.percentage, ms(p.latency));
            }
        }
        out.push_str("\nStatus code distribution:\n");
        for (code, n) in &self.status_code_distribution {
            let _ = writeln!(out, "  [{code}]\t{n} responses");
        }
        if !self.error_distribution.is_empty() {
            out.push_str("\nError distribution:\n");
            for (error, n) in &self.error_distribution {
                let _ = writeln!(out, "  [{n}]\t{error}");
            }
        }
        out
    }
}

/// Writes the report as ghz does (the chosen format to `output` or stdout) and, for machine
/// formats, the text summary to stderr; plus xling's summary JSON when asked for.
pub fn emit(
    spec: &RunSpec,
    outcome: &RunOutcome,
    summary_path: Option<&Path>,
) -> Result<(), LoadtestError> {
    let report = Report::build(spec, outcome);
    let rendered = match spec.format {
        Format::Summary => report.summary_text(),
        Format::Json => to_json(&report, false),
        Format::Pretty => to_json(&report, true),
    };
    match &spec.output {
        Some(path) => write(path, &rendered)?,
        None => print!("{rendered}"),
    }
    if spec.format != Format::Summary {
        eprint!("{}", report.summary_text());
    }
    if let Some(path) = summary_path {
        write(path, &to_json(&summary_json(spec, outcome, &report), true))?;
    }
    Ok(())
}

fn to_json(value: &impl Serialize, pretty: bool) -> String {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    // Plain data (strings, numbers, maps with string keys) always serializes.
    text.unwrap_or_default() + "\n"
}

fn write(path: &Path, text: &str) -> Result<(), LoadtestError> {
    std::fs::write(path, text).map_err(|source| LoadtestError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// The report's `options`: the settings the run used, ghz's key names, durations in ns.
fn options_json(spec: &RunSpec) -> serde_json::Value {
    let c = &spec.config;
    let ns = |d: Option<Duration>| d.map(nanos);
    let mut options = json!({
        "host": spec.host,
        "proto": c.proto,
        "call": c.call,
        "insecure": true,
        "total": spec.total,
        "concurrency": spec.concurrency_label,
        "connections": spec.connections,
        "rps": c.rps,
        "duration": ns(spec.duration),
        "timeout": ns(spec.timeout),
        "connect-timeout": nanos(spec.connect_timeout),
        "data": spec.data,
        "metadata": c.metadata,
        "skipFirst": spec.skip_first,
        "count-errors": spec.count_errors,
        "load-schedule": c.load_schedule.as_deref().unwrap_or("const"),
        "load-start": c.load_start,
        "load-step": c.load_step,
        "load-end": c.load_end,
        "load-step-duration": ns(c.load_step_duration),
        "load-max-duration": ns(c.load_max_duration),
        "concurrency-schedule": c.concurrency_schedule.as_deref().unwrap_or("const"),
        "concurrency-start": c.concurrency_start,
        "concurrency-step": c.concurrency_step,
        "concurrency-end": c.concurrency_end,
        "concurrency-step-duration": ns(c.concurrency_step_duration),
        "concurrency-max-duration": ns(c.concurrency_max_duration),
        "name": spec.name,
    });
    if let Some(map) = options.as_object_mut() {
        map.retain(|_, v| !v.is_null());
    }
    options
}

/// xling's flat summary for sweeps (`--summary-json`): one object per run, milliseconds.
pub fn summary_json(spec: &RunSpec, outcome: &RunOutcome, report: &Report) -> serde_json::Value {
    let records = counted(spec, outcome);
    let lats = stat_latencies(spec, records, |r| r.latency);
    let service = stat_latencies(spec, records, |r| r.service);
    let ms = |sorted: &[f64], p: u32| percentile(sorted, p) * 1e3;
    let errors = records.iter().filter(|r| r.error.is_some()).count() as u64;
    let ok = report.count - errors;
    let timings: Vec<_> = records.iter().filter_map(|r| r.server).collect();
    let server_mean = |f: fn(&crate::call::ServerTiming) -> f64| {
        (!timings.is_empty()).then(|| timings.iter().map(f).sum::<f64>() / timings.len() as f64)
    };
    let total_s = report.total as f64 / 1e9;
    // Refusals on their own: how fast overload is answered (latency from the due time, and the
    // service time from the actual send).
    let refused_ms = |pick: fn(&CallRecord) -> Duration| {
        let mut lats: Vec<f64> = records
            .iter()
            .filter(|r| r.code == tonic::Code::ResourceExhausted)
            .map(|r| pick(r).as_secs_f64())
            .collect();
        lats.sort_by(f64::total_cmp);
        ms(&lats, 99)
    };
    let refused = records
        .iter()
        .filter(|r| r.code == tonic::Code::ResourceExhausted)
        .count();
    json!({
        "name": spec.name,
        "call": spec.config.call,
        "host": spec.host,
        "end_reason": report.end_reason,
        "concurrency": spec.concurrency_label,
        "connections": spec.connections,
        "load_schedule": spec.config.load_schedule.as_deref().unwrap_or("const"),
        "target_rps": spec.config.rps.filter(|_| spec.rate.is_some()),
        "open_loop": spec.rate.is_some(),
        "count": report.count,
        "ok": ok,
        "errors": errors,
        "error_rate": if report.count > 0 { errors as f64 / report.count as f64 } else { 0.0 },
        "duration_s": total_s,
        "rps": report.rps,
        "ok_rps": if total_s > 0.0 { ok as f64 / total_s } else { 0.0 },
        "mean_ms": if lats.is_empty() { 0.0 } else { lats.iter().sum::<f64>() / lats.len() as f64 * 1e3 },
        "p50_ms": ms(&lats, 50),
        "p90_ms": ms(&lats, 90),
        "p95_ms": ms(&lats, 95),
        "p99_ms": ms(&lats, 99),
        "max_ms": lats.last().copied().unwrap_or(0.0) * 1e3,
        "service_p50_ms": ms(&service, 50),
        "service_p99_ms": ms(&service, 99),
        "server_queue_ms_mean": server_mean(|t| t.queue_us / 1e3),
        "server_encode_ms_mean": server_mean(|t| t.encode_us / 1e3),
        "server_total_ms_mean": server_mean(|t| t.total_us / 1e3),
        "server_search_ms_mean": server_mean(|t| t.search_us / 1e3),
        "server_batch_size_mean": server_mean(|t| t.batch_size),
        "refused": refused,
        "refused_p99_ms": refused_ms(|r| r.latency),
        "refused_service_p99_ms": refused_ms(|r| r.service),
        "status_codes": report.status_code_distribution,
        "tags": spec.tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::EndReason;
    use crate::GhzConfig;
    use std::time::Instant;

    fn record(ms: u64, code: tonic::Code) -> CallRecord {
        CallRecord {
            timestamp: SystemTime::now(),
            latency: Duration::from_millis(ms),
            service: Duration::from_millis(ms / 2),
            code,
            error: (code != tonic::Code::Ok)
                .then(|| "rpc error: code = Unavailable desc = x".into()),
            server: None,
            finished: Instant::now(),
        }
    }

    fn spec(skip_first: u64, count_errors: bool) -> RunSpec {
        RunSpec::resolve(GhzConfig {
            call: Some("xling.v1.Retrieval/Search".into()),
            host: Some("127.0.0.1:1".into()),
            insecure: Some(true),
            name: Some("t".into()),
            skip_first: Some(skip_first),
            count_errors: Some(count_errors),
            ..GhzConfig::default()
        })
        .unwrap()
    }

    fn outcome() -> RunOutcome {
        RunOutcome {
            records: vec![
                record(40, tonic::Code::Ok),
                record(10, tonic::Code::Ok),
                record(20, tonic::Code::Ok),
                record(90, tonic::Code::Unavailable),
            ],
            total: Duration::from_secs(2),
            end_reason: EndReason::Normal,
        }
    }

    #[test]
    fn json_report_has_ghz_keys_and_integer_nanoseconds() {
        let spec = spec(0, false);
        let report = Report::build(&spec, &outcome());
        let v = serde_json::to_value(&report).unwrap();
        for key in [
            "name",
            "endReason",
            "options",
            "date",
            "count",
            "total",
            "average",
            "fastest",
            "slowest",
            "rps",
            "errorDistribution",
            "statusCodeDistribution",
            "latencyDistribution",
            "histogram",
            "details",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(v["count"], 4);
        assert_eq!(v["total"].as_u64(), Some(2_000_000_000));
        // Errors count in the average but not in fastest/slowest (ghz).
        assert_eq!(v["average"].as_u64(), Some(40_000_000));
        assert_eq!(v["fastest"].as_u64(), Some(10_000_000));
        assert_eq!(v["slowest"].as_u64(), Some(40_000_000));
        assert_eq!(v["rps"].as_f64(), Some(2.0));
        assert_eq!(v["statusCodeDistribution"]["OK"], 3);
        assert_eq!(v["statusCodeDistribution"]["Unavailable"], 1);
        let p50 = &v["latencyDistribution"][2];
        assert_eq!(
            (p50["percentage"].as_u64(), p50["latency"].as_u64()),
            (Some(50), Some(20_000_000))
        );
        assert!(v["details"][0]["latency"].is_u64());
        assert_eq!(v["options"]["timeout"].as_u64(), Some(20_000_000_000));
        assert!(report.summary_text().contains("[Unavailable]"));
    }

    #[test]
    fn skip_first_and_count_errors_change_the_statistics() {
        let report = Report::build(&spec(1, true), &outcome());
        assert_eq!(report.count, 3);
        assert_eq!(report.slowest, 90_000_000);
        let spec = spec(1, true);
        let summary = summary_json(&spec, &outcome(), &report);
        assert_eq!(summary["errors"], 1);
        assert_eq!(summary["ok"], 2);
        assert_eq!(summary["p99_ms"].as_f64(), Some(90.0));
        assert_eq!(summary["service_p99_ms"].as_f64(), Some(45.0));
    }

    #[test]
    fn percentiles_follow_ghz_ranks() {
        let sorted: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 10), 1.0);
        assert_eq!(percentile(&sorted, 25), 3.0);
        assert_eq!(percentile(&sorted, 50), 5.0);
        assert_eq!(percentile(&sorted, 99), 10.0);
        assert_eq!(percentile(&[], 50), 0.0);
    }

    #[test]
    fn histogram_has_eleven_marks_and_counts_everything() {
        let sorted: Vec<f64> = (0..100).map(|i| 0.001 + f64::from(i) * 0.0001).collect();
        let buckets = histogram(&sorted);
        assert_eq!(buckets.len(), 11);
        assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 100);
        assert_eq!(
            buckets[0].count, 1,
            "only the fastest sits at the first mark"
        );
        assert!((buckets[10].mark - sorted[99]).abs() < 1e-12);
        let freq: f64 = buckets.iter().map(|b| b.frequency).sum();
        assert!((freq - 1.0).abs() < 1e-9);
    }
}
