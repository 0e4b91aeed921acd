//! Uploads in flight on a range: chunks appended to the data stream, not yet committed. See
//! [`crate::compaction`], which must not trim what they may have written.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use strata_types::ExtentId;

/// Uploads in flight (chunks appended, index entry not yet committed). Each registers the data
/// extent its chunks can land in at the earliest, so compaction never trims an extent that may
/// hold a chunk an upload is about to commit.
#[derive(Default)]
pub struct UploadRegistry {
    /// A lower bound of the data extent any append starting now lands in: the extent of the
    /// newest acknowledged data append (extents only move forward), or the stream's last
    /// extent when the range was loaded. Raw (an atomic); read through [`Self::floor`].
    pub(crate) data_extent_floor: AtomicU64,
    pub(crate) next_id: AtomicU64,
    /// upload id -> the floor when it began.
    pub(crate) active: Mutex<BTreeMap<u64, ExtentId>>,
}

impl UploadRegistry {
    /// The data extents uploads in flight may have written to start at one of these.
    pub(crate) fn floors(&self) -> Vec<ExtentId> {
        let active = self
            .active
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        active.values().copied().collect()
    }

    /// The current lower bound of the data extent an append lands in.
    pub(crate) fn floor(&self) -> ExtentId {
        ExtentId::new(self.data_extent_floor.load(Ordering::Acquire))
    }

    /// Raises the floor to `extent_id` (never lowers it).
    pub(crate) fn raise_floor(&self, extent_id: ExtentId) {
        self.data_extent_floor
            .fetch_max(extent_id.get(), Ordering::AcqRel);
    }
}

/// Held by an upload from before its first data append until after its commit: while it lives,
/// compaction keeps every data extent the upload may have written to.
pub struct UploadGuard {
    pub(crate) registry: Arc<UploadRegistry>,
    pub(crate) id: u64,
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        let mut active = self
            .registry
            .active
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        active.remove(&self.id);
    }
}
