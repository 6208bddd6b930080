//! A dynamic batcher: concurrent requests go in one at a time, the inference function sees
//! them in batches.
//!
//! A batch closes when it is full (`max_batch_size` items, or `max_batch_tokens` padded tokens),
//! or, by default, as soon as the encoder is free: it never waits while the encoder is idle and
//! takes whatever queued while it was busy (work-conserving). A fixed `max_wait` or the
//! adaptive wait can make a batch opened on an idle encoder wait for company. Exactly one
//! closed batch waits while the current one runs, so batching overlaps inference. Requests
//! whose caller went away or whose deadline passed are dropped before inference. The queue is
//! bounded: a full queue refuses at once instead of growing, and so does admission when the
//! queue ahead of a query would take the encoder longer than the query's deadline leaves or
//! than the queue wait budget (`max_queue_wait`) allows. A closed batch is planned as
//! length-sorted runs when that saves more padding than it costs; only the run holding the
//! oldest query goes, the rest go back to the queue and are planned again with whatever
//! arrives before the encoder is free. Nothing here knows about gRPC or models.
//!
//! # Layout
//! - [`config`]: [`BatchConfig`], validated settings.
//! - [`queue`]: [`Batcher`]: admission ([`Batcher::submit`]), the batching task, shutdown.
//! - [`entry`]: [`Done`] and the queued item, shared by the queue and the inference thread.
//! - [`inbox`]: the batching task's ends of the query and background lanes.
//! - [`worker`]: the dedicated inference thread that runs the caller's function on each batch.
//! - [`wait`]: how long a batch may wait for more items (none, fixed, or adaptive).
//! - [`split`]: cutting a batch into length-sorted runs when padding costs more than a run.
//! - [`cost`]: the fitted batch cost that the adaptive wait, admission and the split read.
//! - [`correction`]: how far admission's predicted waits fall short of the real ones, learned.
//! - [`observer`]: the hook through which callers see batch and drop events (metrics).

pub mod config;
pub mod correction;
pub mod cost;
pub mod entry;
mod inbox;
pub mod observer;
pub mod queue;
pub mod split;
pub mod wait;
pub mod worker;

pub use config::BatchConfig;
pub use entry::{Done, Ticket};
pub use observer::{BatchStats, DropReason, Observer};
pub use queue::{Batcher, Slot};
pub use split::TimedRun;

/// Why a submitted item got no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("queue is full ({capacity} requests waiting); retry later")]
    QueueFull { capacity: usize },
    #[error("{ahead} queries ahead need about {needed_ms} ms of encoding, more than the deadline leaves")]
    DeadlineUnreachable { ahead: usize, needed_ms: u64 },
    #[error("{ahead} queries ahead need about {needed_ms} ms of encoding, over the queue wait budget of {budget_ms} ms")]
    OverBudget {
        ahead: usize,
        needed_ms: u64,
        budget_ms: u64,
    },
    #[error("deadline passed after {waited_ms} ms in the queue, before encoding")]
    DeadlineExceeded { waited_ms: u64 },
    #[error("server is shutting down")]
    Closed,
    #[error("batch of {batch_size} failed: {reason}")]
    Failed { batch_size: usize, reason: String },
}
