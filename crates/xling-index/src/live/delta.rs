//! [`Delta`]: the passages upserted since the base was built, searched by exact scan.
//!
//! It stays small (compaction folds it into a new base past a threshold), so a scan of every
//! row costs less than a graph would, and rows can be replaced and removed in place.

use std::collections::HashMap;

use crate::backend::Found;
use crate::corpus::Passage;
use crate::distance::score;

/// Upserted passages and their unit vectors, row `i` at `vectors[i * dim..]`.
#[derive(Debug, Default)]
pub(crate) struct Delta {
    dim: usize,
    passages: Vec<Passage>,
    vectors: Vec<f32>,
    rows: HashMap<String, usize>,
}

impl Delta {
    pub(crate) fn new(dim: usize) -> Delta {
        Delta {
            dim,
            ..Delta::default()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.passages.len()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Passage> {
        self.rows.get(id).map(|&row| &self.passages[row])
    }

    /// Every row: passage and vector.
    pub(crate) fn rows(&self) -> impl Iterator<Item = (&Passage, &[f32])> {
        self.passages
            .iter()
            .zip(self.vectors.chunks_exact(self.dim.max(1)))
    }

    /// Adds `passage` or replaces the row with its id; returns the replaced passage.
    pub(crate) fn put(&mut self, passage: Passage, vector: &[f32]) -> Option<Passage> {
        debug_assert_eq!(vector.len(), self.dim);
        match self.rows.get(&passage.id) {
            Some(&row) => {
                self.vectors[row * self.dim..(row + 1) * self.dim].copy_from_slice(vector);
                Some(std::mem::replace(&mut self.passages[row], passage))
            }
            None => {
                self.rows.insert(passage.id.clone(), self.passages.len());
                self.passages.push(passage);
                self.vectors.extend_from_slice(vector);
                None
            }
        }
    }

    /// Removes the row with this id (the last row moves into its place).
    pub(crate) fn remove(&mut self, id: &str) -> Option<Passage> {
        let row = self.rows.remove(id)?;
        let last = self.passages.len() - 1;
        let removed = self.passages.swap_remove(row);
        if row != last {
            let (dim, moved) = (self.dim, row * self.dim);
            self.vectors
                .copy_within(last * dim..(last + 1) * dim, moved);
            self.rows.insert(self.passages[row].id.clone(), row);
        }
        self.vectors.truncate(last * self.dim);
        Some(removed)
    }

    /// The `k` best rows for `query` among the `languages` (`None` or empty: all).
    pub(crate) fn scan(&self, query: &[f32], k: usize, languages: Option<&[String]>) -> Vec<Found> {
        let wanted =
            |p: &Passage| languages.is_none_or(|l| l.is_empty() || l.contains(&p.language));
        let mut found: Vec<Found> = self
            .rows()
            .filter(|(p, _)| wanted(p))
            .map(|(p, v)| Found {
                passage: p.clone(),
                score: score(query, v),
            })
            .collect();
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        found.truncate(k);
        found
    }

    /// Bytes the rows hold.
    pub(crate) fn bytes(&self) -> usize {
        self.vectors.len() * std::mem::size_of::<f32>()
            + self
                .passages
                .iter()
                .map(|p| p.id.len() + p.text.len() + p.title.as_ref().map_or(0, String::len))
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, language: &str) -> Passage {
        Passage {
            id: id.into(),
            text: id.into(),
            language: language.into(),
            title: None,
        }
    }

    #[test]
    fn put_replaces_by_id_and_remove_keeps_the_other_rows_intact() {
        let mut delta = Delta::new(2);
        assert!(delta.put(p("a", "en"), &[1.0, 0.0]).is_none());
        assert!(delta.put(p("b", "de"), &[0.0, 1.0]).is_none());
        assert!(delta.put(p("c", "en"), &[0.6, 0.8]).is_none());
        assert_eq!(delta.put(p("a", "fr"), &[0.8, 0.6]).unwrap().language, "en");
        assert_eq!(delta.len(), 3);
        assert_eq!(delta.remove("a").unwrap().language, "fr");
        assert!(delta.remove("a").is_none());
        // "c" moved into a's row: its vector must have moved with it.
        let rows: Vec<_> = delta
            .rows()
            .map(|(p, v)| (p.id.clone(), v.to_vec()))
            .collect();
        assert_eq!(
            rows,
            vec![("c".into(), vec![0.6, 0.8]), ("b".into(), vec![0.0, 1.0])]
        );
        let best = delta.scan(&[0.0, 1.0], 1, None);
        assert_eq!(best[0].passage.id, "b");
        let english = delta.scan(&[0.0, 1.0], 5, Some(&["en".to_string()][..]));
        assert_eq!(english.len(), 1);
        assert_eq!(english[0].passage.id, "c");
    }
}
