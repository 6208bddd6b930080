//! Admission and batch formation.
//!
//! `submit` takes a queue slot (a semaphore permit) or refuses at once; the item then travels
//! an unbounded channel (bounded in effect by the permits) to the batching task. The task
//! reserves the single slot of the channel to the inference thread *before* it starts a batch,
//! so exactly one closed batch waits while another runs. A slot is given back when the item's
//! batch starts running, so "queue depth" means admitted and not yet encoding. A batch opened
//! while the encoder is busy stays open until it is free (work-conserving with no fixed wait,
//! and in adaptive mode; see `wait`): it could not start earlier anyway. Admission refuses at
//! once what the fitted cost predicts would wait past the query's deadline or past the queue
//! wait budget, so that overload turns into fast refusals instead of timeouts.
//!
//! Background work (a live index's upserted passages) goes in a second, low-priority lane
//! ([`Batcher::submit_background`]): its batches never mix with queries, start only when no
//! query waits and an encoder instance is free, and hold at most `max_background_tokens`
//! padded tokens, so a query that arrives meanwhile waits for one short slice at most.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;
use tracing::Span;

use crate::correction::WaitCorrection;
use crate::cost::CostModel;
use crate::entry::{Admitted, Entry, Ticket};
use crate::inbox::Inbox;
use crate::split::{LengthSplit, TimedRun};
use crate::wait::WaitPolicy;
use crate::{worker, BatchConfig, BatchError, DropReason, Observer};

/// An admitted query's place in the queue ([`Batcher::reserve`]), held while the caller
/// prepares the item; dropping it gives the place back.
pub struct Slot<'a, T, R> {
    batcher: &'a Batcher<T, R>,
    admitted: Admitted,
}

impl<T: Send + 'static, R: Send + 'static> Slot<'_, T, R> {
    /// Queues `item`, costing `tokens`; fails only when the batcher shut down meanwhile.
    pub fn submit(self, item: T, tokens: usize) -> Result<Ticket<R>, BatchError> {
        let ticket = self.batcher.enqueue(item, tokens, Some(self.admitted))?;
        self.batcher.observer.queue_depth(self.batcher.depth());
        Ok(ticket)
    }
}

/// The two ways into the batching task: queries, and background work taken only when no
/// query waits. Dropped together at shutdown.
struct Lanes<T, R> {
    queries: mpsc::UnboundedSender<Entry<T, R>>,
    background: mpsc::UnboundedSender<Entry<T, R>>,
}

pub struct Batcher<T, R> {
    tx: Mutex<Option<Lanes<T, R>>>,
    permits: Arc<Semaphore>,
    capacity: usize,
    /// Most queries one run holds: the max batch, or the split window when smaller. Admission
    /// predicts the queue ahead in runs of this size.
    max_run: usize,
    max_queue_wait: Duration,
    running: Arc<Running>,
    cost: Arc<CostModel>,
    /// How far predicted queue waits fell short of real ones; scales admission's predictions.
    correction: Arc<WaitCorrection>,
    split: Option<Arc<LengthSplit>>,
    observer: Arc<dyn Observer>,
    finished: tokio::sync::Mutex<Option<oneshot::Receiver<()>>>,
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts the batching task (on the current tokio runtime) and the inference thread, which
    /// calls `process` once per batch. `process` returns one output per item, in order; an
    /// error or a panic fails that batch only.
    pub fn start<F>(config: BatchConfig, observer: Arc<dyn Observer>, process: F) -> Self
    where
        F: FnMut(&[&T]) -> Result<Vec<R>, String> + Send + 'static,
    {
        Batcher::start_pool(config, observer, vec![process])
    }

