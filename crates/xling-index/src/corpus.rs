//! Passages and the JSON Lines corpus loader.
//!
//! One passage per line: `{"id": str, "text": str, "language": ISO 639-1, "title": str?,
//! "metadata": object?}`. Blank lines are skipped; anything else that is not a valid passage is
//! an error naming the file and line. `metadata` is accepted and not kept (nothing serves it).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::IndexError;
use crate::lang::is_iso639_1;

/// One retrievable passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Passage {
    pub id: String,
    pub text: String,
    pub language: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// One corpus line as written by users; unknown fields are rejected so typos (`lang`) surface.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusLine {
    id: String,
    text: String,
    language: String,
    #[serde(default)]
    title: Option<String>,
    /// Accepted (must be an object) but not stored: nothing serves it.
    #[serde(default, rename = "metadata")]
    _metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A validated list of passages: unique non-empty ids, non-empty texts, ISO 639-1 languages.
#[derive(Debug, Clone)]
pub struct Corpus {
    passages: Vec<Passage>,
    sha256: String,
}

impl Corpus {
    /// Reads and validates a JSON Lines corpus file; `sha256` is over the file's bytes.
    pub fn load(path: &Path) -> Result<Corpus, IndexError> {
        let file = std::fs::File::open(path).map_err(|e| IndexError::io(path, e))?;
        let mut reader = HashingReader {
            inner: file,
            hasher: Sha256::new(),
        };
        // Success means the line reader hit EOF, so the digest covers the whole file.
        let passages = read_passages(BufReader::new(&mut reader), path)?;
        Ok(Corpus {
            passages,
            sha256: hex(&reader.hasher.finalize()),
        })
    }

    /// Validates passages built in memory (errors name `<passages>` and the 1-based position);
    /// `sha256` is over their JSON Lines form.
    pub fn from_passages(passages: Vec<Passage>) -> Result<Corpus, IndexError> {
        let origin = PathBuf::from("<passages>");
        let mut hasher = Sha256::new();
        let mut check = Checker::default();
        for (i, p) in passages.iter().enumerate() {
            check.passage(p, &origin, i + 1)?;
            let line = serde_json::to_string(p).expect("a Passage always serializes");
            hasher.update(line.as_bytes());
            hasher.update(b"\n");
        }
        if passages.is_empty() {
            return Err(IndexError::EmptyCorpus { path: origin });
        }
        Ok(Corpus {
            passages,
            sha256: hex(&hasher.finalize()),
        })
    }

    pub fn passages(&self) -> &[Passage] {
        &self.passages
    }

    pub fn len(&self) -> usize {
        self.passages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// Hex SHA-256 of the corpus, recorded in the index manifest for reproducibility.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// Parses and validates JSON Lines passages; `path` only names the source in errors.
fn read_passages(reader: impl BufRead, path: &Path) -> Result<Vec<Passage>, IndexError> {
    let mut check = Checker::default();
    let mut passages = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line_no = i + 1;
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => IndexError::CorpusSyntax {
                path: path.to_path_buf(),
                line: line_no,
                reason: "not valid UTF-8".into(),
            },
            _ => IndexError::io(path, e),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: CorpusLine =
            serde_json::from_str(&line).map_err(|e| IndexError::CorpusSyntax {
                path: path.to_path_buf(),
                line: line_no,
                reason: e.to_string(),
            })?;
        let passage = Passage {
            id: parsed.id,
            text: parsed.text,
            language: parsed.language,
            title: parsed.title.filter(|t| !t.trim().is_empty()),
        };
        check.passage(&passage, path, line_no)?;
        passages.push(passage);
    }
    if passages.is_empty() {
        return Err(IndexError::EmptyCorpus {
            path: path.to_path_buf(),
        });
    }
    Ok(passages)
}

/// The per-passage rules, shared by the file loader and `from_passages`.
#[derive(Default)]
struct Checker {
    first_line: HashMap<String, usize>,
}

impl Checker {
    fn passage(&mut self, p: &Passage, path: &Path, line: usize) -> Result<(), IndexError> {
        let path = path.to_path_buf();
        if p.id.trim().is_empty() {
            return Err(IndexError::EmptyId { path, line });
        }
        if p.text.trim().is_empty() {
            return Err(IndexError::EmptyText {
                path,
                line,
                id: p.id.clone(),
            });
        }
        if !is_iso639_1(&p.language) {
            return Err(IndexError::CorpusLanguage {
                path,
                line,
                id: p.id.clone(),
                code: p.language.clone(),
            });
        }
        if let Some(&first_line) = self.first_line.get(&p.id) {
            return Err(IndexError::DuplicateId {
                path,
                line,
                id: p.id.clone(),
                first_line,
            });
        }
        self.first_line.insert(p.id.clone(), line);
        Ok(())
    }
}

/// Feeds everything read through it into a SHA-256.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
