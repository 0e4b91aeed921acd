//! One partition server node: its options (file / environment / flags, see
//! [`strata_util::config`]) and [`start`], which wires the gRPC service and the background
//! loops (heartbeats, checkpoints, compaction, leftover collection, lifecycle) and runs them
//! until the token is cancelled.

use crate::{
    CompactionConfig, LifecycleConfig, PartitionServerConfig, PartitionServerState,
    PartitionService, ThrottleConfig,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use strata_proto::partition::partition_server_server::PartitionServerServer;
use strata_stream::StreamClient;
use strata_util::{config::split_list, files, rpc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What an operator sets; the keys are `strata-partition-server`'s long flag names with `_`.
/// The defaults are those of [`PartitionServerConfig`]'s parts.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PartitionNodeOptions {
    /// Folder for the server's identity (its ranges live in streams, not here).
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// Partition manager members' gRPC addresses, comma-separated (required).
    pub manager: String,
    /// Stream manager gRPC address(es), comma-separated (required).
    pub stream_manager: String,
    /// Overrides the server id kept in `<data_dir>/server-id`.
    pub server_id: Option<String>,
    pub heartbeat_interval_ms: u64,
    pub lease_ms: u64,
    pub checkpoint_every_entries: u64,
    pub compaction_live_ratio_max: f64,
    pub compaction_bytes_per_pass_max: u64,
    pub compaction_bytes_per_sec_max: u64,
    pub compaction_interval_ms: u64,
    pub range_requests_per_sec_max: u32,
    pub bucket_requests_per_sec_max: u32,
    pub lifecycle_interval_ms: u64,
    /// Length of a lifecycle "day"; test-only (integration tests shorten it to watch rules fire).
    pub lifecycle_day_ms: u64,
    /// The location group members' gRPC addresses, comma-separated (replication to buckets
    /// on other stamps; none: every destination is on this stamp).
    pub location: String,
    /// This server's stamp (required with `location`).
    pub stamp: String,
}

impl Default for PartitionNodeOptions {
    fn default() -> Self {
        let loopback_any = SocketAddr::from(([127, 0, 0, 1], 0));
        let compaction = CompactionConfig::default();
        let throttle = ThrottleConfig::default();
        let lifecycle = LifecycleConfig::default();
        Self {
            data_dir: PathBuf::from("strata-data/partition"),
            listen: loopback_any,
            http_listen: loopback_any,
            manager: String::new(),
            stream_manager: String::new(),
            server_id: None,
            heartbeat_interval_ms: 250,
            lease_ms: 1_000,
            checkpoint_every_entries: 10_000,
            compaction_live_ratio_max: compaction.live_ratio_max,
            compaction_bytes_per_pass_max: compaction.bytes_per_pass_max,
            compaction_bytes_per_sec_max: compaction.bytes_per_sec_max,
            compaction_interval_ms: compaction.interval_ms,
            range_requests_per_sec_max: throttle.range_requests_per_sec_max,
            bucket_requests_per_sec_max: throttle.bucket_requests_per_sec_max,
            lifecycle_interval_ms: lifecycle.interval_ms,
            lifecycle_day_ms: lifecycle.day_ms,
            location: String::new(),
            stamp: String::new(),
        }
    }
}

impl PartitionNodeOptions {
    /// Checks the required options (before anything is written to the data folder).
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.manager_addrs().is_empty(), "--manager is required");
        anyhow::ensure!(
            !self.stream_manager_addrs().is_empty(),
            "--stream-manager is required"
        );
        anyhow::ensure!(
            split_list(&self.location).is_empty() || !self.stamp.is_empty(),
            "--location needs --stamp (the stamp this server belongs to)"
        );
        Ok(())
    }

    /// The partition manager members' addresses.
    pub fn manager_addrs(&self) -> Vec<String> {
        split_list(&self.manager)
    }

    /// The stream managers' addresses.
    pub fn stream_manager_addrs(&self) -> Vec<String> {
        split_list(&self.stream_manager)
    }

    /// The server id: the option, else the one kept in the data folder (made once).
    pub fn server_id(&self) -> anyhow::Result<String> {
        match &self.server_id {
            Some(id) => Ok(id.clone()),
            None => Ok(files::read_or_init(
                &self.data_dir.join("server-id"),
                || format!("ps-{:08x}", rand::random::<u32>()),
            )?),
        }
    }

    /// The server's config, once its id and bound addresses are known.
    pub fn server_config(
        &self,
        server_id: String,
        grpc_addr: SocketAddr,
        http_addr: SocketAddr,
    ) -> PartitionServerConfig {
        PartitionServerConfig {
            server_id,
            advertise_addr: grpc_addr.to_string(),
            http_addr: http_addr.to_string(),
            manager_addrs: self.manager_addrs(),
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            lease_ms: self.lease_ms,
            checkpoint_every_entries: self.checkpoint_every_entries,
            compaction: CompactionConfig {
                live_ratio_max: self.compaction_live_ratio_max,
                bytes_per_pass_max: self.compaction_bytes_per_pass_max,
                bytes_per_sec_max: self.compaction_bytes_per_sec_max,
                interval_ms: self.compaction_interval_ms,
            },
            throttle: ThrottleConfig {
                range_requests_per_sec_max: self.range_requests_per_sec_max,
                bucket_requests_per_sec_max: self.bucket_requests_per_sec_max,
            },
            lifecycle: LifecycleConfig {
                interval_ms: self.lifecycle_interval_ms,
                // A zero day would make every rule fire at once.
                day_ms: self.lifecycle_day_ms.max(1),
                ..LifecycleConfig::default()
            },
            stamps: crate::config::StampsConfig {
                stamp: self.stamp.clone(),
                location_addrs: split_list(&self.location),
            },
        }
    }
}

