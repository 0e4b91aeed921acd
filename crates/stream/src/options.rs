//! What an operator sets for the stream layer's two node kinds (file / environment / flags,
//! see [`strata_util::config`]); the keys are the binaries' long flag names with `_`. Each
//! converts into the config its `start_*` function takes.

use crate::manager::{ManagerSettings, RepairSettings, StreamManagerConfig};
use crate::node::{ExtentNodeConfig, ScrubSettings, HEARTBEAT_INTERVAL_MS_DEFAULT};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use strata_types::NodeId;
use strata_util::config::split_list;

fn loopback_any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// `strata-extent-node`'s options.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtentNodeOptions {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// Rack label (required).
    pub rack: Option<String>,
    /// Overrides the node id kept in the data folder.
    pub node_id: Option<String>,
    /// Stream manager gRPC addresses, comma-separated (required).
    pub stream_manager: String,
    pub heartbeat_interval_ms: u64,
    /// Rate at which the scrubber re-verifies sealed replicas (0 = no scrubbing).
    pub scrub_bytes_per_sec: u64,
    /// Pause between two scrub passes.
    pub scrub_interval_ms: u64,
    /// Bytes this node offers for extents, reported for placement by fill (0 = the size of
    /// the file system holding the data folder).
    pub capacity_bytes: u64,
}

impl Default for ExtentNodeOptions {
    fn default() -> Self {
        let scrub = ScrubSettings::default();
        Self {
            data_dir: PathBuf::from("data/extent-node"),
            listen: loopback_any(),
            http_listen: loopback_any(),
            rack: None,
            node_id: None,
            stream_manager: String::new(),
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS_DEFAULT,
            scrub_bytes_per_sec: scrub.bytes_per_sec,
            scrub_interval_ms: scrub.interval_ms,
            capacity_bytes: 0,
        }
    }
}

impl ExtentNodeOptions {
    /// The node's config and scrubber settings; an error names a missing required option.
    pub fn node_config(&self) -> anyhow::Result<(ExtentNodeConfig, ScrubSettings)> {
        let rack = self
            .rack
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--rack is required (flag or config)"))?;
        let stream_manager_addrs = split_list(&self.stream_manager);
        if stream_manager_addrs.is_empty() {
            anyhow::bail!("--stream-manager is required (flag or config)");
        }
        let config = ExtentNodeConfig {
            data_dir: self.data_dir.clone(),
            rack,
            node_id: self.node_id.clone(),
            stream_manager_addrs,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            advertise_addr: None,
            capacity_bytes: self.capacity_bytes,
        };
        let scrub = ScrubSettings {
            bytes_per_sec: self.scrub_bytes_per_sec,
            interval_ms: self.scrub_interval_ms,
        };
        Ok((config, scrub))
    }
}

/// `strata-stream-manager`'s options.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamManagerOptions {
    /// Default: `data/stream-manager-<node_id>`.
    pub data_dir: Option<PathBuf>,
    /// Written as a bare number (`NodeId` is serde-transparent).
    pub node_id: NodeId,
    /// Every member, "1=host:port,2=...". Default: this member alone, at `listen`.
    pub members: Option<String>,
    /// Default: this member's address in `members`.
    pub listen: Option<SocketAddr>,
    pub http_listen: SocketAddr,
    pub extent_size_bytes_max: u64,
    pub node_timeout_ms: u64,
    pub repair_concurrency: usize,
    pub repair_bandwidth_bytes_per_sec: u64,
    pub repair_interval_ms: u64,
    pub gc_delay_ms: u64,
    /// This stamp's name, as its front-ends register it with the location group.
    pub stamp: Option<String>,
    /// The location group's members' gRPC addresses, comma-separated: where the leader reports
    /// the stamp's fill. None: no reports (a stamp without a location group).
    pub location: Option<String>,
}

impl Default for StreamManagerOptions {
    fn default() -> Self {
        let settings = ManagerSettings::default();
        let repair = RepairSettings::default();
        Self {
            data_dir: None,
            node_id: NodeId::new(1),
            members: None,
            listen: None,
            http_listen: loopback_any(),
            extent_size_bytes_max: settings.extent_size_bytes_max,
            node_timeout_ms: settings.node_timeout_ms,
            repair_concurrency: repair.concurrency,
            repair_bandwidth_bytes_per_sec: repair.bandwidth_bytes_per_sec,
            repair_interval_ms: repair.interval_ms,
            gc_delay_ms: repair.gc_delay_ms,
            stamp: None,
            location: None,
        }
    }
}

impl StreamManagerOptions {
    /// The member's config and repair settings, and the address to listen on.
    pub fn manager_config(
        &self,
    ) -> anyhow::Result<(StreamManagerConfig, RepairSettings, SocketAddr)> {
        let node_id = self.node_id;
        let members: BTreeMap<NodeId, String> = match &self.members {
            Some(text) => strata_raft::parse_members(text)?
                .into_iter()
                .map(|(id, addr)| (NodeId::new(id), addr))
                .collect(),
            None => {
                let listen = self.listen.ok_or_else(|| {
                    anyhow::anyhow!("give --members (or --listen for a one-member group)")
                })?;
                BTreeMap::from([(node_id, listen.to_string())])
            }
        };
        let own_addr: SocketAddr = members
            .get(&node_id)
            .ok_or_else(|| anyhow::anyhow!("--node-id {} is not one of --members", node_id.get()))?
            .parse()?;
        let data_dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("data/stream-manager-{}", node_id.get())));
        let config = StreamManagerConfig {
            data_dir,
            node_id,
            members,
            settings: ManagerSettings {
                extent_size_bytes_max: self.extent_size_bytes_max,
                node_timeout_ms: self.node_timeout_ms,
            },
        };
        let repair = RepairSettings {
            concurrency: self.repair_concurrency,
            bandwidth_bytes_per_sec: self.repair_bandwidth_bytes_per_sec,
            interval_ms: self.repair_interval_ms,
            gc_delay_ms: self.gc_delay_ms,
        };
        Ok((config, repair, self.listen.unwrap_or(own_addr)))
    }
}

impl StreamManagerOptions {
    /// The stamp name and location group the fill is reported to, when `--location` is given
    /// (the stamp then defaults to `stamp-1`, as the front-end's does).
    pub fn fill_report(&self) -> anyhow::Result<Option<(String, strata_location::LocationClient)>> {
        let Some(addrs) = self.location.as_deref().filter(|a| !a.trim().is_empty()) else {
            return Ok(None);
        };
        let client = strata_location::LocationClient::new(addrs)
            .map_err(|err| anyhow::anyhow!("--location {addrs:?}: {err}"))?;
        let stamp = self.stamp.clone().unwrap_or_else(|| "stamp-1".to_string());
        Ok(Some((stamp, client)))
    }
}
