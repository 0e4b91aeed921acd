//! The last writes a range committed, by write id (`ObjectMeta.write_id`), so that a
//! front-end's retry of a write whose first attempt committed (the owner died before
//! answering) is answered with that write even after another write replaced it: re-evaluating
//! its condition then would refuse (412) a write that took effect.
//!
//! Filled by every commit and by the log replay of a load, so the new owner of a range knows
//! the writes of the log tail it replayed (a retry comes within the front-end's few-second
//! budget, well inside the tail; a checkpoint taken in between drops them, then the retry is
//! decided on the current version alone, as before). Bounded: the oldest ids go first.

use std::collections::{HashMap, VecDeque};

use strata_proto::common::ObjectMeta;

use crate::range::{Change, IndexValue};

/// Write ids remembered per range at most (a few seconds of writes at full speed).
pub const RECENT_WRITES_MAX: usize = 4_096;

#[derive(Default)]
pub struct RecentWrites {
    by_id: HashMap<String, (Vec<u8>, ObjectMeta)>,
    order: VecDeque<String>,
}

impl RecentWrites {
    /// Remembers the object version `meta` written at `key`, if it carries a write id (without
    /// its chunk locations: answers do not carry them).
    pub fn remember(&mut self, key: &[u8], meta: &ObjectMeta) {
        if meta.write_id.is_empty() || self.by_id.contains_key(&meta.write_id) {
            return;
        }
        if self.order.len() == RECENT_WRITES_MAX {
            if let Some(oldest) = self.order.pop_front() {
                self.by_id.remove(&oldest);
            }
        }
        let mut answer = meta.clone();
        answer.chunks.clear();
        self.order.push_back(meta.write_id.clone());
        self.by_id
            .insert(meta.write_id.clone(), (key.to_vec(), answer));
        debug_assert_eq!(self.order.len(), self.by_id.len());
    }

    /// Remembers every object version among a commit's `changes`.
    pub fn remember_changes(&mut self, changes: &[Change]) {
        for (key, value) in changes {
            if let Some(IndexValue::Object(meta)) = value {
                self.remember(key, meta);
            }
        }
    }

    /// The version write `write_id` made at `key`, if it is remembered.
    pub fn find(&self, key: &[u8], write_id: &str) -> Option<ObjectMeta> {
        match self.by_id.get(write_id) {
            Some((written_at, meta)) if written_at == key => Some(meta.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(write_id: &str) -> ObjectMeta {
        ObjectMeta {
            write_id: write_id.into(),
            etag: format!("etag of {write_id}"),
            ..Default::default()
        }
    }

    #[test]
    fn finds_a_write_by_id_and_key_and_forgets_the_oldest_first() {
        let mut recent = RecentWrites::default();
        recent.remember(b"k", &meta(""));
        recent.remember(b"k", &meta("w-0"));
        assert_eq!(recent.find(b"k", "w-0").unwrap().etag, "etag of w-0");
        assert!(recent.find(b"other", "w-0").is_none());
        assert!(recent.find(b"k", "").is_none());
        for i in 1..=RECENT_WRITES_MAX {
            recent.remember(b"k", &meta(&format!("w-{i}")));
        }
        assert!(recent.find(b"k", "w-0").is_none());
        assert!(recent.find(b"k", "w-1").is_some());
        assert!(recent
            .find(b"k", &format!("w-{RECENT_WRITES_MAX}"))
            .is_some());
    }
}
