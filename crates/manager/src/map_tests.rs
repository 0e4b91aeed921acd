//! Tests of the partition map: commands applied in order keep its invariants.

use super::*;

fn assign(range: u64, owner: &str, expected: u64) -> Command {
    Command::AssignRange {
        range_id: RangeId::new(range),
        owner_id: ServerId::new(owner),
        owner_addr: format!("{owner}:1"),
        expected_epoch: Epoch::new(expected),
        note: None,
    }
}

fn note(kind: &str) -> EventNote {
    EventNote {
        at_ms: 1,
        kind: kind.into(),
        detail: String::new(),
    }
}

fn reserve(map: &mut PartitionMapState, count: u64) -> u64 {
    match map.apply(&Command::ReserveRangeIds { count, at_ms: 0 }) {
        CommandResponse::RangeIdsReserved { first, .. } => first,
        other => panic!("{other:?}"),
    }
}

#[test]
fn split_then_merge_keeps_the_key_space_covered() {
    let mut map = PartitionMapState::default();
    map.apply(&Command::CreateInitialRange {
        range_id: RangeId::new(1),
        low: vec![],
        high: vec![],
    });
    map.apply(&assign(1, "a", 0));
    let first = reserve(&mut map, 2);
    assert_eq!(first, 2);
    let split = |key: &[u8], epoch: u64| Command::SplitRange {
        range_id: RangeId::new(1),
        expected_epoch: Epoch::new(epoch),
        split_key: key.to_vec(),
        left_id: RangeId::new(2),
        right_id: RangeId::new(3),
        note: note("split"),
    };
    // A stale epoch, or a key outside the range, changes nothing.
    assert!(matches!(
        map.apply(&split(b"m", 0)),
        CommandResponse::Rejected { .. }
    ));
    assert!(matches!(
        map.apply(&split(b"", 1)),
        CommandResponse::Rejected { .. }
    ));
    assert!(matches!(
        map.apply(&split(b"m", 1)),
        CommandResponse::Reshaped { .. }
    ));
    // The ids were consumed: the same split cannot apply twice.
    assert!(matches!(
        map.apply(&split(b"m", 1)),
        CommandResponse::Rejected { .. }
    ));
    let ranges = map.in_key_order();
    assert_eq!(ranges.len(), 2);
    assert_eq!(
        (ranges[0].low.as_slice(), ranges[0].high.as_slice()),
        (&b""[..], &b"m"[..])
    );
    assert_eq!(
        (ranges[1].low.as_slice(), ranges[1].high.as_slice()),
        (&b"m"[..], &b""[..])
    );
    assert!(ranges.iter().all(|r| r.epoch == Epoch::new(1)));
    assert_eq!(
        map.range_of(b"z").map(|r| r.range_id),
        Some(RangeId::new(3))
    );
    assert_eq!(map.splits_total, 1);

    // Merging needs one owner: move the right half away and it is refused.
    map.apply(&assign(3, "b", 1));
    let merged = reserve(&mut map, 1);
    let merge = |right_epoch: u64| Command::MergeRanges {
        left_id: RangeId::new(2),
        left_epoch: Epoch::new(1),
        right_id: RangeId::new(3),
        right_epoch: Epoch::new(right_epoch),
        merged_id: RangeId::new(merged),
        note: note("merge"),
    };
    assert!(matches!(
        map.apply(&merge(2)),
        CommandResponse::Rejected { .. }
    ));
    map.apply(&assign(3, "a", 2));
    assert!(matches!(
        map.apply(&merge(2)),
        CommandResponse::Rejected { .. }
    ));
    assert!(matches!(
        map.apply(&merge(3)),
        CommandResponse::Reshaped { .. }
    ));
    let ranges = map.in_key_order();
    assert_eq!(ranges.len(), 1);
    assert!(ranges[0].low.is_empty() && ranges[0].high.is_empty());
    assert_eq!(map.merges_total, 1);
    assert_eq!(map.events.len(), 2);
}

#[test]
fn old_reservations_are_stale_and_released_ids_can_never_commit() {
    let mut map = PartitionMapState::default();
    let old = match map.apply(&Command::ReserveRangeIds {
        count: 2,
        at_ms: 1_000,
    }) {
        CommandResponse::RangeIdsReserved { first, .. } => first,
        other => panic!("{other:?}"),
    };
    let now = 1_000 + RESERVATION_KEPT_MS;
    map.apply(&Command::ReserveRangeIds {
        count: 1,
        at_ms: now,
    });
    assert!(map.stale_reservations(now).is_empty());
    assert_eq!(map.stale_reservations(now + 1), vec![old, old + 1]);
    let released = map.apply(&Command::ReleaseRangeIds {
        ids: vec![old, old + 1, 99],
    });
    assert_eq!(
        released,
        CommandResponse::RangeIdsReleased {
            released: vec![old, old + 1]
        }
    );
    assert_eq!(map.reserved_ids.len(), 1);
    assert_eq!(map.reserved_at_ms.len(), 1);
    assert!(map.take_reserved(&[RangeId::new(old)]).is_err());
}

#[test]
fn events_and_reserved_ids_are_bounded() {
    let mut map = PartitionMapState::default();
    for _ in 0..100 {
        reserve(&mut map, 2);
    }
    assert_eq!(map.reserved_ids.len(), RESERVED_IDS_MAX);
    for _ in 0..100 {
        map.record(note("move"));
    }
    assert_eq!(map.events.len(), EVENTS_KEPT);
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
