//! How far admission's predicted queue waits fall short of the waits queries then see.
//!
//! Admission predicts a query's wait from the fitted batch cost: what is left of the running
//! batch, then the queries ahead in full batches. Real runs are not full (the split cuts them,
//! deadlines and departures thin them) and have gaps between them, so the prediction
//! undershoots under load: on the 2-core CPU, accepted queries waited about 3x the queue wait
//! budget at p99 (docs/batching-study.md, issue 16). Each run reports, for its queries, the time
//! from admission to the run's end against what was predicted, and admission scales its next
//! predictions by the running ratio, so the budget bounds the waits queries actually get.

use std::sync::Mutex;
use std::time::Duration;

/// Predictions shorter than this are mostly noise (an idle encoder, one query ahead).
const MIN_PREDICTED: Duration = Duration::from_millis(2);
/// Weight of each run's mean ratio in the running one.
const ALPHA: f64 = 0.1;
/// The ratio stays within this range, so one odd run (a stalled machine) cannot make
/// admission refuse everything or trust the fit blindly.
const MIN_RATIO: f64 = 0.5;
const MAX_RATIO: f64 = 8.0;

/// The running ratio of seen to predicted queue wait (geometric mean over runs, decayed).
#[derive(Debug)]
pub struct WaitCorrection {
    /// Natural log of the ratio: averaging logs keeps one long wait from dominating.
    log_ratio: Mutex<f64>,
}

impl Default for WaitCorrection {
    fn default() -> Self {
        WaitCorrection {
            log_ratio: Mutex::new(0.0),
        }
    }
}

impl WaitCorrection {
    /// One run's queries: (predicted at admission, seen from admission to the run's end).
    /// Returns whether any of them counted (the ratio may have changed).
    pub fn observe(&self, waits: impl IntoIterator<Item = (Duration, Duration)>) -> bool {
        let (mut sum, mut n) = (0.0, 0u32);
        for (predicted, waited) in waits {
            if predicted >= MIN_PREDICTED {
                let ratio = waited.as_secs_f64().max(1e-6) / predicted.as_secs_f64();
                sum += ratio.clamp(MIN_RATIO, MAX_RATIO).ln();
                n += 1;
            }
        }
        if n > 0 {
            let mut log_ratio = self.log_ratio.lock().unwrap_or_else(|e| e.into_inner());
            *log_ratio += ALPHA * (sum / f64::from(n) - *log_ratio);
        }
        n > 0
    }

    /// The current ratio of seen to predicted wait.
    pub fn ratio(&self) -> f64 {
        self.log_ratio
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .exp()
    }

    /// `predicted` scaled by the ratio seen so far.
    pub fn apply(&self, predicted: Duration) -> Duration {
        predicted.mul_f64(self.ratio())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn starts_neutral_and_learns_a_steady_undershoot() {
        let c = WaitCorrection::default();
        assert_eq!(c.apply(MS(100)), MS(100));
        for _ in 0..100 {
            c.observe([(MS(100), MS(300)), (MS(50), MS(150))]);
        }
        assert!((c.ratio() - 3.0).abs() < 0.01, "{}", c.ratio());
        assert!((c.apply(MS(100)).as_secs_f64() - 0.3).abs() < 0.001);
    }

    #[test]
    fn tiny_predictions_are_ignored_and_extremes_are_bounded() {
        let c = WaitCorrection::default();
        assert!(!c.observe([(MS(1), MS(500))]));
        assert_eq!(c.ratio(), 1.0, "a 1 ms prediction says nothing");
        for _ in 0..500 {
            c.observe([(MS(10), MS(10_000))]);
        }
        assert!((c.ratio() - MAX_RATIO).abs() < 0.01, "{}", c.ratio());
        for _ in 0..500 {
            c.observe([(MS(100), Duration::ZERO)]);
        }
        assert!((c.ratio() - MIN_RATIO).abs() < 0.01, "{}", c.ratio());
    }

    #[test]
    fn one_odd_run_moves_the_ratio_only_a_little() {
        let c = WaitCorrection::default();
        c.observe([(MS(100), MS(800))]);
        assert!(c.ratio() < 1.3, "{}", c.ratio());
    }
}
