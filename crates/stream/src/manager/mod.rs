//! The stream manager: a Raft group (`strata_raft`, usually 3 members) whose state machine
//! ([`machine`]) holds streams (ordered extent lists), extent replica sets and extent nodes,
//! read and written through [`meta`]; node liveness from heartbeats and status ([`state`]),
//! placement on 3 racks ([`placement`]), opening, deleting and trimming streams and allocating
//! their extents (`streams`), sealing (`seal`), streams made of existing extents ([`create`]),
//! re-replication, repair and garbage collection on the leader ([`repair`]), served over gRPC
//! ([`service`]); the stamp's fill reported to the location group by the leader
//! ([`fill_report`]).

pub mod create;
pub mod fill_report;
pub mod machine;
pub mod meta;
pub mod placement;
pub mod repair;
mod seal;
pub mod service;
pub mod state;
mod streams;

pub use repair::{
    RepairSettings, GC_DELAY_MS_DEFAULT, REPAIR_BANDWIDTH_BYTES_PER_SEC_DEFAULT,
    REPAIR_CONCURRENCY_DEFAULT, REPAIR_INTERVAL_MS_DEFAULT,
};
pub use state::{ManagerSettings, EXTENT_SIZE_BYTES_MAX_DEFAULT, NODE_TIMEOUT_MS_DEFAULT};

use crate::error::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use strata_proto::stream::stream_manager_server::StreamManagerServer;
use strata_proto::GRPC_MESSAGE_SIZE_BYTES_MAX;
use strata_types::NodeId;
use strata_util::admin::HealthCheck;
use tokio_util::sync::CancellationToken;

/// The Raft group's name: members refuse messages of another group.
pub const CLUSTER_NAME: &str = "strata-stream-manager";

#[derive(Clone, Debug)]
pub struct StreamManagerConfig {
    /// The Raft log and state machine live in `<data_dir>/raft`.
    pub data_dir: PathBuf,
    /// This member's Raft node id (a key of `members`).
    pub node_id: NodeId,
    /// Every member, this one included: node id -> gRPC "host:port".
    pub members: BTreeMap<NodeId, String>,
    pub settings: ManagerSettings,
}

impl StreamManagerConfig {
    /// A one-member group at `addr` (tests, and a stamp that runs a single stream manager).
    pub fn single(data_dir: impl Into<PathBuf>, addr: &str, settings: ManagerSettings) -> Self {
        Self {
            data_dir: data_dir.into(),
            node_id: NodeId::new(1),
            members: BTreeMap::from([(NodeId::new(1), addr.to_string())]),
            settings,
        }
    }

    /// The Raft part of this config (`strata_raft` numbers its members with bare integers).
    pub fn group_config(&self) -> strata_raft::GroupConfig {
        let mut group = strata_raft::GroupConfig::new(
            CLUSTER_NAME,
            self.node_id.get(),
            self.raft_members(),
            self.data_dir.join("raft"),
        );
        // With mutual TLS, only stream managers' Raft messages are taken.
        group.member_role = Some(strata_types::Role::StreamManager);
        group
    }

    /// `members` as `strata_raft` takes them.
    pub fn raft_members(&self) -> BTreeMap<strata_raft::MemberId, String> {
        self.members
            .iter()
            .map(|(id, addr)| (id.get(), addr.clone()))
            .collect()
    }
}

/// A started stream manager. Cancel its token, then [`Self::join`].
pub struct RunningStreamManager {
    /// The bound gRPC address.
    pub addr: String,
    state: Arc<state::ManagerState>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningStreamManager {
    /// Healthy while a leader is known; details count nodes and streams and name the leader.
    pub fn health_check(&self) -> HealthCheck {
        let state = self.state.clone();
        Arc::new(move || state.health_details().map_err(|err| err.to_string()))
    }

    /// Whether this member leads its group now.
    pub fn is_leader(&self) -> bool {
        self.state.meta.group().is_leader()
    }

    /// Index of the last Raft entry applied to this member's metadata.
    pub fn last_applied_index(&self) -> u64 {
        self.state.meta.group().last_applied_index()
    }

    /// Reports the stamp's fill to the location group at `location` (its members' addresses)
    /// until `token` is cancelled; see [`fill_report`].
    pub fn report_fill(
        &self,
        stamp: String,
        location: strata_location::LocationClient,
        token: CancellationToken,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let reporter = fill_report::FillReporter {
            state: self.state.clone(),
            stamp,
            location,
        };
        reporter.run(token)
    }

    pub async fn join(self) {
        if let Err(err) = self.task.await {
            tracing::error!(%err, "stream manager task failed");
        }
    }
}

/// Opens the metadata under `config.data_dir` and serves `StreamManager` on `listener` until
/// `token` is cancelled; repairs with the default [`RepairSettings`].
pub async fn start_stream_manager(
    config: StreamManagerConfig,
    listener: tokio::net::TcpListener,
    token: CancellationToken,
) -> Result<RunningStreamManager> {
    start_stream_manager_with_repair(config, RepairSettings::default(), listener, token).await
}

/// [`start_stream_manager`] with explicit repair and garbage-collection settings.
pub async fn start_stream_manager_with_repair(
    config: StreamManagerConfig,
    repair_settings: RepairSettings,
    listener: tokio::net::TcpListener,
    token: CancellationToken,
) -> Result<RunningStreamManager> {
    std::fs::create_dir_all(&config.data_dir)?;
    let group =
        strata_raft::Group::start(&config.group_config(), Arc::new(machine::MetaMachine)).await?;
    let meta = meta::MetaStore::new(group.clone());
    let state = Arc::new(state::ManagerState::new(meta, config.settings.clone()));
    let addr = listener.local_addr()?.to_string();
    let service = StreamManagerServer::new(service::StreamManagerService::new(state.clone()))
        .max_decoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX)
        .max_encoding_message_size(GRPC_MESSAGE_SIZE_BYTES_MAX);
    let router = strata_util::rpc::server()
        .add_service(service)
        .add_service(group.service());
    let task_token = token.child_token();
    let repairing = tokio::spawn(repair::run(
        state.clone(),
        repair_settings.clone(),
        task_token.clone(),
    ));
    let stopping_group = group.clone();
    let task = tokio::spawn(async move {
        if let Err(err) = strata_util::rpc::serve(router, listener, task_token.clone()).await {
            tracing::error!(%err, "stream manager gRPC server failed");
        }
        task_token.cancel();
        if let Err(err) = repairing.await {
            tracing::error!(%err, "repair task failed");
        }
        stopping_group.shutdown().await;
    });
    let members = config.raft_members();
    group.initialize_if_first(&members).await?;
    tracing::info!(%addr, node_id = config.node_id.get(), ?members, settings = ?config.settings, repair = ?repair_settings, "stream manager member started");
    Ok(RunningStreamManager { addr, state, task })
}
