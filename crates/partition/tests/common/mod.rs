//! A real stream layer in process for the partition tests: a stream manager and 3 extent
//! nodes on 3 racks, on 127.0.0.1, torn down when the returned [`StreamLayer`] is dropped.

use std::time::{Duration, Instant};

use strata_stream::{
    start_extent_node, start_stream_manager, ExtentNodeConfig, ManagerSettings, StreamClient,
    StreamManagerConfig,
};
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;

pub struct StreamLayer {
    pub client: StreamClient,
    token: CancellationToken,
    _dirs: Vec<TempDir>,
}

impl Drop for StreamLayer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

pub async fn stream_layer(extent_size_bytes_max: u64) -> StreamLayer {
    let token = CancellationToken::new();
    let manager_dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let manager = start_stream_manager(
        StreamManagerConfig::single(
            manager_dir.path().to_path_buf(),
            &listener.local_addr().unwrap().to_string(),
            ManagerSettings {
                extent_size_bytes_max,
                node_timeout_ms: 2_000,
            },
        ),
        listener,
        token.clone(),
    )
    .await
    .unwrap();
    let mut dirs = vec![manager_dir];
    for rack in ["rack-1", "rack-2", "rack-3"] {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        start_extent_node(
            ExtentNodeConfig {
                data_dir: dir.path().to_path_buf(),
                rack: rack.into(),
                node_id: None,
                stream_manager_addrs: vec![manager.addr.clone()],
                heartbeat_interval_ms: 100,
                advertise_addr: None,
            },
            listener,
            token.clone(),
        )
        .await
        .unwrap();
        dirs.push(dir);
    }
    let client = StreamClient::new(vec![manager.addr.clone()]);
    // Wait until placement can use all three racks.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let healthy = client
            .status()
            .await
            .map(|s| s.nodes.iter().filter(|n| n.healthy).count())
            .unwrap_or(0);
        if healthy == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "extent nodes never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    StreamLayer {
        client,
        token,
        _dirs: dirs,
    }
}

/// A partition server state on `layer` with no manager: tests hand it its ranges with
/// `PartitionServerState::assign`, which stands in for heartbeats and starts one long lease.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn partition_server(
    id: &str,
    layer: &StreamLayer,
) -> std::sync::Arc<strata_partition::PartitionServerState> {
    use strata_partition::*;
    PartitionServerState::new(
        PartitionServerConfig {
            server_id: id.into(),
            advertise_addr: format!("{id}:1"),
            http_addr: String::new(),
            manager_addrs: Vec::new(),
            heartbeat_interval_ms: 500,
            lease_ms: 3_600_000,
            checkpoint_every_entries: 10_000,
            compaction: CompactionConfig::default(),
            throttle: ThrottleConfig::default(),
            lifecycle: LifecycleConfig::default(),
        },
        layer.client.clone(),
    )
}

/// Partition server `id` over gRPC owning the whole key space (range 1) at `epoch`, loaded,
/// with bucket `b` created (writes need their bucket's record: a write lease, see
/// crates/partition/src/bucket_gate.rs). A later epoch on another server is a move: it fences
/// the range's streams and loads checkpoint + log. The layer must outlive it.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub async fn serve_range(
    layer: &StreamLayer,
    id: &str,
    epoch: u64,
) -> (
    strata_proto::partition::partition_server_client::PartitionServerClient<
        strata_util::rpc::Channel,
    >,
    std::sync::Arc<strata_partition::PartitionServerState>,
    CancellationToken,
) {
    use strata_proto::partition::partition_server_client::PartitionServerClient;
    use strata_proto::partition::partition_server_server::PartitionServerServer;
    use strata_proto::partition::CreateBucketRequest;
    let state = partition_server(id, layer);
    state.assign(vec![strata_proto::manager::RangeAssignment {
        range_id: 1,
        low: Vec::new(),
        high: Vec::new(),
        owner_id: id.into(),
        owner_addr: format!("{id}:1"),
        epoch,
    }]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while state
        .range_for(&strata_types::keys::object_key("b", "k"))
        .is_err()
    {
        assert!(Instant::now() < deadline, "range never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (listener, addr) = strata_util::rpc::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let token = CancellationToken::new();
    let router = strata_util::rpc::server().add_service(PartitionServerServer::new(
        strata_partition::PartitionService::new(state.clone()),
    ));
    tokio::spawn(strata_util::rpc::serve(router, listener, token.clone()));
    let mut client =
        PartitionServerClient::new(strata_util::rpc::channel(&addr.to_string()).unwrap());
    client
        .create_bucket(CreateBucketRequest {
            bucket: Some(strata_proto::common::BucketMeta {
                name: "b".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    (client, state, token)
}
