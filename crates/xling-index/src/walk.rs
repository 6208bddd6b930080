//! The HNSW search over a mapped [`Adjacency`]: a greedy descent through the upper layers,
//! then a best-first walk of layer 0 keeping the `ef` best, scored by a [`Scorer`] (fp32 dot
//! or int8 dot), higher is better.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Mutex;

use crate::adjacency::Adjacency;

/// How a walk scores a slot against its query, higher is better.
pub(crate) trait Scorer {
    fn score(&self, slot: u32) -> f32;
    /// Starts loading `slot`'s row into the cache: the walk asks for every new neighbour's
    /// row before it scores the first, so the memory reads overlap (as hnswlib does).
    fn prefetch(&self, slot: u32);
}

/// A scored slot, ordered by score (then by lower slot, so results are deterministic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Scored {
    pub(crate) score: f32,
    pub(crate) slot: u32,
}

impl Eq for Scored {}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then(other.slot.cmp(&self.slot))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Visited marks for one walk: a stamp per slot, so starting a walk is one increment rather
/// than clearing `count` entries.
struct Visited {
    marks: Vec<u16>,
    stamp: u16,
}

impl Visited {
    fn start(&mut self, count: usize) {
        if self.marks.len() != count {
            self.marks = vec![0; count];
            self.stamp = 0;
        }
        if self.stamp == u16::MAX {
            self.marks.fill(0);
            self.stamp = 0;
        }
        self.stamp += 1;
    }

    /// Marks `slot`; true when it was not marked in this walk yet.
    fn insert(&mut self, slot: u32) -> bool {
        let mark = &mut self.marks[slot as usize];
        let fresh = *mark != self.stamp;
        *mark = self.stamp;
        fresh
    }
}

/// Visited sets kept for reuse: as many as walks ran at once (2 bytes a point each).
#[derive(Default)]
pub(crate) struct VisitedPool(Mutex<Vec<Visited>>);

impl VisitedPool {
    fn take(&self) -> Visited {
        let spare = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        spare.unwrap_or(Visited {
            marks: Vec::new(),
            stamp: 0,
        })
    }

    fn give_back(&self, visited: Visited) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(visited);
    }
}

impl Adjacency {
    /// The `ef` best slots the walk finds for `score`, best first.
    pub(crate) fn search(&self, ef: usize, scorer: &impl Scorer) -> Vec<Scored> {
        if self.count == 0 || ef == 0 {
            return Vec::new();
        }
        let mut best = Scored {
            score: scorer.score(self.entry),
            slot: self.entry,
        };
        for layer in (1..=self.max_level).rev() {
            best = self.descend(best, layer, scorer);
        }
        let mut visited = self.visited.take();
        visited.start(self.count);
        let found = self.walk_layer0(best, ef, scorer, &mut visited);
        self.visited.give_back(visited);
        found
    }

    /// Greedy: move to the best neighbour on `layer` while one beats the current point.
    fn descend(&self, mut best: Scored, layer: usize, scorer: &impl Scorer) -> Scored {
        loop {
            let mut moved = false;
            for &n in self.neighbours(best.slot, layer) {
                if n as usize >= self.count {
                    continue;
                }
                let candidate = Scored {
                    score: scorer.score(n),
                    slot: n,
                };
                if candidate > best {
                    best = candidate;
                    moved = true;
                }
            }
            if !moved {
                return best;
            }
        }
    }

    fn walk_layer0(
        &self,
        start: Scored,
        ef: usize,
        scorer: &impl Scorer,
        visited: &mut Visited,
    ) -> Vec<Scored> {
        visited.insert(start.slot);
        // To expand: best first. Kept: worst on top, at most ef.
        let mut frontier = BinaryHeap::from([start]);
        let mut kept = BinaryHeap::from([Reverse(start)]);
        let mut fresh = Vec::with_capacity(self.m0);
        while let Some(current) = frontier.pop() {
            let worst = kept.peek().expect("never empty").0;
            if kept.len() >= ef && current < worst {
                break; // nothing left to expand can improve the kept set
            }
            fresh.clear();
            for &n in self.neighbours(current.slot, 0) {
                if (n as usize) < self.count && visited.insert(n) {
                    scorer.prefetch(n);
                    fresh.push(n);
                }
            }
            for &n in &fresh {
                let candidate = Scored {
                    score: scorer.score(n),
                    slot: n,
                };
                if kept.len() < ef || candidate > kept.peek().expect("never empty").0 {
                    frontier.push(candidate);
                    kept.push(Reverse(candidate));
                    if kept.len() > ef {
                        kept.pop();
                    }
                }
            }
        }
        let mut found: Vec<Scored> = kept.into_iter().map(|r| r.0).collect();
        found.sort_unstable_by(|a, b| b.cmp(a));
        found
    }
}
