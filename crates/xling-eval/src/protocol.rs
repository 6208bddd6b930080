//! The evaluation protocol: settings (X->Y and X->all), ranked lists per setting, and the
//! scores computed from them (per setting, macro-averaged per kind, ANN against exact).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::lareqa::Dataset;
use crate::metrics::{self, BiasCounter, LanguageBias};

/// Recall is reported at these ranks.
pub const RECALL_KS: [usize; 4] = [1, 5, 10, 100];
/// nDCG and ANN-vs-exact recall are reported at this rank.
pub const K10: usize = 10;

/// What a setting's pool is, relative to the question language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// X -> X.
    Mono,
    /// X -> Y, X != Y.
    Cross,
    /// X -> the pool of all evaluated languages.
    Multi,
}

/// One query language against one pool.
#[derive(Debug, Clone)]
pub struct Setting {
    pub query_language: String,
    /// The pool language; `None` is the multilingual pool of all evaluated languages.
    pub pool: Option<String>,
    pub kind: Kind,
    /// Indices into [`Dataset::questions`]: the questions of `query_language` that have at
    /// least one relevant candidate in the pool.
    pub questions: Vec<usize>,
}

impl Setting {
    /// `de->es`, `de->all`.
    pub fn key(&self) -> String {
        format!(
            "{}->{}",
            self.query_language,
            self.pool.as_deref().unwrap_or("all")
        )
    }

    /// The language filter that restricts the index to this setting's pool.
    pub fn pool_languages(&self, all: &[String]) -> Vec<String> {
        match &self.pool {
            Some(language) => vec![language.clone()],
            None => all.to_vec(),
        }
    }
}

/// Every setting, in report order: for each query language X, X->Y for each Y, then X->all.
pub fn settings(dataset: &Dataset) -> Vec<Setting> {
    let mut out = Vec::new();
    for x in &dataset.languages {
        let pools = dataset.languages.iter().map(Some).chain([None]);
        for pool in pools {
            let kind = match pool {
                None => Kind::Multi,
                Some(y) if y == x => Kind::Mono,
                Some(_) => Kind::Cross,
            };
            let setting = Setting {
                query_language: x.clone(),
                pool: pool.cloned(),
                kind,
                questions: Vec::new(),
            };
            let pool_languages = setting.pool_languages(&dataset.languages);
            let questions = dataset
                .questions
                .iter()
                .enumerate()
                .filter(|(_, q)| &q.language == x)
                .filter(|(_, q)| !dataset.relevant(q, &pool_languages).is_empty())
                .map(|(i, _)| i)
                .collect();
            out.push(Setting {
                questions,
                ..setting
            });
        }
    }
    out
}

/// Ranked candidate indices (into [`Dataset::candidates`]), best first:
/// `rankings[setting][slot]` answers `settings[setting].questions[slot]`.
pub type Rankings = Vec<Vec<Vec<u32>>>;

/// Empty rankings shaped like `settings`, for backends to fill.
pub fn empty_rankings(settings: &[Setting]) -> Rankings {
    settings
        .iter()
        .map(|s| vec![Vec::new(); s.questions.len()])
        .collect()
}

/// Scores of one setting, averaged over its questions.
#[derive(Debug, Clone, Serialize)]
pub struct SettingScore {
    pub key: String,
    pub kind: Kind,
    pub questions: usize,
    pub map: f64,
    /// Recall at each of [`RECALL_KS`], keyed by k.
    pub recall: BTreeMap<usize, f64>,
    pub ndcg_at_10: f64,
}

/// Macro averages (over settings) of one metric, per kind; `None` where a kind has no setting
/// (a single language has no cross-lingual setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ByKind {
    pub mono: Option<f64>,
    pub cross: Option<f64>,
    pub multi: Option<f64>,
}

impl ByKind {
    fn macro_average(scores: &[SettingScore], metric: impl Fn(&SettingScore) -> f64) -> ByKind {
        let mean = |kind: Kind| {
            let values: Vec<f64> = scores
                .iter()
                .filter(|s| s.kind == kind && s.questions > 0)
                .map(&metric)
                .collect();
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        };
        ByKind {
            mono: mean(Kind::Mono),
            cross: mean(Kind::Cross),
            multi: mean(Kind::Multi),
        }
    }

    /// `self - other` where both are present.
    pub fn minus(&self, other: &ByKind) -> ByKind {
        let diff = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        ByKind {
            mono: diff(self.mono, other.mono),
            cross: diff(self.cross, other.cross),
            multi: diff(self.multi, other.multi),
        }
    }
}

