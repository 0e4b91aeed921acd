//! The partition layer's error type and its one mapping to gRPC statuses. Each variant says
//! what happened, as a typed `strata_types::ErrorDetail` in the status details; which S3 error
//! a client sees is the front-end's choice, made once in its error module.

use strata_types::error_detail::{
    to_status, ErrorDetail, Missing, NotOwner, RejectReason, UnavailableReason,
};
use strata_types::RangeId;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error(transparent)]
    NotOwner(#[from] NotOwner),
    #[error("{range_id} is loading")]
    Loading { range_id: RangeId },
    /// A split or merge of the range is in preparation; retry shortly.
    #[error("{range_id} is frozen for a split or merge")]
    Frozen { range_id: RangeId },
    /// This server has not heard from the partition manager within its lease, so another
    /// server may own its ranges by now: it serves nothing until the manager answers again.
    #[error("partition server lease expired ({silent_ms} ms without the manager)")]
    LeaseExpired { silent_ms: u64 },
    #[error("no such key")]
    NoSuchKey,
    #[error("no such bucket {0}")]
    NoSuchBucket(String),
    #[error("the upload does not exist: it may have been aborted or completed")]
    NoSuchUpload,
    #[error("The specified version does not exist.")]
    NoSuchVersion,
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
    /// The bucket is not served here: it moved to stamp `stamp`, or (empty) this is a move's
    /// copy still being filled ([`crate::bucket_gate`]); the caller asks the location group.
    #[error("bucket moved (to {stamp:?}; empty: this copy is still being imported)")]
    BucketMoved { stamp: String },
    /// The request is refused as it stands (multipart validation, size limits and the like);
    /// `message` is shown to the client.
    #[error("rejected ({reason:?}): {message}")]
    Rejected {
        reason: RejectReason,
        message: String,
    },
}

impl PartitionError {
    pub fn rejected(reason: RejectReason, message: impl Into<String>) -> Self {
        PartitionError::Rejected {
            reason,
            message: message.into(),
        }
    }
}

impl From<PartitionError> for Status {
    fn from(err: PartitionError) -> Status {
        let unavailable = |reason| ErrorDetail::Unavailable { reason };
        let rejected = |reason| ErrorDetail::Rejected { reason };
        let not_found = |what, name: &str| ErrorDetail::NotFound {
            what,
            name: name.to_string(),
        };
        let (detail, message) = match &err {
            PartitionError::NotOwner(not_owner) => {
                (ErrorDetail::NotOwner(not_owner.clone()), err.to_string())
            }
            PartitionError::Loading { .. } => {
                (unavailable(UnavailableReason::Loading), err.to_string())
            }
            PartitionError::Frozen { .. } => {
                (unavailable(UnavailableReason::Frozen), err.to_string())
            }
            PartitionError::LeaseExpired { .. } => (
                unavailable(UnavailableReason::LeaseExpired),
                err.to_string(),
            ),
            PartitionError::NoSuchKey => (
                not_found(Missing::Key, ""),
                "the key does not exist".to_string(),
            ),
            PartitionError::NoSuchBucket(bucket) => {
                (not_found(Missing::Bucket, bucket), bucket.clone())
            }
            PartitionError::NoSuchUpload => (not_found(Missing::Upload, ""), err.to_string()),
            PartitionError::NoSuchVersion => (not_found(Missing::Version, ""), err.to_string()),
            PartitionError::BadDigest => (
                rejected(RejectReason::BadDigest),
                "Content-MD5 mismatch".to_string(),
            ),
            PartitionError::IncompleteBody { .. } => {
                (rejected(RejectReason::IncompleteBody), err.to_string())
            }
            PartitionError::PreconditionFailed => (
                ErrorDetail::PreconditionFailed,
                "the object changed".to_string(),
            ),
            PartitionError::InvalidArgument(message) => {
                (rejected(RejectReason::InvalidArgument), message.clone())
            }
            PartitionError::Stream(message) => {
                tracing::warn!(%message, "stream layer failure answered as unavailable");
                (unavailable(UnavailableReason::Dependency), err.to_string())
            }
            PartitionError::Corrupt(message) => {
                tracing::error!(%message, "corrupt range state");
                (ErrorDetail::Corrupt, message.clone())
            }
            PartitionError::ShuttingDown => (
                unavailable(UnavailableReason::ShuttingDown),
                "partition server shutting down".to_string(),
            ),
            PartitionError::SlowDown { retry_after_ms, .. } => (
                ErrorDetail::Throttled {
                    retry_after_ms: *retry_after_ms,
                },
                err.to_string(),
            ),
            PartitionError::Rejected { reason, message } => (rejected(*reason), message.clone()),
            PartitionError::BucketMoved { stamp } => (
                ErrorDetail::BucketMoved {
                    stamp: (!stamp.is_empty()).then(|| stamp.clone()),
                },
                err.to_string(),
            ),
        };
        to_status(detail, message)
    }
}
