//! [`RunSpec`]: a merged [`GhzConfig`] with ghz's defaults applied and every setting checked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};

use crate::inputs::{load_data, load_metadata};

use crate::call::{Method, Payload};
use crate::config::GhzConfig;
use crate::schedule::{ConcurrencySchedule, RateSchedule};
use crate::LoadtestError;

/// What happens to calls still in flight when `duration` runs out (ghz `duration-stop`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationStop {
    /// Cancel them and report them as `Canceled` errors.
    Close,
    /// Let them finish and report them.
    Wait,
    /// Cancel them and leave them out of the report.
    Ignore,
}

/// Output formats of the ghz report that xling loadtest writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Summary,
    Json,
    Pretty,
}

/// A run, ready to go.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The merged config, kept for the report's `options`.
    pub config: GhzConfig,
    pub method: Method,
    pub host: String,
    /// The call data as given (for the report's `options`).
    pub data: Option<serde_json::Value>,
    /// Calls in round-robin order (ghz: an array of messages is used round-robin).
    pub payloads: Vec<Payload>,
    pub metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
    pub concurrency: ConcurrencySchedule,
    /// The largest number of workers the schedule can reach (for the report).
    pub concurrency_label: u32,
    pub connections: u32,
    /// `None`: as many requests as the workers can do (closed loop).
    pub rate: Option<RateSchedule>,
    /// `None`: no request limit (a `duration` run).
    pub total: Option<u64>,
    /// Wall-clock limit of the run.
    pub duration: Option<Duration>,
    pub duration_stop: DurationStop,
    /// Per-call deadline; `None` means none (ghz `timeout: 0`).
    pub timeout: Option<Duration>,
    pub connect_timeout: Duration,
    pub skip_first: u64,
    pub count_errors: bool,
    pub format: Format,
    pub output: Option<PathBuf>,
    pub name: Option<String>,
    pub tags: BTreeMap<String, String>,
}

impl RunSpec {
    /// Applies ghz's defaults (total 200, concurrency 50, connections 1, timeout 20s,
    /// connect-timeout 10s, load-schedule const) and checks every setting.
    pub fn resolve(config: GhzConfig) -> Result<RunSpec, LoadtestError> {
        let c = &config;
        let method: Method = c
            .call
            .as_deref()
            .ok_or_else(|| LoadtestError::option("call", "required"))?
            .parse()?;
        let host = c
            .host
            .clone()
            .filter(|h| !h.trim().is_empty())
            .ok_or_else(|| LoadtestError::option("host", "required (e.g. 127.0.0.1:50051)"))?;
        if c.insecure != Some(true) {
            return Err(LoadtestError::option(
                "insecure",
                "xling loadtest speaks plaintext gRPC only; set \"insecure\": true (ghz would use TLS without it)",
            ));
        }
        if let Some(proto) = c.proto.as_deref().filter(|p| !p.is_empty()) {
            check_proto(proto)?;
        }
        let concurrency_value = c.concurrency.unwrap_or(50);
        let connections = c.connections.unwrap_or(1).max(1);
        let (concurrency, concurrency_label) = concurrency_schedule(c, concurrency_value)?;
        if connections > concurrency_label {
            return Err(LoadtestError::option(
                "connections",
                "number of connections cannot be greater than concurrency",
            ));
        }
        // ghz: max-duration keeps the request limit; duration alone removes it.
        let (total, duration) = match (c.max_duration.filter(|d| !d.is_zero()), c.duration) {
            (Some(x), _) => (Some(c.total.unwrap_or(200)), Some(x)),
            (None, Some(z)) if !z.is_zero() => (None, Some(z)),
            _ => (Some(c.total.unwrap_or(200)), None),
        };
        if total == Some(0) {
            return Err(LoadtestError::option("total", "must be at least 1"));
        }
        let skip_first = c.skip_first.unwrap_or(0);
        if total.is_some_and(|n| skip_first > n) {
            return Err(LoadtestError::option(
                "skipFirst",
                "you cannot skip more requests than those run",
            ));
        }
        let data = load_data(c)?;
        Ok(RunSpec {
            method,
            host,
            payloads: method.payloads(data.as_ref())?,
            data,
            metadata: load_metadata(c)?,
            concurrency,
            concurrency_label,
            connections,
            rate: rate_schedule(c)?,
            total,
            duration,
            duration_stop: match c.duration_stop.as_deref().map(str::to_ascii_lowercase) {
                None => DurationStop::Close,
                Some(s) if s == "close" => DurationStop::Close,
                Some(s) if s == "wait" => DurationStop::Wait,
                Some(s) if s == "ignore" => DurationStop::Ignore,
                Some(s) => {
                    return Err(LoadtestError::option(
                        "duration-stop",
                        format!("{s:?}: expected close, wait or ignore"),
                    ))
                }
            },
            timeout: Some(c.timeout.unwrap_or(Duration::from_secs(20))).filter(|t| !t.is_zero()),
            connect_timeout: c.connect_timeout.unwrap_or(Duration::from_secs(10)),
            skip_first,
            count_errors: c.count_errors.unwrap_or(false),
            format: match c.format.as_deref().unwrap_or("summary") {
                "summary" | "" => Format::Summary,
                "json" => Format::Json,
                "pretty" => Format::Pretty,
                other => {
                    return Err(LoadtestError::option(
                        "format",
                        format!("{other:?} is not supported here (use summary, json or pretty)"),
                    ))
                }
            },
            output: c
                .output
                .as_deref()
                .filter(|o| !o.trim().is_empty())
                .map(PathBuf::from),
            name: c.name.clone().filter(|n| !n.trim().is_empty()),
            tags: c.tags.clone().unwrap_or_default(),
            config,
        })
    }
}

