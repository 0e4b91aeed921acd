//! The partition map: the state the Raft group agrees on.
//!
//! Invariants: ranges never overlap and, once the initial range exists, cover the whole key
//! space; a range's epoch only grows, by exactly one per change of owner; `version` grows on
//! every change to the map.

use crate::types::{Command, CommandResponse, EventNote};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use strata_proto::manager as pb;
use strata_types::{Epoch, RangeId, ServerId};

/// One range `[low, high)` and who serves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRecord {
    pub range_id: RangeId,
    /// Encoded key, inclusive.
    pub low: Vec<u8>,
    /// Encoded key, exclusive; empty means +infinity.
    pub high: Vec<u8>,
    /// None while nobody serves the range.
    pub owner: Option<RangeOwner>,
    pub epoch: Epoch,
}

/// The partition server that serves a range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeOwner {
    pub server_id: ServerId,
    /// The server's gRPC address.
    pub addr: String,
}

/// The whole partition map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMapState {
    pub ranges: BTreeMap<RangeId, RangeRecord>,
    /// The id the next new range gets (splits, later).
    pub next_range_id: RangeId,
    /// Bumped on every change.
    pub version: u64,
    /// Ids reserved for splits and merges being prepared (oldest dropped past the bound).
    #[serde(default)]
    pub reserved_ids: BTreeSet<RangeId>,
    /// When each reserved id was reserved (leader's wall clock, ms); ids absent here were
    /// reserved before this was kept and count as reserved at 0.
    #[serde(default)]
    pub reserved_at_ms: BTreeMap<RangeId, i64>,
    /// The latest splits, merges, moves and renewals, oldest first.
    #[serde(default)]
    pub events: VecDeque<EventNote>,
    #[serde(default)]
    pub splits_total: u64,
    #[serde(default)]
    pub merges_total: u64,
    #[serde(default)]
    pub moves_total: u64,
}

/// An empty map: no ranges, no ids handed out yet (range ids start at 1, see `reserve`).
impl Default for PartitionMapState {
    fn default() -> Self {
        Self {
            ranges: BTreeMap::new(),
            next_range_id: RangeId::new(0),
            version: 0,
            reserved_ids: BTreeSet::new(),
            reserved_at_ms: BTreeMap::new(),
            events: VecDeque::new(),
            splits_total: 0,
            merges_total: 0,
            moves_total: 0,
        }
    }
}

/// Events kept in the map (the newest).
pub const EVENTS_KEPT: usize = 64;
/// Reserved, unused range ids kept at most (an abandoned preparation's ids expire).
pub const RESERVED_IDS_MAX: usize = 64;
/// Reservations older than this are released by the leader: a split or merge commits within
/// seconds of its reservation (a prepare is bounded by 20 s, each proposal by 5 s), so an
/// older one was abandoned (its leader failed over between prepare and commit).
pub const RESERVATION_KEPT_MS: i64 = 120_000;
/// Most ids one reservation hands out.
const RESERVE_COUNT_MAX: u64 = 8;

impl PartitionMapState {
    /// Applies one command; a command that does not fit the current map changes nothing and
    /// answers `Rejected`.
    pub fn apply(&mut self, command: &Command) -> CommandResponse {
        match command {
            Command::CreateInitialRange {
                range_id,
                low,
                high,
            } => self.create_initial_range(*range_id, low, high),
            Command::AssignRange {
                range_id,
                owner_id,
                owner_addr,
                expected_epoch,
                note,
            } => self.assign(
                *range_id,
                RangeOwner {
                    server_id: owner_id.clone(),
                    addr: owner_addr.clone(),
                },
                *expected_epoch,
                note.as_ref(),
            ),
            Command::ReserveRangeIds { count, at_ms } => self.reserve(*count, *at_ms),
            Command::ReleaseRangeIds { ids } => self.release(ids),
            Command::SplitRange {
                range_id,
                expected_epoch,
                split_key,
                left_id,
                right_id,
                note,
            } => self.split(
                *range_id,
                *expected_epoch,
                split_key,
                *left_id,
                *right_id,
                note,
            ),
            Command::MergeRanges {
                left_id,
                left_epoch,
                right_id,
                right_epoch,
                merged_id,
                note,
            } => self.merge(
                (*left_id, *left_epoch),
                (*right_id, *right_epoch),
                *merged_id,
                note,
            ),
        }
    }

    /// The first range, covering every key; only into an empty map.
    fn create_initial_range(
        &mut self,
        range_id: RangeId,
        low: &[u8],
        high: &[u8],
    ) -> CommandResponse {
        if !self.ranges.is_empty() {
            return rejected(format!("{range_id}: the map already has ranges"));
        }
        if !low.is_empty() || !high.is_empty() {
            return rejected(format!("{range_id}: the initial range must cover all keys"));
        }
        self.ranges.insert(
            range_id,
            RangeRecord {
                range_id,
                low: low.to_vec(),
                high: high.to_vec(),
                owner: None,
                epoch: Epoch::ZERO,
            },
        );
        self.next_range_id = self.next_range_id.max(RangeId::new(range_id.get() + 1));
        self.version += 1;
        CommandResponse::RangeCreated {
            range_id,
            map_version: self.version,
        }
    }

