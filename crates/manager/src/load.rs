//! The leader's view of each range's load, from partition-server heartbeats (not replicated:
//! a new leader learns it again within a few heartbeats, and waits a full sustain period
//! before acting on it).
//!
//! Bounded: one entry per range of the map; entries of ranges that left the map are dropped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use strata_proto::manager::ServedRange;
use strata_types::{Epoch, RangeId};

/// What the leader knows about one range's load.
#[derive(Clone, Debug)]
pub struct RangeLoad {
    /// The epoch the report was made under (a report of another epoch is not this range's).
    pub epoch: Epoch,
    pub server_id: String,
    pub report: ServedRange,
    pub reported_at: Instant,
    /// Since when the range has been over a split threshold without a break.
    pub hot_since: Option<Instant>,
    /// Since when the range has been under the merge threshold without a break.
    pub cold_since: Option<Instant>,
    /// When this leader first heard of the range (a new range is not reshaped at once).
    pub first_seen: Instant,
}

/// Thresholds that make a range hot (split) or cold (merge).
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub split_requests_per_sec: f64,
    pub split_bytes_per_sec: f64,
    pub merge_requests_per_sec: f64,
}

#[derive(Debug, Default)]
pub struct LoadTable {
    ranges: BTreeMap<RangeId, RangeLoad>,
}

impl LoadTable {
    /// Records `server_id`'s report of one range it serves.
    pub fn record(
        &mut self,
        server_id: &str,
        report: ServedRange,
        thresholds: Thresholds,
        now: Instant,
    ) {
        let hot = report.requests_per_sec >= thresholds.split_requests_per_sec
            || report.bytes_per_sec >= thresholds.split_bytes_per_sec;
        let cold = report.requests_per_sec < thresholds.merge_requests_per_sec;
        // The proto boundary: the report's bare integers become typed ids here.
        let epoch = Epoch::new(report.epoch);
        let entry = self
            .ranges
            .entry(RangeId::new(report.range_id))
            .or_insert_with(|| RangeLoad {
                epoch,
                server_id: server_id.to_string(),
                report: report.clone(),
                reported_at: now,
                hot_since: None,
                cold_since: None,
                first_seen: now,
            });
        if entry.epoch != epoch || entry.server_id != server_id {
            // A new owner or epoch: its history starts over.
            entry.first_seen = now;
            entry.hot_since = None;
            entry.cold_since = None;
        }
        entry.epoch = epoch;
        entry.server_id = server_id.to_string();
        entry.hot_since = if hot {
            entry.hot_since.or(Some(now))
        } else {
            None
        };
        entry.cold_since = if cold {
            entry.cold_since.or(Some(now))
        } else {
            None
        };
        entry.report = report;
        entry.reported_at = now;
    }

    /// The load of a range as served under `epoch`, if reported within `fresh`.
    pub fn get(
        &self,
        range_id: RangeId,
        epoch: Epoch,
        fresh: Duration,
        now: Instant,
    ) -> Option<&RangeLoad> {
        self.ranges
            .get(&range_id)
            .filter(|load| load.epoch == epoch)
            .filter(|load| now.saturating_duration_since(load.reported_at) <= fresh)
    }

    /// Drops ranges not in `keep` (they were split, merged away or the map moved on).
    pub fn retain(&mut self, keep: impl Fn(RangeId) -> bool) {
        self.ranges.retain(|range_id, _| keep(*range_id));
    }

    pub fn clear(&mut self) {
        self.ranges.clear();
    }
}

/// A split key that balances the sampled requests: the median sampled key, strictly inside
/// `(low, high)`. None when the sample cannot split the load (too few keys, or one key takes
/// most of it: splitting at a single hot key does not spread that key's load).
pub fn balanced_split_key(samples: &[Vec<u8>], low: &[u8], high: &[u8]) -> Option<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = samples
        .iter()
        .map(|k| strata_types::keys::split_point(k))
        .filter(|k| k.as_slice() > low && (high.is_empty() || k.as_slice() < high))
        .collect();
    if keys.len() < 4 {
        return None;
    }
    keys.sort();
    let dominant = keys
        .chunk_by(|a, b| a == b)
        .map(|run| run.len())
        .max()
        .unwrap_or(0);
    if dominant * 10 > keys.len() * 8 {
        return None;
    }
    Some(keys[keys.len() / 2].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn served(rps: f64) -> ServedRange {
        ServedRange {
            range_id: 7,
            epoch: 1,
            requests_per_sec: rps,
            ..Default::default()
        }
    }

    #[test]
    fn hot_and_cold_streaks_reset_on_a_break() {
        let thresholds = Thresholds {
            split_requests_per_sec: 100.0,
            split_bytes_per_sec: f64::MAX,
            merge_requests_per_sec: 5.0,
        };
        let mut table = LoadTable::default();
        let t0 = Instant::now();
        table.record("a", served(200.0), thresholds, t0);
        table.record("a", served(300.0), thresholds, t0 + Duration::from_secs(1));
        let fresh = Duration::from_secs(5);
        let (range, epoch) = (RangeId::new(7), Epoch::new(1));
        let load = table
            .get(range, epoch, fresh, t0 + Duration::from_secs(1))
            .unwrap();
        assert_eq!(load.hot_since, Some(t0));
        table.record("a", served(50.0), thresholds, t0 + Duration::from_secs(2));
        assert_eq!(table.get(range, epoch, fresh, t0).unwrap().hot_since, None);
        table.record("a", served(1.0), thresholds, t0 + Duration::from_secs(3));
        assert!(table
            .get(range, epoch, fresh, t0)
            .unwrap()
            .cold_since
            .is_some());
        assert!(
            table.get(range, epoch.next(), fresh, t0).is_none(),
            "another epoch is not this range"
        );
        assert!(
            table
                .get(range, epoch, fresh, t0 + Duration::from_secs(60))
                .is_none(),
            "stale"
        );
    }

    #[test]
    fn split_keys_balance_the_sample() {
        let keys: Vec<Vec<u8>> = (0..64u32)
            .map(|i| format!("k{i:03}").into_bytes())
            .collect();
        let key = balanced_split_key(&keys, b"", b"").unwrap();
        assert_eq!(key, b"k032".to_vec());
        // Skewed load: the median follows the requests, not the key-space midpoint.
        let mut skewed: Vec<Vec<u8>> = (0..60u32)
            .map(|i| format!("z{i:03}").into_bytes())
            .collect();
        skewed.extend((0..4u32).map(|i| format!("a{i}").into_bytes()));
        let key = balanced_split_key(&skewed, b"", b"").unwrap();
        assert!(
            key.starts_with(b"z0"),
            "{:?}",
            String::from_utf8_lossy(&key)
        );
        // Keys outside the range, or one dominant key, give no split.
        assert_eq!(balanced_split_key(&keys, b"x", b""), None);
        let one_hot = vec![b"hot".to_vec(); 60];
        assert_eq!(balanced_split_key(&one_hot, b"", b""), None);
    }
}
