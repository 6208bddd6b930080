//! Distances for the graph: `1 - dot` over L2-normalized fp32 rows, clamped at zero
//! ([`UnitDot`]), and the int8 walk's dot ([`DotI8`]).

use hnsw_rs::anndists::dist::Distance;

/// `1 - dot(a, b)` clamped at `>= 0`; for unit vectors that is `1 - cosine`.
///
/// Why not anndists' `DistDot`: it asserts `1 - dot >= 0` and panics when rounding makes a
/// vector's dot with itself `1.0000001`, which every self-query hits sooner or later.
/// The type name is stored in the HNSW dump and checked on reload: do not rename it.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitDot;

impl Distance<f32> for UnitDot {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
}

/// Distance between int8-quantized rows for the graph walk: `127^2 x dim - dot`, the dot
/// exact in i32 (non-negative, smaller = closer). Only its order matters: the walk's
/// candidates are rescored with the fp32 rows. Its name is stored in the HNSW dump.
#[derive(Debug, Default, Clone, Copy)]
pub struct DotI8;

impl Distance<i8> for DotI8 {
    fn eval(&self, a: &[i8], b: &[i8]) -> f32 {
        let dot: i32 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| i32::from(x) * i32::from(y))
            .sum();
        (127 * 127 * a.len() as i64 - i64::from(dot)) as f32
    }
}

/// Cosine score of a hit as reported to callers: `1 - distance`.
pub fn score(a: &[f32], b: &[f32]) -> f32 {
    1.0 - UnitDot.eval(a, b)
}

/// Dot product with eight independent accumulators so the compiler can vectorize it
/// (a plain `zip().sum()` is a serial dependency chain on f32).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let tail: f32 = chunks_a
        .remainder()
        .iter()
        .zip(chunks_b.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_for_odd_lengths() {
        let a: Vec<f32> = (0..21).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..21).map(|i| 1.0 / (i as f32 + 1.0)).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-4);
    }

    #[test]
    fn distance_is_clamped_and_self_distance_is_zero() {
        let v = [0.6f32, 0.8];
        let scaled = [0.6000001f32, 0.8000001];
        assert_eq!(UnitDot.eval(&v, &scaled), 0.0);
        assert_eq!(UnitDot.eval(&v, &[-0.6, -0.8]), 2.0);
        assert_eq!(score(&v, &v), 1.0);
    }
}
