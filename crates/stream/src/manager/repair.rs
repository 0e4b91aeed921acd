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

use super::meta::{ExtentRecord, Mutation, NodeRecord};
use super::placement::{pick_target, Candidate, REPLICAS};
use super::state::{poisoned, ManagerState};
use crate::channels::{bounded, request_with_timeout, CONTROL_RPC_TIMEOUT_MS};
use crate::error::Result;
use crate::metrics;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_proto::common::NodeAddr;
use strata_proto::stream::{CopyExtentRequest, ExtentInfoRequest, SealRequest};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub const REPAIR_CONCURRENCY_DEFAULT: usize = 4;
pub const REPAIR_BANDWIDTH_BYTES_PER_SEC_DEFAULT: u64 = 64 * 1024 * 1024;
pub const REPAIR_INTERVAL_MS_DEFAULT: u64 = 1_000;
pub const GC_DELAY_MS_DEFAULT: u64 = 60_000;
/// Copy rate assumed when bandwidth is unbounded, to size a copy's deadline.
const COPY_RATE_FLOOR_BYTES_PER_SEC: u64 = 16 * 1024 * 1024;
/// Slack on top of a copy's expected duration before it is abandoned.
const COPY_SLACK_MS: u64 = 30_000;

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

/// The state of one replica of an extent, as the repair sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Condition {
    /// Healthy node, full sealed length, sealed (or, for an open extent, reported), not bad.
    Good,
    /// Healthy node holding an unsealed copy at least the sealed length long: seal it there.
    NeedsSeal,
    /// Healthy node whose copy is short, sealed at another length, missing or bad: re-copy.
    NeedsCopy,
    /// The node is not healthy.
    Dead,
}

/// A snapshot of what the manager knows: nodes, liveness, heartbeat reports, marks.
pub(super) struct View {
    pub healthy: HashSet<String>,
    pub nodes: HashMap<String, NodeRecord>,
    /// node id -> extent id -> (length, sealed), healthy nodes only.
    pub reports: HashMap<String, HashMap<u64, (u64, bool)>>,
    pub bad: HashSet<(u64, String)>,
    pub recently_installed: HashSet<(u64, String)>,
    pub referenced: HashSet<u64>,
}

/// What a pass (or GetStatus) concludes about one referenced extent.
pub(super) struct Assessment {
    pub conditions: Vec<(String, Condition)>,
    pub good: usize,
    pub under_replicated: bool,
    pub misplaced: bool,
    pub bytes_left: u64,
}

impl View {
    pub fn rack(&self, node_id: &str) -> String {
        self.nodes
            .get(node_id)
            .map(|n| n.rack.clone())
            .unwrap_or_default()
    }

    pub fn condition(&self, extent_id: u64, record: &ExtentRecord, node_id: &str) -> Condition {
        if !self.healthy.contains(node_id) {
            return Condition::Dead;
        }
        let bad = self.bad.contains(&(extent_id, node_id.to_string()));
        let reported = self
            .reports
            .get(node_id)
            .and_then(|r| r.get(&extent_id))
            .copied();
        if !record.sealed {
            // A fresh extent may not be in a heartbeat yet: only a bad mark counts against it.
            return if bad {
                Condition::NeedsCopy
            } else {
                Condition::Good
            };
        }
        match reported {
            _ if bad => Condition::NeedsCopy,
            Some((length, true)) if length == record.sealed_length => Condition::Good,
            Some((length, false)) if length >= record.sealed_length => Condition::NeedsSeal,
            None if self
                .recently_installed
                .contains(&(extent_id, node_id.to_string())) =>
            {
                Condition::Good
            }
            _ => Condition::NeedsCopy,
        }
    }

    pub fn assess(&self, extent_id: u64, record: &ExtentRecord) -> Assessment {
        let conditions: Vec<(String, Condition)> = record
            .replicas
            .iter()
            .map(|n| (n.clone(), self.condition(extent_id, record, n)))
            .collect();
        let good = conditions
            .iter()
            .filter(|(_, c)| *c == Condition::Good)
            .count();
        let racks: HashSet<String> = record.replicas.iter().map(|n| self.rack(n)).collect();
        let misplaced = racks.len() < REPLICAS.min(record.replicas.len().max(1));
        let under_replicated = good < REPLICAS;
        let mut bytes_left = 0;
        if record.sealed {
            let missing = REPLICAS.saturating_sub(good) as u64;
            bytes_left = record.sealed_length * missing;
            if misplaced && !under_replicated {
                bytes_left += record.sealed_length;
            }
        }
        Assessment {
            conditions,
            good,
            under_replicated,
            misplaced,
            bytes_left,
        }
    }
}

