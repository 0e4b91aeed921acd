//! A range's replication cursors (see [`crate::replication_cursors`]): read without the commit
//! lock, committed in the range's own log (an entry of origin REPLICATION that changes no
//! key), so they are exactly as durable, and as fenced, as the range's writes.

use std::sync::atomic::Ordering;

use crate::error::PartitionError;
use crate::records::{CommitOrigin, LogEntry, ReplicationCursors};
use crate::replication_cursors::{check_advance, normalized, watermark_ms};

use super::Range;

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

    /// Makes committed cursors visible to readers without the commit lock.
    pub(super) fn show_replication(&self, cursors: &ReplicationCursors) {
        *self
            .replication
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = cursors.clone();
    }
}