/// Everything computed from one set of rankings.
#[derive(Debug, Clone, Serialize)]
pub struct Scores {
    pub settings: Vec<SettingScore>,
    /// Macro mAP per kind.
    pub map: ByKind,
    pub recall_at_10: ByKind,
    pub ndcg_at_10: ByKind,
    /// Over the multilingual settings; `None` when there are none.
    pub language_bias: Option<LanguageBias>,
}

impl Scores {
    /// Scores `rankings` (cut at `top_k`) against the dataset's relevance.
    pub fn compute(
        dataset: &Dataset,
        settings: &[Setting],
        rankings: &Rankings,
        top_k: usize,
    ) -> Scores {
        let mut bias = BiasCounter::new(K10);
        let mut any_multi = false;
        let per_setting: Vec<SettingScore> = settings
            .iter()
            .zip(rankings)
            .map(|(setting, lists)| {
                let pool = setting.pool_languages(&dataset.languages);
                let mut sum = Accumulator::default();
                for (&qi, list) in setting.questions.iter().zip(lists) {
                    let question = &dataset.questions[qi];
                    let relevant = dataset.relevant(question, &pool);
                    let list = &list[..list.len().min(top_k)];
                    let flags: Vec<bool> = list
                        .iter()
                        .map(|c| relevant.contains(&(*c as usize)))
                        .collect();
                    sum.add(&flags, relevant.len());
                    if setting.kind == Kind::Multi {
                        any_multi = true;
                        let language = |c: usize| dataset.candidates[c].language.as_str();
                        let ranked: Vec<Option<&str>> = list
                            .iter()
                            .zip(&flags)
                            .map(|(&c, &r)| r.then(|| language(c as usize)))
                            .collect();
                        let answers: Vec<&str> = relevant.iter().map(|&c| language(c)).collect();
                        bias.add(&question.language, &ranked, &answers);
                    }
                }
                sum.finish(setting)
            })
            .collect();
        Scores {
            map: ByKind::macro_average(&per_setting, |s| s.map),
            recall_at_10: ByKind::macro_average(&per_setting, |s| s.recall[&K10]),
            ndcg_at_10: ByKind::macro_average(&per_setting, |s| s.ndcg_at_10),
            settings: per_setting,
            language_bias: any_multi.then(|| bias.finish()),
        }
    }

    /// mAP of a setting by key.
    pub fn map_of(&self, key: &str) -> Option<f64> {
        self.settings.iter().find(|s| s.key == key).map(|s| s.map)
    }
}

#[derive(Default)]
struct Accumulator {
    n: usize,
    ap: f64,
    recall: [f64; RECALL_KS.len()],
    ndcg: f64,
}

impl Accumulator {
    fn add(&mut self, flags: &[bool], n_relevant: usize) {
        self.n += 1;
        self.ap += metrics::average_precision(flags, n_relevant);
        for (sum, k) in self.recall.iter_mut().zip(RECALL_KS) {
            *sum += metrics::recall_at(flags, n_relevant, k);
        }
        self.ndcg += metrics::ndcg_at(flags, n_relevant, K10);
    }

    fn finish(&self, setting: &Setting) -> SettingScore {
        let n = self.n.max(1) as f64;
        SettingScore {
            key: setting.key(),
            kind: setting.kind,
            questions: self.n,
            map: self.ap / n,
            recall: RECALL_KS
                .iter()
                .zip(self.recall)
                .map(|(&k, r)| (k, r / n))
                .collect(),
            ndcg_at_10: self.ndcg / n,
        }
    }
}

/// What the ANN index loses against exact search on the same embeddings.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Exact macro mAP minus ANN macro mAP, per kind.
    pub map_lost: ByKind,
    /// The setting that lost the most, and how much.
    pub worst_setting: Option<(String, f64)>,
    /// Mean share of the exact top 10 that the ANN top 10 also holds, over all searches.
    pub ann_recall_at_10: f64,
}

