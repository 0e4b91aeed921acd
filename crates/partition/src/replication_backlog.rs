//! The versions a range still owes its destinations, in memory (issue 16): what the shipper
//! ([`crate::replication`]) takes its work from and computes the range's watermarks
//! ([`crate::replication_cursors`]) with.
//!
//! The durable truth is the index: a version is owed while it is PENDING with a mark at or
//! above its bucket's watermark. The backlog mirrors it: filled by a scan of the index after a
//! load, then by every commit that marks a version (under the commit lock, right after the
//! index took it), emptied by the shipper as versions arrive. It is bounded by
//! [`OWED_MAX`]; what does not fit is remembered only as the lowest mark left out
//! (`beyond_ms`), which caps every watermark until a later scan brings those versions in.
//!
//! Why the watermark is right: the shipper reads the range's clock first, then the backlog. A
//! version marked after the clock read has a mark at or above it (marks are taken from the
//! clock under the commit lock); one marked before is in the backlog or the index scan.

use std::collections::{BTreeMap, BTreeSet};

use crate::records::ReplicationCursors;
use crate::replication_cursors::normalized;

/// Versions held at most; about 200 bytes each.
pub const OWED_MAX: usize = 100_000;

/// One version a range owes its destination.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Owed {
    /// The version's mark (first, so the set is in mark order: per key, commit order).
    pub mark_ms: i64,
    pub bucket: String,
    pub key: String,
    pub version_id: String,
    /// The version's object bytes (what sending it moves; a version's size never changes).
    pub size_bytes: u64,
}

/// What one bucket owes in a backlog.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BucketOwed {
    pub versions: u64,
    pub bytes: u64,
    /// The lowest mark among them.
    pub lowest_mark_ms: i64,
}

impl BucketOwed {
    /// Adds `other`'s (another range's) to these.
    pub fn add(&mut self, other: BucketOwed) {
        if self.versions == 0 {
            self.lowest_mark_ms = other.lowest_mark_ms;
        } else if other.versions > 0 {
            self.lowest_mark_ms = self.lowest_mark_ms.min(other.lowest_mark_ms);
        }
        self.versions += other.versions;
        self.bytes += other.bytes;
    }
}

#[derive(Debug, Default)]
pub struct Backlog {
    owed: BTreeSet<Owed>,
    /// Owed versions that did not fit: none is marked below this.
    beyond_ms: Option<i64>,
    /// Whether the index was scanned since the range loaded (until then nothing is known).
    scanned: bool,
}

impl Backlog {
    /// Adds a version a commit marked (or a scan found).
    pub fn note(&mut self, owed: Owed) {
        if self.owed.len() >= OWED_MAX && !self.owed.contains(&owed) {
            self.beyond_ms = Some(self.beyond_ms.map_or(owed.mark_ms, |b| b.min(owed.mark_ms)));
            return;
        }
        self.owed.insert(owed);
    }

    /// Whether the shipper must scan the index: never scanned, or versions left out and room
    /// for them now.
    pub fn needs_scan(&self) -> bool {
        !self.scanned || (self.beyond_ms.is_some() && self.owed.len() < OWED_MAX / 2)
    }

    /// Starts a scan: what is left out from now on is noted again by the commits.
    pub fn begin_scan(&mut self) {
        self.beyond_ms = None;
    }

    /// Ends a scan: `found` versions (the lowest marks the scan kept) and the lowest mark it
    /// left out.
    pub fn end_scan(&mut self, found: Vec<Owed>, left_out_ms: Option<i64>) {
        for owed in found {
            self.note(owed);
        }
        if let Some(left_out_ms) = left_out_ms {
            self.beyond_ms = Some(self.beyond_ms.map_or(left_out_ms, |b| b.min(left_out_ms)));
        }
        self.scanned = true;
    }

    /// The lowest-marked versions, at most `limit` (they stay owed until [`Self::done`]).
    pub fn lowest(&self, limit: usize) -> Vec<Owed> {
        self.owed.iter().take(limit).cloned().collect()
    }

    /// [`Self::lowest`] of the buckets not in `paused` (a dead destination does not hold
    /// the others back).
    pub fn lowest_except(&self, limit: usize, paused: &BTreeSet<String>) -> Vec<Owed> {
        self.owed
            .iter()
            .filter(|owed| !paused.contains(&owed.bucket))
            .take(limit)
            .cloned()
            .collect()
    }

    /// The version arrived (or can never arrive, or is gone).
    pub fn done(&mut self, owed: &Owed) {
        self.owed.remove(owed);
    }

    /// Per bucket: what it owes (versions beyond [`OWED_MAX`] left out of the backlog are
    /// not counted until a scan brings them in).
    pub fn by_bucket(&self) -> BTreeMap<String, BucketOwed> {
        let mut buckets: BTreeMap<String, BucketOwed> = BTreeMap::new();
        for owed in &self.owed {
            buckets
                .entry(owed.bucket.clone())
                .or_default()
                .add(BucketOwed {
                    versions: 1,
                    bytes: owed.size_bytes,
                    lowest_mark_ms: owed.mark_ms,
                });
        }
        buckets
    }

