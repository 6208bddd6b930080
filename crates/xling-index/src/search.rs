//! Approximate (HNSW) and exact search, both with an optional language filter.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::distance::{dot, dot_i8, score, score_of_dot};
use crate::error::IndexError;
use crate::index::Index;
use crate::lang::is_iso639_1;
use crate::quant::quantize;
use crate::slots::SlotSet;
use crate::walk::Scorer;

/// Graph candidates kept per requested result when the caller leaves ef to the service.
/// On XQuAD-R's 13,014-sentence multilingual pool at top-k 100 (multilingual-e5-small), ef 64
/// lost 0.0132 mAP to exact search and ef 800 lost 0.0018: the relevant answers the walk
/// misses sit deep in the list, so a fixed ef that serves top-10 well starves top-100.
pub const EF_PER_RESULT: usize = 8;

/// The ef a search uses when the request names none: `base` (the configured default), raised
/// to [`EF_PER_RESULT`] candidates per requested result.
pub fn default_ef(base: usize, k: usize) -> usize {
    base.max(EF_PER_RESULT.saturating_mul(k))
}

/// A filtered query over more candidates asks the unfiltered graph for
/// `OVERSAMPLE x k / (share of the index that matches)` hits and keeps the matching ones.
/// Why not hnsw_rs's `search_filter`: it never stops early while filtering, so it walks most of
/// the graph. On 4,400 of the sentences (debug build, busy machine) it took p50 5-14 ms for one
/// language (9% of the index) and 1.4-7 ms for six (55%); oversampling took 2 ms and 0.5-0.7 ms,
/// at the same recall (0.98-0.999).
const OVERSAMPLE: f64 = 2.0;

/// The ef at which a walk costs as much as scanning `exact_subset_max` rows.
const PLAN_EF: usize = 64;

/// How a query is answered (see [`Index::plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// An exact scan of the selected rows.
    Scan { rows: usize },
    /// A graph walk for `fetch` candidates at breadth `ef`, filtered afterwards.
    Walk { fetch: usize, ef: usize },
}

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// Passage slot: look it up with [`Index::passage`].
    pub slot: u32,
    /// Cosine similarity of query and passage (`1 - distance`), at most 1.
    pub score: f32,
}

/// Which passages a query may return.
enum Selection {
    All,
    Languages {
        /// Per index language (position in `LanguageSlots::codes`): selected?
        mask: Vec<bool>,
        /// Number of passages in the selected languages.
        count: usize,
    },
}

