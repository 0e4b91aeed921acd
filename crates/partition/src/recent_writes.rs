//! The writes a range committed recently, by write id (`ObjectRecord.write_id`), so that a
//! front-end's retry of a write whose first attempt committed (the owner died before
//! answering) is answered with that write even after another write replaced it: re-evaluating
//! its condition then would refuse (412) a write that took effect, or apply it twice.
//!
//! How long: a front-end retries one request for its retry budget (5 s by default,
//! `RETRY_BUDGET_MS_DEFAULT` in crates/frontend/src/config.rs), and a client's own retry of a
//! completion comes later still. A count alone covers too little (4,096 writes are under a
//! second at the range's 5,500 requests/s), so writes are kept by time: every write of the last
//! [`RECENT_WRITES_WINDOW_MS`] (60 s, twelve retry budgets), up to a hard memory bound
//! ([`RECENT_WRITES_MAX`] entries, [`RECENT_WRITES_BYTES_MAX`] bytes). Past the bound the oldest
//! go first, earlier than the window: at the range's full request rate with 4 KiB entries (a
//! 1 KiB key, 2 KiB of metadata) that still keeps ~6 s, more than the retry budget; typical
//! entries of a few hundred bytes keep the whole window. A retry of a forgotten write is
//! decided on the current version alone (412 for a failed condition, a new version otherwise),
//! as before this table existed.
//!
//! Where from: every commit, the log replay of a load, and the checkpoint (each checkpoint
//! carries the table, and a split's or merge's children get their keys' part of it), so
//! neither a checkpoint between a write and its retry nor a move of the range forgets it.

use std::collections::{HashMap, VecDeque};

use crate::index::{Change, IndexValue};
use crate::records::{ObjectRecord, RecentWrite};

/// How long a write is remembered (see the module doc).
pub const RECENT_WRITES_WINDOW_MS: i64 = 60_000;
/// Most writes remembered per range, whatever their age.
pub const RECENT_WRITES_MAX: usize = 400_000;
/// Most bytes (keys and answers, roughly) remembered per range, whatever their age.
pub const RECENT_WRITES_BYTES_MAX: usize = 128 * 1024 * 1024;

struct Remembered {
    key: Vec<u8>,
    answer: ObjectRecord,
    remembered_ms: i64,
    bytes: usize,
}

#[derive(Default)]
pub struct RecentWrites {
    by_id: HashMap<String, Remembered>,
    /// Write ids, oldest first.
    order: VecDeque<String>,
    bytes: usize,
}

impl RecentWrites {
    /// Remembers the object version `meta` written at `key` at `now_ms`, if it carries a write
    /// id (without its chunk locations: answers do not carry them).
    pub fn remember(&mut self, key: &[u8], meta: &ObjectRecord, now_ms: i64) {
        if meta.write_id.is_empty() {
            return;
        }
        let mut answer = meta.clone();
        answer.chunks.clear();
        self.insert(key.to_vec(), answer, now_ms, now_ms);
    }

    /// Remembers every object version among a commit's `changes`.
    pub fn remember_changes(&mut self, changes: &[Change], now_ms: i64) {
        for (key, value) in changes {
            if let Some(IndexValue::Object(meta)) = value {
                self.remember(key, meta, now_ms);
            }
        }
    }

    /// Takes back a write a checkpoint carried, keeping the time it was first remembered.
    pub fn restore(&mut self, write: RecentWrite, now_ms: i64) {
        let Some(answer) = write.answer else { return };
        if answer.write_id.is_empty() {
            return;
        }
        self.insert(write.key, answer, write.remembered_ms, now_ms);
    }

    fn insert(&mut self, key: Vec<u8>, answer: ObjectRecord, remembered_ms: i64, now_ms: i64) {
        self.expire(now_ms);
        if remembered_ms < now_ms - RECENT_WRITES_WINDOW_MS
            || self.by_id.contains_key(&answer.write_id)
        {
            return;
        }
        // Entries arrive about in time order (commits, then replay); one restored from a
        // checkpoint before newer ones is merely kept a little longer than its window.
        let bytes = key.len() + 2 * answer.write_id.len() + prost::Message::encoded_len(&answer);
        while !self.order.is_empty()
            && (self.order.len() >= RECENT_WRITES_MAX
                || self.bytes + bytes > RECENT_WRITES_BYTES_MAX)
        {
            self.forget_oldest();
        }
        self.bytes += bytes;
        self.order.push_back(answer.write_id.clone());
        self.by_id.insert(
            answer.write_id.clone(),
            Remembered {
                key,
                answer,
                remembered_ms,
                bytes,
            },
        );
        debug_assert_eq!(self.order.len(), self.by_id.len());
    }

