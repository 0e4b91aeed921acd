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
        /// Why (a move, a renewal), logged in the map's events; None for a plain assignment
        /// of a range without a live owner.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<EventNote>,
    },
    /// Sets aside `count` fresh range ids for a split or merge about to be prepared (ids are
    /// never used twice, so an abandoned preparation can never be mistaken for a later one).
    ReserveRangeIds {
        count: u64,
        /// The leader's wall clock when it reserved (0 in entries written before this field):
        /// reservations older than [`crate::map::RESERVATION_KEPT_MS`] are released.
        #[serde(default)]
        at_ms: i64,
    },
    /// Forgets reserved ids (their split or merge failed or was abandoned): no commit can use
    /// them any more, so partition servers may delete the streams prepared for them.
    ReleaseRangeIds { ids: Vec<RangeId> },
    /// Replaces a range by two halves `[low, split_key)` and `[split_key, high)`, both served
    /// by the same owner under epoch 1; applies only when the range's epoch is still
    /// `expected_epoch` and both ids are reserved.
    SplitRange {
        range_id: RangeId,
        expected_epoch: Epoch,
        split_key: Vec<u8>,
        left_id: RangeId,
        right_id: RangeId,
        note: EventNote,
    },
    /// Replaces two adjacent ranges with the same owner by one; applies only when both epochs
    /// are unchanged and `merged_id` is reserved.
    MergeRanges {
        left_id: RangeId,
        left_epoch: Epoch,
        right_id: RangeId,
        right_epoch: Epoch,
        merged_id: RangeId,
        note: EventNote,
    },
}

/// What the map's event log records about a change (decided by the leader, so replicas agree
/// on the time too).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventNote {
    /// Wall-clock milliseconds when the leader decided the change.
    pub at_ms: i64,
    /// "split", "merge", "move", "renew".
    pub kind: String,
    pub detail: String,
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
    /// `count` fresh range ids, the first being `first`.
    RangeIdsReserved { first: RangeId, count: u64 },
    /// These ids were reserved and are not any more.
    RangeIdsReleased { released: Vec<RangeId> },
    /// The range was split or merged into `created`.
    Reshaped {
        created: Vec<RangeId>,
        map_version: u64,
    },
    /// The command did not apply (a stale or invalid proposal); the map is unchanged.
    Rejected { reason: String },
}
