//! The stream manager's logic: metadata in the group's state machine ([`MetaStore`]), node
//! liveness in memory, leadership checks, status. Allocation and stream changes are in
//! [`super::streams`], sealing in [`super::seal`]. The gRPC layer
//! ([`super::service`]) is thin.
//!
//! Every member takes heartbeats (so a new leader knows which nodes live at once); only the
//! leader answers the other calls: a follower answers `NotLeader` with the leader's address.
//! Reads are confirmed with a quorum first (a deposed leader must not hand out a stale extent
//! list), and writes are Raft proposals.

use super::meta::{ExtentRecord, MetaStore, Mutation, NodeRecord, StreamRecord};
use crate::channels::ChannelCache;
use crate::error::{Result, StreamError};
use crate::metrics;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_proto::common::NodeAddr;
use strata_proto::stream::*;
use strata_types::ExtentId;

pub const NODE_TIMEOUT_MS_DEFAULT: u64 = 3_000;
pub const EXTENT_SIZE_BYTES_MAX_DEFAULT: u64 = 256 * 1024 * 1024;
/// Longest stream name accepted.
pub const STREAM_NAME_BYTES_MAX: usize = 512;
/// Extent ids the leader reserves with one proposal (ids are never reused; a block lost with
/// a leader only leaves a gap).
const EXTENT_IDS_PER_BLOCK: u64 = 64;
/// Bound on confirming leadership with a quorum before a read or a destructive step.
pub(super) const LEADERSHIP_CHECK_TIMEOUT_MS: u64 = 2_000;

#[derive(Clone, Debug)]
pub struct ManagerSettings {
    pub extent_size_bytes_max: u64,
    pub node_timeout_ms: u64,
}

impl Default for ManagerSettings {
    fn default() -> Self {
        Self {
            extent_size_bytes_max: EXTENT_SIZE_BYTES_MAX_DEFAULT,
            node_timeout_ms: NODE_TIMEOUT_MS_DEFAULT,
        }
    }
}

/// What the last heartbeat of a node said.
pub(super) struct Liveness {
    last_seen: Instant,
    last_heartbeat_ms: i64,
    disk_used_bytes: u64,
    disk_capacity_bytes: u64,
    /// extent id -> (length, sealed) as the node reported.
    pub(super) extents: HashMap<ExtentId, (u64, bool)>,
}

pub struct ManagerState {
    pub(super) meta: MetaStore,
    pub(super) settings: ManagerSettings,
    pub(super) liveness: Mutex<HashMap<String, Liveness>>,
    stream_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    pub(super) channels: ChannelCache,
    /// When this manager started: liveness is only known one node timeout later.
    pub(super) started: Instant,
    /// The repair's in-memory bookkeeping (rebuilt from the metadata + heartbeats after a
    /// restart or a change of leader).
    pub(super) tracking: Mutex<Tracking>,
    /// Extent ids reserved for this member's allocations: [next, end), raw numbers so the
    /// block can be counted through.
    extent_ids: Mutex<(u64, u64)>,
    /// When this member's current leadership began (the repair resets its bookkeeping then).
    pub(super) leadership: strata_raft::LeadershipClock,
}

/// Bad-replica reports kept at most (further reports are dropped until some are repaired).
pub const BAD_REPLICAS_MAX: usize = 65_536;

/// The repair's in-memory bookkeeping. Losing it (a restart) only delays work: the to-do list
/// itself is derived from the metadata and heartbeats on every pass.
#[derive(Default)]
pub(super) struct Tracking {
    /// (extent, node) replicas reported to hold a record that fails its checksum.
    pub(super) bad: HashSet<(ExtentId, String)>,
    /// extent -> (target node id, bytes) of the copy under way for it (one per extent).
    pub(super) in_flight: HashMap<ExtentId, (String, u64)>,
    /// Extents no stream references, since when (garbage after the safety delay).
    pub(super) unreferenced_since: HashMap<ExtentId, Instant>,
    /// (node, extent) replicas of extents the manager does not know, since when.
    pub(super) unknown_since: HashMap<(String, ExtentId), Instant>,
    /// (extent, node) copies installed recently: a heartbeat sent before the install may not
    /// list them yet, which must not look like a missing replica.
    pub(super) installed_at: HashMap<(ExtentId, String), Instant>,
}

pub(super) fn poisoned() -> StreamError {
    StreamError::Unavailable("stream manager state lock poisoned".into())
}

