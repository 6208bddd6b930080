//! Scalar int8 quantization with a range per dimension: `q = round(v / scale[d])`, clamped to
//! -127..=127, where `scale[d] = max |v[d]| / 127` over the corpus.
//!
//! Symmetric (no offset) so that the walk's distance stays an exact i32 dot of the quantized
//! rows ([`crate::distance::DotI8`]). That dot weighs dimension `d` by `1 / scale[d]^2`, so it
//! ranks close to, not exactly like, the fp32 dot; the walk fetches `oversample x k`
//! candidates and rescoring with the fp32 rows (mapped `vectors.f32`) restores exact scores.

/// Per-dimension scale: the largest magnitude of each dimension over `rows`, over 127.
pub(crate) fn fit(rows: &[f32], dim: usize) -> Vec<f32> {
    let mut max = vec![0f32; dim];
    for row in rows.chunks_exact(dim) {
        for (m, v) in max.iter_mut().zip(row) {
            *m = m.max(v.abs());
        }
    }
    // A dimension that is always 0 quantizes to 0 whatever its scale; avoid dividing by 0.
    max.into_iter()
        .map(|m| if m > 0.0 { m / 127.0 } else { 1.0 })
        .collect()
}

/// Quantizes one row (a query, or a stored row) with `scale`, appending to `out`.
pub(crate) fn quantize(row: &[f32], scale: &[f32], out: &mut Vec<i8>) {
    out.extend(
        row.iter()
            .zip(scale)
            .map(|(v, s)| (v / s).round().clamp(-127.0, 127.0) as i8),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dimension_uses_its_full_range() {
        let rows = [0.5f32, -0.005, 0.0, -0.25, 0.02, 0.0];
        let scale = fit(&rows, 3);
        assert_eq!(scale[2], 1.0);
        let mut q = Vec::new();
        quantize(&rows[..3], &scale, &mut q);
        assert_eq!(q, vec![127, -32, 0]);
        q.clear();
        quantize(&[2.0, 0.0, 0.0], &scale, &mut q);
        assert_eq!(q[0], 127, "values past the corpus range clamp");
    }
}
