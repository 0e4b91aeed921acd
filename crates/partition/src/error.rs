//! The partition layer's error type and its one mapping to gRPC statuses. Client-visible
//! failures carry their S3 error code (`strata_types::routing::s3_status`).

use strata_types::routing::{s3_status, NotOwner};
use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error(transparent)]
    NotOwner(#[from] NotOwner),
    #[error("range {range_id} is loading")]
    Loading { range_id: u64 },
    /// A split or merge of the range is in preparation; retry shortly.
    #[error("range {range_id} is frozen for a split or merge")]
    Frozen { range_id: u64 },
    /// This server has not heard from the partition manager within its lease, so another
    /// server may own its ranges by now: it serves nothing until the manager answers again.
    #[error("partition server lease expired ({silent_ms} ms without the manager)")]
    LeaseExpired { silent_ms: u64 },
    #[error("no such key")]
    NoSuchKey,
    #[error("no such bucket {0}")]
    NoSuchBucket(String),
    #[error("Content-MD5 does not match the body")]
    BadDigest,
    #[error("body has {received} bytes, expected {expected}")]
    IncompleteBody { expected: u64, received: u64 },
    #[error("object changed since the precondition was evaluated")]
    PreconditionFailed,
    #[error("invalid request: {0}")]
    InvalidArgument(String),
    #[error("stream layer: {0}")]
    Stream(String),
    #[error("corrupt range state: {0}")]
    Corrupt(String),
    #[error("shutting down")]
    ShuttingDown,
    /// Over a request-rate limit ([`crate::throttle`]); retry after the given time.
    #[error("slow down: {reason} (retry after {retry_after_ms} ms)")]
    SlowDown { retry_after_ms: u64, reason: String },
    /// Any other client-visible S3 error (multipart validation and the like).
    #[error("{code}: {message}")]
    S3 {
        grpc: Code,
        code: &'static str,
        message: String,
    },
}

impl PartitionError {
    pub fn s3(grpc: Code, code: &'static str, message: impl Into<String>) -> Self {
        PartitionError::S3 {
            grpc,
            code,
            message: message.into(),
        }
    }
}

impl From<PartitionError> for Status {
    fn from(err: PartitionError) -> Status {
        match err {
            PartitionError::NotOwner(not_owner) => not_owner.into_status(),
            PartitionError::Loading { range_id } => {
                Status::unavailable(format!("range {range_id} is loading"))
            }
            err @ (PartitionError::Frozen { .. } | PartitionError::LeaseExpired { .. }) => {
                Status::unavailable(err.to_string())
            }
            PartitionError::NoSuchKey => {
                s3_status(Code::NotFound, "NoSuchKey", "the key does not exist")
            }
            PartitionError::NoSuchBucket(bucket) => {
                s3_status(Code::NotFound, "NoSuchBucket", bucket)
            }
            PartitionError::BadDigest => {
                s3_status(Code::InvalidArgument, "BadDigest", "Content-MD5 mismatch")
            }
            err @ PartitionError::IncompleteBody { .. } => {
                s3_status(Code::InvalidArgument, "IncompleteBody", err)
            }
            PartitionError::PreconditionFailed => {
                s3_status(Code::Aborted, "PreconditionFailed", "the object changed")
            }
            PartitionError::InvalidArgument(message) => {
                s3_status(Code::InvalidArgument, "InvalidArgument", message)
            }
            PartitionError::Stream(message) => {
                tracing::warn!(%message, "stream layer failure answered as unavailable");
                Status::unavailable(format!("stream layer: {message}"))
            }
            PartitionError::Corrupt(message) => {
                tracing::error!(%message, "corrupt range state");
                Status::data_loss(message)
            }
            PartitionError::ShuttingDown => Status::unavailable("partition server shutting down"),
            err @ PartitionError::SlowDown { .. } => {
                s3_status(Code::ResourceExhausted, "SlowDown", err)
            }
            PartitionError::S3 {
                grpc,
                code,
                message,
            } => s3_status(grpc, code, message),
        }
    }
}
