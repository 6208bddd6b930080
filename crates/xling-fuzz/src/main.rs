//! `xling-fuzz <target> --iterations N --seed S [--corpus DIR] [--max-seconds T]`: replays the
//! target's corpus, tries N new inputs, prints a one-line report, and exits 1 on a finding
//! (the failing input is saved into the corpus folder).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use xling_fuzz::runner::{self, Options};
use xling_fuzz::targets::{self, NAMES};

#[derive(Parser)]
#[command(about = "Random and mutational fuzzing of xling on stable Rust (no coverage guidance)")]
struct Args {
    /// validate, tokenize-batch, corpus or dataset.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(NAMES))]
    target: String,
    /// New inputs to try after replaying the corpus.
    #[arg(long, default_value_t = 10_000)]
    iterations: u64,
    /// Seed of the input generator: the same seed tries the same inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Seed corpus folder; a failing input is saved there. Default: crates/xling-fuzz/corpus/<target>.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Stop after this many seconds even if iterations remain.
    #[arg(long)]
    max_seconds: Option<f64>,
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let corpus_dir = args
        .corpus
        .unwrap_or_else(|| targets::corpus_dir(&args.target));
    let corpus = runner::load_corpus(&corpus_dir)?;
    let mut target = targets::by_name(&args.target, &targets::repo_root())?;
    let options = Options {
        iterations: args.iterations,
        seed: args.seed,
        max_time: args.max_seconds.map(Duration::from_secs_f64),
        save_to: Some(corpus_dir),
    };
    let report = runner::run(target.as_mut(), &corpus, &options);
    println!("{report}");
    Ok(match report.finding {
        Some(_) => ExitCode::FAILURE,
        None => ExitCode::SUCCESS,
    })
}
