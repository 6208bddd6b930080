//! [`Packed`]: the input tensors of one encoder instance, kept between batches.
//!
//! A batch is right-padded to its longest row into buffers that only grow: a batch no larger
//! (in rows x columns) than one seen before is written in place, without allocating. Fixed
//! buffer addresses are also what ONNX Runtime's IO binding and CUDA graphs need (inputs bound
//! once, replayed per shape).

use crate::Tokens;

#[derive(Debug, Default)]
pub struct Packed {
    ids: Vec<i64>,
    mask: Vec<i64>,
    /// All zeros (graphs with `token_type_ids` get one segment); only grows.
    types: Vec<i64>,
    rows: usize,
    cols: usize,
}

impl Packed {
    /// Packs `batch` (not empty) padded with `pad_id`; returns (rows, columns).
    pub fn pack(&mut self, batch: &[&Tokens], pad_id: i64) -> (usize, usize) {
        let rows = batch.len();
        let cols = batch.iter().map(|t| t.len()).max().unwrap_or(0).max(1);
        let n = rows * cols;
        self.ids.clear();
        self.ids.resize(n, pad_id);
        self.mask.clear();
        self.mask.resize(n, 0);
        if self.types.len() < n {
            self.types.resize(n, 0);
        }
        for (r, tokens) in batch.iter().enumerate() {
            let row = r * cols..r * cols + tokens.len();
            self.ids[row.clone()].copy_from_slice(&tokens.ids);
            self.mask[row].fill(1);
        }
        (self.rows, self.cols) = (rows, cols);
        (rows, cols)
    }

    pub fn ids(&self) -> &[i64] {
        &self.ids
    }

    pub fn mask(&self) -> &[i64] {
        &self.mask
    }

    pub fn types(&self) -> &[i64] {
        &self.types[..self.rows * self.cols]
    }

    /// Where the id buffer lives and how much it holds: unchanged across batches that fit.
    pub fn storage(&self) -> (*const i64, usize) {
        (self.ids.as_ptr(), self.ids.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(ids: &[i64]) -> Tokens {
        Tokens {
            ids: ids.to_vec(),
            truncated: false,
        }
    }

    #[test]
    fn pads_right_to_the_longest_row() {
        let (a, b) = (tokens(&[5, 6, 7]), tokens(&[8]));
        let mut packed = Packed::default();
        assert_eq!(packed.pack(&[&a, &b], 0), (2, 3));
        assert_eq!(packed.ids(), &[5, 6, 7, 8, 0, 0]);
        assert_eq!(packed.mask(), &[1, 1, 1, 1, 0, 0]);
        assert_eq!(packed.types(), &[0; 6]);
    }

    #[test]
    fn batches_that_fit_reuse_the_same_buffers() {
        let long = tokens(&[1; 20]);
        let short = tokens(&[2; 7]);
        let mut packed = Packed::default();
        packed.pack(&[&long; 8], 0);
        let first = packed.storage();
        let mask_at = packed.mask().as_ptr();
        for batch in [
            vec![&long; 8],
            vec![&short; 8],
            vec![&long; 3],
            vec![&short; 20],
        ] {
            packed.pack(&batch, 0);
            assert_eq!(
                packed.storage(),
                first,
                "reallocated for {} rows",
                batch.len()
            );
            assert_eq!(packed.mask().as_ptr(), mask_at);
        }
        // The last batch (20 x 7) left no trace of the earlier, longer rows.
        assert_eq!(packed.ids(), &[2; 140][..]);
        packed.pack(&[&long; 9], 0);
        assert!(packed.storage().1 >= 180, "grows when a batch does not fit");
    }
}
