//! The inference thread: runs the caller's function on one batch at a time, off the async
//! runtime, and answers every item of the batch. A batch may run as several length-sorted
//! runs (see `split`); each run is answered as soon as it finishes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;

use crate::queue::{Done, Entry};
use crate::split::LengthSplit;
use crate::wait::WaitPolicy;
use crate::{BatchError, BatchStats, DropReason, Observer};

pub(crate) struct Shared {
    pub observer: Arc<dyn Observer>,
    pub permits: Arc<Semaphore>,
    pub capacity: usize,
    pub wait: Arc<WaitPolicy>,
    /// Present when batches are split by length.
    pub split: Option<Arc<LengthSplit>>,
    /// Batches sent and not yet run; decremented as soon as the encoder is free.
    pub in_flight: Arc<watch::Sender<usize>>,
}

pub(crate) fn spawn<T, R, F>(
    mut batches: mpsc::Receiver<Vec<Entry<T, R>>>,
    mut process: F,
    shared: Shared,
    finished: oneshot::Sender<()>,
) where
    T: Send + 'static,
    R: Send + 'static,
    F: FnMut(&[&T]) -> Result<Vec<R>, String> + Send + 'static,
{
    // Inside the runtime's context, tokio's clock is the one the queue uses (paused in tests).
    let runtime = tokio::runtime::Handle::current();
    let body = move || {
        let _context = runtime.enter();
        while let Some(batch) = batches.blocking_recv() {
            run_batch(batch, &mut process, &shared);
        }
        let _ = finished.send(());
    };
    std::thread::Builder::new()
        .name("xling-inference".into())
        .spawn(body)
        .expect("the OS refused to start the inference thread");
}

fn run_batch<T, R, F>(batch: Vec<Entry<T, R>>, process: &mut F, shared: &Shared)
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
    let runs = match &shared.split {
        Some(split) => split.cut(batch, |e| e.tokens),
        None => vec![batch],
    };
    if runs.len() > 1 {
        shared.observer.batch_split(runs.len());
    }
    let last = runs.len() - 1;
    for (i, run) in runs.into_iter().enumerate() {
        run_one(run, process, shared, i == last);
    }
}

/// Runs one run of a batch and answers its items; `last` frees the encoder for the next batch.
fn run_one<T, R, F>(batch: Vec<Entry<T, R>>, process: &mut F, shared: &Shared, last: bool)
where
    F: FnMut(&[&T]) -> Result<Vec<R>, String>,
{
    let started = Instant::now();
    let span = tracing::debug_span!("batch", size = batch.len());
    for entry in &batch {
        span.follows_from(entry.span.id());
    }
    let outcome = span.in_scope(|| {
        let items: Vec<&T> = batch.iter().map(|e| &e.item).collect();
        catch_unwind(AssertUnwindSafe(|| process(&items)))
    });
    let run_time = started.elapsed();
    if last {
        shared.in_flight.send_modify(|n| *n -= 1);
    }
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
    shared.wait.batch_ran(size, run_time);
    if let Some(split) = &shared.split {
        split.observe(size, longest, run_time);
    }
    shared.observer.batch_done(BatchStats {
        size,
        padded_tokens: longest * size,
        run_time,
        failed: outputs.is_err(),
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
