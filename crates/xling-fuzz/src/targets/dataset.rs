//! `dataset`: LAReQA/SQuAD JSON through the eval crate's loader ([`Dataset::load`]), from real
//! files in a folder, as `xling eval --data DIR` reads them.
//!
//! Invariant: no panic; a refusal names the folder or file; a loaded dataset is consistent
//! (unique candidate ids, every question in a group, each group one answer sentence per
//! language, the question's own among them), the evaluation settings build from it, and it can
//! be evaluated: its candidates make a corpus the index loader accepts (what
//! `xling eval --write-corpus` writes) and no question is blank (the server refuses those).
//!
//! Input layout: `[options][de.json]0xFF[en.json]0xFF[zh.json]`; an empty part is a missing
//! file. `options % 4`: every file / at most `options / 4 % 8` questions / languages `zh,de` /
//! languages `en,fr` (no `fr.json`: must be refused).

use std::collections::HashSet;
use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use xling_eval::protocol::settings;
use xling_eval::{Dataset, EvalError, LoadOptions};
use xling_index::Corpus;

use crate::targets::{framed, remove_if_present, unframe, write_fresh};
use crate::text::text;
use crate::{Outcome, Target};

const FILES: [&str; 3] = ["de", "en", "zh"];

pub struct DatasetTarget {
    dir: tempfile::TempDir,
    corpus: PathBuf,
}

impl DatasetTarget {
    pub fn new() -> anyhow::Result<DatasetTarget> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("data"))?;
        let corpus = dir.path().join("corpus.jsonl");
        Ok(DatasetTarget { dir, corpus })
    }

    /// The invariant, given the loader's answer for `options` on a folder holding the files
    /// of the languages in `present`.
    pub fn judge(
        &self,
        options: &LoadOptions,
        present: &[String],
        result: Result<Dataset, EvalError>,
    ) -> Result<Outcome, String> {
        match result {
            Ok(d) => self
                .accepted(options, present, &d)
                .map(|()| Outcome::Accepted),
            Err(e) => self
                .rejected(options, present, &e)
                .map(|()| Outcome::Rejected),
        }
    }

    /// The folder the loader reads.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes the input's files; returns the languages written.
    fn write(&self, files: &[&[u8]]) -> Result<Vec<String>, String> {
        let mut present = Vec::new();
        for (i, language) in FILES.iter().enumerate() {
            let path = self.data().join(format!("{language}.json"));
            let result = match files.get(i).filter(|f| !f.is_empty()) {
                Some(bytes) => {
                    present.push(language.to_string());
                    write_fresh(&path, bytes)
                }
                None => remove_if_present(&path),
            };
            result.map_err(|e| format!("cannot prepare {}: {e}", path.display()))?;
        }
        Ok(present)
    }

    fn accepted(
        &self,
        options: &LoadOptions,
        present: &[String],
        d: &Dataset,
    ) -> Result<(), String> {
        let expected = match options.languages.is_empty() {
            true => present.to_vec(),
            false => options.languages.clone(),
        };
        if d.languages != expected {
            return Err(format!(
                "languages {:?}, expected {expected:?}",
                d.languages
            ));
        }
        let mut ids = HashSet::new();
        if let Some(c) = d.candidates.iter().find(|c| !ids.insert(&c.id)) {
            return Err(format!("candidate id {:?} twice", c.id));
        }
        for q in &d.questions {
            let group = d.groups.get(q.group).ok_or("question without a group")?;
            let langs: Vec<&str> = group
                .iter()
                .map(|&c| d.candidates.get(c).map(|c| c.language.as_str()))
                .collect::<Option<_>>()
                .ok_or("group names a candidate that does not exist")?;
            let distinct: HashSet<&&str> = langs.iter().collect();
            if distinct.len() != langs.len() || !langs.contains(&q.language.as_str()) {
                return Err(format!(
                    "question {:?} has answer languages {langs:?}",
                    q.id
                ));
            }
            if q.text.trim().is_empty() {
                return Err(format!("question {:?} ({}) is blank", q.id, q.language));
            }
        }
        if d.questions.is_empty() {
            return Err("loaded a dataset without questions".into());
        }
        let kept: HashSet<&str> = d.questions.iter().map(|q| q.id.as_str()).collect();
        if options.max_questions.is_some_and(|n| kept.len() > n) {
            return Err(format!(
                "{} question ids kept, limit {options:?}",
                kept.len()
            ));
        }
        for s in settings(d) {
            if s.questions.iter().any(|&q| d.questions.get(q).is_none()) {
                return Err(format!("setting {} names a missing question", s.key()));
            }
        }
        remove_if_present(&self.corpus).map_err(|e| e.to_string())?;
        d.write_corpus(&self.corpus).map_err(|e| e.to_string())?;
        Corpus::load(&self.corpus)
            .map(|_| ())
            .map_err(|e| format!("loaded, but its candidates are not a valid corpus: {e}"))
    }

    fn rejected(
        &self,
        options: &LoadOptions,
        present: &[String],
        error: &EvalError,
    ) -> Result<(), String> {
        let data = self.data();
        let expected = match error {
            EvalError::NoFiles { .. } => present.is_empty(),
            EvalError::MissingLanguage { language, .. } => !present.contains(language),
            EvalError::Io { .. } | EvalError::Json { .. } | EvalError::Dataset { .. } => true,
            other => return Err(format!("unexpected error: {other}")),
        };
        let message = error.to_string();
        if !expected || !message.contains(&*data.to_string_lossy()) {
            return Err(format!("{message} (files {present:?}, {options:?})"));
        }
        Ok(())
    }
}

