//! What a batch costs the encoder: `run(b) = fixed + per_item * b`, fitted by least squares
//! over the batches run, forgetting old ones (load, sequence lengths and the machine change).
//!
//! Two readers: the adaptive wait (is the fixed cost worth waiting for a partner?) and
//! admission (can a query still be encoded before its deadline, with this queue ahead of it?).

use std::sync::Mutex;
use std::time::Duration;

/// Forgetting factor of the regression per batch.
const FORGET: f64 = 0.98;

#[derive(Default)]
pub struct CostModel {
    sums: Mutex<Sums>,
}

/// Decayed sums of batch size (x) and run time in seconds (y).
#[derive(Default)]
struct Sums {
    n: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
}

/// The fitted cost; `spread` says whether more than one batch size was seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub fixed_s: f64,
    pub per_item_s: f64,
    pub spread: bool,
}

impl Fit {
    pub fn run_s(&self, size: usize) -> f64 {
        self.fixed_s + self.per_item_s * size as f64
    }
}

impl CostModel {
    pub fn observe(&self, size: usize, run_time: Duration) {
        let (x, y) = (size as f64, run_time.as_secs_f64());
        let mut s = self.sums.lock().unwrap_or_else(|e| e.into_inner());
        s.n = s.n * FORGET + 1.0;
        s.sx = s.sx * FORGET + x;
        s.sy = s.sy * FORGET + y;
        s.sxx = s.sxx * FORGET + x * x;
        s.sxy = s.sxy * FORGET + x * y;
    }

    /// The fit so far; with one distinct batch size seen, the cost is split evenly between
    /// the fixed and the per-item part (and `spread` is false).
    pub fn fit(&self) -> Option<Fit> {
        let s = self.sums.lock().unwrap_or_else(|e| e.into_inner());
        if s.n < 1.0 {
            return None;
        }
        let mean_x = s.sx / s.n;
        let mean_y = s.sy / s.n;
        let var = s.sxx / s.n - mean_x * mean_x;
        if var < 1e-9 {
            return Some(Fit {
                fixed_s: mean_y / 2.0,
                per_item_s: mean_y / (2.0 * mean_x.max(1.0)),
                spread: false,
            });
        }
        let slope = ((s.sxy / s.n - mean_x * mean_y) / var).max(0.0);
        Some(Fit {
            fixed_s: (mean_y - slope * mean_x).max(0.0),
            per_item_s: slope,
            spread: true,
        })
    }

    /// How long the encoder needs for `items` queries in batches of at most `max_batch`, from
    /// a fit over more than one batch size (an even split from one size would extrapolate a
    /// burst's cost wildly); `None` until then.
    pub fn time_to_run(&self, items: usize, max_batch: usize) -> Option<Duration> {
        let fit = self.fit().filter(|f| f.spread)?;
        let max_batch = max_batch.max(1);
        let (full, rest) = (items / max_batch, items % max_batch);
        let mut seconds = full as f64 * fit.run_s(max_batch);
        if rest > 0 {
            seconds += fit.run_s(rest);
        }
        Some(Duration::from_secs_f64(seconds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn finds_fixed_and_per_item_cost_and_times_a_queue() {
        let cost = CostModel::default();
        assert_eq!(cost.time_to_run(10, 4), None, "nothing seen yet");
        cost.observe(1, 9 * MS);
        assert_eq!(cost.time_to_run(10, 4), None, "one batch size only");
        for b in 1..=8 {
            cost.observe(b, MS * (8 + b as u32));
        }
        let fit = cost.fit().unwrap();
        assert!((fit.fixed_s - 0.008).abs() < 1e-9 && (fit.per_item_s - 0.001).abs() < 1e-9);
        // 10 items in batches of 4: two of run(4) = 12 ms and one of run(2) = 10 ms.
        let t = cost.time_to_run(10, 4).unwrap();
        assert!(t.abs_diff(34 * MS) < Duration::from_micros(1), "{t:?}");
    }
}
