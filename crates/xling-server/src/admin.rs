//! The `xling.v1.Admin` gRPC service: upserts, deletes and index swaps on a live backend.
//!
//! Every request is validated whole before anything happens (an upsert lands all or none);
//! texts are encoded in the batcher's background lane, so queries go first; the write itself
//! (log append + fsync + apply, or a whole index load) runs on a blocking thread and is not
//! cancelled by a client that goes away, so what was logged is also applied.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use prost::Message;
use tonic::{Request, Response, Status};
use xling_index::{is_iso639_1, Passage, Writable};
use xling_proto::v1::admin_server::Admin;
use xling_proto::v1::{
    DeleteRequest, DeleteResponse, SwapIndexRequest, SwapIndexResponse, UpsertRequest,
    UpsertResponse,
};

use crate::config::{Limits, LiveConfig};
use crate::engine::Engine;
use crate::error::ServerError;
use crate::metrics;
use crate::service::{observed, State};
use crate::validate;

pub struct AdminService {
    state: Arc<State>,
    live: LiveConfig,
}

impl AdminService {
    pub fn new(state: Arc<State>, live: LiveConfig) -> Self {
        AdminService { state, live }
    }

    /// The engine and its backend's write half, after the common request checks.
    fn admit<T: Message>(
        &self,
        request: &Request<T>,
    ) -> Result<(&Engine, Arc<dyn Writable>), ServerError> {
        validate::message_size(request.get_ref().encoded_len(), &self.state.limits)?;
        let engine = self.state.engine()?;
        let writable = engine.backend().clone().writable().ok_or_else(|| {
            ServerError::Precondition {
                reason: format!(
                    "the {} index backend is read-only here: Upsert, Delete and SwapIndex need the embedded index (--index-backend embedded)",
                    engine.index_info().kind
                ),
            }
        })?;
        Ok((engine, writable))
    }
}

/// Runs a blocking write on a blocking thread; a dropped request does not cancel it.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, xling_index::IndexError> + Send + 'static,
) -> Result<T, ServerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ServerError::Encoder {
            reason: format!("index write task failed: {e}"),
        })?
        .map_err(ServerError::from)
}

/// Checks a list's length: at least one, at most `max`.
fn count(field: &str, n: usize, max: usize) -> Result<(), ServerError> {
    if n == 0 {
        return Err(ServerError::invalid(field, "is empty"));
    }
    if n > max {
        return Err(ServerError::invalid(
            field,
            format!("{n} items, more than max_upsert_passages = {max}; split the request"),
        ));
    }
    Ok(())
}

/// Validates an upsert's passages with the corpus's rules, plus unique ids and the text limit.
pub fn passages(
    request: &UpsertRequest,
    limits: &Limits,
    max: usize,
) -> Result<Vec<Passage>, ServerError> {
    count("passages", request.passages.len(), max)?;
    let mut seen = HashSet::new();
    request
        .passages
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let field = |name: &str| format!("passages[{i}].{name}");
            if p.id.trim().is_empty() {
                return Err(ServerError::invalid(field("id"), "is empty"));
            }
            if !seen.insert(p.id.as_str()) {
                return Err(ServerError::invalid(
                    field("id"),
                    format!("`{}` appears twice in this request", p.id),
                ));
            }
            if p.text.trim().is_empty() {
                return Err(ServerError::invalid(field("text"), "is empty"));
            }
            if p.text.len() > limits.max_text_bytes {
                return Err(ServerError::invalid(
                    field("text"),
                    format!(
                        "{} bytes, more than max_text_bytes = {}",
                        p.text.len(),
                        limits.max_text_bytes
                    ),
                ));
            }
            if !is_iso639_1(&p.language) {
                return Err(ServerError::invalid(
                    field("language"),
                    format!(
                        "`{}` is not an ISO 639-1 code (two lowercase letters such as `en`, `zh`)",
                        p.language
                    ),
                ));
            }
            Ok(Passage {
                id: p.id.clone(),
                text: p.text.clone(),
                language: p.language.clone(),
                title: Some(p.title.clone()).filter(|t| !t.trim().is_empty()),
            })
        })
        .collect()
}