fn check_proto(proto: &str) -> Result<(), LoadtestError> {
    let path = Path::new(proto);
    if path.extension().and_then(|e| e.to_str()) != Some("proto") {
        return Err(LoadtestError::option("proto", "must have .proto extension"));
    }
    if !path.is_file() {
        return Err(LoadtestError::option(
            "proto",
            format!("{proto}: no such file (xling loadtest has the xling.v1 types built in; omit proto to use them)"),
        ));
    }
    Ok(())
}

fn rate_schedule(c: &GhzConfig) -> Result<Option<RateSchedule>, LoadtestError> {
    let schedule = c.load_schedule.as_deref().unwrap_or("const");
    let (start, step, end) = (
        c.load_start.unwrap_or(0),
        c.load_step.unwrap_or(0),
        c.load_end.unwrap_or(0),
    );
    let step_duration = match schedule {
        "const" => return Ok(c.rps.filter(|r| *r > 0).map(RateSchedule::constant)),
        "line" => Duration::from_secs(1),
        "step" => c
            .load_step_duration
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                LoadtestError::option("load-step-duration", "invalid load step duration")
            })?,
        other => {
            return Err(LoadtestError::option(
                "load-schedule",
                format!("{other:?}: schedule must be \"const\", \"step\", or \"line\""),
            ))
        }
    };
    if start == 0 {
        return Err(LoadtestError::option(
            "load-start",
            "must be at least 1 for step and line schedules",
        ));
    }
    if start == end {
        return Err(LoadtestError::option(
            "load-end",
            "load start cannot equal load end",
        ));
    }
    if step == 0 {
        return Err(LoadtestError::option("load-step", "invalid load step"));
    }
    if step < 0 && end == 0 {
        return Err(LoadtestError::option(
            "load-end",
            "a decreasing schedule needs load-end of at least 1 rps",
        ));
    }
    let max_duration = c.load_max_duration.filter(|d| !d.is_zero());
    Ok(Some(RateSchedule::stepped(
        start,
        step,
        end,
        step_duration,
        max_duration,
    )))
}

