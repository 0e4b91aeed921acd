//! The stream manager's logic: metadata in sled ([`MetaStore`]), node liveness in memory,
//! placement, allocation and sealing of extents. The gRPC layer ([`super::service`]) is thin.

use super::meta::{ExtentRecord, MetaStore, NodeRecord, StreamRecord};
use super::placement::{rank_racks, Candidate, REPLICAS};
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
struct Liveness {
    last_seen: Instant,
    last_heartbeat_ms: i64,
    disk_used_bytes: u64,
    /// extent id -> (length, sealed) as the node reported.
    extents: HashMap<u64, (u64, bool)>,
}

pub struct ManagerState {
    meta: MetaStore,
    settings: ManagerSettings,
    liveness: Mutex<HashMap<String, Liveness>>,
    stream_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    channels: ChannelCache,
}

fn poisoned() -> StreamError {
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
        };
        state.update_gauges();
        state
    }

    fn update_gauges(&self) {
        metrics::streams().set(self.meta.stream_count() as i64);
        metrics::extents().set(self.meta.extent_count() as i64);
        metrics::nodes_healthy().set(self.healthy_node_ids().map(|h| h.len()).unwrap_or(0) as i64);
    }

    /// Counts for the health check.
    pub fn health_details(&self) -> Result<serde_json::Value> {
        let healthy = self.healthy_node_ids()?.len();
        Ok(serde_json::json!({
            "kind": "stream-manager",
            "nodes_healthy": healthy,
            "nodes_total": self.meta.nodes()?.len(),
            "streams": self.meta.stream_count(),
            "extents": self.meta.extent_count(),
        }))
    }

    fn healthy_node_ids(&self) -> Result<HashSet<String>> {
        let timeout = Duration::from_millis(self.settings.node_timeout_ms);
        let liveness = self.liveness.lock().map_err(|_| poisoned())?;
        Ok(liveness
            .iter()
            .filter(|(_, l)| l.last_seen.elapsed() <= timeout)
            .map(|(id, _)| id.clone())
            .collect())
    }

    fn stream_lock(&self, name: &str) -> Result<Arc<tokio::sync::Mutex<()>>> {
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
        let known = self.meta.node(&record.node_id)?;
        if known.as_ref() != Some(&record) {
            if known.is_none_or(|k| k.addr != record.addr || k.rack != record.rack) {
                tracing::info!(node_id = %record.node_id, addr = %record.addr, rack = %record.rack, "extent node registered");
            }
            self.meta.put_node(&record)?;
            self.meta.flush().await?;
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
        self.update_gauges();
        Ok(())
    }

    fn node_addr(&self, node_id: &str) -> Result<NodeAddr> {
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

    fn stream_info(&self, name: &str, record: &StreamRecord) -> Result<StreamInfo> {
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

    pub fn get_extent(&self, extent_id: u64) -> Result<ExtentInfo> {
        let record = self
            .meta
            .extent(extent_id)?
            .ok_or(StreamError::ExtentNotFound(extent_id))?;
        self.extent_info(extent_id, &record)
    }

    pub fn get_stream(&self, name: &str) -> Result<StreamInfo> {
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
        let lock = self.stream_lock(name)?;
        let _serialized = lock.lock().await;
        let mut record = self.meta.stream(name)?.unwrap_or_default();
        let needs_extent = match record.extent_ids.last() {
            None => true,
            Some(&last) => self.meta.extent(last)?.is_none_or(|e| e.sealed),
        };
        if needs_extent {
            let extent_id = self.allocate_extent(name).await?;
            record.extent_ids.push(extent_id);
            self.meta.put_stream(name, &record)?;
            self.meta.flush().await?;
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
        let lock = self.stream_lock(name)?;
        let _serialized = lock.lock().await;
        let mut record = self
            .meta
            .stream(name)?
            .ok_or_else(|| StreamError::StreamNotFound(name.to_string()))?;
        let Some(&last) = record.extent_ids.last() else {
            return Err(StreamError::CorruptMetadata(format!(
                "stream {name:?} has no extents"
            )));
        };
        if last != request.extent_id {
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
        let mut extent = self
            .meta
            .extent(last)?
            .ok_or(StreamError::ExtentNotFound(last))?;
        if !extent.sealed {
            let replicas = extent
                .replicas
                .iter()
                .map(|id| self.node_addr(id))
                .collect::<Result<Vec<_>>>()?;
            let length = match request.length {
                0 => self.commit_length(last, &replicas).await?,
                given => given,
            };
            self.seal_replicas(last, length, &replicas).await?;
            extent.sealed = true;
            extent.sealed_length = length;
            self.meta.put_extent(last, &extent)?;
            self.meta.flush().await?;
            tracing::info!(stream = name, extent_id = last, length, "extent sealed");
        }
        let fresh = self.allocate_extent(name).await?;
        record.extent_ids.push(fresh);
        self.meta.put_stream(name, &record)?;
        self.meta.flush().await?;
        self.update_gauges();
        tracing::info!(
            stream = name,
            extent_id = fresh,
            "fresh extent appended to stream"
        );
        self.stream_info(name, &record)
    }

    /// Fences every reachable replica and returns the length to seal at: a replica already
    /// sealed decides it; otherwise the smallest length (an acknowledged append is on every
    /// replica, so the smallest still holds it, and fencing stops lengths from growing).
    async fn commit_length(&self, extent_id: u64, replicas: &[NodeAddr]) -> Result<u64> {
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
        let mut smallest: Option<u64> = None;
        for (node, result) in replicas.iter().zip(futures::future::join_all(calls).await) {
            match result {
                Ok(info) if info.sealed => return Ok(info.length),
                Ok(info) => smallest = Some(smallest.map_or(info.length, |s| s.min(info.length))),
                Err(err) => {
                    tracing::warn!(extent_id, node_id = %node.node_id, %err, "replica unreachable while sealing")
                }
            }
        }
        smallest.ok_or_else(|| {
            StreamError::Unavailable(format!("no replica of extent {extent_id} answered"))
        })
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

    /// Picks 3 healthy nodes on 3 racks, creates the extent on each and records it. Fails with
    /// Unavailable when fewer than 3 racks have a healthy node that accepts the extent.
    async fn allocate_extent(&self, stream: &str) -> Result<u64> {
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
        if racks.len() < REPLICAS {
            return Err(StreamError::Unavailable(format!(
                "{} healthy racks, {REPLICAS} needed for a new extent",
                racks.len()
            )));
        }
        let extent_id = self.meta.next_extent_id()?;
        let mut chosen: Vec<NodeAddr> = Vec::with_capacity(REPLICAS);
        for rack in racks {
            if chosen.len() == REPLICAS {
                break;
            }
            for candidate in rack {
                match self.create_on(extent_id, &candidate.node).await {
                    Ok(()) => {
                        chosen.push(candidate.node);
                        break;
                    }
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
                "only {} racks accepted extent {extent_id}",
                chosen.len()
            )));
        }
        let record = ExtentRecord {
            stream: stream.to_string(),
            replicas: chosen.iter().map(|n| n.node_id.clone()).collect(),
            sealed: false,
            sealed_length: 0,
        };
        self.meta.put_extent(extent_id, &record)?;
        tracing::info!(stream, extent_id, replicas = ?record.replicas, "extent allocated");
        Ok(extent_id)
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

    async fn delete_on(&self, extent_id: u64, node: &NodeAddr) -> Result<()> {
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

    pub fn status(&self) -> Result<StreamStatusResponse> {
        let timeout = Duration::from_millis(self.settings.node_timeout_ms);
        let liveness = self.liveness.lock().map_err(|_| poisoned())?;
        let records = self.meta.nodes()?;
        let racks: HashMap<String, String> = records
            .iter()
            .map(|n| (n.node_id.clone(), n.rack.clone()))
            .collect();
        let mut nodes: Vec<NodeStatus> = records
            .into_iter()
            .map(|n| {
                let live = liveness.get(&n.node_id);
                NodeStatus {
                    healthy: live.is_some_and(|l| l.last_seen.elapsed() <= timeout),
                    last_heartbeat_ms: live.map_or(0, |l| l.last_heartbeat_ms),
                    disk_used_bytes: live.map_or(0, |l| l.disk_used_bytes),
                    http_addr: n.http_addr,
                    node: Some(NodeAddr {
                        node_id: n.node_id,
                        addr: n.addr,
                        rack: n.rack,
                    }),
                }
            })
            .collect();
        nodes.sort_by(|a, b| {
            let key = |s: &NodeStatus| s.node.as_ref().map(|n| (n.rack.clone(), n.node_id.clone()));
            key(a).cmp(&key(b))
        });
        let healthy = |id: &String| {
            liveness
                .get(id)
                .is_some_and(|l| l.last_seen.elapsed() <= timeout)
        };
        let extents = self
            .meta
            .extents()?
            .into_iter()
            .map(|(extent_id, e)| {
                let reported = e
                    .replicas
                    .iter()
                    .filter_map(|id| {
                        liveness
                            .get(id)
                            .and_then(|l| l.extents.get(&extent_id))
                            .map(|(len, _)| *len)
                    })
                    .max()
                    .unwrap_or(0);
                ExtentStatus {
                    extent_id,
                    stream: e.stream.clone(),
                    sealed: e.sealed,
                    length: if e.sealed { e.sealed_length } else { reported },
                    replicas_total: e.replicas.len() as u32,
                    replicas_healthy: e.replicas.iter().filter(|id| healthy(id)).count() as u32,
                    racks: e
                        .replicas
                        .iter()
                        .map(|id| racks.get(id).cloned().unwrap_or_default())
                        .collect(),
                }
            })
            .collect();
        Ok(StreamStatusResponse {
            nodes,
            extents,
            streams_total: self.meta.stream_count() as u32,
        })
    }
}