    /// Like [`Batcher::start`] with one inference thread per function of `processes` (at
    /// least one): encoder instances, each batch run by whichever is free (see `worker`).
    pub fn start_pool<F>(
        config: BatchConfig,
        observer: Arc<dyn Observer>,
        processes: Vec<F>,
    ) -> Self
    where
        F: FnMut(&[&T]) -> Result<Vec<R>, String> + Send + 'static,
    {
        assert!(
            !processes.is_empty(),
            "a batcher needs at least one instance"
        );
        let instances = processes.len();
        let (tx, rx) = mpsc::unbounded_channel();
        let (low_tx, low_rx) = mpsc::unbounded_channel();
        let (batch_tx, batch_rx) = mpsc::channel(1);
        let (finished_tx, finished_rx) = oneshot::channel();
        let permits = Arc::new(Semaphore::new(config.queue_capacity));
        let wait = Arc::new(WaitPolicy::new(config.max_wait, config.adaptive_wait));
        observer.wait_chosen(wait.current());
        // Batches handed to the inference threads and not yet run: below `instances` means an
        // instance is free.
        let in_flight = Arc::new(watch::Sender::new(0usize));
        let running = Arc::new(Running {
            in_flight: in_flight.subscribe(),
            instances,
            last: Mutex::new((0, Instant::now())),
        });
        let split = config.split_by_length.then(Arc::<LengthSplit>::default);
        let correction = Arc::<WaitCorrection>::default();
        worker::spawn(
            batch_rx,
            processes,
            worker::Shared {
                observer: observer.clone(),
                permits: permits.clone(),
                capacity: config.queue_capacity,
                wait: wait.clone(),
                split: split.clone(),
                in_flight: in_flight.clone(),
                correction: correction.clone(),
            },
            finished_tx,
        );
        tokio::spawn(batching_task(
            Inbox::new(rx, low_rx),
            batch_tx,
            config.clone(),
            Formation {
                wait: wait.clone(),
                split: split.clone(),
                split_window: config.split_window,
            },
            observer.clone(),
            in_flight,
            running.clone(),
        ));
        Batcher {
            tx: Mutex::new(Some(Lanes {
                queries: tx,
                background: low_tx,
            })),
            permits,
            capacity: config.queue_capacity,
            max_run: config.max_run(),
            max_queue_wait: config.max_queue_wait,
            running,
            cost: wait.cost(),
            correction,
            split,
            observer,
            finished: tokio::sync::Mutex::new(Some(finished_rx)),
        }
    }

    /// Admits one item costing `tokens`, or refuses at once when the queue is full or closed,
    /// or when the queries ahead would take the encoder past `deadline` or past the queue wait
    /// budget (`max_queue_wait`).
    pub fn submit(
        &self,
        item: T,
        tokens: usize,
        deadline: Option<Instant>,
    ) -> Result<Ticket<R>, BatchError> {
        self.reserve(deadline)?.submit(item, tokens)
    }

    /// Admission alone, before the item exists: a queue slot, or the refusal `submit` would
    /// give. The server reserves before it tokenizes, so a refusal costs no tokenizing (most
    /// of a refused request's CPU, which under a storm of refusals is taken from the encoder).
    pub fn reserve(&self, deadline: Option<Instant>) -> Result<Slot<'_, T, R>, BatchError> {
        if self.tx.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
            return Err(BatchError::Closed);
        }
        let predicted_wait = self.check_reachable(deadline)?;
        let permit =
            self.permits
                .clone()
                .try_acquire_owned()
                .map_err(|_| BatchError::QueueFull {
                    capacity: self.capacity,
                })?;
        Ok(Slot {
            batcher: self,
            admitted: Admitted {
                deadline,
                predicted_wait,
                permit,
            },
        })
    }

    /// Admits one background item in the low-priority lane: it runs only in batches formed
    /// while no query waits, takes no queue slot and is never refused for load (the caller
    /// bounds how many it submits). Fails only once shut down.
    pub fn submit_background(&self, item: T, tokens: usize) -> Result<Ticket<R>, BatchError> {
        self.enqueue(item, tokens, None)
    }

    /// Sends an item to the batching task: an admitted query in the query lane, anything else
    /// in the background lane.
    fn enqueue(
        &self,
        item: T,
        tokens: usize,
        admitted: Option<Admitted>,
    ) -> Result<Ticket<R>, BatchError> {
        let guard = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let lanes = guard.as_ref().ok_or(BatchError::Closed)?;
        let background = admitted.is_none();
        let tx = if background {
            &lanes.background
        } else {
            &lanes.queries
        };
        let (reply, rx) = oneshot::channel();
        let entry = Entry {
            item,
            tokens,
            enqueued: Instant::now(),
            deadline: admitted.as_ref().and_then(|a| a.deadline),
            predicted_wait: admitted.as_ref().and_then(|a| a.predicted_wait),
            reply,
            span: Span::current(),
            permit: admitted.map(|a| a.permit),
            background,
        };
        tx.send(entry).map_err(|_| BatchError::Closed)?;
        Ok(Ticket::new(rx))
    }

    /// Refuses now what would otherwise wait out its deadline (or the budget) in the queue:
    /// under overload a big queue turns into timeouts, and the encoder's work on them is
    /// wasted. The prediction: what is left of the running batch, then the queries ahead and
    /// this one in full batches, scaled by how far such predictions fell short of the waits
    /// queries then saw (`correction`). Returns the unscaled prediction, which the inference
    /// thread compares with the real wait.
    fn check_reachable(&self, deadline: Option<Instant>) -> Result<Option<Duration>, BatchError> {
        let budget = (!self.max_queue_wait.is_zero()).then_some(self.max_queue_wait);
        if deadline.is_none() && budget.is_none() {
            return Ok(None);
        }
        let ahead = self.depth();
        let Some(queued) = self.cost.time_to_run(ahead + 1, self.max_run) else {
            return Ok(None);
        };
        // Instances run batches side by side; the fit is of one instance's (contended) runs.
        let queued = queued / self.running.instances as u32;
        let predicted = queued + self.running.left(&self.cost, self.max_run);
        let needed = self.correction.apply(predicted);
        let needed_ms = needed.as_millis() as u64;
        if let Some(budget) = budget.filter(|&b| needed > b) {
            return Err(BatchError::OverBudget {
                ahead,
                needed_ms,
                budget_ms: budget.as_millis() as u64,
            });
        }
        if deadline.is_some_and(|d| Instant::now() + needed > d) {
            return Err(BatchError::DeadlineUnreachable { ahead, needed_ms });
        }
        Ok(Some(predicted))
    }

    /// Encoder runs timed before serving (shapes the live load may never show), so the length
    /// split knows the per-token cost from the start. Ignored when the split is off.
    pub fn calibrate(&self, runs: &[TimedRun]) {
        if let Some(split) = &self.split {
            runs.iter().for_each(|&run| split.prime(run));
        }
    }

    /// Items admitted and not yet running.
    pub fn depth(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }

    /// Stops admitting, runs everything already admitted, and returns once the inference
    /// thread has answered the last item.
    pub async fn shutdown(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(finished) = self.finished.lock().await.take() {
            let _ = finished.await;
        }
    }
}

