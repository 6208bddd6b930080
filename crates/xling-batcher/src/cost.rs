//! What a batch costs the encoder: `run(x) = fixed + per_unit * x`, fitted by least squares
//! over the batches run, forgetting old ones (load, sequence lengths and the machine change).
//! The unit is an item (`x` = batch size) or a padded token (`x` = longest x size).
//!
//! Three readers: the adaptive wait (is the fixed cost worth waiting for a partner?),
//! admission (can a query still be encoded before its deadline, with this queue ahead of it?),
//! both per item, and the length split (is the padding saved worth another run?), per token.

use std::sync::Mutex;
use std::time::Duration;

/// Forgetting factor of the regression per batch.
const FORGET: f64 = 0.98;

#[derive(Default)]
pub struct CostModel {
    sums: Mutex<Observed>,
}

/// Live batches, forgotten over time, and calibration runs, kept: live load often covers too
/// narrow a range of `x` to tell the slope from the intercept (full batches of similar
/// length), and the calibration's spread anchors it.
#[derive(Default)]
struct Observed {
    live: Sums,
    prior: Sums,
}

/// Sums of units (x) and run time in seconds (y).
#[derive(Default, Clone, Copy)]
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
    pub per_unit_s: f64,
    pub spread: bool,
}

impl Fit {
    pub fn run_s(&self, units: usize) -> f64 {
        self.fixed_s + self.per_unit_s * units as f64
    }
}

impl CostModel {
    pub fn observe(&self, units: usize, run_time: Duration) {
        self.lock().live.add(units, run_time, FORGET);
    }

    /// A calibration run (e.g. timed at startup), never forgotten.
    pub fn prime(&self, units: usize, run_time: Duration) {
        self.lock().prior.add(units, run_time, 1.0);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Observed> {
        self.sums.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fit so far; with one distinct `x` seen, the cost is split evenly between the fixed
    /// and the per-unit part (and `spread` is false).
    pub fn fit(&self) -> Option<Fit> {
        let s = self.lock().total();
        if s.n < 1.0 {
            return None;
        }
        let mean_x = s.sx / s.n;
        let mean_y = s.sy / s.n;
        let var = s.sxx / s.n - mean_x * mean_x;
        if var < 1e-9 {
            return Some(Fit {
                fixed_s: mean_y / 2.0,
                per_unit_s: mean_y / (2.0 * mean_x.max(1.0)),
                spread: false,
            });
        }
        let slope = ((s.sxy / s.n - mean_x * mean_y) / var).max(0.0);
        Some(Fit {
            fixed_s: (mean_y - slope * mean_x).max(0.0),
            per_unit_s: slope,
            spread: true,
        })
    }

    /// How long the encoder needs for `items` queries in batches of at most `max_batch`, from
    /// a per-item fit over more than one batch size (an even split from one size would extrapolate a
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

impl Observed {
    fn total(&self) -> Sums {
        let (a, b) = (&self.live, &self.prior);
        Sums {
            n: a.n + b.n,
            sx: a.sx + b.sx,
            sy: a.sy + b.sy,
            sxx: a.sxx + b.sxx,
            sxy: a.sxy + b.sxy,
        }
    }
}

impl Sums {
    /// Adds one observation after scaling the old ones by `keep`.
    fn add(&mut self, units: usize, run_time: Duration, keep: f64) {
        let (x, y) = (units as f64, run_time.as_secs_f64());
        self.n = self.n * keep + 1.0;
        self.sx = self.sx * keep + x;
        self.sy = self.sy * keep + y;
        self.sxx = self.sxx * keep + x * x;
        self.sxy = self.sxy * keep + x * y;
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
        assert!((fit.fixed_s - 0.008).abs() < 1e-9 && (fit.per_unit_s - 0.001).abs() < 1e-9);
        // 10 items in batches of 4: two of run(4) = 12 ms and one of run(2) = 10 ms.
        let t = cost.time_to_run(10, 4).unwrap();
        assert!(t.abs_diff(34 * MS) < Duration::from_micros(1), "{t:?}");
    }

    #[test]
    fn calibration_anchors_the_slope_when_live_batches_all_look_alike() {
        // True cost 1 ms + 0.25 ms per unit; live batches all near 380 units, with noise.
        let truth = |x: usize| Duration::from_secs_f64(0.001 + 0.00025 * x as f64);
        let live = |cost: &CostModel| {
            for (i, x) in [380, 384, 376, 382, 378]
                .iter()
                .cycle()
                .take(200)
                .enumerate()
            {
                let noise = if i % 2 == 0 { 1.1 } else { 0.9 };
                cost.observe(*x, truth(*x).mul_f64(noise));
            }
        };
        let bare = CostModel::default();
        live(&bare);
        let primed = CostModel::default();
        for x in [16, 64, 128, 512] {
            primed.prime(x, truth(x));
        }
        live(&primed);
        let slope = |c: &CostModel| c.fit().unwrap().per_unit_s * 1e3;
        assert!((slope(&primed) - 0.25).abs() < 0.02, "{}", slope(&primed));
        assert!(
            (slope(&bare) - 0.25).abs() > 0.1,
            "noise alone fools it: {}",
            slope(&bare)
        );
    }
}
