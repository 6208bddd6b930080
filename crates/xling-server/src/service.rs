//! The `xling.v1.Retrieval` gRPC service: proto in, [`Engine`] calls, proto out.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::future::try_join_all;
use prost::Message;
use tonic::{Code, Request, Response, Status};
use xling_encoder::Mode;
use xling_index::Query;
use xling_proto::v1::retrieval_server::Retrieval;
use xling_proto::v1::{
    BatchingInfo, EmbedRequest, EmbedResponse, Embedding, Hit, InfoRequest, InfoResponse,
    LanguageCount, SearchBatchRequest, SearchBatchResponse, SearchRequest, SearchResponse, Timing,
};

use crate::config::Limits;
use crate::engine::{Embedded, Engine};
use crate::error::ServerError;
use crate::metrics::RequestGuard;
use crate::validate::{self, SearchInput, ValidSearch};

/// How much earlier than the caller's deadline xling gives up on a query.
const DEADLINE_MARGIN: Duration = Duration::from_millis(5);

/// What every RPC shares: the engine once loaded, and whether shutdown has begun.
pub struct State {
    pub engine: OnceLock<Engine>,
    pub draining: AtomicBool,
    pub limits: Limits,
    pub log_queries: bool,
}

impl State {
    pub fn new(limits: Limits, log_queries: bool) -> Self {
        State {
            engine: OnceLock::new(),
            draining: AtomicBool::new(false),
            limits,
            log_queries,
        }
    }

    pub(crate) fn engine(&self) -> Result<&Engine, ServerError> {
        if self.draining.load(Ordering::Acquire) {
            return Err(ServerError::Unavailable {
                reason: "server is shutting down; retry on another instance".into(),
            });
        }
        self.engine.get().ok_or_else(|| ServerError::Unavailable {
            reason: "model and index are still loading; retry shortly".into(),
        })
    }
}

pub struct RetrievalService {
    state: Arc<State>,
}

impl RetrievalService {
    pub fn new(state: Arc<State>) -> Self {
        RetrievalService { state }
    }

    /// Validates the common parts of a request and returns the engine and the deadline.
    fn admit<T: Message>(
        &self,
        request: &Request<T>,
    ) -> Result<(&Engine, Option<tokio::time::Instant>), ServerError> {
        validate::message_size(request.get_ref().encoded_len(), &self.state.limits)?;
        let engine = self.state.engine()?;
        // tonic cancels the handler exactly at the deadline (and answers CANCELLED); aim a
        // little earlier so the caller gets DEADLINE_EXCEEDED from us.
        let deadline = validate::deadline(request.metadata())?
            .map(|d| tokio::time::Instant::now() + d.saturating_sub(DEADLINE_MARGIN.min(d / 2)));
        Ok((engine, deadline))
    }