/// What shapes a batch besides the config: the wait policy, and the length split (when on).
struct Formation {
    wait: Arc<WaitPolicy>,
    split: Option<Arc<LengthSplit>>,
    split_window: usize,
}

async fn batching_task<T, R>(
    mut rx: Inbox<T, R>,
    batches: mpsc::Sender<Vec<Entry<T, R>>>,
    config: BatchConfig,
    formation: Formation,
    observer: Arc<dyn Observer>,
    in_flight: Arc<watch::Sender<usize>>,
    sent: Arc<Running>,
) {
    let Formation {
        wait,
        split,
        split_window,
    } = formation;
    let instances = sent.instances;
    let mut running = in_flight.subscribe();
    // When a batch opened on an idle encoder closed alone: its first item's arrival, so the
    // next arrival tells the wait policy how soon a partner came.
    let mut alone: Option<Instant> = None;
    loop {
        // Wait for the inference thread to take the previous batch before forming the next.
        let Ok(slot) = batches.reserve().await else {
            return;
        };
        let Some(mut first) = rx.first().await else {
            return;
        };
        if first.background && *running.borrow() >= instances {
            // Background work starts only on a free instance; a query arriving first goes first.
            tokio::select! {
                biased;
                Some(query) = rx.next_query() => rx.hold_back(std::mem::replace(&mut first, query)),
                _ = running.wait_for(|&n| n < instances) => {}
            }
        }
        let batch = if first.background {
            background_batch(first, &mut rx, &config)
        } else {
            if let Some(t0) = alone.take() {
                wait.idle_gap(first.enqueued.duration_since(t0));
            }
            // Every instance busy (and no fixed wait to honour): no timer; collect until one is
            // free.
            let hold = config.holds_while_busy() && *running.borrow() >= instances;
            let max_wait = if hold { Duration::ZERO } else { wait.current() };
            observer.wait_chosen(max_wait);
            let close_at = first.enqueued + max_wait;
            let mut batch = vec![first];
            while batch.len() < config.max_batch_size {
                let next = match rx.try_next(false) {
                    Ok(entry) => entry,
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        let busy = hold && *running.borrow() >= instances;
                        if !busy && Instant::now() >= close_at {
                            break;
                        }
                        tokio::select! {
                            entry = rx.next_query() => match entry {
                                Some(entry) => entry,
                                None => break,
                            },
                            _ = tokio::time::sleep_until(close_at), if !hold => break,
                            _ = running.wait_for(|&n| n < instances), if busy => continue,
                        }
                    }
                };
                if fits(&batch, &next, config.max_batch_tokens) {
                    batch.push(next);
                } else {
                    rx.hold_back(next);
                    break;
                }
            }
            if config.adaptive_wait && !hold {
                match batch.get(1) {
                    Some(second) => {
                        wait.idle_gap(second.enqueued.duration_since(batch[0].enqueued))
                    }
                    None => alone = Some(batch[0].enqueued),
                }
            }
            batch
        };
        let mut live = retain_live(batch, observer.as_ref());
        if let Some(split) = split
            .as_ref()
            .filter(|_| !live.is_empty() && !live[0].background)
        {
            live = first_run(split, live, split_window, &mut rx, observer.as_ref());
        }
        if !live.is_empty() {
            sent.started(live.len());
            in_flight.send_modify(|n| *n += 1);
            slot.send(live);
        }
    }
}

