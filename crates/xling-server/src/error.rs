//! The server's one error type and its one mapping to gRPC status codes.

use tonic::{Code, Status};
use xling_batcher::BatchError;
use xling_index::IndexError;

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
    /// The queries queued ahead would wait longer than the queue wait budget allows.
    #[error("server overloaded: {ahead} queries ahead need about {needed_ms} ms of encoding, over the {budget_ms} ms queue wait budget (max_queue_wait_ms); retry with backoff")]
    OverBudget {
        ahead: usize,
        needed_ms: u64,
        budget_ms: u64,
    },
    #[error("deadline exceeded after {waited_ms} ms waiting for the encoder; increase the deadline or reduce load")]
    DeadlineExceeded { waited_ms: u64 },
    /// The request cannot apply to the server's state (a read-only index, an index folder
    /// that fails to load or belongs to another model); `reason` says what to fix.
    #[error("{reason}")]
    Precondition { reason: String },
    /// Loading, or draining for shutdown.
    #[error("unavailable: {reason}")]
    Unavailable { reason: String },
    #[error("encoder failed: {reason}")]
    Encoder { reason: String },
    /// From the index crate; [`index_code`] says whose fault it is.
    #[error("index: {source}")]
    Index {
        #[from]
        source: IndexError,
    },
}

impl ServerError {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ServerError::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }

    #[deny(clippy::wildcard_enum_match_arm)]
    pub fn code(&self) -> Code {
        match self {
            ServerError::InvalidArgument { .. } => Code::InvalidArgument,
            ServerError::TooLarge { .. }
            | ServerError::Overloaded { .. }
            | ServerError::Unreachable { .. }
            | ServerError::OverBudget { .. } => Code::ResourceExhausted,
            ServerError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            ServerError::Precondition { .. } => Code::FailedPrecondition,
            ServerError::Unavailable { .. } => Code::Unavailable,
            ServerError::Encoder { .. } => Code::Internal,
            ServerError::Index { source } => index_code(source),
        }
    }
}

