//! A real stream layer in process: one stream manager and N extent nodes, each on its own
//! rack, torn down when the [`StreamLayer`] is dropped.

use crate::{loopback_listener, wait_for, TempDirs};
use strata_stream::{
    start_extent_node, start_stream_manager, ExtentNodeConfig, ManagerSettings, StreamClient,
    StreamManagerConfig,
};
use tokio_util::sync::CancellationToken;

/// A node silent this long is unhealthy (short, so tests see failures quickly).
const NODE_TIMEOUT_MS: u64 = 2_000;
/// Extent nodes heartbeat this often (so a fresh node is healthy within a fraction of a second).
const HEARTBEAT_INTERVAL_MS: u64 = 100;

pub struct StreamLayer {
    /// The stream manager's gRPC address.
    pub addr: String,
    pub client: StreamClient,
    token: CancellationToken,
    _dirs: TempDirs,
}

impl Drop for StreamLayer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

impl StreamLayer {
    /// A stream manager sealing extents at `extent_size_bytes_max` and `nodes` extent nodes on
    /// racks "rack-1".."rack-N"; returns once every node is healthy (placement needs three
    /// racks, so three nodes is the usual count).
    pub async fn start(nodes: usize, extent_size_bytes_max: u64) -> StreamLayer {
        let token = CancellationToken::new();
        let mut dirs = TempDirs::default();
        let (listener, addr) = loopback_listener().await;
        let settings = ManagerSettings {
            extent_size_bytes_max,
            node_timeout_ms: NODE_TIMEOUT_MS,
        };
        let config = StreamManagerConfig::single(dirs.add(), &addr, settings);
        let manager = start_stream_manager(config, listener, token.clone())
            .await
            .expect("the stream manager starts");
        for rack in 1..=nodes {
            let (listener, _) = loopback_listener().await;
            let config = ExtentNodeConfig {
                data_dir: dirs.add(),
                rack: format!("rack-{rack}"),
                node_id: None,
                stream_manager_addrs: vec![manager.addr.clone()],
                heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
                advertise_addr: None,
                capacity_bytes: 0,
            };
            start_extent_node(config, listener, token.clone())
                .await
                .expect("an extent node starts");
        }
        let client = StreamClient::new(vec![manager.addr.clone()]);
        wait_for(&format!("{nodes} healthy extent nodes"), || {
            let client = client.clone();
            async move {
                let status = client.status().await.ok()?;
                (status.nodes.iter().filter(|n| n.healthy).count() == nodes).then_some(())
            }
        })
        .await;
        StreamLayer {
            addr: manager.addr.clone(),
            client,
            token,
            _dirs: dirs,
        }
    }
}
