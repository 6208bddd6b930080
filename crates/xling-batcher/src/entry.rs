//! What travels from admission to the inference thread and back: one queued item
//! ([`Entry`]) and its answer ([`Done`]). Both `queue` and `worker` use these; neither
//! depends on the other for them.

use std::time::Duration;

use tokio::sync::{oneshot, OwnedSemaphorePermit};
use tokio::time::Instant;
use tracing::Span;

use crate::BatchError;

/// A finished item: its output and where its time went.
#[derive(Debug, Clone, PartialEq)]
pub struct Done<R> {
    pub output: R,
    /// From admission until its batch started running.
    pub queue_wait: Duration,
    /// How long its batch ran.
    pub run_time: Duration,
    pub batch_size: usize,
}

pub(crate) type Reply<R> = oneshot::Sender<Result<Done<R>, BatchError>>;

/// One admitted item waiting for its batch.
pub(crate) struct Entry<T, R> {
    pub item: T,
    pub tokens: usize,
    pub enqueued: Instant,
    pub deadline: Option<Instant>,
    /// How long admission predicted it would take until its run ends (uncorrected), when it
    /// could predict at all.
    pub predicted_wait: Option<Duration>,
    pub reply: Reply<R>,
    pub span: Span,
    /// Its queue slot, given back when its batch starts running.
    pub permit: Option<OwnedSemaphorePermit>,
    /// Submitted to the background lane (see `inbox`).
    pub background: bool,
}
