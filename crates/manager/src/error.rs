//! The one error type of the partition manager crate.

/// Everything that can go wrong in the manager, its store and its client.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// Bad configuration: flags, the member list, or the data folder.
    #[error("configuration: {0}")]
    Config(String),
    /// The on-disk store (sled) failed or holds bytes we cannot decode.
    #[error("storage: {0}")]
    Storage(String),
    /// A record on disk failed its checksum or has an unknown format version.
    #[error("corrupt record {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// Raft refused or failed an operation.
    #[error("raft: {0}")]
    Raft(String),
    /// A remote call failed.
    #[error("rpc to {addr}: {status}")]
    Rpc { addr: String, status: tonic::Status },
    /// No member answered within the retry budget.
    #[error("no manager member answered after {attempts} attempts; last error: {last_error}")]
    NoMemberAnswered { attempts: usize, last_error: String },
    /// Something the leader tried did not work out (a range change, a reservation).
    #[error("{0}")]
    Internal(String),
    /// Binding or serving a socket failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl From<strata_raft::GroupError> for ManagerError {
    fn from(err: strata_raft::GroupError) -> Self {
        use strata_raft::GroupError;
        match err {
            GroupError::Config(message) => ManagerError::Config(message),
            GroupError::Storage(message) => ManagerError::Storage(message),
            GroupError::Corrupt { key, reason } => ManagerError::Corrupt { key, reason },
            GroupError::Io(err) => ManagerError::Io(err),
            other => ManagerError::Raft(other.to_string()),
        }
    }
}

impl ManagerError {
    /// When a member answered that it does not lead: the leader it named, if any.
    pub fn not_leader_hint(&self) -> Option<Option<String>> {
        match self {
            ManagerError::Rpc { status, .. } => {
                match strata_types::error_detail::from_status(status)? {
                    strata_types::ErrorDetail::NotLeader { leader_hint } => Some(leader_hint),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// Result with the crate's error.
pub type Result<T, E = ManagerError> = std::result::Result<T, E>;
