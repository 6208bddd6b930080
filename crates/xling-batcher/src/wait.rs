//! How long a new batch may wait for more items.
//!
//! Fixed mode always waits `max_wait`. Adaptive mode (`adaptive_wait`) follows two rules:
//!
//! 1. **Encoder busy: no wait, but the batch stays open.** While a batch runs, arrivals pile up
//!    anyway, so the next batch collects them until the encoder is free (or it is full) and
//!    then closes at once. Holding it costs nothing: it could not have started earlier.
//! 2. **Encoder idle: wait only on evidence that a partner comes soon.** With
//!    `run(b) = fixed + per_item * b` fitted over the batches run (least squares, forgetting
//!    old batches): if the first item runs alone, a second arriving `g` later waits for it
//!    and answers after `2 * run(1) - g`; waiting `w` for it answers both after at most
//!    `w + run(2)`. With `w = fixed / 2`, waiting wins exactly when `g < fixed / 2`. So the
//!    window is `w = min(max_wait, fixed / 2)`, and the batch waits `w` only if, after most
//!    recent idle starts (running mean of hits >= 1/2), the next item arrived within `w`.
//!
//! The evidence is the gap from the first item of an idle-started batch to the next arrival,
//! not the mean gap between arrivals: in a closed loop the next request is only sent after the
//! answer, so its gap includes the wait and the run itself and never falls inside the window
//! (the old rate-based rule kept waiting there: with one client the mean gap is about
//! `run(1)`, so the encoder looked nearly busy). Open-loop arrivals do not depend on the
//! answer, so their gaps show the real rate.

use std::sync::Mutex;
use std::time::Duration;

/// Weight of the newest idle start in the hit rate.
const ALPHA: f64 = 0.1;
/// Forgetting factor of the cost regression per batch.
const FORGET: f64 = 0.98;
/// Share of idle starts that must have found a partner within the window.
const HIT_RATE: f64 = 0.5;

pub struct WaitPolicy {
    max_wait: Duration,
    adaptive: bool,
    state: Mutex<Estimates>,
}

#[derive(Default)]
struct Estimates {
    /// Running mean of "the next item came within the window" over idle starts.
    hit_rate: Option<f64>,
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

    /// A batch opened on an idle encoder, and the next item arrived `gap` after its first.
    pub fn idle_gap(&self, gap: Duration) {
        if self.adaptive {
            let mut est = self.lock();
            if let Some(window) = est.window_s(self.max_wait) {
                est.idle_gap(gap.as_secs_f64(), window);
            }
        }
    }

    pub fn batch_ran(&self, size: usize, run_time: Duration) {
        if self.adaptive {
            self.lock().batch_ran(size as f64, run_time.as_secs_f64());
        }
    }

