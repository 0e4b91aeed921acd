//! One member of the location group: its options (file / environment / flags, see
//! [`strata_util::config`]) and [`start`], which opens the member's Raft store, serves the
//! `Location` and Raft gRPC services on one port, and runs the member's duties until the token
//! is cancelled.
//!
//! Data folder: the member's Raft store lives in `<data_dir>/raft`. A sled database directly
//! in `<data_dir>` is the single-process table of earlier versions, which the lowest-id member
//! imports once (see `duties.rs`).

use crate::duties::Duties;
use crate::machine::LocationMachine;
use crate::namespace::Namespace;
use crate::LocationService;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use strata_proto::location::location_server::LocationServer;
use strata_raft::{parse_members, Group, GroupConfig, MemberId};
use strata_types::NodeId;
use strata_util::rpc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The Raft group's name; members refuse messages of another group.
pub const CLUSTER_NAME: &str = "strata-location";

/// What an operator sets; the keys are `strata-location`'s long flag names with `_`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LocationOptions {
    /// Folder of this member's Raft store (and of the earlier table, if any).
    pub data_dir: PathBuf,
    /// gRPC listen address (the `Location` service and the group's Raft traffic).
    pub listen: SocketAddr,
    /// Admin HTTP listen address (/health, /metrics).
    pub http_listen: SocketAddr,
    /// This member's Raft id.
    pub node_id: NodeId,
    /// Every member, this one included: "1=10.0.0.1:7000,2=...". Empty: a group of one, this
    /// member, at its listen address.
    pub members: String,
}

impl Default for LocationOptions {
    fn default() -> Self {
        let loopback_any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self {
            data_dir: PathBuf::from("strata-data/location"),
            listen: loopback_any,
            http_listen: loopback_any,
            node_id: NodeId::new(1),
            members: String::new(),
        }
    }
}

impl LocationOptions {
    /// The members, once the listen address is bound (a group of one when none are given).
    fn members(&self, bound: SocketAddr) -> anyhow::Result<BTreeMap<MemberId, String>> {
        if self.members.trim().is_empty() {
            return Ok(BTreeMap::from([(self.node_id.get(), bound.to_string())]));
        }
        Ok(parse_members(&self.members)?)
    }
}

/// A started member. Cancel its token, then [`Self::join`].
pub struct RunningLocation {
    /// The bound gRPC address.
    pub addr: SocketAddr,
    namespace: Namespace,
    tasks: TaskTracker,
}

impl RunningLocation {
    /// This member's Raft group (leadership, metrics).
    pub fn group(&self) -> &Group<LocationMachine> {
        self.namespace.group()
    }

    /// Whether this member leads and takes reservations (the earlier table is imported).
    pub fn takes_reservations(&self) -> bool {
        self.namespace.group().is_ready_leader()
            && self
                .namespace
                .import_progress()
                .is_ok_and(|progress| progress.done)
    }

    /// Health for the admin server: healthy while a leader is known.
    pub fn health_check(&self) -> strata_util::admin::HealthCheck {
        let group = self.namespace.group().clone();
        Arc::new(move || {
            let view = group.leader_view();
            let details = serde_json::json!({
                "kind": "location",
                "node_id": group.node_id(),
                "leader_id": view.leader_id,
                "leader_addr": view.leader_addr,
                "term": view.current_term,
            });
            if view.leader_id != 0 {
                Ok(details)
            } else {
                Err(format!("no leader known: {details}"))
            }
        })
    }

    /// Waits until the member has stopped (after its token is cancelled).
    pub async fn join(self) {
        self.tasks.wait().await;
    }
}

/// Starts one member on `listener` until `token` is cancelled (a failing gRPC server cancels
/// it too, so the member stops as a whole).
pub async fn start(
    options: &LocationOptions,
    listener: tokio::net::TcpListener,
    token: CancellationToken,
) -> anyhow::Result<RunningLocation> {
    let addr = listener.local_addr()?;
    let members = options.members(addr)?;
    let mut config = GroupConfig::new(
        CLUSTER_NAME,
        options.node_id.get(),
        members.clone(),
        options.data_dir.join("raft"),
    );
    // With mutual TLS, only location members' Raft messages are taken.
    config.member_role = Some(strata_types::Role::Location);
    let group = Group::start(&config, Arc::new(LocationMachine)).await?;
    let namespace = Namespace::new(group.clone());
    let router = rpc::server()
        .add_service(LocationServer::new(LocationService::new(namespace.clone())))
        .add_service(group.service());
    let tasks = TaskTracker::new();
    let serve_token = token.clone();
    tasks.spawn(async move {
        if let Err(err) = rpc::serve(router, listener, serve_token.clone()).await {
            tracing::error!(%err, "gRPC server failed");
            serve_token.cancel();
        }
    });
    group.initialize_if_first(&members).await?;
    let lowest = members.keys().next() == Some(&options.node_id.get());
    let old_table = Some(options.data_dir.clone()).filter(|dir| dir.join("db").is_file());
    if old_table.is_some() && !lowest {
        tracing::warn!(data_dir = %options.data_dir.display(), "an earlier bucket table is here, but only the lowest-id member imports one; ignored");
    }
    let duties = Duties {
        namespace: namespace.clone(),
        imports: lowest,
        old_table: old_table.filter(|_| lowest),
    };
    tasks.spawn(duties.run(token.clone()));
    let stop_group = group.clone();
    tasks.spawn(async move {
        token.cancelled().await;
        stop_group.shutdown().await;
    });
    tasks.close();
    tracing::info!(node_id = options.node_id.get(), %addr, ?members, "location member started");
    Ok(RunningLocation {
        addr,
        namespace,
        tasks,
    })
}
