//! Batching settings, validated once. [`BatchConfig::DEFAULT`] is the one place the defaults
//! live: the server's settings and its `--help` read them from here.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most items in one batch.
    pub max_batch_size: usize,
    /// Longest time the oldest item of a batch opened on an idle encoder waits for company
    /// (the cap in adaptive mode). 0 is work-conserving batching: never wait while the encoder
    /// is idle, and batch whatever queued while it was busy.
    pub max_wait: Duration,
    /// Most items admitted and not yet encoding; beyond it `submit` refuses. By default two full
    /// batches for each instance, at least 64 ([`BatchConfig::queue_capacity_for`]).
    pub queue_capacity: usize,
    /// Longest predicted queue wait a new item may face; beyond it `submit` refuses at once.
    /// 0 turns it off (then only `queue_capacity` and deadlines limit the queue).
    pub max_queue_wait: Duration,
    /// Padded-token budget per batch (longest item x count); 0 turns it off.
    pub max_batch_tokens: usize,
    /// Padded-token budget of a batch of background work (a live index's upserted passages;
    /// at least one item runs whatever its length): a query arriving while one runs waits for
    /// it, so this bounds what writes add to query latency.
    pub max_background_tokens: usize,
    /// Choose the wait from the observed arrival rate and batch cost, up to `max_wait`.
    pub adaptive_wait: bool,
    /// Run a closed batch as length-sorted runs when the padding saved pays for the extra runs.
    pub split_by_length: bool,
    /// With the split: plan each run from this many of the oldest queued queries (0: from the
    /// whole batch), so fewer younger queries overtake an older one (at most N - 1 a run),
    /// which tightens the closed-loop latency tail (docs/batching-study.md, "Where the tail
    /// comes from").
    pub split_window: usize,
}

impl BatchConfig {
    /// The defaults, chosen by the measurements in docs/batching-study.md ("The batcher at the
    /// limit"): work-conserving batching, the largest max batch that helped at saturation on
    /// CPU, and a queue wait budget that keeps overload from turning into timeouts.
    pub const DEFAULT: BatchConfig = BatchConfig {
        max_batch_size: 32,
        max_wait: Duration::ZERO,
        // One instance: twice max_batch_size (see `queue_capacity_for`).
        queue_capacity: 64,
        // Above a closed loop of 64's natural wait on the 2-core CPU (330-540 ms as the shared
        // machine's speed swings): a budget inside that range refused at c=64, and clients that
        // resend at once turned the refusals into a storm that halved goodput. The queue
        // capacity bounds overload's waits on such encoders; the budget bounds slow ones
        // (docs/batching-study.md, "Admission that a closed loop cannot tip over").
        max_queue_wait: Duration::from_millis(1000),
        max_batch_tokens: 0,
        // About one long passage: a few tens of ms of e5-small on 2 CPU cores
        // (docs/live-index.md, "Benchmark").
        max_background_tokens: 512,
        adaptive_wait: false,
        split_by_length: true,
        // Off: a window tightens the saturated tail only by giving up the length split's
        // throughput (docs/batching-study.md, "Where the tail comes from"); a setting for tail-bound
        // deployments.
        split_window: 0,
    };

    /// The default queue capacity: two full batches waiting for each instance, and at least
    /// 64 (a burst or closed loop of 64 clients, ghz's default 50 included, is never refused by
    /// count). Enough for every instance to take a full batch the moment it frees, and it
    /// bounds an accepted query's wait under overload to about what a closed loop of that many
    /// clients sees at saturation, whatever the encoder's speed.
    pub fn queue_capacity_for(max_batch_size: usize, instances: usize) -> usize {
        (2 * max_batch_size * instances.max(1)).max(64)
    }

    /// Whether a batch opened while the encoder is busy stays open until it is free (it could
    /// not start earlier anyway): in adaptive mode, and with no fixed wait.
    pub fn holds_while_busy(&self) -> bool {
        self.adaptive_wait || self.max_wait.is_zero()
    }

    /// Most queries one run holds: `max_batch_size`, or the split window when it is smaller
    /// (a split run is planned from the window; a batch that is not worth splitting still runs
    /// whole, which admission's wait correction then learns).
    pub fn max_run(&self) -> usize {
        match self.split_window {
            w if self.split_by_length && w > 0 => w.min(self.max_batch_size),
            _ => self.max_batch_size,
        }
    }

    /// Checks the settings; the message names the bad one.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=4096).contains(&self.max_batch_size) {
            return Err(format!(
                "max_batch_size = {} is outside 1..=4096",
                self.max_batch_size
            ));
        }
        if self.max_wait > Duration::from_secs(10) {
            return Err(format!(
                "max_wait = {:?} is above 10 s; batching waits are micro- to milliseconds",
                self.max_wait
            ));
        }
        if self.queue_capacity < self.max_batch_size {
            return Err(format!(
                "queue_capacity = {} is below max_batch_size = {}: no batch could fill",
                self.queue_capacity, self.max_batch_size
            ));
        }
        if self.max_background_tokens == 0 {
            return Err(
                "max_background_tokens = 0; it must be at least 1 (one item per \
                        background batch)"
                    .into(),
            );
        }
        if self.max_queue_wait > Duration::from_secs(3600) {
            return Err(format!(
                "max_queue_wait = {:?} is above an hour; use 0 to turn the budget off",
                self.max_queue_wait
            ));
        }
        Ok(())
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_bad_values_are_named() {
        assert_eq!(BatchConfig::default().validate(), Ok(()));
        let bad = |c: BatchConfig| c.validate().unwrap_err();
        let base = BatchConfig::default();
        assert!(bad(BatchConfig {
            max_batch_size: 0,
            ..base.clone()
        })
        .contains("max_batch_size"));
        assert!(bad(BatchConfig {
            max_wait: Duration::from_secs(11),
            ..base.clone()
        })
        .contains("max_wait"));
        assert!(bad(BatchConfig {
            max_queue_wait: Duration::from_secs(3601),
            ..base.clone()
        })
        .contains("max_queue_wait"));
        assert!(bad(BatchConfig {
            queue_capacity: 4,
            ..base
        })
        .contains("queue_capacity"));
    }

    #[test]
    fn runs_hold_at_most_the_split_window() {
        let base = BatchConfig::default();
        assert_eq!(base.max_run(), 32, "no window: the max batch");
        let window = |split_window, split_by_length| BatchConfig {
            split_window,
            split_by_length,
            ..base.clone()
        };
        assert_eq!(window(8, true).max_run(), 8);
        assert_eq!(window(64, true).max_run(), 32);
        assert_eq!(window(8, false).max_run(), 32, "no split, no window");
    }

    #[test]
    fn only_a_fixed_wait_closes_on_its_timer_while_busy() {
        let base = BatchConfig::default();
        assert!(base.holds_while_busy(), "work-conserving by default");
        let fixed = BatchConfig {
            max_wait: Duration::from_millis(2),
            ..base.clone()
        };
        assert!(!fixed.holds_while_busy());
        assert!(BatchConfig {
            adaptive_wait: true,
            ..fixed
        }
        .holds_while_busy());
    }
}