    /// The wait of a batch that opens on an idle encoder.
    pub fn current(&self) -> Duration {
        if !self.adaptive {
            return self.max_wait;
        }
        let est = self.lock();
        match (est.hit_rate, est.window_s(self.max_wait)) {
            (Some(hits), Some(window)) if hits >= HIT_RATE => Duration::from_secs_f64(window),
            _ => Duration::ZERO,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Estimates> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Estimates {
    fn idle_gap(&mut self, gap_s: f64, window_s: f64) {
        let hit = if gap_s <= window_s { 1.0 } else { 0.0 };
        self.hit_rate = Some(match self.hit_rate {
            Some(rate) => rate + ALPHA * (hit - rate),
            None => hit,
        });
    }

    fn batch_ran(&mut self, x: f64, y: f64) {
        self.n = self.n * FORGET + 1.0;
        self.sx = self.sx * FORGET + x;
        self.sy = self.sy * FORGET + y;
        self.sxx = self.sxx * FORGET + x * x;
        self.sxy = self.sxy * FORGET + x * y;
    }

    /// `(fixed, per_item)` seconds; with one distinct batch size seen, the cost is split evenly.
    fn cost_model(&self) -> Option<(f64, f64)> {
        if self.n < 1.0 {
            return None;
        }
        let mean_x = self.sx / self.n;
        let mean_y = self.sy / self.n;
        let var = self.sxx / self.n - mean_x * mean_x;
        if var < 1e-9 {
            return Some((mean_y / 2.0, mean_y / (2.0 * mean_x.max(1.0))));
        }
        let slope = ((self.sxy / self.n - mean_x * mean_y) / var).max(0.0);
        let fixed = (mean_y - slope * mean_x).max(0.0);
        Some((fixed, slope))
    }

    /// How long a partner may take and still pay for waiting: `min(max_wait, fixed / 2)`.
    fn window_s(&self, max_wait: Duration) -> Option<f64> {
        let (fixed, _) = self.cost_model()?;
        Some((fixed / 2.0).min(max_wait.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A cost model where batching pays: run(b) = 8 ms + 1 ms * b, so the window is 4 ms.
    fn batching_pays(max_wait: Duration) -> WaitPolicy {
        let policy = WaitPolicy::new(max_wait, true);
        for b in 1..=8 {
            policy.batch_ran(b, MS * (8 + b as u32));
        }
        policy
    }

    /// Equal to the microsecond (the fit is floating point).
    fn about(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_micros(1)
    }

    fn run(b: u32) -> Duration {
        MS * (8 + b)
    }

    /// Exponential gaps with mean `mean` from a fixed linear congruential sequence.
    fn poisson_gaps(mean: Duration, count: usize) -> Vec<Duration> {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        (0..count)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let u = ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                mean.mul_f64(-u.ln())
            })
            .collect()
    }

    #[test]
    fn fixed_mode_always_waits_max() {
        let policy = WaitPolicy::new(3 * MS, false);
        policy.batch_ran(1, 10 * MS);
        policy.idle_gap(Duration::from_secs(1));
        assert_eq!(policy.current(), 3 * MS);
    }

    #[test]
    fn the_cost_fit_finds_fixed_and_per_item_cost() {
        let policy = batching_pays(10 * MS);
        let (fixed, per_item) = policy.lock().cost_model().unwrap();
        assert!((fixed - 0.008).abs() < 1e-9 && (per_item - 0.001).abs() < 1e-9);
        assert!((policy.lock().window_s(10 * MS).unwrap() - 0.004).abs() < 1e-9);
        assert_eq!(
            policy.lock().window_s(MS),
            Some(0.001),
            "capped by max_wait"
        );
    }

    #[test]
    fn no_evidence_no_wait() {
        assert_eq!(WaitPolicy::new(10 * MS, true).current(), Duration::ZERO);
        assert_eq!(batching_pays(10 * MS).current(), Duration::ZERO);
    }

    /// (a) One client in a closed loop: it sends its next request 0.2 ms after each answer.
    /// Even starting from a policy that waits, the gap it sees is wait + run + 0.2 ms, beyond
    /// the window, so the wait falls to 0 and stays there.
    #[test]
    fn a_closed_loop_client_gets_no_wait() {
        let policy = batching_pays(10 * MS);
        for _ in 0..5 {
            policy.idle_gap(Duration::ZERO);
        }
        assert!(about(policy.current(), 4 * MS), "primed to wait");
        let mut waits = vec![];
        for _ in 0..30 {
            let wait = policy.current();
            waits.push(wait);
            policy.batch_ran(1, run(1));
            policy.idle_gap(wait + run(1) + MS / 5);
        }
        assert_eq!(policy.current(), Duration::ZERO);
        assert!(waits[10..].iter().all(|w| w.is_zero()), "{waits:?}");
    }

    /// (b) Open-loop arrivals every 0.5 ms on average, far faster than run(1) = 9 ms, and
    /// batching pays: wait the window, within max_wait.
    #[test]
    fn fast_open_loop_arrivals_wait_the_window() {
        for (cap, expect) in [(10 * MS, 4 * MS), (2 * MS, 2 * MS)] {
            let policy = batching_pays(cap);
            for gap in poisson_gaps(MS / 2, 50) {
                policy.idle_gap(gap);
            }
            assert!(about(policy.current(), expect), "{:?}", policy.current());
            assert!(policy.current() <= cap);
        }
    }

    /// (c) Open loop at 20 requests/s: a partner comes within 4 ms only ~8% of the time.
    #[test]
    fn slow_open_loop_arrivals_wait_nothing() {
        let policy = batching_pays(10 * MS);
        for gap in poisson_gaps(50 * MS, 50) {
            policy.idle_gap(gap);
        }
        assert_eq!(policy.current(), Duration::ZERO);
    }

    /// When batching does not pay (no fixed cost), even a flood of partners buys no wait.
    #[test]
    fn no_fixed_cost_no_wait() {
        let policy = WaitPolicy::new(10 * MS, true);
        for b in 1..=8 {
            policy.batch_ran(b, MS * 3 * b as u32);
        }
        for _ in 0..20 {
            policy.idle_gap(Duration::ZERO);
        }
        assert_eq!(policy.current(), Duration::ZERO);
    }
}
