//! Splitting and merging ranges without copying object data.
//!
//! The manager asks the owner to prepare (`PrepareReshape`): the parents are frozen (new
//! requests are refused with "frozen", which front-ends retry), uploads in flight finish, then
//! nothing commits any more. Each parent's data stream is sealed, so every data extent its
//! index references is sealed; each child gets a data stream made of all the parents' sealed
//! data extents (`CreateStream`: the extents are shared, not copied, and stay until no stream
//! references them) and a first checkpoint of its part of the parents' index, marked
//! `derived_from` the parents. The manager then commits the split or merge in its Raft log
//! (only if the parents' epochs are unchanged), and the server loads the children from those
//! checkpoints; a child's first load deletes the parents' streams.
//!
//! Safety: the children hold exactly the parents' final index because the parents commit
//! nothing after they are frozen, and they stay frozen until the map replaces them. If the
//! manager never commits (it failed over, or the prepare failed), it renews the parents (same
//! owner, next epoch): the server reloads them from their own streams, and the prepared
//! children, whose ids are never used again, are left unreferenced.

use std::time::{Duration, Instant};

use crate::records::CheckpointBegin;
use strata_proto::partition::{PrepareReshapeRequest, PrepareReshapeResponse, ReshapeChild};
use strata_stream::StreamClient;
use strata_types::RangeId;

use crate::error::PartitionError;
use crate::persist::write_checkpoint;
use crate::range::{RangeRef, FREEZE_DRAINING, FREEZE_FROZEN, FREEZE_OPEN};
use crate::server::PartitionServerState;
use crate::streams::{delete_streams_of, stream_error, stream_names};

/// Longest wait for uploads in flight to finish before a prepare gives up (and unfreezes).
const DRAIN_TIMEOUT_MS: u64 = 5_000;
const DRAIN_POLL_MS: u64 = 10;

/// See the module doc and the `PrepareReshape` RPC.
pub async fn prepare(
    state: &PartitionServerState,
    request: PrepareReshapeRequest,
) -> Result<PrepareReshapeResponse, PartitionError> {
    let parents = validate(state, &request)?;
    for parent in &parents {
        if parent.freeze_state() != FREEZE_OPEN {
            return Err(PartitionError::InvalidArgument(format!(
                "{} is already frozen for another reshape (it is renewed first)",
                parent.bounds.range_id
            )));
        }
    }
    prepare_ranges(&state.streams, &parents, &request.children).await
}

/// Freezes `parents` and builds `children` from them (the part of [`prepare`] after the
/// request was checked against what this server serves). On failure the parents serve again:
/// the manager commits a reshape only on success.
pub async fn prepare_ranges(
    streams: &StreamClient,
    parents: &[RangeRef],
    children: &[ReshapeChild],
) -> Result<PrepareReshapeResponse, PartitionError> {
    for parent in parents {
        parent.set_freeze(FREEZE_DRAINING);
    }
    let result = freeze_and_build(streams.clone(), parents, children).await;
    if let Err(err) = &result {
        tracing::warn!(%err, "preparing a reshape failed; parents unfrozen");
        for parent in parents {
            parent.set_freeze(FREEZE_OPEN);
        }
        // The children will never be committed: drop what was built of them, so the shared
        // extents are not kept alive by them. Best effort.
        for child in children {
            delete_streams_of(streams, RangeId::new(child.range_id)).await;
        }
    }
    result
}

