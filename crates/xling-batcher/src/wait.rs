//! How long a new batch may wait for more items.
//!
//! Fixed mode waits `max_wait` from a batch's first item. With `max_wait` 0 (the default) that
//! is work-conserving batching: a batch opened on an idle encoder closes at once, and one
//! opened while the encoder is busy collects until it is free (rule 1 below); a fixed wait
//! above 0 keeps its timer even while the encoder is busy (the old rule, kept for the study).
//! Adaptive mode (`adaptive_wait`) follows two rules:
//!
//! 1. **Encoder busy: no wait, but the batch stays open.** While a batch runs, arrivals pile up
//!    anyway, so the next batch collects them until the encoder is free (or it is full) and
//!    then closes at once. Holding it costs nothing: it could not have started earlier.
//! 2. **Encoder idle: wait only on evidence that a partner comes soon.** With
//!    `run(b) = fixed + per_item * b` fitted over the batches run (see `cost`): if the first
//!    item runs alone, a second arriving `g` later waits for it and answers after
//!    `2 * run(1) - g`; waiting `w` for it answers both after at most `w + run(2)`. With
//!    `w = fixed / 2`, waiting wins exactly when `g < fixed / 2`. So the window is
//!    `w = min(max_wait, fixed / 2)`, and the batch waits `w` only if, after most recent idle
//!    starts (running mean of hits >= 1/2), the next item arrived within `w`.
//!
//! The evidence is the gap from the first item of an idle-started batch to the next arrival,
//! not the mean gap between arrivals: in a closed loop the next request is only sent after the
//! answer, so its gap includes the wait and the run itself and never falls inside the window
//! (the old rate-based rule kept waiting there: with one client the mean gap is about
//! `run(1)`, so the encoder looked nearly busy). Open-loop arrivals do not depend on the
//! answer, so their gaps show the real rate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cost::CostModel;

/// Weight of the newest idle start in the hit rate.
const ALPHA: f64 = 0.1;
/// Share of idle starts that must have found a partner within the window.
const HIT_RATE: f64 = 0.5;

pub struct WaitPolicy {
    max_wait: Duration,
    adaptive: bool,
    cost: Arc<CostModel>,
    /// Running mean of "the next item came within the window" over idle starts.
    hit_rate: Mutex<Option<f64>>,
}

impl WaitPolicy {
    pub fn new(max_wait: Duration, adaptive: bool) -> Self {
        WaitPolicy {
            max_wait,
            adaptive,
            cost: Arc::default(),
            hit_rate: Mutex::new(None),
        }
    }

    /// The batch cost fit, which admission reads too.
    pub fn cost(&self) -> Arc<CostModel> {
        self.cost.clone()
    }

    /// A batch opened on an idle encoder, and the next item arrived `gap` after its first.
    pub fn idle_gap(&self, gap: Duration) {
        if !self.adaptive {
            return;
        }
        if let Some(window) = self.window_s() {
            let hit = if gap.as_secs_f64() <= window {
                1.0
            } else {
                0.0
            };
            let mut rate = self.lock();
            *rate = Some(match *rate {
                Some(rate) => rate + ALPHA * (hit - rate),
                None => hit,
            });
        }
    }

    pub fn batch_ran(&self, size: usize, run_time: Duration) {
        self.cost.observe(size, run_time);
    }

    /// The wait of a batch that opens on an idle encoder.
    pub fn current(&self) -> Duration {
        if !self.adaptive {
            return self.max_wait;
        }
        match (*self.lock(), self.window_s()) {
            (Some(hits), Some(window)) if hits >= HIT_RATE => Duration::from_secs_f64(window),
            _ => Duration::ZERO,
        }
    }

    /// How long a partner may take and still pay for waiting: `min(max_wait, fixed / 2)`.
    fn window_s(&self) -> Option<f64> {
        let fit = self.cost.fit()?;
        Some((fit.fixed_s / 2.0).min(self.max_wait.as_secs_f64()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<f64>> {
        self.hit_rate.lock().unwrap_or_else(|e| e.into_inner())
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
    fn the_window_is_half_the_fixed_cost_capped_by_max_wait() {
        assert!((batching_pays(10 * MS).window_s().unwrap() - 0.004).abs() < 1e-9);
        assert_eq!(
            batching_pays(MS).window_s(),
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
