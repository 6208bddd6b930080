//! Load tests for xling that speak ghz: the same config keys and flags, the same JSON report,
//! and latency measured from the intended send time in rate mode (no coordinated omission).
//! Also the raw encoder benchmark, the ceiling the service is measured against.
//!
//! # Layout
//! - [`config`]: [`GhzConfig`], ghz's config keys from JSON/TOML; flags merge over the file.
//! - [`spec`]: [`RunSpec`], defaults applied and every setting validated.
//! - [`schedule`]: const/step/line load and concurrency schedules as pure functions of time.
//! - `inputs`: call data and metadata from the config or the files it names.
//! - [`call`]: the `xling.v1.Retrieval` calls, their JSON call data, one call over tonic.
//! - [`runner`]: connections, workers, tickets with due times, duration and stop rules.
//! - [`report`]: ghz's JSON report and text summary, and xling's flat summary JSON.
//! - [`xquad`]: ghz data files of XQuAD-R questions, built at run time.
//! - [`pipeline`]: `xling bench pipeline`, the real service per encoder instance count.
//! - [`scrape`]: the server's `/metrics`, fetched and summed.
//! - [`encoder_bench`]: `xling bench encoder`, the encoder alone per batch size and length.
//! - [`timefmt`]: Go duration strings and RFC 3339 dates.
//! - [`error`]: [`LoadtestError`], the one error type of this crate.

pub mod call;
pub mod config;
pub mod encoder_bench;
pub mod error;
mod inputs;
pub mod pipeline;
pub mod report;
pub mod runner;
pub mod schedule;
pub mod scrape;
pub mod spec;
pub mod timefmt;
pub mod xquad;

pub use config::GhzConfig;
pub use error::LoadtestError;
pub use inputs::query_texts;
pub use report::Report;
pub use spec::RunSpec;
