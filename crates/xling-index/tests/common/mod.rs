//! Shared fixtures: random unit vectors and passages with a known language mix.

#![allow(dead_code)] // each test binary uses a different subset

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use xling_index::{BuildParams, Corpus, EmbeddedCorpus, Index, Passage};

pub const MODEL: &str = "test-model";

/// `n` random unit vectors of `dim` (uniform in the cube, then normalized), row-major.
pub fn unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let row: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        out.extend(row.iter().map(|v| v / norm));
    }
    out
}

/// Language of passage `i`: every 50th is Greek (rare), the rest cycle through en/de/zh.
pub fn language_of(i: usize) -> &'static str {
    if i % 50 == 7 {
        "el"
    } else {
        ["en", "de", "zh"][i % 3]
    }
}

pub fn passages(n: usize) -> Vec<Passage> {
    (0..n)
        .map(|i| Passage {
            id: format!("p{i}"),
            text: format!("passage number {i}"),
            language: language_of(i).to_string(),
            title: (i % 2 == 0).then(|| format!("title {i}")),
        })
        .collect()
}

/// An in-memory index over `n` random passages of `dim`.
pub fn build(n: usize, dim: usize, params: &BuildParams) -> Index {
    let input = EmbeddedCorpus {
        corpus: Corpus::from_passages(passages(n)).unwrap(),
        embeddings: unit_vectors(n, dim, 42),
        dim,
        model_id: MODEL.to_string(),
        encode_seconds: 0.0,
    };
    Index::build(input, params, &mut |_, _| {}).unwrap()
}
