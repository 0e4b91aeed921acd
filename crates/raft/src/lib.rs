//! One Raft group over sled, as both Strata managers run it: the partition manager (whose state
//! machine is the partition map) and the stream manager (streams, extents, nodes).
//!
//! An application implements [`Machine`]: how one command changes its state, which it reads and
//! writes as key -> value records through an [`Overlay`]. This crate does the rest:
//! - [`codec`]: the versioned, checksummed record format of every value written to sled;
//! - [`types`]: the [`Machine`] trait and the openraft type configuration [`Types`];
//! - [`log`]: the Raft log, vote and commit index ([`LogStore`]);
//! - [`state`]: the state machine ([`StateMachineStore`]): the application's records, the
//!   applied log id and membership in one sled tree, snapshots, and [`StateReader`] for reads;
//! - [`network`] / [`service`]: the transport between members over the `strata.raft.Raft` gRPC
//!   service;
//! - [`group`]: [`Group`], a started member: propose, confirm leadership, who leads;
//! - [`testing`]: openraft's storage test suite, run against a store for any [`Machine`].
//!
//! Invariants:
//! - nothing is reported durable before it is: appended entries and votes are fsynced before
//!   openraft is told, and an applied batch (records + applied log id, one atomic sled batch)
//!   is fsynced before its responses are returned; a failed fsync fails the member closed;
//! - a record that fails its checksum or has an unknown version is never decoded;
//! - the state a reader sees is always a prefix of the committed log: batches apply atomically.

pub mod codec;
pub mod error;
pub mod group;
pub mod log;
pub mod network;
pub mod service;
pub mod state;
pub mod testing;
pub mod types;

pub use error::GroupError;
pub use group::{parse_members, Group, GroupConfig, LeaderView, LeadershipClock};
pub use log::LogStore;
pub use state::{Overlay, StateMachineStore, StateReader};
pub use types::{Machine, MemberId, Types};
