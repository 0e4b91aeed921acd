//! What the repair sees: a snapshot of nodes, liveness and heartbeat reports ([`View`]), the
//! condition of each replica and what a pass concludes about an extent ([`Assessment`]), and
//! the small steps on one replica (ask its state, seal it, swap it in the replica set).

use super::super::meta::Mutation;
use super::super::meta::{ExtentRecord, NodeRecord};
use super::super::placement::REPLICAS;
use super::super::state::{poisoned, ManagerState};
use crate::channels::{bounded, request_with_timeout, CONTROL_RPC_TIMEOUT_MS};
use crate::error::Result;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use strata_proto::common::NodeAddr;
use strata_proto::stream::{ExtentInfoRequest, SealRequest};
use strata_types::ExtentId;

/// The state of one replica of an extent, as the repair sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
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
pub(crate) struct View {
    pub healthy: HashSet<String>,
    pub nodes: HashMap<String, NodeRecord>,
    /// node id -> extent id -> (length, sealed), healthy nodes only.
    pub reports: HashMap<String, HashMap<ExtentId, (u64, bool)>>,
    pub bad: HashSet<(ExtentId, String)>,
    pub recently_installed: HashSet<(ExtentId, String)>,
    pub referenced: HashSet<ExtentId>,
}

/// What a pass (or GetStatus) concludes about one referenced extent.
pub(crate) struct Assessment {
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

    pub fn condition(
        &self,
        extent_id: ExtentId,
        record: &ExtentRecord,
        node_id: &str,
    ) -> Condition {
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

    pub fn assess(&self, extent_id: ExtentId, record: &ExtentRecord) -> Assessment {
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
    pub(crate) fn view(&self) -> Result<View> {
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

    pub(super) fn in_flight_target(&self, extent_id: ExtentId) -> Result<Option<String>> {
        let tracking = self.tracking.lock().map_err(|_| poisoned())?;
        Ok(tracking.in_flight.get(&extent_id).map(|(t, _)| t.clone()))
    }

    /// A replica's (length, sealed) asked of its node; None when the node does not hold it.
    pub(super) async fn replica_state(
        &self,
        node_id: &str,
        extent_id: ExtentId,
    ) -> Result<Option<(u64, bool)>> {
        let node = self.node_addr(node_id)?;
        let mut client = self.channels.extent_node(&node.addr)?;
        let request = ExtentInfoRequest {
            extent_id: extent_id.get(),
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

    pub(super) async fn seal_on(
        &self,
        node: &NodeAddr,
        extent_id: ExtentId,
        length: u64,
    ) -> Result<()> {
        let mut client = self.channels.extent_node(&node.addr)?;
        let request = SealRequest {
            extent_id: extent_id.get(),
            length,
        };
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
    pub(super) async fn swap_replica(
        &self,
        extent_id: ExtentId,
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
        tracing::info!(extent_id = extent_id.get(), replaced = old, by = new, replicas = ?record.replicas, "replica set updated");
        Ok(true)
    }
}
