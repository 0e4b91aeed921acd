//! How far a range's versions have been replicated (issue 16; `ReplicationCursors` in
//! `proto/strata/record.proto`): per bucket, a watermark W such that every version of the
//! bucket in the range marked PENDING with a mark below W has been applied at its destination.
//!
//! Why a watermark over marks and not a position in the log: a mark is the range's clock when
//! the version was marked (`ObjectRecord.replication_mark_ms`), the clock only rises (also
//! across splits and merges, whose children start from their parents' highest), and W never
//! passes the clock. So the PENDING versions a range still owes are exactly its index rows
//! marked at or above W: they survive reloads, moves and reshapes with the index itself, and
//! no log has to be kept for a shipper that lags. The cursors are committed in the range's
//! own log (entries of origin REPLICATION) and checkpoints, so they are fenced and durable as
//! every other commit is.
//!
//! Invariants kept here: a child's cursors are, per bucket, the lowest of its parents' (a
//! version may be shipped again, never skipped); the `lagging` map holds only buckets below
//! the floor, so its size is bounded by the buckets whose destination lags.

use strata_proto::common::ReplicationStatus;

use crate::records::{ObjectRecord, ReplicationCursors};

/// Buckets per range whose watermark may lag the floor; beyond it the floor is lowered to
/// the lowest one instead (still true, only less precise).
pub const LAGGING_BUCKETS_MAX: usize = 1_000;

/// W for `bucket`: every version of it marked below this has arrived.
pub fn watermark_ms(cursors: &ReplicationCursors, bucket: &str) -> i64 {
    cursors
        .lagging
        .get(bucket)
        .copied()
        .unwrap_or(cursors.floor_ms)
}

/// The cursors of a split's or merge's child: per bucket the lowest of its parents'.
pub fn merged<'a>(parents: impl IntoIterator<Item = &'a ReplicationCursors>) -> ReplicationCursors {
    let parents: Vec<&ReplicationCursors> = parents.into_iter().collect();
    let floor_ms = parents.iter().map(|p| p.floor_ms).min().unwrap_or(0);
    let mut merged = ReplicationCursors {
        floor_ms,
        lagging: Default::default(),
    };
    for bucket in parents.iter().flat_map(|p| p.lagging.keys()) {
        let lowest = parents
            .iter()
            .map(|p| watermark_ms(p, bucket))
            .min()
            .unwrap_or(floor_ms);
        if lowest < floor_ms {
            merged.lagging.insert(bucket.clone(), lowest);
        }
    }
    normalized(merged)
}

/// `cursors` with buckets at or above the floor dropped (they are at the floor's W or above,
/// and the floor is what they show), and at most [`LAGGING_BUCKETS_MAX`] lagging buckets.
pub fn normalized(mut cursors: ReplicationCursors) -> ReplicationCursors {
    let floor_ms = cursors.floor_ms;
    cursors.lagging.retain(|_, w| *w < floor_ms);
    if cursors.lagging.len() > LAGGING_BUCKETS_MAX {
        // Lower the floor to the lowest lagging W: every bucket's W falls to it at most.
        let lowest = cursors.lagging.values().copied().min().unwrap_or(floor_ms);
        cursors.floor_ms = lowest;
        cursors.lagging.clear();
    }
    cursors
}

/// Whether `cursors` may replace `old` in a range whose clock is `clock_ms`: no W above the
/// clock (a version marked later would count as arrived before it was shipped).
pub fn check_advance(cursors: &ReplicationCursors, clock_ms: i64) -> Result<(), String> {
    let highest = cursors
        .lagging
        .values()
        .copied()
        .chain([cursors.floor_ms])
        .max();
    match highest {
        Some(highest) if highest > clock_ms => Err(format!(
            "a replication watermark ({highest} ms) above the range's clock ({clock_ms} ms)"
        )),
        _ => Ok(()),
    }
}

/// The status a client sees for `version` when its range's W for the bucket is
/// `watermark_ms`: a PENDING version marked below W has arrived (COMPLETED).
pub fn shown_status(version: &ObjectRecord, watermark_ms: i64) -> i32 {
    let pending = version.replication_status == ReplicationStatus::Pending as i32;
    if pending && version.replication_mark_ms < watermark_ms {
        ReplicationStatus::Completed as i32
    } else {
        version.replication_status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursors(floor_ms: i64, lagging: &[(&str, i64)]) -> ReplicationCursors {
        ReplicationCursors {
            floor_ms,
            lagging: lagging.iter().map(|(b, w)| (b.to_string(), *w)).collect(),
        }
    }

    #[test]
    fn a_child_takes_each_buckets_lowest_watermark() {
        let left = cursors(100, &[("slow", 40)]);
        let right = cursors(80, &[("other", 70)]);
        let child = merged([&left, &right]);
        assert_eq!(child.floor_ms, 80);
        assert_eq!(watermark_ms(&child, "slow"), 40);
        assert_eq!(watermark_ms(&child, "other"), 70);
        assert_eq!(watermark_ms(&child, "any"), 80);
        // A split's children get the parent's cursors unchanged.
        assert_eq!(merged([&left]), left);
        assert_eq!(merged([]), ReplicationCursors::default());
    }

    #[test]
    fn normalizing_drops_buckets_at_the_floor_and_bounds_the_map() {
        let c = normalized(cursors(50, &[("a", 50), ("b", 60), ("c", 10)]));
        assert_eq!(c, cursors(50, &[("c", 10)]));
        let many: Vec<(String, i64)> = (0..=LAGGING_BUCKETS_MAX as i64)
            .map(|i| (format!("b{i}"), 10 + i))
            .collect();
        let big = ReplicationCursors {
            floor_ms: 5_000,
            lagging: many.into_iter().collect(),
        };
        let c = normalized(big);
        assert_eq!(c, cursors(10, &[]));
    }

    #[test]
    fn no_watermark_may_pass_the_clock() {
        assert!(check_advance(&cursors(100, &[("a", 90)]), 100).is_ok());
        assert!(check_advance(&cursors(101, &[]), 100).is_err());
        assert!(check_advance(&cursors(10, &[("a", 101)]), 100).is_err());
    }

    #[test]
    fn pending_below_the_watermark_shows_completed() {
        let pending = |mark_ms| ObjectRecord {
            replication_status: ReplicationStatus::Pending as i32,
            replication_mark_ms: mark_ms,
            ..Default::default()
        };
        let completed = ReplicationStatus::Completed as i32;
        let pending_status = ReplicationStatus::Pending as i32;
        assert_eq!(shown_status(&pending(99), 100), completed);
        assert_eq!(shown_status(&pending(100), 100), pending_status);
        let failed = ObjectRecord {
            replication_status: ReplicationStatus::Failed as i32,
            ..Default::default()
        };
        assert_eq!(
            shown_status(&failed, i64::MAX),
            ReplicationStatus::Failed as i32
        );
    }
}
