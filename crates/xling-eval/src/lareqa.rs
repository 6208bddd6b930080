//! LAReQA-format data (XQuAD-R, MLQA-R): SQuAD JSON whose paragraphs also carry `sentences`
//! and `sentence_breaks`, one file per language, question ids parallel across languages.
//!
//! Candidates are the sentences of every paragraph. A question's relevant candidates are the
//! sentences holding its answer in every language that has a question with the same id.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::EvalError;

/// One retrievable sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Stable passage id, `lareqa:<lang>:<article>:<paragraph>:<sentence>` (positions in the file).
    pub id: String,
    pub language: String,
    pub text: String,
    /// Title of the article the sentence comes from.
    pub title: String,
}

/// One question in one language.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The SQuAD question id, shared by the parallel questions of all languages.
    pub id: String,
    pub language: String,
    pub text: String,
    /// Index into [`Dataset::groups`]: the parallel versions of this question.
    pub group: usize,
}

/// A loaded dataset: the candidate pool, the questions and their relevance.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Languages in evaluation order.
    pub languages: Vec<String>,
    pub candidates: Vec<Candidate>,
    pub questions: Vec<Question>,
    /// For each question id, the candidate indices of its answer sentence in each language
    /// (one per language that has the question).
    pub groups: Vec<Vec<usize>>,
}

/// Which part of a folder to load.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Languages to load, in this order; empty means every file found (sorted by code).
    pub languages: Vec<String>,
    /// Keep only the first N question ids (in file order), for reduced runs; the candidate
    /// pool stays complete so scores stay comparable.
    pub max_questions: Option<usize>,
}

#[derive(Deserialize)]
struct SquadFile {
    data: Vec<Article>,
}

#[derive(Deserialize)]
struct Article {
    #[serde(default)]
    title: String,
    paragraphs: Vec<Paragraph>,
}

#[derive(Deserialize)]
struct Paragraph {
    sentences: Vec<String>,
    sentence_breaks: Vec<(usize, usize)>,
    qas: Vec<Qa>,
}

#[derive(Deserialize)]
struct Qa {
    id: String,
    question: String,
    answers: Vec<Answer>,
}

#[derive(Deserialize)]
struct Answer {
    answer_start: usize,
}

impl Dataset {
    /// Loads every `*.json` file of `dir` whose name carries a language code
    /// (`de.json`, `xquad.de.json`, `dev-context-de-question-de.json`).
    pub fn load(dir: &Path, options: &LoadOptions) -> Result<Dataset, EvalError> {
        let files = language_files(dir)?;
        let languages = if options.languages.is_empty() {
            files
                .keys()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect()
        } else {
            options.languages.clone()
        };
        let mut parsed = Vec::with_capacity(languages.len());
        for language in &languages {
            let path = files
                .get(language)
                .ok_or_else(|| EvalError::MissingLanguage {
                    language: language.clone(),
                    dir: dir.to_path_buf(),
                    found: sorted_keys(&files),
                })?;
            let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
                path: path.clone(),
                source,
            })?;
            let file: SquadFile =
                serde_json::from_str(&text).map_err(|source| EvalError::Json {
                    path: path.clone(),
                    source,
                })?;
            parsed.push((language.clone(), path.clone(), file));
        }
        let mut builder = Builder::new(options.max_questions, &parsed);
        for (language, path, file) in &parsed {
            builder.add_language(language, path, file)?;
        }
        let dataset = builder.finish(languages);
        // Nothing to rank or nothing to ask: say so now rather than fail or score NaN later.
        let missing = if dataset.candidates.is_empty() {
            "candidate sentences"
        } else if dataset.questions.is_empty() {
            "questions"
        } else {
            return Ok(dataset);
        };
        Err(EvalError::Dataset {
            path: dir.to_path_buf(),
            message: format!("no {missing} in the selected files"),
        })
    }

    /// The relevant candidates of `question` among candidates in `pool` languages.
    pub fn relevant(&self, question: &Question, pool: &[String]) -> Vec<usize> {
        self.groups[question.group]
            .iter()
            .copied()
            .filter(|&c| pool.contains(&self.candidates[c].language))
            .collect()
    }

    /// Writes the candidates as an xling corpus (JSON Lines) for `xling index build`.
    pub fn write_corpus(&self, path: &Path) -> Result<(), EvalError> {
        let io_error = |source| EvalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io_error)?;
        let mut out = std::io::BufWriter::new(file);
        for c in &self.candidates {
            let line = serde_json::json!({
                "id": c.id, "text": c.text, "language": c.language, "title": c.title,
            });
            writeln!(out, "{line}").map_err(io_error)?;
        }
        out.flush().map_err(io_error)
    }
}