/// A started partition server. Cancel its token, then [`Self::join`].
pub struct RunningPartitionServer {
    /// The bound gRPC address.
    pub addr: SocketAddr,
    pub state: Arc<PartitionServerState>,
    tasks: TaskTracker,
}

impl RunningPartitionServer {
    /// Waits until the gRPC server and every background loop have stopped.
    pub async fn join(self) {
        self.tasks.wait().await;
    }
}

/// Serves `config`'s server on `listener` and runs its background loops until `token` is
/// cancelled (a failing gRPC server cancels it too, so the node stops as a whole).
pub async fn start(
    config: PartitionServerConfig,
    streams: StreamClient,
    listener: tokio::net::TcpListener,
    token: CancellationToken,
) -> anyhow::Result<RunningPartitionServer> {
    let addr = listener.local_addr()?;
    let state = PartitionServerState::new(config, streams);
    let service = PartitionServerServer::new(PartitionService::new(state.clone()))
        .max_decoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX)
        .max_encoding_message_size(strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX);
    let router = rpc::server().add_service(service);
    let tasks = TaskTracker::new();
    let server_token = token.clone();
    tasks.spawn(async move {
        if let Err(err) = rpc::serve(router, listener, server_token.clone()).await {
            tracing::error!(%err, "gRPC server failed");
            server_token.cancel();
        }
    });
    tasks.spawn(crate::server::run_heartbeats(state.clone(), token.clone()));
    tasks.spawn(crate::server::run_checkpoints(state.clone(), token.clone()));
    tasks.spawn(crate::server::run_compaction(state.clone(), token.clone()));
    tasks.spawn(crate::leftovers::run_leftover_collection(
        state.clone(),
        token.clone(),
    ));
    tasks.spawn(crate::lifecycle::run_lifecycle(
        state.clone(),
        token.clone(),
    ));
    tasks.spawn(crate::replication::run_replication(state.clone(), token));
    tasks.close();
    Ok(RunningPartitionServer { addr, state, tasks })
}
