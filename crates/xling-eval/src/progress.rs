//! A progress line on stderr for runs that take minutes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

pub(crate) struct Progress {
    what: &'static str,
    total: usize,
    done: AtomicUsize,
    started: Instant,
}

impl Progress {
    pub(crate) fn new(what: &'static str, total: usize) -> Progress {
        Progress {
            what,
            total,
            done: AtomicUsize::new(0),
            started: Instant::now(),
        }
    }

    /// Counts one item; prints at every tenth of the total.
    pub(crate) fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let tenth = |n: usize| n * 10 / self.total.max(1);
        if tenth(done) != tenth(done - 1) {
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "{}: {done}/{} ({:.0}/s)",
                self.what,
                self.total,
                done as f64 / secs.max(1e-9)
            );
        }
    }
}
