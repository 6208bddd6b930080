//! Fuzzing on stable Rust: random, structure-aware generation plus byte mutations of a small
//! seed corpus, run through xling's real code, with an invariant checked on every input.
//!
//! There is no coverage guidance (libFuzzer's needs nightly's sanitizer flags, and nightly is
//! not available where xling is built), so the generators aim at the edges on purpose: empty,
//! huge, control characters, mixed scripts, extreme numbers, broken JSON and protobuf.
//!
//! # Layout
//! - [`targets`]: the four [`Target`]s (`validate`, `tokenize-batch`, `corpus`, `dataset`),
//!   each an input generator and an invariant check around the real code.
//! - [`text`]: hostile text shared by the targets (scripts, control characters, sizes).
//! - [`mutate`]: byte-level mutations (AFL "havoc" style) and splicing.
//! - [`runner`]: the loop: replay the corpus, then generate or mutate, check, catch panics,
//!   save what fails into the corpus.

pub mod mutate;
pub mod runner;
pub mod targets;
pub mod text;

use rand::rngs::StdRng;

/// What the real code did with an input that broke no invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Refused with an error that met the invariant.
    Rejected,
}

impl Outcome {
    /// Accepted only if both parts were.
    pub fn and(self, other: Outcome) -> Outcome {
        match self {
            Outcome::Accepted => other,
            Outcome::Rejected => Outcome::Rejected,
        }
    }
}

/// One thing to fuzz. Inputs are bytes so that every input can be mutated, saved and replayed.
pub trait Target {
    fn name(&self) -> &'static str;

    /// A fresh structure-aware input; `seeds` is the corpus, for targets that grow from it.
    fn generate(&mut self, rng: &mut StdRng, seeds: &[Vec<u8>]) -> Vec<u8>;

    /// Byte strings worth inserting when mutating (field names, separators, edge values).
    fn dictionary(&self) -> &'static [&'static [u8]];

    /// Runs `input` through the real code. `Err` is a broken invariant, with what broke.
    fn check(&mut self, input: &[u8]) -> Result<Outcome, String>;
}
