//! The in-process stream layer the stream tests share: a stream manager with a fast repair
//! loop and extent nodes on racks, real gRPC on 127.0.0.1, temporary folders, short timeouts.
#![allow(dead_code)]

use bytes::Bytes;
use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use strata_proto::stream::{ExtentInfo, StreamStatusResponse};
use strata_stream::{
    start_extent_node_with_scrub, start_stream_manager_with_repair, ExtentNodeConfig,
    ManagerSettings, RecordPos, RepairSettings, RunningExtentNode, RunningStreamManager,
    ScrubSettings, StreamClient, StreamManagerConfig, StreamWriter,
};
use strata_types::ExtentId;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

/// Long enough for a Raft election or a repair round on a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(30);
pub const EXTENT_SIZE_BYTES_MAX: u64 = 16 * 1024;

/// Polls `check` until it returns Some, failing the test after [`DEADLINE`].
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Cluster {
    pub manager: Option<RunningStreamManager>,
    pub manager_token: CancellationToken,
    pub _manager_dir: TempDir,
    pub client: StreamClient,
    pub nodes: Vec<Node>,
}

pub struct Node {
    pub running: RunningExtentNode,
    pub token: CancellationToken,
    pub dir: PathBuf,
    pub keep: Option<TempDir>,
}

pub fn no_scrub() -> ScrubSettings {
    ScrubSettings {
        bytes_per_sec: 0,
        interval_ms: 1_000,
    }
}

impl Cluster {
    pub async fn start(racks: &[&str], scrub: ScrubSettings) -> Cluster {
        let manager_dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let manager_token = CancellationToken::new();
        let manager = start_stream_manager_with_repair(
            StreamManagerConfig::single(
                manager_dir.path().to_path_buf(),
                &listener.local_addr().unwrap().to_string(),
                ManagerSettings {
                    extent_size_bytes_max: EXTENT_SIZE_BYTES_MAX,
                    node_timeout_ms: 1_000,
                },
            ),
            RepairSettings {
                concurrency: 4,
                bandwidth_bytes_per_sec: 64 * 1024 * 1024,
                interval_ms: 100,
                gc_delay_ms: 1_000,
            },
            listener,
            manager_token.clone(),
        )
        .await
        .unwrap();
        let client = StreamClient::new(vec![manager.addr.clone()]);
        let mut cluster = Cluster {
            manager: Some(manager),
            manager_token,
            _manager_dir: manager_dir,
            client,
            nodes: Vec::new(),
        };
        for rack in racks {
            cluster.add_node(rack, None, scrub.clone()).await;
        }
        let count = racks.len();
        cluster
            .wait_status("all nodes healthy", |s| {
                s.nodes.iter().filter(|n| n.healthy).count() == count
            })
            .await;
        cluster
    }

    pub fn manager_addr(&self) -> String {
        self.manager.as_ref().map(|m| m.addr.clone()).unwrap()
    }

    /// Starts a node on `rack`, in `dir` (a restart) or a fresh folder.
    pub async fn add_node(&mut self, rack: &str, dir: Option<PathBuf>, scrub: ScrubSettings) {
        let (dir, keep) = match dir {
            Some(dir) => (dir, None),
            None => {
                let temp = tempfile::tempdir().unwrap();
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let token = CancellationToken::new();
        let running = start_extent_node_with_scrub(
            ExtentNodeConfig {
                data_dir: dir.clone(),
                rack: rack.to_string(),
                node_id: None,
                stream_manager_addrs: vec![self.manager_addr()],
                heartbeat_interval_ms: 100,
                advertise_addr: None,
                capacity_bytes: 0,
            },
            scrub,
            listener,
            token.clone(),
        )
        .await
        .unwrap();
        self.nodes.push(Node {
            running,
            token,
            dir,
            keep,
        });
    }

    /// Stops node `node_id` (a crash as far as the others can tell); returns its folder, kept.
    pub async fn stop_node(&mut self, node_id: &str) -> (PathBuf, Option<TempDir>) {
        let index = self
            .nodes
            .iter()
            .position(|n| n.running.node_id == node_id)
            .unwrap();
        let node = self.nodes.remove(index);
        node.token.cancel();
        node.running.join().await;
        (node.dir, node.keep)
    }

    pub fn node(&self, node_id: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.running.node_id == node_id)
            .unwrap()
    }

    /// The bytes of `extent_id`'s replica file on node `node_id`.
    pub fn replica_bytes(&self, node_id: &str, extent_id: ExtentId) -> Vec<u8> {
        let path = self.node(node_id).running.store.extent_file_path(extent_id);
        file_bytes(&path).unwrap_or_else(|| panic!("no replica file {path:?}"))
    }

    pub async fn wait_status(
        &self,
        what: &str,
        check: impl Fn(&StreamStatusResponse) -> bool,
    ) -> StreamStatusResponse {
        wait_until(what, || async {
            let status = self.client.status().await.ok()?;
            check(&status).then_some(status)
        })
        .await
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

/// Every extent: 3 replicas holding the full length on healthy nodes, on 3 racks.
pub fn fully_healed(status: &StreamStatusResponse) -> bool {
    status.extents_under_replicated == 0
        && status.extents_misplaced == 0
        && status.extents.iter().all(|e| {
            e.replicas_total == 3
                && e.replicas_healthy == 3
                && e.racks.iter().collect::<HashSet<_>>().len() == 3
        })
}

/// Six nodes on racks a, a, b, b, c, c and a writer of stream "log" with `count` records
/// acknowledged.
pub async fn six_nodes_with_a_log(
    count: usize,
) -> (Cluster, StreamWriter, Vec<(RecordPos, Bytes)>) {
    let cluster = Cluster::start(&["a", "a", "b", "b", "c", "c"], no_scrub()).await;
    let writer = cluster.client.open("log").await.unwrap();
    let mut written = Vec::new();
    append_acknowledged(&writer, &mut written, count).await;
    (cluster, writer, written)
}

/// The writer's last (open) extent.
pub async fn last_extent(writer: &StreamWriter) -> ExtentInfo {
    writer.info().await.extents.last().cloned().unwrap()
}

pub fn payload(index: usize, len: usize) -> Bytes {
    let mut bytes = format!("record-{index:05}-").into_bytes();
    bytes.resize(len, (index % 251) as u8);
    Bytes::from(bytes)
}

/// Appends until `count` more records are acknowledged, retrying failed appends (they were
/// not acknowledged) for at most the test deadline.
pub async fn append_acknowledged(
    writer: &StreamWriter,
    written: &mut Vec<(RecordPos, Bytes)>,
    count: usize,
) {
    let started = Instant::now();
    let target = written.len() + count;
    while written.len() < target {
        let data = payload(written.len(), 2_000);
        match writer.append(data.clone()).await {
            Ok(pos) => written.push((pos, data)),
            Err(err) => {
                assert!(!err.is_fenced(), "writer fenced: {err}");
                assert!(started.elapsed() < DEADLINE, "appends keep failing: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

pub async fn assert_all_readable(client: &StreamClient, written: &[(RecordPos, Bytes)]) {
    for (pos, data) in written {
        let read = client
            .read_record(pos.extent_id, pos.offset)
            .await
            .unwrap_or_else(|err| panic!("record at {pos:?} unreadable: {err}"));
        assert_eq!(&read, data, "record at {pos:?}");
    }
}

pub fn file_bytes(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}
