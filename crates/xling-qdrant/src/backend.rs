//! [`QdrantBackend`]: the [`Backend`] trait over a Qdrant collection (or alias).
//!
//! Every call goes to one of the configured peers, round robin; a peer that is down or
//! refuses (`Unavailable`) hands the call to the next one, until the request's deadline or
//! every peer has been tried. A Qdrant cluster answers reads on any peer (it forwards to the
//! shard replicas it lacks), so listing all peers (or one Service address in front of them)
//! rides out the loss of one.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use qdrant_client::qdrant::{
    Condition, FacetCountsBuilder, Filter, GetPointsBuilder, QuantizationSearchParamsBuilder,
    Query as QdrantQuery, QueryBatchPointsBuilder, QueryPoints, QueryPointsBuilder,
    SearchParamsBuilder,
};
use qdrant_client::{Qdrant, QdrantError};
use xling_index::{Backend, BackendInfo, Found, IndexError, Passage, Query};

use crate::error::{backend_name, index_error, retryable};
use crate::schema::{self, Routing};

/// Where and how to reach the collection.
#[derive(Debug, Clone)]
pub struct QdrantOptions {
    /// gRPC URLs of one or more peers of the same cluster (`http://host:6334`; `https://`
    /// for TLS, verified against the system's roots or `SSL_CERT_FILE`).
    pub urls: Vec<String>,
    /// Collection or alias name.
    pub collection: String,
    /// Qdrant's `api-key` (service.api_key on the server); never logged.
    pub api_key: Option<String>,
    /// Longest wait for one Qdrant call when the request sets no shorter deadline.
    pub timeout: Duration,
    /// How often `describe()`'s passage and language counts are re-read.
    pub refresh: Duration,
}

struct Peer {
    url: String,
    client: Qdrant,
}

pub struct QdrantBackend {
    peers: Vec<Peer>,
    next: AtomicUsize,
    collection: String,
    /// For messages: the collection and the first URL.
    name: String,
    timeout: Duration,
    layout: Layout,
    info: RwLock<Arc<BackendInfo>>,
}

/// What the collection's config says about how to query it.
#[derive(Debug, Clone, Copy)]
struct Layout {
    quantized: bool,
    routing: Routing,
}

/// Connects (lazily: the first call opens the channel) without the client's blocking version
/// check, which would stall startup on a peer that is down.
pub(crate) fn client(
    url: &str,
    api_key: Option<&str>,
    timeout: Duration,
) -> Result<Qdrant, IndexError> {
    let mut config = Qdrant::from_url(url)
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(2)))
        .skip_compatibility_check();
    if let Some(key) = api_key {
        config = config.api_key(key.to_string());
    }
    Qdrant::new(config).map_err(|e| IndexError::Remote {
        backend: format!("qdrant at {url}"),
        reason: e.to_string(),
    })
}

impl QdrantBackend {
    /// Connects, reads the collection's metadata (model id, dim) and counts, and starts the
    /// task that refreshes the counts every `options.refresh`.
    pub async fn open(options: QdrantOptions) -> Result<Arc<QdrantBackend>, IndexError> {
        let first = options.urls.first().ok_or_else(|| IndexError::Remote {
            backend: "qdrant".into(),
            reason: "no URL given".into(),
        })?;
        let name = backend_name(first, &options.collection);
        let peers = options
            .urls
            .iter()
            .map(|url| {
                Ok(Peer {
                    url: url.clone(),
                    client: client(url, options.api_key.as_deref(), options.timeout)?,
                })
            })
            .collect::<Result<Vec<_>, IndexError>>()?;
        let mut backend = QdrantBackend {
            peers,
            next: AtomicUsize::new(0),
            collection: options.collection.clone(),
            name,
            timeout: options.timeout,
            layout: Layout {
                quantized: false,
                routing: Routing::Tenant,
            },
            info: RwLock::new(Arc::default()),
        };
        let (info, layout) = backend.read_info().await?;
        backend.layout = layout;
        *backend.info.write().expect("not poisoned") = Arc::new(info);
        let backend = Arc::new(backend);
        tokio::spawn(refresh(Arc::downgrade(&backend), options.refresh));
        Ok(backend)
    }

