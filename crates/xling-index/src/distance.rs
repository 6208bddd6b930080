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
        (127 * 127 * a.len() as i64 - i64::from(dot_i8(a, b))) as f32
    }
}

/// Cosine score of a hit as reported to callers: `1 - distance`.
pub fn score(a: &[f32], b: &[f32]) -> f32 {
    score_of_dot(dot(a, b))
}

/// [`score`] from a dot product already computed (the walk's): `1 - UnitDot`'s distance, with
/// the same arithmetic, so a walk's hit and an exact scan's compare equal.
pub(crate) fn score_of_dot(dot: f32) -> f32 {
    1.0 - (1.0 - dot).max(0.0)
}

/// Dot product of two equal-length rows. With AVX2 and FMA (checked once at run time; the
/// release build targets plain x86-64) it runs 8 lanes x 4 accumulators of fused multiply-adds:
/// the graph build and every walk spend most of their time here.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if simd::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        return unsafe { simd::dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

/// Eight independent accumulators so the compiler can vectorize it (a plain `zip().sum()` is
/// a serial dependency chain on f32).
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
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

/// Exact dot product of two int8 rows (at most 127^2 x len, exact in i32 and in f32 up to
/// about 1,000 dimensions).
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if simd::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { simd::dot_i8_avx2(a, b) };
    }
    dot_i8_portable(a, b)
}

#[inline(always)]
fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| i32::from(i16::from(x) * i16::from(y)))
        .sum()
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    pub(super) fn has_avx2_fma() -> bool {
        // The std macro caches its answer in an atomic: one load per call.
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (all loads): `i + 8 <= n` or `i + 32 <= n` before each unaligned load.
        while i + 32 <= n {
            for (j, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_loadu_ps(pa.add(i + 8 * j));
                let y = _mm256_loadu_ps(pb.add(i + 8 * j));
                *acc = _mm256_fmadd_ps(x, y, *acc);
            }
            i += 32;
        }
        while i + 8 <= n {
            let x = _mm256_loadu_ps(pa.add(i));
            let y = _mm256_loadu_ps(pb.add(i));
            acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
            i += 8;
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
        let pairs = _mm_add_ps(half, _mm_movehl_ps(half, half));
        let one = _mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1));
        let tail: f32 = a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum();
        _mm_cvtss_f32(one) + tail
    }

    /// # Safety
    /// The CPU must support AVX2 (the loop is the portable one, vectorized for AVX2).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
        super::dot_i8_portable(a, b)
    }
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
    fn dispatched_dots_match_the_portable_ones() {
        for len in [0, 1, 7, 8, 31, 32, 33, 384, 1027] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect();
            let b: Vec<f32> = (0..len)
                .map(|i| ((i * 53 % 89) as f32 - 44.0) / 44.0)
                .collect();
            let (fast, portable) = (dot(&a, &b), dot_portable(&a, &b));
            assert!(
                (fast - portable).abs() < 1e-3,
                "len {len}: {fast} vs {portable}"
            );
            let qa: Vec<i8> = a.iter().map(|v| (v * 127.0) as i8).collect();
            let qb: Vec<i8> = b.iter().map(|v| (v * 127.0) as i8).collect();
            let naive: i32 = qa.iter().zip(&qb).map(|(&x, &y)| x as i32 * y as i32).sum();
            assert_eq!(dot_i8(&qa, &qb), naive, "len {len}");
        }
        assert_eq!(dot_i8(&[-128, 127], &[-128, 127]), 128 * 128 + 127 * 127);
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
