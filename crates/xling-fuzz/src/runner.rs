//! The fuzzing loop: replay every corpus input, then generate or mutate inputs until the budget
//! is spent or an invariant breaks. A panic counts as a broken invariant. The failing input is
//! saved into the corpus, so every later run (and the smoke test) replays it.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

use crate::mutate::mutate;
use crate::{Outcome, Target};

/// How long to run and where a failing input goes.
#[derive(Debug, Clone)]
pub struct Options {
    /// New inputs to try after the corpus replay.
    pub iterations: u64,
    pub seed: u64,
    /// Stops earlier when this much time has passed.
    pub max_time: Option<Duration>,
    /// Folder a failing input is written to (the target's corpus); `None`: kept in memory only.
    pub save_to: Option<PathBuf>,
}

/// An input that broke the invariant.
#[derive(Debug, Clone)]
pub struct Finding {
    pub input: Vec<u8>,
    pub message: String,
    pub saved: Option<PathBuf>,
}

/// What one run did.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: &'static str,
    /// Corpus inputs replayed before the new ones.
    pub replayed: usize,
    /// New inputs tried (generated or mutated).
    pub inputs: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub elapsed: Duration,
    /// The first broken invariant; the run stops there.
    pub finding: Option<Finding>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "target={} replayed={} inputs={} accepted={} rejected={} seconds={:.1} findings={}",
            self.target,
            self.replayed,
            self.inputs,
            self.accepted,
            self.rejected,
            self.elapsed.as_secs_f64(),
            usize::from(self.finding.is_some())
        )?;
        if let Some(finding) = &self.finding {
            write!(f, "\nFINDING: {}", finding.message)?;
            if let Some(path) = &finding.saved {
                write!(f, "\ninput saved to {}", path.display())?;
            }
        }
        Ok(())
    }
}

/// Reads every file of a corpus folder (sorted by name) except `README.md`; a missing folder
/// is an empty corpus.
pub fn load_corpus(dir: &Path) -> std::io::Result<Vec<Vec<u8>>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"));
    paths.sort();
    paths.iter().map(std::fs::read).collect()
}

/// Replays `corpus`, then tries `options.iterations` new inputs.
pub fn run(target: &mut dyn Target, corpus: &[Vec<u8>], options: &Options) -> Report {
    let started = Instant::now();
    let mut report = Report {
        target: target.name(),
        replayed: 0,
        inputs: 0,
        accepted: 0,
        rejected: 0,
        elapsed: Duration::ZERO,
        finding: None,
    };
    let mut rng = StdRng::seed_from_u64(options.seed);
    for input in corpus {
        report.replayed += 1;
        if let Err(message) = check(target, input, &mut report) {
            // Already in the corpus: nothing to save.
            report.finding = Some(Finding {
                input: input.clone(),
                message: format!("corpus input fails again: {message}"),
                saved: None,
            });
            break;
        }
    }
    while report.finding.is_none()
        && report.inputs < options.iterations
        && options.max_time.is_none_or(|t| started.elapsed() < t)
    {
        let input = next_input(target, &mut rng, corpus);
        report.inputs += 1;
        if let Err(message) = check(target, &input, &mut report) {
            let saved = options.save_to.as_deref().and_then(|dir| save(dir, &input));
            report.finding = Some(Finding {
                input,
                message,
                saved,
            });
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// Half the time a mutated corpus input, otherwise a generated one (mutated one time in four).
fn next_input(target: &mut dyn Target, rng: &mut StdRng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let pick = |rng: &mut StdRng| &corpus[rng.gen_range(0..corpus.len())];
    let (mut input, mutated) = if !corpus.is_empty() && rng.gen_bool(0.5) {
        (pick(rng).clone(), true)
    } else {
        (target.generate(rng, corpus), rng.gen_ratio(1, 4))
    };
    if mutated {
        let other = if corpus.is_empty() {
            Vec::new()
        } else {
            pick(rng).clone()
        };
        mutate(rng, &mut input, target.dictionary(), &other);
    }
    input
}

fn check(target: &mut dyn Target, input: &[u8], report: &mut Report) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| target.check(input))) {
        Ok(Ok(Outcome::Accepted)) => report.accepted += 1,
        Ok(Ok(Outcome::Rejected)) => report.rejected += 1,
        Ok(Err(message)) => return Err(message),
        Err(payload) => return Err(format!("panic: {}", xling_panic::message(&*payload))),
    }
    Ok(())
}

/// Writes `input` as `crash-<hash>`; a failure to save is reported, not fatal.
fn save(dir: &Path, input: &[u8]) -> Option<PathBuf> {
    let hash = Sha256::digest(input);
    let name: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    let path = dir.join(format!("crash-{name}"));
    let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, input));
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            eprintln!("cannot save the failing input to {}: {e}", path.display());
            None
        }
    }
}
