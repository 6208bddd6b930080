//! The server's one error type and its one mapping to gRPC status codes.

use tonic::{Code, Status};
use xling_batcher::BatchError;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The request is malformed; `field` says where (e.g. `queries[2].top_k`).
    #[error("{field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// A request larger than a configured size limit.
    #[error("{field}: {size} exceeds the limit of {limit}")]
    TooLarge {
        field: String,
        size: usize,
        limit: usize,
    },
    /// The queue is full.
    #[error("server overloaded: {capacity} queries already waiting; retry with backoff")]
    Overloaded { capacity: usize },
    /// The queries queued ahead would take the encoder past this one's deadline.
    #[error("server overloaded: {ahead} queries ahead need about {needed_ms} ms of encoding, more than the deadline leaves; retry with backoff or a longer deadline")]
    Unreachable { ahead: usize, needed_ms: u64 },
    #[error("deadline exceeded after {waited_ms} ms waiting for the encoder; increase the deadline or reduce load")]
    DeadlineExceeded { waited_ms: u64 },
    /// Loading, or draining for shutdown.
    #[error("unavailable: {reason}")]
    Unavailable { reason: String },
    #[error("encoder failed: {reason}")]
    Encoder { reason: String },
    #[error("index search failed: {reason}")]
    Index { reason: String },
    /// The index backend did not answer in time (a remote one: Qdrant).
    #[error("deadline exceeded: {reason}")]
    IndexTimeout { reason: String },
}

impl ServerError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ServerError::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            ServerError::InvalidArgument { .. } => Code::InvalidArgument,
            ServerError::TooLarge { .. }
            | ServerError::Overloaded { .. }
            | ServerError::Unreachable { .. } => Code::ResourceExhausted,
            ServerError::DeadlineExceeded { .. } | ServerError::IndexTimeout { .. } => {
                Code::DeadlineExceeded
            }
            ServerError::Unavailable { .. } => Code::Unavailable,
            ServerError::Encoder { .. } | ServerError::Index { .. } => Code::Internal,
        }
    }
}

impl From<ServerError> for Status {
    fn from(error: ServerError) -> Status {
        Status::new(error.code(), error.to_string())
    }
}

impl From<BatchError> for ServerError {
    fn from(error: BatchError) -> ServerError {
        match error {
            BatchError::QueueFull { capacity } => ServerError::Overloaded { capacity },
            BatchError::DeadlineUnreachable { ahead, needed_ms } => {
                ServerError::Unreachable { ahead, needed_ms }
            }
            BatchError::DeadlineExceeded { waited_ms } => {
                ServerError::DeadlineExceeded { waited_ms }
            }
            BatchError::Closed => ServerError::Unavailable {
                reason: "server is shutting down".into(),
            },
            BatchError::Failed { reason, .. } => ServerError::Encoder { reason },
        }
    }
}

impl From<xling_index::IndexError> for ServerError {
    fn from(error: xling_index::IndexError) -> ServerError {
        use xling_index::IndexError;
        let reason = error.to_string();
        match error {
            IndexError::Unavailable { .. } => ServerError::Unavailable { reason },
            IndexError::Timeout { .. } => ServerError::IndexTimeout { reason },
            _ => ServerError::Index { reason },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batch_error_maps_to_its_code() {
        let cases = [
            (
                BatchError::QueueFull { capacity: 3 },
                Code::ResourceExhausted,
            ),
            (
                BatchError::DeadlineUnreachable {
                    ahead: 9,
                    needed_ms: 70,
                },
                Code::ResourceExhausted,
            ),
            (
                BatchError::DeadlineExceeded { waited_ms: 1 },
                Code::DeadlineExceeded,
            ),
            (BatchError::Closed, Code::Unavailable),
            (
                BatchError::Failed {
                    batch_size: 2,
                    reason: "x".into(),
                },
                Code::Internal,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(Status::from(ServerError::from(error)).code(), code);
        }
        let remote = [
            (
                xling_index::IndexError::Unavailable {
                    backend: "qdrant".into(),
                    reason: "connection refused".into(),
                },
                Code::Unavailable,
            ),
            (
                xling_index::IndexError::Timeout {
                    backend: "qdrant".into(),
                    waited_ms: 40,
                },
                Code::DeadlineExceeded,
            ),
        ];
        for (error, code) in remote {
            assert_eq!(Status::from(ServerError::from(error)).code(), code);
        }
        let status = Status::from(ServerError::invalid("top_k", "too big"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "top_k: too big");
    }
}
