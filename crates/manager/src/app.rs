//! What the gRPC service and the leader's assignment loop share on one member.

use crate::liveness::ServerTable;
use crate::load::LoadTable;
use crate::machine::PartitionMachine;
use crate::map::PartitionMapState;
use crate::planner::PlannerConfig;
use crate::types::MemberId;
use openraft::RaftMetrics;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use strata_raft::{Group, LeaderView, LeadershipClock};
use strata_util::rpc::ChannelPool;

/// Shared state of one running member.
pub struct App {
    pub node_id: MemberId,
    pub group: Group<PartitionMachine>,
    /// Partition-server liveness; filled only while this member leads.
    pub servers: Mutex<ServerTable>,
    pub server_timeout: Duration,
    /// When this member's current leadership began.
    pub leadership: LeadershipClock,
    /// Ranges' load from heartbeats; filled only while this member leads.
    pub loads: Mutex<LoadTable>,
    pub planner: PlannerConfig,
    /// Channels to partition servers, for the leader's reshape calls (each bounded by
    /// `reshape::PREPARE_TIMEOUT_MS`); reused, as the same owners prepare again.
    pub partition_servers: ChannelPool,
}

impl App {
    pub fn metrics(&self) -> RaftMetrics<MemberId, openraft::BasicNode> {
        self.group.metrics()
    }

    /// The partition map as applied on this member.
    pub fn map(&self) -> PartitionMapState {
        self.group.machine().map()
    }

    pub fn servers(&self) -> MutexGuard<'_, ServerTable> {
        match self.servers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn loads(&self) -> MutexGuard<'_, LoadTable> {
        match self.loads.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The leader as this member knows it, with its gRPC address from the membership.
    pub fn leader_view(&self) -> LeaderView {
        self.group.leader_view()
    }

    /// Whether this member leads and has applied an entry of its own term, so its state machine
    /// holds every committed change (safe to answer heartbeats from).
    pub fn is_ready_leader(&self) -> bool {
        self.group.is_ready_leader()
    }
}
