//! `corpus`: JSON Lines through the index crate's corpus loader ([`Corpus::load`]), from a
//! real file, as `xling index build` reads it.
//!
//! Invariant: no panic; a loaded corpus holds one valid passage per non-blank line (non-blank
//! id and text, ISO 639-1 language, unique ids, no blank title) and its SHA-256 is the file's;
//! a refusal names the file and a line that exists, or says the corpus is empty when every
//! line is blank.
//!
//! Input layout: the file's bytes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use xling_index::{is_iso639_1, Corpus, IndexError};

use crate::targets::write_fresh;
use crate::text::{piece, text};
use crate::{Outcome, Target};

pub struct CorpusTarget {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl CorpusTarget {
    pub fn new() -> anyhow::Result<CorpusTarget> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("corpus.jsonl");
        Ok(CorpusTarget { _dir: dir, path })
    }

    /// The invariant, given the loader's answer for `input` (from [`Self::path`]).
    pub fn judge(
        &self,
        input: &[u8],
        result: Result<Corpus, IndexError>,
    ) -> Result<Outcome, String> {
        match result {
            Ok(corpus) => self.accepted(input, &corpus).map(|()| Outcome::Accepted),
            Err(error) => self.rejected(input, &error).map(|()| Outcome::Rejected),
        }
    }

    /// The file the loader reads (errors name it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn accepted(&self, input: &[u8], corpus: &Corpus) -> Result<(), String> {
        let non_blank = lines(input)
            .filter(|l| std::str::from_utf8(l).is_ok_and(|l| !l.trim().is_empty()))
            .count();
        if corpus.len() != non_blank {
            return Err(format!(
                "{} passages from {non_blank} non-blank lines",
                corpus.len()
            ));
        }
        let mut ids = HashSet::new();
        for p in corpus.passages() {
            let blank_title = p.title.as_ref().is_some_and(|t| t.trim().is_empty());
            if p.id.trim().is_empty()
                || p.text.trim().is_empty()
                || !is_iso639_1(&p.language)
                || blank_title
                || !ids.insert(&p.id)
            {
                return Err(format!("accepted passage {p:?}"));
            }
        }
        let digest: String = Sha256::digest(input)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if corpus.sha256() != digest {
            return Err("the corpus digest is not the file's SHA-256".into());
        }
        Ok(())
    }

    fn rejected(&self, input: &[u8], error: &IndexError) -> Result<(), String> {
        let line = match error {
            IndexError::CorpusSyntax { line, .. }
            | IndexError::EmptyId { line, .. }
            | IndexError::EmptyText { line, .. }
            | IndexError::CorpusLanguage { line, .. } => *line,
            IndexError::DuplicateId {
                line, first_line, ..
            } if first_line < line => *line,
            IndexError::EmptyCorpus { .. } => {
                let all_blank =
                    lines(input).all(|l| std::str::from_utf8(l).is_ok_and(|l| l.trim().is_empty()));
                return match all_blank {
                    true => Ok(()),
                    false => Err(format!("{error}, but a line is not blank")),
                };
            }
            other => return Err(format!("unexpected error: {other}")),
        };
        let count = lines(input).count();
        let prefix = format!("{}:{line}: ", self.path.display());
        if line == 0 || line > count || !error.to_string().starts_with(&prefix) {
            return Err(format!("error names line {line} of {count}: {error}"));
        }
        Ok(())
    }
}

/// Lines as `BufRead::lines` sees them: split on `\n`, no empty line after a final `\n`.
fn lines(input: &[u8]) -> impl Iterator<Item = &[u8]> {
    input
        .strip_suffix(b"\n")
        .unwrap_or(input)
        .split(|&b| b == b'\n')
        .filter(move |_| !input.is_empty())
}

impl Target for CorpusTarget {
    fn name(&self) -> &'static str {
        "corpus"
    }

    fn generate(&mut self, rng: &mut StdRng, _seeds: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut ids: Vec<String> = Vec::new();
        for _ in 0..rng.gen_range(0..8) {
            out.extend(line(rng, &mut ids));
            out.extend_from_slice(if rng.gen_ratio(1, 6) { b"\r\n" } else { b"\n" });
        }
        if rng.gen_ratio(1, 4) {
            out.pop();
        }
        out
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        &[
            b"\"id\"",
            b"\"text\"",
            b"\"language\"",
            b"\"title\"",
            b"\"metadata\"",
            b"\"lang\"",
            b"null",
            b"true",
            b"1e999",
            b"-0",
            b"\"en\"",
            b"\"EN\"",
            b"\\u0000",
            b"\\ud800",
            b"\n",
            b"\r\n",
            b"{}",
            b"[]",
        ]
    }

    fn check(&mut self, input: &[u8]) -> Result<Outcome, String> {
        write_fresh(&self.path, input)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))?;
        self.judge(input, Corpus::load(&self.path))
    }
}

/// One corpus line: mostly a passage, some with one thing wrong, some not JSON at all.
fn line(rng: &mut StdRng, ids: &mut Vec<String>) -> Vec<u8> {
    let id = match (rng.gen_range(0..6), ids.is_empty()) {
        (0, false) => ids[rng.gen_range(0..ids.len())].clone(),
        (1, _) => piece(rng),
        _ => format!("p{}", rng.gen_range(0..1000)),
    };
    ids.push(id.clone());
    // Valid codes two times in three, so that most lines get past the language check.
    let language = match rng.gen_range(0..3) {
        0 => ["EN", "xx", "", "e", "eng", " en", "zz"][rng.gen_range(0..7)],
        _ => ["en", "de", "zh", "pt"][rng.gen_range(0..4)],
    };
    let mut passage = json!({"id": id, "text": text(rng), "language": language});
    if rng.gen_bool(0.5) {
        passage["title"] = Value::String(text(rng));
    }
    if rng.gen_ratio(1, 4) {
        passage["metadata"] = nested(rng.gen_range(0..200));
    }
    // Cases 0-7 break the line; the rest (three in five) leave it whole.
    match rng.gen_range(0..20) {
        0 => return Vec::new(),
        1 => return b" \t\x0b ".to_vec(),
        2 => return format!("[{passage}]").into_bytes(),
        3 => {
            let line = passage.to_string();
            return line.as_bytes()[..rng.gen_range(0..=line.len())].to_vec();
        }
        4 => {
            let mut line = passage.to_string().into_bytes();
            let at = rng.gen_range(0..=line.len());
            line.insert(at, rng.gen_range(0x80..=0xff));
            return line;
        }
        5 => {
            let keys = ["id", "text", "language"];
            passage
                .as_object_mut()
                .map(|o| o.remove(keys[rng.gen_range(0..3)]));
        }
        6 => passage["lang"] = json!("en"),
        7 => {
            let keys = ["id", "text", "language", "title", "metadata"];
            let values = [json!(null), json!(7), json!([]), json!({}), json!(true)];
            passage[keys[rng.gen_range(0..5)]] = values[rng.gen_range(0..5)].clone();
        }
        _ => {}
    }
    passage.to_string().into_bytes()
}

/// Objects nested `depth` deep: serde_json stops at 128 levels, this must not overflow a stack.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!({}), |inner, _| json!({ "a": inner }))
}
