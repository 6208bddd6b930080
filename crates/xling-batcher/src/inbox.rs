//! The batching task's ends of the two lanes: queries, and background work (a live index's
//! upserted passages). A batch holds items of one lane only: background items are long
//! passages, and a query batched with them would pay their padding and their run time. An item
//! that did not fit the batch being formed is held back and opens a later batch, ahead of the
//! rest of its lane (and a held background item still yields to any query); so do the queries
//! of a planned batch's later runs ([`Inbox::defer`]).

use std::collections::VecDeque;

use tokio::sync::mpsc::{self, error::TryRecvError};

use crate::entry::Entry;

pub(crate) struct Inbox<T, R> {
    queries: mpsc::UnboundedReceiver<Entry<T, R>>,
    background: mpsc::UnboundedReceiver<Entry<T, R>>,
    /// Queries taken off the channel and put back, oldest first.
    held_query: VecDeque<Entry<T, R>>,
    held_background: Option<Entry<T, R>>,
}

impl<T, R> Inbox<T, R> {
    pub fn new(
        queries: mpsc::UnboundedReceiver<Entry<T, R>>,
        background: mpsc::UnboundedReceiver<Entry<T, R>>,
    ) -> Self {
        Inbox {
            queries,
            background,
            held_query: VecDeque::new(),
            held_background: None,
        }
    }

    /// The item that opens the next batch, a query whenever one waits; `None` once both lanes
    /// are closed and empty.
    pub async fn first(&mut self) -> Option<Entry<T, R>> {
        if let Some(entry) = self.held_query.pop_front() {
            return Some(entry);
        }
        if let Ok(entry) = self.queries.try_recv() {
            return Some(entry);
        }
        if let Some(entry) = self.held_background.take() {
            return Some(entry);
        }
        tokio::select! {
            biased;
            Some(entry) = self.queries.recv() => Some(entry),
            Some(entry) = self.background.recv() => Some(entry),
            else => None,
        }
    }

    /// A waiting item of one lane, without waiting.
    pub fn try_next(&mut self, background: bool) -> Result<Entry<T, R>, TryRecvError> {
        match background {
            true => self.background.try_recv(),
            false => match self.held_query.pop_front() {
                Some(entry) => Ok(entry),
                None => self.queries.try_recv(),
            },
        }
    }

    /// The next query, waiting for it; `None` once the query lane is closed and empty.
    pub async fn next_query(&mut self) -> Option<Entry<T, R>> {
        self.queries.recv().await
    }

    /// Keeps `entry` to open a later batch of its lane.
    pub fn hold_back(&mut self, entry: Entry<T, R>) {
        match entry.background {
            true => self.held_background = Some(entry),
            false => self.held_query.push_front(entry),
        }
    }

    /// Puts back queries taken for a batch but not run in it: they open the next batches,
    /// oldest first, ahead of anything still on the channel (which arrived after them).
    pub fn defer(&mut self, queries: impl IntoIterator<Item = Entry<T, R>>) {
        self.held_query.extend(queries);
        self.held_query
            .make_contiguous()
            .sort_by_key(|entry| entry.enqueued);
    }
}
