//! Load and concurrency schedules with ghz's semantics, as pure functions of time.
//!
//! A [`RateSchedule`] gives the intended send time of every request; the runner sleeps until that
//! time and measures latency from it, so a slow server cannot slow the load down (no coordinated
//! omission). A [`ConcurrencySchedule`] gives each worker the window in which it runs.
//!
//! Step schedules change their value every `step_duration` until `end` is reached or
//! `max_duration` has passed, then hold it; `line` is a step schedule with 1 s steps.

use std::time::Duration;

/// Requests per second over time.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSchedule {
    start: f64,
    step: f64,
    /// Rate at which the schedule stops changing (`None`: keeps changing).
    end: Option<f64>,
    step_secs: f64,
    /// Steps after which the rate is held (from `load-max-duration`).
    max_steps: Option<u64>,
}

impl RateSchedule {
    /// A constant rate (`rps`).
    pub fn constant(rps: u32) -> RateSchedule {
        RateSchedule {
            start: f64::from(rps),
            step: 0.0,
            end: None,
            step_secs: 1.0,
            max_steps: Some(0),
        }
    }

    /// `start` rps, changed by `step` every `step_duration`. `end` 0 means no end (increasing
    /// schedules only; the caller validates that a decreasing one has an end).
    pub fn stepped(
        start: u32,
        step: i64,
        end: u32,
        step_duration: Duration,
        max_duration: Option<Duration>,
    ) -> RateSchedule {
        RateSchedule {
            start: f64::from(start),
            step: step as f64,
            end: (end > 0).then_some(f64::from(end)),
            step_secs: step_duration.as_secs_f64(),
            max_steps: max_duration.map(|m| (m.as_secs_f64() / step_duration.as_secs_f64()) as u64),
        }
    }

    /// The rate during step `k` (the interval `[k, k+1) * step_duration`).
    fn rate_of_step(&self, k: u64) -> f64 {
        let k = self.max_steps.map_or(k, |max| k.min(max));
        let raw = self.start + self.step * k as f64;
        match self.end {
            Some(end) if self.step > 0.0 => raw.min(end),
            Some(end) => raw.max(end),
            None => raw,
        }
    }

    /// Whether the rate never changes after step `k`.
    fn frozen_at(&self, k: u64) -> bool {
        self.step == 0.0
            || self.max_steps.is_some_and(|max| k >= max)
            || self.end.is_some_and(|end| self.rate_of_step(k) == end)
    }

    /// The rate at `elapsed` since the start.
    pub fn rate_at(&self, elapsed: Duration) -> f64 {
        self.rate_of_step((elapsed.as_secs_f64() / self.step_secs) as u64)
    }

    /// Intended send offsets of requests 0, 1, 2, ...: request `j` is due when the integral of
    /// the rate reaches `j`, so request 0 goes at once.
    pub fn send_times(&self) -> SendTimes {
        SendTimes {
            schedule: self.clone(),
            step: 0,
            step_start: 0.0,
            hits_at_step_start: 0.0,
            next: 0,
        }
    }
}

/// Iterator of intended send offsets from the start of the run; never ends.
#[derive(Debug, Clone)]
pub struct SendTimes {
    schedule: RateSchedule,
    step: u64,
    step_start: f64,
    hits_at_step_start: f64,
    next: u64,
}

impl Iterator for SendTimes {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let s = &self.schedule;
        let j = self.next as f64;
        loop {
            // Validation keeps every rate at or above 1 rps, so this loop ends.
            let rate = s.rate_of_step(self.step);
            let hits_at_step_end = self.hits_at_step_start + rate * s.step_secs;
            if s.frozen_at(self.step) || j < hits_at_step_end {
                self.next += 1;
                let at = self.step_start + (j - self.hits_at_step_start) / rate;
                return Some(Duration::from_secs_f64(at));
            }
            self.step += 1;
            self.step_start += s.step_secs;
            self.hits_at_step_start = hits_at_step_end;
        }
    }
}

/// How many workers run over time.
#[derive(Debug, Clone, PartialEq)]
pub enum ConcurrencySchedule {
    Const(u32),
    /// `start` workers, changed by `step` every `step_duration` until `end` (0: no end, only
    /// when increasing) or until `max_duration` has passed.
    Step {
        start: u32,
        step: i64,
        end: u32,
        step_duration: Duration,
        max_duration: Option<Duration>,
    },
}

/// When worker `w` runs: from `start` until `stop` (`None`: to the end of the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerWindow {
    pub start: Duration,
    pub stop: Option<Duration>,
}

