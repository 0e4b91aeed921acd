//! Shared by the stream-layer benchmarks: an in-process stream manager group (3 Raft members,
//! as a stamp runs it) and extent nodes on 127.0.0.1 with temporary folders, started, stopped
//! and replaced by node id, plus bounded polling of the manager's status and small statistics
//! helpers.

// Each example uses a part of this module.
#![allow(dead_code)]

use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};
use strata_proto::stream::StreamStatusResponse;
use strata_stream::{
    start_extent_node_with_scrub, start_stream_manager_with_repair, ExtentNodeConfig,
    ManagerSettings, RepairSettings, RunningExtentNode, RunningStreamManager, ScrubSettings,
    StreamClient, StreamManagerConfig,
};
use strata_types::NodeId;
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

/// Members of the stream manager's Raft group.
const MANAGER_MEMBERS: u64 = 3;

/// One member of the stream manager group; `running` is None while it is stopped.
struct Member {
    config: StreamManagerConfig,
    running: Option<(RunningStreamManager, CancellationToken)>,
    _dir: TempDir,
}

/// A stream manager group and its extent nodes, in this process.
pub struct Cluster {
    members: Vec<Member>,
    manager_addrs: Vec<String>,
    repair: RepairSettings,
    pub client: StreamClient,
    pub nodes: Vec<Node>,
}

async fn start_member(
    config: &StreamManagerConfig,
    repair: &RepairSettings,
) -> Result<(RunningStreamManager, CancellationToken)> {
    let addr = &config.members[&config.node_id];
    let listener = wait_until("the member's port free again", || async {
        tokio::net::TcpListener::bind(addr.as_str()).await.ok()
    })
    .await?;
    let token = CancellationToken::new();
    let running =
        start_stream_manager_with_repair(config.clone(), repair.clone(), listener, token.clone())
            .await?;
    Ok((running, token))
}

impl Cluster {
    /// Starts a manager and one node per entry of `racks`; returns once all are healthy.
    pub async fn start(
        racks: &[&str],
        settings: ManagerSettings,
        repair: RepairSettings,
    ) -> Result<Cluster> {
        let mut members = BTreeMap::new();
        for id in 1..=MANAGER_MEMBERS {
            // Reserve a port: the member binds it right after (and again on a restart).
            let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
            members.insert(NodeId::new(id), probe.local_addr()?.to_string());
        }
        let mut started = Vec::new();
        for id in 1..=MANAGER_MEMBERS {
            let dir = tempfile::tempdir().context("manager temp dir")?;
            let config = StreamManagerConfig {
                data_dir: dir.path().to_path_buf(),
                node_id: NodeId::new(id),
                members: members.clone(),
                settings: settings.clone(),
            };
            let running = start_member(&config, &repair).await?;
            started.push(Member {
                config,
                running: Some(running),
                _dir: dir,
            });
        }
        let manager_addrs: Vec<String> = members.values().cloned().collect();
        let client = StreamClient::new(manager_addrs.clone());
        let mut cluster = Cluster {
            members: started,
            manager_addrs,
            repair,
            client,
            nodes: Vec::new(),
        };
        for rack in racks {
            cluster.add_node(rack).await?;
        }
        cluster.wait_nodes_healthy(racks.len()).await?;
        Ok(cluster)
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
                stream_manager_addrs: self.manager_addrs.clone(),
                heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
                advertise_addr: None,
                capacity_bytes: 0,
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

    /// Waits for a leader of the manager group; returns its member id.
    pub async fn manager_leader(&self) -> Result<NodeId> {
        wait_until("a stream manager leader", || async {
            self.members.iter().find_map(|m| {
                let (running, _) = m.running.as_ref()?;
                running.is_leader().then_some(m.config.node_id)
            })
        })
        .await
    }

    /// Waits until every running manager member has applied as far as the leader.
    pub async fn wait_managers_caught_up(&self) -> Result<()> {
        wait_until("every manager member caught up", || async {
            let applied: Vec<u64> = self
                .members
                .iter()
                .filter_map(|m| m.running.as_ref().map(|(r, _)| r.last_applied_index()))
                .collect();
            let max = applied.iter().copied().max()?;
            applied.iter().all(|&a| a == max).then_some(())
        })
        .await
    }

    /// Stops manager member `node_id` (as a crash would: its server goes away at once).
    pub async fn stop_manager(&mut self, node_id: NodeId) -> Result<()> {
        let member = self
            .members
            .iter_mut()
            .find(|m| m.config.node_id == node_id)
            .ok_or_else(|| anyhow!("no manager member {node_id}"))?;
        if let Some((running, token)) = member.running.take() {
            token.cancel();
            running.join().await;
        }
        Ok(())
    }

    /// Starts stopped manager member `node_id` again on its folder and address.
    pub async fn restart_manager(&mut self, node_id: NodeId) -> Result<()> {
        let repair = self.repair.clone();
        let member = self
            .members
            .iter_mut()
            .find(|m| m.config.node_id == node_id)
            .ok_or_else(|| anyhow!("no manager member {node_id}"))?;
        if member.running.is_none() {
            member.running = Some(start_member(&member.config, &repair).await?);
        }
        Ok(())
    }

    pub async fn stop(mut self) {
        for node in self.nodes.drain(..) {
            node.token.cancel();
            node.running.join().await;
        }
        for member in self.members.drain(..) {
            if let Some((running, token)) = member.running {
                token.cancel();
                running.join().await;
            }
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

/// The value at quantile `q` (0..=1, nearest rank) of `samples`; zero when empty.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1_000.0
}

/// One markdown table row: label, count, min, median, p90, max in milliseconds.
pub fn row(label: &str, samples: &[Duration]) {
    println!(
        "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        samples.len(),
        ms(quantile(samples, 0.0)),
        ms(quantile(samples, 0.5)),
        ms(quantile(samples, 0.9)),
        ms(quantile(samples, 1.0)),
    );
}