impl ManagerState {
    pub fn new(meta: MetaStore, settings: ManagerSettings) -> Self {
        let state = Self {
            meta,
            settings,
            liveness: Mutex::new(HashMap::new()),
            stream_locks: Mutex::new(HashMap::new()),
            channels: ChannelCache::new(),
            started: Instant::now(),
            tracking: Mutex::new(Tracking::default()),
            extent_ids: Mutex::new((0, 0)),
            leadership: Default::default(),
        };
        metrics::init_manager_metrics();
        state.update_gauges();
        state
    }

    /// Refuses calls a follower must not answer (cheap: this member's own view).
    pub(super) fn require_leader(&self) -> Result<()> {
        let group = self.meta.group();
        if group.is_ready_leader() {
            return Ok(());
        }
        Err(StreamError::NotLeader {
            leader_addr: group.leader_view().leader_addr,
        })
    }

    /// Confirms with a quorum that this member leads and holds every committed change.
    pub(super) async fn confirm_leader(&self) -> Result<()> {
        self.require_leader()?;
        Ok(self
            .meta
            .group()
            .ensure_leader(LEADERSHIP_CHECK_TIMEOUT_MS)
            .await?)
    }

    /// A fresh extent id, from this member's reserved block (reserving a new one when spent).
    pub(super) async fn next_extent_id(&self) -> Result<ExtentId> {
        {
            let mut ids = self.extent_ids.lock().map_err(|_| poisoned())?;
            if ids.0 < ids.1 {
                ids.0 += 1;
                return Ok(ExtentId::new(ids.0 - 1));
            }
        }
        let first = self
            .meta
            .commit(vec![Mutation::ReserveExtentIds {
                count: EXTENT_IDS_PER_BLOCK,
            }])
            .await?
            .ok_or_else(|| StreamError::CorruptMetadata("no extent ids reserved".into()))?;
        let mut ids = self.extent_ids.lock().map_err(|_| poisoned())?;
        *ids = (first.get() + 1, first.get() + EXTENT_IDS_PER_BLOCK);
        Ok(first)
    }

    pub(super) fn update_gauges(&self) {
        metrics::streams().set(self.meta.stream_count() as i64);
        metrics::extents().set(self.meta.extent_count() as i64);
        metrics::nodes_healthy().set(self.healthy_node_ids().map(|h| h.len()).unwrap_or(0) as i64);
    }

    /// Counts and the Raft role for the health check; healthy while a leader is known.
    pub fn health_details(&self) -> Result<serde_json::Value> {
        let healthy = self.healthy_node_ids()?.len();
        let group = self.meta.group();
        let metrics = group.metrics();
        let view = group.leader_view();
        let details = serde_json::json!({
            "kind": "stream-manager",
            "node_id": group.node_id(),
            "leader_id": view.leader_id,
            "leader_addr": view.leader_addr,
            "term": view.current_term,
            "state": format!("{:?}", metrics.state),
            "nodes_healthy": healthy,
            "nodes_total": self.meta.nodes()?.len(),
            "streams": self.meta.stream_count(),
            "extents": self.meta.extent_count(),
        });
        if metrics.current_leader.is_none() {
            return Err(StreamError::Unavailable(format!(
                "no leader known: {details}"
            )));
        }
        Ok(details)
    }

    pub(super) fn healthy_node_ids(&self) -> Result<HashSet<String>> {
        let timeout = Duration::from_millis(self.settings.node_timeout_ms);
        let liveness = self.liveness.lock().map_err(|_| poisoned())?;
        Ok(liveness
            .iter()
            .filter(|(_, l)| l.last_seen.elapsed() <= timeout)
            .map(|(id, _)| id.clone())
            .collect())
    }

    pub(super) fn stream_lock(&self, name: &str) -> Result<Arc<tokio::sync::Mutex<()>>> {
        let mut locks = self.stream_locks.lock().map_err(|_| poisoned())?;
        Ok(locks.entry(name.to_string()).or_default().clone())
    }