    /// `owner` serves the range from now on, under the next epoch; only while the range is
    /// still at `expected_epoch` (the proposer saw the map as it is).
    fn assign(
        &mut self,
        range_id: RangeId,
        owner: RangeOwner,
        expected_epoch: Epoch,
        note: Option<&EventNote>,
    ) -> CommandResponse {
        let Some(range) = self.ranges.get_mut(&range_id) else {
            return rejected(format!("{range_id}: no such range"));
        };
        if range.epoch != expected_epoch {
            return rejected(format!(
                "{range_id}: epoch is {} but the proposal expected {}",
                range.epoch.get(),
                expected_epoch.get()
            ));
        }
        range.owner = Some(owner);
        range.epoch = range.epoch.next();
        let epoch = range.epoch;
        self.version += 1;
        if let Some(note) = note {
            if note.kind == "move" {
                self.moves_total += 1;
            }
            self.record(note.clone());
        }
        CommandResponse::RangeAssigned {
            range_id,
            epoch,
            map_version: self.version,
        }
    }

    /// Sets aside `count` fresh ids, stamped `at_ms`; the oldest reservations go past
    /// [`RESERVED_IDS_MAX`].
    fn reserve(&mut self, count: u64, at_ms: i64) -> CommandResponse {
        if count == 0 || count > RESERVE_COUNT_MAX {
            return rejected(format!("reserve 1..={RESERVE_COUNT_MAX} ids at a time"));
        }
        // Ids are handed out in order, from 1 (0 is never a range).
        let first = self.next_range_id.get().max(1);
        self.next_range_id = RangeId::new(first + count);
        for id in (first..first + count).map(RangeId::new) {
            self.reserved_ids.insert(id);
            self.reserved_at_ms.insert(id, at_ms);
        }
        while self.reserved_ids.len() > RESERVED_IDS_MAX {
            if let Some(id) = self.reserved_ids.pop_first() {
                self.reserved_at_ms.remove(&id);
            }
        }
        self.version += 1;
        CommandResponse::RangeIdsReserved {
            first: RangeId::new(first),
            count,
        }
    }

    /// Forgets those of `ids` that are reserved; the map changes only if one was.
    fn release(&mut self, ids: &[RangeId]) -> CommandResponse {
        let released: Vec<RangeId> = ids
            .iter()
            .copied()
            .filter(|id| self.reserved_ids.remove(id))
            .collect();
        for id in &released {
            self.reserved_at_ms.remove(id);
        }
        if !released.is_empty() {
            self.version += 1;
        }
        CommandResponse::RangeIdsReleased { released }
    }

    fn record(&mut self, note: EventNote) {
        self.events.push_back(note);
        while self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
    }

    fn take_reserved(&mut self, ids: &[RangeId]) -> Result<(), String> {
        let distinct: BTreeSet<RangeId> = ids.iter().copied().collect();
        if distinct.len() != ids.len() {
            return Err("new range ids must differ".into());
        }
        if let Some(id) = distinct.iter().find(|id| !self.reserved_ids.contains(id)) {
            return Err(format!("{id} is not reserved"));
        }
        for id in distinct {
            self.reserved_ids.remove(&id);
            self.reserved_at_ms.remove(&id);
        }
        Ok(())
    }

    /// Reserved ids whose reservation is older than [`RESERVATION_KEPT_MS`] at `now_ms`.
    pub fn stale_reservations(&self, now_ms: i64) -> Vec<RangeId> {
        self.reserved_ids
            .iter()
            .copied()
            .filter(|id| {
                let at = self.reserved_at_ms.get(id).copied().unwrap_or(0);
                at.saturating_add(RESERVATION_KEPT_MS) < now_ms
            })
            .collect()
    }