    pub fn len(&self) -> usize {
        self.owed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owed.is_empty() && self.beyond_ms.is_none()
    }

    /// The watermarks this backlog allows when the range's clock was `clock_ms` before it was
    /// read; None before the first scan.
    pub fn watermarks(&self, clock_ms: i64) -> Option<ReplicationCursors> {
        if !self.scanned {
            return None;
        }
        let floor_ms = self.beyond_ms.map_or(clock_ms, |b| b.min(clock_ms));
        let mut lowest: BTreeMap<&str, i64> = BTreeMap::new();
        for owed in &self.owed {
            lowest.entry(&owed.bucket).or_insert(owed.mark_ms); // in mark order: first is lowest
        }
        let lagging = lowest
            .into_iter()
            .filter(|(_, mark_ms)| *mark_ms < floor_ms)
            .map(|(bucket, mark_ms)| (bucket.to_string(), mark_ms))
            .collect();
        Some(normalized(ReplicationCursors { floor_ms, lagging }))
    }
}

/// Keeps the `limit` lowest-marked versions a scan finds, and the lowest mark it drops.
#[derive(Debug)]
pub struct ScanKeeper {
    kept: BTreeSet<Owed>,
    limit: usize,
    left_out_ms: Option<i64>,
}

impl ScanKeeper {
    pub fn new(limit: usize) -> Self {
        ScanKeeper {
            kept: BTreeSet::new(),
            limit,
            left_out_ms: None,
        }
    }

    pub fn offer(&mut self, owed: Owed) {
        self.kept.insert(owed);
        if self.kept.len() > self.limit {
            let dropped = self.kept.pop_last().expect("over the limit, so not empty");
            let lowest = self
                .left_out_ms
                .map_or(dropped.mark_ms, |l| l.min(dropped.mark_ms));
            self.left_out_ms = Some(lowest);
        }
    }

    pub fn finish(self) -> (Vec<Owed>, Option<i64>) {
        (self.kept.into_iter().collect(), self.left_out_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owed(mark_ms: i64, bucket: &str, key: &str) -> Owed {
        Owed {
            mark_ms,
            bucket: bucket.into(),
            key: key.into(),
            version_id: format!("v{mark_ms}"),
            size_bytes: mark_ms as u64 * 100,
        }
    }

    #[test]
    fn watermarks_stop_below_the_lowest_owed_version_of_each_bucket() {
        let mut backlog = Backlog::default();
        backlog.note(owed(10, "a", "k"));
        assert_eq!(backlog.watermarks(100), None, "not scanned yet");
        backlog.begin_scan();
        backlog.end_scan(vec![owed(30, "b", "k"), owed(20, "a", "j")], None);
        let w = backlog.watermarks(100).unwrap();
        assert_eq!(w.floor_ms, 100);
        assert_eq!(w.lagging.get("a"), Some(&10));
        assert_eq!(w.lagging.get("b"), Some(&30));
        let a = BucketOwed {
            versions: 2,
            bytes: 3_000,
            lowest_mark_ms: 10,
        };
        assert_eq!(backlog.by_bucket().get("a"), Some(&a));
        backlog.done(&owed(10, "a", "k"));
        assert_eq!(backlog.watermarks(100).unwrap().lagging.get("a"), Some(&20));
        assert_eq!(backlog.lowest(1), vec![owed(20, "a", "j")]);
        let paused = BTreeSet::from(["a".to_string()]);
        assert_eq!(backlog.lowest_except(5, &paused), vec![owed(30, "b", "k")]);
    }

    #[test]
    fn what_does_not_fit_caps_every_watermark_until_a_scan() {
        let mut backlog = Backlog::default();
        backlog.end_scan(Vec::new(), Some(50));
        assert!(backlog.needs_scan(), "room for the left-out versions");
        let w = backlog.watermarks(100).unwrap();
        assert_eq!((w.floor_ms, w.lagging.len()), (50, 0));
        backlog.begin_scan();
        backlog.end_scan(vec![owed(50, "a", "k")], None);
        assert!(!backlog.needs_scan());
        assert_eq!(backlog.watermarks(100).unwrap().lagging.get("a"), Some(&50));
    }

    #[test]
    fn a_scan_keeps_the_lowest_marks() {
        let mut keeper = ScanKeeper::new(2);
        for mark in [5, 1, 9, 3] {
            keeper.offer(owed(mark, "a", &format!("k{mark}")));
        }
        let (kept, left_out) = keeper.finish();
        assert_eq!(
            kept.iter().map(|o| o.mark_ms).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(left_out, Some(5));
    }
}