    pub async fn heartbeat(&self, beat: NodeHeartbeat) -> Result<()> {
        let node = beat
            .node
            .ok_or_else(|| StreamError::InvalidArgument("heartbeat without node".into()))?;
        if node.node_id.is_empty() || node.addr.is_empty() || node.rack.is_empty() {
            return Err(StreamError::InvalidArgument(
                "heartbeat needs node_id, addr and rack".into(),
            ));
        }
        let record = NodeRecord {
            node_id: node.node_id.clone(),
            addr: node.addr,
            rack: node.rack,
            http_addr: beat.http_addr,
        };
        // Every member keeps liveness; only the leader records a new or changed node.
        let known = self.meta.node(&record.node_id)?;
        if known.as_ref() != Some(&record) && self.require_leader().is_ok() {
            if known.is_none_or(|k| k.addr != record.addr || k.rack != record.rack) {
                tracing::info!(node_id = %record.node_id, addr = %record.addr, rack = %record.rack, "extent node registered");
            }
            self.meta
                .commit(vec![Mutation::Node {
                    record: record.clone(),
                }])
                .await?;
        }
        // A replica whose tail did not verify on its node's restart may hide a damaged
        // acknowledged record: the leader's repair seals around it and rewrites it.
        for report in beat.extents.iter().filter(|e| e.tail_unverified) {
            if self.require_leader().is_ok() {
                let extent_id = ExtentId::new(report.extent_id);
                if let Err(err) = self.report_bad_replica(extent_id, &record.node_id, 0) {
                    tracing::warn!(extent_id = report.extent_id, %err, "could not mark a replica with an unverified tail");
                }
            }
        }
        let liveness = Liveness {
            last_seen: Instant::now(),
            last_heartbeat_ms: strata_util::now_ms(),
            disk_used_bytes: beat.disk_used_bytes,
            disk_capacity_bytes: beat.disk_capacity_bytes,
            extents: beat
                .extents
                .iter()
                .map(|e| (ExtentId::new(e.extent_id), (e.length, e.sealed)))
                .collect(),
        };
        self.liveness
            .lock()
            .map_err(|_| poisoned())?
            .insert(record.node_id, liveness);
        Ok(())
    }

    pub(super) fn node_addr(&self, node_id: &str) -> Result<NodeAddr> {
        Ok(match self.meta.node(node_id)? {
            Some(r) => NodeAddr {
                node_id: r.node_id,
                addr: r.addr,
                rack: r.rack,
            },
            None => NodeAddr {
                node_id: node_id.to_string(),
                addr: String::new(),
                rack: String::new(),
            },
        })
    }

    fn extent_info(&self, extent_id: ExtentId, record: &ExtentRecord) -> Result<ExtentInfo> {
        let replicas = record
            .replicas
            .iter()
            .map(|id| self.node_addr(id))
            .collect::<Result<Vec<_>>>()?;
        Ok(ExtentInfo {
            extent_id: extent_id.get(),
            replicas,
            sealed: record.sealed,
            sealed_length: record.sealed_length,
        })
    }

    pub(super) fn stream_info(&self, name: &str, record: &StreamRecord) -> Result<StreamInfo> {
        let mut extents = Vec::with_capacity(record.extent_ids.len());
        for &id in &record.extent_ids {
            let extent = self.meta.extent(id)?.ok_or_else(|| {
                StreamError::CorruptMetadata(format!("stream {name:?} names unknown {id}"))
            })?;
            extents.push(self.extent_info(id, &extent)?);
        }
        Ok(StreamInfo {
            name: name.to_string(),
            extents,
            extent_size_bytes_max: self.settings.extent_size_bytes_max,
        })
    }

    pub async fn get_extent(&self, extent_id: ExtentId) -> Result<ExtentInfo> {
        self.confirm_leader().await?;
        let record = self
            .meta
            .extent(extent_id)?
            .ok_or(StreamError::ExtentNotFound(extent_id))?;
        self.extent_info(extent_id, &record)
    }

    pub async fn get_stream(&self, name: &str) -> Result<StreamInfo> {
        self.confirm_leader().await?;
        let record = self
            .meta
            .stream(name)?
            .ok_or_else(|| StreamError::StreamNotFound(name.to_string()))?;
        self.stream_info(name, &record)
    }

    /// Names of the streams starting with `prefix`, in order (a linearizable read).
    pub async fn list_streams(&self, prefix: &str) -> Result<Vec<String>> {
        self.confirm_leader().await?;
        Ok(self
            .meta
            .streams()?
            .into_iter()
            .map(|(name, _)| name)
            .filter(|name| name.starts_with(prefix))
            .collect())
    }

    /// A reader or scrubber found a record failing its checksum at `offset` of `node_id`'s
    /// replica.
    pub fn report_bad_replica(
        &self,
        extent_id: ExtentId,
        node_id: &str,
        offset: u64,
    ) -> Result<()> {
        self.require_leader()?;
        let node_id = node_id.to_string();
        let record = self
            .meta
            .extent(extent_id)?
            .ok_or(StreamError::ExtentNotFound(extent_id))?;
        if !record.replicas.contains(&node_id) {
            tracing::info!(extent_id = extent_id.get(), %node_id, "bad-replica report for a node no longer in the replica set; ignored");
            return Ok(());
        }
        let mut tracking = self.tracking.lock().map_err(|_| poisoned())?;
        if tracking.bad.len() >= BAD_REPLICAS_MAX {
            return Err(StreamError::Unavailable(
                "too many bad replicas awaiting repair".into(),
            ));
        }
        if tracking.bad.insert((extent_id, node_id.clone())) {
            tracing::warn!(extent_id = extent_id.get(), %node_id, offset, "replica reported bad; it will be rewritten from a good replica");
        }
        Ok(())
    }

