//! What `xling serve` opens: the embedded folder, or the Qdrant collection the config names.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use xling_index::Backend;
use xling_server::config::{Config, IndexBackend};

use crate::backend::{QdrantBackend, QdrantOptions};

/// How often a Qdrant backend re-reads its passage and language counts (Info, validation).
pub const REFRESH: Duration = Duration::from_secs(30);

/// An [`xling_server::engine::OpenBackend`] that knows both backends.
pub fn open_backend(config: Config) -> BoxFuture<'static, anyhow::Result<Arc<dyn Backend>>> {
    match config.index_backend.clone() {
        IndexBackend::Embedded => xling_server::engine::open_embedded(config),
        IndexBackend::Qdrant(target) => Box::pin(async move {
            let options = QdrantOptions {
                urls: target.urls,
                collection: target.collection,
                api_key: target.api_key.map(|k| k.expose().to_string()),
                timeout: target.timeout,
                refresh: REFRESH,
            };
            let backend = QdrantBackend::open(options).await?;
            Ok(backend as Arc<dyn Backend>)
        }),
    }
}
