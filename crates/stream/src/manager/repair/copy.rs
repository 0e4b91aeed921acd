//! Background replica copies: which copy a sealed extent needs ([`plan_copy`]), and running
//! one (the target node copies from a good replica, then the copy is swapped into the
//! replica set).

use super::super::placement::{pick_target, Candidate};
use super::super::state::{poisoned, ManagerState};
use super::view::{Assessment, Condition};
use super::{PassExtent, PassPlan};
use crate::channels::{bounded, request_with_timeout, CONTROL_RPC_TIMEOUT_MS};
use crate::error::Result;
use crate::metrics;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;
use strata_proto::common::NodeAddr;
use strata_proto::stream::CopyExtentRequest;
use strata_types::ExtentId;

/// Copy rate assumed when bandwidth is unbounded, to size a copy's deadline.
const COPY_RATE_FLOOR_BYTES_PER_SEC: u64 = 16 * 1024 * 1024;
/// Slack on top of a copy's expected duration before it is abandoned.
const COPY_SLACK_MS: u64 = 30_000;

/// One background copy.
pub(super) struct CopyJob {
    pub(super) extent_id: ExtentId,
    pub(super) sealed_length: u64,
    pub(super) sources: Vec<NodeAddr>,
    pub(super) target: NodeAddr,
    /// Node to swap out of the replica set once the copy is installed (None: in place).
    pub(super) replace: Option<String>,
    pub(super) rate_bytes_per_sec: u64,
}

pub(super) async fn run_copy(state: Arc<ManagerState>, job: CopyJob) {
    let result = copy_and_swap(&state, &job).await;
    if let Err(err) = &result {
        tracing::warn!(extent_id = job.extent_id.get(), target = %job.target.node_id, %err, "repair copy failed; retried on a later pass");
    }
    if let Ok(mut tracking) = state.tracking.lock() {
        tracking.in_flight.remove(&job.extent_id);
        metrics::repair_copies_in_flight().set(tracking.in_flight.len() as i64);
    }
}

async fn copy_and_swap(state: &ManagerState, job: &CopyJob) -> Result<()> {
    let effective_rate = match job.rate_bytes_per_sec {
        0 => COPY_RATE_FLOOR_BYTES_PER_SEC,
        rate => rate,
    };
    let expected_ms = job.sealed_length.saturating_mul(1000) / effective_rate;
    let timeout_ms = CONTROL_RPC_TIMEOUT_MS + expected_ms.saturating_mul(2) + COPY_SLACK_MS;
    let mut last_error = None;
    let mut copied = false;
    for source in &job.sources {
        let mut client = state.channels.extent_node_long(&job.target.addr)?;
        let request = CopyExtentRequest {
            extent_id: job.extent_id.get(),
            source_addr: source.addr.clone(),
            sealed_length: job.sealed_length,
            rate_bytes_per_sec: job.rate_bytes_per_sec,
        };
        let call = client.copy_extent(request_with_timeout(request, timeout_ms));
        match bounded(&job.target.addr, timeout_ms, call).await {
            Ok(_) => {
                copied = true;
                break;
            }
            Err(err) => {
                tracing::warn!(extent_id = job.extent_id.get(), source = %source.node_id, target = %job.target.node_id, %err, "copy from this source failed");
                last_error = Some(err);
            }
        }
    }
    if !copied {
        return Err(last_error.unwrap_or_else(|| {
            crate::StreamError::Unavailable(format!("no source for {}", job.extent_id))
        }));
    }
    metrics::repair_bytes_copied().inc_by(job.sealed_length);
    let kept = match &job.replace {
        Some(old) => {
            state
                .swap_replica(job.extent_id, job.sealed_length, old, &job.target.node_id)
                .await?
        }
        None => true,
    };
    if kept {
        metrics::extents_repaired().inc();
        let mut tracking = state.tracking.lock().map_err(|_| poisoned())?;
        tracking
            .bad
            .remove(&(job.extent_id, job.target.node_id.clone()));
        tracking
            .installed_at
            .insert((job.extent_id, job.target.node_id.clone()), Instant::now());
        drop(tracking);
        if let Ok(mut liveness) = state.liveness.lock() {
            if let Some(live) = liveness.get_mut(&job.target.node_id) {
                live.extents
                    .insert(job.extent_id, (job.sealed_length, true));
            }
        }
        tracing::info!(extent_id = job.extent_id.get(), target = %job.target.node_id, replaced = ?job.replace, "extent replica repaired");
    }
    Ok(())
}

/// Which copy (target, node to swap out) a sealed extent needs, in order: rewrite a replica
/// in place (short, bad or missing on a healthy node), replace a dead one, move a doubled one
/// to a third rack.
pub(super) fn plan_copy(
    state: &ManagerState,
    plan: &PassPlan,
    extent: PassExtent<'_>,
    assessment: &Assessment,
) -> Result<Option<(NodeAddr, Option<String>)>> {
    let (view, record) = (&plan.view, extent.record);
    let free: Vec<Candidate> = plan
        .candidates
        .iter()
        .filter(|c| !record.replicas.contains(&c.node.node_id))
        .cloned()
        .collect();
    if let Some((node_id, _)) = assessment
        .conditions
        .iter()
        .find(|(_, c)| *c == Condition::NeedsCopy)
    {
        return Ok(Some((state.node_addr(node_id)?, None)));
    }
    if let Some((dead, _)) = assessment
        .conditions
        .iter()
        .find(|(_, c)| *c == Condition::Dead)
    {
        let kept: Vec<String> = record
            .replicas
            .iter()
            .filter(|n| *n != dead)
            .map(|n| view.rack(n))
            .collect();
        return Ok(pick_target(&free, &kept, false).map(|t| (t, Some(dead.clone()))));
    }
    if assessment.misplaced && assessment.good == record.replicas.len() {
        // Move one replica of the doubled rack: the last one listed there.
        let mut seen = HashSet::new();
        let doubled = record
            .replicas
            .iter()
            .filter(|n| !seen.insert(view.rack(n)))
            .last()
            .cloned();
        if let Some(doubled) = doubled {
            let kept: Vec<String> = record
                .replicas
                .iter()
                .filter(|n| **n != doubled)
                .map(|n| view.rack(n))
                .collect();
            if let Some(target) = pick_target(&free, &kept, true) {
                tracing::info!(extent_id = extent.id.get(), moving = %doubled, to_rack = %target.rack, "misplaced extent: moving a replica to a third rack");
                return Ok(Some((target, Some(doubled))));
            }
        }
    }
    Ok(None)
}
