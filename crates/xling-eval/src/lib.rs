//! Retrieval evaluation on LAReQA-format data (XQuAD-R, MLQA-R), following the LAReQA protocol:
//! candidates are sentences, a question's relevant candidates are the sentences holding its
//! answer in each language's parallel paragraph, and mAP is averaged over questions, then
//! macro-averaged over monolingual (X->X), cross-lingual (X->Y) and multilingual (X->all)
//! settings.
//!
//! Rankings come from the real serving path ([`remote`]: the server's `Search` RPC with a
//! language filter) or in process ([`local`]: the encoder and an xling index); exact search
//! over the index's stored embeddings gives the figure the ANN index is measured against.
//!
//! # Layout
//! - [`lareqa`]: the dataset loader ([`Dataset`]) and `--write-corpus`.
//! - [`metrics`]: AP, Recall@k, nDCG@k, ANN-vs-exact overlap, the language-bias figure.
//! - [`protocol`]: settings, rankings, per-setting and macro scores, ANN-vs-exact comparison.
//! - [`remote`]: the gRPC client path.
//! - [`local`]: the in-process path (encoder + index), and exact search for both paths.
//! - [`report`]: the JSON and markdown reports.
//! - [`runner`]: one run end to end ([`runner::evaluate`]).
//! - [`error`]: [`EvalError`], the one error type of this crate.

pub mod error;
pub mod lareqa;
pub mod local;
pub mod metrics;
mod progress;
pub mod protocol;
pub mod remote;
pub mod report;
pub mod runner;

pub use error::EvalError;
pub use lareqa::{Dataset, LoadOptions};
pub use protocol::{Comparison, Kind, Rankings, Scores, Setting};
pub use report::{Report, RunInfo};
