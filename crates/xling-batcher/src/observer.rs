//! Events the batcher reports; the server turns them into metrics.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The caller went away before its batch ran.
    Cancelled,
    /// The caller's deadline passed before its batch ran.
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchStats {
    pub size: usize,
    /// Padded tokens: longest item x size.
    pub padded_tokens: usize,
    pub run_time: Duration,
    pub failed: bool,
    /// The encoder instance (0-based) that ran it.
    pub instance: usize,
}

/// Receives batcher events. Called from the batching task and the inference thread, so keep
/// implementations cheap and non-blocking.
pub trait Observer: Send + Sync + 'static {
    fn batch_done(&self, _stats: BatchStats) {}
    /// A closed batch was planned as `runs` (> 1) length-sorted runs: the first runs (reported
    /// by `batch_done`), the others' queries are planned again.
    fn batch_split(&self, _runs: usize) {}
    fn dropped(&self, _reason: DropReason) {}
    fn queue_depth(&self, _depth: usize) {}
    fn wait_chosen(&self, _wait: Duration) {}
    /// Admission's learned ratio of real to predicted time until a query's run ends
    /// (`correction`), after each run that reported one.
    fn wait_ratio(&self, _ratio: f64) {}
}

/// For callers that want no events.
impl Observer for () {}