    /// The stamp's fill as the healthy extent nodes last reported it: (bytes offered, bytes
    /// held), every replica counted. None when no node is healthy, or this member's liveness
    /// view is younger than one node timeout (a new leader has not heard from every node yet).
    pub fn fill(&self) -> Result<Option<(u64, u64)>> {
        let timeout = Duration::from_millis(self.settings.node_timeout_ms);
        if self.started.elapsed() <= timeout {
            return Ok(None);
        }
        let liveness = self.liveness.lock().map_err(|_| poisoned())?;
        let healthy: Vec<&Liveness> = liveness
            .values()
            .filter(|l| l.last_seen.elapsed() <= timeout)
            .collect();
        if healthy.is_empty() {
            return Ok(None);
        }
        let sum = |field: fn(&Liveness) -> u64| {
            healthy
                .iter()
                .fold(0u64, |total, l| total.saturating_add(field(l)))
        };
        Ok(Some((
            sum(|l| l.disk_capacity_bytes),
            sum(|l| l.disk_used_bytes),
        )))
    }

    pub async fn status(&self) -> Result<StreamStatusResponse> {
        self.confirm_leader().await?;
        let timeout = Duration::from_millis(self.settings.node_timeout_ms);
        let view = self.view()?;
        let mut nodes: Vec<NodeStatus> = {
            let liveness = self.liveness.lock().map_err(|_| poisoned())?;
            view.nodes
                .values()
                .map(|n| {
                    let live = liveness.get(&n.node_id);
                    NodeStatus {
                        healthy: live.is_some_and(|l| l.last_seen.elapsed() <= timeout),
                        last_heartbeat_ms: live.map_or(0, |l| l.last_heartbeat_ms),
                        disk_used_bytes: live.map_or(0, |l| l.disk_used_bytes),
                        disk_capacity_bytes: live.map_or(0, |l| l.disk_capacity_bytes),
                        http_addr: n.http_addr.clone(),
                        node: Some(NodeAddr {
                            node_id: n.node_id.clone(),
                            addr: n.addr.clone(),
                            rack: n.rack.clone(),
                        }),
                    }
                })
                .collect()
        };
        nodes.sort_by(|a, b| {
            let key = |s: &NodeStatus| s.node.as_ref().map(|n| (n.rack.clone(), n.node_id.clone()));
            key(a).cmp(&key(b))
        });
        let (mut under_replicated, mut misplaced, mut bytes_left) = (0u32, 0u32, 0u64);
        let extents = self
            .meta
            .extents()?
            .into_iter()
            .map(|(extent_id, e)| {
                let reported = e
                    .replicas
                    .iter()
                    .filter_map(|id| view.reports.get(id).and_then(|r| r.get(&extent_id)))
                    .map(|(len, _)| *len)
                    .max()
                    .unwrap_or(0);
                let assessment = view.assess(extent_id, &e);
                if view.referenced.contains(&extent_id) {
                    under_replicated += u32::from(assessment.under_replicated);
                    misplaced += u32::from(assessment.misplaced && e.sealed);
                    bytes_left += assessment.bytes_left;
                }
                ExtentStatus {
                    extent_id: extent_id.get(),
                    stream: e.stream.clone(),
                    sealed: e.sealed,
                    length: if e.sealed { e.sealed_length } else { reported },
                    replicas_total: e.replicas.len() as u32,
                    replicas_healthy: assessment.good as u32,
                    racks: e.replicas.iter().map(|id| view.rack(id)).collect(),
                    misplaced: assessment.misplaced,
                    referenced: view.referenced.contains(&extent_id),
                }
            })
            .collect();
        let group = self.meta.group();
        let metrics = group.metrics();
        let managers = metrics
            .membership_config
            .nodes()
            .map(|(id, node)| ManagerMember {
                node_id: *id,
                addr: node.addr.clone(),
            })
            .collect();
        Ok(StreamStatusResponse {
            leader_id: group.node_id(),
            term: metrics.current_term,
            managers,
            nodes,
            extents,
            streams_total: self.meta.stream_count() as u32,
            extents_under_replicated: under_replicated,
            repair_bytes_left: bytes_left,
            extents_misplaced: misplaced,
        })
    }
}
