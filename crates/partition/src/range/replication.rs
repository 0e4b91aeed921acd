//! A range's replication cursors (see [`crate::replication_cursors`]): read without the commit
//! lock, committed in the range's own log (an entry of origin REPLICATION that changes no
//! key), so they are exactly as durable, and as fenced, as the range's writes.

use std::sync::atomic::Ordering;

use strata_proto::common::ReplicationStatus;

use crate::error::PartitionError;
use crate::index::{Change, IndexValue};
use crate::records::{CommitOrigin, LogEntry, ObjectRecord, ReplicationCursors};
use crate::replication_backlog::{Backlog, Owed, ScanKeeper, OWED_MAX};
use crate::replication_cursors::{check_advance, normalized, watermark_ms};

use super::Range;

/// The version an index row holds, with its bucket and key, when it is PENDING.
fn pending_row<'v>(index_key: &[u8], value: &'v IndexValue) -> Option<(Owed, &'v ObjectRecord)> {
    let record = match value {
        IndexValue::Object(record) | IndexValue::Version(record) => record,
        _ => return None,
    };
    if record.replication_status != ReplicationStatus::Pending as i32 {
        return None;
    }
    let (bucket, key) = strata_types::keys::decode_object_key(index_key)
        .or_else(|| strata_types::keys::decode_version_key(index_key).map(|(b, k, _)| (b, k)))?;
    let owed = Owed {
        mark_ms: record.replication_mark_ms,
        bucket: bucket.to_string(),
        key: key.to_string(),
        version_id: record.version_id.clone(),
        size_bytes: record.size_bytes,
    };
    Some((owed, record))
}

impl Range {
    /// The clock value a version marked PENDING now gets (`ObjectRecord.replication_mark_ms`):
    /// never below the range's clock, so never below a watermark already set. Call it with
    /// the commit lock held, as the write that marks the version does.
    pub fn mark_clock_ms(&self) -> i64 {
        strata_util::now_ms().max(self.clock_ms.load(Ordering::Acquire))
    }

    /// The range's replication cursors as last committed.
    pub fn replication_cursors(&self) -> ReplicationCursors {
        self.replication
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// The watermark of `bucket` in this range: its versions marked below it have arrived.
    pub fn replication_watermark_ms(&self, bucket: &str) -> i64 {
        let cursors = self
            .replication
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        watermark_ms(&cursors, bucket)
    }

    /// Commits `cursors` as the range's replication progress. Refused (nothing written) when
    /// a watermark would pass the range's clock: a version marked after that would count as
    /// arrived before it was shipped.
    pub async fn commit_replication_cursors(
        &self,
        cursors: ReplicationCursors,
    ) -> Result<(), PartitionError> {
        let mut state = self.lock_commits().await;
        check_advance(&cursors, state.committed_ms).map_err(PartitionError::InvalidArgument)?;
        let cursors = normalized(cursors);
        if cursors == state.replication {
            return Ok(()); // nothing new to make durable
        }
        let entry = LogEntry {
            origin: CommitOrigin::Replication as i32,
            replication: Some(cursors),
            ..Default::default()
        };
        self.append_entry(&mut state, entry, Vec::new()).await
    }

    /// The PENDING versions a commit of `origin` writes that the range owes: not a
    /// compaction's re-pointed rows, nor a demoted version below its watermark (both were owed
    /// before, or shipped); a move's imported rows whatever their mark (see
    /// [`Self::cursors_owing`]).
    pub(super) fn owed_in(&self, changes: &[Change], origin: i32) -> Vec<Owed> {
        if origin == CommitOrigin::Compaction as i32 {
            return Vec::new();
        }
        let imported = origin == CommitOrigin::MoveImport as i32;
        let cursors = self.replication_cursors();
        changes
            .iter()
            .filter_map(|(index_key, value)| value.as_ref().and_then(|v| pending_row(index_key, v)))
            .map(|(owed, _)| owed)
            .filter(|owed| imported || owed.mark_ms >= watermark_ms(&cursors, &owed.bucket))
            .collect()
    }

    /// Adds versions a commit made owed to the backlog (under the commit lock, after the index
    /// took them and before the clock moves past their marks).
    pub(super) fn note_owed(&self, owed: Vec<Owed>) {
        if owed.is_empty() {
            return;
        }
        let mut backlog = self.backlog();
        for version in owed {
            backlog.note(version);
        }
        drop(backlog);
        self.owed_noted.notify_one();
    }

    /// Completes when a commit added owed versions since the last time it completed.
    pub async fn owed_noted(&self) {
        self.owed_noted.notified().await;
    }

    /// The cursors a commit of `origin` must carry with `changes`, if any: a bucket move's
    /// import brings PENDING versions marked on the old home's clock, which the old home may
    /// not have shipped; their bucket's watermark is lowered below them in the same commit, so
    /// they stay owed after any reload (the destination's apply is idempotent, so one shipped
    /// already only costs an offer).
    pub(super) fn cursors_owing(
        &self,
        committed: &ReplicationCursors,
        changes: &[Change],
        origin: CommitOrigin,
    ) -> Option<ReplicationCursors> {
        if origin != CommitOrigin::MoveImport {
            return None;
        }
        let mut lowered = committed.clone();
        for (index_key, value) in changes {
            let Some((owed, _)) = value.as_ref().and_then(|v| pending_row(index_key, v)) else {
                continue;
            };
            if owed.mark_ms < watermark_ms(&lowered, &owed.bucket) {
                lowered.lagging.insert(owed.bucket, owed.mark_ms);
            }
        }
        (lowered != *committed).then(|| normalized(lowered))
    }

    /// The backlog, locked (never held across an await).
    pub fn backlog(&self) -> std::sync::MutexGuard<'_, Backlog> {
        self.backlog
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Fills the backlog from the index: every PENDING version marked at or above its
    /// bucket's watermark, the lowest [`OWED_MAX`] of them. Runs without the commit lock:
    /// commits during the scan note their versions themselves.
    pub fn scan_owed(&self) {
        self.backlog().begin_scan();
        let cursors = self.replication_cursors();
        let mut keeper = ScanKeeper::new(OWED_MAX);
        self.scan(b"", None, |index_key, value| {
            if let Some((owed, _)) = pending_row(index_key, value) {
                if owed.mark_ms >= watermark_ms(&cursors, &owed.bucket) {
                    keeper.offer(owed);
                }
            }
            true
        });
        let (found, left_out_ms) = keeper.finish();
        self.backlog().end_scan(found, left_out_ms);
    }

    /// The cursors the backlog allows now (None before the first scan): the clock is read
    /// first (see [`crate::replication_backlog`]).
    pub fn current_watermarks(&self) -> Option<ReplicationCursors> {
        let clock_ms = self.clock_ms();
        self.backlog().watermarks(clock_ms)
    }

    /// The watermarks a reader may be told (`x-strata-replicated-through`): every covered
    /// version acknowledged before them has arrived. Unlike [`Self::current_watermarks`]
    /// (which are committed, and so never pass the clock), an idle range's rise with wall time:
    /// `now_ms` is read before the backlog, and a commit notes its version in the backlog
    /// before it is acknowledged, so a version acknowledged before `now_ms` is in the backlog
    /// read after it, or arrived. None until the range's owed versions were scanned.
    pub fn watermarks_for_readers(&self) -> Option<ReplicationCursors> {
        let now_ms = strata_util::now_ms();
        self.backlog().watermarks(now_ms)
    }

    /// Makes committed cursors visible to readers without the commit lock.
    pub(super) fn show_replication(&self, cursors: &ReplicationCursors) {
        *self
            .replication
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = cursors.clone();
    }
}
