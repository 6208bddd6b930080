//! Splitting a closed batch by length before it runs.
//!
//! The encoder pads every row to the batch's longest item, so in a batch of short queries one
//! long query makes them all pay for its length: with this project's multilingual queries a
//! batch of 64 ran 34 padded tokens per 18-token query. Sorted by length, the batch is cut into
//! runs where the padding saved pays for another run's fixed cost, by the per-token fit
//! `run = fixed + per_token * longest * rows` (see `cost`). The cut is optimal for that model
//! (dynamic programming over cut points; sorted runs are optimal since a run costs its
//! longest item). Where the fixed cost dominates (GPUs) batches stay whole by the same rule
//! (not yet measured on a GPU); on a CPU, where cost follows tokens, they split.
//!
//! Runs go oldest first: the run holding the query that has waited longest runs first (a batch
//! is in arrival order, so that is the lowest position), and between equals the shorter run.
//! Shortest-first alone answers most queries soonest, but under a closed loop it starves long
//! queries: answered last, their clients' next requests just miss the batch that closes the
//! moment the encoder is free, wait a whole extra batch, and make the latency tail. Oldest-first
//! lets the queries that missed a batch go first in the next one. The queue runs only the
//! first run of a plan and plans the rest again once the encoder is free (`queue::first_run`),
//! so a query that arrived meanwhile is weighed by age against them rather than waiting for
//! every run planned before it came. A split window (off by default) plans that run from the
//! oldest few queries only, trading the sort's throughput for a tighter closed-loop tail.

use std::time::Duration;

use crate::cost::{CostModel, Fit};

/// A split must save this share of the whole batch's estimated cost: fit noise must not
/// turn into extra runs.
const MIN_SAVING: f64 = 0.1;

/// One timed encoder run, e.g. from a calibration at startup.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedRun {
    pub rows: usize,
    /// Every row is padded to this many tokens.
    pub longest: usize,
    pub run_time: Duration,
}

#[derive(Default)]
pub struct LengthSplit {
    cost: CostModel,
}

impl LengthSplit {
    /// Keeps a calibration run for good (see `cost`).
    pub fn prime(&self, run: TimedRun) {
        self.cost.prime(run.rows * run.longest, run.run_time);
    }

    /// A run of `rows` items padded to `longest` tokens took `run_time`.
    pub fn observe(&self, rows: usize, longest: usize, run_time: Duration) {
        self.cost.observe(rows * longest, run_time);
    }

    /// The run to encode now from `batch` (oldest first), and the items left for a later plan.
    /// Until the fit has seen more than one padded size, or where splitting saves too little,
    /// the batch runs whole (in its order). Otherwise the run is planned from the `window`
    /// oldest items only (0: from the whole batch): the run holding the oldest and its
    /// length-mates among them. The window bounds how many younger queries can overtake an
    /// older one, which is what widens the closed-loop latency tail (docs/batching-study.md,
    /// "Where the tail comes from").
    pub fn first_run<E>(
        &self,
        mut batch: Vec<E>,
        tokens: impl Fn(&E) -> usize,
        window: usize,
    ) -> FirstRun<E> {
        let whole = |run| FirstRun {
            run,
            later: Vec::new(),
            planned: 1,
        };
        let Some(fit) = self.cost.fit().filter(|f| f.spread) else {
            return whole(batch);
        };
        let beyond = if window > 0 && batch.len() > window {
            // The whole batch decides whether to split at all (a GPU's batches stay whole).
            let mut lengths: Vec<usize> = batch.iter().map(&tokens).collect();
            lengths.sort_unstable();
            if plan(&lengths, &fit).len() == 1 {
                return whole(batch);
            }
            batch.split_off(window)
        } else {
            Vec::new()
        };
        let mut runs = cut(batch, &tokens, &fit);
        if runs.len() == 1 && beyond.is_empty() {
            // Not worth splitting: the batch in its own order, as the encoder saw it before.
            let mut run = runs.remove(0);
            run.sort_by_key(|&(rank, _)| rank);
            return whole(run.into_iter().map(|(_, e)| e).collect());
        }
        let planned = runs.len() + usize::from(!beyond.is_empty());
        // `cut` puts the run holding the oldest first.
        let run = runs.remove(0);
        let mut later: Vec<(usize, E)> = runs.into_iter().flatten().collect();
        later.sort_by_key(|&(rank, _)| rank);
        let later = later.into_iter().map(|(_, e)| e).chain(beyond).collect();
        FirstRun {
            run: run.into_iter().map(|(_, e)| e).collect(),
            later,
            planned,
        }
    }
}

