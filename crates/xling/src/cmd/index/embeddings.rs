//! `xling index build --embeddings FILE.npy`: passage vectors computed elsewhere (a GPU farm,
//! another runtime) in place of the encoder. Row i is corpus line i; the row count and the dim
//! must match before anything is built.

use std::path::PathBuf;

use anyhow::ensure;

use super::npy::NpyRows;

#[derive(clap::Args)]
pub struct EmbeddingsArgs {
    /// Precomputed passage vectors instead of the encoder: a .npy of float32 (C order), shape
    /// (passages, dim), row i = corpus line i, made by the same model in passage mode. Rows are
    /// L2-normalized on reading.
    #[arg(long, env = "XLING_EMBEDDINGS")]
    pub embeddings: Option<PathBuf>,
    /// The dim the --embeddings rows must have. [default: the model's]
    #[arg(long, requires = "embeddings")]
    pub dim: Option<usize>,
}

impl EmbeddingsArgs {
    /// Opens the file and checks it against the corpus and the model: `None` without
    /// `--embeddings`.
    pub fn open(&self, passages: usize, model_dim: usize) -> anyhow::Result<Option<NpyRows>> {
        let Some(path) = &self.embeddings else {
            return Ok(None);
        };
        let expected = self.dim.unwrap_or(model_dim);
        ensure!(
            expected == model_dim,
            "--dim {expected} differs from the model's dim {model_dim}"
        );
        let rows = NpyRows::open(path)?;
        ensure!(
            rows.rows() == passages,
            "{} has {} rows but the corpus has {passages} passages (row i must be corpus line i)",
            path.display(),
            rows.rows()
        );
        ensure!(
            rows.dim() == expected,
            "{} has vectors of dim {} but the model's dim is {expected}",
            path.display(),
            rows.dim()
        );
        Ok(Some(rows))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;
    use xling_index::Index;

    use super::super::npy;
    use super::*;

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: super::super::Command,
    }

    /// `xling index build` as the command line gives it.
    fn build(args: &[&str]) -> anyhow::Result<()> {
        let mut argv = vec!["xling", "build"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            super::super::Command::Build(args) => super::super::build(args),
            _ => unreachable!("parsed as build"),
        }
    }

    /// A vector per demo passage: a pseudo-random direction, scaled (the build normalizes).
    fn vectors(rows: usize, dim: usize) -> Vec<f32> {
        let mut state = 7u64;
        (0..rows * dim)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.0
            })
            .collect()
    }

    fn build_with(npy_path: &Path, out: &Path, extra: &[&str]) -> anyhow::Result<()> {
        let corpus = repo().join("data/demo/corpus.jsonl");
        let model = repo().join("models/mt5-tiny");
        let mut args = vec![
            "--corpus",
            corpus.to_str().unwrap(),
            "--model",
            model.to_str().unwrap(),
            "--embeddings",
            npy_path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        build(&args)
    }

    #[test]
    fn builds_from_a_file_and_refuses_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let passages = xling_index::Corpus::load(&repo().join("data/demo/corpus.jsonl"))
            .unwrap()
            .len();
        let dim = xling_encoder::Manifest::load(&repo().join("models/mt5-tiny"))
            .unwrap()
            .dim;
        let file = dir.path().join("v.npy");
        let out = dir.path().join("index");

        npy::write(&file, &vectors(passages - 1, dim), dim).unwrap();
        let err = format!("{:#}", build_with(&file, &out, &[]).unwrap_err());
        assert!(
            err.contains(&format!(
                "{} rows but the corpus has {passages}",
                passages - 1
            )),
            "{err}"
        );
        npy::write(&file, &vectors(passages, dim + 1), dim + 1).unwrap();
        let err = format!("{:#}", build_with(&file, &out, &[]).unwrap_err());
        assert!(
            err.contains(&format!("dim {} but the model's dim is {dim}", dim + 1)),
            "{err}"
        );
        let wrong_dim = (dim + 2).to_string();
        let err = build_with(&file, &out, &["--dim", &wrong_dim]).unwrap_err();
        assert!(
            err.to_string().contains("differs from the model's dim"),
            "{err}"
        );
        assert!(!out.exists(), "nothing is written on a mismatch");

        let values = vectors(passages, dim);
        npy::write(&file, &values, dim).unwrap();
        build_with(&file, &out, &["--dim", &dim.to_string()]).unwrap();
        let index = Index::load(&out).unwrap();
        assert_eq!(index.len(), passages);
        // Row i is passage i, stored at unit length, and finds itself first.
        for slot in [0, 17, passages as u32 - 1] {
            let row = &values[slot as usize * dim..(slot as usize + 1) * dim];
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            let stored = index.embedding(slot).unwrap();
            assert!(row
                .iter()
                .zip(stored)
                .all(|(a, b)| (a / norm - b).abs() < 1e-5));
            let hits = index.exact_search(stored, 1, None).unwrap();
            assert_eq!(hits[0].slot, slot);
        }
    }

    #[test]
    fn streams_a_file_in_chunks_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = xling_index::Corpus::load(&repo().join("data/demo/corpus.jsonl")).unwrap();
        let dim = xling_encoder::Manifest::load(&repo().join("models/mt5-tiny"))
            .unwrap()
            .dim;
        let file = dir.path().join("v.npy");
        let out = dir.path().join("index");
        npy::write(&file, &vectors(corpus.len(), dim), dim).unwrap();
        // Chunks of 7 rows: the run stops at row 56 and the resumed run seeks the file there
        // (a wrong seek puts other vectors into rows 56..).
        let small = ["--chunk-size", "7", "--checkpoint-every", "20"];
        build_with(&file, &out, &[&small[..], &["--stop-after", "50"]].concat()).unwrap();
        assert!(!out.exists(), "stopped before finishing");
        build_with(&file, &out, &[&small[..], &["--resume"]].concat()).unwrap();

        // What the in-memory path stored: the whole file read at once, normalized.
        let expected = NpyRows::open(&file).unwrap().read_all_unit().unwrap();
        let index = Index::load(&out).unwrap();
        assert!(index.embeddings() == expected.as_slice());
        let ids: Vec<String> = index.passages_iter().map(|p| p.id).collect();
        let corpus_ids: Vec<String> = corpus.passages().iter().map(|p| p.id.clone()).collect();
        assert_eq!(ids, corpus_ids);
    }
}
