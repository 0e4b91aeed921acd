//! Shared by the stream-layer benchmarks: an in-process stream manager and extent nodes on
//! 127.0.0.1:0 with temporary folders, started, stopped and replaced by node id, plus bounded
//! polling of the manager's status and small statistics helpers.

use anyhow::{anyhow, bail, Context, Result};
use std::future::Future;
use std::time::{Duration, Instant};
use strata_proto::stream::StreamStatusResponse;
use strata_stream::{
    start_extent_node_with_scrub, start_stream_manager_with_repair, ExtentNodeConfig,
    ManagerSettings, RepairSettings, RunningExtentNode, RunningStreamManager, ScrubSettings,
    StreamClient, StreamManagerConfig,
};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// Bound on every wait of the benchmarks.
pub const WAIT_DEADLINE: Duration = Duration::from_secs(120);
/// Pause between two polls of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Heartbeat period of the benchmark nodes.
const HEARTBEAT_INTERVAL_MS: u64 = 100;

/// Polls `check` until it returns Some; fails after [`WAIT_DEADLINE`].
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if started.elapsed() > WAIT_DEADLINE {
            bail!("timed out after {WAIT_DEADLINE:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

pub struct Node {
    pub running: RunningExtentNode,
    token: CancellationToken,
    _dir: TempDir,
}

/// A stream manager and its extent nodes, in this process.
pub struct Cluster {
    manager: Option<RunningStreamManager>,
    manager_token: CancellationToken,
    _manager_dir: TempDir,
    pub client: StreamClient,
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// Starts a manager and one node per entry of `racks`; returns once all are healthy.
    pub async fn start(
        racks: &[&str],
        settings: ManagerSettings,
        repair: RepairSettings,
    ) -> Result<Cluster> {
        let manager_dir = tempfile::tempdir().context("manager temp dir")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let manager_token = CancellationToken::new();
        let manager = start_stream_manager_with_repair(
            StreamManagerConfig {
                data_dir: manager_dir.path().to_path_buf(),
                settings,
            },
            repair,
            listener,
            manager_token.clone(),
        )
        .await?;
        let client = StreamClient::new(vec![manager.addr.clone()]);
        let mut cluster = Cluster {
            manager: Some(manager),
            manager_token,
            _manager_dir: manager_dir,
            client,
            nodes: Vec::new(),
        };
        for rack in racks {
            cluster.add_node(rack).await?;
        }
        cluster.wait_nodes_healthy(racks.len()).await?;
        Ok(cluster)
    }

    fn manager_addr(&self) -> Result<String> {
        self.manager
            .as_ref()
            .map(|m| m.addr.clone())
            .ok_or_else(|| anyhow!("manager stopped"))
    }

    /// Starts a node on `rack` in a fresh folder (no scrubbing); returns its id.
    pub async fn add_node(&mut self, rack: &str) -> Result<String> {
        let dir = tempfile::tempdir().context("node temp dir")?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let token = CancellationToken::new();
        let running = start_extent_node_with_scrub(
            ExtentNodeConfig {
                data_dir: dir.path().to_path_buf(),
                rack: rack.to_string(),
                node_id: None,
                stream_manager_addrs: vec![self.manager_addr()?],
                heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
                advertise_addr: None,
            },
            ScrubSettings {
                bytes_per_sec: 0,
                interval_ms: 60_000,
            },
            listener,
            token.clone(),
        )
        .await?;
        let node_id = running.node_id.clone();
        self.nodes.push(Node {
            running,
            token,
            _dir: dir,
        });
        Ok(node_id)
    }

    /// Stops node `node_id` (its server closes; its folder is dropped); returns its rack.
    pub async fn stop_node(&mut self, node_id: &str) -> Result<String> {
        let index = self
            .nodes
            .iter()
            .position(|n| n.running.node_id == node_id)
            .ok_or_else(|| anyhow!("no running node {node_id}"))?;
        let node = self.nodes.remove(index);
        node.token.cancel();
        let rack = node.running.rack.clone();
        node.running.join().await;
        Ok(rack)
    }

    /// Waits until the manager's status satisfies `check`; returns that status.
    pub async fn wait_status(
        &self,
        what: &str,
        check: impl Fn(&StreamStatusResponse) -> bool,
    ) -> Result<StreamStatusResponse> {
        wait_until(what, || async {
            let status = self.client.status().await.ok()?;
            check(&status).then_some(status)
        })
        .await
    }

    /// Waits until exactly the running nodes are healthy and `count` of them run.
    pub async fn wait_nodes_healthy(&self, count: usize) -> Result<()> {
        let running: Vec<String> = self
            .nodes
            .iter()
            .map(|n| n.running.node_id.clone())
            .collect();
        self.wait_status("exactly the running nodes healthy", |s| {
            let healthy: Vec<&String> = s
                .nodes
                .iter()
                .filter(|n| n.healthy)
                .filter_map(|n| n.node.as_ref().map(|a| &a.node_id))
                .collect();
            healthy.len() == count && healthy.iter().all(|id| running.contains(id))
        })
        .await?;
        Ok(())
    }

    pub async fn stop(mut self) {
        for node in self.nodes.drain(..) {
            node.token.cancel();
            node.running.join().await;
        }
        self.manager_token.cancel();
        if let Some(manager) = self.manager.take() {
            manager.join().await;
        }
    }
}

/// Every referenced extent has 3 healthy replicas holding its full length.
pub fn fully_replicated(status: &StreamStatusResponse) -> bool {
    status.extents_under_replicated == 0
        && status.repair_bytes_left == 0
        && status.extents.iter().all(|e| e.replicas_healthy == 3)
}

/// Logs go to stderr only when RUST_LOG is set (the benchmarks print a table on stdout).
pub fn init_logging() {
    if std::env::var_os("RUST_LOG").is_some() {
        strata_util::init_tracing();
    }
}
