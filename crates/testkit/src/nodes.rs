//! The stamp's other nodes, each started through its layer's start function: a partition
//! manager, the location service and partition servers.

use crate::loopback_listener;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use strata_manager::planner::PlannerConfig;
use strata_manager::{ManagerConfig, ManagerHandle};
use strata_partition::node::PartitionNodeOptions;
use strata_partition::PartitionServerState;
use strata_stream::StreamClient;
use tokio_util::sync::CancellationToken;

/// How often the manager's balancer runs (fast, so a dead server's ranges move soon after
/// its timeout).
const BALANCE_INTERVAL_MS: u64 = 100;
/// Partition servers heartbeat this often.
const HEARTBEAT_INTERVAL_MS: u64 = 100;
/// A partition server serves only this long after an answered heartbeat; below every
/// manager server timeout the tests use, as the binaries' defaults are.
const LEASE_MS: u64 = 1_000;

/// A single-member partition manager in `data_dir`, serving until `token` is cancelled; a
/// partition server silent for `server_timeout_ms` loses its ranges. Its planner is off (no
/// load- or size-driven split, merge or move): tests lay their ranges out themselves, so
/// layouts are exact. Returns once it serves (its address is `handle.addr()`).
pub async fn start_partition_manager(
    data_dir: PathBuf,
    server_timeout_ms: u64,
    token: CancellationToken,
) -> ManagerHandle {
    let (listener, addr) = loopback_listener().await;
    let mut config = ManagerConfig::new(1, BTreeMap::from([(1, addr)]), data_dir);
    config.server_timeout_ms = server_timeout_ms;
    config.balance_interval_ms = BALANCE_INTERVAL_MS;
    config.planner = PlannerConfig {
        split_requests_per_sec: 0.0,
        split_bytes_per_sec: 0.0,
        split_keys_max: u64::MAX,
        split_size_bytes_max: u64::MAX,
        merge_requests_per_sec: 0.0,
        move_requests_per_sec_min: f64::INFINITY,
        ..Default::default()
    };
    strata_manager::start(config, listener, token)
        .await
        .expect("the partition manager starts")
}

/// The location service (a group of one) in `data_dir`; returns its address. Stamps register
/// themselves: their front-ends report them.
pub async fn start_location(data_dir: PathBuf, token: CancellationToken) -> String {
    let options = strata_location::LocationOptions {
        data_dir,
        ..Default::default()
    };
    let (listener, addr) = loopback_listener().await;
    strata_location::start(&options, listener, token)
        .await
        .expect("the location service starts");
    addr
}

/// One partition server of a stamp.
pub struct PartitionServer {
    pub id: String,
    /// Its gRPC address.
    pub addr: String,
    pub state: Arc<PartitionServerState>,
    token: CancellationToken,
}

impl PartitionServer {
    /// Stops it as a killed process stops: no more answers, no more heartbeats.
    pub fn kill(&self) {
        self.token.cancel();
    }

    pub fn is_alive(&self) -> bool {
        !self.token.is_cancelled()
    }

    /// Whether it serves (owns and has loaded) the range holding `key`.
    pub fn serves(&self, key: &[u8]) -> bool {
        self.is_alive() && self.state.range_for(key).is_ok()
    }
}

/// Partition server `id` as its binary starts one (options, admin HTTP, then
/// `strata_partition::start`: gRPC service, heartbeats to the manager at `manager_addr`,
/// checkpoints, compaction, leftover collection, lifecycle), on the stream layer at
/// `stream_addr`, until `token` is cancelled.
pub async fn start_partition_server(
    id: &str,
    stream_addr: &str,
    manager_addr: &str,
    token: CancellationToken,
) -> PartitionServer {
    let options = PartitionNodeOptions {
        manager: manager_addr.into(),
        stream_manager: stream_addr.into(),
        server_id: Some(id.into()),
        heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
        lease_ms: LEASE_MS,
        ..Default::default()
    };
    options
        .validate()
        .expect("complete partition server options");
    let (listener, grpc_addr) = strata_util::rpc::bind(options.listen)
        .await
        .expect("a free loopback port");
    let health = strata_util::admin::always_healthy("partition-server");
    let (http_addr, _) = strata_util::admin::serve(options.http_listen, health, token.clone())
        .await
        .expect("the admin server starts");
    let server_id = options.server_id().expect("the server id is an option");
    let config = options.server_config(server_id, grpc_addr, http_addr);
    let streams = StreamClient::new(options.stream_manager_addrs());
    let running = strata_partition::start(config, streams, listener, token.clone())
        .await
        .expect("the partition server starts");
    PartitionServer {
        id: id.into(),
        addr: running.addr.to_string(),
        state: running.state,
        token,
    }
}
