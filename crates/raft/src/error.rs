//! The one error type of a Raft group member.

/// Everything that can go wrong in a member, its store and its transport.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// Bad configuration: the member list, timeouts, the data folder.
    #[error("configuration: {0}")]
    Config(String),
    /// The on-disk store (sled) failed.
    #[error("storage: {0}")]
    Storage(String),
    /// A record on disk failed its checksum or has an unknown format version.
    #[error("corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// This member does not lead; `leader_addr` is the leader's gRPC address when known.
    #[error("not the leader; leader: {}", leader_addr.as_deref().unwrap_or("unknown"))]
    NotLeader {
        leader_id: Option<u64>,
        leader_addr: Option<String>,
    },
    /// Raft refused or failed an operation.
    #[error("raft: {0}")]
    Raft(String),
    /// An operation did not finish within its bound.
    #[error("{what} timed out after {timeout_ms} ms")]
    Timeout { what: &'static str, timeout_ms: u64 },
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<sled::Error> for GroupError {
    fn from(err: sled::Error) -> Self {
        GroupError::Storage(err.to_string())
    }
}

impl GroupError {
    /// Whether the caller should retry elsewhere or later (no leader here, or none yet).
    pub fn is_not_leader(&self) -> bool {
        matches!(self, GroupError::NotLeader { .. })
    }
}
