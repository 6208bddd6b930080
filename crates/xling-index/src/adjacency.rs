//! `graph.adj`: the HNSW graph as the search walks it, flat and mapped.
//!
//! hnsw_rs builds the graph (see `graph`); its own structure keeps each point's neighbours as
//! lists of `Arc`s behind locks (1.4-1.6 KB a point measured at 100k-1M, a pointer chase per
//! neighbour). The finished graph is laid out here the way hnswlib stores it: fixed-size
//! blocks of u32 neighbour slots, read in place from the map, so loading costs nothing and
//! a point's layer-0 neighbours are one contiguous read.
//!
//! ```text
//! header   16 words: MAGIC, VERSION, count, m0, m, entry, max_level, upper_blocks, 0...
//! offsets  count + 1 words: point p's upper-layer blocks are upper[offsets[p]..offsets[p+1]],
//!          block j holding layer j + 1 (so its level is offsets[p+1] - offsets[p])
//! layer0   count blocks of 1 + m0 words: [n, n neighbour slots, zero padding]
//! upper    upper_blocks blocks of 1 + m words, same shape
//! ```
//! Every word is a little-endian u32.

use std::io::Write;
use std::path::Path;

use memmap2::Mmap;

use crate::error::IndexError;
use crate::store::map_file;
use crate::walk::VisitedPool;

pub const ADJACENCY_FILE: &str = "graph.adj";
const MAGIC: u32 = u32::from_le_bytes(*b"XADJ");
const VERSION: u32 = 1;
const HEADER_WORDS: usize = 16;

/// A graph read from `graph.adj`.
pub(crate) struct Adjacency {
    map: Mmap,
    pub(crate) count: usize,
    pub(crate) m0: usize,
    m: usize,
    pub(crate) entry: u32,
    pub(crate) max_level: usize,
    offsets_at: usize,
    layer0_at: usize,
    upper_at: usize,
    /// Visited marks for walks, one set per concurrent walk, reused.
    pub(crate) visited: VisitedPool,
}

impl Adjacency {
    /// Maps `path` and checks its header and size against `count` points.
    pub(crate) fn open(path: &Path, count: usize) -> Result<Adjacency, IndexError> {
        let map = map_file(path)?;
        let bad = |reason: String| IndexError::corrupt(path, reason);
        if map.len() % 4 != 0 || map.len() < HEADER_WORDS * 4 {
            return Err(bad(format!("{} bytes is not a graph file", map.len())));
        }
        let word = |i: usize| u32::from_le_bytes(map[i * 4..i * 4 + 4].try_into().expect("4"));
        if word(0) != MAGIC || word(1) != VERSION {
            return Err(bad(format!("not a version {VERSION} graph file")));
        }
        let (n, m0, m) = (word(2) as usize, word(3) as usize, word(4) as usize);
        let (entry, max_level, upper) = (word(5), word(6) as usize, word(7) as usize);
        if n != count || (count > 0 && entry as usize >= count) || m0 == 0 || m == 0 {
            return Err(bad(format!(
                "{n} points (entry {entry}, m0 {m0}, m {m}); the manifest says {count}"
            )));
        }
        let offsets_at = HEADER_WORDS;
        let layer0_at = offsets_at + count + 1;
        let upper_at = layer0_at + count * (1 + m0);
        let words = upper_at + upper * (1 + m);
        if words * 4 != map.len() {
            return Err(bad(format!(
                "{} bytes, the header implies {}",
                map.len(),
                words * 4
            )));
        }
        let graph = Adjacency {
            map,
            count,
            m0,
            m,
            entry,
            max_level,
            offsets_at,
            layer0_at,
            upper_at,
            visited: VisitedPool::default(),
        };
        // The offsets are what an upper-layer lookup trusts: check them once (4 MB at 1M).
        let offsets = &graph.words()[offsets_at..layer0_at];
        let ordered = offsets.windows(2).all(|w| w[0] <= w[1]);
        if offsets[0] != 0 || !ordered || offsets[count] as usize != upper {
            return Err(bad("upper-layer offsets out of order".into()));
        }
        if count > 0 && graph.level(entry) != max_level {
            return Err(bad(format!("entry {entry} is not on level {max_level}")));
        }
        Ok(graph)
    }

    fn words(&self) -> &[u32] {
        // SAFETY: a map starts on a page boundary (so 4-aligned), any bits are a u32, and the
        // length was checked to be whole words in `open`.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast::<u32>(), self.map.len() / 4) }
    }

    /// The highest layer `slot` is on.
    pub(crate) fn level(&self, slot: u32) -> usize {
        let offsets = &self.words()[self.offsets_at..];
        (offsets[slot as usize + 1] - offsets[slot as usize]) as usize
    }

