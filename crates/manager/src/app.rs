//! What the gRPC service and the leader's assignment loop share on one member.

use crate::liveness::ServerTable;
use crate::store::{read_state, AppliedState, SharedState};
use crate::types::{MemberId, Raft};
use openraft::{RaftMetrics, ServerState};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Shared state of one running member.
pub struct App {
    pub node_id: MemberId,
    pub raft: Raft,
    /// The applied state machine (durable before it is visible here).
    pub state: SharedState,
    /// Partition-server liveness; filled only while this member leads.
    pub servers: Mutex<ServerTable>,
    pub server_timeout: Duration,
    /// When this member's current leadership began (term, start); None while not leading.
    pub leadership: Mutex<Option<(u64, Instant)>>,
}

/// Who leads, as this member sees it.
#[derive(Clone, Debug, Default)]
pub struct LeaderView {
    /// 0 when unknown.
    pub leader_id: MemberId,
    /// Empty when unknown.
    pub leader_addr: String,
    pub current_term: u64,
}

impl App {
    pub fn metrics(&self) -> RaftMetrics<MemberId, openraft::BasicNode> {
        self.raft.metrics().borrow().clone()
    }

    pub fn applied(&self) -> AppliedState {
        read_state(&self.state)
    }

    pub fn servers(&self) -> MutexGuard<'_, ServerTable> {
        match self.servers.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn leadership(&self) -> MutexGuard<'_, Option<(u64, Instant)>> {
        match self.leadership.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The leader as this member knows it, with its gRPC address from the membership.
    pub fn leader_view(&self) -> LeaderView {
        leader_view(&self.metrics())
    }

    /// Whether this member leads and has applied an entry of its own term, so its state machine
    /// holds every committed change (safe to answer heartbeats from).
    pub fn is_ready_leader(&self) -> bool {
        let metrics = self.metrics();
        metrics.state == ServerState::Leader
            && metrics.current_leader == Some(self.node_id)
            && metrics
                .last_applied
                .is_some_and(|log_id| log_id.leader_id.term == metrics.current_term)
    }
}

/// The leader view from a metrics sample.
pub fn leader_view(metrics: &RaftMetrics<MemberId, openraft::BasicNode>) -> LeaderView {
    let leader_id = metrics.current_leader.unwrap_or(0);
    let leader_addr = metrics
        .current_leader
        .and_then(|id| {
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .map(|node| node.addr.clone())
        })
        .unwrap_or_default();
    LeaderView {
        leader_id,
        leader_addr,
        current_term: metrics.current_term,
    }
}
