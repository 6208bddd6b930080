//! Prints the numbers behind the index defaults (a benchmark, not a test).
//!
//! `cargo run --release -p xling-index --example tune -- params [N] [DIM]`: build time and
//! recall@10 vs exact for a grid of (m, ef_construction), at several search ef, on random
//! vectors; `... -- params INDEX_DIR`: the same on the real embeddings of a built index, 500
//! evenly spaced rows held out as queries (on a parallel corpus such as XQuAD-R their nearest
//! neighbours are their translations: the cross-lingual case).
//! `... --example tune -- filter [N] [DIM]`: per-query time of a language-filtered search by
//! the graph (oversampled, then filtered) vs an exact scan of the subset, for subsets of different sizes.
//! Vectors are random unit vectors (the hard case for HNSW: no cluster structure).

use std::collections::HashSet;
use std::time::Instant;

#[path = "../tests/common/mod.rs"]
mod common;

use common::unit_vectors;
use xling_index::{BuildParams, Corpus, EmbeddedCorpus, Index, Passage};

const QUERIES: usize = 200;
const K: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("params");
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let dim: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(384);
    match mode {
        "params" => match args.get(1).filter(|a| a.parse::<usize>().is_err()) {
            Some(dir) => {
                let (vectors, dim) = index_vectors(dir);
                let every = (vectors.len() / dim / 500).max(2);
                let (mut data, mut queries) = (Vec::new(), Vec::new());
                for (i, row) in vectors.chunks_exact(dim).enumerate() {
                    let side = if i % every == 0 {
                        &mut queries
                    } else {
                        &mut data
                    };
                    side.extend_from_slice(row);
                }
                params(data, &queries, dim)
            }
            None => params(unit_vectors(n, dim, 1), &unit_vectors(QUERIES, dim, 2), dim),
        },
        "filter" => filter(n, dim),
        other => eprintln!("unknown mode {other}; use `params` or `filter`"),
    }
}

/// All stored embeddings of an index folder, row-major, and their dim.
fn index_vectors(dir: &str) -> (Vec<f32>, usize) {
    let index = Index::load(std::path::Path::new(dir)).expect("an index folder");
    let rows = (0..index.len() as u32).flat_map(|slot| index.embedding(slot).unwrap().to_vec());
    (rows.collect(), index.dim())
}

/// Passages over `vectors` whose language is given by `language(i)`.
fn build(
    vectors: Vec<f32>,
    dim: usize,
    params: &BuildParams,
    language: impl Fn(usize) -> String,
) -> (Index, f64) {
    let n = vectors.len() / dim;
    let passages = (0..n)
        .map(|i| Passage {
            id: i.to_string(),
            text: "x".into(),
            language: language(i),
            title: None,
        })
        .collect();
    let input = EmbeddedCorpus {
        corpus: Corpus::from_passages(passages).expect("valid passages"),
        embeddings: vectors,
        dim,
        model_id: "random".into(),
        encode_seconds: 0.0,
    };
    let started = Instant::now();
    let mut index = Index::build(input, params, &mut |_, _| {}).expect("build");
    index.set_exact_subset_max(0); // measure the graph, not the exact scan
    (index, started.elapsed().as_secs_f64())
}

fn params(vectors: Vec<f32>, queries: &[f32], dim: usize) {
    let n = vectors.len() / dim;
    println!("n={n} dim={dim} queries={} k={K}", queries.len() / dim);
    println!("m   ef_c  build_s  pass/s  | recall@10 (us/query) at ef 16 / 32 / 64 / 128 / 256");
    for (m, ef_c) in [(8, 200), (16, 100), (16, 200), (16, 400), (32, 200)] {
        let params = BuildParams {
            m,
            ef_construction: ef_c,
            threads: 0,
        };
        let (index, secs) = build(vectors.clone(), dim, &params, |_| "en".into());
        let truth: Vec<HashSet<u32>> = queries
            .chunks_exact(dim)
            .map(|q| {
                index
                    .exact_search(q, K, None)
                    .unwrap()
                    .iter()
                    .map(|h| h.slot)
                    .collect()
            })
            .collect();
        print!("{m:<3} {ef_c:<5} {secs:<8.2} {:<7.0} |", n as f64 / secs);
        for ef in [16, 32, 64, 128, 256] {
            let started = Instant::now();
            let mut found = 0;
            for (q, truth) in queries.chunks_exact(dim).zip(&truth) {
                let hits = index.search(q, K, ef, None).unwrap();
                found += hits.iter().filter(|h| truth.contains(&h.slot)).count();
            }
            let count = truth.len();
            let us = started.elapsed().as_secs_f64() * 1e6 / count as f64;
            print!(" {:.3} ({us:.0})", found as f64 / (count * K) as f64);
        }
        println!();
    }
}

fn filter(n: usize, dim: usize) {
    // Language j holds a share 2^-(j+1) of the passages: subsets from n/2 down to a handful.
    let codes = [
        "en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "fi", "el", "tr", "ar",
    ];
    let language = |i: usize| codes[(i + 1).trailing_zeros().min(12) as usize].to_string();
    let (mut index, _) = build(
        unit_vectors(n, dim, 1),
        dim,
        &BuildParams::default(),
        language,
    );
    let queries = unit_vectors(QUERIES, dim, 3);
    println!("n={n} dim={dim} queries={QUERIES} k={K}; us/query and recall@10 of the HNSW path");
    println!("lang subset | scan_us | hnsw_us ef=64 recall | hnsw_us ef=128 recall");
    for code in codes {
        let subset = index.manifest().languages.get(code).copied().unwrap_or(0);
        let filter = vec![code.to_string()];
        index.set_exact_subset_max(usize::MAX);
        let started = Instant::now();
        let truth: Vec<HashSet<u32>> = queries
            .chunks_exact(dim)
            .map(|q| {
                index
                    .search(q, K, 64, Some(&filter))
                    .unwrap()
                    .iter()
                    .map(|h| h.slot)
                    .collect()
            })
            .collect();
        let scan_us = started.elapsed().as_secs_f64() * 1e6 / QUERIES as f64;
        print!("{code}   {subset:<6} | {scan_us:<7.0}");
        index.set_exact_subset_max(0);
        for ef in [64, 128] {
            let started = Instant::now();
            let mut found = 0;
            for (q, truth) in queries.chunks_exact(dim).zip(&truth) {
                let hits = index.search(q, K, ef, Some(&filter)).unwrap();
                found += hits.iter().filter(|h| truth.contains(&h.slot)).count();
            }
            let us = started.elapsed().as_secs_f64() * 1e6 / QUERIES as f64;
            let recall = found as f64 / (QUERIES * K.min(subset)).max(1) as f64;
            print!(" | {us:<7.0} {recall:.3}");
        }
        println!();
    }
}
