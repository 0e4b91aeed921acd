//! The crate's one error type, and its mapping to and from gRPC status codes.

use strata_types::error_detail::{
    from_status, relay, to_status, ErrorDetail, Missing, RejectReason, UnavailableReason,
};
use strata_types::ExtentId;
use tonic::{Code, Status};

pub type Result<T, E = StreamError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A record failed its length or CRC check; its bytes are never returned.
    #[error("data loss in {extent_id} at offset {offset}: {reason}")]
    DataLoss {
        extent_id: ExtentId,
        offset: u64,
        reason: String,
    },
    #[error("{0} not found")]
    ExtentNotFound(ExtentId),
    #[error("{0} already exists")]
    ExtentExists(ExtentId),
    #[error("stream {0:?} not found")]
    StreamNotFound(String),
    /// The extent is sealed (or fenced for sealing) and accepts no more appends.
    #[error("{extent_id} is sealed at length {length}")]
    Sealed { extent_id: ExtentId, length: u64 },
    /// A secondary's length differs from the offset the primary asked it to write at.
    #[error("{extent_id}: append at offset {offset} but replica length is {length}")]
    OffsetMismatch {
        extent_id: ExtentId,
        offset: u64,
        length: u64,
    },
    #[error("payload of {len_bytes} bytes exceeds the record limit of {max_bytes} bytes")]
    PayloadTooLarge { len_bytes: usize, max_bytes: usize },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Offset is not inside the extent (or not at a record boundary).
    #[error("{extent_id}: offset {offset} out of range (length {length})")]
    OutOfRange {
        extent_id: ExtentId,
        offset: u64,
        length: u64,
    },
    /// A dependency (node, manager, enough racks) is not available now; retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// This writer was fenced: somebody else sealed its extent. Stop writing.
    #[error("fenced: stream {stream:?}: {reason}")]
    Fenced { stream: String, reason: String },
    /// This stream-manager member does not lead; `leader_addr` is the leader (empty: unknown).
    #[error("not leader: leader is {leader_addr:?}")]
    NotLeader { leader_addr: String },
    #[error("metadata store: {0}")]
    Metadata(String),
    #[error("corrupt metadata: {0}")]
    CorruptMetadata(String),
    /// An RPC failed with this status.
    #[error("rpc to {addr}: {status}")]
    Rpc { addr: String, status: Status },
}

impl From<strata_raft::GroupError> for StreamError {
    fn from(err: strata_raft::GroupError) -> Self {
        use strata_raft::GroupError;
        match err {
            GroupError::NotLeader { leader_addr, .. } => StreamError::NotLeader {
                leader_addr: leader_addr.unwrap_or_default(),
            },
            GroupError::Corrupt { key, reason } => {
                StreamError::CorruptMetadata(format!("{key}: {reason}"))
            }
            GroupError::Io(err) => StreamError::Io(err),
            GroupError::Timeout { .. } | GroupError::Raft(_) => {
                StreamError::Unavailable(err.to_string())
            }
            other => StreamError::Metadata(other.to_string()),
        }
    }
}

impl StreamError {
    /// Wraps a failed RPC to `addr`.
    pub fn rpc(addr: &str, status: Status) -> Self {
        StreamError::Rpc {
            addr: addr.to_string(),
            status,
        }
    }

    /// Whether the RPC failure (or local error) says a writer was fenced: the peer answered
    /// `Fenced`, or `Sealed` for an extent this writer did not seal itself.
    pub fn is_fenced(&self) -> bool {
        match self {
            StreamError::Fenced { .. } => true,
            StreamError::Rpc { status, .. } => matches!(
                from_status(status),
                Some(ErrorDetail::Fenced { .. } | ErrorDetail::Sealed { .. })
            ),
            _ => false,
        }
    }

    /// Whether the RPC failure says the extent is sealed (or being sealed).
    pub fn is_sealed(&self) -> bool {
        match self {
            StreamError::Sealed { .. } => true,
            StreamError::Rpc { status, .. } => {
                matches!(from_status(status), Some(ErrorDetail::Sealed { .. }))
            }
            _ => false,
        }
    }

    /// When a stream-manager member said it does not lead: the leader it named ("" if none).
    pub fn not_leader_hint(&self) -> Option<String> {
        match self {
            StreamError::NotLeader { leader_addr } => Some(leader_addr.clone()),
            StreamError::Rpc { status, .. } => match from_status(status)? {
                ErrorDetail::NotLeader { leader_hint } => Some(leader_hint.unwrap_or_default()),
                _ => None,
            },
            _ => None,
        }
    }

    /// What this error tells the caller, as the typed detail every Strata status carries.
    fn detail(&self) -> ErrorDetail {
        let rejected = |reason| ErrorDetail::Rejected { reason };
        match self {
            StreamError::Io(_) | StreamError::Metadata(_) | StreamError::CorruptMetadata(_) => {
                ErrorDetail::Internal
            }
            StreamError::DataLoss { .. } => ErrorDetail::Corrupt,
            StreamError::ExtentNotFound(extent_id) => ErrorDetail::NotFound {
                what: Missing::Extent,
                name: extent_id.to_string(),
            },
            StreamError::StreamNotFound(stream) => ErrorDetail::NotFound {
                what: Missing::Stream,
                name: stream.clone(),
            },
            StreamError::ExtentExists(_) => rejected(RejectReason::AlreadyExists),
            StreamError::Sealed { extent_id, length } => ErrorDetail::Sealed {
                extent_id: *extent_id,
                length_bytes: *length,
            },
            StreamError::OffsetMismatch { .. } => rejected(RejectReason::OffsetMismatch),
            StreamError::Fenced { stream, .. } => ErrorDetail::Fenced {
                stream: stream.clone(),
            },
            StreamError::PayloadTooLarge { .. } => rejected(RejectReason::EntityTooLarge),
            StreamError::InvalidArgument(_) => rejected(RejectReason::InvalidArgument),
            StreamError::OutOfRange { .. } => rejected(RejectReason::OutOfRange),
            StreamError::Unavailable(_) => ErrorDetail::Unavailable {
                reason: UnavailableReason::Dependency,
            },
            StreamError::NotLeader { leader_addr } => ErrorDetail::NotLeader {
                leader_hint: (!leader_addr.is_empty()).then(|| leader_addr.clone()),
            },
            // A peer's status without a detail was made by the transport: the peer was not
            // reached or did not answer in time, so for our caller a dependency is unavailable.
            StreamError::Rpc { status, .. } => match status.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                    ErrorDetail::Unavailable {
                        reason: UnavailableReason::Dependency,
                    }
                }
                _ => ErrorDetail::Internal,
            },
        }
    }

    /// The gRPC status this error is answered with. A peer's answer is passed along with its
    /// own detail (so a `Sealed` from an extent node still reads as `Sealed`) and where it came
    /// from.
    pub fn into_status(self) -> Status {
        match self {
            StreamError::Rpc { addr, status } if from_status(&status).is_some() => {
                relay(&status, format!("{} (from {addr})", status.message()))
            }
            other => {
                let detail = other.detail();
                to_status(detail, other.to_string())
            }
        }
    }
}

impl From<StreamError> for Status {
    fn from(err: StreamError) -> Self {
        err.into_status()
    }
}