    /// Runs `call` on one peer after another (round robin start) until one answers, a
    /// non-retryable error comes, or the deadline passes.
    async fn call<T, F, Fut>(&self, deadline: Option<Instant>, call: F) -> Result<T, IndexError>
    where
        F: Fn(Qdrant) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>>,
    {
        let started = Instant::now();
        let limit = deadline.unwrap_or(started + self.timeout);
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for attempt in 0..self.peers.len() {
            let peer = &self.peers[(first + attempt) % self.peers.len()];
            let timed_out = || IndexError::Timeout {
                backend: self.name.clone(),
                waited_ms: started.elapsed().as_millis() as u64,
            };
            if Instant::now() >= limit {
                return Err(timed_out());
            }
            let outcome = tokio::time::timeout_at(limit.into(), call(peer.client.clone())).await;
            let error = match outcome {
                Err(_) => return Err(timed_out()),
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => index_error(&self.name, e),
            };
            if !retryable(&error) {
                return Err(error);
            }
            tracing::warn!(peer = %peer.url, error = %error, "qdrant peer failed; trying the next");
            last = Some(error);
        }
        Err(last.unwrap_or_else(|| IndexError::Unavailable {
            backend: self.name.clone(),
            reason: "no peer configured".into(),
        }))
    }

    /// Model id and dim from the collection metadata, passage and language counts.
    async fn read_info(&self) -> Result<(BackendInfo, Layout), IndexError> {
        let collection = self.collection.clone();
        let info = self
            .call(None, |c| {
                let collection = collection.clone();
                async move { c.collection_info(collection).await }
            })
            .await?
            .result
            .ok_or_else(|| self.remote("collection info came back empty"))?;
        let config = info
            .config
            .ok_or_else(|| self.remote("collection info has no config"))?;
        let metadata = &config.metadata;
        let model_id = schema::string_value(metadata.get(schema::META_MODEL_ID));
        let dim = schema::integer_value(metadata.get(schema::META_DIM));
        let (Some(model_id), Some(dim)) = (model_id, dim) else {
            return Err(self.remote(
                "the collection has no xling metadata (model id, dim): build it with `xling index build --to-qdrant`",
            ));
        };
        let routing = match schema::string_value(metadata.get(schema::META_ROUTING)) {
            None => Routing::Tenant,
            Some(name) => Routing::parse(name).ok_or_else(|| {
                self.remote(&format!(
                    "unknown language routing `{name}` (a newer xling built it?)"
                ))
            })?,
        };
        let layout = Layout {
            quantized: config.quantization_config.is_some(),
            routing,
        };
        let facet = self
            .call(None, |c| {
                let request = FacetCountsBuilder::new(collection.clone(), schema::FIELD_LANGUAGE)
                    .exact(true)
                    .limit(256);
                async move { c.facet(request).await }
            })
            .await?;
        let languages: BTreeMap<String, usize> = facet
            .hits
            .into_iter()
            .filter_map(|hit| match hit.value?.variant? {
                qdrant_client::qdrant::facet_value::Variant::StringValue(code) => {
                    Some((code, hit.count as usize))
                }
                _ => None,
            })
            .collect();
        let info = BackendInfo {
            kind: "qdrant",
            location: self.name.clone(),
            model_id: model_id.to_string(),
            dim: dim as usize,
            passages: languages.values().sum(),
            languages,
            generation: 0,
            bytes_in_ram: 0,
            bytes_mapped: 0,
        };
        Ok((info, layout))
    }

    fn remote(&self, reason: &str) -> IndexError {
        IndexError::Remote {
            backend: self.name.clone(),
            reason: reason.to_string(),
        }
    }

