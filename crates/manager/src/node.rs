//! Starting and stopping one member: opens the store, starts Raft, serves gRPC, runs the
//! leader's assignment loop, and (on the lowest-id member) initializes the group once.

use crate::app::App;
use crate::config::ManagerConfig;
use crate::error::Result;
use crate::machine::PartitionMachine;
use crate::service::ManagerService;
use crate::types::{MemberId, Raft};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strata_proto::manager as pb;
use strata_raft::Group;
use strata_util::rpc::ChannelPool;
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
    let group = Group::start(
        &config.group_config(),
        Arc::new(PartitionMachine::default()),
    )
    .await?;
    let app = Arc::new(App {
        node_id,
        group: group.clone(),
        servers: Mutex::new(Default::default()),
        server_timeout: Duration::from_millis(config.server_timeout_ms),
        leadership: Default::default(),
        loads: Mutex::new(Default::default()),
        planner: config.planner.clone(),
        partition_servers: ChannelPool::new(Duration::from_millis(
            crate::reshape::PREPARE_TIMEOUT_MS,
        )),
    });

    let token = token.child_token();
    let tasks = TaskTracker::new();
    let router = strata_util::rpc::server()
        .add_service(ManagerService::new(app.clone()).into_server())
        .add_service(group.service());
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
    group.initialize_if_first(&config.members).await?;

    let stop_token = token.clone();
    let stop_group = group.clone();
    let stopped = tokio::spawn(async move {
        stop_token.cancelled().await;
        tracing::info!(node_id, "stopping manager member");
        stop_group.shutdown().await;
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
        self.app.group.raft()
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
        self.app.group.last_applied_index()
    }

    /// This member's applied partition map.
    pub fn partition_map(&self) -> pb::PartitionMap {
        let view = self.app.leader_view();
        self.app.map().to_proto(view.leader_addr)
    }

    /// Health for the admin server: healthy while a leader is known.
    pub fn health_check(&self) -> strata_util::admin::HealthCheck {
        let app = self.app.clone();
        Arc::new(move || {
            let metrics = app.metrics();
            let view = strata_raft::group::leader_view(&metrics);
            let details = serde_json::json!({
                "kind": "partition-manager",
                "node_id": app.node_id,
                "leader_id": view.leader_id,
                "leader_addr": view.leader_addr,
                "term": view.current_term,
                "state": format!("{:?}", metrics.state),
                "map_version": app.map().version,
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
