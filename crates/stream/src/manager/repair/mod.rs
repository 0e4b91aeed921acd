//! The stream manager's repair loop, run by the leader: every pass derives the to-do list from
//! the metadata and the nodes' latest heartbeats (nothing else needs to survive a crash or a
//! change of leader), then
//! - seals open extents that lost a replica (or hold a bad one), at the commit length;
//! - brings back replicas of sealed extents held by returning nodes (seal a longer tail at the
//!   sealed length; re-copy a shorter or bad one), so sealed replicas are bitwise identical;
//! - copies sealed extents with a dead replica to a healthy node (on a rack holding none when
//!   there is one) and then swaps it into the replica set;
//! - moves one replica of a misplaced extent (2 on one rack) to a third rack once healthy;
//! - deletes surplus replicas (nodes no longer in the replica set) at once, replicas of
//!   extents the manager does not know and extents no stream references after a safety delay.
//!
//! Every step is idempotent. Copies run in the background, at most `concurrency` at a time,
//! each paced at `bandwidth_bytes_per_sec / concurrency`. A pass starts only once leadership
//! is confirmed by a quorum, and deletions confirm it again, so a deposed leader that has not
//! noticed yet never deletes on a stale view; metadata changes are proposals that name the
//! record they replace, so a race (repair against garbage collection) fails instead of
//! resurrecting a record.
//!
//! Files: [`view`] (what a pass sees and concludes per replica), `copy` (planning and running
//! background copies), `gc` (garbage and surplus replicas); this file runs the passes.

mod copy;
mod gc;
pub(crate) mod view;

use view::{Assessment, Condition, View};

use super::meta::ExtentRecord;
use super::placement::Candidate;
use super::state::{poisoned, ManagerState};
use crate::error::Result;
use crate::metrics;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use strata_proto::common::NodeAddr;
use strata_types::ExtentId;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub const REPAIR_CONCURRENCY_DEFAULT: usize = 4;
pub const REPAIR_BANDWIDTH_BYTES_PER_SEC_DEFAULT: u64 = 64 * 1024 * 1024;
pub const REPAIR_INTERVAL_MS_DEFAULT: u64 = 1_000;
pub const GC_DELAY_MS_DEFAULT: u64 = 60_000;

/// How the repair runs.
#[derive(Clone, Debug)]
pub struct RepairSettings {
    /// Replica copies in flight at most.
    pub concurrency: usize,
    /// Total copy bandwidth (0 = unbounded), shared equally by the copies in flight.
    pub bandwidth_bytes_per_sec: u64,
    /// Pause between two repair passes.
    pub interval_ms: u64,
    /// Safety delay before unreferenced extents and unknown replicas are deleted (keep it
    /// well above `interval_ms`).
    pub gc_delay_ms: u64,
}

impl Default for RepairSettings {
    fn default() -> Self {
        Self {
            concurrency: REPAIR_CONCURRENCY_DEFAULT,
            bandwidth_bytes_per_sec: REPAIR_BANDWIDTH_BYTES_PER_SEC_DEFAULT,
            interval_ms: REPAIR_INTERVAL_MS_DEFAULT,
            gc_delay_ms: GC_DELAY_MS_DEFAULT,
        }
    }
}

/// Runs repair passes every `settings.interval_ms` until `token` is cancelled; copies still
/// running then are aborted (their temporary files never become replicas).
pub async fn run(state: Arc<ManagerState>, settings: RepairSettings, token: CancellationToken) {
    let mut copies = JoinSet::new();
    let interval = Duration::from_millis(settings.interval_ms.max(10));
    loop {
        tokio::select! {
            _ = token.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        while copies.try_join_next().is_some() {}
        tokio::select! {
            _ = token.cancelled() => break,
            result = pass(&state, &settings, &mut copies) => {
                if let Err(err) = result {
                    tracing::warn!(%err, "repair pass failed");
                }
            }
        }
    }
    copies.abort_all();
    while copies.join_next().await.is_some() {}
}

/// One extent a pass works on: its id and its record.
#[derive(Clone, Copy)]
struct PassExtent<'a> {
    id: ExtentId,
    record: &'a ExtentRecord,
}

/// What every extent of one pass shares.
struct PassPlan {
    view: View,
    /// Healthy nodes with their replica counts: copy targets.
    candidates: Vec<Candidate>,
    concurrency: usize,
    rate_bytes_per_sec: u64,
    gc_delay: Duration,
}