    fn split(
        &mut self,
        range_id: RangeId,
        expected_epoch: Epoch,
        split_key: &[u8],
        left_id: RangeId,
        right_id: RangeId,
        note: &EventNote,
    ) -> CommandResponse {
        let Some(range) = self.ranges.get(&range_id) else {
            return rejected(format!("{range_id}: no such range"));
        };
        if range.epoch != expected_epoch || range.owner.is_none() {
            return rejected(format!("{range_id}: changed since the split was prepared"));
        }
        let inside = split_key > range.low.as_slice()
            && (range.high.is_empty() || split_key < range.high.as_slice());
        if !inside {
            return rejected(format!("{range_id}: split key is not inside the range"));
        }
        if let Err(reason) = self.take_reserved(&[left_id, right_id]) {
            return rejected(format!("{range_id}: {reason}"));
        }
        let parent = self.ranges.remove(&range_id).expect("checked above");
        let child = |id: RangeId, low: Vec<u8>, high: Vec<u8>| RangeRecord {
            range_id: id,
            low,
            high,
            owner: parent.owner.clone(),
            epoch: Epoch::ZERO.next(),
        };
        self.ranges.insert(
            left_id,
            child(left_id, parent.low.clone(), split_key.to_vec()),
        );
        self.ranges.insert(
            right_id,
            child(right_id, split_key.to_vec(), parent.high.clone()),
        );
        self.version += 1;
        self.splits_total += 1;
        self.record(note.clone());
        CommandResponse::Reshaped {
            created: vec![left_id, right_id],
            map_version: self.version,
        }
    }

    fn merge(
        &mut self,
        (left_id, left_epoch): (RangeId, Epoch),
        (right_id, right_epoch): (RangeId, Epoch),
        merged_id: RangeId,
        note: &EventNote,
    ) -> CommandResponse {
        let (Some(left), Some(right)) = (self.ranges.get(&left_id), self.ranges.get(&right_id))
        else {
            return rejected(format!("{left_id}+{right_id}: no such range"));
        };
        if left.epoch != left_epoch || right.epoch != right_epoch {
            return rejected(format!(
                "{left_id}+{right_id}: changed since the merge was prepared"
            ));
        }
        if left.high.is_empty() || left.high != right.low {
            return rejected(format!("{left_id}+{right_id}: not adjacent"));
        }
        let owner = match (&left.owner, &right.owner) {
            (Some(a), Some(b)) if a.server_id == b.server_id => a.clone(),
            _ => return rejected(format!("{left_id}+{right_id}: not served by one server")),
        };
        if let Err(reason) = self.take_reserved(&[merged_id]) {
            return rejected(format!("{left_id}+{right_id}: {reason}"));
        }
        let left = self.ranges.remove(&left_id).expect("checked above");
        let right = self.ranges.remove(&right_id).expect("checked above");
        self.ranges.insert(
            merged_id,
            RangeRecord {
                range_id: merged_id,
                low: left.low,
                high: right.high,
                owner: Some(owner),
                epoch: Epoch::ZERO.next(),
            },
        );
        self.version += 1;
        self.merges_total += 1;
        self.record(note.clone());
        CommandResponse::Reshaped {
            created: vec![merged_id],
            map_version: self.version,
        }
    }

    /// The range holding `key`.
    pub fn range_of(&self, key: &[u8]) -> Option<&RangeRecord> {
        self.ranges
            .values()
            .find(|range| strata_types::keys::range_contains(&range.low, &range.high, key))
    }

    /// Ranges in key order.
    pub fn in_key_order(&self) -> Vec<&RangeRecord> {
        let mut ranges: Vec<&RangeRecord> = self.ranges.values().collect();
        ranges.sort_by(|a, b| a.low.cmp(&b.low));
        ranges
    }

    /// Number of ranges each server owns.
    pub fn ranges_per_owner(&self) -> BTreeMap<ServerId, usize> {
        let mut counts = BTreeMap::new();
        for owner in self
            .ranges
            .values()
            .filter_map(|range| range.owner.as_ref())
        {
            *counts.entry(owner.server_id.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// The ranges owned by `server_id`, as sent to that server.
    pub fn assignments_of(&self, server_id: &str) -> Vec<pb::RangeAssignment> {
        self.ranges
            .values()
            .filter(|range| {
                range
                    .owner
                    .as_ref()
                    .is_some_and(|owner| owner.server_id.as_str() == server_id)
            })
            .map(RangeRecord::to_proto)
            .collect()
    }

    /// The map as sent on the wire.
    pub fn to_proto(&self, leader_hint: String) -> pb::PartitionMap {
        pb::PartitionMap {
            version: self.version,
            ranges: self.ranges.values().map(RangeRecord::to_proto).collect(),
            leader_hint,
        }
    }
}

impl RangeRecord {
    pub fn to_proto(&self) -> pb::RangeAssignment {
        let (owner_id, owner_addr) = match &self.owner {
            Some(owner) => (owner.server_id.to_string(), owner.addr.clone()),
            None => (String::new(), String::new()),
        };
        pb::RangeAssignment {
            range_id: self.range_id.get(),
            low: self.low.clone(),
            high: self.high.clone(),
            owner_id,
            owner_addr,
            epoch: self.epoch.get(),
        }
    }
}

fn rejected(reason: String) -> CommandResponse {
    CommandResponse::Rejected { reason }
}

#[cfg(test)]
#[path = "map_tests.rs"]
mod tests;
