//! A stream's life on the leader: opening (get-or-create), deleting and trimming streams,
//! and allocating their extents on 3 healthy nodes on 3 racks.

use super::meta::{ExtentRecord, Mutation};
use super::placement::{per_rack_max, placement_order, rank_racks, Candidate, RACKS_MIN, REPLICAS};
use super::state::{ManagerState, STREAM_NAME_BYTES_MAX};
use crate::channels::{bounded, request_with_timeout, CONTROL_RPC_TIMEOUT_MS};
use crate::error::{Result, StreamError};
use std::collections::{HashMap, HashSet};
use strata_proto::common::NodeAddr;
use strata_proto::stream::*;
use strata_types::ExtentId;

impl ManagerState {
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
                extent_id = extent_id.get(),
                "stream opened with a fresh extent"
            );
            self.update_gauges();
        }
        self.stream_info(name, &record)
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
    pub async fn trim_stream(
        &self,
        name: &str,
        keep_from_extent_id: ExtentId,
    ) -> Result<StreamInfo> {
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
                let dropped: Vec<u64> = record
                    .extent_ids
                    .drain(..index)
                    .map(ExtentId::get)
                    .collect();
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
                    "{keep_from_extent_id} is not in stream {name:?}"
                )))
            }
        }
        self.stream_info(name, &record)
    }

    /// Picks 3 healthy nodes on 3 racks and creates the extent on each; returns its id and the
    /// record for the caller to commit. Fails with Unavailable when fewer than 3 racks have a
    /// healthy node that accepts the extent.
    pub(super) async fn allocate_extent(&self, stream: &str) -> Result<(ExtentId, ExtentRecord)> {
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
                        tracing::warn!(extent_id = extent_id.get(), node_id = %candidate.node.node_id, %err, "could not create extent replica")
                    }
                }
            }
        }
        if chosen.len() < REPLICAS {
            for node in &chosen {
                if let Err(err) = self.delete_on(extent_id, node).await {
                    tracing::warn!(extent_id = extent_id.get(), node_id = %node.node_id, %err, "could not remove a partial replica");
                }
            }
            return Err(StreamError::Unavailable(format!(
                "only {} nodes accepted {extent_id}",
                chosen.len()
            )));
        }
        if chosen.iter().map(|n| &n.rack).collect::<HashSet<_>>().len() < REPLICAS {
            tracing::warn!(extent_id = extent_id.get(), "fewer than 3 healthy racks: extent placed on 2 racks (misplaced until a third rack is healthy)");
        }
        let record = ExtentRecord {
            stream: stream.to_string(),
            replicas: chosen.iter().map(|n| n.node_id.clone()).collect(),
            sealed: false,
            sealed_length: 0,
        };
        tracing::info!(stream, extent_id = extent_id.get(), replicas = ?record.replicas, "extent allocated");
        Ok((extent_id, record))
    }

    async fn create_on(&self, extent_id: ExtentId, node: &NodeAddr) -> Result<()> {
        let mut client = self.channels.extent_node(&node.addr)?;
        let request = CreateExtentRequest {
            extent_id: extent_id.get(),
        };
        bounded(
            &node.addr,
            CONTROL_RPC_TIMEOUT_MS,
            client.create_extent(request_with_timeout(request, CONTROL_RPC_TIMEOUT_MS)),
        )
        .await?;
        Ok(())
    }

    pub(super) async fn delete_on(&self, extent_id: ExtentId, node: &NodeAddr) -> Result<()> {
        let mut client = self.channels.extent_node(&node.addr)?;
        let request = DeleteExtentRequest {
            extent_id: extent_id.get(),
        };
        bounded(
            &node.addr,
            CONTROL_RPC_TIMEOUT_MS,
            client.delete_extent(request_with_timeout(request, CONTROL_RPC_TIMEOUT_MS)),
        )
        .await?;
        Ok(())
    }
}