/// One repair pass (see the module docs).
async fn pass(
    state: &Arc<ManagerState>,
    settings: &RepairSettings,
    copies: &mut JoinSet<()>,
) -> Result<()> {
    if !observe_leadership(state) {
        return Ok(());
    }
    if state.started.elapsed() < Duration::from_millis(state.settings.node_timeout_ms) {
        // Liveness is not known yet: every node would look dead.
        return Ok(());
    }
    state.confirm_leader().await?;
    state.update_gauges();
    let view = state.view()?;
    let extents = state.meta.extents()?;
    let concurrency = settings.concurrency.max(1);
    let plan = PassPlan {
        candidates: candidates(&view, &extents),
        view,
        concurrency,
        rate_bytes_per_sec: settings.bandwidth_bytes_per_sec / concurrency as u64,
        gc_delay: Duration::from_millis(settings.gc_delay_ms),
    };
    let (mut under_replicated, mut misplaced, mut bytes_left) = (0i64, 0i64, 0u64);
    let mut unreferenced = HashSet::new();

    for (extent_id, record) in &extents {
        let extent_id = *extent_id;
        if !plan.view.referenced.contains(&extent_id) {
            unreferenced.insert(extent_id);
            gc::collect_garbage(state, &plan.view, extent_id, record, plan.gc_delay).await?;
            continue;
        }
        let assessment = plan.view.assess(extent_id, record);
        if assessment.under_replicated {
            under_replicated += 1;
        }
        if assessment.misplaced && record.sealed {
            misplaced += 1;
        }
        bytes_left += assessment.bytes_left;
        if state.in_flight_target(extent_id)?.is_some() {
            continue;
        }
        if record.sealed {
            let extent = PassExtent {
                id: extent_id,
                record,
            };
            repair_sealed(state, &plan, copies, extent, assessment).await?;
        } else {
            repair_open(state, &plan, extent_id, record, &assessment).await;
        }
    }
    gc::delete_surplus(state, &plan.view, plan.gc_delay).await?;
    forget_stale_marks(state, &extents, &unreferenced)?;
    metrics::extents_under_replicated().set(under_replicated);
    metrics::extents_misplaced().set(misplaced);
    metrics::repair_bytes_left().set(bytes_left as i64);
    Ok(())
}

/// Resets the bookkeeping when leadership changes; true while this member leads.
fn observe_leadership(state: &ManagerState) -> bool {
    match state.leadership.observe(state.meta.group()) {
        strata_raft::group::Leadership::Follower { just_lost } => {
            if just_lost {
                // A later leadership starts over from the metadata and fresh heartbeats.
                if let Ok(mut tracking) = state.tracking.lock() {
                    *tracking = Default::default();
                }
                tracing::info!("no longer leading the stream manager group: repair stops");
            }
            false
        }
        strata_raft::group::Leadership::Leader { just_gained, .. } => {
            if just_gained {
                // Garbage timers count from this leadership only (bad-replica reports taken
                // as leader meanwhile are kept).
                if let Ok(mut tracking) = state.tracking.lock() {
                    tracking.unreferenced_since.clear();
                    tracking.unknown_since.clear();
                }
                tracing::info!("leading the stream manager group: repair starts");
            }
            true
        }
    }
}

/// The healthy nodes as copy targets, each with how many replicas it holds.
fn candidates(view: &View, extents: &[(ExtentId, ExtentRecord)]) -> Vec<Candidate> {
    let mut load: HashMap<String, usize> = HashMap::new();
    for (_, record) in extents {
        for replica in &record.replicas {
            *load.entry(replica.clone()).or_default() += 1;
        }
    }
    view.nodes
        .values()
        .filter(|n| view.healthy.contains(&n.node_id))
        .map(|n| Candidate {
            extents: load.get(&n.node_id).copied().unwrap_or(0),
            node: NodeAddr {
                node_id: n.node_id.clone(),
                addr: n.addr.clone(),
                rack: n.rack.clone(),
            },
        })
        .collect()
}

/// An open extent that lost a replica (or is placed on 2 racks while a third is healthy) is
/// sealed, so its writer moves on and the sealed extent can be repaired like any other.
async fn repair_open(
    state: &ManagerState,
    plan: &PassPlan,
    extent_id: ExtentId,
    record: &ExtentRecord,
    assessment: &Assessment,
) {
    let lost = assessment
        .conditions
        .iter()
        .any(|(_, c)| matches!(c, Condition::Dead | Condition::NeedsCopy));
    let reachable = assessment
        .conditions
        .iter()
        .any(|(_, c)| *c != Condition::Dead);
    // An open extent placed on 2 racks is sealed once a third rack is healthy, so the
    // writer moves to a well-placed extent and this one can be moved like any other.
    let replica_racks: HashSet<String> =
        record.replicas.iter().map(|n| plan.view.rack(n)).collect();
    let third_rack = assessment.misplaced
        && plan
            .candidates
            .iter()
            .any(|c| !replica_racks.contains(&c.node.rack));
    if (lost || third_rack) && reachable {
        if let Err(err) = state.seal_for_repair(&record.stream, extent_id).await {
            tracing::warn!(extent_id = extent_id.get(), %err, "could not seal an open extent for repair");
        }
    }
}

