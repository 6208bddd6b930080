//! The inference threads: one per encoder instance, each running its own copy of the caller's
//! function on one batch at a time, off the async runtime, and answering every item of the
//! batch. (A batch split by length arrives here one run at a time: see `queue::first_run`.)
//!
//! Batches are pulled, not assigned: every free instance waits on the one batch channel, so a
//! batch goes to whichever instance frees first (as Triton's instance groups do). With a
//! device behind them (a GPU), one instance's host work (packing, outputs, answers) then
//! overlaps another's run on the device.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;

use crate::correction::WaitCorrection;
use crate::entry::{Done, Entry};
use crate::split::LengthSplit;
use crate::wait::WaitPolicy;
use crate::{BatchError, BatchStats, DropReason, Observer};

pub(crate) struct Shared {
    pub observer: Arc<dyn Observer>,
    pub permits: Arc<Semaphore>,
    pub capacity: usize,
    pub wait: Arc<WaitPolicy>,
    /// Present when batches are split by length: told every run's cost.
    pub split: Option<Arc<LengthSplit>>,
    /// Batches sent and not yet run; decremented as soon as an instance is free.
    pub in_flight: Arc<watch::Sender<usize>>,
    /// Told the waits each run's queries saw against what admission predicted.
    pub correction: Arc<WaitCorrection>,
}

/// Starts one inference thread per function in `processes` (one per encoder instance).
/// `finished` resolves once every thread has answered its last batch and exited.
pub(crate) fn spawn<T, R, F>(
    batches: mpsc::Receiver<Vec<Entry<T, R>>>,
    processes: Vec<F>,
    shared: Shared,
    finished: oneshot::Sender<()>,
) where
    T: Send + 'static,
    R: Send + 'static,
    F: FnMut(&[&T]) -> Result<Vec<R>, String> + Send + 'static,
{
    let batches = Arc::new(Mutex::new(batches));
    let shared = Arc::new(shared);
    // Every thread holds the sender; the receiver resolves (closed) when the last one exits.
    let finished = Arc::new(finished);
    // Inside the runtime's context, tokio's clock is the one the queue uses (paused in tests).
    let runtime = tokio::runtime::Handle::current();
    for (instance, mut process) in processes.into_iter().enumerate() {
        let (batches, shared, finished) = (batches.clone(), shared.clone(), finished.clone());
        let runtime = runtime.clone();
        let body = move || {
            let _context = runtime.enter();
            let _finished = finished;
            // A free instance takes the channel and waits on it; the others wait their turn.
            let next = || {
                batches
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .blocking_recv()
            };
            while let Some(batch) = next() {
                run_batch(batch, &mut process, &shared, instance);
            }
        };
        std::thread::Builder::new()
            .name(format!("xling-inference-{instance}"))
            .spawn(body)
            .expect("the OS refused to start an inference thread");
    }
}

fn run_batch<T, R, F>(batch: Vec<Entry<T, R>>, process: &mut F, shared: &Shared, instance: usize)
where
    F: FnMut(&[&T]) -> Result<Vec<R>, String>,
{
    // The batch may have waited for this thread; skip callers that left meanwhile.
    let mut batch: Vec<Entry<T, R>> = batch
        .into_iter()
        .filter(|e| {
            let gone = e.reply.is_closed();
            if gone {
                shared.observer.dropped(DropReason::Cancelled);
            }
            !gone
        })
        .collect();
    if batch.is_empty() {
        shared.in_flight.send_modify(|n| *n -= 1);
        return;
    }
    for entry in &mut batch {
        entry.permit.take();
    }
    shared
        .observer
        .queue_depth(shared.capacity - shared.permits.available_permits());
    run_one(batch, process, shared, instance);
}

/// Runs a batch on `instance` and answers its items; the instance counts as free as soon as
/// the encoder returns.
fn run_one<T, R, F>(batch: Vec<Entry<T, R>>, process: &mut F, shared: &Shared, instance: usize)
where
    F: FnMut(&[&T]) -> Result<Vec<R>, String>,
{
    let started = Instant::now();
    let span = tracing::debug_span!("batch", size = batch.len(), instance);
    for entry in &batch {
        span.follows_from(entry.span.id());
    }
    let outcome = span.in_scope(|| {
        let items: Vec<&T> = batch.iter().map(|e| &e.item).collect();
        catch_unwind(AssertUnwindSafe(|| process(&items)))
    });
    let run_time = started.elapsed();
    let predicted = batch.iter().filter_map(|e| {
        Some((
            e.predicted_wait?,
            started.duration_since(e.enqueued) + run_time,
        ))
    });
    if shared.correction.observe(predicted) {
        shared.observer.wait_ratio(shared.correction.ratio());
    }
    shared.in_flight.send_modify(|n| *n -= 1);
    let size = batch.len();
    let longest = batch.iter().map(|e| e.tokens).max().unwrap_or(0);
    let outputs = match outcome {
        Ok(Ok(outputs)) if outputs.len() == size => Ok(outputs),
        Ok(Ok(outputs)) => Err(format!("{} outputs for {size} inputs", outputs.len())),
        Ok(Err(reason)) => Err(reason),
        Err(panic) => Err(format!(
            "inference panicked: {}",
            xling_panic::message(&*panic)
        )),
    };
    // The per-item cost that admission and the wait read is a query's: background runs
    // (long passages) would inflate it.
    if !batch.first().is_some_and(|e| e.background) {
        shared.wait.batch_ran(size, run_time);
    }
    if let Some(split) = &shared.split {
        split.observe(size, longest, run_time);
    }
    shared.observer.batch_done(BatchStats {
        size,
        padded_tokens: longest * size,
        run_time,
        failed: outputs.is_err(),
        instance,
    });
    match outputs {
        Ok(outputs) => {
            for (entry, output) in batch.into_iter().zip(outputs) {
                let done = Done {
                    output,
                    queue_wait: started.duration_since(entry.enqueued),
                    run_time,
                    batch_size: size,
                };
                let _ = entry.reply.send(Ok(done));
            }
        }
        Err(reason) => {
            tracing::error!(batch_size = size, %reason, "batch failed");
            for entry in batch {
                let _ = entry.reply.send(Err(BatchError::Failed {
                    batch_size: size,
                    reason: reason.clone(),
                }));
            }
        }
    }
}
