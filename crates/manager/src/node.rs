//! Starting and stopping one member: opens the store, starts Raft, serves gRPC, runs the
//! leader's assignment loop, and (on the lowest-id member) initializes the group once.

use crate::app::{leader_view, App};
use crate::config::ManagerConfig;
use crate::error::{ManagerError, Result};
use crate::network::NetworkFactory;
use crate::service::ManagerService;
use crate::types::{MemberId, Raft};
use openraft::error::{InitializeError, RaftError};
use openraft::{BasicNode, SnapshotPolicy};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strata_proto::manager as pb;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long stopping waits for the gRPC server and the loops after Raft has stopped.
const STOP_GRACE_MS: u64 = 5_000;

/// A running member. Dropping it does not stop it; cancel the token given to [`start`] or call
/// [`ManagerHandle::shutdown`].
pub struct ManagerHandle {
    app: Arc<App>,
    addr: SocketAddr,
    token: CancellationToken,
    stopped: JoinHandle<()>,
}

/// Starts one member serving gRPC on `listener` until `token` is cancelled.
pub async fn start(
    config: ManagerConfig,
    listener: TcpListener,
    token: CancellationToken,
) -> Result<ManagerHandle> {
    config.validate()?;
    let addr = listener.local_addr()?;
    let node_id = config.node_id;
    let (log_store, state_machine) = crate::store::open(&config.data_dir).await?;
    let state = state_machine.shared();

    let raft_config = openraft::Config {
        cluster_name: "strata-partition-manager".into(),
        heartbeat_interval: config.raft_heartbeat_interval_ms,
        election_timeout_min: config.election_timeout_min_ms,
        election_timeout_max: config.election_timeout_max_ms,
        install_snapshot_timeout: 5_000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_logs_since_last),
        max_in_snapshot_log_to_keep: config.logs_kept_after_snapshot,
        ..Default::default()
    }
    .validate()
    .map_err(|err| ManagerError::Config(format!("raft config: {err}")))?;
    let raft = Raft::new(
        node_id,
        Arc::new(raft_config),
        NetworkFactory::new(node_id),
        log_store,
        state_machine,
    )
    .await
    .map_err(|err| ManagerError::Raft(format!("starting raft: {err}")))?;

    let app = Arc::new(App {
        node_id,
        raft: raft.clone(),
        state,
        servers: Mutex::new(Default::default()),
        server_timeout: Duration::from_millis(config.server_timeout_ms),
        leadership: Mutex::new(None),
    });

    let token = token.child_token();
    let tasks = TaskTracker::new();
    let router =
        strata_util::rpc::server().add_service(ManagerService::new(app.clone()).into_server());
    let serve_token = token.clone();
    tasks.spawn(async move {
        if let Err(err) = strata_util::rpc::serve(router, listener, serve_token).await {
            tracing::error!(%err, "manager gRPC server failed");
        }
    });
    tasks.spawn(crate::balancer::run(
        app.clone(),
        Duration::from_millis(config.balance_interval_ms),
        token.clone(),
    ));
    if config.members.keys().next() == Some(&node_id) {
        initialize_once(&raft, &config.members).await?;
    }

    let stop_token = token.clone();
    let stop_raft = raft.clone();
    let stopped = tokio::spawn(async move {
        stop_token.cancelled().await;
        tracing::info!(node_id, "stopping manager member");
        if let Err(err) = stop_raft.shutdown().await {
            tracing::warn!(%err, "raft did not stop cleanly");
        }
        tasks.close();
        if tokio::time::timeout(Duration::from_millis(STOP_GRACE_MS), tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                node_id,
                "manager tasks still running after the stop grace period"
            );
        }
    });
    tracing::info!(node_id, %addr, members = ?config.members, data_dir = %config.data_dir.display(), "manager member started");
    Ok(ManagerHandle {
        app,
        addr,
        token,
        stopped,
    })
}

/// Initializes the group with every member if this member's log is empty; a group that is
/// already initialized is not an error.
async fn initialize_once(raft: &Raft, members: &BTreeMap<MemberId, String>) -> Result<()> {
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|err| ManagerError::Raft(format!("checking initialization: {err}")))?;
    if initialized {
        return Ok(());
    }
    let nodes: BTreeMap<MemberId, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode { addr: addr.clone() }))
        .collect();
    match raft.initialize(nodes).await {
        Ok(()) => {
            tracing::info!(members = ?members, "initialized the manager raft group");
            Ok(())
        }
        Err(RaftError::APIError(InitializeError::NotAllowed(err))) => {
            tracing::info!(%err, "raft group already initialized");
            Ok(())
        }
        Err(err) => Err(ManagerError::Raft(format!("initializing: {err}"))),
    }
}

impl ManagerHandle {
    pub fn node_id(&self) -> MemberId {
        self.app.node_id
    }

    /// The bound gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The openraft handle (metrics, waits).
    pub fn raft(&self) -> &Raft {
        &self.app.raft
    }

    /// The leader this member knows, if any.
    pub fn leader_id(&self) -> Option<MemberId> {
        self.app.metrics().current_leader
    }

    /// Whether this member leads right now.
    pub fn is_leader(&self) -> bool {
        self.leader_id() == Some(self.app.node_id)
    }

    pub fn current_term(&self) -> u64 {
        self.app.metrics().current_term
    }

    /// Index of the last entry applied to this member's state machine (0 when none).
    pub fn last_applied_index(&self) -> u64 {
        self.app
            .applied()
            .last_applied
            .map(|log_id| log_id.index)
            .unwrap_or(0)
    }

    /// This member's applied partition map.
    pub fn partition_map(&self) -> pb::PartitionMap {
        let view = self.app.leader_view();
        self.app.applied().map.to_proto(view.leader_addr)
    }

    /// Health for the admin server: healthy while a leader is known.
    pub fn health_check(&self) -> strata_util::admin::HealthCheck {
        let app = self.app.clone();
        Arc::new(move || {
            let metrics = app.metrics();
            let view = leader_view(&metrics);
            let details = serde_json::json!({
                "kind": "partition-manager",
                "node_id": app.node_id,
                "leader_id": view.leader_id,
                "leader_addr": view.leader_addr,
                "term": view.current_term,
                "state": format!("{:?}", metrics.state),
                "map_version": app.applied().map.version,
            });
            if metrics.current_leader.is_some() {
                Ok(details)
            } else {
                Err(format!("no leader known: {details}"))
            }
        })
    }

    /// Stops this member (Raft, gRPC, loops) and waits until it has stopped.
    pub async fn shutdown(self) {
        self.token.cancel();
        self.wait().await;
    }

    /// Waits until this member has stopped (after its token is cancelled).
    pub async fn wait(self) {
        if let Err(err) = self.stopped.await {
            tracing::warn!(%err, "manager stop task failed");
        }
    }
}
