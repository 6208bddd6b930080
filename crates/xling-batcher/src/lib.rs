//! A dynamic batcher: concurrent requests go in one at a time, the inference function sees
//! them in batches.
//!
//! A batch closes when it is full (`max_batch_size` items, or `max_batch_tokens` padded tokens)
//! or when its oldest item has waited `max_wait`. Exactly one closed batch waits while the
//! current one runs, so batching overlaps inference. Requests whose caller went away or whose
//! deadline passed are dropped before inference. The queue is bounded: a full queue refuses at
//! once instead of growing, and so does admission when the queue ahead of a query would take
//! the encoder longer than the query's deadline leaves. A closed batch may run as several
//! length-sorted runs when that saves more padding than it costs. Nothing here knows about
//! gRPC or models.
//!
//! # Layout
//! - [`config`]: [`BatchConfig`], validated settings.
//! - [`queue`]: [`Batcher`]: admission ([`Batcher::submit`]), the batching task, shutdown.
//! - [`entry`]: [`Done`] and the queued item, shared by the queue and the inference thread.
//! - [`worker`]: the dedicated inference thread that runs the caller's function on each batch.
//! - [`wait`]: how long a batch may wait for more items (fixed, or adaptive).
//! - [`split`]: cutting a batch into length-sorted runs when padding costs more than a run.
//! - [`cost`]: the fitted batch cost that the adaptive wait, admission and the split read.
//! - [`observer`]: the hook through which callers see batch and drop events (metrics).

pub mod config;
pub mod cost;
pub mod entry;
pub mod observer;
pub mod queue;
pub mod split;
pub mod wait;
pub mod worker;

pub use config::BatchConfig;
pub use entry::Done;
pub use observer::{BatchStats, DropReason, Observer};
pub use queue::{Batcher, Ticket};
pub use split::TimedRun;

/// Why a submitted item got no result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("queue is full ({capacity} requests waiting); retry later")]
    QueueFull { capacity: usize },
    #[error("{ahead} queries ahead need about {needed_ms} ms of encoding, more than the deadline leaves")]
    DeadlineUnreachable { ahead: usize, needed_ms: u64 },
    #[error("deadline passed after {waited_ms} ms in the queue, before encoding")]
    DeadlineExceeded { waited_ms: u64 },
    #[error("server is shutting down")]
    Closed,
    #[error("batch of {batch_size} failed: {reason}")]
    Failed { batch_size: usize, reason: String },
}