/// The parents, served here under the epochs the manager saw, adjacent, covered exactly by
/// adjacent non-empty children.
fn validate(
    state: &PartitionServerState,
    request: &PrepareReshapeRequest,
) -> Result<Vec<RangeRef>, PartitionError> {
    let shape_ok = matches!(
        (request.parents.len(), request.children.len()),
        (1, 2) | (2, 1)
    );
    if !shape_ok {
        return Err(PartitionError::InvalidArgument(
            "a reshape is one parent into two children or two parents into one".into(),
        ));
    }
    let mut parents = Vec::with_capacity(request.parents.len());
    for wanted in &request.parents {
        let range = state
            .ready_range(RangeId::new(wanted.range_id))
            .filter(|range| range.bounds.epoch.get() == wanted.epoch)
            .ok_or_else(|| {
                PartitionError::InvalidArgument(format!(
                    "range {} under epoch {} is not served here",
                    wanted.range_id, wanted.epoch
                ))
            })?;
        parents.push(range);
    }
    let adjacent_parents = parents
        .windows(2)
        .all(|pair| !pair[0].bounds.high.is_empty() && pair[0].bounds.high == pair[1].bounds.low);
    let children = &request.children;
    let adjacent_children = children
        .windows(2)
        .all(|pair| !pair[0].high.is_empty() && pair[0].high == pair[1].low);
    let non_empty = children
        .iter()
        .all(|child| child.high.is_empty() || child.low < child.high);
    let low = &parents[0].bounds.low;
    let high = &parents[parents.len() - 1].bounds.high;
    let covered = children[0].low == *low && children[children.len() - 1].high == *high;
    // An object's uploads, parts and versions must stay in the object's range.
    let whole_objects = children
        .iter()
        .skip(1)
        .all(|child| strata_types::keys::split_point(&child.low) == child.low);
    let fresh_ids = children.iter().all(|child| {
        child.range_id != 0 && request.parents.iter().all(|p| p.range_id != child.range_id)
    });
    if !(adjacent_parents
        && adjacent_children
        && non_empty
        && covered
        && whole_objects
        && fresh_ids)
    {
        return Err(PartitionError::InvalidArgument(
            "children must be fresh, adjacent, non-empty and cover the parents exactly".into(),
        ));
    }
    Ok(parents)
}

async fn freeze_and_build(
    streams: StreamClient,
    parents: &[RangeRef],
    children: &[ReshapeChild],
) -> Result<PrepareReshapeResponse, PartitionError> {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(DRAIN_TIMEOUT_MS);
    for parent in parents {
        while parent.uploads_in_flight() > 0 {
            if Instant::now() >= deadline {
                return Err(PartitionError::Frozen {
                    range_id: parent.bounds.range_id,
                });
            }
            tokio::time::sleep(Duration::from_millis(DRAIN_POLL_MS)).await;
        }
    }
    let (mut sequence, mut committed_ms) = (0, 0);
    for parent in parents {
        // Taking the commit lock waits out a commit already under way; none starts after.
        let guard = parent.lock_commits().await;
        parent.set_freeze(FREEZE_FROZEN);
        drop(guard);
        sequence = sequence.max(parent.sequence().await);
        // The children's clock goes on from the parents': it never runs back along a key.
        committed_ms = committed_ms.max(parent.clock_ms());
    }
    let mut data_extents = Vec::new();
    for parent in parents {
        data_extents.extend(parent.seal_data().await?);
    }
    data_extents.sort_unstable();
    data_extents.dedup();
    let derived_from: Vec<u64> = parents.iter().map(|p| p.bounds.range_id.get()).collect();
    // Per bucket the lowest of the parents' watermarks: the child ships again what one parent
    // had shipped and the other had not, and skips nothing (their marks live on in its index).
    let parent_cursors: Vec<_> = parents.iter().map(|p| p.replication_cursors()).collect();
    let replication = crate::replication_cursors::merged(&parent_cursors);
    let mut child_keys = Vec::with_capacity(children.len());
    for child in children {
        let (_, data_name, checkpoint_name) = stream_names(RangeId::new(child.range_id));
        streams
            .create_stream(&data_name, &data_extents)
            .await
            .map_err(stream_error)?;
        let mut entries = Vec::new();
        for parent in parents {
            entries.extend(parent.entries_between(&child.low, &child.high));
        }
        entries.retain(|(key, _)| strata_types::keys::range_contains(&child.low, &child.high, key));
        child_keys.push(entries.len() as u64);
        let writer = streams.open(&checkpoint_name).await.map_err(stream_error)?;
        let begin = CheckpointBegin {
            checkpoint_id: sequence,
            sequence,
            log_extent_id: 0,
            log_offset: 0,
            range_id: child.range_id,
            low: child.low.clone(),
            high: child.high.clone(),
            derived_from: derived_from.clone(),
            committed_ms,
            replication: Some(replication.clone()),
        };
        // The parents' recent writes in the child's bounds go along, so a retry of a write
        // made just before the reshape is still answered with it by the child.
        let mut recent = Vec::new();
        for parent in parents {
            recent.extend(parent.recent_writes_between(&child.low, &child.high));
        }
        write_checkpoint(&writer, begin, entries, recent).await?;
    }
    tracing::info!(
        parents = ?derived_from,
        children = ?children.iter().map(|c| c.range_id).collect::<Vec<_>>(),
        ?child_keys,
        shared_data_extents = data_extents.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "reshape prepared; parents frozen until the manager commits it"
    );
    Ok(PrepareReshapeResponse { child_keys })
}