impl ConcurrencySchedule {
    /// The window of worker `w` (0-based), or `None` if it never runs.
    pub fn window(&self, w: u32) -> Option<WorkerWindow> {
        let (start, step, end, step_duration, max_duration) = match *self {
            ConcurrencySchedule::Const(c) => {
                return (w < c).then_some(WorkerWindow {
                    start: Duration::ZERO,
                    stop: None,
                })
            }
            ConcurrencySchedule::Step {
                start,
                step,
                end,
                step_duration,
                max_duration,
            } => (start, step, end, step_duration, max_duration),
        };
        let max_steps = max_duration.map(|m| (m.as_nanos() / step_duration.as_nanos()) as u64);
        let at_step = |k: u64| step_duration * u32::try_from(k).unwrap_or(u32::MAX);
        let w = u64::from(w);
        let (start, end) = (u64::from(start), u64::from(end));
        let magnitude = step.unsigned_abs();
        if step > 0 {
            if w < start {
                return Some(WorkerWindow {
                    start: Duration::ZERO,
                    stop: None,
                });
            }
            // The first step whose count exceeds w.
            let k = (w + 1 - start).div_ceil(magnitude);
            let capped = end > 0 && w >= end;
            let too_late = max_steps.is_some_and(|max| k > max);
            (!capped && !too_late).then(|| WorkerWindow {
                start: at_step(k),
                stop: None,
            })
        } else {
            if w >= start {
                return None;
            }
            // Workers below `end` never stop; the others stop at the first step whose count is <= w.
            let k = (start - w).div_ceil(magnitude);
            let stays = w < end || max_steps.is_some_and(|max| k > max);
            Some(WorkerWindow {
                start: Duration::ZERO,
                stop: (!stays).then(|| at_step(k)),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(times: impl Iterator<Item = Duration>, n: usize) -> Vec<f64> {
        times
            .take(n)
            .map(|d| (d.as_secs_f64() * 1e6).round() / 1e6)
            .collect()
    }

    #[test]
    fn constant_rate_spaces_requests_evenly() {
        let times = secs(RateSchedule::constant(4).send_times(), 6);
        assert_eq!(times, vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25]);
    }

    #[test]
    fn step_schedule_raises_rate_each_step_then_holds_at_end() {
        // 2 rps for 1 s, 4 rps for 1 s, then 5 rps (end) for ever.
        let s = RateSchedule::stepped(2, 2, 5, Duration::from_secs(1), None);
        let times = secs(s.send_times(), 10);
        assert_eq!(
            times,
            vec![0.0, 0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 2.2, 2.4, 2.6]
        );
        assert_eq!(s.rate_at(Duration::from_secs(100)), 5.0);
    }

    #[test]
    fn line_schedule_decreases_to_end() {
        // ghz line: 1 s steps; 4 rps, 3 rps, then 2 rps (end).
        let s = RateSchedule::stepped(4, -1, 2, Duration::from_secs(1), None);
        let times = secs(s.send_times(), 10);
        let third = 1.0 + 1.0 / 3.0;
        let expected = [
            0.0,
            0.25,
            0.5,
            0.75,
            1.0,
            third,
            third + 1.0 / 3.0,
            2.0,
            2.5,
            3.0,
        ];
        for (got, want) in times.iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{times:?}");
        }
    }

    #[test]
    fn max_duration_freezes_the_rate() {
        let s = RateSchedule::stepped(
            10,
            10,
            0,
            Duration::from_secs(2),
            Some(Duration::from_secs(4)),
        );
        assert_eq!(s.rate_at(Duration::from_secs(1)), 10.0);
        assert_eq!(s.rate_at(Duration::from_secs(3)), 20.0);
        assert_eq!(s.rate_at(Duration::from_secs(5)), 30.0);
        assert_eq!(s.rate_at(Duration::from_secs(500)), 30.0);
        // 20 hits in [0,2), 40 in [2,4), then 30/s: hit 60 is due at 4 s, hit 90 at 5 s.
        let times: Vec<Duration> = s.send_times().take(91).collect();
        assert!((times[60].as_secs_f64() - 4.0).abs() < 1e-9);
        assert!((times[90].as_secs_f64() - 5.0).abs() < 1e-9);
    }

    #[test]
    fn fractional_hits_per_step_carry_over() {
        // 3 rps for 1.5 s (4.5 hits), then 6 rps held.
        let s = RateSchedule::stepped(3, 3, 6, Duration::from_millis(1500), None);
        let times = secs(s.send_times(), 7);
        assert_eq!(times[4], 1.333333);
        // Hit 5 is due when 0.5 hits into the 6 rps step: 1.5 + 0.5 / 6.
        assert_eq!(times[5], 1.583333);
    }

    #[test]
    fn concurrency_step_starts_workers_over_time() {
        let s = ConcurrencySchedule::Step {
            start: 2,
            step: 2,
            end: 5,
            step_duration: Duration::from_secs(10),
            max_duration: None,
        };
        let starts: Vec<Option<u64>> = (0..7)
            .map(|w| s.window(w).map(|win| win.start.as_secs()))
            .collect();
        assert_eq!(
            starts,
            vec![Some(0), Some(0), Some(10), Some(10), Some(20), None, None]
        );
        assert!(s.window(3).unwrap().stop.is_none());
    }

    #[test]
    fn concurrency_step_respects_max_duration() {
        let s = ConcurrencySchedule::Step {
            start: 1,
            step: 1,
            end: 0,
            step_duration: Duration::from_secs(1),
            max_duration: Some(Duration::from_secs(3)),
        };
        assert_eq!(s.window(3).unwrap().start, Duration::from_secs(3));
        assert_eq!(s.window(4), None);
    }

    #[test]
    fn concurrency_decrease_stops_workers() {
        let s = ConcurrencySchedule::Step {
            start: 4,
            step: -1,
            end: 2,
            step_duration: Duration::from_secs(5),
            max_duration: None,
        };
        let stops: Vec<Option<u64>> = (0..4)
            .map(|w| s.window(w).unwrap().stop.map(|d| d.as_secs()))
            .collect();
        assert_eq!(stops, vec![None, None, Some(10), Some(5)]);
        assert_eq!(s.window(4), None);
        assert_eq!(ConcurrencySchedule::Const(3).window(3), None);
        assert!(ConcurrencySchedule::Const(3).window(2).is_some());
    }
}