/// Validates a delete's ids: non-empty, unique.
pub fn ids(request: &DeleteRequest, max: usize) -> Result<Vec<String>, ServerError> {
    count("ids", request.ids.len(), max)?;
    let mut seen = HashSet::new();
    for (i, id) in request.ids.iter().enumerate() {
        if id.trim().is_empty() {
            return Err(ServerError::invalid(format!("ids[{i}]"), "is empty"));
        }
        if !seen.insert(id.as_str()) {
            return Err(ServerError::invalid(
                format!("ids[{i}]"),
                format!("`{id}` appears twice in this request"),
            ));
        }
    }
    Ok(request.ids.clone())
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn upsert(
        &self,
        request: Request<UpsertRequest>,
    ) -> Result<Response<UpsertResponse>, Status> {
        observed("Upsert", async {
            let (engine, writable) = self.admit(&request)?;
            let passages = passages(
                request.get_ref(),
                &self.state.limits,
                self.live.max_upsert_passages,
            )?;
            let texts: Vec<&str> = passages.iter().map(|p| p.text.as_str()).collect();
            let vectors = engine.embed_passages(&texts).await?.concat();
            let written = blocking(move || writable.upsert(passages, vectors)).await?;
            metrics::passages_written("upsert", written.changed);
            Ok(UpsertResponse {
                generation: written.generation,
                upserted: written.changed as u32,
            })
        })
        .await
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        observed("Delete", async {
            let (_, writable) = self.admit(&request)?;
            let ids = ids(request.get_ref(), self.live.max_upsert_passages)?;
            let written = blocking(move || writable.delete(ids)).await?;
            metrics::passages_written("delete", written.changed);
            Ok(DeleteResponse {
                deleted: written.changed as u32,
            })
        })
        .await
    }

    async fn swap_index(
        &self,
        request: Request<SwapIndexRequest>,
    ) -> Result<Response<SwapIndexResponse>, Status> {
        observed("SwapIndex", async {
            let (engine, writable) = self.admit(&request)?;
            let path = PathBuf::from(&request.get_ref().path);
            if request.get_ref().path.trim().is_empty() {
                return Err(ServerError::invalid("path", "is empty"));
            }
            if !path.is_dir() {
                return Err(ServerError::invalid(
                    "path",
                    format!(
                        "{} is not a folder on the server (give an index folder built by `xling index build`)",
                        path.display()
                    ),
                ));
            }
            let (model, dim) = (engine.model.id.clone(), engine.model.dim);
            // Whatever keeps the folder from serving leaves the old index in place.
            let info = blocking(move || writable.swap(&path, &model, dim))
                .await
                .map_err(|e| match e {
                    ServerError::Index { source } => ServerError::Precondition {
                        reason: format!("index not swapped, the old one keeps serving: {source}"),
                    },
                    other => other,
                })?;
            tracing::info!(
                path = %info.location,
                passages = info.passages,
                generation = info.generation,
                "index swapped"
            );
            Ok(SwapIndexResponse {
                generation: info.generation,
                passages: info.passages as u64,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use xling_proto::v1::Passage as ProtoPassage;

    fn limits() -> Limits {
        crate::Settings::default().resolve().unwrap().limits
    }

    fn upsert(passages: &[(&str, &str, &str)]) -> UpsertRequest {
        UpsertRequest {
            passages: passages
                .iter()
                .map(|(id, text, language)| ProtoPassage {
                    id: id.to_string(),
                    text: text.to_string(),
                    language: language.to_string(),
                    title: String::new(),
                })
                .collect(),
        }
    }

    fn refused(request: UpsertRequest, field: &str) {
        let err = passages(&request, &limits(), 3).unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err}");
        assert!(err.to_string().starts_with(field), "{err}");
    }

    #[test]
    fn upserts_are_checked_whole_with_the_field_named() {
        let ok = passages(&upsert(&[("a", "x", "en"), ("b", "y", "zh")]), &limits(), 3).unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].title, None);
        refused(upsert(&[]), "passages");
        refused(upsert(&[("a", "x", "en"); 4]), "passages");
        refused(
            upsert(&[("a", "x", "en"), ("a", "y", "en")]),
            "passages[1].id",
        );
        refused(
            upsert(&[("a", "x", "en"), (" ", "y", "en")]),
            "passages[1].id",
        );
        refused(upsert(&[("a", " \n", "en")]), "passages[0].text");
        refused(upsert(&[("a", "x", "EN")]), "passages[0].language");
        refused(upsert(&[("a", "x", "xx")]), "passages[0].language");
        let long = "w".repeat(limits().max_text_bytes + 1);
        refused(upsert(&[("a", &long, "en")]), "passages[0].text");
    }

    #[test]
    fn deletes_need_unique_non_empty_ids() {
        let request = |ids: &[&str]| DeleteRequest {
            ids: ids.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(ids(&request(&["a", "b"]), 3).unwrap().len(), 2);
        for bad in [&[][..], &["a", "a"], &["a", ""], &["a", "b", "c", "d"]] {
            let err = ids(&request(bad), 3).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        }
    }
}
