//! Qdrant as xling's distributed index backend: a [`Backend`](xling_index::Backend) over a
//! Qdrant collection or alias, and the uploader behind `xling index build --to-qdrant`. Only
//! this crate links `qdrant-client`; the embedded path never does.
//!
//! # Layout
//! - `schema`  — point ids (UUIDs from the passage id), payload fields, collection metadata.
//! - `backend` — [`QdrantBackend`], [`QdrantOptions`]: search (one `query_batch` per request
//!   batch, language filter, `hnsw_ef`), passage lookup, model check, peer failover.
//! - `upload`  — [`upload`], [`UploadSpec`]: create, bulk upsert with retries, wait green,
//!   alias swap.
//! - `serve`   — [`open_backend`]: what `xling serve` opens (embedded folder or Qdrant).
//! - `error`   — Qdrant errors as `IndexError::{Unavailable, Timeout, Remote}`.

mod backend;
mod error;
mod schema;
mod serve;
mod upload;

pub use backend::{QdrantBackend, QdrantOptions};
pub use schema::Routing;
pub use serve::{open_backend, REFRESH};
pub use upload::{upload, UploadReport, UploadSpec};