impl ManagerState {
    /// Snapshots nodes, liveness, reports and marks for one pass.
    pub(super) fn view(&self) -> Result<View> {
        let healthy = self.healthy_node_ids()?;
        let nodes = self
            .meta
            .nodes()?
            .into_iter()
            .map(|n| (n.node_id.clone(), n))
            .collect();
        let reports = {
            let liveness = self.liveness.lock().map_err(|_| poisoned())?;
            liveness
                .iter()
                .filter(|(id, _)| healthy.contains(*id))
                .map(|(id, l)| (id.clone(), l.extents.clone()))
                .collect()
        };
        let (bad, recently_installed) = {
            let tracking = self.tracking.lock().map_err(|_| poisoned())?;
            let grace = Duration::from_millis(self.settings.node_timeout_ms);
            let installed = tracking
                .installed_at
                .iter()
                .filter(|(_, at)| at.elapsed() <= grace)
                .map(|(key, _)| key.clone())
                .collect();
            (tracking.bad.clone(), installed)
        };
        let referenced = self
            .meta
            .streams()?
            .into_iter()
            .flat_map(|(_, s)| s.extent_ids)
            .collect();
        Ok(View {
            healthy,
            nodes,
            reports,
            bad,
            recently_installed,
            referenced,
        })
    }

    fn in_flight_target(&self, extent_id: u64) -> Result<Option<String>> {
        let tracking = self.tracking.lock().map_err(|_| poisoned())?;
        Ok(tracking.in_flight.get(&extent_id).map(|(t, _)| t.clone()))
    }

