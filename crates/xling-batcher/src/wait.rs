//! How long a new batch may wait for more items.
//!
//! Fixed mode always waits `max_wait`. Adaptive mode (`adaptive_wait`) weighs what waiting buys
//! against what it costs, from two running estimates:
//! - the arrival rate `λ` (exponentially weighted mean gap between submissions), and
//! - the batch cost model `run(b) = fixed + per_item * b` (exponentially forgetting least
//!   squares over the batches the inference thread ran).
//!
//! Waiting only pays when the encoder is nearly busy: if unbatched requests would keep it
//! busy less than half the time (`λ * run(1) < 0.5`), queueing is rare and any wait is pure
//! latency, so the wait is 0. Otherwise a batch waits up to one `fixed` cost (capped by
//! `max_wait`): the time in which the per-batch overhead it saves would have been spent anyway.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Weight of the newest observation in the running means.
const ALPHA: f64 = 0.05;
/// Forgetting factor of the cost regression per batch.
const FORGET: f64 = 0.98;
/// Utilization of unbatched service below which waiting is not worth it.
const BUSY: f64 = 0.5;

pub struct WaitPolicy {
    max_wait: Duration,
    adaptive: bool,
    state: Mutex<Estimates>,
}

#[derive(Default)]
struct Estimates {
    last_arrival: Option<Instant>,
    mean_gap_s: Option<f64>,
    // Decayed sums for the least-squares fit of run time (s) on batch size.
    n: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
}

impl WaitPolicy {
    pub fn new(max_wait: Duration, adaptive: bool) -> Self {
        WaitPolicy {
            max_wait,
            adaptive,
            state: Mutex::new(Estimates::default()),
        }
    }

    pub fn arrival(&self) {
        if self.adaptive {
            self.lock().arrival(Instant::now());
        }
    }

    pub fn batch_ran(&self, size: usize, run_time: Duration) {
        if self.adaptive {
            self.lock().batch_ran(size as f64, run_time.as_secs_f64());
        }
    }

    pub fn current(&self) -> Duration {
        if !self.adaptive {
            return self.max_wait;
        }
        match self.lock().suggested_wait_s() {
            Some(s) => Duration::from_secs_f64(s).min(self.max_wait),
            None => Duration::ZERO,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Estimates> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Estimates {
    fn arrival(&mut self, now: Instant) {
        if let Some(last) = self.last_arrival {
            let gap = now.duration_since(last).as_secs_f64();
            self.mean_gap_s = Some(match self.mean_gap_s {
                Some(mean) => mean + ALPHA * (gap - mean),
                None => gap,
            });
        }
        self.last_arrival = Some(now);
    }

    fn batch_ran(&mut self, x: f64, y: f64) {
        self.n = self.n * FORGET + 1.0;
        self.sx = self.sx * FORGET + x;
        self.sy = self.sy * FORGET + y;
        self.sxx = self.sxx * FORGET + x * x;
        self.sxy = self.sxy * FORGET + x * y;
    }

    /// `(fixed, per_item)` seconds; with one distinct batch size seen, all cost counts as fixed.
    fn cost_model(&self) -> Option<(f64, f64)> {
        if self.n < 1.0 {
            return None;
        }
        let mean_x = self.sx / self.n;
        let mean_y = self.sy / self.n;
        let var = self.sxx / self.n - mean_x * mean_x;
        if var < 1e-9 {
            // One batch size seen so far: split its cost evenly between fixed and per item.
            return Some((mean_y / 2.0, mean_y / (2.0 * mean_x.max(1.0))));
        }
        let slope = ((self.sxy / self.n - mean_x * mean_y) / var).max(0.0);
        let fixed = (mean_y - slope * mean_x).max(0.0);
        Some((fixed, slope))
    }

    fn suggested_wait_s(&self) -> Option<f64> {
        let gap = self.mean_gap_s?;
        let (fixed, per_item) = self.cost_model()?;
        let utilization = (fixed + per_item) / gap.max(1e-9);
        (utilization >= BUSY).then_some(fixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(est: &mut Estimates, gap: Duration, arrivals: usize, batches: &[(f64, f64)]) {
        let start = Instant::now();
        for i in 0..arrivals {
            est.arrival(start + gap * i as u32);
        }
        for &(size, secs) in batches {
            est.batch_ran(size, secs);
        }
    }

    #[test]
    fn fixed_mode_always_waits_max() {
        let policy = WaitPolicy::new(Duration::from_millis(3), false);
        policy.batch_ran(1, Duration::from_millis(10));
        assert_eq!(policy.current(), Duration::from_millis(3));
    }

    #[test]
    fn light_load_waits_nothing() {
        // 10 ms per batch of 1, a request every 100 ms: 10% busy.
        let mut est = Estimates::default();
        feed(
            &mut est,
            Duration::from_millis(100),
            50,
            &[(1.0, 0.010), (2.0, 0.012)],
        );
        assert_eq!(est.suggested_wait_s(), None);
    }

    #[test]
    fn heavy_load_waits_about_the_fixed_cost() {
        // run(b) = 8 ms + 1 ms * b; a request every 5 ms keeps unbatched service 180% busy.
        let mut est = Estimates::default();
        let batches: Vec<(f64, f64)> = (1..=8)
            .map(|b| (b as f64, 0.008 + 0.001 * b as f64))
            .collect();
        feed(&mut est, Duration::from_millis(5), 50, &batches);
        let (fixed, per_item) = est.cost_model().unwrap();
        assert!((fixed - 0.008).abs() < 1e-6 && (per_item - 0.001).abs() < 1e-6);
        let wait = est.suggested_wait_s().unwrap();
        assert!((wait - 0.008).abs() < 1e-6, "{wait}");
        let policy = WaitPolicy::new(Duration::from_millis(2), true);
        *policy.lock() = est;
        assert_eq!(
            policy.current(),
            Duration::from_millis(2),
            "capped by max_wait"
        );
    }
}