impl Comparison {
    pub fn compute(
        ann: &Scores,
        exact: &Scores,
        ann_lists: &Rankings,
        exact_lists: &Rankings,
    ) -> Comparison {
        let worst_setting = ann
            .settings
            .iter()
            .zip(&exact.settings)
            .map(|(a, e)| (a.key.clone(), e.map - a.map))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let overlaps: Vec<f64> = ann_lists
            .iter()
            .flatten()
            .zip(exact_lists.iter().flatten())
            .map(|(a, e)| metrics::overlap_at(a, e, K10))
            .collect();
        Comparison {
            map_lost: exact.map.minus(&ann.map),
            worst_setting,
            ann_recall_at_10: overlaps.iter().sum::<f64>() / overlaps.len().max(1) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lareqa::{Candidate, Question};

    /// de and en; q1 exists in both languages, q2 only in English.
    /// Candidates: 0 = de answer of q1, 1 = de other, 2 = en answer of q1, 3 = en answer of q2.
    fn dataset() -> Dataset {
        let candidate = |language: &str, n: usize| Candidate {
            id: format!("{language}{n}"),
            language: language.into(),
            text: String::new(),
            title: String::new(),
        };
        let question = |id: &str, language: &str, group| Question {
            id: id.into(),
            language: language.into(),
            text: String::new(),
            group,
        };
        Dataset {
            languages: vec!["de".into(), "en".into()],
            candidates: vec![
                candidate("de", 0),
                candidate("de", 1),
                candidate("en", 0),
                candidate("en", 1),
            ],
            questions: vec![
                question("q1", "de", 0),
                question("q1", "en", 0),
                question("q2", "en", 1),
            ],
            groups: vec![vec![0, 2], vec![3]],
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn settings_cover_every_pair_and_skip_questions_without_answers() {
        let data = dataset();
        let s = settings(&data);
        let keys: Vec<_> = s.iter().map(Setting::key).collect();
        assert_eq!(
            keys,
            ["de->de", "de->en", "de->all", "en->de", "en->en", "en->all"]
        );
        let kinds: Vec<_> = s.iter().map(|s| s.kind).collect();
        use Kind::*;
        assert_eq!(kinds, [Mono, Cross, Multi, Cross, Mono, Multi]);
        assert_eq!(s[3].questions, [1], "q2 has no German answer");
        assert_eq!(s[4].questions, [1, 2]);
        assert_eq!(s[5].pool_languages(&data.languages), ["de", "en"]);
    }

    fn hand_rankings() -> Rankings {
        vec![
            vec![vec![0, 1]],             // de->de: AP 1
            vec![vec![3, 2]],             // de->en: AP 1/2
            vec![vec![2, 1, 0]],          // de->all: (1 + 2/3) / 2
            vec![vec![1, 0]],             // en->de: AP 1/2
            vec![vec![2, 3], vec![2, 3]], // en->en: 1 and 1/2
            vec![vec![0, 2], vec![3]],    // en->all: 1 and 1
        ]
    }

    #[test]
    fn scores_and_macro_averages_by_hand() {
        let data = dataset();
        let s = settings(&data);
        let scores = Scores::compute(&data, &s, &hand_rankings(), 100);
        assert!(close(
            scores.map_of("de->all").unwrap(),
            (1.0 + 2.0 / 3.0) / 2.0
        ));
        assert!(close(scores.map_of("en->en").unwrap(), 0.75));
        assert!(close(scores.map.mono.unwrap(), 0.875));
        assert!(close(scores.map.cross.unwrap(), 0.5));
        assert!(close(
            scores.map.multi.unwrap(),
            ((1.0 + 2.0 / 3.0) / 2.0 + 1.0) / 2.0
        ));
        assert!(close(scores.settings[1].recall[&1], 0.0));
        assert!(close(scores.settings[1].recall[&5], 1.0));
        let bias = scores.language_bias.unwrap();
        assert!(close(bias.deviation, 0.0));
        assert!(close(bias.same_language_first, 1.0 / 3.0));
        assert!(close(bias.same_language_first_unbiased, 2.0 / 3.0));
        // A cut-off of 1 drops the relevant candidate at rank 2 of de->en.
        let cut = Scores::compute(&data, &s, &hand_rankings(), 1);
        assert!(close(cut.map_of("de->en").unwrap(), 0.0));
    }

    #[test]
    fn comparison_reports_what_ann_loses() {
        let data = dataset();
        let s = settings(&data);
        let ann_lists = hand_rankings();
        let mut exact_lists = hand_rankings();
        exact_lists[1][0] = vec![2, 3]; // exact finds the de->en answer first
        let ann = Scores::compute(&data, &s, &ann_lists, 100);
        let exact = Scores::compute(&data, &s, &exact_lists, 100);
        let c = Comparison::compute(&ann, &exact, &ann_lists, &exact_lists);
        assert!(close(c.map_lost.cross.unwrap(), 0.25));
        assert!(close(c.map_lost.mono.unwrap(), 0.0));
        assert_eq!(c.worst_setting, Some(("de->en".to_string(), 0.5)));
        // Same sets in every top 10, so ANN recall@10 is 1 despite the reordering.
        assert!(close(c.ann_recall_at_10, 1.0));
    }
}