/// What [`LengthSplit::first_run`] chose: `run` goes now; `later` (oldest first) is planned
/// again once an instance is free, with whatever arrived meanwhile.
#[derive(Debug, PartialEq)]
pub struct FirstRun<E> {
    pub run: Vec<E>,
    pub later: Vec<E>,
    /// Runs planned (the window's, and one for the items beyond it); 1 when run whole.
    pub planned: usize,
}

/// `batch` (oldest first) sorted by length and cut by `fit` into runs of (age rank, item), each
/// in length order, the run holding the oldest first.
fn cut<E>(batch: Vec<E>, tokens: impl Fn(&E) -> usize, fit: &Fit) -> Vec<Vec<(usize, E)>> {
    // Each item with its age rank, sorted by length (stable: equal lengths keep order).
    let mut sorted: Vec<(usize, E)> = batch.into_iter().enumerate().collect();
    sorted.sort_by_key(|(_, e)| tokens(e));
    let lengths: Vec<usize> = sorted.iter().map(|(_, e)| tokens(e)).collect();
    let ends = plan(&lengths, fit);
    // Take runs off the back: each starts where the one before it ends.
    let mut runs: Vec<Vec<(usize, E)>> = ends[..ends.len() - 1]
        .iter()
        .rev()
        .map(|&start| sorted.split_off(start))
        .collect();
    runs.push(sorted);
    // Oldest first; `sort_by_key` is stable, so ties keep the shorter run first.
    runs.sort_by_key(|run| run.iter().map(|&(rank, _)| rank).min());
    runs
}