/// Maps language codes to files; a code appearing twice is an error.
fn language_files(dir: &Path) -> Result<HashMap<String, PathBuf>, EvalError> {
    let entries = std::fs::read_dir(dir).map_err(|source| EvalError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = HashMap::new();
    for entry in entries {
        let path = entry
            .map_err(|source| EvalError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Some(language) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(language_of)
        else {
            continue;
        };
        if let Some(previous) = files.insert(language.clone(), path.clone()) {
            return Err(EvalError::Dataset {
                path,
                message: format!(
                    "language {language:?} also comes from {}",
                    previous.display()
                ),
            });
        }
    }
    if files.is_empty() {
        return Err(EvalError::NoFiles {
            dir: dir.to_path_buf(),
        });
    }
    Ok(files)
}

/// The last two-letter lowercase token of a file stem: `de`, `xquad.de`, `dev-context-de-question-de`.
fn language_of(stem: &str) -> Option<String> {
    stem.split(|c: char| !c.is_ascii_alphanumeric())
        .rev()
        .find(|t| t.len() == 2 && t.bytes().all(|b| b.is_ascii_lowercase()))
        .map(str::to_string)
}

fn sorted_keys(files: &HashMap<String, PathBuf>) -> String {
    let mut keys: Vec<_> = files.keys().cloned().collect();
    keys.sort();
    keys.join(",")
}

/// The sentence holding character offset `start`: the one whose `[begin, end)` contains it,
/// else (the offset falls in the gap between sentences) the last one beginning before it.
fn answer_sentence(breaks: &[(usize, usize)], start: usize) -> Option<usize> {
    breaks
        .iter()
        .position(|&(b, e)| b <= start && start < e)
        .or_else(|| breaks.iter().rposition(|&(b, _)| b <= start))
}

struct Builder {
    kept_ids: Option<std::collections::HashSet<String>>,
    candidates: Vec<Candidate>,
    questions: Vec<Question>,
    group_of: HashMap<String, usize>,
    groups: Vec<Vec<usize>>,
}

impl Builder {
    fn new(max_questions: Option<usize>, parsed: &[(String, PathBuf, SquadFile)]) -> Builder {
        // The first N distinct ids in file order (languages in evaluation order).
        let kept_ids = max_questions.map(|n| {
            let mut kept = std::collections::HashSet::new();
            let all_ids = parsed
                .iter()
                .flat_map(|(_, _, f)| f.data.iter())
                .flat_map(|a| a.paragraphs.iter())
                .flat_map(|p| p.qas.iter());
            for qa in all_ids {
                if kept.len() == n {
                    break;
                }
                kept.insert(qa.id.clone());
            }
            kept
        });
        Builder {
            kept_ids,
            candidates: Vec::new(),
            questions: Vec::new(),
            group_of: HashMap::new(),
            groups: Vec::new(),
        }
    }

    fn add_language(
        &mut self,
        language: &str,
        path: &Path,
        file: &SquadFile,
    ) -> Result<(), EvalError> {
        let fail = |message: String| EvalError::Dataset {
            path: path.to_path_buf(),
            message,
        };
        let mut seen = std::collections::HashSet::new();
        for (a, article) in file.data.iter().enumerate() {
            for (p, paragraph) in article.paragraphs.iter().enumerate() {
                if paragraph.sentences.len() != paragraph.sentence_breaks.len() {
                    return Err(fail(format!(
                        "article {a} paragraph {p}: {} sentences but {} sentence_breaks",
                        paragraph.sentences.len(),
                        paragraph.sentence_breaks.len()
                    )));
                }
                // A blank sentence would only fail later, as a corpus passage with empty
                // text, after every candidate was embedded.
                if let Some(s) = paragraph.sentences.iter().position(|t| t.trim().is_empty()) {
                    return Err(fail(format!(
                        "article {a} paragraph {p}: sentence {s} is blank"
                    )));
                }
                let first = self.candidates.len();
                for (s, text) in paragraph.sentences.iter().enumerate() {
                    self.candidates.push(Candidate {
                        id: format!("lareqa:{language}:{a}:{p}:{s}"),
                        language: language.to_string(),
                        text: text.clone(),
                        title: article.title.clone(),
                    });
                }
                for qa in &paragraph.qas {
                    if !seen.insert(qa.id.as_str()) {
                        return Err(fail(format!("question id {:?} appears twice", qa.id)));
                    }
                    if self.kept_ids.as_ref().is_some_and(|k| !k.contains(&qa.id)) {
                        continue;
                    }
                    // The server refuses a blank query, which would stop a remote run midway.
                    if qa.question.trim().is_empty() {
                        return Err(fail(format!("question {:?} is blank", qa.id)));
                    }
                    let answer = qa
                        .answers
                        .first()
                        .ok_or_else(|| fail(format!("question {:?} has no answer", qa.id)))?;
                    let sentence = answer_sentence(&paragraph.sentence_breaks, answer.answer_start)
                        .ok_or_else(|| {
                            fail(format!(
                                "question {:?}: answer_start {} is before the first sentence",
                                qa.id, answer.answer_start
                            ))
                        })?;
                    let next = self.groups.len();
                    let group = *self.group_of.entry(qa.id.clone()).or_insert(next);
                    if group == next {
                        self.groups.push(Vec::new());
                    }
                    self.groups[group].push(first + sentence);
                    self.questions.push(Question {
                        id: qa.id.clone(),
                        language: language.to_string(),
                        text: qa.question.clone(),
                        group,
                    });
                }
            }
        }
        Ok(())
    }

    fn finish(self, languages: Vec<String>) -> Dataset {
        Dataset {
            languages,
            candidates: self.candidates,
            questions: self.questions,
            groups: self.groups,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two languages, one article, two parallel paragraphs; the German paragraph splits the
    /// answer's sentence differently, and one English question has no German version.
    fn write_fixture(dir: &Path) {
        let en = serde_json::json!({"version": "1.1", "data": [{"title": "Rivers", "paragraphs": [
        {"context": "The Rhine is long. It flows north. Basel is on it.",
         "sentences": ["The Rhine is long.", "It flows north.", "Basel is on it."],
         "sentence_breaks": [[0, 18], [19, 34], [35, 50]],
         "qas": [
            {"id": "q1", "question": "Where does it flow?", "answers": [{"answer_start": 28, "text": "north"}]},
            {"id": "q2", "question": "Which city?", "answers": [{"answer_start": 35, "text": "Basel"}]},
            {"id": "q3", "question": "Is it long?", "answers": [{"answer_start": 18, "text": "long"}]}
         ]}]}]});
        let de = serde_json::json!({"version": "1.1", "data": [{"title": "Flüsse", "paragraphs": [
        {"context": "Der Rhein ist lang und fließt nach Norden. Basel liegt daran.",
         "sentences": ["Der Rhein ist lang und fließt nach Norden.", "Basel liegt daran."],
         "sentence_breaks": [[0, 42], [43, 61]],
         "qas": [
            {"id": "q1", "question": "Wohin fließt er?", "answers": [{"answer_start": 35, "text": "Norden"}]},
            {"id": "q2", "question": "Welche Stadt?", "answers": [{"answer_start": 43, "text": "Basel"}]}
         ]}]}]});
        std::fs::write(dir.join("en.json"), en.to_string()).unwrap();
        std::fs::write(dir.join("xquad.de.json"), de.to_string()).unwrap();
        std::fs::write(dir.join("README.txt"), "not data").unwrap();
    }

    fn fixture_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write_fixture(dir.path());
        dir
    }

    #[test]
    fn maps_answers_to_sentences_across_parallel_paragraphs() {
        let tmp = fixture_dir();
        let dir = tmp.path();
        let data = Dataset::load(dir, &LoadOptions::default()).unwrap();
        assert_eq!(data.languages, ["de", "en"]);
        assert_eq!(data.candidates.len(), 5);
        assert_eq!(data.candidates[0].id, "lareqa:de:0:0:0");
        assert_eq!(data.candidates[2].id, "lareqa:en:0:0:0");
        assert_eq!(data.questions.len(), 5);
        let all = data.languages.clone();
        let text_of = |q: &Question, pool: &[String]| -> Vec<String> {
            data.relevant(q, pool)
                .into_iter()
                .map(|c| data.candidates[c].text.clone())
                .collect()
        };
        let en_q1 = data
            .questions
            .iter()
            .find(|q| q.id == "q1" && q.language == "en")
            .unwrap();
        assert_eq!(
            text_of(en_q1, &all),
            [
                "Der Rhein ist lang und fließt nach Norden.",
                "It flows north."
            ]
        );
        assert_eq!(text_of(en_q1, &["en".to_string()]), ["It flows north."]);
        // answer_start 18 falls in the gap after sentence 0: it belongs to sentence 0.
        let en_q3 = data.questions.iter().find(|q| q.id == "q3").unwrap();
        assert_eq!(text_of(en_q3, &all), ["The Rhine is long."]);
        assert!(data.relevant(en_q3, &["de".to_string()]).is_empty());
        let de_q2 = data
            .questions
            .iter()
            .find(|q| q.id == "q2" && q.language == "de")
            .unwrap();
        assert_eq!(
            text_of(de_q2, &all),
            ["Basel liegt daran.", "Basel is on it."]
        );
    }

    #[test]
    fn selects_languages_limits_questions_and_writes_corpus() {
        let tmp = fixture_dir();
        let dir = tmp.path();
        let options = LoadOptions {
            languages: vec!["en".into()],
            max_questions: Some(2),
        };
        let data = Dataset::load(dir, &options).unwrap();
        assert_eq!(data.candidates.len(), 3);
        let ids: Vec<_> = data.questions.iter().map(|q| q.id.as_str()).collect();
        assert_eq!(ids, ["q1", "q2"]);
        let corpus = dir.join("corpus.jsonl");
        data.write_corpus(&corpus).unwrap();
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&corpus)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1]["id"], "lareqa:en:0:0:1");
        assert_eq!(lines[1]["language"], "en");
        assert_eq!(lines[1]["title"], "Rivers");
    }

    #[test]
    fn bad_input_gives_clear_errors() {
        let tmp = fixture_dir();
        let dir = tmp.path();
        let missing = LoadOptions {
            languages: vec!["zh".into()],
            max_questions: None,
        };
        let err = Dataset::load(dir, &missing).unwrap_err().to_string();
        assert!(err.contains("\"zh\"") && err.contains("de,en"), "{err}");
        std::fs::write(dir.join("es.json"), "{\"data\": 3}").unwrap();
        let err = Dataset::load(dir, &LoadOptions::default()).unwrap_err();
        assert!(matches!(err, EvalError::Json { .. }), "{err}");
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        let err = Dataset::load(&empty, &LoadOptions::default()).unwrap_err();
        assert!(matches!(err, EvalError::NoFiles { .. }), "{err}");
    }

    /// Found by the fuzzer (crates/xling-fuzz, target `dataset`): blank sentences and
    /// questions loaded, and failed only later as corpus passages or server queries.
    #[test]
    fn blank_sentences_and_questions_are_refused_at_load() {
        let tmp = tempfile::tempdir().unwrap();
        let file = |sentence: &str, question: &str| {
            serde_json::json!({"data": [{"title": "T", "paragraphs": [
                {"sentences": ["First.", sentence], "sentence_breaks": [[0, 6], [7, 9]],
                 "qas": [{"id": "q1", "question": question, "answers": [{"answer_start": 0}]}]}
            ]}]})
            .to_string()
        };
        let path = tmp.path().join("en.json");
        let load = || Dataset::load(tmp.path(), &LoadOptions::default());
        std::fs::write(&path, file(" \n", "Why?")).unwrap();
        let err = load().unwrap_err().to_string();
        assert!(
            err.contains("en.json: article 0 paragraph 0: sentence 1 is blank"),
            "{err}"
        );
        std::fs::write(&path, file("Two.", "\t")).unwrap();
        let err = load().unwrap_err().to_string();
        assert!(err.contains("question \"q1\" is blank"), "{err}");
        std::fs::write(&path, file("Two.", "Why?")).unwrap();
        assert_eq!(load().unwrap().candidates.len(), 2);
    }

    /// Found by the fuzzer: a file without paragraphs loaded as an empty dataset.
    #[test]
    fn a_dataset_without_candidates_or_questions_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("en.json"), r#"{"data": []}"#).unwrap();
        let err = Dataset::load(tmp.path(), &LoadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no candidate sentences"), "{err}");
        write_fixture(tmp.path());
        let none = LoadOptions {
            languages: Vec::new(),
            max_questions: Some(0),
        };
        let err = Dataset::load(tmp.path(), &none).unwrap_err();
        assert!(err.to_string().contains("no questions"), "{err}");
    }

    #[test]
    fn language_codes_come_from_file_names() {
        assert_eq!(language_of("de").as_deref(), Some("de"));
        assert_eq!(
            language_of("dev-context-zh-question-zh").as_deref(),
            Some("zh")
        );
        assert_eq!(language_of("xquad.es").as_deref(), Some("es"));
        assert_eq!(language_of("README"), None);
    }
}
