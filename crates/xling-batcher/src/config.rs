//! Batching settings, validated once.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most items in one batch.
    pub max_batch_size: usize,
    /// Longest time the oldest item of a batch waits for company (the cap in adaptive mode).
    pub max_wait: Duration,
    /// Most items admitted and not yet encoding; beyond it `submit` refuses.
    pub queue_capacity: usize,
    /// Padded-token budget per batch (longest item x count); 0 turns it off.
    pub max_batch_tokens: usize,
    /// Choose the wait from the observed arrival rate and batch cost, up to `max_wait`.
    pub adaptive_wait: bool,
    /// Run a closed batch as length-sorted runs when the padding saved pays for the extra runs.
    pub split_by_length: bool,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch_size: 32,
            max_wait: Duration::from_millis(2),
            queue_capacity: 1024,
            max_batch_tokens: 0,
            adaptive_wait: false,
            split_by_length: true,
        }
    }
}

impl BatchConfig {
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
        Ok(())
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
            queue_capacity: 4,
            ..base
        })
        .contains("queue_capacity"));
    }
}