fn options(byte: u8) -> LoadOptions {
    let languages = |codes: &[&str]| codes.iter().map(|c| c.to_string()).collect();
    match byte % 4 {
        0 => LoadOptions::default(),
        1 => LoadOptions {
            languages: Vec::new(),
            max_questions: Some(usize::from(byte / 4 % 8)),
        },
        2 => LoadOptions {
            languages: languages(&["zh", "de"]),
            max_questions: None,
        },
        _ => LoadOptions {
            languages: languages(&["en", "fr"]),
            max_questions: None,
        },
    }
}

impl Target for DatasetTarget {
    fn name(&self) -> &'static str {
        "dataset"
    }

    fn generate(&mut self, rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8> {
        let seed =
            (!seeds.is_empty() && rng.gen_bool(0.5)).then(|| &seeds[rng.gen_range(0..seeds.len())]);
        // Structural changes go to one file only: the others stay loadable, so that the
        // changed one is what decides the outcome more often.
        let changed = rng.gen_range(0..FILES.len());
        let files: Vec<Vec<u8>> = (0..FILES.len())
            .map(|i| {
                let from_seed = seed
                    .and_then(|s| unframe(s).1.nth(i))
                    .and_then(|f| serde_json::from_slice::<Value>(f).ok());
                let mut file = from_seed.unwrap_or_else(|| squad_file(rng));
                if i == changed {
                    for _ in 0..rng.gen_range(0..4) {
                        mutate_value(rng, &mut file);
                    }
                    if rng.gen_ratio(1, 10) {
                        return Vec::new();
                    }
                }
                file.to_string().into_bytes()
            })
            .collect();
        framed(rng.gen(), &files)
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        &[
            b"\"data\"",
            b"\"paragraphs\"",
            b"\"sentences\"",
            b"\"sentence_breaks\"",
            b"\"qas\"",
            b"\"answers\"",
            b"\"answer_start\"",
            b"\"id\"",
            b"\"question\"",
            b"\"title\"",
            b"18446744073709551616",
            b"-1",
            b"0",
            b"null",
            b"[]",
            b"\"\"",
            b"\xff",
        ]
    }

    fn check(&mut self, input: &[u8]) -> Result<Outcome, String> {
        let (settings, files) = unframe(input);
        let options = settings.map_or_else(LoadOptions::default, options);
        let files: Vec<&[u8]> = files.collect();
        let present = self.write(&files)?;
        self.judge(&options, &present, Dataset::load(&self.data(), &options))
    }
}

/// A small LAReQA file: sentences, their breaks (character offsets), questions whose ids recur
/// across files, answers pointing into (or past) the context.
fn squad_file(rng: &mut StdRng) -> Value {
    let articles: Vec<Value> = (0..rng.gen_range(0..3))
        .map(|a| {
            let paragraphs: Vec<Value> = (0..rng.gen_range(0..3))
                .map(|p| {
                    let sentences: Vec<String> =
                        (0..rng.gen_range(0..5)).map(|_| text(rng)).collect();
                    let mut breaks = Vec::new();
                    let mut at = 0;
                    for s in &sentences {
                        let end = at + s.chars().count();
                        breaks.push(json!([at, end]));
                        at = end + 1;
                    }
                    // Ids by position: the same in every file, so questions pair up.
                    let qas: Vec<Value> = (0..rng.gen_range(0..4))
                        .map(|q| {
                            let start = rng.gen_range(0..=at + 4);
                            json!({"id": format!("q{a}.{p}.{q}"), "question": text(rng),
                                   "answers": [{"answer_start": start, "text": "x"}]})
                        })
                        .collect();
                    json!({"context": sentences.join(" "), "sentences": sentences,
                           "sentence_breaks": breaks, "qas": qas})
                })
                .collect();
            json!({"title": text(rng), "paragraphs": paragraphs})
        })
        .collect();
    json!({"version": "1.1", "data": articles})
}

/// Changes one node of a JSON tree: a new value of another type or at an edge, a removal, or
/// a duplicated array element.
fn mutate_value(rng: &mut StdRng, value: &mut Value) {
    // Walk down, stopping at each level with probability 1/3.
    let children = match value {
        Value::Array(items) => items.len(),
        Value::Object(map) => map.len(),
        _ => 0,
    };
    if children > 0 && !rng.gen_ratio(1, 3) {
        let i = rng.gen_range(0..children);
        let (removed, dup) = (rng.gen_ratio(1, 6), rng.gen_ratio(1, 6));
        match value {
            Value::Array(items) if removed => drop(items.remove(i)),
            Value::Array(items) if dup => items.insert(i, items[i].clone()),
            Value::Object(map) if removed => {
                let key = map.keys().nth(i).cloned().unwrap_or_default();
                map.remove(&key);
            }
            Value::Array(items) => mutate_value(rng, &mut items[i]),
            Value::Object(map) => {
                if let Some(child) = map.values_mut().nth(i) {
                    mutate_value(rng, child);
                }
            }
            _ => {}
        }
        return;
    }
    let edges = [
        json!(null),
        json!(-1),
        json!(0),
        json!(u64::MAX),
        json!(1e300),
        json!(""),
        json!("  "),
        json!([]),
        json!({}),
        json!([[5, 2]]),
        json!([[0, 18446744073709551615u64]]),
        Value::String(text(rng)),
    ];
    *value = edges[rng.gen_range(0..edges.len())].clone();
}
