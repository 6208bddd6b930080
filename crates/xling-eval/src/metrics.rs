//! Ranking metrics over one ranked list with binary relevance, and the language-bias figure.
//!
//! A ranked list is given as relevance flags in rank order, already cut at the rank cut-off;
//! `n_relevant` counts every relevant candidate in the pool, retrieved or not, so relevant
//! candidates beyond the cut-off count as missed (LAReQA's mAP definition).

use std::collections::BTreeMap;

/// Average precision: the mean over all relevant candidates of the precision at its rank
/// (0 for those not retrieved).
pub fn average_precision(ranked: &[bool], n_relevant: usize) -> f64 {
    if n_relevant == 0 {
        return 0.0;
    }
    let mut found = 0usize;
    let mut sum = 0.0;
    for (rank, _) in ranked.iter().enumerate().filter(|(_, &r)| r) {
        found += 1;
        sum += found as f64 / (rank + 1) as f64;
    }
    sum / n_relevant as f64
}

/// Share of the relevant candidates found in the first `k` ranks.
pub fn recall_at(ranked: &[bool], n_relevant: usize, k: usize) -> f64 {
    if n_relevant == 0 {
        return 0.0;
    }
    let found = ranked.iter().take(k).filter(|&&r| r).count();
    found as f64 / n_relevant as f64
}

/// nDCG at `k` with binary gains: DCG over the first `k` ranks divided by the DCG of a list
/// with all relevant candidates first.
pub fn ndcg_at(ranked: &[bool], n_relevant: usize, k: usize) -> f64 {
    let gain = |rank: usize| 1.0 / ((rank + 2) as f64).log2();
    let ideal: f64 = (0..n_relevant.min(k)).map(gain).sum();
    if ideal == 0.0 {
        return 0.0;
    }
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, &r)| r)
        .map(|(rank, _)| gain(rank))
        .sum();
    dcg / ideal
}

/// Share of the first `k` ids of `reference` that also appear in the first `k` of `ranked`
/// (ANN recall against exact search). 1 when the reference is empty.
pub fn overlap_at(ranked: &[u32], reference: &[u32], k: usize) -> f64 {
    let reference = &reference[..reference.len().min(k)];
    if reference.is_empty() {
        return 1.0;
    }
    let ranked = &ranked[..ranked.len().min(k)];
    let common = reference.iter().filter(|id| ranked.contains(id)).count();
    common as f64 / reference.len() as f64
}

/// Language bias in a multilingual pool: which languages the retrieved relevant answers come
/// from, against what an unbiased retriever would give.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LanguageBias {
    /// Rank cut-off the shares were counted at.
    pub k: usize,
    /// Share of the relevant answers retrieved in the first `k` ranks, per answer language.
    pub retrieved_share: BTreeMap<String, f64>,
    /// Share of each language among all relevant answers (uniform when every question has an
    /// answer in every language).
    pub expected_share: BTreeMap<String, f64>,
    /// Total variation distance between the two: 0 = no bias, 1 = every retrieved answer from
    /// a language that holds none of the expected share.
    pub deviation: f64,
    /// Over questions with a relevant answer in the ranked list: how often the best-ranked
    /// one is in the question's own language.
    pub same_language_first: f64,
    /// That rate for an unbiased retriever: mean over those questions of 1 / (answer languages).
    pub same_language_first_unbiased: f64,
}

/// Accumulates [`LanguageBias`] over questions.
#[derive(Debug, Clone)]
pub struct BiasCounter {
    k: usize,
    retrieved: BTreeMap<String, f64>,
    expected: BTreeMap<String, f64>,
    /// Questions with at least one relevant answer in the ranked list.
    answered: usize,
    same_first: usize,
    unbiased_first: f64,
}

impl BiasCounter {
    pub fn new(k: usize) -> BiasCounter {
        BiasCounter {
            k,
            retrieved: BTreeMap::new(),
            expected: BTreeMap::new(),
            answered: 0,
            same_first: 0,
            unbiased_first: 0.0,
        }
    }

    /// One question: its language, the languages of its ranked list (relevant entries only,
    /// `None` for irrelevant ones) and the languages of all its relevant answers.
    pub fn add(&mut self, query_language: &str, ranked: &[Option<&str>], relevant: &[&str]) {
        if relevant.is_empty() {
            return;
        }
        for language in relevant {
            *self.expected.entry(language.to_string()).or_default() += 1.0;
        }
        for language in ranked.iter().take(self.k).flatten() {
            *self.retrieved.entry(language.to_string()).or_default() += 1.0;
        }
        let Some(&first) = ranked.iter().flatten().next() else {
            return;
        };
        self.answered += 1;
        if first == query_language {
            self.same_first += 1;
        }
        let mut distinct: Vec<&str> = relevant.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        self.unbiased_first += 1.0 / distinct.len() as f64;
    }

