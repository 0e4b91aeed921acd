//! Garbage collection: extents no stream references and replicas nodes should not hold
//! (surplus or of unknown extents), deleted after checks that keep a live replica safe.

use super::super::meta::{ExtentRecord, Mutation};
use super::super::state::{poisoned, ManagerState};
use super::view::View;
use crate::error::Result;
use crate::metrics;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use strata_types::ExtentId;

/// Deletes an extent no stream references once it has been unreferenced for the safety delay:
/// from every healthy replica first (idempotent), then its record.
pub(super) async fn collect_garbage(
    state: &ManagerState,
    view: &View,
    extent_id: ExtentId,
    record: &ExtentRecord,
    gc_delay: Duration,
) -> Result<()> {
    let since = {
        let mut tracking = state.tracking.lock().map_err(|_| poisoned())?;
        *tracking
            .unreferenced_since
            .entry(extent_id)
            .or_insert_with(Instant::now)
    };
    if since.elapsed() < gc_delay || state.in_flight_target(extent_id)?.is_some() {
        return Ok(());
    }
    state.confirm_leader().await?;
    let mut all_deleted = true;
    for node_id in &record.replicas {
        if !view.healthy.contains(node_id) {
            // Deleted as an unknown replica when the node returns.
            continue;
        }
        let node = state.node_addr(node_id)?;
        match state.delete_on(extent_id, &node).await {
            Ok(()) => metrics::replicas_deleted().inc(),
            Err(err) => {
                tracing::warn!(extent_id = extent_id.get(), %node_id, %err, "garbage replica not deleted yet");
                all_deleted = false;
            }
        }
    }
    if all_deleted {
        let removal = Mutation::Extent {
            extent_id,
            expected: Some(record.clone()),
            record: None,
        };
        if let Err(err) = state.meta.commit(vec![removal]).await {
            tracing::warn!(extent_id = extent_id.get(), %err, "garbage extent record not removed yet");
            return Ok(());
        }
        metrics::extents_deleted().inc();
        metrics::extents().set(state.meta.extent_count() as i64);
        if let Ok(mut tracking) = state.tracking.lock() {
            tracking.unreferenced_since.remove(&extent_id);
        }
        tracing::info!(
            extent_id = extent_id.get(),
            "unreferenced extent garbage-collected"
        );
    }
    Ok(())
}

/// Deletes replicas healthy nodes hold but should not: surplus ones (the node is not in the
/// extent's replica set any more) at once, ones of extents the manager does not know after
/// the safety delay. Metadata is re-read right before each deletion, after checking no copy
/// to that node is under way, so a copy just swapped in is never taken for surplus.
pub(super) async fn delete_surplus(
    state: &ManagerState,
    view: &View,
    gc_delay: Duration,
) -> Result<()> {
    state.confirm_leader().await?;
    let mut unknown_seen = HashSet::new();
    for (node_id, extents) in &view.reports {
        for &extent_id in extents.keys() {
            if state.in_flight_target(extent_id)?.as_deref() == Some(node_id.as_str()) {
                continue;
            }
            let delete = match state.meta.extent(extent_id)? {
                Some(record) if record.replicas.contains(node_id) => false,
                Some(_) => {
                    tracing::info!(extent_id = extent_id.get(), %node_id, "surplus replica (replaced while away or moved); deleting");
                    true
                }
                None => {
                    let key = (node_id.clone(), extent_id);
                    unknown_seen.insert(key.clone());
                    let mut tracking = state.tracking.lock().map_err(|_| poisoned())?;
                    let since = *tracking
                        .unknown_since
                        .entry(key)
                        .or_insert_with(Instant::now);
                    let due = since.elapsed() >= gc_delay;
                    if due {
                        tracing::info!(extent_id = extent_id.get(), %node_id, "replica of an unknown extent past the safety delay; deleting");
                    }
                    due
                }
            };
            if !delete {
                continue;
            }
            let node = state.node_addr(node_id)?;
            match state.delete_on(extent_id, &node).await {
                Ok(()) => {
                    metrics::replicas_deleted().inc();
                    if let Ok(mut liveness) = state.liveness.lock() {
                        if let Some(live) = liveness.get_mut(node_id) {
                            live.extents.remove(&extent_id);
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(extent_id = extent_id.get(), %node_id, %err, "could not delete a replica")
                }
            }
        }
    }
    let mut tracking = state.tracking.lock().map_err(|_| poisoned())?;
    tracking
        .unknown_since
        .retain(|key, _| unknown_seen.contains(key));
    Ok(())
}
