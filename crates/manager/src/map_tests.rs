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

fn reserve_at(map: &mut PartitionMapState, count: u64, at_ms: i64) -> RangeId {
    match map.apply(&Command::ReserveRangeIds { count, at_ms }) {
        CommandResponse::RangeIdsReserved { first, .. } => first,
        other => panic!("{other:?}"),
    }
}

fn reserve(map: &mut PartitionMapState, count: u64) -> RangeId {
    reserve_at(map, count, 0)
}

fn create_initial_range() -> Command {
    Command::CreateInitialRange {
        range_id: RangeId::new(1),
        low: vec![],
        high: vec![],
    }
}

/// A map holding only the initial range, not yet assigned.
fn map_with_initial_range() -> PartitionMapState {
    let mut map = PartitionMapState::default();
    assert!(matches!(
        map.apply(&create_initial_range()),
        CommandResponse::RangeCreated { .. }
    ));
    map
}

#[test]
fn split_then_merge_keeps_the_key_space_covered() {
    let mut map = map_with_initial_range();
    map.apply(&assign(1, "a", 0));
    let first = reserve(&mut map, 2);
    assert_eq!(first, RangeId::new(2));
    let split = |key: &[u8], epoch: Epoch| Command::SplitRange {
        range_id: RangeId::new(1),
        expected_epoch: epoch,
        split_key: key.to_vec(),
        left_id: RangeId::new(2),
        right_id: RangeId::new(3),
        note: note("split"),
    };
    // A stale epoch, or a key outside the range, changes nothing.
    assert!(matches!(
        map.apply(&split(b"m", Epoch::ZERO)),
        CommandResponse::Rejected { .. }
    ));
    assert!(matches!(
        map.apply(&split(b"", Epoch::new(1))),
        CommandResponse::Rejected { .. }
    ));
    assert!(matches!(
        map.apply(&split(b"m", Epoch::new(1))),
        CommandResponse::Reshaped { .. }
    ));
    // The ids were consumed: the same split cannot apply twice.
    assert!(matches!(
        map.apply(&split(b"m", Epoch::new(1))),
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
    let merge = |right_epoch: Epoch| Command::MergeRanges {
        left_id: RangeId::new(2),
        left_epoch: Epoch::new(1),
        right_id: RangeId::new(3),
        right_epoch,
        merged_id: merged,
        note: note("merge"),
    };
    assert!(matches!(
        map.apply(&merge(Epoch::new(2))),
        CommandResponse::Rejected { .. }
    ));
    map.apply(&assign(3, "a", 2));
    assert!(matches!(
        map.apply(&merge(Epoch::new(2))),
        CommandResponse::Rejected { .. }
    ));
    assert!(matches!(
        map.apply(&merge(Epoch::new(3))),
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
    let old = reserve_at(&mut map, 2, 1_000);
    let old_next = RangeId::new(old.get() + 1);
    let now = 1_000 + RESERVATION_KEPT_MS;
    reserve_at(&mut map, 1, now);
    assert!(map.stale_reservations(now).is_empty());
    assert_eq!(map.stale_reservations(now + 1), vec![old, old_next]);
    let released = map.apply(&Command::ReleaseRangeIds {
        ids: vec![old, old_next, RangeId::new(99)],
    });
    assert_eq!(
        released,
        CommandResponse::RangeIdsReleased {
            released: vec![old, old_next]
        }
    );
    assert_eq!(map.reserved_ids.len(), 1);
    assert_eq!(map.reserved_at_ms.len(), 1);
    assert!(map.take_reserved(&[old]).is_err());
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
    assert!(matches!(
        map.apply(&create_initial_range()),
        CommandResponse::RangeCreated { map_version: 1, .. }
    ));
    assert!(matches!(
        map.apply(&create_initial_range()),
        CommandResponse::Rejected { .. }
    ));
    assert_eq!(map.version, 1);
    assert_eq!(map.next_range_id, RangeId::new(2));
}

#[test]
fn stale_assignments_change_nothing() {
    let mut map = map_with_initial_range();
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

/// Commands logged and maps snapshotted before range ids were typed (bare numbers) load into
/// typed ids and are written back byte for byte, so existing Raft logs and snapshots stay
/// readable.
#[test]
fn logged_commands_keep_their_encoding() {
    let logged = [
        r#"{"ReleaseRangeIds":{"ids":[4,5]}}"#,
        r#"{"SplitRange":{"range_id":1,"expected_epoch":2,"split_key":[109],"left_id":4,"right_id":5,"note":{"at_ms":1,"kind":"split","detail":""}}}"#,
    ];
    for text in logged {
        let command: Command = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&command).unwrap(), text);
    }
    let release: Command = serde_json::from_str(logged[0]).unwrap();
    assert_eq!(
        release,
        Command::ReleaseRangeIds {
            ids: vec![RangeId::new(4), RangeId::new(5)]
        }
    );
    let response = CommandResponse::RangeIdsReserved {
        first: RangeId::new(4),
        count: 2,
    };
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        r#"{"RangeIdsReserved":{"first":4,"count":2}}"#
    );

    let mut map = map_with_initial_range();
    reserve_at(&mut map, 2, 7);
    let snapshot = serde_json::to_string(&map).unwrap();
    assert!(
        snapshot.contains(r#""next_range_id":4,"#)
            && snapshot.contains(r#""reserved_ids":[2,3],"#)
            && snapshot.contains(r#""reserved_at_ms":{"2":7,"3":7}"#),
        "{snapshot}"
    );
    let loaded: PartitionMapState = serde_json::from_str(&snapshot).unwrap();
    assert_eq!(loaded, map);
}
