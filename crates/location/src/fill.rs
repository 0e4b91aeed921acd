//! How full a stamp is, and which stamp a new bucket goes to (issue 15, item 3). One rule,
//! used by the location group (a reservation naming no stamp) and by the front-ends (a
//! CreateBucket naming no other region), so both place alike.
//!
//! The rule: among open stamps, the least full one, counted in whole percent so that stamps
//! of nearly equal fill spread buckets by count; stamps at [`FILL_HIGH_PERCENT`] or more only
//! when every stamp is (WAS keeps stamps under 70-80% full, leaving room for their buckets to
//! grow); then the fewest buckets. A stamp whose capacity is not reported yet counts as empty.

/// A stamp this full takes new buckets only when every open stamp is.
pub const FILL_HIGH_PERCENT: u64 = 80;

/// Stored bytes as a share of capacity; None when the capacity is unknown (0).
pub fn fill_ratio(capacity_bytes: u64, stored_bytes: u64) -> Option<f64> {
    (capacity_bytes > 0).then(|| stored_bytes as f64 / capacity_bytes as f64)
}

/// Whole percent full (rounded down; may pass 100 when a node over-reports); 0 when unknown.
pub fn fill_percent(capacity_bytes: u64, stored_bytes: u64) -> u64 {
    if capacity_bytes == 0 {
        return 0;
    }
    (u128::from(stored_bytes) * 100 / u128::from(capacity_bytes)).min(u128::from(u64::MAX)) as u64
}

/// The order of preference of a stamp for a new bucket: smaller is better. Callers break the
/// remaining ties themselves (the front-end prefers its own stamp, then names decide).
pub fn placement_rank(capacity_bytes: u64, stored_bytes: u64, buckets: u64) -> (bool, u64, u64) {
    let percent = fill_percent(capacity_bytes, stored_bytes);
    (percent >= FILL_HIGH_PERCENT, percent, buckets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_capacity_counts_as_empty() {
        assert_eq!(fill_ratio(0, 5), None);
        assert_eq!(fill_percent(0, 5), 0);
        assert_eq!(fill_ratio(200, 50), Some(0.25));
        assert_eq!(fill_percent(1_000, 999), 99);
        assert_eq!(fill_percent(u64::MAX, u64::MAX), 100);
    }

    #[test]
    fn the_least_full_stamp_wins_then_the_fewest_buckets() {
        // 10% full with many buckets beats 30% full with none.
        assert!(placement_rank(100, 10, 50) < placement_rank(100, 30, 0));
        // Within one percent, bucket counts decide.
        assert!(placement_rank(1_000, 101, 1) < placement_rank(1_000, 100, 2));
        // A stamp over the high mark loses to any under it, however full.
        assert!(placement_rank(100, 79, 90) < placement_rank(100, 80, 0));
        // Among stamps over the mark the least full still wins.
        assert!(placement_rank(100, 85, 9) < placement_rank(100, 95, 0));
    }
}