    /// Forgets writes older than the window.
    fn expire(&mut self, now_ms: i64) {
        while let Some(oldest) = self.order.front() {
            let expired = self
                .by_id
                .get(oldest)
                .is_none_or(|w| w.remembered_ms < now_ms - RECENT_WRITES_WINDOW_MS);
            if !expired {
                break;
            }
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        if let Some(oldest) = self.order.pop_front() {
            if let Some(write) = self.by_id.remove(&oldest) {
                self.bytes -= write.bytes;
            }
        }
    }

    /// The version write `write_id` made at `key`, if it is remembered.
    pub fn find(&self, key: &[u8], write_id: &str) -> Option<ObjectRecord> {
        match self.by_id.get(write_id) {
            Some(write) if write.key == key => Some(write.answer.clone()),
            _ => None,
        }
    }

    /// The writes within the window with keys in `[low, high)` (`high` empty = to the end),
    /// oldest first, for a checkpoint.
    pub fn snapshot(&self, low: &[u8], high: &[u8], now_ms: i64) -> Vec<RecentWrite> {
        self.order
            .iter()
            .filter_map(|id| self.by_id.get(id))
            .filter(|w| w.remembered_ms >= now_ms - RECENT_WRITES_WINDOW_MS)
            .filter(|w| strata_types::keys::range_contains(low, high, &w.key))
            .map(|w| RecentWrite {
                key: w.key.clone(),
                answer: Some(w.answer.clone()),
                remembered_ms: w.remembered_ms,
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(write_id: &str) -> ObjectRecord {
        ObjectRecord {
            write_id: write_id.into(),
            etag: format!("etag of {write_id}"),
            ..Default::default()
        }
    }

    #[test]
    fn finds_a_write_by_id_and_key_for_the_whole_window() {
        let mut recent = RecentWrites::default();
        recent.remember(b"k", &meta(""), 0);
        recent.remember(b"k", &meta("w-0"), 0);
        assert_eq!(recent.find(b"k", "w-0").unwrap().etag, "etag of w-0");
        assert!(recent.find(b"other", "w-0").is_none());
        assert!(recent.find(b"k", "").is_none());
        // Far more writes than the old count bound, all inside the window: all kept.
        for i in 1..=10_000 {
            recent.remember(b"k", &meta(&format!("w-{i}")), i);
        }
        assert!(recent.find(b"k", "w-0").is_some());
        // Past the window, the old ones go.
        recent.remember(b"k", &meta("late"), RECENT_WRITES_WINDOW_MS + 5_000);
        assert!(recent.find(b"k", "w-0").is_none());
        assert!(recent.find(b"k", "w-4999").is_none());
        assert!(recent.find(b"k", "w-5000").is_some());
        assert!(recent.find(b"k", "late").is_some());
    }

    #[test]
    fn memory_is_bounded_whatever_the_rate() {
        let mut recent = RecentWrites::default();
        let key = vec![b'k'; 1024];
        let mut big = meta("");
        big.user_metadata
            .insert("m".into(), "v".repeat(2 * 1024 - 1));
        for i in 0..(RECENT_WRITES_BYTES_MAX / 3_000) {
            big.write_id = format!("w-{i}");
            recent.remember(&key, &big, 0);
        }
        assert!(recent.bytes <= RECENT_WRITES_BYTES_MAX);
        assert!(recent.find(&key, "w-0").is_none(), "the oldest go first");
        assert!(recent.len() > RECENT_WRITES_BYTES_MAX / 4_096);
    }

    #[test]
    fn a_snapshot_restores_with_its_times_and_bounds() {
        let mut recent = RecentWrites::default();
        recent.remember(b"a", &meta("w-a"), 1_000);
        recent.remember(b"m", &meta("w-m"), 2_000);
        let lower = recent.snapshot(b"", b"h", 2_000);
        assert_eq!(lower.len(), 1);
        let mut restored = RecentWrites::default();
        for write in recent.snapshot(b"", b"", 2_000) {
            restored.restore(write, 3_000);
        }
        assert_eq!(restored.find(b"m", "w-m").unwrap().etag, "etag of w-m");
        // Restored with its first time: it expires a window after that, not after the load.
        restored.remember(b"z", &meta("w-z"), RECENT_WRITES_WINDOW_MS + 1_500);
        assert!(restored.find(b"a", "w-a").is_none());
        assert!(restored.find(b"m", "w-m").is_some());
    }
}
