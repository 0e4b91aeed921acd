//! What an application supplies ([`Machine`]) and the openraft type configuration built from
//! it ([`Types`]).

use crate::error::GroupError;
use crate::state::{Overlay, StateReader};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::cmp::Ordering;
use std::fmt::{self, Debug};
use std::io::Cursor;
use std::marker::PhantomData;

/// Raft node id of a member; 0 is reserved for "unknown".
pub type MemberId = u64;

/// The replicated state machine of one application.
///
/// `apply` must be deterministic: every member applies the same commands in the same order and
/// must reach the same records. It reads and writes only through the [`Overlay`], which the
/// store commits atomically with the applied log id, so a crash never leaves half a batch.
pub trait Machine: Send + Sync + 'static {
    /// One log entry's payload.
    type Command: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What applying a command answers the proposer.
    type Response: Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The answer for a blank or membership entry (nothing changed).
    fn no_change() -> Self::Response;

    /// Applies one committed command (at log index `index`).
    fn apply(
        &self,
        state: &mut Overlay<'_>,
        index: u64,
        command: &Self::Command,
    ) -> Result<Self::Response, GroupError>;

    /// Called when the store opens and after a snapshot replaced the state: rebuild any
    /// in-memory view of the records.
    fn restore(&self, _state: &StateReader) -> Result<(), GroupError> {
        Ok(())
    }
}

/// The openraft type configuration of a group whose state machine is `M`.
pub struct Types<M>(PhantomData<fn() -> M>);

impl<M> Clone for Types<M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Types<M> {}
impl<M> Default for Types<M> {
    fn default() -> Self {
        Types(PhantomData)
    }
}
impl<M> Debug for Types<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Types")
    }
}
impl<M> PartialEq for Types<M> {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}
impl<M> Eq for Types<M> {}
impl<M> PartialOrd for Types<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for Types<M> {
    fn cmp(&self, _other: &Self) -> Ordering {
        Ordering::Equal
    }
}

impl<M: Machine> openraft::RaftTypeConfig for Types<M> {
    type D = M::Command;
    type R = M::Response;
    type NodeId = MemberId;
    type Node = openraft::BasicNode;
    type Entry = openraft::Entry<Self>;
    type SnapshotData = Cursor<Vec<u8>>;
    type AsyncRuntime = openraft::TokioRuntime;
    type Responder = openraft::impls::OneshotResponder<Self>;
}

/// The openraft handle of a group.
pub type RaftOf<M> = openraft::Raft<Types<M>>;
/// A log entry of a group.
pub type EntryOf<M> = openraft::Entry<Types<M>>;
pub type LogId = openraft::LogId<MemberId>;
pub type Vote = openraft::Vote<MemberId>;
pub type StoredMembership = openraft::StoredMembership<MemberId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<MemberId, openraft::BasicNode>;
pub type StorageError = openraft::StorageError<MemberId>;
