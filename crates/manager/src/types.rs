//! What goes into the group's log (`Command`) and what applying it answers (`CommandResponse`).

use serde::{Deserialize, Serialize};
use strata_types::{Epoch, RangeId, ServerId};

/// Raft node id of a manager member.
pub type MemberId = strata_raft::MemberId;
/// The openraft handle of this group.
pub type Raft = strata_raft::types::RaftOf<crate::machine::PartitionMachine>;

/// A change to the partition map. Every command is checked against the current map when it is
/// applied, so a stale proposal (made from an older view of the map) changes nothing.
///
/// New kinds (split, merge) are added as new variants; old logs keep decoding because serde
/// names variants explicitly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Creates the first range; applies only when the map is empty.
    CreateInitialRange {
        range_id: RangeId,
        /// Encoded key, inclusive.
        low: Vec<u8>,
        /// Encoded key, exclusive; empty means +infinity.
        high: Vec<u8>,
    },
    /// Gives a range to a partition server; applies only when the range's epoch is still
    /// `expected_epoch`, and then bumps the epoch by one.
    AssignRange {
        range_id: RangeId,
        owner_id: ServerId,
        owner_addr: String,
        expected_epoch: Epoch,
    },
}

/// What applying one log entry did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResponse {
    /// A blank or membership entry: nothing changed in the map.
    NoChange,
    /// The initial range now exists.
    RangeCreated { range_id: RangeId, map_version: u64 },
    /// The range now belongs to the new owner under `epoch`.
    RangeAssigned {
        range_id: RangeId,
        epoch: Epoch,
        map_version: u64,
    },
    /// The command did not apply (a stale or invalid proposal); the map is unchanged.
    Rejected { reason: String },
}
