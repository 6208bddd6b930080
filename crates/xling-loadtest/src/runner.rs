//! Runs a [`RunSpec`] against a server: connections, workers, the rate schedule, stop rules.
//!
//! Workers take numbered tickets from one dispenser. In rate mode a ticket carries its intended
//! send time; the worker sleeps until then and latency is measured from that time, so requests
//! that wait for a free worker (because the server is slow) count their wait (no coordinated
//! omission). In closed-loop mode (no rate) latency is measured from the actual send.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::task::JoinSet;
use tokio::time::sleep_until;
pub use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};
use xling_proto::v1::retrieval_client::RetrievalClient;

use crate::call::{go_error_text, invoke, ServerTiming};
use crate::schedule::{SendTimes, WorkerWindow};
use crate::spec::{DurationStop, RunSpec};
use crate::LoadtestError;

/// Responses can be large (Embed of many texts); the request side is bounded by the server.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// One finished call.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// Wall-clock time the call was due (rate mode) or sent (closed loop).
    pub timestamp: SystemTime,
    /// From the due time (rate mode) or the send (closed loop) to the response.
    pub latency: Duration,
    /// From the actual send to the response: the server's share without client-side waiting.
    pub service: Duration,
    pub code: tonic::Code,
    /// ghz's error text; `None` for OK.
    pub error: Option<String>,
    pub server: Option<ServerTiming>,
    pub(crate) finished: Instant,
}

/// Why the run ended, as ghz reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Normal,
    Timeout,
    Cancel,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Normal => "normal",
            EndReason::Timeout => "timeout",
            EndReason::Cancel => "cancel",
        }
    }
}

#[derive(Debug)]
pub struct RunOutcome {
    /// In completion order.
    pub records: Vec<CallRecord>,
    /// Wall time of the whole run.
    pub total: Duration,
    pub end_reason: EndReason,
}

#[derive(Debug, Clone, Copy)]
struct Ticket {
    /// Request number, from 0; picks the call data round-robin as in ghz.
    number: u64,
    /// Offset from the run start at which this request is due (rate mode).
    due: Option<Duration>,
}

struct Dispenser {
    issued: u64,
    limit: Option<u64>,
    times: Option<SendTimes>,
    /// No ticket is due after this offset (the run's duration).
    deadline: Option<Duration>,
    /// Why tickets ran out: the request limit (normal) or the duration (timeout).
    exhausted: Option<EndReason>,
}

impl Dispenser {
    fn next(&mut self) -> Option<Ticket> {
        if self.exhausted.is_some() {
            return None;
        }
        if self.limit.is_some_and(|limit| self.issued >= limit) {
            self.exhausted = Some(EndReason::Normal);
            return None;
        }
        let due = self.times.as_mut().and_then(Iterator::next);
        if let (Some(due), Some(deadline)) = (due, self.deadline) {
            if due >= deadline {
                self.exhausted = Some(EndReason::Timeout);
                return None;
            }
        }
        self.issued += 1;
        Some(Ticket {
            number: self.issued - 1,
            due,
        })
    }
}

struct Shared {
    start: Instant,
    start_wall: SystemTime,
    tickets: Mutex<Dispenser>,
    /// No new requests once cancelled (duration over, or interrupted).
    stop: CancellationToken,
    /// All tickets are out: no more workers start; running ones finish what they hold.
    drained: CancellationToken,
    /// In-flight calls are abandoned once cancelled.
    abort: CancellationToken,
    reason: Mutex<Option<EndReason>>,
}

impl Shared {
    /// The first reason to end the run wins.
    fn end(&self, reason: EndReason, abort: bool) {
        let mut current = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        current.get_or_insert(reason);
        self.stop.cancel();
        if abort {
            self.abort.cancel();
        }
    }
}

/// Connects, runs the schedule, and returns every finished call. `interrupt` ends the run early
/// (e.g. on Ctrl-C) with end reason `cancel`.
pub async fn run(
    spec: &RunSpec,
    interrupt: CancellationToken,
) -> Result<RunOutcome, LoadtestError> {
    let mut channels = Vec::new();
    for _ in 0..spec.connections {
        channels.push(connect(spec).await?);
    }
    let shared = Arc::new(Shared {
        start: Instant::now(),
        start_wall: SystemTime::now(),
        tickets: Mutex::new(Dispenser {
            issued: 0,
            limit: spec.total,
            times: spec.rate.as_ref().map(|r| r.send_times()),
            deadline: spec.duration,
            exhausted: None,
        }),
        stop: CancellationToken::new(),
        drained: CancellationToken::new(),
        abort: CancellationToken::new(),
        reason: Mutex::new(None),
    });
    let timer = tokio::spawn(stop_rules(
        shared.clone(),
        spec.duration,
        spec.duration_stop,
        interrupt,
    ));
    let spec = Arc::new(spec.clone());
    let mut workers = JoinSet::new();
    for w in 0u32.. {
        let Some(window) = spec.concurrency.window(w) else {
            break;
        };
        tokio::select! {
            _ = sleep_until((shared.start + window.start).into()) => {}
            _ = shared.stop.cancelled() => break,
            _ = shared.drained.cancelled() => break,
        }
        let client = RetrievalClient::new(channels[w as usize % channels.len()].clone())
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        workers.spawn(worker(shared.clone(), spec.clone(), client, window));
    }
    let mut records = Vec::new();
    while let Some(done) = workers.join_next().await {
        records.extend(done.map_err(|e| LoadtestError::Connect {
            host: spec.host.clone(),
            reason: format!("worker failed: {e}"),
        })?);
    }
    let total = shared.start.elapsed();
    timer.abort();
    records.sort_by_key(|r| r.finished);
    let stopped = *shared.reason.lock().unwrap_or_else(|e| e.into_inner());
    let exhausted = shared
        .tickets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .exhausted;
    let end_reason = stopped.or(exhausted).unwrap_or(EndReason::Normal);
    Ok(RunOutcome {
        records,
        total,
        end_reason,
    })
}