    /// Embeds every query (each its own batcher item), then searches them all in one backend
    /// call: `Search` is a batch of one, `SearchBatch` one Qdrant batch query.
    async fn search_many(
        &self,
        engine: &Engine,
        queries: Vec<ValidSearch>,
        deadline: Option<tokio::time::Instant>,
        started: Instant,
    ) -> Result<Vec<SearchResponse>, ServerError> {
        if self.state.log_queries {
            for query in &queries {
                match &query.input {
                    SearchInput::Text(text) => {
                        tracing::info!(query = %text, top_k = query.top_k, "search")
                    }
                    SearchInput::Vector(v) => {
                        tracing::info!(vector_dim = v.len(), top_k = query.top_k, "search")
                    }
                }
            }
        }
        // Texts go through the batcher; a client's vector is only normalized.
        let embedded = try_join_all(queries.iter().map(|q| async move {
            match &q.input {
                SearchInput::Text(text) => engine.embed(text, Mode::Query, deadline).await,
                SearchInput::Vector(values) => Ok(Embedded::given(values)),
            }
        }))
        .await?;
        let batch: Vec<Query<'_>> = queries
            .iter()
            .zip(&embedded)
            .map(|(q, e)| Query {
                vector: &e.vector,
                k: q.top_k,
                ef: q.ef,
                languages: q.languages.as_deref(),
            })
            .collect();
        let (found, search_time) = engine.search(&batch, deadline).await?;
        Ok(embedded
            .iter()
            .zip(found)
            .map(|(embedded, found)| SearchResponse {
                hits: found
                    .into_iter()
                    .map(|f| Hit {
                        passage_id: f.passage.id,
                        score: f.score,
                        text: f.passage.text,
                        language: f.passage.language,
                        title: f.passage.title.unwrap_or_default(),
                    })
                    .collect(),
                timing: Some(timing(embedded, search_time, started.elapsed())),
                query_tokens: embedded.tokens as u32,
                truncated: embedded.truncated,
            })
            .collect())
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

fn timing(e: &Embedded, search: Duration, total: Duration) -> Timing {
    Timing {
        queue_us: micros(e.queue_wait),
        encode_us: micros(e.encode),
        search_us: micros(search),
        total_us: micros(total),
        batch_size: e.batch_size as u32,
        tokenize_us: micros(e.tokenize),
    }
}

/// Runs one RPC body with its metrics: in-flight, duration, and the status code it ended with.
pub(crate) async fn observed<T>(
    method: &'static str,
    body: impl Future<Output = Result<T, ServerError>>,
) -> Result<Response<T>, Status> {
    let mut guard = RequestGuard::start(method);
    let result = body.await;
    guard.finish(result.as_ref().map_or_else(ServerError::code, |_| Code::Ok));
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl Retrieval for RetrievalService {
    async fn search(
        &self,
        request: Request<SearchRequest>,
    ) -> Result<Response<SearchResponse>, Status> {
        let started = Instant::now();
        observed("Search", async {
            let (engine, deadline) = self.admit(&request)?;
            let index = engine.index_info();
            let query = validate::search(
                "",
                request.get_ref(),
                &self.state.limits,
                &index.languages,
                engine.model.dim,
            )?;
            let mut responses = self
                .search_many(engine, vec![query], deadline, started)
                .await?;
            // `Engine::search` answers one list per query: exactly one here.
            Ok(responses.swap_remove(0))
        })
        .await
    }

    async fn search_batch(
        &self,
        request: Request<SearchBatchRequest>,
    ) -> Result<Response<SearchBatchResponse>, Status> {
        let started = Instant::now();
        observed("SearchBatch", async {
            let (engine, deadline) = self.admit(&request)?;
            let index = engine.index_info();
            let valid = validate::search_batch(
                request.get_ref(),
                &self.state.limits,
                &index.languages,
                engine.model.dim,
            )?;
            let results = self.search_many(engine, valid, deadline, started).await?;
            Ok(SearchBatchResponse { results })
        })
        .await
    }

    async fn embed(
        &self,
        request: Request<EmbedRequest>,
    ) -> Result<Response<EmbedResponse>, Status> {
        let started = Instant::now();
        observed("Embed", async {
            let (engine, deadline) = self.admit(&request)?;
            let body = request.get_ref();
            let mode = validate::embed(body, &self.state.limits)?;
            let embedded =
                try_join_all(body.texts.iter().map(|t| engine.embed(t, mode, deadline))).await?;
            let slowest = embedded
                .iter()
                .max_by_key(|e| e.queue_wait + e.encode)
                .cloned();
            Ok(EmbedResponse {
                dim: engine.model.dim as u32,
                timing: slowest.map(|e| timing(&e, Duration::ZERO, started.elapsed())),
                embeddings: embedded
                    .into_iter()
                    .map(|e| Embedding {
                        tokens: e.tokens as u32,
                        truncated: e.truncated,
                        values: e.vector,
                    })
                    .collect(),
            })
        })
        .await
    }

    async fn info(&self, _request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        observed("Info", async {
            let engine = self.state.engine()?;
            let limits = &self.state.limits;
            let batching = &engine.batching;
            let index = engine.index_info();
            Ok(InfoResponse {
                model_id: engine.model.id.clone(),
                embedding_dim: engine.model.dim as u32,
                max_sequence_length: engine.model.max_length as u32,
                index_size: index.passages as u64,
                index_bytes_in_ram: index.bytes_in_ram,
                index_bytes_mapped: index.bytes_mapped,
                languages: index
                    .languages
                    .iter()
                    .map(|(language, &n)| LanguageCount {
                        language: language.clone(),
                        passages: n as u64,
                    })
                    .collect(),
                batching: Some(BatchingInfo {
                    max_batch_size: batching.max_batch_size as u32,
                    max_wait_us: micros(batching.max_wait),
                    queue_capacity: batching.queue_capacity as u32,
                    max_batch_tokens: batching.max_batch_tokens as u32,
                    adaptive_wait: batching.adaptive_wait,
                    split_by_length: batching.split_by_length,
                    encoder_instances: engine.model.instances as u32,
                    split_window: batching.split_window as u32,
                }),
                device: engine.model.device.clone(),
                version: env!("CARGO_PKG_VERSION").into(),
                max_top_k: limits.max_top_k,
                max_batch_queries: limits.max_batch_queries as u32,
                default_ef: limits.default_ef,
                encoder: engine.model.encoder.clone(),
            })
        })
        .await
    }
}
