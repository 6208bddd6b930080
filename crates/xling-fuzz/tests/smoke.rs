//! CI-sized fuzzing: every target replays its committed corpus (crash inputs included) and
//! tries a few thousand new inputs from a fixed seed, deterministically; and the invariant
//! checkers are shown to refuse known-bad answers, so that a broken checker fails here too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use xling_eval::{Dataset, EvalError, LoadOptions};
use xling_fuzz::runner::{self, Options};
use xling_fuzz::targets::corpus::CorpusTarget;
use xling_fuzz::targets::dataset::DatasetTarget;
use xling_fuzz::targets::tokenize_batch::check_embedding;
use xling_fuzz::targets::validate::rejection;
use xling_fuzz::targets::{self, NAMES};
use xling_fuzz::{Outcome, Target};
use xling_index::IndexError;
use xling_server::ServerError;

fn smoke(name: &str, iterations: u64) {
    let corpus = runner::load_corpus(&targets::corpus_dir(name)).unwrap();
    assert!(!corpus.is_empty(), "{name}: no committed corpus");
    let mut target = targets::by_name(name, &targets::repo_root()).unwrap();
    let options = Options {
        iterations,
        seed: 1,
        max_time: None,
        save_to: None,
    };
    let report = runner::run(target.as_mut(), &corpus, &options);
    assert!(report.finding.is_none(), "{report}");
    assert_eq!(report.replayed, corpus.len());
    assert_eq!(report.inputs, iterations);
    assert!(report.accepted > 0, "{name}: nothing accepted: {report}");
}

#[test]
fn validate() {
    smoke("validate", 5_000);
}

#[test]
fn corpus() {
    smoke("corpus", 2_000);
}

#[test]
fn dataset() {
    smoke("dataset", 2_000);
}

#[test]
fn tokenize_batch() {
    smoke("tokenize-batch", 150);
}

/// The targets that exist are the modules of `src/targets/` and the folders of `corpus/`: each
/// must be listed in `NAMES`, built by `by_name` under its own name, and smoked above.
#[test]
fn every_target_has_a_test_here() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let entries = |dir: &Path, keep: fn(&Path) -> Option<String>| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| keep(&e.unwrap().path()))
            .collect()
    };
    let modules = entries(&crate_dir.join("src/targets"), |path| {
        let stem = path.file_stem()?.to_str()?;
        (path.extension()? == "rs" && stem != "mod").then(|| stem.replace('_', "-"))
    });
    let corpora = entries(&crate_dir.join("corpus"), |path| {
        let name = path.file_name()?.to_str()?;
        path.is_dir().then(|| name.to_string())
    });
    let named: BTreeSet<String> = NAMES.iter().map(|n| n.to_string()).collect();
    assert_eq!(modules, named, "target modules vs NAMES");
    assert_eq!(corpora, named, "corpus folders vs NAMES");
    let tests = include_str!("smoke.rs");
    for name in NAMES {
        let target = targets::by_name(name, &targets::repo_root()).unwrap();
        assert_eq!(target.name(), name);
        let call = format!("smoke(\"{name}\", ");
        assert!(tests.contains(&call), "no smoke test of {name} here");
    }
}

#[test]
fn checkers_refuse_known_bad_answers() {
    // validate: a server-side code, or a client error that names no field.
    let internal = ServerError::Encoder {
        reason: "batch failed".into(),
    };
    assert!(rejection(&internal).is_err());
    assert!(rejection(&ServerError::invalid("", "bad")).is_err());
    assert!(rejection(&ServerError::invalid("queries[0].ef", "is 5000")).is_ok());

    // tokenize-batch: NaN, not normalized, wrong dimension.
    assert!(check_embedding(&[f32::NAN, 0.0], 2).is_err());
    assert!(check_embedding(&[0.0, 0.0], 2).is_err());
    assert!(check_embedding(&[1.0], 2).is_err());
    assert!(check_embedding(&[0.6, 0.8], 2).is_ok());

    // corpus: an error naming a line the file does not have, or no line at all.
    let corpus = CorpusTarget::new().unwrap();
    let input = b"{\"id\": 1}\n";
    let syntax = |line| IndexError::CorpusSyntax {
        path: corpus.path().to_path_buf(),
        line,
        reason: "invalid type".into(),
    };
    assert_eq!(corpus.judge(input, Err(syntax(1))), Ok(Outcome::Rejected));
    assert!(corpus.judge(input, Err(syntax(2))).is_err());
    let io = IndexError::Io {
        path: corpus.path().to_path_buf(),
        source: std::io::Error::other("disk"),
    };
    assert!(corpus.judge(input, Err(io)).is_err());

    // dataset: a question whose group does not exist; an error that names no file.
    let dataset = DatasetTarget::new().unwrap();
    let present = ["en".to_string()];
    let broken = Dataset {
        languages: present.to_vec(),
        candidates: Vec::new(),
        questions: vec![xling_eval::lareqa::Question {
            id: "q".into(),
            language: "en".into(),
            text: "Why?".into(),
            group: 3,
        }],
        groups: Vec::new(),
    };
    let options = LoadOptions::default();
    assert!(dataset.judge(&options, &present, Ok(broken)).is_err());
    let elsewhere = EvalError::NoFiles {
        dir: PathBuf::from("/elsewhere"),
    };
    assert!(dataset.judge(&options, &[], Err(elsewhere)).is_err());
    let here = EvalError::NoFiles {
        dir: dataset.data(),
    };
    assert_eq!(
        dataset.judge(&options, &[], Err(here)),
        Ok(Outcome::Rejected)
    );
}

/// A target that panics on one byte, to show that the runner turns a panic into a finding
/// and saves the input.
struct PanicsOnX;

impl Target for PanicsOnX {
    fn name(&self) -> &'static str {
        "panics-on-x"
    }

    fn generate(&mut self, _rng: &mut StdRng, _seeds: &[Vec<u8>]) -> Vec<u8> {
        b"abc".to_vec()
    }

    fn dictionary(&self) -> &'static [&'static [u8]] {
        &[b"x"]
    }

    fn check(&mut self, input: &[u8]) -> Result<Outcome, String> {
        assert!(!input.contains(&b'x'), "found an x");
        Ok(Outcome::Accepted)
    }
}

#[test]
fn the_runner_reports_and_saves_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        iterations: 10_000,
        seed: 1,
        max_time: None,
        save_to: Some(dir.path().to_path_buf()),
    };
    let report = runner::run(&mut PanicsOnX, &[b"abc".to_vec()], &options);
    let finding = report.finding.expect("mutations insert an x");
    assert!(
        finding.message.contains("panic: found an x"),
        "{}",
        finding.message
    );
    assert!(finding.input.contains(&b'x'));
    let saved = finding.saved.expect("saved into the corpus folder");
    assert_eq!(std::fs::read(saved).unwrap(), finding.input);
}