fn concurrency_schedule(
    c: &GhzConfig,
    concurrency: u32,
) -> Result<(ConcurrencySchedule, u32), LoadtestError> {
    let schedule = c.concurrency_schedule.as_deref().unwrap_or("const");
    let step_duration = match schedule {
        "const" if concurrency == 0 => {
            return Err(LoadtestError::option("concurrency", "must be at least 1"))
        }
        "const" => return Ok((ConcurrencySchedule::Const(concurrency), concurrency)),
        "line" => Duration::from_secs(1),
        "step" => c
            .concurrency_step_duration
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                LoadtestError::option(
                    "concurrency-step-duration",
                    "invalid concurrency step duration",
                )
            })?,
        other => {
            return Err(LoadtestError::option(
                "concurrency-schedule",
                format!("{other:?}: schedule must be \"const\", \"step\", or \"line\""),
            ))
        }
    };
    let (start, step, end) = (
        c.concurrency_start.unwrap_or(1),
        c.concurrency_step.unwrap_or(0),
        c.concurrency_end.unwrap_or(0),
    );
    if start == end {
        return Err(LoadtestError::option(
            "concurrency-end",
            "concurrency start cannot equal concurrency end",
        ));
    }
    if step == 0 {
        return Err(LoadtestError::option(
            "concurrency-step",
            "invalid concurrency step",
        ));
    }
    if step < 0 && (end == 0 || start == 0) {
        return Err(LoadtestError::option(
            "concurrency-end",
            "a decreasing schedule needs concurrency-start above concurrency-end >= 1",
        ));
    }
    let max_duration = c.concurrency_max_duration.filter(|d| !d.is_zero());
    let schedule = ConcurrencySchedule::Step {
        start,
        step,
        end,
        step_duration,
        max_duration,
    };
    // Without an end the count grows with the run; the report shows the start then.
    let label = if step > 0 && end > 0 {
        end
    } else {
        start.max(1)
    };
    Ok((schedule, label))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> GhzConfig {
        GhzConfig {
            call: Some("xling.v1.Retrieval.Search".into()),
            host: Some("127.0.0.1:50051".into()),
            insecure: Some(true),
            data: Some(serde_json::json!({"query": "wer?"})),
            ..GhzConfig::default()
        }
    }

    #[test]
    fn applies_ghz_defaults() {
        let spec = RunSpec::resolve(base()).unwrap();
        assert_eq!(spec.total, Some(200));
        assert_eq!(spec.concurrency, ConcurrencySchedule::Const(50));
        assert_eq!(spec.connections, 1);
        assert_eq!(spec.timeout, Some(Duration::from_secs(20)));
        assert_eq!(spec.rate, None);
        assert_eq!(spec.format, Format::Summary);
        assert_eq!(spec.duration_stop, DurationStop::Close);
    }

    #[test]
    fn duration_removes_total_but_max_duration_keeps_it() {
        let mut c = base();
        c.duration = Some(Duration::from_secs(5));
        c.total = Some(10);
        let spec = RunSpec::resolve(c.clone()).unwrap();
        assert_eq!(
            (spec.total, spec.duration),
            (None, Some(Duration::from_secs(5)))
        );
        c.max_duration = Some(Duration::from_secs(7));
        let spec = RunSpec::resolve(c).unwrap();
        assert_eq!(
            (spec.total, spec.duration),
            (Some(10), Some(Duration::from_secs(7)))
        );
    }

    #[test]
    fn rejects_bad_settings_with_the_key_named() {
        type Mutation = fn(&mut GhzConfig);
        let cases: Vec<(&str, Mutation)> = vec![
            ("insecure", (|c| c.insecure = None)),
            ("host", (|c| c.host = None)),
            (
                "call",
                (|c| c.call = Some("helloworld.Greeter.SayHello".into())),
            ),
            (
                "connections",
                (|c| {
                    c.concurrency = Some(2);
                    c.connections = Some(3);
                }),
            ),
            (
                "load-step",
                (|c| {
                    c.load_schedule = Some("line".into());
                    c.load_start = Some(5);
                    c.load_end = Some(10);
                }),
            ),
            (
                "load-end",
                (|c| {
                    c.load_schedule = Some("line".into());
                    c.load_start = Some(5);
                    c.load_step = Some(-1);
                }),
            ),
            (
                "load-step-duration",
                (|c| {
                    c.load_schedule = Some("step".into());
                    c.load_start = Some(5);
                    c.load_step = Some(1);
                }),
            ),
            ("format", (|c| c.format = Some("html".into()))),
            ("skipFirst", (|c| c.skip_first = Some(500))),
            (
                "metadata",
                (|c| c.metadata = Some([("bad key".to_string(), "x".to_string())].into())),
            ),
        ];
        for (key, mutate) in cases {
            let mut c = base();
            mutate(&mut c);
            let err = RunSpec::resolve(c).unwrap_err().to_string();
            assert!(err.contains(key), "expected {key} in {err}");
        }
    }

    #[test]
    fn builds_rate_and_concurrency_schedules() {
        let mut c = base();
        c.rps = Some(40);
        let spec = RunSpec::resolve(c.clone()).unwrap();
        assert_eq!(spec.rate, Some(RateSchedule::constant(40)));
        c.load_schedule = Some("line".into());
        c.load_start = Some(10);
        c.load_step = Some(5);
        c.load_end = Some(50);
        c.concurrency_schedule = Some("step".into());
        c.concurrency_start = Some(2);
        c.concurrency_step = Some(2);
        c.concurrency_end = Some(8);
        c.concurrency_step_duration = Some(Duration::from_secs(3));
        let spec = RunSpec::resolve(c).unwrap();
        let rate = spec.rate.unwrap();
        assert_eq!(rate.rate_at(Duration::from_millis(2500)), 20.0);
        assert_eq!(rate.rate_at(Duration::from_secs(60)), 50.0);
        assert_eq!(spec.concurrency_label, 8);
        assert_eq!(
            spec.concurrency.window(2).unwrap().start,
            Duration::from_secs(3)
        );
    }
}