/// A sealed extent: re-check flagged replicas, seal returning ones at the sealed length, and
/// start the copy it needs (if any, and if a copy slot is free).
async fn repair_sealed(
    state: &Arc<ManagerState>,
    plan: &PassPlan,
    copies: &mut JoinSet<()>,
    extent: PassExtent<'_>,
    assessment: Assessment,
) -> Result<()> {
    let PassExtent {
        id: extent_id,
        record,
    } = extent;
    let Some(assessment) = recheck_flagged(state, &plan.view, extent_id, record, assessment).await
    else {
        return Ok(());
    };
    seal_returning(state, extent_id, record, &assessment).await?;
    let sources: Vec<NodeAddr> = assessment
        .conditions
        .iter()
        .filter(|(_, c)| *c == Condition::Good)
        .map(|(n, _)| state.node_addr(n))
        .collect::<Result<_>>()?;
    if sources.is_empty() {
        if assessment
            .conditions
            .iter()
            .any(|(_, c)| *c != Condition::NeedsSeal)
        {
            tracing::error!(
                extent_id = extent_id.get(),
                "no good replica to repair from"
            );
        }
        return Ok(());
    }
    if copies.len() >= plan.concurrency {
        return Ok(());
    }
    let job = copy::plan_copy(state, plan, extent, &assessment)?;
    if let Some((target, replace)) = job {
        {
            let mut tracking = state.tracking.lock().map_err(|_| poisoned())?;
            tracking
                .in_flight
                .insert(extent_id, (target.node_id.clone(), record.sealed_length));
            metrics::repair_copies_in_flight().set(tracking.in_flight.len() as i64);
        }
        tracing::info!(extent_id = extent_id.get(), target = %target.node_id, replace = ?replace, length = record.sealed_length, "repair copy started");
        copies.spawn(copy::run_copy(
            state.clone(),
            copy::CopyJob {
                extent_id,
                sealed_length: record.sealed_length,
                sources,
                target,
                replace,
                rate_bytes_per_sec: plan.rate_bytes_per_sec,
            },
        ));
    }
    Ok(())
}

/// Heartbeats may predate the seal: asks the replicas flagged by them directly. None when a
/// replica could not be asked (the extent is retried next pass).
async fn recheck_flagged(
    state: &ManagerState,
    view: &View,
    extent_id: ExtentId,
    record: &ExtentRecord,
    mut assessment: Assessment,
) -> Option<Assessment> {
    let mut unsure = false;
    for (node_id, condition) in assessment.conditions.iter_mut() {
        let flagged = matches!(condition, Condition::NeedsSeal | Condition::NeedsCopy);
        if !flagged || view.bad.contains(&(extent_id, node_id.clone())) {
            continue;
        }
        match state.replica_state(node_id, extent_id).await {
            Ok(Some((length, sealed))) => {
                *condition = if sealed && length == record.sealed_length {
                    Condition::Good
                } else if !sealed && length >= record.sealed_length {
                    Condition::NeedsSeal
                } else {
                    Condition::NeedsCopy
                };
            }
            Ok(None) => *condition = Condition::NeedsCopy,
            Err(err) => {
                tracing::debug!(extent_id = extent_id.get(), %node_id, %err, "replica state unknown; retried next pass");
                unsure = true;
            }
        }
    }
    if unsure {
        return None;
    }
    assessment.good = assessment
        .conditions
        .iter()
        .filter(|(_, c)| *c == Condition::Good)
        .count();
    Some(assessment)
}

/// Seals the replicas of returning nodes that hold an unsealed copy at least the sealed
/// length long, at the sealed length.
async fn seal_returning(
    state: &ManagerState,
    extent_id: ExtentId,
    record: &ExtentRecord,
    assessment: &Assessment,
) -> Result<()> {
    for (node_id, condition) in &assessment.conditions {
        if *condition == Condition::NeedsSeal {
            let node = state.node_addr(node_id)?;
            match state.seal_on(&node, extent_id, record.sealed_length).await {
                Ok(()) => {
                    tracing::info!(extent_id = extent_id.get(), %node_id, length = record.sealed_length, "returning replica sealed at the sealed length")
                }
                Err(err) => {
                    tracing::warn!(extent_id = extent_id.get(), %node_id, %err, "could not seal a returning replica")
                }
            }
        }
    }
    Ok(())
}

/// Drops marks of extents that are gone or referenced again, bad-replica reports of replicas
/// no longer in a replica set, and install times older than a node timeout.
fn forget_stale_marks(
    state: &ManagerState,
    extents: &[(ExtentId, ExtentRecord)],
    unreferenced: &HashSet<ExtentId>,
) -> Result<()> {
    let mut tracking = state.tracking.lock().map_err(|_| poisoned())?;
    tracking
        .unreferenced_since
        .retain(|id, _| unreferenced.contains(id));
    let known: HashSet<ExtentId> = extents.iter().map(|(id, _)| *id).collect();
    tracking.bad.retain(|(id, node)| {
        known.contains(id)
            && extents
                .iter()
                .any(|(e, r)| e == id && r.replicas.contains(node))
    });
    let grace = Duration::from_millis(state.settings.node_timeout_ms);
    tracking.installed_at.retain(|_, at| at.elapsed() <= grace);
    Ok(())
}
