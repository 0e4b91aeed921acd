//! The stream manager's logic: metadata in the group's state machine ([`MetaStore`]), node
//! liveness in memory, placement, allocation and sealing of extents. The gRPC layer
//! ([`super::service`]) is thin.
//!
//! Every member takes heartbeats (so a new leader knows which nodes live at once); only the
//! leader answers the other calls: a follower answers `NotLeader` with the leader's address.
//! Reads are confirmed with a quorum first (a deposed leader must not hand out a stale extent
//! list), and writes are Raft proposals.

use super::meta::{ExtentRecord, MetaStore, Mutation, NodeRecord, SealMark, StreamRecord};
use super::placement::{per_rack_max, placement_order, rank_racks, Candidate, RACKS_MIN, REPLICAS};
use crate::channels::{bounded, request_with_timeout, ChannelCache, CONTROL_RPC_TIMEOUT_MS};
use crate::error::{Result, StreamError};
use crate::metrics;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_proto::common::NodeAddr;
use strata_proto::stream::*;

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
    /// extent id -> (length, sealed) as the node reported.
    pub(super) extents: HashMap<u64, (u64, bool)>,
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
    /// Extent ids reserved for this member's allocations: [next, end).
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
    pub(super) bad: HashSet<(u64, String)>,
    /// extent -> (target node id, bytes) of the copy under way for it (one per extent).
    pub(super) in_flight: HashMap<u64, (String, u64)>,
    /// Extents no stream references, since when (garbage after the safety delay).
    pub(super) unreferenced_since: HashMap<u64, Instant>,
    /// (node, extent) replicas of extents the manager does not know, since when.
    pub(super) unknown_since: HashMap<(String, u64), Instant>,
    /// (extent, node) copies installed recently: a heartbeat sent before the install may not
    /// list them yet, which must not look like a missing replica.
    pub(super) installed_at: HashMap<(u64, String), Instant>,
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
    async fn next_extent_id(&self) -> Result<u64> {
        {
            let mut ids = self.extent_ids.lock().map_err(|_| poisoned())?;
            if ids.0 < ids.1 {
                ids.0 += 1;
                return Ok(ids.0 - 1);
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
        *ids = (first + 1, first + EXTENT_IDS_PER_BLOCK);
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
            let request = ReportBadReplicaRequest {
                extent_id: report.extent_id,
                node_id: record.node_id.clone(),
                offset: 0,
            };
            if self.require_leader().is_ok() {
                if let Err(err) = self.report_bad_replica(request) {
                    tracing::warn!(extent_id = report.extent_id, %err, "could not mark a replica with an unverified tail");
                }
            }
        }
        let liveness = Liveness {
            last_seen: Instant::now(),
            last_heartbeat_ms: strata_util::now_ms(),
            disk_used_bytes: beat.disk_used_bytes,
            extents: beat
                .extents
                .iter()
                .map(|e| (e.extent_id, (e.length, e.sealed)))
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

    fn extent_info(&self, extent_id: u64, record: &ExtentRecord) -> Result<ExtentInfo> {
        let replicas = record
            .replicas
            .iter()
            .map(|id| self.node_addr(id))
            .collect::<Result<Vec<_>>>()?;
        Ok(ExtentInfo {
            extent_id,
            replicas,
            sealed: record.sealed,
            sealed_length: record.sealed_length,
        })
    }

    pub(super) fn stream_info(&self, name: &str, record: &StreamRecord) -> Result<StreamInfo> {
        let mut extents = Vec::with_capacity(record.extent_ids.len());
        for &id in &record.extent_ids {
            let extent = self.meta.extent(id)?.ok_or_else(|| {
                StreamError::CorruptMetadata(format!("stream {name:?} names unknown extent {id}"))
            })?;
            extents.push(self.extent_info(id, &extent)?);
        }
        Ok(StreamInfo {
            name: name.to_string(),
            extents,
            extent_size_bytes_max: self.settings.extent_size_bytes_max,
        })
    }

    pub async fn get_extent(&self, extent_id: u64) -> Result<ExtentInfo> {
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

    /// Get-or-create. A stream whose last extent is sealed (a crash between sealing and
    /// allocating) gets its fresh extent here.
    pub async fn open_stream(&self, name: &str) -> Result<StreamInfo> {
        if name.is_empty() || name.len() > STREAM_NAME_BYTES_MAX {
            return Err(StreamError::InvalidArgument(format!(
                "stream name must be 1..={STREAM_NAME_BYTES_MAX} bytes"
            )));
        }
        self.confirm_leader().await?;
        let lock = self.stream_lock(name)?;
        let _serialized = lock.lock().await;
        let existing = self.meta.stream(name)?;
        let mut record = existing.clone().unwrap_or_default();
        let needs_extent = match record.extent_ids.last() {
            None => true,
            Some(&last) => self.meta.extent(last)?.is_none_or(|e| e.sealed),
        };
        if needs_extent {
            let (extent_id, extent) = self.allocate_extent(name).await?;
            record.extent_ids.push(extent_id);
            self.meta
                .commit(vec![
                    Mutation::Extent {
                        extent_id,
                        expected: None,
                        record: Some(extent),
                    },
                    Mutation::Stream {
                        name: name.to_string(),
                        expected: existing,
                        record: Some(record.clone()),
                    },
                ])
                .await?;
            tracing::info!(
                stream = name,
                extent_id,
                "stream opened with a fresh extent"
            );
            self.update_gauges();
        }
        self.stream_info(name, &record)
    }

    /// Seals the stream's last extent and appends a fresh one (see `SealExtentRequest`).
    pub async fn seal_extent(&self, request: SealExtentRequest) -> Result<StreamInfo> {
        let name = request.stream.as_str();
        self.require_leader()?;
        let lock = self.stream_lock(name)?;
        let _serialized = lock.lock().await;
        let existing = self
            .meta
            .stream(name)?
            .ok_or_else(|| StreamError::StreamNotFound(name.to_string()))?;
        let mut record = existing.clone();
        let Some(&last) = record.extent_ids.last() else {
            return Err(StreamError::CorruptMetadata(format!(
                "stream {name:?} has no extents"
            )));
        };
        if last != request.extent_id {
            let own_retry = !request.writer_id.is_empty()
                && record.last_seal
                    == Some(SealMark {
                        extent_id: request.extent_id,
                        writer_id: request.writer_id.clone(),
                    });
            if own_retry {
                tracing::info!(
                    stream = name,
                    extent_id = request.extent_id,
                    "a writer's retried seal was applied already; answering the stream"
                );
                return self.stream_info(name, &record);
            }
            if request.expect_open {
                return Err(StreamError::Fenced {
                    stream: name.to_string(),
                    reason: format!(
                        "extent {} was sealed by another writer; the last extent is {last}",
                        request.extent_id
                    ),
                });
            }
            return self.stream_info(name, &record);
        }
        // The seal and the fresh extent are recorded together; if no fresh extent can be
        // placed, the seal is recorded alone (the writer retries later).
        let mut mutations: Vec<Mutation> = self
            .seal_open_extent(name, last, request.length)
            .await?
            .into_iter()
            .collect();
        let (fresh, extent) = match self.allocate_extent(name).await {
            Ok(allocated) => allocated,
            Err(err) => {
                if !mutations.is_empty() {
                    self.meta.commit(mutations).await?;
                }
                return Err(err);
            }
        };
        record.extent_ids.push(fresh);
        record.last_seal = (!request.writer_id.is_empty()).then(|| SealMark {
            extent_id: last,
            writer_id: request.writer_id.clone(),
        });
        mutations.push(Mutation::Extent {
            extent_id: fresh,
            expected: None,
            record: Some(extent),
        });
        mutations.push(Mutation::Stream {
            name: name.to_string(),
            expected: Some(existing),
            record: Some(record.clone()),
        });
        self.meta.commit(mutations).await?;
        self.update_gauges();
        tracing::info!(
            stream = name,
            extent_id = fresh,
            "fresh extent appended to stream"
        );
        self.stream_info(name, &record)
    }

    /// Seals the replicas of open extent `extent_id` of `stream` at the commit length the
    /// reachable replicas agree on, never below `floor_length` (0 = none; see commit_length),
    /// and returns the mutation that records the seal (None when the extent is sealed already).
    /// The caller holds the stream's lock.
    async fn seal_open_extent(
        &self,
        stream: &str,
        extent_id: u64,
        floor_length: u64,
    ) -> Result<Option<Mutation>> {
        let before = self
            .meta
            .extent(extent_id)?
            .ok_or(StreamError::ExtentNotFound(extent_id))?;
        if before.sealed {
            return Ok(None);
        }
        let mut extent = before.clone();
        let replicas = extent
            .replicas
            .iter()
            .map(|id| self.node_addr(id))
            .collect::<Result<Vec<_>>>()?;
        // A writer that filled the extent names the end of its last append; the seal is never
        // below it, nor below what any other writer appended meanwhile (fenced and asked).
        let length = self
            .commit_length(extent_id, &replicas, floor_length)
            .await?;
        self.seal_replicas(extent_id, length, &replicas).await?;
        extent.sealed = true;
        extent.sealed_length = length;
        tracing::info!(stream, extent_id, length, "extent sealed");
        Ok(Some(Mutation::Extent {
            extent_id,
            expected: Some(before),
            record: Some(extent),
        }))
    }

    /// The repair's seal of an open extent that lost a replica (or holds a bad one): sealed at
    /// the commit length like SealExtent does, but no fresh extent is appended, so the stream's
    /// writer is not fenced: its next append fails (sealed), and its own SealExtent then
    /// finds the extent sealed and gets a fresh one.
    pub(super) async fn seal_for_repair(&self, stream: &str, extent_id: u64) -> Result<()> {
        let lock = self.stream_lock(stream)?;
        let _serialized = lock.lock().await;
        let Some(record) = self.meta.stream(stream)? else {
            return Ok(());
        };
        if record.extent_ids.last() != Some(&extent_id) {
            return Ok(());
        }
        if let Some(seal) = self.seal_open_extent(stream, extent_id, 0).await? {
            self.meta.commit(vec![seal]).await?;
        }
        tracing::info!(
            stream,
            extent_id,
            "open extent with a dead or bad replica sealed for repair"
        );
        Ok(())
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

    /// Drops stream `name`; returns how many extents it held (now unreferenced).
    pub async fn delete_stream(&self, name: &str) -> Result<u32> {
        self.require_leader()?;
        let lock = self.stream_lock(name)?;
        let _serialized = lock.lock().await;
        let Some(record) = self.meta.stream(name)? else {
            return Ok(0);
        };
        self.meta
            .commit(vec![Mutation::Stream {
                name: name.to_string(),
                expected: Some(record.clone()),
                record: None,
            }])
            .await?;
        self.update_gauges();
        tracing::info!(
            stream = name,
            extents = record.extent_ids.len(),
            "stream deleted; its extents are garbage after the safety delay"
        );
        Ok(record.extent_ids.len() as u32)
    }

    /// Drops every extent before `keep_from_extent_id` from stream `name` (see TrimStream).
    pub async fn trim_stream(&self, name: &str, keep_from_extent_id: u64) -> Result<StreamInfo> {
        self.require_leader()?;
        let lock = self.stream_lock(name)?;
        let _serialized = lock.lock().await;
        let existing = self
            .meta
            .stream(name)?
            .ok_or_else(|| StreamError::StreamNotFound(name.to_string()))?;
        let mut record = existing.clone();
        match record
            .extent_ids
            .iter()
            .position(|&id| id == keep_from_extent_id)
        {
            Some(0) => {}
            Some(index) => {
                let dropped: Vec<u64> = record.extent_ids.drain(..index).collect();
                self.meta
                    .commit(vec![Mutation::Stream {
                        name: name.to_string(),
                        expected: Some(existing),
                        record: Some(record.clone()),
                    }])
                    .await?;
                tracing::info!(
                    stream = name,
                    ?dropped,
                    "stream trimmed; dropped extents are garbage after the safety delay"
                );
            }
            None if record
                .extent_ids
                .first()
                .is_some_and(|&first| keep_from_extent_id < first) => {}
            None => {
                return Err(StreamError::InvalidArgument(format!(
                    "extent {keep_from_extent_id} is not in stream {name:?}"
                )))
            }
        }
        self.stream_info(name, &record)
    }

    /// A reader or scrubber found a record failing its checksum on `node_id`'s replica.
    pub fn report_bad_replica(&self, request: ReportBadReplicaRequest) -> Result<()> {
        self.require_leader()?;
        let ReportBadReplicaRequest {
            extent_id,
            node_id,
            offset,
        } = request;
        let record = self
            .meta
            .extent(extent_id)?
            .ok_or(StreamError::ExtentNotFound(extent_id))?;
        if !record.replicas.contains(&node_id) {
            tracing::info!(extent_id, %node_id, "bad-replica report for a node no longer in the replica set; ignored");
            return Ok(());
        }
        let mut tracking = self.tracking.lock().map_err(|_| poisoned())?;
        if tracking.bad.len() >= BAD_REPLICAS_MAX {
            return Err(StreamError::Unavailable(
                "too many bad replicas awaiting repair".into(),
            ));
        }
        if tracking.bad.insert((extent_id, node_id.clone())) {
            tracing::warn!(extent_id, %node_id, offset, "replica reported bad; it will be rewritten from a good replica");
        }
        Ok(())
    }

    /// Fences every reachable replica and returns the length to seal at, never below `floor`
    /// (a length the writer was acknowledged). A replica already sealed decides it. Otherwise
    /// the replicas whose tails verify decide: the smallest of their lengths (an acknowledged
    /// append is on every replica, so the smallest still holds it, and fencing stops lengths
    /// from growing). A replica whose tail does not verify (restarted with a torn or damaged
    /// last record) may have lost an acknowledged record's integrity, so it never decides;
    /// only when no replica verifies does the longest verified prefix decide (every record
    /// past it is damaged everywhere, so none of it can be read back anyway).
    async fn commit_length(
        &self,
        extent_id: u64,
        replicas: &[NodeAddr],
        floor: u64,
    ) -> Result<u64> {
        let calls = replicas.iter().map(|node| async move {
            let mut client = self.channels.extent_node(&node.addr)?;
            let request = ExtentInfoRequest {
                extent_id,
                fence: true,
            };
            bounded(
                &node.addr,
                CONTROL_RPC_TIMEOUT_MS,
                client.get_extent_info(request_with_timeout(request, CONTROL_RPC_TIMEOUT_MS)),
            )
            .await
        });
        let mut answers = Vec::with_capacity(replicas.len());
        for (node, result) in replicas.iter().zip(futures::future::join_all(calls).await) {
            match result {
                Ok(info) if info.sealed => return Ok(info.length),
                Ok(info) => answers.push((node, info)),
                Err(err) => {
                    tracing::warn!(extent_id, node_id = %node.node_id, %err, "replica unreachable while sealing")
                }
            }
        }
        let verified = |info: &ExtentInfoResponse| match info.verified_length {
            0 => info.length,
            verified => verified.min(info.length),
        };
        let clean = answers
            .iter()
            .filter(|(_, info)| verified(info) == info.length)
            .map(|(_, info)| info.length)
            .min();
        let length = match clean {
            Some(length) => length,
            None => answers
                .iter()
                .map(|(_, info)| verified(info))
                .max()
                .ok_or_else(|| {
                    StreamError::Unavailable(format!("no replica of extent {extent_id} answered"))
                })?,
        };
        for (node, info) in answers.iter().filter(|(_, info)| verified(info) < length) {
            tracing::warn!(extent_id, node_id = %node.node_id, verified_length = verified(info), length, "replica cannot verify up to the seal; it will be rewritten");
            let request = ReportBadReplicaRequest {
                extent_id,
                node_id: node.node_id.clone(),
                offset: verified(info),
            };
            if let Err(err) = self.report_bad_replica(request) {
                tracing::warn!(extent_id, %err, "could not mark a replica bad");
            }
        }
        if length < floor {
            // Some replica lost acknowledged bytes and no good replica answered: sealing now
            // would cut them for good. Refuse; the writer retries and the repair heals.
            return Err(StreamError::Unavailable(format!(
                "extent {extent_id}: the answering replicas agree on {length} bytes, below the acknowledged {floor}"
            )));
        }
        Ok(length)
    }

    /// Seals every reachable replica at `length`; at least one must confirm.
    async fn seal_replicas(
        &self,
        extent_id: u64,
        length: u64,
        replicas: &[NodeAddr],
    ) -> Result<()> {
        let calls = replicas.iter().map(|node| async move {
            let mut client = self.channels.extent_node(&node.addr)?;
            let request = SealRequest { extent_id, length };
            bounded(
                &node.addr,
                CONTROL_RPC_TIMEOUT_MS,
                client.seal(request_with_timeout(request, CONTROL_RPC_TIMEOUT_MS)),
            )
            .await
        });
        let mut sealed = 0;
        for (node, result) in replicas.iter().zip(futures::future::join_all(calls).await) {
            match result {
                Ok(_) => sealed += 1,
                Err(err) => {
                    tracing::warn!(extent_id, length, node_id = %node.node_id, %err, "replica not sealed")
                }
            }
        }
        if sealed == 0 {
            return Err(StreamError::Unavailable(format!(
                "no replica of extent {extent_id} could be sealed"
            )));
        }
        Ok(())
    }

    /// Picks 3 healthy nodes on 3 racks and creates the extent on each; returns its id and the
    /// record for the caller to commit. Fails with Unavailable when fewer than 3 racks have a
    /// healthy node that accepts the extent.
    async fn allocate_extent(&self, stream: &str) -> Result<(u64, ExtentRecord)> {
        let healthy = self.healthy_node_ids()?;
        let mut load: HashMap<String, usize> = HashMap::new();
        for (_, extent) in self.meta.extents()? {
            for replica in extent.replicas {
                *load.entry(replica).or_default() += 1;
            }
        }
        let candidates: Vec<Candidate> = self
            .meta
            .nodes()?
            .into_iter()
            .filter(|n| healthy.contains(&n.node_id))
            .map(|n| Candidate {
                extents: load.get(&n.node_id).copied().unwrap_or(0),
                node: NodeAddr {
                    node_id: n.node_id,
                    addr: n.addr,
                    rack: n.rack,
                },
            })
            .collect();
        let racks = rank_racks(candidates);
        let node_count: usize = racks.iter().map(Vec::len).sum();
        if racks.len() < RACKS_MIN || node_count < REPLICAS {
            return Err(StreamError::Unavailable(format!(
                "{} healthy racks and {node_count} healthy nodes; a new extent needs {RACKS_MIN} racks and {REPLICAS} nodes",
                racks.len()
            )));
        }
        // One replica per rack first; if too few racks accept it (a rack that just died still
        // looks healthy until its timeout), at most 2 per rack.
        let caps = [per_rack_max(racks.len()), REPLICAS - 1];
        let order = placement_order(racks);
        let extent_id = self.next_extent_id().await?;
        let mut chosen: Vec<NodeAddr> = Vec::with_capacity(REPLICAS);
        let mut tried: HashSet<String> = HashSet::new();
        for cap in caps {
            for candidate in &order {
                if chosen.len() == REPLICAS {
                    break;
                }
                let on_rack = chosen
                    .iter()
                    .filter(|n| n.rack == candidate.node.rack)
                    .count();
                if on_rack >= cap || tried.contains(&candidate.node.node_id) {
                    continue;
                }
                tried.insert(candidate.node.node_id.clone());
                match self.create_on(extent_id, &candidate.node).await {
                    Ok(()) => chosen.push(candidate.node.clone()),
                    Err(err) => {
                        tracing::warn!(extent_id, node_id = %candidate.node.node_id, %err, "could not create extent replica")
                    }
                }
            }
        }
        if chosen.len() < REPLICAS {
            for node in &chosen {
                if let Err(err) = self.delete_on(extent_id, node).await {
                    tracing::warn!(extent_id, node_id = %node.node_id, %err, "could not remove a partial replica");
                }
            }
            return Err(StreamError::Unavailable(format!(
                "only {} nodes accepted extent {extent_id}",
                chosen.len()
            )));
        }
        if chosen.iter().map(|n| &n.rack).collect::<HashSet<_>>().len() < REPLICAS {
            tracing::warn!(extent_id, "fewer than 3 healthy racks: extent placed on 2 racks (misplaced until a third rack is healthy)");
        }
        let record = ExtentRecord {
            stream: stream.to_string(),
            replicas: chosen.iter().map(|n| n.node_id.clone()).collect(),
            sealed: false,
            sealed_length: 0,
        };
        tracing::info!(stream, extent_id, replicas = ?record.replicas, "extent allocated");
        Ok((extent_id, record))
    }

    async fn create_on(&self, extent_id: u64, node: &NodeAddr) -> Result<()> {
        let mut client = self.channels.extent_node(&node.addr)?;
        let request = CreateExtentRequest { extent_id };
        bounded(
            &node.addr,
            CONTROL_RPC_TIMEOUT_MS,
            client.create_extent(request_with_timeout(request, CONTROL_RPC_TIMEOUT_MS)),
        )
        .await?;
        Ok(())
    }

    pub(super) async fn delete_on(&self, extent_id: u64, node: &NodeAddr) -> Result<()> {
        let mut client = self.channels.extent_node(&node.addr)?;
        let request = DeleteExtentRequest { extent_id };
        bounded(
            &node.addr,
            CONTROL_RPC_TIMEOUT_MS,
            client.delete_extent(request_with_timeout(request, CONTROL_RPC_TIMEOUT_MS)),
        )
        .await?;
        Ok(())
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
                    extent_id,
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
