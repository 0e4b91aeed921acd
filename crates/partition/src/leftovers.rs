//! Deletes the streams of ranges that can never serve (issue 12, item 8).
//!
//! A split or merge prepares its children's streams before the manager commits it
//! ([`crate::reshape`]); a child's data stream shares every sealed data extent of its parents.
//! When the commit never applies (the manager failed over between prepare and commit, the
//! commit was rejected or failed), nothing referred to those streams again, and the stream
//! layer frees only extents no stream references: every shared parent extent stayed on disk
//! for good, even after the parent's compaction had moved its live chunks away. Parents' streams
//! whose child's first load failed to delete them were leaked the same way.
//!
//! Each partition server now runs a pass every [`LEFTOVER_PASS_INTERVAL_MS`]: it lists the
//! `range-<id>/...` streams and deletes those of every id that is **free** in the partition map
//! of its last heartbeat: below the map's next range id (handed out), not a range of the map,
//! and not reserved for a split or merge in flight. Being free never ends: ids are never
//! handed out twice, a range that left the map never returns, and a split or merge commits only
//! ids still reserved (the manager releases the reservation of one that failed, and every
//! reservation older than two minutes, before anything is deleted). So deleting on any map the
//! manager ever committed is safe, however stale, and the children of a reshape in progress
//! (reserved) or just committed (in the map) are never touched.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use strata_stream::StreamClient;
use strata_types::RangeId;
use tokio_util::sync::CancellationToken;

use crate::error::PartitionError;
use crate::server::PartitionServerState;
pub use crate::streams::KnownIds;
use crate::streams::{delete_streams_of, stream_error};

/// How often a server looks for leftover streams.
pub const LEFTOVER_PASS_INTERVAL_MS: u64 = 60_000;
/// Every range stream's name starts with this (see [`crate::streams::stream_names`]).
const RANGE_STREAM_PREFIX: &str = "range-";

/// The range id of a range stream's name (`range-<id>/<kind>`).
fn range_id_of(name: &str) -> Option<RangeId> {
    let rest = name.strip_prefix(RANGE_STREAM_PREFIX)?;
    let (id, _) = rest.split_once('/')?;
    id.parse().ok().map(RangeId::new)
}

/// Deletes the streams of every free range id; returns those ids, in order.
pub async fn collect(
    streams: &StreamClient,
    known: &KnownIds,
) -> Result<Vec<RangeId>, PartitionError> {
    let names = streams
        .list_streams(RANGE_STREAM_PREFIX)
        .await
        .map_err(stream_error)?;
    let free: BTreeSet<RangeId> = names
        .iter()
        .filter_map(|name| range_id_of(name))
        .filter(|id| known.is_free(*id))
        .collect();
    for &range_id in &free {
        delete_streams_of(streams, range_id).await;
        tracing::info!(
            %range_id,
            "streams of a range that can never serve deleted (a reshape's leftovers)"
        );
    }
    Ok(free.into_iter().collect())
}

/// Runs [`collect`] every [`LEFTOVER_PASS_INTERVAL_MS`] on the map of the last heartbeat,
/// until `token` is cancelled.
pub async fn run_leftover_collection(state: Arc<PartitionServerState>, token: CancellationToken) {
    let interval = Duration::from_millis(LEFTOVER_PASS_INTERVAL_MS);
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        let known = state.known_ids();
        if known.next_range_id == RangeId::new(0) {
            continue;
        }
        if let Err(err) = collect(&state.streams, &known).await {
            tracing::warn!(%err, "looking for leftover range streams failed; next pass retries");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_handed_out_ids_that_are_neither_live_nor_reserved_are_free() {
        let known = KnownIds {
            live: [RangeId::new(1), RangeId::new(4)].into(),
            next_range_id: RangeId::new(6),
            reserved: [RangeId::new(5)].into(),
        };
        let free: Vec<u64> = (0..8)
            .filter(|id| known.is_free(RangeId::new(*id)))
            .collect();
        assert_eq!(free, vec![0, 2, 3]);
        assert!(!KnownIds::default().is_free(RangeId::new(0)));
    }

    #[test]
    fn range_ids_are_read_from_stream_names() {
        assert_eq!(range_id_of("range-12/data"), Some(RangeId::new(12)));
        assert_eq!(range_id_of("range-12"), None);
        assert_eq!(range_id_of("range-x/log"), None);
        assert_eq!(range_id_of("other-1/log"), None);
    }
}
