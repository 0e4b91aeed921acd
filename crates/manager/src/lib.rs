//! Partition manager: a Raft group (openraft + sled) whose state machine is the partition map,
//! range -> owning partition server + epoch.
//!
//! Invariant: the map changes only through committed Raft log entries, and every change of a
//! range's owner bumps its epoch by exactly one; a proposal computed from an older view of the
//! map (wrong expected epoch) applies as a no-op. So at any epoch a range has one owner, and a
//! partition server stamps its work with the epoch it was given.
//!
//! Module map (the Raft log, state machine store and transport are `strata_raft`'s; this crate is
//! the application):
//! - `app`: what the service and the leader loop share on one member.
//! - [`types`]: [`Command`] (log payload) and [`CommandResponse`].
//! - [`map`]: the partition map and how a command changes it.
//! - [`machine`]: [`PartitionMachine`], the map as the group's replicated state machine.
//! - `service`: the gRPC service (heartbeats, map, status).
//! - `liveness`: the leader's in-memory table of partition-server heartbeats.
//! - `balancer`: the leader's loop that creates the initial range, gives ranges without a live
//!   owner to a live server, and carries out the planner's decisions.
//! - [`load`]: the leader's table of ranges' load (from heartbeats) and split-key choice.
//! - [`planner`]: which range to split, merge, move or renew next (pure; unit-tested).
//! - `reshape`: carrying a decision out (prepare on the owner, then commit).
//! - [`node`]: [`start`] a member, [`ManagerHandle`] to watch and stop it.
//! - [`client`]: [`ManagerClient`] for partition servers, front-ends and tools.
//! - [`config`]: [`ManagerConfig`] and `--members` parsing.
//! - [`options`]: [`ManagerOptions`], what an operator sets (file / environment / flags).

mod app;
mod balancer;
pub mod client;
pub mod config;
pub mod error;
mod liveness;
pub mod load;
pub mod machine;
pub mod map;
mod metrics;
pub mod node;
pub mod options;
pub mod planner;
mod reshape;
mod service;
pub mod types;

pub use client::ManagerClient;
pub use config::{parse_members, ManagerConfig, SERVER_TIMEOUT_MS_DEFAULT};
pub use error::{ManagerError, Result};
pub use machine::PartitionMachine;
pub use node::{start, ManagerHandle};
pub use options::ManagerOptions;
pub use types::{Command, CommandResponse};

/// Wire types of the manager's gRPC contract, re-exported for callers of [`ManagerClient`].
pub use strata_proto::manager::{
    ManagerStatusResponse, PartitionMap, RangeAssignment, ServedRange, ServerHeartbeat,
    ServerHeartbeatResponse,
};
