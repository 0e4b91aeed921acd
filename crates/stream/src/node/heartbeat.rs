//! The node's heartbeat to the stream manager: its address, rack, disk use and extents, sent
//! to every member of the group at once (so whichever member leads next already knows which
//! nodes live).

use crate::channels::{bounded, request_with_timeout, ChannelCache};
use crate::extent::ExtentStore;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use strata_proto::common::NodeAddr;
use strata_proto::stream::{ExtentReport, NodeHeartbeat};
use tokio_util::sync::CancellationToken;

/// Bound on one heartbeat RPC.
pub const HEARTBEAT_TIMEOUT_MS: u64 = 2_000;

pub struct Heartbeat {
    pub node: NodeAddr,
    pub http_addr: Arc<RwLock<String>>,
    pub store: Arc<ExtentStore>,
    pub manager_addrs: Vec<String>,
    pub interval_ms: u64,
    /// See `ExtentNodeConfig::capacity_bytes` (0: the file system's size).
    pub capacity_bytes: u64,
    pub data_dir: PathBuf,
}

/// Size of the file system holding `dir`, in bytes; 0 when it cannot be read (reported as
/// unknown rather than failing the heartbeat, which also carries liveness).
pub fn file_system_bytes(dir: &Path) -> u64 {
    match nix::sys::statvfs::statvfs(dir) {
        Ok(stats) => stats.blocks().saturating_mul(stats.fragment_size()),
        Err(err) => {
            tracing::warn!(%err, dir = %dir.display(), "cannot read the file system's size");
            0
        }
    }
}

impl Heartbeat {
    fn message(&self) -> crate::Result<NodeHeartbeat> {
        let report = self.store.report()?;
        let disk_used_bytes = report.iter().map(|s| s.length).sum();
        let extents = report
            .into_iter()
            .map(|s| ExtentReport {
                extent_id: s.extent_id.get(),
                length: s.length,
                sealed: s.sealed,
                tail_unverified: s.tail_unverified,
            })
            .collect();
        let http_addr = self.http_addr.read().map(|a| a.clone()).unwrap_or_default();
        Ok(NodeHeartbeat {
            node: Some(self.node.clone()),
            extents,
            disk_used_bytes,
            http_addr,
            disk_capacity_bytes: match self.capacity_bytes {
                0 => file_system_bytes(&self.data_dir),
                configured => configured,
            },
        })
    }

    /// Heartbeats every member of the stream manager group, each on its own loop (a paused or
    /// slow member never delays the others), until `token` is cancelled.
    pub async fn run(self, token: CancellationToken) {
        let this = Arc::new(self);
        let loops: Vec<_> = this
            .manager_addrs
            .iter()
            .map(|addr| tokio::spawn(this.clone().run_to(addr.clone(), token.clone())))
            .collect();
        for handle in loops {
            if let Err(err) = handle.await {
                tracing::warn!(%err, "heartbeat loop failed");
            }
        }
    }

    /// Heartbeats member `addr` every `interval_ms` (the first at once). A node whose disk
    /// failed stops: silence is how the stream manager learns a node is gone, so it seals the
    /// node's open extents without it and re-replicates its data.
    async fn run_to(self: Arc<Self>, addr: String, token: CancellationToken) {
        let channels = ChannelCache::new();
        let mut failing = false;
        let interval = Duration::from_millis(self.interval_ms.max(10));
        loop {
            if self.store.disk_failed() {
                tracing::error!(manager = %addr, "disk failed: heartbeats stop so the stream manager replaces this node");
                return;
            }
            let sent = async {
                let message = self.message()?;
                let mut client = channels.stream_manager(&addr)?;
                let call = client.heartbeat(request_with_timeout(message, HEARTBEAT_TIMEOUT_MS));
                bounded(&addr, HEARTBEAT_TIMEOUT_MS, call).await
            };
            let result = tokio::select! {
                _ = token.cancelled() => return,
                result = sent => result,
            };
            match result {
                Ok(_) if failing => {
                    tracing::info!(manager = %addr, "heartbeats reach this stream manager member again");
                    failing = false;
                }
                Ok(_) => {}
                Err(err) => {
                    if !failing {
                        tracing::warn!(manager = %addr, %err, "heartbeat to a stream manager member failed");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}