    /// `slot`'s neighbours on `layer` (empty above its level). Slots are not range-checked
    /// here: the walk skips any at or past `count`.
    pub(crate) fn neighbours(&self, slot: u32, layer: usize) -> &[u32] {
        let words = self.words();
        let block = if layer == 0 {
            let at = self.layer0_at + slot as usize * (1 + self.m0);
            &words[at..at + 1 + self.m0]
        } else {
            if layer > self.level(slot) {
                return &[];
            }
            let first = words[self.offsets_at + slot as usize] as usize;
            let at = self.upper_at + (first + layer - 1) * (1 + self.m);
            &words[at..at + 1 + self.m]
        };
        let n = (block[0] as usize).min(block.len() - 1);
        &block[1..1 + n]
    }

    /// Bytes of the mapped file.
    pub(crate) fn mapped_bytes(&self) -> u64 {
        self.map.len() as u64
    }
}

/// Collects a finished graph's neighbour lists, then writes `graph.adj`.
pub(crate) struct AdjacencyBuilder {
    count: usize,
    m0: usize,
    m: usize,
    layer0: Vec<u32>,
    /// Points above layer 0 with their lists for layers 1..=level.
    upper: Vec<(u32, Vec<Vec<u32>>)>,
}

impl AdjacencyBuilder {
    /// Room for `count` points with at most `m0` neighbours on layer 0 and `m` above.
    pub(crate) fn new(count: usize, m0: usize, m: usize) -> AdjacencyBuilder {
        AdjacencyBuilder {
            count,
            m0,
            m,
            layer0: vec![0; count * (1 + m0)],
            upper: Vec::new(),
        }
    }

    /// Sets `slot`'s neighbours, `layers[l]` on layer l (its level is `layers.len() - 1`).
    /// Lists longer than the layer's room are cut (their order is the builder's, best first).
    pub(crate) fn set(&mut self, slot: u32, mut layers: Vec<Vec<u32>>) -> Result<(), String> {
        if slot as usize >= self.count || layers.is_empty() {
            return Err(format!("point {slot} out of range or without layers"));
        }
        let out_of_range = layers.iter().flatten().find(|&&n| n as usize >= self.count);
        if let Some(n) = out_of_range {
            return Err(format!(
                "point {slot} links to {n}, past {} points",
                self.count
            ));
        }
        let first = &mut layers[0];
        first.truncate(self.m0);
        let at = slot as usize * (1 + self.m0);
        self.layer0[at] = first.len() as u32;
        self.layer0[at + 1..at + 1 + first.len()].copy_from_slice(first);
        if layers.len() > 1 {
            let upper = layers.split_off(1);
            self.upper.push((slot, upper));
        }
        Ok(())
    }

    /// Writes the file; the entry point is the lowest slot on the highest level.
    pub(crate) fn write(mut self, path: &Path) -> Result<(), IndexError> {
        self.upper.sort_unstable_by_key(|(slot, _)| *slot);
        let level = |layers: &Vec<Vec<u32>>| layers.len();
        let max_level = self.upper.iter().map(|(_, l)| level(l)).max().unwrap_or(0);
        let entry = self
            .upper
            .iter()
            .find(|(_, l)| level(l) == max_level)
            .map_or(0, |(slot, _)| *slot);
        let blocks: usize = self.upper.iter().map(|(_, l)| level(l)).sum();
        let io = |e| IndexError::io(path, e);
        let file = std::fs::File::create(path).map_err(io)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut put = |w: u32| out.write_all(&w.to_le_bytes()).map_err(io);
        let header = [
            MAGIC,
            VERSION,
            self.count as u32,
            self.m0 as u32,
            self.m as u32,
        ];
        for w in header
            .into_iter()
            .chain([entry, max_level as u32, blocks as u32])
        {
            put(w)?;
        }
        for _ in 8..HEADER_WORDS {
            put(0)?;
        }
        let mut next = self.upper.iter().peekable();
        let mut offset = 0u32;
        for slot in 0..self.count as u32 {
            put(offset)?;
            if let Some((_, layers)) = next.next_if(|(s, _)| *s == slot) {
                offset += layers.len() as u32;
            }
        }
        put(offset)?;
        for &w in &self.layer0 {
            put(w)?;
        }
        for layer in self.upper.iter().flat_map(|(_, l)| l) {
            let n = layer.len().min(self.m);
            put(n as u32)?;
            for &w in layer[..n].iter().chain(std::iter::repeat_n(&0, self.m - n)) {
                put(w)?;
            }
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)
    }
}