    /// A replica's (length, sealed) asked of its node; None when the node does not hold it.
    async fn replica_state(&self, node_id: &str, extent_id: u64) -> Result<Option<(u64, bool)>> {
        let node = self.node_addr(node_id)?;
        let mut client = self.channels.extent_node(&node.addr)?;
        let request = ExtentInfoRequest {
            extent_id,
            fence: false,
        };
        match bounded(
            &node.addr,
            CONTROL_RPC_TIMEOUT_MS,
            client.get_extent_info(request_with_timeout(request, CONTROL_RPC_TIMEOUT_MS)),
        )
        .await
        {
            Ok(info) => Ok(Some((info.length, info.sealed))),
            Err(crate::StreamError::Rpc { status, .. })
                if status.code() == tonic::Code::NotFound =>
            {
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    async fn seal_on(&self, node: &NodeAddr, extent_id: u64, length: u64) -> Result<()> {
        let mut client = self.channels.extent_node(&node.addr)?;
        let request = SealRequest { extent_id, length };
        bounded(
            &node.addr,
            CONTROL_RPC_TIMEOUT_MS,
            client.seal(request_with_timeout(request, CONTROL_RPC_TIMEOUT_MS)),
        )
        .await?;
        Ok(())
    }

    /// Replaces `old` by `new` in a sealed extent's replica set (committed). False when the
    /// extent changed meanwhile (then the copy on `new` is surplus and will be deleted).
    async fn swap_replica(
        &self,
        extent_id: u64,
        sealed_length: u64,
        old: &str,
        new: &str,
    ) -> Result<bool> {
        let Some(before) = self.meta.extent(extent_id)? else {
            return Ok(false);
        };
        let mut record = before.clone();
        if !record.sealed || record.sealed_length != sealed_length {
            return Ok(false);
        }
        if record.replicas.iter().any(|r| r == new) {
            return Ok(true);
        }
        let Some(index) = record.replicas.iter().position(|r| r == old) else {
            return Ok(false);
        };
        record.replicas[index] = new.to_string();
        self.meta
            .commit(vec![Mutation::Extent {
                extent_id,
                expected: Some(before),
                record: Some(record.clone()),
            }])
            .await?;
        tracing::info!(extent_id, replaced = old, by = new, replicas = ?record.replicas, "replica set updated");
        Ok(true)
    }
}

/// One background copy.
struct CopyJob {
    extent_id: u64,
    sealed_length: u64,
    sources: Vec<NodeAddr>,
    target: NodeAddr,
    /// Node to swap out of the replica set once the copy is installed (None: in place).
    replace: Option<String>,
    rate_bytes_per_sec: u64,
}

async fn run_copy(state: Arc<ManagerState>, job: CopyJob) {
    let result = copy_and_swap(&state, &job).await;
    if let Err(err) = &result {
        tracing::warn!(extent_id = job.extent_id, target = %job.target.node_id, %err, "repair copy failed; retried on a later pass");
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
            extent_id: job.extent_id,
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
                tracing::warn!(extent_id = job.extent_id, source = %source.node_id, target = %job.target.node_id, %err, "copy from this source failed");
                last_error = Some(err);
            }
        }
    }
    if !copied {
        return Err(last_error.unwrap_or_else(|| {
            crate::StreamError::Unavailable(format!("no source for extent {}", job.extent_id))
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
        tracing::info!(extent_id = job.extent_id, target = %job.target.node_id, replaced = ?job.replace, "extent replica repaired");
    }
    Ok(())
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

/// One repair pass (see the module docs).
async fn pass(
    state: &Arc<ManagerState>,
    settings: &RepairSettings,
    copies: &mut JoinSet<()>,
) -> Result<()> {
    match state.leadership.observe(state.meta.group()) {
        strata_raft::group::Leadership::Follower { just_lost } => {
            if just_lost {
                // A later leadership starts over from the metadata and fresh heartbeats.
                if let Ok(mut tracking) = state.tracking.lock() {
                    *tracking = Default::default();
                }
                tracing::info!("no longer leading the stream manager group: repair stops");
            }
            return Ok(());
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
        }
    }
    if state.started.elapsed() < Duration::from_millis(state.settings.node_timeout_ms) {
        // Liveness is not known yet: every node would look dead.
        return Ok(());
    }
    state.confirm_leader().await?;
    state.update_gauges();
    let view = state.view()?;
    let extents = state.meta.extents()?;
    let mut load: HashMap<String, usize> = HashMap::new();
    for (_, record) in &extents {
        for replica in &record.replicas {
            *load.entry(replica.clone()).or_default() += 1;
        }
    }
    let candidates: Vec<Candidate> = view
        .nodes
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
        .collect();
    let concurrency = settings.concurrency.max(1);
    let rate = settings.bandwidth_bytes_per_sec / concurrency as u64;
    let gc_delay = Duration::from_millis(settings.gc_delay_ms);
    let (mut under_replicated, mut misplaced, mut bytes_left) = (0i64, 0i64, 0u64);
    let mut unreferenced = HashSet::new();

    for (extent_id, record) in &extents {
        let extent_id = *extent_id;
        if !view.referenced.contains(&extent_id) {
            unreferenced.insert(extent_id);
            collect_garbage(state, &view, extent_id, record, gc_delay).await?;
            continue;
        }
        let assessment = view.assess(extent_id, record);
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
        if !record.sealed {
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
                record.replicas.iter().map(|n| view.rack(n)).collect();
            let third_rack = assessment.misplaced
                && candidates
                    .iter()
                    .any(|c| !replica_racks.contains(&c.node.rack));
            if (lost || third_rack) && reachable {
                if let Err(err) = state.seal_for_repair(&record.stream, extent_id).await {
                    tracing::warn!(extent_id, %err, "could not seal an open extent for repair");
                }
            }
            continue;
        }
        // Heartbeats may predate the seal: ask the replicas flagged by them directly.
        let mut assessment = assessment;
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
                    tracing::debug!(extent_id, %node_id, %err, "replica state unknown; retried next pass");
                    unsure = true;
                }
            }
        }
        if unsure {
            continue;
        }
        assessment.good = assessment
            .conditions
            .iter()
            .filter(|(_, c)| *c == Condition::Good)
            .count();
        for (node_id, condition) in &assessment.conditions {
            if *condition == Condition::NeedsSeal {
                let node = state.node_addr(node_id)?;
                match state.seal_on(&node, extent_id, record.sealed_length).await {
                    Ok(()) => {
                        tracing::info!(extent_id, %node_id, length = record.sealed_length, "returning replica sealed at the sealed length")
                    }
                    Err(err) => {
                        tracing::warn!(extent_id, %node_id, %err, "could not seal a returning replica")
                    }
                }
            }
        }
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
                tracing::error!(extent_id, "no good replica to repair from");
            }
            continue;
        }
        if copies.len() >= concurrency {
            continue;
        }
        let job = plan_copy(state, &view, &candidates, extent_id, record, &assessment)?;
        if let Some((target, replace)) = job {
            {
                let mut tracking = state.tracking.lock().map_err(|_| poisoned())?;
                tracking
                    .in_flight
                    .insert(extent_id, (target.node_id.clone(), record.sealed_length));
                metrics::repair_copies_in_flight().set(tracking.in_flight.len() as i64);
            }
            tracing::info!(extent_id, target = %target.node_id, replace = ?replace, length = record.sealed_length, "repair copy started");
            copies.spawn(run_copy(
                state.clone(),
                CopyJob {
                    extent_id,
                    sealed_length: record.sealed_length,
                    sources,
                    target,
                    replace,
                    rate_bytes_per_sec: rate,
                },
            ));
        }
    }
    delete_surplus(state, &view, gc_delay).await?;
    {
        let mut tracking = state.tracking.lock().map_err(|_| poisoned())?;
        tracking
            .unreferenced_since
            .retain(|id, _| unreferenced.contains(id));
        let known: HashSet<u64> = extents.iter().map(|(id, _)| *id).collect();
        tracking.bad.retain(|(id, node)| {
            known.contains(id)
                && extents
                    .iter()
                    .any(|(e, r)| e == id && r.replicas.contains(node))
        });
        let grace = Duration::from_millis(state.settings.node_timeout_ms);
        tracking.installed_at.retain(|_, at| at.elapsed() <= grace);
    }
    metrics::extents_under_replicated().set(under_replicated);
    metrics::extents_misplaced().set(misplaced);
    metrics::repair_bytes_left().set(bytes_left as i64);
    Ok(())
}

