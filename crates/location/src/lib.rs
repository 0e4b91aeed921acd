//! Location service: the global bucket namespace, served by a Raft group (three members
//! survive the loss of one).
//!
//! Bucket names are unique across every stamp. Creating a bucket reserves its name here first,
//! recording which stamp holds it and which access key owns it; deleting the bucket releases
//! the name. Each member registers its deployment's stamp; the group answers "which stamp?".
//!
//! Modules:
//! - [`fill`]: how full a stamp is, and the one rule placing a new bucket on a stamp;
//! - [`machine`]: stamps and bucket names as a strata-raft state machine;
//! - [`metrics`]: per-stamp gauges (fill, capacity, bytes stored, buckets, open);
//! - [`moves`]: a bucket's move to another stamp, which ends once (completed or aborted);
//! - [`namespace`]: one member's reservations, releases and reads (leader only, confirmed);
//! - [`service`]: the `Location` gRPC service over the namespace;
//! - [`duties`]: what a leader does unasked (register the stamp, import the earlier table);
//! - [`node`]: [`LocationOptions`] (file / environment / flags) and [`start`], one member;
//! - [`client`]: [`LocationClient`], which finds the leader among the members for callers;
//! - [`store`]: the single-process table of earlier versions, read once to import it.
//!
//! Invariant: a name is held by at most one owner at a time: a reservation is decided by the
//! state machine on the committed log, and answered only once a quorum has it on disk.

pub mod client;
pub mod duties;
pub mod fill;
pub mod machine;
pub mod metrics;
pub mod moves;
pub mod namespace;
pub mod node;
pub mod service;
pub mod store;

pub use client::LocationClient;

pub use node::{start, LocationOptions, RunningLocation};

pub use machine::{LocationCommand, LocationMachine, LocationResponse};
pub use service::LocationService;
pub use store::{LocationStore, StoreError};
