//! A range's streams in the stream layer: their names, deleting them, and which range ids can
//! never serve again (so their streams may go). Below every module that reads or writes them.

use std::collections::BTreeSet;

use strata_stream::StreamClient;
use strata_types::RangeId;

use crate::error::PartitionError;

/// Where the range's three streams live, by name.
pub fn stream_names(range_id: RangeId) -> (String, String, String) {
    // RangeId displays as `range-<n>`: the names streams have always had.
    (
        format!("{range_id}/log"),
        format!("{range_id}/data"),
        format!("{range_id}/checkpoint"),
    )
}

/// After a child's first load: the parents' streams are no longer needed (the child's data
/// stream references the shared data extents). Best effort: a failure leaves garbage that the
/// next load of a child (whose checkpoint still names the parents) deletes.
pub async fn release_parents(streams: &StreamClient, child_id: RangeId, parents: &[RangeId]) {
    for &parent in parents {
        delete_streams_of(streams, parent).await;
    }
    tracing::info!(%child_id, ?parents, "parent ranges' streams released");
}

/// Deletes a range's log, data and checkpoint streams (extents another stream still holds
/// stay). Best effort: a failure is logged.
pub(crate) async fn delete_streams_of(streams: &StreamClient, range_id: RangeId) {
    let (log, data, checkpoint) = stream_names(range_id);
    for name in [log, data, checkpoint] {
        if let Err(err) = streams.delete_stream(&name).await {
            tracing::warn!(%range_id, stream = %name, %err, "deleting a range's stream failed");
        }
    }
}

/// What one committed partition map says about range ids, taken from one heartbeat answer
/// (which range ids' streams [`crate::leftovers`] may delete).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownIds {
    /// Every range of the map.
    pub live: BTreeSet<RangeId>,
    /// Ids handed out so far are below this; range 0: the manager did not say (nothing is free).
    pub next_range_id: RangeId,
    /// Reserved for splits and merges not committed yet.
    pub reserved: BTreeSet<RangeId>,
}

impl Default for KnownIds {
    /// Nothing known: no id is free.
    fn default() -> Self {
        KnownIds {
            live: BTreeSet::new(),
            next_range_id: RangeId::new(0),
            reserved: BTreeSet::new(),
        }
    }
}

impl KnownIds {
    /// The id can never serve again (see the module doc).
    pub fn is_free(&self, range_id: RangeId) -> bool {
        range_id < self.next_range_id
            && !self.live.contains(&range_id)
            && !self.reserved.contains(&range_id)
    }
}

pub(crate) fn stream_error(err: impl std::fmt::Display) -> PartitionError {
    PartitionError::Stream(err.to_string())
}
