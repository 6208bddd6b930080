//! Qdrant client errors as [`IndexError`]s: what a caller may retry elsewhere
//! (`Unavailable`), what ran out of time (`Timeout`), and the rest (`Remote`).

use qdrant_client::QdrantError;
use tonic::Code;
use xling_index::IndexError;

/// Names the backend in messages: `qdrant collection `docs` at http://host:6334`.
pub fn backend_name(url: &str, collection: &str) -> String {
    format!("qdrant collection `{collection}` at {url}")
}

pub fn index_error(backend: &str, error: QdrantError) -> IndexError {
    let (code, message) = match &error {
        QdrantError::ResponseError { status } => (status.code(), status.message().to_string()),
        QdrantError::ResourceExhaustedError { status, .. } => {
            (Code::ResourceExhausted, status.message().to_string())
        }
        other => {
            return IndexError::Remote {
                backend: backend.to_string(),
                reason: other.to_string(),
            }
        }
    };
    let backend = backend.to_string();
    match code {
        Code::DeadlineExceeded => IndexError::Timeout {
            backend,
            waited_ms: 0,
        },
        // The client reports a refused or broken connection as Internal ("Failed to connect")
        // or Unknown (transport error); a dead peer as Unavailable; overload as exhausted.
        Code::Unavailable
        | Code::Unknown
        | Code::Cancelled
        | Code::ResourceExhausted
        | Code::Aborted => IndexError::Unavailable {
            backend,
            reason: message,
        },
        Code::Internal if message.contains("connect") || message.contains("transport") => {
            IndexError::Unavailable {
                backend,
                reason: message,
            }
        }
        _ => IndexError::Remote {
            backend,
            reason: format!("{code:?}: {message}"),
        },
    }
}

/// Whether another try (on another peer, or after a pause) may succeed.
pub fn retryable(error: &IndexError) -> bool {
    matches!(
        error,
        IndexError::Unavailable { .. } | IndexError::Timeout { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_unavailable_timeout_or_remote() {
        let of = |status: tonic::Status| index_error("q", QdrantError::ResponseError { status });
        assert!(matches!(
            of(tonic::Status::unavailable("peer down")),
            IndexError::Unavailable { .. }
        ));
        assert!(matches!(
            of(tonic::Status::internal("Failed to connect to http://x")),
            IndexError::Unavailable { .. }
        ));
        assert!(matches!(
            of(tonic::Status::deadline_exceeded("slow")),
            IndexError::Timeout { .. }
        ));
        let not_found = of(tonic::Status::not_found("Collection `x` doesn't exist"));
        assert!(matches!(not_found, IndexError::Remote { .. }));
        assert!(!retryable(&not_found));
    }
}
