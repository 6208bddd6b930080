//! `model.toml`: what a model folder holds and how to run it.
//!
//! ```toml
//! id = "intfloat/multilingual-e5-small"
//! onnx = "model.onnx"
//! tokenizer = "tokenizer.json"
//! dim = 384
//! max_length = 512
//! output = "sentence_embedding"
//! pooling = "graph"          # the only kind: pooling and L2 norm are in the graph
//! query_prefix = "query: "
//! passage_prefix = "passage: "
//! precision = "fp32"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::EncoderError;

pub const MANIFEST_FILE: &str = "model.toml";

/// Where the sentence embedding comes from. Every converter of this repository (e5, the mT5
/// generator, the Hugging Face export) puts pooling in the graph; a folder naming another kind
/// is refused at load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The graph pools already: its output is `[batch, dim]`.
    Graph,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub id: String,
    pub onnx: String,
    pub tokenizer: String,
    pub dim: usize,
    pub max_length: usize,
    #[serde(default = "default_output")]
    pub output: String,
    #[serde(default = "default_pooling")]
    pub pooling: Pooling,
    #[serde(default)]
    pub query_prefix: String,
    #[serde(default)]
    pub passage_prefix: String,
    #[serde(default = "default_precision")]
    pub precision: String,
    /// Token id used to pad a batch; the attention mask hides it, so any valid id works.
    #[serde(default)]
    pub pad_id: i64,
    #[serde(default)]
    pub description: String,
}

fn default_output() -> String {
    "sentence_embedding".into()
}
fn default_pooling() -> Pooling {
    Pooling::Graph
}
fn default_precision() -> String {
    "fp32".into()
}

impl Manifest {
    /// Reads and validates `dir/model.toml`.
    pub fn load(dir: &Path) -> Result<Manifest, EncoderError> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| EncoderError::Io {
            path: path.clone(),
            source,
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| EncoderError::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        manifest
            .validate()
            .map_err(|reason| EncoderError::Manifest { path, reason })?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), String> {
        if self.id.trim().is_empty() {
            return Err("`id` must not be empty".into());
        }
        if self.dim == 0 {
            return Err("`dim` must be positive".into());
        }
        if !(2..=8192).contains(&self.max_length) {
            return Err(format!(
                "`max_length` = {} is outside 2..=8192",
                self.max_length
            ));
        }
        if !["fp32", "fp16", "int8"].contains(&self.precision.as_str()) {
            return Err(format!(
                "`precision` = {:?}; expected fp32, fp16 or int8",
                self.precision
            ));
        }
        Ok(())
    }

    pub fn onnx_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.onnx)
    }

    pub fn tokenizer_path(&self, dir: &Path) -> PathBuf {
        dir.join(&self.tokenizer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(MANIFEST_FILE), text).unwrap();
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("xling-manifest-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn reads_a_complete_manifest() {
        let dir = temp_dir("ok");
        write(
            &dir,
            "id = \"m\"\nonnx = \"model.onnx\"\ntokenizer = \"tokenizer.json\"\ndim = 8\nmax_length = 16\npooling = \"graph\"\nquery_prefix = \"query: \"\n",
        );
        let m = Manifest::load(&dir).unwrap();
        assert_eq!(m.pooling, Pooling::Graph);
        assert_eq!(m.query_prefix, "query: ");
        assert_eq!(m.output, "sentence_embedding");
    }

    #[test]
    fn names_the_bad_setting() {
        let dir = temp_dir("bad");
        write(
            &dir,
            "id = \"m\"\nonnx = \"a\"\ntokenizer = \"b\"\ndim = 8\nmax_length = 1\n",
        );
        let err = Manifest::load(&dir).unwrap_err().to_string();
        assert!(err.contains("max_length"), "{err}");
        write(
            &dir,
            "id = \"m\"\nonnx = \"a\"\ntokenizer = \"b\"\ndim = 8\nmax_length = 9\nsurprise = 1\n",
        );
        let err = Manifest::load(&dir).unwrap_err().to_string();
        assert!(err.contains("surprise"), "{err}");
        write(
            &dir,
            "id = \"m\"\nonnx = \"a\"\ntokenizer = \"b\"\ndim = 8\nmax_length = 9\npooling = \"mean\"\n",
        );
        let err = Manifest::load(&dir).unwrap_err().to_string();
        assert!(err.contains("mean") && err.contains("graph"), "{err}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = temp_dir("missing");
        let err = Manifest::load(&dir).unwrap_err().to_string();
        assert!(err.contains("model.toml"), "{err}");
    }
}