    fn query_points(&self, q: &Query<'_>) -> QueryPoints {
        let mut params = SearchParamsBuilder::default().hnsw_ef(q.ef.max(q.k) as u64);
        if self.layout.quantized {
            // int8 walk, then the fp32 originals re-rank twice the asked candidates.
            params = params.quantization(
                QuantizationSearchParamsBuilder::default()
                    .rescore(true)
                    .oversampling(2.0),
            );
        }
        let mut builder = QueryPointsBuilder::new(self.collection.clone())
            .query(QdrantQuery::new_nearest(q.vector.to_vec()))
            .limit(q.k as u64)
            .with_payload(true)
            .params(params);
        if let Some(languages) = q.languages.filter(|l| !l.is_empty()) {
            builder = match self.layout.routing {
                Routing::Tenant => builder.filter(Filter::must([Condition::matches(
                    schema::FIELD_LANGUAGE,
                    languages.to_vec(),
                )])),
                // Only the shard keys that exist: a code the collection lacks (the validator
                // lets through only indexed ones) must not name a missing key.
                Routing::ShardKey => {
                    let info = self.info.read().expect("not poisoned");
                    let keys: Vec<String> = languages
                        .iter()
                        .filter(|l| info.languages.contains_key(*l))
                        .cloned()
                        .collect();
                    builder.shard_key_selector(keys)
                }
            };
        }
        builder.build()
    }
}

/// Re-reads the counts every `every` while the backend lives; a failed read keeps the last.
async fn refresh(backend: Weak<QdrantBackend>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(backend) = backend.upgrade() else {
            return;
        };
        match backend.read_info().await {
            Ok((mut info, _)) => {
                let mut current = backend.info.write().expect("not poisoned");
                info.generation = current.generation + u64::from(**current != info);
                *current = Arc::new(info);
            }
            Err(e) => tracing::warn!(error = %e, "cannot refresh the Qdrant collection's counts"),
        }
    }
}

#[async_trait::async_trait]
impl Backend for QdrantBackend {
    fn describe(&self) -> Arc<BackendInfo> {
        self.info.read().expect("not poisoned").clone()
    }

    fn check_model(&self, model_id: &str, dim: usize) -> Result<(), IndexError> {
        let info = self.describe();
        if info.model_id == model_id && info.dim == dim {
            return Ok(());
        }
        Err(IndexError::ModelMismatch {
            dir: self.name.clone().into(),
            index_model: info.model_id.clone(),
            index_dim: info.dim,
            model: model_id.to_string(),
            dim,
        })
    }

    async fn search_batch(
        &self,
        queries: &[Query<'_>],
        deadline: Option<Instant>,
    ) -> Result<Vec<Vec<Found>>, IndexError> {
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        let points: Vec<QueryPoints> = queries.iter().map(|q| self.query_points(q)).collect();
        let collection = self.collection.clone();
        let response = self
            .call(deadline, |c| {
                let request = QueryBatchPointsBuilder::new(collection.clone(), points.clone());
                async move { c.query_batch(request).await }
            })
            .await?;
        if response.result.len() != queries.len() {
            return Err(self.remote("the batch query returned another number of result lists"));
        }
        response
            .result
            .into_iter()
            .map(|batch| {
                batch
                    .result
                    .into_iter()
                    .map(|point| {
                        let score = point.score;
                        schema::passage(point.payload)
                            .map(|passage| Found { passage, score })
                            .ok_or_else(|| self.remote("a point without the xling payload"))
                    })
                    .collect()
            })
            .collect()
    }

    async fn passages(&self, ids: &[String]) -> Result<Vec<Option<Passage>>, IndexError> {
        let point_ids: Vec<_> = ids.iter().map(|id| schema::point_id(id)).collect();
        let collection = self.collection.clone();
        let response = self
            .call(None, |c| {
                let request =
                    GetPointsBuilder::new(collection.clone(), point_ids.clone()).with_payload(true);
                async move { c.get_points(request).await }
            })
            .await?;
        let mut found: std::collections::HashMap<String, Passage> = response
            .result
            .into_iter()
            .filter_map(|point| schema::passage(point.payload))
            .map(|p| (p.id.clone(), p))
            .collect();
        Ok(ids.iter().map(|id| found.remove(id)).collect())
    }
}
