//! The crate's one error type, and its mapping to and from gRPC status codes.

use tonic::{Code, Status};

/// Status messages starting with this mean "the extent is sealed or fenced": a writer that did
/// not seal it itself has been fenced by a newer writer.
pub const SEALED_MARKER: &str = "sealed:";
/// Status messages starting with this mean the stream manager refused a writer's seal because
/// the extent is no longer the stream's last one (see `SealExtentRequest.expect_open`).
pub const FENCED_MARKER: &str = "fenced:";
/// Status messages starting with this come from a stream-manager member that does not lead;
/// the leader's address (when known) follows [`LEADER_HINT`].
pub const NOT_LEADER_MARKER: &str = "not leader:";
const LEADER_HINT: &str = "leader is ";

pub type Result<T, E = StreamError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A record failed its length or CRC check; its bytes are never returned.
    #[error("data loss in extent {extent_id} at offset {offset}: {reason}")]
    DataLoss {
        extent_id: u64,
        offset: u64,
        reason: String,
    },
    #[error("extent {0} not found")]
    ExtentNotFound(u64),
    #[error("extent {0} already exists")]
    ExtentExists(u64),
    #[error("stream {0:?} not found")]
    StreamNotFound(String),
    /// The extent is sealed (or fenced for sealing) and accepts no more appends.
    #[error("{SEALED_MARKER} extent {extent_id} is sealed at length {length}")]
    Sealed { extent_id: u64, length: u64 },
    /// A secondary's length differs from the offset the primary asked it to write at.
    #[error("extent {extent_id}: append at offset {offset} but replica length is {length}")]
    OffsetMismatch {
        extent_id: u64,
        offset: u64,
        length: u64,
    },
    #[error("payload of {len_bytes} bytes exceeds the record limit of {max_bytes} bytes")]
    PayloadTooLarge { len_bytes: usize, max_bytes: usize },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Offset is not inside the extent (or not at a record boundary).
    #[error("extent {extent_id}: offset {offset} out of range (length {length})")]
    OutOfRange {
        extent_id: u64,
        offset: u64,
        length: u64,
    },
    /// A dependency (node, manager, enough racks) is not available now; retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// This writer was fenced: somebody else sealed its extent. Stop writing.
    #[error("{FENCED_MARKER} stream {stream:?}: {reason}")]
    Fenced { stream: String, reason: String },
    /// This stream-manager member does not lead; `leader_addr` is the leader (empty: unknown).
    #[error("{NOT_LEADER_MARKER} {LEADER_HINT}{leader_addr}")]
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

    /// Whether the RPC failure (or local error) says a writer was fenced.
    pub fn is_fenced(&self) -> bool {
        match self {
            StreamError::Fenced { .. } => true,
            StreamError::Rpc { status, .. } => {
                status.code() == Code::FailedPrecondition
                    && (status.message().starts_with(FENCED_MARKER)
                        || status.message().starts_with(SEALED_MARKER))
            }
            _ => false,
        }
    }

    /// When a stream-manager member said it does not lead: the leader it named ("" if none).
    pub fn not_leader_hint(&self) -> Option<String> {
        match self {
            StreamError::NotLeader { leader_addr } => Some(leader_addr.clone()),
            StreamError::Rpc { status, .. } if status.code() == Code::Unavailable => {
                let rest = status.message().strip_prefix(NOT_LEADER_MARKER)?;
                let hint = rest.trim_start().strip_prefix(LEADER_HINT).unwrap_or("");
                // Passed-along messages carry " (from addr)" after the hint.
                Some(hint.split_whitespace().next().unwrap_or("").to_string())
            }
            _ => None,
        }
    }

    /// The gRPC status this error is answered with.
    pub fn into_status(self) -> Status {
        let code = match &self {
            StreamError::Io(_) | StreamError::Metadata(_) | StreamError::CorruptMetadata(_) => {
                Code::Internal
            }
            StreamError::DataLoss { .. } => Code::DataLoss,
            StreamError::ExtentNotFound(_) | StreamError::StreamNotFound(_) => Code::NotFound,
            StreamError::ExtentExists(_) => Code::AlreadyExists,
            StreamError::Sealed { .. }
            | StreamError::OffsetMismatch { .. }
            | StreamError::Fenced { .. } => Code::FailedPrecondition,
            StreamError::PayloadTooLarge { .. } | StreamError::InvalidArgument(_) => {
                Code::InvalidArgument
            }
            StreamError::OutOfRange { .. } => Code::OutOfRange,
            StreamError::Unavailable(_) | StreamError::NotLeader { .. } => Code::Unavailable,
            StreamError::Rpc { status, .. } => status.code(),
        };
        let message = match self {
            // Keep the peer's message first so markers survive being passed along.
            StreamError::Rpc { addr, status } => format!("{} (from {addr})", status.message()),
            other => other.to_string(),
        };
        Status::new(code, message)
    }
}

impl From<StreamError> for Status {
    fn from(err: StreamError) -> Self {
        err.into_status()
    }
}
