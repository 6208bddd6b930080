//! `xling`: one binary, one subcommand per job.
//!
//! # Layout
//! - `cmd::serve`    — run the gRPC server (`xling-server`).
//! - `cmd::index`    — build an HNSW index from a JSON Lines corpus (`xling-index`).
//! - `cmd::eval`     — retrieval evaluation on LAReQA-format data (`xling-eval`).
//! - `cmd::loadtest` — ghz-compatible load tests (`xling-loadtest`).
//! - `cmd::bench`    — raw encoder benchmark, the ceiling the service is measured against.

mod cmd;
mod logging;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xling",
    version,
    about = "Multilingual and cross-lingual passage retrieval over gRPC"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the Retrieval gRPC API (defaults: the setup script's model and demo index).
    Serve(Box<cmd::serve::Args>),
    /// Build or inspect a passage index.
    #[command(subcommand)]
    Index(cmd::index::Command),
    /// Evaluate retrieval quality on XQuAD-R / MLQA-R style data.
    Eval(cmd::eval::Args),
    /// Load-test a server with a ghz config file (ghz's keys, flags and JSON report).
    Loadtest(cmd::loadtest::Args),
    /// Benchmarks that print numbers.
    #[command(subcommand)]
    Bench(cmd::bench::Command),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => cmd::serve::run(*args),
        Command::Index(command) => cmd::index::run(command),
        Command::Eval(args) => cmd::eval::run(args),
        Command::Loadtest(args) => cmd::loadtest::run(args),
        Command::Bench(command) => cmd::bench::run(command),
    }
}