impl Index {
    /// The `k` best passages for `query` (a unit vector of the index's dim): by HNSW with search
    /// breadth `ef` (raised to `k` when smaller), or by an exact scan when the candidates are
    /// few (see [`Index::set_exact_subset_max`]). `languages`: ISO 639-1 codes to keep; `None` or
    /// an empty list means all; codes absent from the index match nothing. `k` hits come back
    /// whenever the candidates hold `k` passages.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        languages: Option<&[String]>,
    ) -> Result<Vec<Hit>, IndexError> {
        self.search_filtered(query, k, ef, languages, None)
    }

    /// [`Index::search`] that never returns a slot in `removed` (a live index's tombstones).
    /// The slots are skipped inside the search, and the graph walk asks for enough extra
    /// candidates that `k` hits still come back.
    pub fn search_filtered(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        languages: Option<&[String]>,
        removed: Option<&SlotSet>,
    ) -> Result<Vec<Hit>, IndexError> {
        self.check_query(query)?;
        let (mask, count) = match self.select(languages)? {
            Selection::All => (None, self.len()),
            Selection::Languages { mask, count } => (Some(mask), count),
        };
        let removed = removed.filter(|r| !r.is_empty());
        let keep = |slot: u32| {
            mask.as_ref()
                .is_none_or(|m| m[self.languages.of_slot[slot as usize] as usize])
                && removed.is_none_or(|r| !r.contains(slot))
        };
        // At least this many candidates survive the filters (removed slots may all be selected).
        let alive = count.saturating_sub(removed.map_or(0, SlotSet::len));
        if k == 0 || alive == 0 {
            return Ok(Vec::new());
        }
        let plan = self.plan_for(k, ef, count, alive, mask.is_some(), removed);
        let Plan::Walk { fetch, ef } = plan else {
            return Ok(self.scan(query, k, mask.as_deref(), removed));
        };
        let k = k.min(count);
        let hits: Vec<Hit> = self
            .walk(query, fetch, ef)
            .into_iter()
            .filter(|h| keep(h.slot))
            .take(k)
            .collect();
        // The asked languages may rank low for this query (embeddings lean towards the query's
        // own language), and a graph walk may come back short: then scan, so that k hits
        // always come back when k exist.
        if hits.len() < k.min(alive) {
            return Ok(self.scan(query, k, mask.as_deref(), removed));
        }
        Ok(hits)
    }

    /// How [`Index::search`] would answer a query with these arguments (no tombstones): for
    /// tests, benchmarks and the server's logs.
    pub fn plan(
        &self,
        k: usize,
        ef: usize,
        languages: Option<&[String]>,
    ) -> Result<Plan, IndexError> {
        let (filtered, count) = match self.select(languages)? {
            Selection::All => (false, self.len()),
            Selection::Languages { count, .. } => (true, count),
        };
        Ok(self.plan_for(k.max(1), ef, count, count, filtered, None))
    }

    /// The planner: scan the `count` selected rows, or walk the graph for `fetch` candidates
    /// at breadth `ef`, whichever costs less. A filtered walk must fetch `OVERSAMPLE x k /
    /// share` candidates to keep `k` after filtering, and its cost grows with that ef: a
    /// language at 1% of the index would need ef 2,000 for k 10, while scanning its rows costs
    /// as little as a walk at ef 64 costs for every `exact_subset_max / 64` rows. So rows up
    /// to `exact_subset_max x max(ef, 64) / 64` are scanned (per-row scan cost 0.05 us vs
    /// about 6 us per unit of ef at 13k rows; see [`crate::DEFAULT_EXACT_SUBSET_MAX`]).
    fn plan_for(
        &self,
        k: usize,
        ef: usize,
        count: usize,
        alive: usize,
        by_language: bool,
        removed: Option<&SlotSet>,
    ) -> Plan {
        // A request's k or ef beyond the index size would only waste (or exhaust) memory.
        let k = k.min(count);
        let ef = ef.clamp(k, self.len());
        let fetch = if by_language || removed.is_some() {
            let share = alive as f64 / self.len() as f64;
            let oversample = if by_language { OVERSAMPLE } else { 1.0 };
            ((oversample * k as f64 / share).ceil() as usize)
                .saturating_add(removed.map_or(0, |r| r.len().min(k)))
                .min(self.len())
        } else {
            k
        };
        let ef = ef.max(fetch);
        let scan_up_to = (self.exact_subset_max as u128 * ef.max(PLAN_EF) as u128 / PLAN_EF as u128)
            .min(usize::MAX as u128) as usize;
        if self.exact_subset_max == usize::MAX || count <= scan_up_to {
            Plan::Scan { rows: count }
        } else {
            Plan::Walk { fetch, ef }
        }
    }

    /// Brute-force search with the same arguments and scores as [`Index::search`]; the ground
    /// truth for recall measurements.
    pub fn exact_search(
        &self,
        query: &[f32],
        k: usize,
        languages: Option<&[String]>,
    ) -> Result<Vec<Hit>, IndexError> {
        self.check_query(query)?;
        Ok(match self.select(languages)? {
            Selection::All => self.scan(query, k, None, None),
            Selection::Languages { mask, .. } => self.scan(query, k, Some(&mask), None),
        })
    }

    fn check_query(&self, query: &[f32]) -> Result<(), IndexError> {
        if query.len() != self.dim() {
            return Err(IndexError::QueryDim {
                got: query.len(),
                expected: self.dim(),
            });
        }
        if !query.iter().all(|v| v.is_finite()) {
            return Err(IndexError::QueryNotFinite);
        }
        Ok(())
    }

    fn select(&self, languages: Option<&[String]>) -> Result<Selection, IndexError> {
        let languages = match languages {
            Some(l) if !l.is_empty() => l,
            _ => return Ok(Selection::All),
        };
        let codes = &self.languages.codes;
        let mut mask = vec![false; codes.len()];
        for code in languages {
            if !is_iso639_1(code) {
                return Err(IndexError::FilterLanguage { code: code.clone() });
            }
            if let Ok(i) = codes.binary_search(code) {
                mask[i] = true;
            }
        }
        let count = (0..codes.len())
            .filter(|&i| mask[i])
            .map(|i| self.languages.slots[i].len())
            .sum();
        if count == self.len() {
            return Ok(Selection::All); // every passage matches: the unfiltered graph walk is exact
        }
        Ok(Selection::Languages { mask, count })
    }

    /// Exact top-k over the slots of the languages selected in `mask` (all when `None`),
    /// except those in `removed`.
    fn scan(
        &self,
        query: &[f32],
        k: usize,
        mask: Option<&[bool]>,
        removed: Option<&SlotSet>,
    ) -> Vec<Hit> {
        // A bounded heap, not every row's score: a scan of 1M rows keeps k hits, not 8 MB.
        let mut best = BinaryHeap::with_capacity(k + 1);
        let slots = self
            .languages
            .slots
            .iter()
            .enumerate()
            .filter(|(lang, _)| mask.is_none_or(|m| m[*lang]))
            .flat_map(|(_, slots)| slots.iter().copied())
            .filter(|&slot| removed.is_none_or(|r| !r.contains(slot)));
        for slot in slots {
            best.push(Ranked(Hit {
                slot,
                score: score(query, self.row(slot)),
            }));
            if best.len() > k {
                best.pop();
            }
        }
        best.into_sorted_vec().into_iter().map(|r| r.0).collect()
    }

    fn row(&self, slot: u32) -> &[f32] {
        let dim = self.dim();
        &self.embeddings()[slot as usize * dim..(slot as usize + 1) * dim]
    }

    /// The graph's best `k` hits, best first. An int8 graph is walked with the quantized query
    /// for `rescore_oversample x k` candidates, which are rescored with their fp32 rows.
    fn walk(&self, query: &[f32], k: usize, ef: usize) -> Vec<Hit> {
        let dim = self.dim();
        let Some(int8) = self.int8() else {
            let rows = RowScorer {
                query,
                rows: self.embeddings(),
                dim,
                dot,
            };
            let found = self.graph.search(ef.max(k), &rows);
            return found
                .into_iter()
                .take(k)
                .map(|s| Hit {
                    slot: s.slot,
                    score: score_of_dot(s.score),
                })
                .collect();
        };
        let mut q = Vec::with_capacity(query.len());
        quantize(query, &int8.scale, &mut q);
        let fetch = k.saturating_mul(self.rescore_oversample).min(self.len());
        let rows = RowScorer {
            query: &q,
            rows: int8.rows(),
            dim,
            dot: |a: &[i8], b: &[i8]| dot_i8(a, b) as f32,
        };
        let found = self.graph.search(ef.max(fetch), &rows);
        let mut hits: Vec<Hit> = found
            .into_iter()
            .take(fetch)
            .map(|s| Hit {
                slot: s.slot,
                score: score(query, self.row(s.slot)),
            })
            .collect();
        hits.sort_unstable_by(best_first);
        hits.truncate(k);
        hits
    }
}

