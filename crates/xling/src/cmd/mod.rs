//! One module per subcommand; each owns its clap arguments and a `run` entry point.

pub mod bench;
pub mod eval;
pub mod index;
pub mod loadtest;
pub mod serve;