/// Where runs end (exclusive indices, ascending, the last is `lengths.len()`) for `lengths`
/// sorted ascending, or one run when splitting saves less than `MIN_SAVING`.
pub fn plan(lengths: &[usize], fit: &Fit) -> Vec<usize> {
    let n = lengths.len();
    let run = |from: usize, to: usize| fit.run_s((to - from) * lengths[to - 1]);
    // best[j]: cheapest cost of the first j items; start[j]: where its last run starts.
    let mut best = vec![0.0f64; n + 1];
    let mut start = vec![0usize; n + 1];
    for j in 1..=n {
        best[j] = f64::INFINITY;
        for i in 0..j {
            let cost = best[i] + run(i, j);
            if cost < best[j] {
                best[j] = cost;
                start[j] = i;
            }
        }
    }
    let whole = if n == 0 { 0.0 } else { run(0, n) };
    if n == 0 || best[n] > whole * (1.0 - MIN_SAVING) {
        return vec![n];
    }
    let mut ends = vec![];
    let mut j = n;
    while j > 0 {
        ends.push(j);
        j = start[j];
    }
    ends.reverse();
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(fixed_ms: f64, per_token_ms: f64) -> Fit {
        Fit {
            fixed_s: fixed_ms / 1e3,
            per_unit_s: per_token_ms / 1e3,
            spread: true,
        }
    }

    #[test]
    fn one_long_query_among_short_ones_runs_apart_on_a_token_bound_encoder() {
        // CPU-like: 1 ms per run, 0.25 ms per padded token. Whole: 1 + 8 * 60 * 0.25 = 121 ms;
        // split: (1 + 7 * 10 * 0.25) + (1 + 60 * 0.25) = 34.5 ms.
        let lengths = [8, 9, 9, 10, 10, 10, 10, 60];
        assert_eq!(plan(&lengths, &fit(1.0, 0.25)), vec![7, 8]);
    }

    #[test]
    fn a_fixed_cost_bound_encoder_keeps_the_batch_whole() {
        // GPU-like: 10 ms per run, padding nearly free.
        let lengths = [8, 9, 9, 10, 10, 10, 10, 60];
        assert_eq!(plan(&lengths, &fit(10.0, 0.001)), vec![8]);
    }

    #[test]
    fn equal_lengths_or_small_savings_stay_whole() {
        assert_eq!(plan(&[12; 16], &fit(1.0, 0.25)), vec![16]);
        // Splitting [10 x 4, 11] would save 4 * 0.25 - 1 = 0 ms net: not worth it.
        assert_eq!(plan(&[10, 10, 10, 10, 11], &fit(1.0, 0.25)), vec![5]);
        assert_eq!(plan(&[], &fit(1.0, 0.25)), vec![0]);
    }

    #[test]
    fn no_fit_or_a_one_size_fit_keeps_order_and_the_batch_whole() {
        let split = LengthSplit::default();
        let batch = vec![(1, 30), (2, 5), (3, 10)];
        let whole = |b: &Vec<(u32, usize)>| FirstRun {
            run: b.clone(),
            later: vec![],
            planned: 1,
        };
        assert_eq!(split.first_run(batch.clone(), |e| e.1, 0), whole(&batch));
        split.observe(4, 10, Duration::from_millis(11));
        assert_eq!(split.first_run(batch.clone(), |e| e.1, 0), whole(&batch));
    }

    /// A plan as (run ids, later ids, runs planned).
    type Ids = (Vec<u32>, Vec<u32>, usize);

    /// A splitter that knows 1 ms + 0.25 ms per padded token; `first_run` with `window`.
    fn taught(window: usize) -> impl Fn(Vec<(u32, usize)>) -> Ids {
        let split = LengthSplit::default();
        for tokens in [10, 20, 40, 80] {
            split.observe(
                1,
                tokens,
                Duration::from_secs_f64(0.001 + 0.00025 * tokens as f64),
            );
        }
        move |batch| {
            let plan = split.first_run(batch, |e| e.1, window);
            let ids = |v: Vec<(u32, usize)>| v.into_iter().map(|e| e.0).collect();
            (ids(plan.run), ids(plan.later), plan.planned)
        }
    }

    #[test]
    fn the_run_holding_the_oldest_goes_first_and_the_rest_waits_oldest_first() {
        let first = taught(0);
        // The oldest is short: the short run goes first.
        assert_eq!(
            first(vec![(1, 8), (2, 60), (3, 10), (4, 9), (5, 10)]),
            (vec![1, 4, 3, 5], vec![2], 2)
        );
        // The oldest is the long one (it missed the batch before): it is not held back.
        assert_eq!(
            first(vec![(1, 60), (2, 8), (3, 10), (4, 9), (5, 10)]),
            (vec![1], vec![2, 3, 4, 5], 2)
        );
        // Not worth splitting: arrival order, whole.
        assert_eq!(
            first(vec![(1, 12), (2, 10), (3, 11)]),
            (vec![1, 2, 3], vec![], 1)
        );
    }

    #[test]
    fn a_window_keeps_younger_length_mates_from_overtaking_older_queries() {
        // Oldest first: a short query, two long ones, then four short ones.
        let batch = vec![(1, 8), (2, 60), (3, 60), (4, 9), (5, 8), (6, 9), (7, 8)];
        // Planned from the whole batch, every short query overtakes the two older long ones.
        assert_eq!(
            taught(0)(batch.clone()),
            (vec![1, 5, 7, 4, 6], vec![2, 3], 2)
        );
        // Planned from the 4 oldest, the short run holds only the short query among them
        // (1 and 4); the young short ones (5, 6, 7) wait behind the long ones.
        assert_eq!(
            taught(4)(batch.clone()),
            (vec![1, 4], vec![2, 3, 5, 6, 7], 3)
        );
        // A window wider than the batch is no window.
        assert_eq!(taught(32)(batch.clone()), taught(0)(batch));
    }

    #[test]
    fn a_batch_not_worth_splitting_runs_whole_whatever_the_window() {
        // GPU-like batches stay whole: the window only bounds reordering by the split.
        let batch: Vec<(u32, usize)> = (1..=12).map(|i| (i, 10)).collect();
        let (run, later, planned) = taught(4)(batch);
        assert_eq!((run.len(), later, planned), (12, vec![], 1));
    }
}
