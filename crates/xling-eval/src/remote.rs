//! The real client path: every question goes through a running server's `Search` RPC with the
//! setting's language filter, many in flight so the server's batcher sees concurrent load.

use std::collections::HashMap;

use futures::stream::{self, StreamExt, TryStreamExt};
use tonic::transport::Channel;
use xling_proto::v1::retrieval_client::RetrievalClient;
use xling_proto::v1::{EmbedMode, EmbedRequest, InfoRequest, InfoResponse, SearchRequest};

use crate::lareqa::Dataset;
use crate::protocol::{empty_rankings, Rankings, Setting};
use crate::{progress::Progress, EvalError};

/// Texts per `Embed` call when fetching query embeddings for exact search.
const EMBED_BATCH: usize = 32;

/// A connected gRPC client.
#[derive(Clone)]
pub struct Remote {
    addr: String,
    client: RetrievalClient<Channel>,
}

impl Remote {
    /// Connects to `addr` (`host:port`, or a full `http://` URI).
    pub async fn connect(addr: &str) -> Result<Remote, EvalError> {
        let uri = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let connect_error = |message: String| EvalError::Connect {
            addr: addr.to_string(),
            message,
        };
        let channel = Channel::from_shared(uri)
            .map_err(|e| connect_error(e.to_string()))?
            .connect()
            .await
            .map_err(|e| connect_error(error_chain(&e)))?;
        // Candidate texts and batched embeddings exceed tonic's 4 MiB default on the client side.
        let client = RetrievalClient::new(channel).max_decoding_message_size(64 << 20);
        Ok(Remote {
            addr: addr.to_string(),
            client,
        })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub async fn info(&self) -> Result<InfoResponse, EvalError> {
        let response = self.client.clone().info(InfoRequest {}).await;
        Ok(response.map_err(|s| rpc_error("Info", s))?.into_inner())
    }

    /// One `Search` per (setting, question), `concurrency` in flight; hits mapped back to
    /// candidate indices.
    pub async fn rankings(
        &self,
        dataset: &Dataset,
        settings: &[Setting],
        top_k: usize,
        ef: usize,
        concurrency: usize,
    ) -> Result<Rankings, EvalError> {
        let index = candidate_index(dataset);
        let jobs = settings.iter().enumerate().flat_map(|(si, setting)| {
            let pool = setting.pool_languages(&dataset.languages);
            setting
                .questions
                .iter()
                .enumerate()
                .map(move |(slot, &qi)| (si, slot, qi, pool.clone()))
        });
        let total = settings.iter().map(|s| s.questions.len()).sum();
        let progress = Progress::new("search", total);
        let results: Vec<(usize, usize, Vec<u32>)> = stream::iter(jobs)
            .map(|(si, slot, qi, languages)| {
                let client = self.client.clone();
                let request = SearchRequest {
                    query: dataset.questions[qi].text.clone(),
                    top_k: top_k as u32,
                    languages,
                    ef: ef as u32,
                    vector: vec![],
                };
                let index = &index;
                let progress = &progress;
                async move {
                    let response = with_backoff("Search", || {
                        let (mut client, request) = (client.clone(), request.clone());
                        async move { client.search(request).await }
                    })
                    .await?
                    .into_inner();
                    let ranked = response
                        .hits
                        .iter()
                        .map(|hit| lookup(index, &hit.passage_id))
                        .collect::<Result<Vec<u32>, EvalError>>()?;
                    progress.tick();
                    Ok::<_, EvalError>((si, slot, ranked))
                }
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        let mut rankings = empty_rankings(settings);
        for (si, slot, ranked) in results {
            rankings[si][slot] = ranked;
        }
        Ok(rankings)
    }

    /// Query embeddings of `texts` from the server's `Embed` RPC (the served model).
    pub async fn embed_queries(
        &self,
        texts: &[&str],
        concurrency: usize,
    ) -> Result<Vec<Vec<f32>>, EvalError> {
        let progress = Progress::new("embed", texts.len());
        let batches: Vec<Vec<Vec<f32>>> = stream::iter(texts.chunks(EMBED_BATCH))
            .map(|chunk| {
                let client = self.client.clone();
                let request = EmbedRequest {
                    texts: chunk.iter().map(|t| t.to_string()).collect(),
                    mode: EmbedMode::Query as i32,
                };
                let progress = &progress;
                async move {
                    let response = with_backoff("Embed", || {
                        let (mut client, request) = (client.clone(), request.clone());
                        async move { client.embed(request).await }
                    })
                    .await?
                    .into_inner();
                    for _ in &response.embeddings {
                        progress.tick();
                    }
                    Ok::<_, EvalError>(response.embeddings.into_iter().map(|e| e.values).collect())
                }
            })
            .buffered(concurrency.max(1))
            .try_collect()
            .await?;
        Ok(batches.into_iter().flatten().collect())
    }
}

/// Calls `call` again while the server refuses it for load (RESOURCE_EXHAUSTED: its admission
/// says "retry with backoff"), waiting 20 ms, 40 ms, ... up to about 10 s in all; an evaluation
/// measures quality, so a busy server slows it down rather than failing it.
async fn with_backoff<T, F, Fut>(rpc: &'static str, mut call: F) -> Result<T, EvalError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut wait = std::time::Duration::from_millis(20);
    for _ in 0..9 {
        match call().await {
            Err(status) if status.code() == tonic::Code::ResourceExhausted => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other.map_err(|s| rpc_error(rpc, s)),
        }
    }
    call().await.map_err(|s| rpc_error(rpc, s))
}

/// `transport error: tcp connect error: Connection refused`: the causes tonic wraps.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper and tonic repeat their cause's words in their own message.
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn rpc_error(rpc: &'static str, status: tonic::Status) -> EvalError {
    EvalError::Rpc {
        rpc,
        status: Box::new(status),
    }
}

/// Passage id -> candidate index.
pub(crate) fn candidate_index(dataset: &Dataset) -> HashMap<&str, u32> {
    dataset
        .candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id.as_str(), i as u32))
        .collect()
}

pub(crate) fn lookup(index: &HashMap<&str, u32>, id: &str) -> Result<u32, EvalError> {
    index
        .get(id)
        .copied()
        .ok_or_else(|| EvalError::UnknownPassage { id: id.to_string() })
}
