//! ghz data files of real multilingual questions, built at run time from XQuAD-R
//! (`{lang}.json`, SQuAD layout) so that its text is never committed.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use crate::LoadtestError;

#[derive(Deserialize)]
struct Squad {
    data: Vec<Article>,
}

#[derive(Deserialize)]
struct Article {
    paragraphs: Vec<Paragraph>,
}

#[derive(Deserialize)]
struct Paragraph {
    qas: Vec<Question>,
}

#[derive(Deserialize)]
struct Question {
    question: String,
}

/// What to put in the data file.
#[derive(Debug, Clone)]
pub struct XquadQueries {
    pub dir: PathBuf,
    /// Language codes (file stems); empty means every `*.json` in `dir`.
    pub langs: Vec<String>,
    /// Questions per language; 0 means all of them.
    pub per_lang: usize,
    /// `top_k` of every Search message; 0 leaves the server default.
    pub top_k: u32,
}

impl XquadQueries {
    /// Search messages, languages interleaved so that any prefix of a run mixes them.
    pub fn messages(&self) -> Result<Vec<serde_json::Value>, LoadtestError> {
        let langs = if self.langs.is_empty() {
            available_langs(&self.dir)?
        } else {
            self.langs.clone()
        };
        let mut per_lang = Vec::new();
        for lang in &langs {
            let mut questions = read_questions(&self.dir.join(format!("{lang}.json")))?;
            if self.per_lang > 0 {
                questions.truncate(self.per_lang);
            }
            per_lang.push(questions);
        }
        let longest = per_lang.iter().map(Vec::len).max().unwrap_or(0);
        let mut messages = Vec::new();
        for i in 0..longest {
            for questions in &per_lang {
                if let Some(q) = questions.get(i) {
                    let mut message = json!({ "query": q });
                    if self.top_k > 0 {
                        message["top_k"] = json!(self.top_k);
                    }
                    messages.push(message);
                }
            }
        }
        if messages.is_empty() {
            return Err(LoadtestError::Xquad {
                path: self.dir.clone(),
                reason: "no questions found".into(),
            });
        }
        Ok(messages)
    }

    /// Writes the messages as a ghz data file (a JSON array, one message per line).
    pub fn write(&self, out: &Path) -> Result<usize, LoadtestError> {
        let messages = self.messages()?;
        let lines: Vec<String> = messages.iter().map(|m| m.to_string()).collect();
        let text = format!("[\n{}\n]\n", lines.join(",\n"));
        std::fs::write(out, text).map_err(|source| LoadtestError::Write {
            path: out.to_path_buf(),
            source,
        })?;
        Ok(messages.len())
    }
}

fn available_langs(dir: &Path) -> Result<Vec<String>, LoadtestError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadtestError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut langs: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    langs.sort();
    Ok(langs)
}

fn read_questions(path: &Path) -> Result<Vec<String>, LoadtestError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadtestError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let squad: Squad = serde_json::from_str(&text).map_err(|e| LoadtestError::Xquad {
        path: path.to_path_buf(),
        reason: format!("not SQuAD-format JSON: {e}"),
    })?;
    Ok(squad
        .data
        .into_iter()
        .flat_map(|a| a.paragraphs)
        .flat_map(|p| p.qas)
        .map(|q| q.question.trim().to_string())
        .filter(|q| !q.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xling-xquad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let doc = |qs: &[&str]| {
            let qas: Vec<_> = qs
                .iter()
                .map(|q| json!({"id": "x", "question": q}))
                .collect();
            json!({"data": [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]})
                .to_string()
        };
        std::fs::write(dir.join("de.json"), doc(&["Wer?", "Wo?", "Wann?"])).unwrap();
        std::fs::write(dir.join("en.json"), doc(&["Who?"])).unwrap();
        dir
    }

    #[test]
    fn interleaves_languages_and_limits() {
        let dir = fixture();
        let all = XquadQueries {
            dir: dir.clone(),
            langs: vec![],
            per_lang: 0,
            top_k: 10,
        };
        let queries: Vec<String> = all
            .messages()
            .unwrap()
            .iter()
            .map(|m| m["query"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(queries, vec!["Wer?", "Who?", "Wo?", "Wann?"]);
        let out = dir.join("data.json");
        let two = XquadQueries {
            langs: vec!["de".into()],
            per_lang: 2,
            ..all
        };
        assert_eq!(two.write(&out).unwrap(), 2);
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(written[1], json!({"query": "Wo?", "top_k": 10}));
        let missing = XquadQueries {
            langs: vec!["xx".into()],
            ..two
        };
        assert!(missing.messages().is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
