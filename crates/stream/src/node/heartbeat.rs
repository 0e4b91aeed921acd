//! The node's heartbeat to the stream manager: its address, rack, disk use and extents.

use crate::channels::{bounded, request_with_timeout, ChannelCache};
use crate::extent::ExtentStore;
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
}

impl Heartbeat {
    fn message(&self) -> crate::Result<NodeHeartbeat> {
        let report = self.store.report()?;
        let disk_used_bytes = report.iter().map(|s| s.length).sum();
        let extents = report
            .into_iter()
            .map(|s| ExtentReport {
                extent_id: s.extent_id,
                length: s.length,
                sealed: s.sealed,
            })
            .collect();
        let http_addr = self.http_addr.read().map(|a| a.clone()).unwrap_or_default();
        Ok(NodeHeartbeat {
            node: Some(self.node.clone()),
            extents,
            disk_used_bytes,
            http_addr,
        })
    }

    /// Sends to the managers in turn, starting with the one that answered last. Returns the
    /// index of the manager that took it.
    async fn send_once(&self, channels: &ChannelCache, start: usize) -> crate::Result<usize> {
        let message = self.message()?;
        let mut last_error = None;
        for step in 0..self.manager_addrs.len() {
            let index = (start + step) % self.manager_addrs.len();
            let addr = &self.manager_addrs[index];
            let mut client = channels.stream_manager(addr)?;
            let call =
                client.heartbeat(request_with_timeout(message.clone(), HEARTBEAT_TIMEOUT_MS));
            match bounded(addr, HEARTBEAT_TIMEOUT_MS, call).await {
                Ok(_) => return Ok(index),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error
            .unwrap_or_else(|| crate::StreamError::Unavailable("no stream manager address".into())))
    }

    /// Heartbeats every `interval_ms` (the first at once) until `token` is cancelled.
    pub async fn run(self, token: CancellationToken) {
        let channels = ChannelCache::new();
        let mut preferred = 0;
        let mut failing = false;
        let interval = Duration::from_millis(self.interval_ms.max(10));
        loop {
            match self.send_once(&channels, preferred).await {
                Ok(index) => {
                    if failing {
                        tracing::info!(manager = %self.manager_addrs[index], "heartbeats reach the stream manager again");
                    }
                    preferred = index;
                    failing = false;
                }
                Err(err) => {
                    if !failing {
                        tracing::warn!(%err, "heartbeat to the stream manager failed");
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