async fn connect(spec: &RunSpec) -> Result<Channel, LoadtestError> {
    let fail = |reason: String| LoadtestError::Connect {
        host: spec.host.clone(),
        reason,
    };
    Endpoint::from_shared(format!("http://{}", spec.host))
        .map_err(|e| fail(format!("invalid host: {e}")))?
        .connect_timeout(spec.connect_timeout)
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| fail(format!("{e} ({})", root_cause(&e))))
}

/// tonic's transport error hides the useful part (e.g. "Connection refused") in its sources.
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Ends the run when the duration runs out or the user interrupts.
async fn stop_rules(
    shared: Arc<Shared>,
    duration: Option<Duration>,
    on_duration: DurationStop,
    interrupt: CancellationToken,
) {
    let deadline = async {
        match duration {
            Some(d) => sleep_until((shared.start + d).into()).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = deadline => shared.end(EndReason::Timeout, on_duration != DurationStop::Wait),
        _ = interrupt.cancelled() => shared.end(EndReason::Cancel, true),
    }
}

async fn worker(
    shared: Arc<Shared>,
    spec: Arc<RunSpec>,
    mut client: RetrievalClient<Channel>,
    window: WorkerWindow,
) -> Vec<CallRecord> {
    let mut records = Vec::new();
    let stop_at = window.stop.map(|s| shared.start + s);
    loop {
        if shared.stop.is_cancelled() || stop_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let ticket = shared
            .tickets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next();
        let Some(ticket) = ticket else {
            shared.drained.cancel();
            break;
        };
        if let Some(due) = ticket.due {
            tokio::select! {
                _ = sleep_until((shared.start + due).into()) => {}
                _ = shared.stop.cancelled() => break,
            }
        }
        let sent = Instant::now();
        let from = ticket.due.map_or(sent, |due| shared.start + due);
        let payload = &spec.payloads[(ticket.number % spec.payloads.len() as u64) as usize];
        let call = invoke(&mut client, payload, &spec.metadata, spec.timeout);
        let bounded = async {
            match spec.timeout {
                Some(t) => tokio::time::timeout(t, call).await.unwrap_or_else(|_| {
                    Err(tonic::Status::deadline_exceeded(
                        "context deadline exceeded",
                    ))
                }),
                None => call.await,
            }
        };
        let result = tokio::select! {
            result = bounded => result,
            _ = shared.abort.cancelled() => {
                if spec.duration_stop == DurationStop::Ignore {
                    break;
                }
                Err(tonic::Status::cancelled("grpc: the client connection is closing"))
            }
        };
        let finished = Instant::now();
        let (code, error, server) = match result {
            Ok(server) => (tonic::Code::Ok, None, server),
            Err(status) => (
                status.code(),
                Some(go_error_text(status.code(), status.message())),
                None,
            ),
        };
        records.push(CallRecord {
            timestamp: shared.start_wall + from.duration_since(shared.start),
            latency: finished.duration_since(from),
            service: finished.duration_since(sent),
            code,
            error,
            server,
            finished,
        });
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::RateSchedule;

    fn dispenser(limit: Option<u64>, deadline: Option<Duration>) -> Dispenser {
        Dispenser {
            issued: 0,
            limit,
            times: Some(RateSchedule::constant(10).send_times()),
            deadline,
            exhausted: None,
        }
    }

    #[test]
    fn duration_bounds_the_due_times() {
        let mut d = dispenser(None, Some(Duration::from_secs(1)));
        let tickets: Vec<Ticket> = std::iter::from_fn(|| d.next()).collect();
        assert_eq!(tickets.len(), 10);
        assert_eq!(tickets[9].number, 9);
        assert!((tickets[9].due.unwrap().as_secs_f64() - 0.9).abs() < 1e-9);
        assert_eq!(d.exhausted, Some(EndReason::Timeout));
        assert!(d.next().is_none(), "stays exhausted");
    }

    #[test]
    fn total_bounds_the_tickets() {
        let mut d = dispenser(Some(3), Some(Duration::from_secs(60)));
        assert_eq!(std::iter::from_fn(|| d.next()).count(), 3);
        assert_eq!(d.exhausted, Some(EndReason::Normal));
    }
}