    pub fn finish(&self) -> LanguageBias {
        let normalize = |counts: &BTreeMap<String, f64>| -> BTreeMap<String, f64> {
            let total: f64 = counts.values().sum();
            counts
                .iter()
                .map(|(l, c)| (l.clone(), if total > 0.0 { c / total } else { 0.0 }))
                .collect()
        };
        let retrieved_share = normalize(&self.retrieved);
        let expected_share = normalize(&self.expected);
        let deviation = 0.5
            * expected_share
                .keys()
                .chain(retrieved_share.keys())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .map(|l| {
                    let p = retrieved_share.get(l).copied().unwrap_or(0.0);
                    let q = expected_share.get(l).copied().unwrap_or(0.0);
                    (p - q).abs()
                })
                .sum::<f64>();
        let n = self.answered.max(1) as f64;
        LanguageBias {
            k: self.k,
            retrieved_share,
            expected_share,
            deviation,
            same_language_first: self.same_first as f64 / n,
            same_language_first_unbiased: self.unbiased_first / n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn average_precision_by_hand() {
        // Relevant at ranks 1 and 3 of 2 relevant: (1/1 + 2/3) / 2.
        assert!(close(
            average_precision(&[true, false, true], 2),
            (1.0 + 2.0 / 3.0) / 2.0
        ));
        // One of three relevant retrieved, at rank 2: (1/2) / 3; the other two are missed.
        assert!(close(
            average_precision(&[false, true, false], 3),
            0.5 / 3.0
        ));
        assert!(close(average_precision(&[false, false], 1), 0.0));
        assert!(close(average_precision(&[true], 1), 1.0));
        assert!(close(average_precision(&[], 0), 0.0));
    }

    #[test]
    fn recall_by_hand() {
        let ranked = [false, true, false, true];
        assert!(close(recall_at(&ranked, 4, 1), 0.0));
        assert!(close(recall_at(&ranked, 4, 2), 0.25));
        assert!(close(recall_at(&ranked, 4, 10), 0.5));
        assert!(close(recall_at(&ranked, 0, 10), 0.0));
    }

    #[test]
    fn ndcg_by_hand() {
        // One relevant at rank 2: (1/log2 3) / (1/log2 2).
        assert!(close(ndcg_at(&[false, true], 1, 10), 1.0 / 3f64.log2()));
        // Two relevant at ranks 1 and 3: (1 + 1/2) / (1 + 1/log2 3).
        let expected = 1.5 / (1.0 + 1.0 / 3f64.log2());
        assert!(close(ndcg_at(&[true, false, true], 2, 10), expected));
        // The cut-off drops rank 3 and caps the ideal list at k.
        assert!(close(ndcg_at(&[false, false, true], 1, 2), 0.0));
        assert!(close(ndcg_at(&[true, true], 5, 2), 1.0));
    }

    #[test]
    fn overlap_by_hand() {
        assert!(close(overlap_at(&[1, 2, 3, 4], &[4, 3, 9, 8], 2), 0.0));
        assert!(close(overlap_at(&[1, 2, 3, 4], &[4, 3, 2, 1], 4), 1.0));
        assert!(close(overlap_at(&[1, 7], &[1, 2], 10), 0.5));
        assert!(close(overlap_at(&[], &[], 10), 1.0));
    }

    #[test]
    fn language_bias_by_hand() {
        let mut bias = BiasCounter::new(2);
        // An English question finds its English answer first and its German one at rank 3
        // (beyond k = 2); a German question finds both answers, German first.
        bias.add("en", &[Some("en"), None, Some("de")], &["en", "de"]);
        bias.add("de", &[Some("de"), Some("en")], &["de", "en"]);
        let b = bias.finish();
        assert!(close(b.retrieved_share["en"], 2.0 / 3.0));
        assert!(close(b.retrieved_share["de"], 1.0 / 3.0));
        assert!(close(b.expected_share["en"], 0.5));
        // |2/3 - 1/2| + |1/3 - 1/2| = 1/3, halved.
        assert!(close(b.deviation, 1.0 / 6.0));
        assert!(close(b.same_language_first, 1.0));
        assert!(close(b.same_language_first_unbiased, 0.5));

        let mut fair = BiasCounter::new(10);
        fair.add("en", &[Some("de"), Some("en")], &["en", "de"]);
        fair.add("de", &[Some("de"), Some("en")], &["de", "en"]);
        // Nothing relevant retrieved: counts in the expected shares only.
        fair.add("de", &[None, None], &["de", "en"]);
        let f = fair.finish();
        assert!(close(f.deviation, 0.0));
        assert!(close(f.expected_share["de"], 0.5));
        assert!(close(f.same_language_first, 0.5));
    }
}
