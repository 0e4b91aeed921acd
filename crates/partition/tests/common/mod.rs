//! What the partition tests share on top of strata-testkit's stream layer (3 extent nodes on
//! 3 racks, in process): partition server states without a manager, and one serving a whole
//! key space over gRPC.

use std::sync::Arc;

use strata_partition::{PartitionServerState, PartitionService};
use strata_proto::partition::partition_server_client::PartitionServerClient;
use strata_proto::partition::partition_server_server::PartitionServerServer;
pub use strata_testkit::{wait_for, StreamLayer};
use tokio_util::sync::CancellationToken;

/// A stream layer of 3 extent nodes on 3 racks sealing extents at `extent_size_bytes_max`,
/// torn down when dropped.
pub async fn stream_layer(extent_size_bytes_max: u64) -> StreamLayer {
    StreamLayer::start(3, extent_size_bytes_max).await
}

/// A partition server state on `layer` with no manager: tests hand it its ranges with
/// `PartitionServerState::assign`, which stands in for heartbeats and starts one long lease.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn partition_server(id: &str, layer: &StreamLayer) -> Arc<PartitionServerState> {
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
            stamps: StampsConfig::default(),
        },
        layer.client.clone(),
    )
}

/// Serves `state`'s gRPC service alone (none of a node's background loops: the test drives
/// the server) on `listener` until `token` is cancelled.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn serve_state(
    state: Arc<PartitionServerState>,
    listener: tokio::net::TcpListener,
    token: CancellationToken,
) {
    let router = strata_util::rpc::server()
        .add_service(PartitionServerServer::new(PartitionService::new(state)));
    tokio::spawn(strata_util::rpc::serve(router, listener, token));
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
    PartitionServerClient<strata_util::rpc::Channel>,
    Arc<PartitionServerState>,
    CancellationToken,
) {
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
    let probe = strata_types::keys::object_key("b", "k");
    wait_for("the range to load", || {
        let loaded = state.range_for(&probe).is_ok();
        async move { loaded.then_some(()) }
    })
    .await;
    let (listener, addr) = strata_testkit::loopback_listener().await;
    let token = CancellationToken::new();
    serve_state(state.clone(), listener, token.clone());
    let mut client = PartitionServerClient::new(strata_util::rpc::channel(&addr).unwrap());
    client
        .create_bucket(CreateBucketRequest {
            bucket: Some(strata_proto::common::BucketMeta {
                name: "b".into(),
                ..Default::default()
            }),
            geo_replica: false,
        })
        .await
        .unwrap();
    (client, state, token)
}

/// Starts an upload of `key` in bucket `b`; answers its upload id.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub async fn create_upload(
    client: &mut PartitionServerClient<strata_util::rpc::Channel>,
    key: &str,
) -> String {
    client
        .create_multipart_upload(strata_proto::partition::CreateMultipartUploadRequest {
            bucket: "b".into(),
            key: key.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .upload_id
}