/// Which copy (target, node to swap out) a sealed extent needs, in order: rewrite a replica
/// in place (short, bad or missing on a healthy node), replace a dead one, move a doubled one
/// to a third rack.
fn plan_copy(
    state: &ManagerState,
    view: &View,
    candidates: &[Candidate],
    extent_id: u64,
    record: &ExtentRecord,
    assessment: &Assessment,
) -> Result<Option<(NodeAddr, Option<String>)>> {
    let free: Vec<Candidate> = candidates
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
                tracing::info!(extent_id, moving = %doubled, to_rack = %target.rack, "misplaced extent: moving a replica to a third rack");
                return Ok(Some((target, Some(doubled))));
            }
        }
    }
    Ok(None)
}

/// Deletes an extent no stream references once it has been unreferenced for the safety delay:
/// from every healthy replica first (idempotent), then its record.
async fn collect_garbage(
    state: &ManagerState,
    view: &View,
    extent_id: u64,
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
                tracing::warn!(extent_id, %node_id, %err, "garbage replica not deleted yet");
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
            tracing::warn!(extent_id, %err, "garbage extent record not removed yet");
            return Ok(());
        }
        metrics::extents_deleted().inc();
        metrics::extents().set(state.meta.extent_count() as i64);
        if let Ok(mut tracking) = state.tracking.lock() {
            tracking.unreferenced_since.remove(&extent_id);
        }
        tracing::info!(extent_id, "unreferenced extent garbage-collected");
    }
    Ok(())
}

/// Deletes replicas healthy nodes hold but should not: surplus ones (the node is not in the
/// extent's replica set any more) at once, ones of extents the manager does not know after
/// the safety delay. Metadata is re-read right before each deletion, after checking no copy
/// to that node is under way, so a copy just swapped in is never taken for surplus.
async fn delete_surplus(state: &ManagerState, view: &View, gc_delay: Duration) -> Result<()> {
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
                    tracing::info!(extent_id, %node_id, "surplus replica (replaced while away or moved); deleting");
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
                        tracing::info!(extent_id, %node_id, "replica of an unknown extent past the safety delay; deleting");
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
                Err(err) => tracing::warn!(extent_id, %node_id, %err, "could not delete a replica"),
            }
        }
    }
    let mut tracking = state.tracking.lock().map_err(|_| poisoned())?;
    tracking
        .unknown_since
        .retain(|key, _| unknown_seen.contains(key));
    Ok(())
}