/// Scores slots by `dot(query, row)` over rows stored `dim` apart (fp32 or int8).
struct RowScorer<'a, T, D> {
    query: &'a [T],
    rows: &'a [T],
    dim: usize,
    dot: D,
}

impl<T, D: Fn(&[T], &[T]) -> f32> Scorer for RowScorer<'_, T, D> {
    fn score(&self, slot: u32) -> f32 {
        let at = slot as usize * self.dim;
        (self.dot)(self.query, &self.rows[at..at + self.dim])
    }

    fn prefetch(&self, slot: u32) {
        let row = &self.rows[slot as usize * self.dim..];
        prefetch_bytes(row.as_ptr().cast(), self.dim * std::mem::size_of::<T>());
    }
}

/// Asks the CPU to start loading `len` bytes at `at` into the cache (no effect elsewhere).
fn prefetch_bytes(at: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    for offset in (0..len).step_by(64) {
        // SAFETY: a prefetch is a hint that never faults, whatever the address.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(offset).cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, len);
}

/// Higher score first; ties by lower slot so results are deterministic.
fn best_first(a: &Hit, b: &Hit) -> Ordering {
    b.score.total_cmp(&a.score).then(a.slot.cmp(&b.slot))
}

/// A hit ordered best first, so that a max-heap of them pops the worst.
struct Ranked(Hit);

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        best_first(&self.0, &other.0)
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}