/// The status a client should see for an index error: its own mistake (a bad argument or
/// input), a state to fix first (an index to rebuild, a folder in the way), or the server's
/// fault. No wildcard arm: a new variant must be placed here.
#[deny(clippy::wildcard_enum_match_arm)]
pub fn index_code(error: &IndexError) -> Code {
    match error {
        IndexError::QueryDim { .. }
        | IndexError::QueryNotFinite
        | IndexError::FilterLanguage { .. }
        | IndexError::CorpusSyntax { .. }
        | IndexError::DuplicateId { .. }
        | IndexError::EmptyId { .. }
        | IndexError::EmptyText { .. }
        | IndexError::CorpusLanguage { .. }
        | IndexError::EmptyCorpus { .. }
        | IndexError::BuildParam { .. }
        | IndexError::EmbeddingCount { .. }
        | IndexError::NotNormalized { .. } => Code::InvalidArgument,
        IndexError::FormatVersion { .. }
        | IndexError::NeedsUpgrade { .. }
        | IndexError::ModelMismatch { .. }
        | IndexError::OutputNotIndex { .. } => Code::FailedPrecondition,
        IndexError::MissingFile { .. } => Code::NotFound,
        IndexError::OutputExists { .. } => Code::AlreadyExists,
        IndexError::Corrupt { .. } => Code::DataLoss,
        IndexError::Unavailable { .. } => Code::Unavailable,
        IndexError::Timeout { .. } => Code::DeadlineExceeded,
        IndexError::Io { .. } | IndexError::Remote { .. } => Code::Internal,
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
            BatchError::OverBudget {
                ahead,
                needed_ms,
                budget_ms,
            } => ServerError::OverBudget {
                ahead,
                needed_ms,
                budget_ms,
            },
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
                BatchError::OverBudget {
                    ahead: 9,
                    needed_ms: 700,
                    budget_ms: 500,
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
        let status = Status::from(ServerError::invalid("top_k", "too big"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "top_k: too big");
    }

    #[test]
    fn every_index_error_maps_to_the_code_a_client_should_see() {
        let path = || std::path::PathBuf::from("/srv/index/vectors.bin");
        let cases = [
            (
                IndexError::QueryDim {
                    got: 3,
                    expected: 384,
                },
                Code::InvalidArgument,
            ),
            (IndexError::QueryNotFinite, Code::InvalidArgument),
            (
                IndexError::FilterLanguage {
                    code: "xx-YY".into(),
                },
                Code::InvalidArgument,
            ),
            (
                IndexError::CorpusSyntax {
                    path: path(),
                    line: 2,
                    reason: "expected `}`".into(),
                },
                Code::InvalidArgument,
            ),
            (
                IndexError::DuplicateId {
                    path: path(),
                    line: 3,
                    id: "a".into(),
                    first_line: 1,
                },
                Code::InvalidArgument,
            ),
            (
                IndexError::EmptyId {
                    path: path(),
                    line: 1,
                },
                Code::InvalidArgument,
            ),
            (
                IndexError::EmptyText {
                    path: path(),
                    line: 1,
                    id: "a".into(),
                },
                Code::InvalidArgument,
            ),
            (
                IndexError::CorpusLanguage {
                    path: path(),
                    line: 1,
                    id: "a".into(),
                    code: "english".into(),
                },
                Code::InvalidArgument,
            ),
            (
                IndexError::EmptyCorpus { path: path() },
                Code::InvalidArgument,
            ),
            (
                IndexError::BuildParam {
                    name: "m",
                    value: "0".into(),
                    reason: "must be at least 2",
                },
                Code::InvalidArgument,
            ),
            (
                IndexError::EmbeddingCount {
                    got: 5,
                    passages: 2,
                    dim: 3,
                    expected: 6,
                },
                Code::InvalidArgument,
            ),
            (
                IndexError::NotNormalized {
                    id: "a".into(),
                    norm: 2.0,
                },
                Code::InvalidArgument,
            ),
            (
                IndexError::FormatVersion {
                    path: path(),
                    found: 1,
                    expected: 2,
                },
                Code::FailedPrecondition,
            ),
            (
                IndexError::NeedsUpgrade { dir: path() },
                Code::FailedPrecondition,
            ),
            (
                IndexError::ModelMismatch {
                    dir: path(),
                    index_model: "mt5-tiny".into(),
                    index_dim: 64,
                    model: "multilingual-e5-small".into(),
                    dim: 384,
                },
                Code::FailedPrecondition,
            ),
            (
                IndexError::OutputNotIndex { path: path() },
                Code::FailedPrecondition,
            ),
            (IndexError::MissingFile { path: path() }, Code::NotFound),
            (
                IndexError::OutputExists { path: path() },
                Code::AlreadyExists,
            ),
            (
                IndexError::Corrupt {
                    path: path(),
                    reason: "truncated".into(),
                },
                Code::DataLoss,
            ),
            (
                IndexError::Io {
                    path: path(),
                    source: std::io::Error::other("disk"),
                },
                Code::Internal,
            ),
            (
                IndexError::Unavailable {
                    backend: "qdrant".into(),
                    reason: "connection refused".into(),
                },
                Code::Unavailable,
            ),
            (
                IndexError::Timeout {
                    backend: "qdrant".into(),
                    waited_ms: 40,
                },
                Code::DeadlineExceeded,
            ),
            (
                IndexError::Remote {
                    backend: "qdrant".into(),
                    reason: "payload without text".into(),
                },
                Code::Internal,
            ),
        ];
        for (error, code) in cases {
            let message = error.to_string();
            let status = Status::from(ServerError::from(error));
            assert_eq!(status.code(), code, "{message}");
            assert_eq!(status.message(), format!("index: {message}"));
        }
    }
}
