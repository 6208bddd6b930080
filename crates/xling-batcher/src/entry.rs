//! What travels from admission to the inference thread and back: what admission gave a query
//! ([`Admitted`]), one queued item ([`Entry`]), its answer ([`Done`]) and the caller's end of
//! it ([`Ticket`]). Both `queue` and `worker` use these; neither depends on the other for them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
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

/// The result of one submitted item. Dropping it cancels the item if it has not run yet.
pub struct Ticket<R> {
    rx: oneshot::Receiver<Result<Done<R>, BatchError>>,
}

impl<R> Ticket<R> {
    pub(crate) fn new(rx: oneshot::Receiver<Result<Done<R>, BatchError>>) -> Self {
        Ticket { rx }
    }
}

impl<R> Future for Ticket<R> {
    type Output = Result<Done<R>, BatchError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(BatchError::Closed)))
    }
}

/// What admission gave a query (a background item has none).
pub(crate) struct Admitted {
    pub deadline: Option<Instant>,
    pub predicted_wait: Option<Duration>,
    pub permit: OwnedSemaphorePermit,
}

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
