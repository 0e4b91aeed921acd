//! The partition map: the state the Raft group agrees on.
//!
//! Invariants: ranges never overlap and, once the initial range exists, cover the whole key
//! space; a range's epoch only grows, by exactly one per change of owner; `version` grows on
//! every change to the map.

use crate::types::{Command, CommandResponse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMapState {
    pub ranges: BTreeMap<RangeId, RangeRecord>,
    /// The id the next new range gets (splits, later).
    pub next_range_id: u64,
    /// Bumped on every change.
    pub version: u64,
}

impl PartitionMapState {
    /// Applies one command; a command that does not fit the current map changes nothing and
    /// answers `Rejected`.
    pub fn apply(&mut self, command: &Command) -> CommandResponse {
        match command {
            Command::CreateInitialRange {
                range_id,
                low,
                high,
            } => {
                if !self.ranges.is_empty() {
                    return rejected(format!("{range_id}: the map already has ranges"));
                }
                if !low.is_empty() || !high.is_empty() {
                    return rejected(format!("{range_id}: the initial range must cover all keys"));
                }
                self.ranges.insert(
                    *range_id,
                    RangeRecord {
                        range_id: *range_id,
                        low: low.clone(),
                        high: high.clone(),
                        owner: None,
                        epoch: Epoch::ZERO,
                    },
                );
                self.next_range_id = self.next_range_id.max(range_id.get() + 1);
                self.version += 1;
                CommandResponse::RangeCreated {
                    range_id: *range_id,
                    map_version: self.version,
                }
            }
            Command::AssignRange {
                range_id,
                owner_id,
                owner_addr,
                expected_epoch,
            } => {
                let Some(range) = self.ranges.get_mut(range_id) else {
                    return rejected(format!("{range_id}: no such range"));
                };
                if range.epoch != *expected_epoch {
                    return rejected(format!(
                        "{range_id}: epoch is {} but the proposal expected {}",
                        range.epoch.get(),
                        expected_epoch.get()
                    ));
                }
                range.owner = Some(RangeOwner {
                    server_id: owner_id.clone(),
                    addr: owner_addr.clone(),
                });
                range.epoch = range.epoch.next();
                let epoch = range.epoch;
                self.version += 1;
                CommandResponse::RangeAssigned {
                    range_id: *range_id,
                    epoch,
                    map_version: self.version,
                }
            }
        }
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
mod tests {
    use super::*;

    fn assign(range: u64, owner: &str, expected: u64) -> Command {
        Command::AssignRange {
            range_id: RangeId::new(range),
            owner_id: ServerId::new(owner),
            owner_addr: format!("{owner}:1"),
            expected_epoch: Epoch::new(expected),
        }
    }

    #[test]
    fn initial_range_applies_once() {
        let mut map = PartitionMapState::default();
        let create = Command::CreateInitialRange {
            range_id: RangeId::new(1),
            low: vec![],
            high: vec![],
        };
        assert!(matches!(
            map.apply(&create),
            CommandResponse::RangeCreated { map_version: 1, .. }
        ));
        assert!(matches!(
            map.apply(&create),
            CommandResponse::Rejected { .. }
        ));
        assert_eq!(map.version, 1);
        assert_eq!(map.next_range_id, 2);
    }

    #[test]
    fn stale_assignments_change_nothing() {
        let mut map = PartitionMapState::default();
        map.apply(&Command::CreateInitialRange {
            range_id: RangeId::new(1),
            low: vec![],
            high: vec![],
        });
        assert!(matches!(
            map.apply(&assign(1, "a", 0)),
            CommandResponse::RangeAssigned { epoch, .. } if epoch == Epoch::new(1)
        ));
        // A second proposal made from the same (now stale) view is rejected.
        assert!(matches!(
            map.apply(&assign(1, "b", 0)),
            CommandResponse::Rejected { .. }
        ));
        assert!(matches!(
            map.apply(&assign(9, "b", 0)),
            CommandResponse::Rejected { .. }
        ));
        assert_eq!(map.assignments_of("a").len(), 1);
        assert!(map.assignments_of("b").is_empty());
        assert_eq!(map.version, 2);
        assert!(matches!(
            map.apply(&assign(1, "b", 1)),
            CommandResponse::RangeAssigned { .. }
        ));
        let range = map.assignments_of("b");
        assert_eq!(range[0].epoch, 2);
        assert_eq!(map.ranges_per_owner().get(&ServerId::new("b")), Some(&1));
    }
}