/// Plans `batch` as length-sorted runs (see `split`) and returns the first (the one holding
/// the oldest query, planned from the `window` oldest); the other queries go back to the front
/// of the queue. The next run is planned again when an instance is free, from them and
/// whatever arrived meanwhile: a query that just missed this batch is weighed against them by
/// age instead of waiting for every run planned now (which, in a closed loop, made the latency
/// tail: docs/batching-study.md).
fn first_run<T, R>(
    split: &LengthSplit,
    batch: Vec<Entry<T, R>>,
    window: usize,
    rx: &mut Inbox<T, R>,
    observer: &dyn Observer,
) -> Vec<Entry<T, R>> {
    let plan = split.first_run(batch, |e| e.tokens, window);
    if plan.planned > 1 {
        observer.batch_split(plan.planned);
    }
    if !plan.later.is_empty() {
        rx.defer(plan.later);
    }
    plan.run
}

/// The batch handed to an encoder instance last, which admission counts as running while
/// every instance is busy.
struct Running {
    in_flight: watch::Receiver<usize>,
    instances: usize,
    /// Its size and when it was handed over.
    last: Mutex<(usize, Instant)>,
}

impl Running {
    fn started(&self, size: usize) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = (size, Instant::now());
    }

    /// What the fit says is left of the running batch (none when an instance is free).
    fn left(&self, cost: &CostModel, max_batch: usize) -> Duration {
        if *self.in_flight.borrow() < self.instances {
            return Duration::ZERO;
        }
        let (size, since) = *self.last.lock().unwrap_or_else(|e| e.into_inner());
        let whole = cost.time_to_run(size, max_batch).unwrap_or_default();
        whole.saturating_sub(since.elapsed())
    }
}

/// A batch of background items from `first` on, without waiting: as many as fit
/// `max_background_tokens` (at least one) and `max_batch_size`.
fn background_batch<T, R>(
    first: Entry<T, R>,
    rx: &mut Inbox<T, R>,
    config: &BatchConfig,
) -> Vec<Entry<T, R>> {
    let mut batch = vec![first];
    while batch.len() < config.max_batch_size {
        let Ok(next) = rx.try_next(true) else {
            break;
        };
        if fits(&batch, &next, config.max_background_tokens) {
            batch.push(next);
        } else {
            rx.hold_back(next);
            break;
        }
    }
    batch
}

/// Whether `next` joins without the padded cost (longest x count) passing the budget.
fn fits<T, R>(batch: &[Entry<T, R>], next: &Entry<T, R>, budget: usize) -> bool {
    if budget == 0 {
        return true;
    }
    let longest = batch
        .iter()
        .map(|e| e.tokens)
        .max()
        .unwrap_or(0)
        .max(next.tokens);
    longest * (batch.len() + 1) <= budget
}

/// Drops items whose caller went away and fails those whose deadline passed.
pub(crate) fn retain_live<T, R>(
    batch: Vec<Entry<T, R>>,
    observer: &dyn Observer,
) -> Vec<Entry<T, R>> {
    let now = Instant::now();
    batch
        .into_iter()
        .filter_map(|entry| {
            // Deadline first: a caller that gave up because its deadline passed counts as
            // expired, not cancelled.
            if entry.deadline.is_some_and(|d| d <= now) {
                observer.dropped(DropReason::Expired);
                let waited_ms = now.duration_since(entry.enqueued).as_millis() as u64;
                let _ = entry
                    .reply
                    .send(Err(BatchError::DeadlineExceeded { waited_ms }));
                return None;
            }
            if entry.reply.is_closed() {
                observer.dropped(DropReason::Cancelled);
                return None;
            }
            Some(entry)
        })
        .collect()
}
