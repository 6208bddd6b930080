//! Text to token ids: the manifest's prefix, the tokenizer's special tokens, truncation.

use std::path::Path;
use std::sync::Arc;

use tokenizers::{Tokenizer, TruncationParams};

use crate::{EncoderError, Manifest};

/// Which prefix a text gets (e5-style models are trained with `query: ` / `passage: `).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Query,
    Passage,
}

/// One tokenized text, ready to be batched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    pub ids: Vec<i64>,
    /// The text was longer than the model's `max_length` and was cut.
    pub truncated: bool,
}

impl Tokens {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Exactly `len` ids for benchmarks and calibration: the first (special) id, the content
    /// ids repeated, the last id. `None` when there is no content to repeat or `len < 2`.
    pub fn stretched(&self, len: usize) -> Option<Tokens> {
        let ids = &self.ids;
        let (&first, &last) = (ids.first()?, ids.last()?);
        let content = ids
            .get(1..ids.len().saturating_sub(1))
            .filter(|c| !c.is_empty() && len >= 2)?;
        let mut out = Vec::with_capacity(len);
        out.push(first);
        out.extend(content.iter().cycle().take(len - 2));
        out.push(last);
        Some(Tokens {
            ids: out,
            truncated: false,
        })
    }
}

/// Cheap to clone and shareable across threads: request handlers tokenize before queueing, so
/// the batcher can budget padded tokens and the encoder thread only runs the graph.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Arc<Tokenizer>,
    query_prefix: Arc<str>,
    passage_prefix: Arc<str>,
}

impl TextTokenizer {
    pub fn load(dir: &Path, manifest: &Manifest) -> Result<TextTokenizer, EncoderError> {
        let path = manifest.tokenizer_path(dir);
        let bad = |reason: String| EncoderError::Tokenizer {
            path: path.clone(),
            reason,
        };
        let mut tokenizer = Tokenizer::from_file(&path).map_err(|e| bad(e.to_string()))?;
        // The tokenizer's own truncation keeps the closing special token in place.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: manifest.max_length,
                ..Default::default()
            }))
            .map_err(|e| bad(e.to_string()))?;
        tokenizer.with_padding(None);
        Ok(TextTokenizer {
            inner: Arc::new(tokenizer),
            query_prefix: manifest.query_prefix.as_str().into(),
            passage_prefix: manifest.passage_prefix.as_str().into(),
        })
    }

    pub fn tokenize(&self, text: &str, mode: Mode) -> Result<Tokens, EncoderError> {
        let prefix = match mode {
            Mode::Query => &self.query_prefix,
            Mode::Passage => &self.passage_prefix,
        };
        let input = format!("{prefix}{text}");
        let encoding =
            self.inner
                .encode(input.as_str(), true)
                .map_err(|e| EncoderError::Tokenize {
                    reason: e.to_string(),
                })?;
        Ok(Tokens {
            ids: encoding.get_ids().iter().map(|&id| i64::from(id)).collect(),
            truncated: !encoding.get_overflowing().is_empty(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stretched_gives_exactly_the_length_asked() {
        let sample = Tokens {
            ids: vec![0, 10, 11, 12, 2],
            truncated: false,
        };
        let t = sample.stretched(8).unwrap();
        assert_eq!(t.ids, vec![0, 10, 11, 12, 10, 11, 12, 2]);
        assert_eq!(sample.stretched(2).unwrap().ids, vec![0, 2]);
        let bare = Tokens {
            ids: vec![0, 2],
            truncated: false,
        };
        assert!(bare.stretched(4).is_none());
        assert!(sample.stretched(1).is_none());
    }
}
